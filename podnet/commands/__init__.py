"""One module per command: ``add(subparsers)`` declares its arguments, ``run(args, out, err)``
does the work and returns the exit status. ``COMMANDS`` lists them in ``--help`` order."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TextIO

from podnet.errors import Problem

COMMANDS = ("trace", "check", "iptables_save")


def add_files(p: argparse.ArgumentParser) -> None:
    """The ``-f``/``-R`` options every command that reads a cluster takes."""
    p.add_argument("-f", "--file", action="append", default=[], metavar="PATH", help="YAML file or directory (repeatable); default: the bundled demo")
    p.add_argument("-R", "--recursive", action="store_true", help="read directories recursively")


def load(args):
    """Load the cluster the command line names (the demo without -f)."""
    from podnet.api import load as _load

    return _load(*args.file, recursive=args.recursive)


def warn(problems: Sequence[Problem], err: TextIO) -> None:
    for p in problems:
        err.write(p.render() + "\n")


RAW = argparse.RawDescriptionHelpFormatter
