"""podnet's one exception tree and the Problem record every error message is made from.

A message reads ``FILE:LINE:COL: error: PATH: what is wrong (found X, expected Y)`` and may carry a
hint on the next line. All problems of one input are collected and raised together.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from podnet.model.base import Pos


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong (or doubtful, with ``severity="warning"``) in the input.

    >>> print(Problem("unknown key 'nodname'", Pos("a.yaml", 3, 5), "spec.nodname",
    ...               hint="did you mean 'nodeName'?").render())
    a.yaml:3:5: error: spec.nodname: unknown key 'nodname'
      hint: did you mean 'nodeName'?
    """

    message: str
    pos: Pos | None = None
    path: str = ""
    hint: str | None = None
    severity: str = "error"

    def render(self) -> str:
        where = f"{self.pos}: " if self.pos else ""
        path = f"{self.path}: " if self.path else ""
        text = f"{where}{self.severity}: {path}{self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class PodnetError(Exception):
    """Base of every error podnet raises on purpose; the CLI turns it into exit code 2."""

    def __init__(self, problems: Sequence[Problem] | Problem | str):
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(p.render() for p in self.problems))


class InputError(PodnetError):
    """The cluster's files are invalid: nothing was built."""


class UsageError(PodnetError):
    """The command line is invalid (a bad SRC/DST, an unknown name, a bad option)."""


def closest(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The choices most like ``word``, best first.

    >>> closest("frontnd", ["frontend", "backend", "db"])
    ['frontend']
    """
    return difflib.get_close_matches(word, list(choices), n=n, cutoff=0.6)


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A hint naming the closest choices, or None when nothing is close.

    >>> did_you_mean("nodname", ["nodeName", "hostNetwork"])
    "did you mean 'nodeName'?"
    """
    found = closest(word, choices)
    if not found:
        return None
    return "did you mean " + " or ".join(f"'{c}'" for c in found) + "?"
