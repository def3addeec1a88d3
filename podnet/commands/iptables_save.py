"""``podnet iptables-save``: a node's rules as iptables-save prints them."""

from __future__ import annotations

from podnet.commands import RAW, add_files, load, warn
from podnet.errors import PodnetError, Problem, did_you_mean

EXAMPLES = """examples:
  podnet iptables-save --node node-1
  podnet iptables-save -f cluster/ --node node-2 | grep KUBE-SVC
  podnet iptables-save --node node-1 | iptables-restore --test
  podnet iptables-save --node node-1 --format kernel     as iptables-save prints it back from the kernel
  podnet iptables-save --node node-1 --format kube-proxy in the order of kube-proxy's golden tests
"""


def add(sub) -> None:
    s = sub.add_parser(
        "iptables-save",
        help="print a node's iptables rules as iptables-save does",
        description="Print the rules of a node (every node without --node) in iptables-save format; iptables-restore loads it.",
        epilog=EXAMPLES,
        formatter_class=RAW,
    )
    s.add_argument("--node", help="the node (default: every node, each after a '# node' comment)")
    s.add_argument(
        "--format",
        choices=["restore", "kernel", "kube-proxy"],
        default="restore",
        help="restore: the rules as kube-proxy and flannel hand them to iptables-restore (default); kernel: as iptables-save prints them after the round trip through the kernel (addresses with /32, -p before -m); kube-proxy: sorted as kube-proxy's own golden tests compare them",
    )
    add_files(s)


def run(args, out, err) -> int:
    loaded = load(args, err)
    warn(loaded.warnings, err)
    nodes = [n.name for n in loaded.cluster.nodes]
    if args.node is not None and args.node not in nodes:
        raise PodnetError(
            Problem(
                f"no node '{args.node}'",
                path="--node",
                hint=did_you_mean(args.node, nodes) or f"nodes: {', '.join(nodes)}",
            )
        )
    for name in [args.node] if args.node else nodes:
        if not args.node:
            out.write(f"# node {name}\n")
        out.write(loaded.iptables_save(name, fmt=args.format))
    return 0
