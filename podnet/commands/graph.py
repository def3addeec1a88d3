"""``podnet graph -o FILE``: a picture of the cluster, with a traced path drawn on it."""

from __future__ import annotations

from podnet.commands import RAW, add_files, load, warn

EXAMPLES = """examples:
  podnet graph -o cluster.svg                                  the demo's nodes, Pods, bridges, tunnels
  podnet graph --trace frontend svc/backend:80 -o trace.png    and the traced paths, hop by hop
  podnet graph -f cluster/ --trace default/a default/b:8080 -o t.svg
  podnet graph -o cluster.dot                                  the Graphviz DOT text itself
"""


def add(sub) -> None:
    g = sub.add_parser(
        "graph",
        help="draw the cluster (and a traced path) as SVG or PNG",
        description="Draw the cluster: each node with its Pods, veths, cni0, flannel.1 and eth0, the underlay and the VXLAN overlay; with --trace, every path of the trace in its own colour, each edge numbered with the hop it leads to as in `podnet trace`. Needs Graphviz's `dot` for SVG/PNG/PDF.",
        epilog=EXAMPLES,
        formatter_class=RAW,
    )
    add_files(g)
    g.add_argument("--trace", nargs=2, metavar=("SRC", "DST"), help="draw the paths of this trace")
    g.add_argument(
        "-n",
        "--namespace",
        default="default",
        help="namespace for names without one (default: default)",
    )
    g.add_argument("-p", "--port", type=int, help="--trace: destination port when DST has none")
    g.add_argument(
        "--protocol", choices=["tcp", "udp", "sctp"], type=str.lower, help="--trace: protocol"
    )
    g.add_argument("--seed", type=int, help="--trace: draw one of kube-proxy's random choices only")
    g.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FILE",
        help="FILE.svg, FILE.png, FILE.pdf or FILE.dot",
    )


def run(args, out, err) -> int:
    from podnet.render.graph import cluster_dot, render

    loaded = load(args, err)
    warn(loaded.warnings, err)
    trace = None
    if args.trace:
        src, dst = args.trace
        trace = loaded.trace(
            src,
            dst,
            namespace=args.namespace,
            port=args.port,
            protocol=args.protocol,
            seed=args.seed,
        )
    render(cluster_dot(loaded.network, trace), args.output)
    return 0
