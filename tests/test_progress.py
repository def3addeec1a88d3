"""The progress line: drawn on a terminal only, cleared when done."""

from __future__ import annotations

import io

from podnet.render.progress import Progress, line


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_silent_unless_a_terminal():
    buf = io.StringIO()
    p = Progress(buf)
    p("loading", 1, 3)
    p.finish()
    assert buf.getvalue() == ""


def test_draws_on_a_terminal_and_clears():
    now = [0.0]
    buf = _Tty()
    p = Progress(buf, clock=lambda: now[0])
    p("building", 0, 4)
    now[0] = 0.01
    p("building", 1, 4)  # too soon after the last draw: skipped
    now[0] = 0.5
    p("building", 2, 4)
    text = buf.getvalue()
    assert text.count("\r") == 2
    assert "building [" in text and " 50%  2/4  0.5 s" in text
    p.finish()
    assert buf.getvalue().endswith("\r")
    assert buf.getvalue().rstrip("\r").endswith(" " * len(line("building", 2, 4, 0.5)))


def test_line_without_total():
    assert line("loading a.yaml", 0, None, 1.25) == "loading a.yaml ...  1.2 s"


def test_load_reports_its_stages():
    import podnet

    seen = []
    podnet.api.load(progress=lambda label, done, total: seen.append((done, total)))
    assert seen == [(0, 3), (1, 3), (2, 3)]
