"""A log line budget: at most N lines per key in each window, then one summary line.

A credential-stuffing burst refuses thousands of requests a second; a log line for each
would flood the log (and a pipe reader that falls behind stalls the worker). The first
`per_window` events of a key in a window are logged in full; the rest are counted and
reported in one line when the key's next window opens.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class _Window:
    start: float
    logged: int = 0
    suppressed: int = 0


@dataclass
class LogBudget:
    per_window: int = 20
    window: float = 10.0
    _windows: dict[str, _Window] = field(default_factory=dict)

    def take(self, key: str, now: float) -> tuple[bool, int]:
        """(log this event?, how many events of `key` the previous window suppressed).

        The count is returned once, with the first event of the next window, so the caller
        can write "N more like this were not logged".
        """
        w = self._windows.get(key)
        suppressed = 0
        if w is None or now - w.start >= self.window:
            suppressed = w.suppressed if w is not None else 0
            if w is None and len(self._windows) >= 4096:
                self._windows.clear()  # bounded: keys are routes × reasons, a few normally
            w = self._windows[key] = _Window(start=now)
        if w.logged < self.per_window:
            w.logged += 1
            return True, suppressed
        w.suppressed += 1
        return False, suppressed
