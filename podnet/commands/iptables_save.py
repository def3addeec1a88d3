"""``podnet iptables-save``: a node's rules as iptables-save prints them."""

from __future__ import annotations

from podnet.commands import RAW, add_files, each_node, load, warn

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
    for name in each_node(loaded, args.node, out):
        out.write(loaded.iptables_save(name, fmt=args.format))
    return 0
