"""Exceptions that name the offending input, so a batch job can report and skip it."""


class InputDataError(ValueError):
    """An input file or array is unusable (missing, unreadable, wrong shape, NaN, empty).

    The message always starts with the file (or case) it concerns.
    """

    def __init__(self, source: str, problem: str):
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")
