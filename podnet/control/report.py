"""What the control plane says while it works: problems (errors, warnings) and the story's events.

One ``Report`` travels through the phases of :func:`podnet.control.plan`; each phase appends to it
and the planner stops at its checkpoints when errors were collected, raising them all at once.
"""

from __future__ import annotations

from podnet.errors import Problem
from podnet.model.base import Pos
from podnet.model.cluster import Event
from podnet.model.spec import Source


def locate(src: Source | None, path: str) -> tuple[Pos | None, str]:
    """The position of ``path`` in an object's source and the path to print.

    A value given in a Cluster document's node list may be recorded under a longer path
    (``spec.nodes[2].podCIDR``); when ``path`` itself is not recorded, a recorded path ending with
    the same last field is used instead, so the message points at what the user wrote.

    >>> from podnet.model.base import FrozenDict
    >>> src = Source(Pos("c.yaml", 1, 1), FrozenDict({"spec.nodes[1].podCIDR": Pos("c.yaml", 9, 14)}))
    >>> locate(src, "spec.podCIDR")
    (Pos(file='c.yaml', line=9, col=14), 'spec.nodes[1].podCIDR')
    """
    if src is None:
        return None, path
    if path in src.paths:
        return src.paths[path], path
    last = path.rsplit(".", 1)[-1]
    if last:
        for key in src.paths:
            if key == last or key.endswith("." + last):
                return src.paths[key], key
    return src.at(path), path


class Report:
    """Collects errors, warnings and events in the order they are found (a builder, not a result)."""

    __slots__ = ("errors", "warnings", "events")

    def __init__(self) -> None:
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []
        self.events: list[Event] = []

    def error(
        self, message: str, src: Source | None = None, path: str = "", hint: str | None = None
    ) -> None:
        pos, path = locate(src, path)
        self.errors.append(Problem(message, pos, path, hint))

    def warn(
        self, message: str, src: Source | None = None, path: str = "", hint: str | None = None
    ) -> None:
        pos, path = locate(src, path)
        self.warnings.append(Problem(message, pos, path, hint, severity="warning"))

    def event(self, actor: str, action: str, obj: str, detail: str = "") -> None:
        self.events.append(Event(actor, action, obj, detail))
