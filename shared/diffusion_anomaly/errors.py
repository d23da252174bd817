"""Exceptions that name the offending input, so a batch job can report and skip it."""

import os
import tempfile
from pathlib import Path


class InputDataError(ValueError):
    """An input file or array is unusable (missing, unreadable, wrong shape, NaN, empty).

    The message always starts with the file (or case) it concerns.
    """

    def __init__(self, source: str | os.PathLike, problem: str):
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


class CasesFailedError(RuntimeError):
    """Raised after a batch job processed every case, when some failed: the CLI then exits non-zero (1) while
    the good cases' outputs and ``failures.json`` are already written."""


def check_writable_folder(folder) -> None:
    """Create ``folder`` (with parents) and prove a file can be written there, before hours of work; else an
    ``InputDataError`` naming the folder."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write_test.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise InputDataError(folder, f"output folder cannot be created or written to ({err.strerror or err})") from err
