"""One module per command: ``add(subparsers)`` declares its arguments, ``run(args, out, err)``
does the work and returns the exit status. ``COMMANDS`` lists them in ``--help`` order."""

from __future__ import annotations

import argparse
import contextvars
from collections.abc import Sequence
from typing import TextIO

from podnet.errors import Problem

COMMANDS = (
    "trace",
    "check",
    "reach",
    "iptables_save",
    "ipset_save",
    "generate",
    "show",
    "graph",
    "realize",
    "verify",
    "events",
    "explain",
    "dns",
    "shell",
)


def add_files(p: argparse.ArgumentParser) -> None:
    """The ``-f``/``-R`` options every command that reads a cluster takes."""
    p.add_argument(
        "-f",
        "--file",
        action="append",
        default=[],
        metavar="PATH",
        help="YAML file or directory (repeatable); default: the bundled demo",
    )
    p.add_argument("-R", "--recursive", action="store_true", help="read directories recursively")


LOADED: contextvars.ContextVar[dict | None] = contextvars.ContextVar("podnet_loaded", default=None)
"""Clusters already loaded in this session, by ``(files, recursive)``: ``podnet shell`` sets
it, so that the commands it runs load a cluster once for all (None: every command loads)."""


def load(args, err: TextIO | None = None):
    """Load the cluster the command line names (the demo without -f); with ``err``, a progress
    line on it while that takes time (only when it is a terminal). In a shell session, a
    cluster loaded before is given again (its warnings printed once, when it was loaded)."""
    from podnet.api import load as _load

    session = LOADED.get()
    key = (tuple(args.file), bool(args.recursive))
    if session is not None and key in session:
        return session[key]
    if err is None:
        loaded = _load(*args.file, recursive=args.recursive)
    else:
        from podnet.render.progress import Progress

        progress = Progress(err)
        try:
            loaded = _load(*args.file, recursive=args.recursive, progress=progress)
        finally:
            progress.finish()
    if session is not None:
        from dataclasses import replace

        if err is not None:
            warn(loaded.warnings, err)
        session[key] = replace(loaded, warnings=())
        return session[key]
    return loaded


def warn(problems: Sequence[Problem], err: TextIO) -> None:
    for p in problems:
        err.write(p.render() + "\n")


def each_node(loaded, node: str | None, out: TextIO):
    """The node ``--node`` names (checked, with the closest names as a hint), or every node,
    each announced by a ``# node NAME`` comment line that iptables-restore and ipset ignore."""
    from podnet.errors import PodnetError, did_you_mean

    nodes = [n.name for n in loaded.cluster.nodes]
    if node is not None and node not in nodes:
        hint = did_you_mean(node, nodes) or f"nodes: {', '.join(nodes)}"
        raise PodnetError(Problem(f"no node '{node}'", path="--node", hint=hint))
    for name in [node] if node else nodes:
        if not node:
            out.write(f"# node {name}\n")
        yield name


RAW = argparse.RawDescriptionHelpFormatter
