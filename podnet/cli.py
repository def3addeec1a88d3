"""The command line: parse, call the library, render, return an exit status. Nothing else.

Exit status: 0 every path delivered / every expectation met; 1 something not delivered or not met;
2 bad input or usage (a message on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import re
import sys
from collections.abc import Sequence
from enum import IntEnum
from typing import TextIO

from podnet import __version__
from podnet.commands import COMMANDS
from podnet.errors import PodnetError, Problem, did_you_mean


class ExitStatus(IntEnum):
    OK = 0
    FAILED = 1
    ERROR = 2


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so usage errors are exit 2 with our message."""

    def error(self, message: str):
        hint = f"see '{self.prog} --help'"
        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if m:  # a misspelt command or choice: name the closest ones first
            close = did_you_mean(m.group(1), [c.strip("'") for c in m.group(2).split(", ")])
            hint = f"{close} ({hint})" if close else hint
        raise PodnetError(Problem(message, path=self.prog, hint=hint))


def _modules():
    return [importlib.import_module(f"podnet.commands.{name}") for name in COMMANDS]


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    parser = _Parser(
        prog="podnet",
        description="Kubernetes container-networking emulator: trace packets hop by hop through a cluster's dataplane.",
    )
    parser.add_argument("--version", action="version", version=f"podnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    runners = {}
    for mod in _modules():
        before = set(sub.choices)
        mod.add(sub)
        for name in set(sub.choices) - before:
            runners[name] = mod.run
    return parser, runners


def run(
    argv: Sequence[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run one command; returns its exit status. Streams are injectable for in-process tests."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    return guarded(lambda: dispatch(list(sys.argv[1:] if argv is None else argv), out, err), err)


def dispatch(argv: list[str], out: TextIO, err: TextIO, prepare=None) -> int:
    """Parse ``argv`` and run its command (errors raised: see :func:`guarded`). ``prepare``,
    when given, sees the parsed arguments first (``podnet shell`` fills in its files)."""
    parser, runners = build_parser()
    with contextlib.redirect_stdout(out):  # --help and --version print to our stream
        args = parser.parse_args(argv)
    if not args.command:
        parser.print_help(out)
        return ExitStatus.ERROR
    if prepare is not None:
        prepare(args)
    return int(runners[args.command](args, out, err))


def guarded(call, err: TextIO) -> int:
    """``call()``'s exit status, or the status of what it raised: a PodnetError's problems
    written to ``err`` (exit 2), never a traceback."""
    try:
        return call()
    except PodnetError as e:
        for p in e.problems:
            err.write(p.render() + "\n")
        return ExitStatus.ERROR
    except SystemExit as e:  # --help and --version
        return int(e.code or 0)
    except BrokenPipeError:
        return ExitStatus.OK
    except KeyboardInterrupt:
        err.write("interrupted\n")
        return 130


def main() -> None:
    """Console entry point."""
    sys.exit(run())
