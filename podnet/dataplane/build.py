"""Build every network namespace of a cluster the way flannel, the bridge CNI plugin and the
kernel leave them.

Per node (``node:<node>``): ``lo``; ``eth0`` on the underlay; ``flannel.1`` (VXLAN backend);
``cni0`` and one ``veth`` per pod-network Pod; kernel routes for every address, flannel's routes
(and, under VXLAN, neighbour and FDB entries) to every other node; iptables from kube-proxy and
flannel. Per pod-network Pod (``pod:<ns>/<name>``): ``lo`` and ``eth0`` with the routes the
bridge plugin installs. hostNetwork Pods live in their node's namespace.

Namespaces are built on first access (see :class:`podnet.dataplane.network.NetnsMap`); what
``build_network`` does up front is O(nodes + Pods): indexes and flannel's shared entries.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from podnet.control.policy import node_ipsets
from podnet.dataplane import names
from podnet.dataplane.network import NetnsMap, Network
from podnet.model.base import FrozenDict
from podnet.model.cluster import Cluster, Node, Pod
from podnet.model.dataplane import (
    BUILTIN_CHAINS,
    Chain,
    FdbEntry,
    Link,
    Neighbor,
    Netns,
    PeerEntries,
    Route,
    Table,
    Vxlan,
)
from podnet.model.hostnet import host_network
from podnet.model.trace import fast_constructor

VXLAN_DEV = "flannel.1"  # flannel vxlan.go: fmt.Sprintf("flannel.%d", VNI) with defaultVNI 1
VXLAN_PORT = 8472  # Linux's default VXLAN port (flannel backends.md)
VXLAN_OVERHEAD = 50  # flannel vxlan.go encapOverhead: outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8
BRIDGE = "cni0"  # bridge plugin defaultBrName
UNDERLAY_MTU = 1500
LOOPBACK = IPv4Interface("127.0.0.1/8")
DEFAULT = IPv4Network("0.0.0.0/0")

NODE_SYSCTLS = FrozenDict(
    {
        # bridge plugin enables forwarding when it sets up the gateway (isGateway)
        "net.ipv4.ip_forward": 1,
        # kubeadm's prerequisite (br_netfilter): bridged IPv4 frames traverse iptables
        "net.bridge.bridge-nf-call-iptables": 1,
    }
)
POD_SYSCTLS = FrozenDict({"net.ipv4.ip_forward": 0})


def builtin_tables() -> tuple[Table, ...]:
    """raw, mangle, nat and filter with only their built-in chains, policy ACCEPT (a Pod's
    namespace: nothing programs iptables there)."""
    return tuple(
        Table(t, tuple(Chain(c, policy="ACCEPT") for c in chains))
        for t, chains in BUILTIN_CHAINS.items()
    )


_POD_TABLES = builtin_tables()


def _node_tables(cluster: Cluster, node: str) -> Sequence[Table]:
    """The node's iptables from podnet.control.iptables (kube-proxy, flannel and the policy
    agent's rules), written out in full only when read in full: a trace asks the node's
    Ruleset for the chains it enters (podnet.dataplane.lazy_ruleset)."""
    from podnet.control.iptables import NodeTables, node_rules

    return NodeTables(node_rules(cluster, node))


# ---------------------------------------------------------------------------------- addresses


def underlay_prefix(ips: Iterable[IPv4Address]) -> IPv4Network:
    """The nodes' L2 segment: /24 when all node IPs share one, else the smallest prefix that
    covers them all (192.168.0.0/24 without nodes).

    >>> underlay_prefix([IPv4Address("192.168.0.11"), IPv4Address("192.168.0.12")])
    IPv4Network('192.168.0.0/24')
    >>> underlay_prefix([IPv4Address("10.0.0.5"), IPv4Address("10.0.3.7")])
    IPv4Network('10.0.0.0/22')
    """
    ints = [int(ip) for ip in ips]
    if not ints:
        return IPv4Network("192.168.0.0/24")
    diff = 0
    for i in ints:
        diff |= i ^ ints[0]
    plen = min(24, 32 - diff.bit_length())
    return IPv4Network((ints[0], plen), strict=False)


def underlay_gateway(net: IPv4Network, taken: Iterable[IPv4Address]) -> IPv4Address | None:
    """The segment's router: its first host address that no node uses.

    >>> underlay_gateway(IPv4Network("192.168.0.0/24"), [IPv4Address("192.168.0.11")])
    IPv4Address('192.168.0.1')
    """
    used = set(taken)
    for ip in net.hosts():
        if ip not in used:
            return ip
    return None


def kernel_routes(dev: str, addr: IPv4Interface, loopback: bool = False) -> tuple[Route, ...]:
    """The routes the kernel adds for an address (net/ipv4/fib_frontend.c fib_add_ifaddr):
    ``local`` for the address; the prefix route (in main, or ``local`` type in table local on a
    loopback device) unless the address is a /32; ``broadcast`` for the prefix's last address
    when shorter than /31. Since Linux 5.14 the prefix's first address gets no broadcast route
    ("ip: Treat IPv4 segment's lowest address as unicast").

    >>> [r.text() for r in kernel_routes("cni0", IPv4Interface("10.244.1.1/24"))]  # doctest: +NORMALIZE_WHITESPACE
    ['local 10.244.1.1 dev cni0 table local proto kernel scope host src 10.244.1.1',
     '10.244.1.0/24 dev cni0 proto kernel scope link src 10.244.1.1',
     'broadcast 10.244.1.255 dev cni0 table local proto kernel scope link src 10.244.1.1']
    """
    ip, net = addr.ip, addr.network
    out = [
        Route(
            host_network(ip),
            dev,
            type="local",
            table="local",
            proto="kernel",
            scope="host",
            src=ip,
        )
    ]
    if not (net.prefixlen == 32 and net.network_address == ip):
        if loopback:
            out.append(
                Route(net, dev, type="local", table="local", proto="kernel", scope="host", src=ip)
            )
        else:
            out.append(Route(net, dev, proto="kernel", scope="link", src=ip))
        if net.prefixlen < 31:
            out.append(
                Route(
                    host_network(net.broadcast_address),
                    dev,
                    type="broadcast",
                    table="local",
                    proto="kernel",
                    scope="link",
                    src=ip,
                )
            )
    return tuple(out)


def _iface(ip: IPv4Address, prefixlen: int) -> IPv4Interface:
    return IPv4Interface((int(ip), prefixlen))


def _sorted_routes(routes: Iterable[Route]) -> tuple[Route, ...]:
    # main then local, each in the kernel's listing order (see routing.all_routes)
    rs = list(routes)
    key = lambda r: (int(r.dst.network_address), -r.dst.prefixlen)  # noqa: E731
    return tuple(
        sorted((r for r in rs if r.table == "main"), key=key)
        + sorted((r for r in rs if r.table == "local"), key=key)
    )


_LO = Link("lo", "loopback", 1, names.LOOPBACK_MAC, mtu=65536, addresses=(LOOPBACK,))
_new_link = fast_constructor(Link)
_new_fdb = fast_constructor(FdbEntry)


def _loopback() -> Link:
    return _LO  # identical in every namespace: one shared immutable value


def _link_routes(links: Iterable[Link]) -> list[Route]:
    out: list[Route] = []
    for lk in links:
        if lk is _LO:
            out += _LO_ROUTES
            continue
        for a in lk.addresses:
            out += kernel_routes(lk.name, a, loopback=lk.kind == "loopback")
    return out


_LO_ROUTES = kernel_routes("lo", LOOPBACK, loopback=True)


# ---------------------------------------------------------------------------------- flannel


def vtep_mac(node: str) -> str:
    """flannel.1's MAC on ``node`` (flannel lets the kernel pick one at random)."""
    return names.mac_from_seed(f"{names.node_netns(node)}|{VXLAN_DEV}")


