from .case_runner import CaseRunner, case_name, describe_error, infer_item, input_error

__all__ = ["CaseRunner", "case_name", "describe_error", "infer_item", "input_error"]
