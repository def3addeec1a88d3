"""``podnet verify [PROBES.yaml]``: realize the cluster and compare the kernel with the emulator."""

from __future__ import annotations

from podnet.commands import RAW, add_files, load, warn

EXAMPLES = """examples:
  sudo podnet verify                                   every Pod to every Pod and Service port of the demo
  sudo podnet verify probes.yaml -f cluster/           the probes of a probe file (SPEC section 4)
  sudo podnet verify -f cluster.yaml -v                every probe with both sides, traces of disagreements

Exit 1 when the kernel and podnet disagree on any probe, 2 when the network cannot be realized
here (not root, tools missing). The namespaces are removed afterwards, whatever happens.
"""


def add(sub) -> None:
    v = sub.add_parser(
        "verify",
        help="run probes against the real kernel and compare with the emulator (root)",
        description="Realize the cluster in network namespaces, run every probe for real (listeners in the destination Pods, clients in the sources) and report each probe where the kernel and podnet disagree.",
        epilog=EXAMPLES,
        formatter_class=RAW,
    )
    v.add_argument(
        "probes",
        nargs="?",
        metavar="PROBES.yaml",
        help="probe file (default: every Pod to every Pod and Service port)",
    )
    add_files(v)
    v.add_argument("--name", help="run name (default: verify-<pid>)")
    v.add_argument(
        "--tries", type=int, default=60, help="bound on tries of a load-balanced probe (default 60)"
    )
    v.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show agreeing probes too, and the trace of each disagreement",
    )
    v.add_argument("-o", "--output", choices=["text", "json"], default="text")


def run(args, out, err) -> int:
    from podnet.realize.report import render_verify_json, render_verify_text
    from podnet.realize.system import require
    from podnet.realize.verify import verify

    probes = None
    if args.probes:
        from podnet.analysis.probes import load_probes

        probes = load_probes(args.probes)
    loaded = load(args)
    warn(loaded.warnings, err)
    require()
    result = verify(loaded, probes, name=args.name, tries=max(1, args.tries))
    out.write(
        render_verify_json(result)
        if args.output == "json"
        else render_verify_text(result, verbose=args.verbose)
    )
    return 1 if result.disagreements else 0
