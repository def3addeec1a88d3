"""A namespace as the Linux tools print it: ``ip addr``, ``ip link``, ``ip route``, ``ip neigh``,
``bridge fdb``, ``iptables-save`` and ``conntrack -L``.

Layouts follow iproute2 (ip/ipaddress.c ``print_linkinfo`` and ``print_addrinfo``): the link
line ``IDX: NAME[@ifPEER]: <FLAGS> mtu M qdisc Q [master BR] state S [mode DEFAULT] group default
[qlen N]``, then ``link/ether MAC brd ff:ff:ff:ff:ff:ff [link-netnsid K]``, then per address
``inet A/P [brd B] scope S LABEL`` and ``valid_lft forever preferred_lft forever``. podnet models
IPv4 only, so the ``inet6`` lines a real system also shows are absent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from podnet.dataplane.bridge import show_fdb
from podnet.dataplane.conntrack import ConntrackTable, render_table
from podnet.dataplane.neigh import show_neighbors
from podnet.dataplane.routing import show_routes
from podnet.model.dataplane import Link, Netns, netfilter_unused
from podnet.model.trace import Path

# conntrack-tools in Debian 12 / Ubuntu 24.04 (the summary line goes to stderr)
CONNTRACK_VERSION = "1.4.7"
_NEIGH = re.compile(r"^(\S+) dev (\S+) lladdr (\S+) REACHABLE$")


def _flags(link: Link) -> str:
    if link.kind == "loopback":
        return "<LOOPBACK,UP,LOWER_UP>"
    return "<BROADCAST,MULTICAST,UP,LOWER_UP>"


def _qdisc(link: Link) -> str:
    # virtual devices have no queue (IFF_NO_QUEUE); a NIC gets the default qdisc, fq_codel
    # on systemd distributions (net.core.default_qdisc)
    return "fq_codel" if link.kind == "ether" else "noqueue"


def _state(link: Link) -> str:
    # lo and VXLAN devices report no carrier state: operstate UNKNOWN
    return "UNKNOWN" if link.kind in ("loopback", "vxlan") else "UP"


def _qlen(netns: Netns, link: Link) -> int:
    """tx_queue_len: 1000 (ether_setup's default) except VXLAN devices (0) and a Pod's eth0,
    whose txqueuelen the CNI's netlink call sets to 0 (containernetworking/plugins
    pkg/ip/link_linux.go makeVethPair, vishvananda/netlink LinkAttrs.TxQLen)."""
    if link.kind == "vxlan" or (link.kind == "veth" and netns.kind == "pod"):
        return 0
    return 1000


def _name(network, link: Link) -> str:
    if link.kind == "veth" and link.peer is not None:
        peer_ns = network.get(link.peer[0]) if network is not None else None
        peer = peer_ns.link(link.peer[1]) if peer_ns is not None else None
        if peer is not None:
            return f"{link.name}@if{peer.index}"
    return link.name


def _netnsids(netns: Netns) -> dict[str, int]:
    """The ids a namespace gives its veths' peer namespaces: 0, 1, ... in the order the veths
    were created (the kernel allocates a netnsid on first use, net/core/net_namespace.c)."""
    ids: dict[str, int] = {}
    for lk in sorted(netns.links, key=lambda x: x.index):
        if lk.kind == "veth" and lk.peer is not None and lk.peer[0] not in ids:
            ids[lk.peer[0]] = len(ids)
    return ids


def _link_lines(network, netns: Netns, link: Link, ids: dict[str, int], mode: bool) -> list[str]:
    head = (
        f"{link.index}: {_name(network, link)}: {_flags(link)} mtu {link.mtu} qdisc {_qdisc(link)} "
    )
    if link.master:
        head += f"master {link.master} "
    head += f"state {_state(link)} "
    if mode:
        head += "mode DEFAULT "
    head += "group default "
    qlen = _qlen(netns, link)
    if qlen:
        head += f"qlen {qlen}"
    if link.kind == "loopback":
        l2 = f"    link/loopback {link.mac} brd 00:00:00:00:00:00"
    else:
        l2 = f"    link/ether {link.mac} brd ff:ff:ff:ff:ff:ff"
        if link.kind == "veth" and link.peer is not None:
            l2 += f" link-netnsid {ids.get(link.peer[0], 0)}"
    return [head, l2]


def ip_link(netns: Netns, network=None) -> str:
    """``ip link show`` of a namespace.

    >>> from podnet.model.dataplane import Link, Netns
    >>> print(ip_link(Netns("pod:x", "pod", "n", (Link("lo", "loopback", 1, "00:00:00:00:00:00", 65536),))), end="")
    1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000
        link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00
    """
    ids = _netnsids(netns)
    lines: list[str] = []
    for lk in sorted(netns.links, key=lambda x: x.index):
        lines += _link_lines(network, netns, lk, ids, mode=True)
    return "".join(line + "\n" for line in lines)


def ip_addr(netns: Netns, network=None) -> str:
    """``ip addr show`` of a namespace (``network`` names veth peers' interface indexes).

    >>> from ipaddress import IPv4Interface as I
    >>> from podnet.model.dataplane import Link, Netns
    >>> ns = Netns("pod:x", "pod", "n", (Link("lo", "loopback", 1, "00:00:00:00:00:00", 65536,
    ...            (I("127.0.0.1/8"),)),))
    >>> print(ip_addr(ns), end="")
    1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default qlen 1000
        link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00
        inet 127.0.0.1/8 scope host lo
           valid_lft forever preferred_lft forever
    """
    ids = _netnsids(netns)
    lines: list[str] = []
    for lk in sorted(netns.links, key=lambda x: x.index):
        lines += _link_lines(network, netns, lk, ids, mode=False)
        for a in lk.addresses:
            text = f"    inet {a.with_prefixlen}"
            # the kernel keeps no broadcast for /31 and /32, and lo's 127.0.0.1/8 has none
            if a.network.prefixlen < 31 and lk.kind != "loopback":
                text += f" brd {a.network.broadcast_address}"
            scope = "host" if a.ip.is_loopback else "global"
            lines.append(f"{text} scope {scope} {lk.name}")
            lines.append("       valid_lft forever preferred_lft forever")
    return "".join(line + "\n" for line in lines)


def ip_route(netns: Netns, table: str = "main") -> str:
    """``ip route show [table local|all]``."""
    return "".join(line + "\n" for line in show_routes(netns, table))


def learned_neighbors(netns: str, paths: Iterable[Path]) -> list[str]:
    """The ARP entries a trace left in ``netns``: every neighbour it resolved there, REACHABLE."""
    seen: dict[str, str] = {}
    for path in paths:
        for leg in (path.forward, path.reply):
            if leg is None:
                continue
            for hop in leg.hops:
                if hop.netns != netns:
                    continue
                for s in hop.steps:
                    if s.type == "neigh" and _NEIGH.match(s.text):
                        seen.setdefault(s.text.split(" ", 1)[0] + " " + s.text.split()[2], s.text)
    return [seen[k] for k in sorted(seen)]


def ip_neigh(netns: Netns, learned: Iterable[str] = ()) -> str:
    """``ip neigh show``: the permanent entries, then those a trace resolved."""
    lines = list(show_neighbors(netns))
    lines += [x for x in learned if x not in lines]
    return "".join(line + "\n" for line in lines)


def bridge_fdb(netns: Netns) -> str:
    """``bridge fdb show``."""
    return "".join(line + "\n" for line in show_fdb(netns))


def iptables_save(netns: Netns) -> str:
    """``iptables-save`` of the namespace's tables: nothing where nothing programs iptables (a
    Pod's namespace), which has no table loaded (iptables-save prints nothing there, with
    iptables-nft and -legacy alike; podnet.model.dataplane.netfilter_unused)."""
    from podnet.render.iptables_save import render_tables

    if not netns.tables or netfilter_unused(netns.tables):
        return ""
    return render_tables(netns.tables)


def conntrack_list(table: ConntrackTable | None) -> tuple[str, str]:
    """``conntrack -L``: the entries (stdout) and the summary line conntrack prints on stderr."""
    entries = table.entries if table is not None else ()
    summary = f"conntrack v{CONNTRACK_VERSION} (conntrack-tools): {len(entries)} flow entries have been shown.\n"
    return render_table(entries), summary


def resolve_netns(network, text: str, namespace: str = "default", resolver=None) -> str:
    """The namespace ``text`` names: ``NODE``, ``node/NODE``, ``NS/POD``, ``POD`` (in
    ``namespace``), ``pod/[NS/]POD``, or a workload's name for its first Pod (as ``trace``
    takes them); a hostNetwork Pod's namespace is its node's. Raises UsageError with the
    closest names when nothing matches.

    >>> from types import SimpleNamespace as S
    >>> net = S(node_netns=lambda n: "node:n1" if n == "n1" else None,
    ...         pod_netns=lambda k: "pod:default/web" if k == "default/web" else None)
    >>> resolve_netns(net, "n1"), resolve_netns(net, "web"), resolve_netns(net, "pod/default/web")
    ('node:n1', 'pod:default/web', 'pod:default/web')
    """
    from podnet.errors import Problem, UsageError, did_you_mean

    kind, _, rest = text.partition("/")
    if kind == "node" and rest:
        found = network.node_netns(rest)
        if found is None:
            names = [n.name for n in network.cluster.nodes]
            raise UsageError(
                Problem(
                    f"no node '{rest}'",
                    path="NODE-OR-POD",
                    hint=did_you_mean(rest, names) or f"nodes: {', '.join(names[:10])}",
                )
            )
        return found
    if kind == "pod" and rest:
        ns, _, name = rest.rpartition("/")
        ns = ns or namespace
    elif "/" in text:
        ns, _, name = text.rpartition("/")
    else:
        ns, name = namespace, text
        as_node = network.node_netns(text)
        as_pod = network.pod_netns(f"{ns}/{name}")
        if as_node and as_pod and as_node != as_pod:
            raise UsageError(
                Problem(
                    f"'{text}' is both a node and a Pod in namespace {ns}",
                    path="NODE-OR-POD",
                    hint=f"say node/{text} or pod/{ns}/{text}",
                )
            )
        if as_node:
            return as_node
    found = network.pod_netns(f"{ns}/{name}")
    if found is not None:
        return found
    if resolver is None:
        from podnet.trace.resolve import Resolver

        resolver = Resolver(network.cluster)
    try:
        pod = resolver.pod(ns, name, "NODE-OR-POD")  # a workload's first Pod, or a UsageError
    except UsageError as e:
        if "/" in text:
            raise
        from podnet.errors import closest

        nodes = closest(text, [n.name for n in network.cluster.nodes])
        pods = e.problems[0].hint or ""
        hint = (
            (
                "did you mean node "
                + " or ".join(f"'{n}'" for n in nodes)
                + "?"
                + (f" (Pods: {pods})" if pods.startswith("did") else "")
            )
            if nodes
            else pods
        )
        raise UsageError(
            Problem(f"no node or Pod '{text}'", path="NODE-OR-POD", hint=hint)
        ) from None
    return network.pod_netns(pod.key)
