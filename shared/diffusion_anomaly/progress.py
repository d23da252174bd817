"""Per-slice progress of an inferer: a bar on a terminal, periodic log lines for servers.

A volume can take minutes (DISYRE on CPU: about 1 s per slice; Synomaly and AnoFPDM several network calls per
slice), and a per-case bar alone left a user at "cases 0/2" for 38 minutes. MONAI Label and MONAI Deploy run the
inferer inside a server whose stderr is no terminal, where a tqdm bar is either invisible or a flood of carriage
returns, so there the progress goes to the ``diffusion_anomaly`` logger every ``log_every`` seconds instead.
"""

from __future__ import annotations

import logging
import sys
import time

from tqdm import tqdm

logger = logging.getLogger("diffusion_anomaly.progress")


class SliceProgress:
    """Counts slices done out of ``total``; fractional updates allowed (windows of a slice).

    Use as a context manager: ``with SliceProgress(n, "DISYRE") as progress: ... progress.update(k)``.

    Args:
        total: slices to process.
        desc: the method's name, shown first.
        enabled: False makes every call a no-op (tests, nested use).
        log_every: seconds between log lines when stderr is not a terminal (0 logs every update).
        terminal: force the bar (True) or the log lines (False); None decides from ``sys.stderr.isatty()``.
    """

    def __init__(self, total: float, desc: str, enabled: bool = True, log_every: float = 10.0,
                 terminal: bool | None = None):
        self.total, self.desc, self.enabled, self.log_every = float(total), desc, bool(enabled), float(log_every)
        self.done = 0.0
        self.terminal = sys.stderr.isatty() if terminal is None else terminal
        self._bar = None
        self._start = self._last_log = time.monotonic()

    def __enter__(self) -> SliceProgress:
        if self.enabled and self.terminal:
            self._bar = tqdm(total=self.total, desc=self.desc, unit="slice", leave=False,
                             bar_format="{desc}: {n:.0f}/{total:.0f} slices |{bar}| [{elapsed}<{remaining}]")
        return self

    def update(self, slices: float) -> None:
        if not self.enabled:
            return
        self.done = min(self.total, self.done + slices)
        if self.done > self.total - 1e-6:  # fractional updates (windows, steps) may sum to just below the total
            self.done = self.total
        if self._bar is not None:
            self._bar.update(slices)
            return
        now = time.monotonic()
        if now - self._last_log >= self.log_every or self.done >= self.total:
            self._last_log = now
            logger.info(self.message(now - self._start))

    def message(self, elapsed: float) -> str:
        """"DISYRE: 5/152 slices (3 %), 10 s elapsed, about 294 s left"."""
        percent = 100.0 * self.done / self.total if self.total else 100.0
        text = f"{self.desc}: {self.done:.0f}/{self.total:.0f} slices ({percent:.0f} %), {elapsed:.0f} s elapsed"
        if 0 < self.done < self.total:
            text += f", about {elapsed * (self.total - self.done) / self.done:.0f} s left"
        return text

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()
