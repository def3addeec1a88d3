"""``podnet reach``: the reachability matrix of a set of Pods, NetworkPolicy included."""

from __future__ import annotations

from podnet.commands import RAW, add_files, load, warn

EXAMPLES = """examples:
  podnet reach -f cluster/                          every Pod to every Pod, each on its first port
  podnet reach -f cluster/ --from x/ --to y/ -p 80  namespace x to namespace y on TCP 80
  podnet reach -f cluster/ --from app=web,tier!=db --to prod/app=db -p 5432
  podnet reach -f cluster/ --via-service -p 80      through each destination Pod's Service
  podnet reach -f cluster/ -o json                  matrix and denied cells as JSON
  podnet reach -f big/ --classes --members          the classes of Pods, every member listed
  podnet reach -f big/ --from pod/ns/a --to pod/ns/b  one pair, traced

Selectors: [NS/]k=v,k!=v,k,!k (empty: all Pods), or one Pod: pod/[NS/]NAME.
Cells: '.' allowed, 'X' denied, '~' some paths only, '?' no Service selects the Pod,
'-' self (not probed).
Without -p, each destination Pod is probed on its first declared container port.
Pods the network cannot tell apart form classes; verdicts are computed per pair of
classes (traced, or for many classes by evaluating the policy agent's rules, with a
sample traced as a check). Above 40,000 cells the output shows the classes.
"""


def add(sub) -> None:
    r = sub.add_parser(
        "reach",
        help="reachability matrix of Pods (NetworkPolicy included)",
        description="Trace a connection from every selected source Pod to every selected destination Pod and print who reaches whom, as a truth table. Pods the network cannot tell apart are computed once per pair of classes.",
        epilog=EXAMPLES,
        formatter_class=RAW,
    )
    add_files(r)
    r.add_argument(
        "--from",
        dest="src",
        metavar="SEL",
        help="source Pods: [NS/]LABELS or pod/[NS/]NAME (default: all)",
    )
    r.add_argument(
        "--to",
        dest="dst",
        metavar="SEL",
        help="destination Pods: [NS/]LABELS or pod/[NS/]NAME (default: all)",
    )
    r.add_argument(
        "-p",
        "--port",
        type=int,
        help="destination port (default: each destination Pod's first container port)",
    )
    r.add_argument(
        "--protocol",
        choices=["tcp", "udp", "sctp"],
        type=str.lower,
        help="protocol (default: tcp, or the first port's own)",
    )
    r.add_argument(
        "--via-service",
        action="store_true",
        help="dial the ClusterIP of a Service selecting the destination Pod",
    )
    r.add_argument("--classes", action="store_true", help="show the classes even for a small table")
    r.add_argument("--members", action="store_true", help="list every member of each class")
    r.add_argument(
        "--sample",
        type=int,
        default=32,
        metavar="N",
        help="class pairs traced to check the policy evaluation (default: 32)",
    )
    r.add_argument("-o", "--output", choices=["text", "json"], default="text")


def run(args, out, err) -> int:
    from podnet.analysis.reach import compute_reach, parse_selector

    src, dst = parse_selector(args.src), parse_selector(args.dst)
    loaded = load(args, err)
    warn(loaded.warnings, err)
    from podnet.render.progress import Progress

    progress = Progress(err)
    try:
        r = compute_reach(loaded, src, dst, port=args.port, protocol=args.protocol,
                          via_service=args.via_service, sample=max(0, args.sample),
                          progress=progress)  # fmt: skip
    finally:
        progress.finish()
    from podnet.errors import Problem

    warn([Problem(f"class pair {a} -> {b}: the policy evaluation says {e}, the trace says {t}",
                  severity="warning", hint="the traced verdict is shown; check a pair with "
                  "--from pod/NS/NAME --to pod/NS/NAME") for a, b, e, t in r.disagreements], err)  # fmt: skip
    if args.output == "json":
        from podnet.render.reach_json import render_reach_json

        out.write(render_reach_json(r, args.classes, args.members))
    else:
        from podnet.render.reach_text import render_reach

        out.write(render_reach(r, args.classes, args.members))
    return 0