def peer_entries(nodes: Iterable[Node], backend: str) -> PeerEntries:
    """What flannel installs on every node for each other node (vxlan_network.go handleSubnetEvents:
    neighbour, FDB entry, route, in that order; host-gw route_network.go: one route)."""
    owners: list[str] = []
    routes: list[tuple[Route, ...]] = []
    neighbors: list[tuple[Neighbor, ...]] = []
    fdb: list[tuple[FdbEntry, ...]] = []
    for n in nodes:
        owners.append(n.name)
        if backend == "host-gw":
            routes.append((Route(n.pod_cidr, "eth0", gateway=n.ip),))
            neighbors.append(())
            fdb.append(())
            continue
        gw = n.pod_cidr.network_address
        mac = vtep_mac(n.name)
        neighbors.append((Neighbor(gw, VXLAN_DEV, mac, "PERMANENT"),))
        fdb.append((FdbEntry(mac, VXLAN_DEV, dst=n.ip, self_=True, permanent=True),))
        routes.append((Route(n.pod_cidr, VXLAN_DEV, gateway=gw, onlink=True),))
    return PeerEntries(tuple(owners), tuple(routes), tuple(neighbors), tuple(fdb))


# ---------------------------------------------------------------------------------- builder


class _Builder:
    """Builds one namespace by name; holds the cluster-wide facts computed once."""

    def __init__(self, cluster: Cluster, underlay: IPv4Network, gateway: IPv4Address | None):
        self.cluster = cluster
        self.vxlan = cluster.config.backend != "host-gw"
        self.mtu = UNDERLAY_MTU - VXLAN_OVERHEAD if self.vxlan else UNDERLAY_MTU
        self.underlay = underlay
        self.gateway = gateway
        self.nodes = {n.name: n for n in cluster.nodes}
        self.pods: dict[str, Pod] = {}
        self.pods_by_node: dict[str, list[Pod]] = {n: [] for n in self.nodes}
        for p in cluster.pods:
            if not p.host_network and p.node in self.nodes and p.key not in self.pods:
                self.pods[p.key] = p
                self.pods_by_node[p.node].append(p)
        self.peers = peer_entries(cluster.nodes, cluster.config.backend) if self.nodes else None
        self._veths: dict[str, dict[str, str]] = {}

    def veths(self, node: str) -> dict[str, str]:
        """Pod key -> host veth name for the Pods of ``node``."""
        v = self._veths.get(node)
        if v is None:
            v = self._veths[node] = names.veth_names(node, (p.key for p in self.pods_by_node[node]))
        return v

    def __call__(self, name: str) -> Netns:
        kind, _, rest = name.partition(":")
        if kind == "node":
            return self.node(self.nodes[rest])
        if kind == "pod":
            return self.pod(self.pods[rest])
        raise KeyError(name)

    def node(self, node: Node) -> Netns:
        ns = names.node_netns(node.name)
        pods = self.pods_by_node[node.name]
        veths = self.veths(node.name)
        eth0 = Link(
            "eth0",
            "ether",
            2,
            names.mac_from_seed(f"{ns}|eth0"),
            mtu=UNDERLAY_MTU,
            addresses=(_iface(node.ip, self.underlay.prefixlen),),
        )
        links = [_loopback(), eth0]
        # Creation order gives the ifindex: flanneld (a DaemonSet) creates flannel.1 at start;
        # cni0 appears with the first pod-network Pod the bridge plugin sets up, then one veth per
        # Pod. A node without such Pods has no cni0 (the plugin never ran there).
        if self.vxlan:
            links.append(
                Link(
                    VXLAN_DEV,
                    "vxlan",
                    len(links) + 1,
                    vtep_mac(node.name),
                    mtu=self.mtu,
                    # flannel: a /32 "so that no broadcast routes are created"
                    addresses=(_iface(node.pod_cidr.network_address, 32),),
                    vxlan=Vxlan(vni=1, port=VXLAN_PORT, local=node.ip, dev="eth0", learning=False),
                )
            )
        fdb: list[FdbEntry] = []
        if pods:
            cni0_mac = names.mac_from_seed(f"{ns}|{BRIDGE}")
            links.append(
                Link(
                    BRIDGE,
                    "bridge",
                    len(links) + 1,
                    cni0_mac,
                    mtu=self.mtu,
                    addresses=(_iface(node.gateway, node.pod_cidr.prefixlen),),
                )
            )
            # The bridge's and each port's own MAC are permanent local entries. The bridge plugin
            # leaves VLAN filtering off, so the kernel lists them once, without "vlan 1" (seen by
            # `podnet verify` on a realized node: bridge fdb show).
            fdb.append(FdbEntry(cni0_mac, BRIDGE, master=BRIDGE, permanent=True))
            mtu = self.mtu
            for p in pods:  # (a node's Pods: records made without the frozen __init__)
                veth = veths[p.key]
                mac = names.mac_from_seed(f"{ns}|{veth}")
                links.append(
                    # name, kind, index, mac, mtu, addresses, master, peer, hairpin (flannel's
                    # delegate: hairpinMode true), vxlan
                    _new_link(
                        veth,
                        "veth",
                        len(links) + 1,
                        mac,
                        mtu,
                        (),
                        BRIDGE,
                        (names.pod_netns(p.key), "eth0"),
                        True,
                        None,
                    )
                )
                # mac, dev, master, dst, self_, permanent, vlan
                fdb.append(_new_fdb(names.pod_mac(p.ip), veth, BRIDGE, None, False, False, None))
                fdb.append(_new_fdb(mac, veth, BRIDGE, None, False, True, None))
        routes = _link_routes(links)
        if self.gateway is not None:
            routes.append(Route(DEFAULT, "eth0", gateway=self.gateway))
        return Netns(
            name=ns,
            kind="node",
            node=node.name,
            links=tuple(links),
            routes=_sorted_routes(routes),
            fdb=tuple(fdb),
            tables=_node_tables(self.cluster, node.name),
            sysctls=NODE_SYSCTLS,
            peers=self.peers,
            ipsets=node_ipsets(self.cluster, node.name),
        )

    def pod(self, pod: Pod) -> Netns:
        node = self.nodes[pod.node]
        gw = node.gateway
        eth0 = Link(
            "eth0",
            "veth",
            2,
            names.pod_mac(pod.ip),
            mtu=self.mtu,
            addresses=(_iface(pod.ip, node.pod_cidr.prefixlen),),
            peer=(names.node_netns(node.name), self.veths(node.name)[pod.key]),
        )
        links = (_loopback(), eth0)
        routes = _link_routes(links)
        # bridge plugin with isDefaultGateway: default via the gateway; flannel CNI's IPAM route
        # to the cluster network (Network) via the gateway too (reference 2.5).
        routes += [
            Route(DEFAULT, "eth0", gateway=gw),
            Route(self.cluster.config.cluster_cidr, "eth0", gateway=gw),
        ]
        return Netns(
            name=names.pod_netns(pod.key),
            kind="pod",
            node=node.name,
            links=links,
            routes=_sorted_routes(routes),
            tables=_POD_TABLES,
            sysctls=POD_SYSCTLS,
        )


