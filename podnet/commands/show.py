"""``podnet show WHAT NODE-OR-POD``: a namespace as ``ip``, ``bridge``, ``iptables-save`` and
``conntrack`` print it."""

from __future__ import annotations

from podnet.commands import RAW, add_files, load, warn

VIEWS = ("routes", "neigh", "fdb", "addr", "links", "iptables", "conntrack")

EXAMPLES = """examples:
  podnet show routes node-1                   ip route (main table) of node-1
  podnet show routes node-1 --table local     ip route show table local
  podnet show addr default/backend-...        ip addr inside a Pod
  podnet show links node/node-2               ip link
  podnet show neigh node-1                    ip neigh (flannel's permanent entries)
  podnet show fdb node-1                      bridge fdb: cni0's ports and flannel.1's VTEPs
  podnet show iptables node-1                 iptables-save
  podnet show conntrack node-1 --after-trace frontend svc/backend:80
                                              conntrack -L after a connection (first path)
"""


def add(sub) -> None:
    s = sub.add_parser(
        "show",
        help="print a node's or Pod's routes, neighbours, FDB, addresses, links, rules or conntrack as Linux tools do",
        description="Print one view of a node's or Pod's network namespace in the format of the Linux tool that shows it: routes (ip route), neigh (ip neigh), fdb (bridge fdb), addr (ip addr), links (ip link), iptables (iptables-save), conntrack (conntrack -L).",
        epilog=EXAMPLES,
        formatter_class=RAW,
    )
    s.add_argument("view", metavar="WHAT", choices=VIEWS, help=" | ".join(VIEWS))
    s.add_argument(
        "target", metavar="NODE-OR-POD", help="NODE, node/NODE, NS/POD, POD (in -n), pod/NS/POD"
    )
    add_files(s)
    s.add_argument(
        "-n",
        "--namespace",
        default="default",
        help="namespace for Pod names without one (default: default)",
    )
    s.add_argument(
        "--table",
        choices=["main", "local", "all"],
        default="main",
        help="routes: the table to list (default main)",
    )
    s.add_argument(
        "--after-trace",
        nargs=2,
        metavar=("SRC", "DST"),
        help="first run this trace: conntrack shows its connections, neigh the neighbours it resolved",
    )
    s.add_argument(
        "-p", "--port", type=int, help="--after-trace: destination port when DST has none"
    )
    s.add_argument(
        "--protocol", choices=["tcp", "udp", "sctp"], type=str.lower, help="--after-trace: protocol"
    )


def run(args, out, err) -> int:
    from podnet.render import linux_views as lv

    loaded = load(args, err)
    warn(loaded.warnings, err)
    network = loaded.network
    name = lv.resolve_netns(network, args.target, args.namespace, loaded.resolver())
    netns = network.get(name)
    paths = ()
    if args.after_trace:
        src, dst = args.after_trace
        trace = loaded.trace(
            src, dst, namespace=args.namespace, port=args.port, protocol=args.protocol
        )
        paths = trace.paths[:1]
    if args.view == "routes":
        out.write(lv.ip_route(netns, args.table))
    elif args.view == "neigh":
        out.write(lv.ip_neigh(netns, lv.learned_neighbors(name, paths)))
    elif args.view == "fdb":
        out.write(lv.bridge_fdb(netns))
    elif args.view == "addr":
        out.write(lv.ip_addr(netns, network))
    elif args.view == "links":
        out.write(lv.ip_link(netns, network))
    elif args.view == "iptables":
        out.write(lv.iptables_save(netns))
    else:
        table = paths[0].conntrack.get(name) if paths else None
        text, summary = lv.conntrack_list(table)
        out.write(text)
        err.write(summary)
    return 0
