"""``podnet shell``: load a cluster once, then answer command after command.

At 5,000 nodes a cluster takes seconds to load and its first question builds the cluster-wide
rule state; every ``podnet`` command pays both again. The shell pays them once: each line is a
podnet command (``trace frontend svc/backend:80``, ``show routes node-1``, ``check probes.yaml``)
answered as ``podnet`` would answer it, byte for byte, over the cluster the shell loaded.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
import time
from typing import TextIO

from podnet.commands import LOADED, RAW, add_files
from podnet.errors import PodnetError, Problem

EXAMPLES = """examples:
  podnet shell -f cluster.yaml             a prompt; type a command per line, 'help', 'exit'
  podnet shell -f cluster.yaml questions.txt   the commands of a file, one per line
  printf 'trace frontend svc/backend:80\\nshow routes node-1\\n' | podnet shell

Each line is a podnet command without 'podnet' in front; -f is the shell's files unless the
line names others (a cluster loaded once stays loaded). '#' starts a comment. The exit status
is the worst of the commands': 0 all passed, 1 something not delivered or not met, 2 a line
that could not run.
"""

PROMPT = "podnet> "
QUIT = ("exit", "quit")


def add(sub) -> None:
    p = sub.add_parser(
        "shell",
        help="load a cluster once and answer commands line by line",
        description="Load the cluster once, then read podnet commands, one per line, from SCRIPT or standard input (a prompt when it is a terminal), and answer each over the loaded cluster.",
        epilog=EXAMPLES,
        formatter_class=RAW,
    )
    p.add_argument(
        "script", nargs="?", metavar="SCRIPT", help="a file of commands (default: stdin)"
    )
    add_files(p)
    p.add_argument(
        "--echo",
        action="store_true",
        help="write each command, after the prompt, before its output",
    )
    p.add_argument(
        "--time", action="store_true", help="write each command's time on stderr after its output"
    )


def run(args, out: TextIO, err: TextIO) -> int:
    from podnet.commands import load

    if args.script is not None:
        try:
            source: TextIO = open(args.script, encoding="utf-8")  # noqa: SIM115 (closed below)
        except OSError as e:
            raise PodnetError(
                Problem(f"cannot read {args.script}: {e.strerror}", path="SCRIPT")
            ) from None
    else:
        source = sys.stdin
    interactive = args.script is None and source.isatty()
    token = LOADED.set({})
    try:
        load(args, err)  # once, before the first command (warnings then, not at every command)
        if interactive:
            err.write("podnet shell: a podnet command per line; 'help' lists them, 'exit' ends\n")
        return _loop(args, source, out, err, interactive)
    finally:
        LOADED.reset(token)
        if source is not sys.stdin:
            source.close()


def _lines(source: TextIO, err: TextIO, interactive: bool):
    """The lines of ``source`` with their numbers; at a terminal, read after a prompt (with
    line editing, when readline is there)."""
    if not interactive:
        yield from enumerate(source, 1)
        return
    with contextlib.suppress(ImportError):  # not on every platform
        import readline  # noqa: F401 (input() edits lines and keeps history once imported)
    number = 0
    while True:
        number += 1
        err.flush()
        try:
            yield number, input(PROMPT)
        except EOFError:
            err.write("\n")
            return
        except KeyboardInterrupt:  # Ctrl-C at the prompt drops the line typed, as sh does
            err.write("\n")


def _loop(args, source: TextIO, out: TextIO, err: TextIO, interactive: bool) -> int:
    from podnet.cli import dispatch, guarded

    worst = 0
    where = args.script or "<stdin>"
    for number, line in _lines(source, err, interactive):
        try:
            words = shlex.split(line, comments=True)
        except ValueError as e:  # an unclosed quote
            worst = _refuse(
                err, str(e), f"{where}:{number}", "close the quote, or escape it with \\"
            )
            continue
        if not words:
            continue
        if words[0] in QUIT:
            break
        if words[0] == "help":
            words = [*words[1:], "--help"]
        if words[0] == "shell":
            worst = _refuse(
                err, "already in a shell", f"{where}:{number}", "type the command itself"
            )
            continue
        if args.echo:
            out.write(PROMPT + shlex.join(words) + "\n")
        started = time.perf_counter()
        status = guarded(lambda w=words: dispatch(w, out, err, _prepare(args)), err)
        if status == 2 and not interactive:  # which line of the script it was
            err.write(f"  at {where}:{number}: {shlex.join(words)}\n")
        if args.time:
            err.write(f"({time.perf_counter() - started:.3f} s)\n")
        out.flush()
        worst = max(worst, status if status in (0, 1, 2) else 2)  # (130: interrupted)
    return worst


def _refuse(err: TextIO, message: str, where: str, hint: str) -> int:
    """A line that cannot run: its problem on ``err``; the status it counts as (2)."""
    err.write(Problem(message, path=where, hint=hint).render() + "\n")
    return 2


def _prepare(shell_args):
    """Fill in the shell's files for a command that reads a cluster and names none itself."""

    def prepare(args) -> None:
        if getattr(args, "file", None) == []:
            args.file = list(shell_args.file)
            args.recursive = args.recursive or shell_args.recursive

    return prepare