def build_network(cluster: Cluster) -> Network:
    """The dataplane of ``cluster``: every namespace (built lazily), indexes and the wiring.

    A default route ``default via <underlay gateway> dev eth0`` is on every node: real nodes
    have one (kubelet picks its node IP from the default route's interface), traffic to the
    outside world needs it, and replies to external clients follow it.
    """
    ips = [n.ip for n in cluster.nodes]
    underlay = underlay_prefix(ips)
    b = _Builder(cluster, underlay, underlay_gateway(underlay, ips))
    owners: dict[IPv4Address, tuple[str, str]] = {}
    pod_netns: dict[str, str] = {}
    for n in cluster.nodes:
        ns = names.node_netns(n.name)
        owners.setdefault(n.ip, (ns, "eth0"))
        if b.vxlan:
            owners.setdefault(n.pod_cidr.network_address, (ns, VXLAN_DEV))
        if b.pods_by_node[n.name]:
            owners.setdefault(n.gateway, (ns, BRIDGE))
    for p in cluster.pods:
        if p.host_network:
            if p.node in b.nodes:
                pod_netns.setdefault(p.key, names.node_netns(p.node))
        elif b.pods.get(p.key) is p:
            pod_netns[p.key] = names.pod_netns(p.key)
            owners.setdefault(p.ip, (names.pod_netns(p.key), "eth0"))
    netns_names = tuple(names.node_netns(n) for n in b.nodes) + tuple(
        names.pod_netns(k) for k in b.pods
    )
    return Network(
        cluster=cluster,
        netns=NetnsMap(netns_names, b),
        underlay=underlay,
        underlay_gateway=b.gateway,
        peers=b.peers,
        pods_by_ip=FrozenDict({p.ip: p for p in b.pods.values()}),
        node_by_ip=FrozenDict({n.ip: n for n in cluster.nodes}),
        _owners=owners,
        _pod_netns=pod_netns,
    )


