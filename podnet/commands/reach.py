"""``podnet reach``: the reachability matrix of a set of Pods, NetworkPolicy included."""

from __future__ import annotations

from podnet.commands import RAW, add_files, load, warn

EXAMPLES = """examples:
  podnet reach -f cluster/                          every Pod to every Pod, each on its first port
  podnet reach -f cluster/ --from x/ --to y/ -p 80  namespace x to namespace y on TCP 80
  podnet reach -f cluster/ --from app=web,tier!=db --to prod/app=db -p 5432
  podnet reach -f cluster/ --via-service -p 80      through each destination Pod's Service
  podnet reach -f cluster/ -o json                  matrix and denied cells as JSON

Selectors: [NS/]k=v,k!=v,k,!k (empty: all Pods). Cells: '.' allowed, 'X' denied,
'~' some paths only, '?' no Service selects the Pod, '-' self (not probed).
Without -p, each destination Pod is probed on its first declared container port.
"""


def add(sub) -> None:
    r = sub.add_parser(
        "reach",
        help="reachability matrix of Pods (NetworkPolicy included)",
        description="Trace a connection from every selected source Pod to every selected destination Pod and print who reaches whom, as a truth table. Pods alike (namespace, labels, ports, ipBlocks) are traced once per pair of classes.",
        epilog=EXAMPLES,
        formatter_class=RAW,
    )
    add_files(r)
    r.add_argument(
        "--from", dest="src", metavar="SEL", help="source Pods: [NS/]LABELS (default: all)"
    )
    r.add_argument(
        "--to", dest="dst", metavar="SEL", help="destination Pods: [NS/]LABELS (default: all)"
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
    r.add_argument("-o", "--output", choices=["text", "json"], default="text")


def run(args, out, err) -> int:
    from podnet.analysis.reach import compute_reach, parse_selector

    src, dst = parse_selector(args.src), parse_selector(args.dst)
    loaded = load(args)
    warn(loaded.warnings, err)
    r = compute_reach(
        loaded, src, dst, port=args.port, protocol=args.protocol, via_service=args.via_service
    )
    if args.output == "json":
        from podnet.render.reach_json import render_reach_json

        out.write(render_reach_json(r))
    else:
        from podnet.render.reach_text import render_reach

        out.write(render_reach(r))
    return 0
