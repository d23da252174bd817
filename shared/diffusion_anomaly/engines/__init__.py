from .case_runner import CaseOutcome, CaseRunner, case_name, describe_error, infer_item, input_error, run_cases

__all__ = ["CaseOutcome", "CaseRunner", "case_name", "describe_error", "infer_item", "input_error", "run_cases"]
