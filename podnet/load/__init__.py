"""Reading podnet's inputs: YAML files of a Cluster document and Kubernetes objects.

``load_inputs`` is the one entry point. It reads every file, converts every object and reports
every problem at once: either all inputs are valid and an Inputs comes back (with the warnings),
or InputError carries all the problems found and nothing is returned.
"""

from __future__ import annotations

from collections.abc import Sequence

from podnet.errors import InputError, Problem
from podnet.load.fields import Ctx
from podnet.load.kinds import Collector
from podnet.load.reader import expand_paths, read_documents
from podnet.load.yamlpos import gc_paused
from podnet.model.spec import Inputs

__all__ = ["load_inputs"]


def load_inputs(
    paths: Sequence[str], recursive: bool = False
) -> tuple[Inputs, tuple[Problem, ...]]:
    """Read the files and directories ``paths`` into Inputs; return them with the warnings.

    Raises InputError with every problem (errors and warnings, in input order: files as read,
    then line and column) when any error was found; nothing is returned then.

    >>> load_inputs(["/no/such/file.yaml"])
    Traceback (most recent call last):
    ...
    podnet.errors.InputError: error: no such file or directory: '/no/such/file.yaml'
      hint: check the path: directory '/no/such' does not exist either
    """
    ctx = Ctx()
    files = expand_paths(paths, recursive, ctx)
    collector = Collector(ctx)
    with gc_paused():
        for file in files:
            for doc in read_documents(file, ctx):
                collector.document(doc)
        inputs = collector.inputs(files)
    # Report in input order: files as read, then line and column (checks run in their own order).
    rank = {f: i for i, f in enumerate(files)}

    def where(p: Problem) -> tuple[int, int, int]:
        return (rank.get(p.pos.file, -1), p.pos.line, p.pos.col) if p.pos else (-1, 0, 0)

    problems = sorted(ctx.problems, key=where)
    if ctx.error_count:
        raise InputError(problems)
    return inputs, tuple(p for p in problems if p.severity != "error")
