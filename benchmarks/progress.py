"""Progress of long commands: a tqdm bar on a terminal, plain lines in log files.

A batch job's log (SLURM's ``%j.out``, a redirected stderr) gets one plain line at most every
``every`` seconds, with the count, the rate and the time left, instead of a bar's carriage-return
frames, which turn a log into one unreadable line.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class Progress:
    """Counts finished items of ``total``.

    Args:
        total: items in all.
        desc: what is counted, first word of every line ("msc run").
        unit: the item's name ("session").
        initial: items already done (a resumed run's kept sessions).
        enabled: False shows nothing.
        every: seconds between plain lines when the stream is not a terminal.
        stream: where to write (default ``sys.stderr``).
    """

    def __init__(self, total: int, desc: str, unit: str = "item", initial: int = 0, enabled: bool = True,
                 every: float = 30.0, stream: TextIO | None = None):
        self.total, self.desc, self.unit, self.n, self.every = total, desc, unit, initial, every
        self.stream = stream or sys.stderr
        self._start_n, self._t0 = initial, time.monotonic()
        self._last = self._t0
        self._bar: Any = None
        self._plain = False
        if enabled:
            if getattr(self.stream, "isatty", lambda: False)():
                from tqdm import tqdm

                self._bar = tqdm(total=total, initial=initial, unit=unit, desc=desc, leave=False, file=self.stream)
            else:
                self._plain = True

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif self._plain and time.monotonic() - self._last >= self.every:
            self._line()

    def _line(self) -> None:
        now = time.monotonic()
        self._last = now
        rate = (self.n - self._start_n) / max(now - self._t0, 1e-9)
        left = (self.total - self.n) / rate if rate > 0 else float("inf")
        eta = f"{left / 60:.1f} min left" if left != float("inf") else "time left unknown"
        pct = 100.0 * self.n / self.total if self.total else 100.0
        print(f"{self.desc}: {self.n}/{self.total} {self.unit}s ({pct:.1f} %), {rate:.1f} {self.unit}s/s, {eta}",
              file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._plain and self.n > self._start_n:
            self._line()
