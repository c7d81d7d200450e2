"""Keras-style progress display for fit/evaluate/predict, written to sys.stdout.

verbose=1 on a terminal redraws one line per epoch with a bar, ETA, time per step and running
metrics; when stdout is not a terminal (a log file, a pipe, CI) it prints only the epoch's final
line, without ANSI codes. verbose=2 prints one summary line per epoch.
"""

from __future__ import annotations

import sys
import time

_WIDTH = 20
_INTERVAL = 0.05  # seconds between redraws on a terminal


def _is_tty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _bar_chars(stream) -> tuple[str, str]:
    encoding = getattr(stream, "encoding", None) or "ascii"
    try:
        "━".encode(encoding)
        return "━", "━"
    except (UnicodeEncodeError, LookupError):
        return "=", "."


def format_value(value: float) -> str:
    """4 decimals, or scientific notation for tiny values, as Keras prints metrics."""
    return f"{value:.4f}" if abs(value) > 1e-3 else f"{value:.4e}"


def format_duration(seconds: float, unit: str = "step") -> str:
    """'3s/step', '12ms/step' or '85us/step'."""
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.0f}s/{unit}"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/{unit}"
    return f"{seconds * 1e6:.0f}us/{unit}"


def _format_eta(eta: float) -> str:
    if eta > 3600:
        return f"{int(eta // 3600)}:{int(eta % 3600 // 60):02d}:{int(eta % 60):02d}"
    if eta > 60:
        return f"{int(eta // 60)}:{int(eta % 60):02d}"
    return f"{int(eta)}s"


class Progbar:
    """A progress bar over `target` steps; `update(current, values)` with running values."""

    def __init__(self, target: int, verbose: int = 1, stream=None):
        self.target = target
        self.verbose = verbose
        self.stream = stream if stream is not None else sys.stdout
        self.dynamic = _is_tty(self.stream)
        self._done_char, self._todo_char = _bar_chars(self.stream)
        self._start = time.perf_counter()
        self._after_first = None
        self._last_draw = 0.0
        self._prev_width = 0

    def _time_per_step(self, current: int, now: float) -> float:
        if not current:
            return 0.0
        if self._after_first is not None and current > 1:
            return (now - self._after_first) / (current - 1)  # the first step is often slower
        if current == 1:
            self._after_first = now
        return (now - self._start) / current

    def update(self, current: int, values: dict | None = None, finalize: bool | None = None):
        """Show progress after `current` steps with metric values (already averaged)."""
        finalize = current >= self.target if finalize is None else finalize
        now = time.perf_counter()
        per_step = self._time_per_step(current, now)
        metrics = "".join(f" - {k}: {format_value(v)}" for k, v in (values or {}).items())
        if self.verbose == 2:
            if finalize:
                self._write(f"{current}/{self.target} - {now - self._start:.0f}s - "
                            f"{format_duration(per_step)}{metrics}\n")
            return
        if self.verbose != 1 or (not self.dynamic and not finalize):
            return
        if self.dynamic and not finalize and now - self._last_draw < _INTERVAL:
            return
        self._last_draw = now
        digits = len(str(self.target))
        done = int(_WIDTH * current / self.target) if self.target else _WIDTH
        bar = self._done_char * done + self._todo_char * (_WIDTH - done)
        if finalize:
            timing = f"{now - self._start:.0f}s"
        else:
            timing = _format_eta(per_step * (self.target - current))
        line = f"{current:>{digits}}/{self.target} {bar} {timing} {format_duration(per_step)}" \
               f"{metrics}"
        if not self.dynamic:
            self._write(line + "\n")
            return
        pad = " " * max(0, self._prev_width - len(line))
        self._prev_width = len(line)
        colored = (f"\x1b[1m{current:>{digits}}/{self.target}\x1b[0m "
                   f"\x1b[32m{bar[:done]}\x1b[0m\x1b[37m{bar[done:]}\x1b[0m "
                   f"\x1b[1m{timing}\x1b[0m {format_duration(per_step)}{metrics}")
        self._write("\r" + colored + pad + ("\n" if finalize else ""))

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