def external_client(ip: IPv4Address, node: Node) -> Netns:
    """The namespace of a client outside the cluster whose packets enter at ``node``: ``eth0`` on
    the underlay with ``ip/32`` and ``default via <node ip> dev eth0 onlink``."""
    name = names.external_netns(ip)
    eth0 = Link(
        "eth0",
        "ether",
        2,
        names.mac_from_seed(f"{name}|eth0"),
        mtu=UNDERLAY_MTU,
        addresses=(_iface(ip, 32),),
    )
    links = (_loopback(), eth0)
    routes = _link_routes(links) + [Route(DEFAULT, "eth0", gateway=node.ip, onlink=True)]
    return Netns(
        name=name,
        kind="external",
        node=None,
        links=links,
        routes=_sorted_routes(routes),
        tables=_POD_TABLES,
        sysctls=POD_SYSCTLS,
    )


def with_external_client(network: Network, ip: IPv4Address, node: str) -> Network:
    """``network`` plus an external client ``ip`` entering at ``node`` (namespace
    ``external:<ip>``). Costs O(1) in the cluster's size: every other namespace and index is
    shared with ``network``; only the graph (if asked for) is rebuilt.

    The nodes reach the client through their default route (the underlay gateway, which no
    emulated device owns): the trace engine hands a packet sent there for ``ip`` to the client
    (``Network.external_netns``). Raises KeyError for an unknown node, ValueError when ``ip``
    is already a cluster address.
    """
    n = network.cluster.node(node)
    if n is None:
        raise KeyError(node)
    held = network.owner_of(ip)
    if held is not None and not held[0].startswith("external:"):
        raise ValueError(f"{ip} is already an address of {held[0]} {held[1]}")
    ns = external_client(ip, n)
    externals = dict(network.externals)
    externals[ip] = node
    return Network(
        cluster=network.cluster,
        netns=network.netns.with_extra(ns),
        underlay=network.underlay,
        underlay_gateway=network.underlay_gateway,
        peers=network.peers,
        pods_by_ip=network.pods_by_ip,
        node_by_ip=network.node_by_ip,
        externals=FrozenDict(externals),
        # a layer over the shared address index instead of a copy of it
        _owners=ChainMap({ip: (ns.name, "eth0")}, network._owners),
        _pod_netns=network._pod_netns,
        # route tables and other indexes of the shared namespaces stay valid; the graph does not
        _memo={k: v for k, v in network._memo.items() if k != "graph"},
    )
