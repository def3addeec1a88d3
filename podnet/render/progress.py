"""A progress line for long work on large inputs: loading, building, analyses over many probes.

The library reports progress through a plain callable ``progress(label, done, total)`` (``total``
None when unknown); it never writes anything itself. :class:`Progress` is such a callable that
draws one line on a terminal and stays silent when the stream is not a terminal (a pipe, a file,
a test), so that output stays the same byte for byte wherever it is captured.

>>> import io
>>> p = Progress(io.StringIO())          # not a terminal: silent
>>> p("loading", 1, 10); p.finish(); p.stream.getvalue()
''
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

ProgressFn = Callable[[str, int, "int | None"], None]
"""What the library calls: ``progress(label, done, total)``."""

WIDTH = 24
INTERVAL = 0.1  # seconds between redraws: drawing must not cost more than the work


def quiet(label: str, done: int, total: int | None) -> None:
    """A progress callable that reports nothing (the library's default)."""


class Progress:
    """Draws ``label [#####......]  45%  1,350/3,000  2.1 s`` on ``stream`` when it is a TTY.

    ``enabled`` forces drawing on or off (default: ``stream.isatty()``).
    """

    def __init__(
        self,
        stream: TextIO,
        enabled: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.stream = stream
        if enabled is None:
            isatty = getattr(stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.clock = clock
        self.label: str | None = None
        self.started = 0.0
        self.drawn = 0.0
        self.width = 0

    def __call__(self, label: str, done: int, total: int | None = None) -> None:
        if not self.enabled:
            return
        now = self.clock()
        if label != self.label:
            self.label, self.started, self.drawn = label, now, 0.0
        elif now - self.drawn < INTERVAL and (total is None or done < total):
            return
        self.drawn = now
        self._draw(line(label, done, total, now - self.started))

    def finish(self) -> None:
        """Clear the line (the work is done; what follows is the answer)."""
        if self.enabled and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0
        self.label = None

    def _draw(self, text: str) -> None:
        pad = max(0, self.width - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self.width = len(text)


def line(label: str, done: int, total: int | None, seconds: float) -> str:
    """One progress line.

    >>> line("building", 45, 100, 2.06)
    'building [##########..............]  45%  45/100  2.1 s'
    >>> line("loading cluster.yaml", 0, None, 0.5)
    'loading cluster.yaml ...  0.5 s'
    """
    if not total:
        return f"{label} ...  {seconds:.1f} s"
    frac = min(1.0, done / total)
    filled = int(frac * WIDTH)
    bar = "#" * filled + "." * (WIDTH - filled)
    return f"{label} [{bar}] {int(frac * 100):3d}%  {done:,}/{total:,}  {seconds:.1f} s"
