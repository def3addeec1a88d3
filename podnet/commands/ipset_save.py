"""``podnet ipset-save``: a node's ipsets (the NetworkPolicy agent's) as ``ipset save`` prints
them."""

from __future__ import annotations

from podnet.commands import RAW, add_files, load, warn
from podnet.errors import PodnetError, Problem, did_you_mean

EXAMPLES = """examples:
  podnet ipset-save --node node-1 -f cluster/
  podnet ipset-save --node node-1 -f cluster/ | ipset restore -exist
"""


def add(sub) -> None:
    s = sub.add_parser(
        "ipset-save",
        help="print a node's ipsets as ipset save does",
        description="Print the ipsets of a node (every node without --node) in 'ipset save' format; 'ipset restore' loads it. The sets are the NetworkPolicy agent's (empty when the inputs hold no NetworkPolicy).",
        epilog=EXAMPLES,
        formatter_class=RAW,
    )
    s.add_argument("--node", help="the node (default: every node, each after a '# node' comment)")
    add_files(s)


def run(args, out, err) -> int:
    from podnet.render.ipset_save import render_ipsets

    loaded = load(args)
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
        out.write(render_ipsets(loaded.network.get(f"node:{name}").ipsets))
    return 0
