"""The command line: parse, call the library, render, return an exit status. Nothing else.

Exit status: 0 every path delivered / every expectation met; 1 something not delivered or not met;
2 bad input or usage (a message on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from enum import IntEnum
from typing import TextIO

from podnet import __version__
from podnet.errors import PodnetError, Problem


class ExitStatus(IntEnum):
    OK = 0
    FAILED = 1
    ERROR = 2


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so usage errors are exit 2 with our message."""

    def error(self, message: str):
        raise PodnetError(Problem(message, path=self.prog, hint=f"see '{self.prog} --help'"))


TRACE_EXAMPLES = """examples:
  podnet trace default/frontend svc/backend:80         Pod to a Service through kube-proxy's DNAT
  podnet trace frontend backend:80                      bare names: a Pod (or its Deployment) to a Service
  podnet trace deploy/frontend default/web-0:8080       Deployment's first Pod to a Pod
  podnet trace node/node-1 svc/backend:http             from a node's host network namespace
  podnet trace ext/203.0.113.7@node-1 192.168.0.11:30080   an outside client hitting a node port
  podnet trace default/app localhost:9090               between two containers of one Pod, over lo
  podnet trace frontend svc/backend:80 -o json          SPEC section 3 JSON
"""


def _files(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--file", action="append", default=[], metavar="PATH", help="YAML file or directory (repeatable); default: the bundled demo")
    p.add_argument("-R", "--recursive", action="store_true", help="read directories recursively")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="podnet", description="Kubernetes container-networking emulator: trace packets hop by hop through a cluster's dataplane.")
    parser.add_argument("--version", action="version", version=f"podnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    t = sub.add_parser("trace", help="trace a connection from SRC to DST hop by hop", description="Trace the first packet of a connection from SRC to DST, and its reply, through every device, route, rule and NAT.", epilog=TRACE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("src", metavar="SRC", help="[NS/]POD, pod/[NS/]POD, deploy/[NS/]NAME, node/NODE, ext/IP@NODE")
    t.add_argument("dst", metavar="DST", help="[NS/]POD[:PORT], svc/[NS/]NAME[:PORT], node/NODE:PORT, IP:PORT, localhost:PORT, NAME.NS:PORT")
    _files(t)
    t.add_argument("-n", "--namespace", default="default", help="namespace for names without one (default: default)")
    t.add_argument("-p", "--port", type=int, help="destination port when DST has none")
    t.add_argument("--protocol", choices=["tcp", "udp", "sctp"], type=str.lower, help="protocol (default: the Service port's, else tcp)")
    t.add_argument("--sport", type=int, default=40000, help="client source port (default 40000)")
    t.add_argument("--seed", type=int, help="follow one of kube-proxy's random choices, drawn with this seed, instead of all")
    t.add_argument("-o", "--output", choices=["text", "json"], default="text")

    c = sub.add_parser("check", help="run a probe file: connections and what should happen to them", description="Run every probe of PROBES.yaml (SPEC section 4) and compare the outcome with its expectations. Exit 1 when one is not met.", epilog="examples:\n  podnet check probes.yaml -f cluster/\n  podnet check probes.yaml -f cluster.yaml -o json\n\na probe:\n  - {from: default/frontend, service: default/backend, port: 80, expect: allow}", formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("probes", metavar="PROBES.yaml")
    _files(c)
    c.add_argument("-o", "--output", choices=["text", "json"], default="text")

    s = sub.add_parser("iptables-save", help="print a node's iptables rules as iptables-save does", description="Print the rules of a node (every node without --node) in iptables-save format; iptables-restore loads it.", epilog="examples:\n  podnet iptables-save --node node-1\n  podnet iptables-save -f cluster/ --node node-2 | grep KUBE-SVC", formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--node", help="the node (default: every node, each after a '# node' comment)")
    _files(s)
    return parser


def _load(args):
    from podnet.api import load

    return load(*args.file, recursive=args.recursive)


def _cmd_trace(args, out: TextIO, err: TextIO) -> int:
    loaded = _load(args)
    _warn(loaded.warnings, err)
    trace = loaded.trace(args.src, args.dst, namespace=args.namespace, port=args.port, protocol=args.protocol, sport=args.sport, seed=args.seed)
    if args.output == "json":
        from podnet.render.trace_json import render_trace_json

        out.write(render_trace_json(trace))
    else:
        from podnet.render.trace_text import render_trace

        out.write(render_trace(trace))
    return ExitStatus.OK if trace.verdict == "delivered" else ExitStatus.FAILED


def _cmd_check(args, out: TextIO, err: TextIO) -> int:
    from podnet.analysis.check import run_check
    from podnet.analysis.probes import load_probes
    from podnet.render.check_out import render_check_json, render_check_text

    probes = load_probes(args.probes)
    loaded = _load(args)
    _warn(loaded.warnings, err)
    results = run_check(loaded, probes)
    out.write(render_check_json(results) if args.output == "json" else render_check_text(results))
    return ExitStatus.FAILED if any(r.ok is False for r in results) else ExitStatus.OK


def _cmd_iptables_save(args, out: TextIO, err: TextIO) -> int:
    loaded = _load(args)
    _warn(loaded.warnings, err)
    nodes = [n.name for n in loaded.cluster.nodes]
    if args.node is not None and args.node not in nodes:
        from podnet.errors import did_you_mean

        raise PodnetError(Problem(f"no node '{args.node}'", path="--node", hint=did_you_mean(args.node, nodes) or f"nodes: {', '.join(nodes)}"))
    for name in [args.node] if args.node else nodes:
        if not args.node:
            out.write(f"# node {name}\n")
        out.write(loaded.iptables_save(name))
    return ExitStatus.OK


def _warn(problems: Sequence[Problem], err: TextIO) -> None:
    for p in problems:
        err.write(p.render() + "\n")


COMMANDS = {"trace": _cmd_trace, "check": _cmd_check, "iptables-save": _cmd_iptables_save}


def run(argv: Sequence[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run one command; returns its exit status. Streams are injectable for in-process tests."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
        if not args.command:
            parser.print_help(out)
            return ExitStatus.ERROR
        return int(COMMANDS[args.command](args, out, err))
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
