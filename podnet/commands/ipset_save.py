"""``podnet ipset-save``: a node's ipsets (the NetworkPolicy agent's) as ``ipset save`` prints
them."""

from __future__ import annotations

from podnet.commands import RAW, add_files, each_node, load, warn

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
    for name in each_node(loaded, args.node, out):
        out.write(render_ipsets(loaded.network.get(f"node:{name}").ipsets))
    return 0
