"""Write-then-rename helpers: a reader never sees a half-written file, a crash leaves no partial one."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path next to ``path`` for a writer that only takes a file name (e.g. MONAI's
    ``ConfigParser.export_config_file``); renamed over ``path`` when the block ends without error, removed
    otherwise. ``suffix`` ends the temporary name, for readers that go by it.

    The file gets the permissions a plain ``open(path, "w")`` would (0666 less the umask): ``mkstemp`` creates
    0600 files, which a MONAI Label server or a colleague in the group could not read.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temporary file next to ``path``, flush it to disk and rename it over ``path``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """JSON with sorted keys and a trailing newline, so identical content gives identical bytes."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
