"""The built network: every namespace, the wiring graph, and the indexes the trace engine uses.

A :class:`Network` is immutable in meaning. For speed at 5,000 nodes / 150,000 Pods, namespaces,
their lookup indexes and the graph are built on first use and remembered (``Network.netns`` is a
lazy mapping); as every value is derived deterministically from the cluster, laziness never shows
in any result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import TYPE_CHECKING, Any

from podnet.dataplane.bridge import FdbIndex, PeerFdbIndex, all_fdb
from podnet.dataplane.names import LOOPBACK_MAC
from podnet.dataplane.neigh import NeighIndex, PeerNeighIndex, all_neighbors
from podnet.dataplane.routing import PeerRouteIndex, RouteTable, all_routes
from podnet.model.base import FrozenDict
from podnet.model.cluster import Cluster, Node, Pod
from podnet.model.dataplane import Link, Netns, PeerEntries

if TYPE_CHECKING:
    import networkx

__all__ = ["Network", "NetnsMap", "UNDERLAY", "all_fdb", "all_neighbors", "all_routes"]

UNDERLAY = "underlay"  # graph node of the nodes' shared L2 segment


class NetnsMap(Mapping[str, Netns]):
    """Namespace name -> :class:`Netns`, built on first access and remembered.

    Iteration yields names in a fixed order (nodes in cluster order, then Pods in cluster order,
    then external clients in the order added); ``len`` and ``in`` cost nothing. Iterating
    ``values()`` builds every namespace: fine for small clusters, seconds at 5,000 nodes.
    """

    __slots__ = ("_base", "_known", "_build", "_memo", "_extra")

    def __init__(
        self,
        names: tuple[str, ...],
        build: Callable[[str], Netns],
        memo: dict[str, Netns] | None = None,
        extra: Mapping[str, Netns] | None = None,
        known: frozenset[str] | None = None,
    ):
        self._base = names
        self._known = known if known is not None else frozenset(names)
        self._build = build
        self._memo: dict[str, Netns] = memo if memo is not None else {}
        self._extra: dict[str, Netns] = {
            k: v for k, v in (extra or {}).items() if k not in self._known
        }

    def __getitem__(self, name: str) -> Netns:
        ns = self._extra.get(name)
        if ns is not None:
            return ns
        ns = self._memo.get(name)
        if ns is None:
            if name not in self._known:
                raise KeyError(name)
            ns = self._memo[name] = self._build(name)
        return ns

    def __contains__(self, name: object) -> bool:
        return name in self._known or name in self._extra

    def __iter__(self) -> Iterator[str]:
        yield from self._base
        yield from self._extra

    def __len__(self) -> int:
        return len(self._base) + len(self._extra)

    def names(self) -> tuple[str, ...]:
        return self._base + tuple(self._extra)

    def with_extra(self, netns: Netns) -> NetnsMap:
        """A map with ``netns`` added (or replaced, if added before), sharing this map's built
        namespaces; costs O(number of added namespaces), not O(cluster)."""
        extra = dict(self._extra)
        extra[netns.name] = netns
        return NetnsMap(self._base, self._build, self._memo, extra, self._known)


def _l2_members(link: Link) -> bool:
    """Whether ``link`` takes part in ARP on its segment: bridge ports answer nothing themselves
    (their bridge does), loopback and VXLAN devices (flannel: learning off, static neighbours)
    do no ARP at all."""
    return link.master is None and link.kind not in ("loopback", "vxlan")


@dataclass(frozen=True, eq=False)
class Network:
    """Every network namespace of the cluster, the wiring and lookup indexes.

    Fields: ``cluster``; ``netns`` (lazy name -> Netns map); ``underlay`` (the nodes' L2 segment
    prefix) and ``underlay_gateway`` (the segment's router address, which no emulated device
    owns: a packet sent there leaves the emulated network); ``peers`` (flannel's per-node entries
    shared by every node, None without nodes); ``pods_by_ip`` (pod-network Pods by IP; hostNetwork
    Pods share their node's IP and are not in it); ``node_by_ip``; ``externals`` (external client
    IP -> the node it enters at). ``graph`` is a property (built on first use).
    """

    cluster: Cluster
    netns: NetnsMap
    underlay: IPv4Network
    underlay_gateway: IPv4Address | None
    peers: PeerEntries | None
    pods_by_ip: FrozenDict
    node_by_ip: FrozenDict
    externals: FrozenDict = field(default_factory=FrozenDict)
    _owners: Mapping[IPv4Address, tuple[str, str]] = field(default_factory=dict, repr=False)
    _pod_netns: Mapping[str, str] = field(default_factory=dict, repr=False)
    _memo: dict[Any, Any] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ names and namespaces

    def netns_names(self) -> tuple[str, ...]:
        """Every namespace name, in the map's fixed order."""
        return self.netns.names()

    def get(self, name: str) -> Netns | None:
        """The namespace called ``name``, or None."""
        return self.netns.get(name)

    def pod_netns(self, pod_key: str) -> str | None:
        """The namespace a Pod (``ns/name``) lives in: its own, or its node's for hostNetwork."""
        return self._pod_netns.get(pod_key)

    def node_netns(self, node_name: str) -> str | None:
        """The host namespace of a node, or None for an unknown node."""
        name = f"node:{node_name}"
        return name if name in self.netns else None

    def owner_of(self, ip: IPv4Address) -> tuple[str, str] | None:
        """``(netns, link)`` holding address ``ip``. Loopback addresses (every namespace has
        127.0.0.1) are not indexed."""
        return self._owners.get(ip)

    def external_netns(self, ip: IPv4Address) -> str | None:
        """The namespace of the external client ``ip``, if one was added."""
        name = f"external:{ip}"
        return name if name in self.netns else None

    # ------------------------------------------------------------------ cached lookup indexes

    def _memoized(self, key: Any, make: Callable[[], Any]) -> Any:
        v = self._memo.get(key)
        if v is None:
            v = self._memo[key] = make()
        return v

    def _peer_index(self, kind: type) -> Any:
        if self.peers is None:
            return None
        return self._memoized(("peer", kind), lambda: kind(self.peers))

    def route_table(self, name: str) -> RouteTable:
        """The indexed route table of namespace ``name`` (built once)."""
        return self._memoized(
            ("rt", name),
            lambda: RouteTable.for_netns(self.netns[name], self._peer_index(PeerRouteIndex)),
        )

    def neigh_index(self, name: str) -> NeighIndex:
        """The neighbour index of namespace ``name`` (built once)."""
        return self._memoized(
            ("nb", name), lambda: NeighIndex(self.netns[name], self._peer_index(PeerNeighIndex))
        )

    def fdb_index(self, name: str) -> FdbIndex:
        """The FDB index of namespace ``name`` (built once)."""
        return self._memoized(
            ("fdb", name), lambda: FdbIndex(self.netns[name], self._peer_index(PeerFdbIndex))
        )

    # ------------------------------------------------------------------ layer 2

    def l2_domain(self, netns: str, link: str) -> tuple[str, ...] | None:
        """The broadcast domain ``(netns, link)`` is on, as a key equal for every device of the
        domain; None for devices that do no ARP (VXLAN).

        Derived from the same wiring the graph shows: a bridge and its ports form one domain,
        a veth joins its peer's domain, every ``ether`` device is on the one underlay segment,
        and each loopback is a domain of its own.
        """
        ns = self.netns[netns]
        lk = ns.link(link)
        if lk is None or lk.kind == "vxlan":
            return None
        if lk.kind == "loopback":
            return ("lo", netns)
        if lk.kind == "ether":
            return (UNDERLAY,)
        if lk.master is not None:
            return ("bridge", netns, lk.master)
        if lk.kind == "bridge":
            return ("bridge", netns, lk.name)
        if lk.kind == "veth" and lk.peer is not None:
            pns, plink = lk.peer
            peer = self.netns[pns].link(plink) if pns in self.netns else None
            if peer is not None and peer.master is not None:
                return ("bridge", pns, peer.master)
            return ("veth", *min((netns, link), lk.peer), *max((netns, link), lk.peer))
        return ("link", netns, link)

    def l2_resolve(self, netns: str, link: str, ip: IPv4Address) -> tuple[str, str, str] | None:
        """ARP: ``(netns, link, mac)`` of the device that answers a request for ``ip`` sent on
        ``(netns, link)``, or None (no answer: the neighbour is unreachable).

        Linux answers ARP for any of its local addresses on whichever interface the request came
        in (``arp_ignore=0``, the default flannel and kubeadm keep), so the answer names the
        owner namespace's device on this segment, which is not always the device holding ``ip``
        (a Pod asking for its node's flannel.1 address gets cni0's MAC). VXLAN devices do no ARP;
        a loopback device resolves only its namespace's own addresses.
        """
        ns = self.netns[netns]
        lk = ns.link(link)
        if lk is None or lk.kind == "vxlan":
            return None
        owner = self._owners.get(ip)
        if lk.kind == "loopback":
            own = any(ip in a.network for a in lk.addresses) or (
                owner is not None and owner[0] == netns
            )
            return (netns, link, lk.mac or LOOPBACK_MAC) if own else None
        if owner is None:
            return None
        domain = self.l2_domain(netns, link)
        ons_name, olink = owner
        ons = self.netns[ons_name]
        held = ons.link(olink)
        if held is not None and _l2_members(held) and self.l2_domain(ons_name, olink) == domain:
            return (ons_name, olink, held.mac)
        for cand in sorted(ons.links, key=lambda x: x.index):
            if _l2_members(cand) and self.l2_domain(ons_name, cand.name) == domain:
                return (ons_name, cand.name, cand.mac)
        return None

    # ------------------------------------------------------------------ the wiring graph

    @property
    def graph(self) -> networkx.MultiGraph:
        """The wiring as a networkx MultiGraph (built on first use; do not modify it).

        Graph nodes: ``"<netns>|<link>"`` with attributes ``netns``, ``link``, ``kind``, plus hub
        nodes ``"underlay"`` (the nodes' L2 segment) and ``"vxlan:<vni>"`` (flannel's overlay).
        Edges (attribute ``kind``): ``veth`` between veth peers, ``bridge-port`` between a port
        and its bridge, ``underlay`` between an ether device and the segment, ``vxlan`` (with
        ``vni``, ``port``) between a VXLAN device and its overlay hub. A hub, not a full mesh of
        tunnels: a mesh would be 12.5 million edges at 5,000 nodes, and the hub says the same
        thing (any VTEP of VNI 1 reaches any other).
        """
        return self._memoized("graph", self._build_graph)

    def _build_graph(self) -> networkx.MultiGraph:
        import networkx

        g = networkx.MultiGraph()
        g.add_node(UNDERLAY, netns=None, link=None, kind="segment")
        for name in self.netns:
            ns = self.netns[name]
            for lk in ns.links:
                me = f"{name}|{lk.name}"
                g.add_node(me, netns=name, link=lk.name, kind=lk.kind)
        for name in self.netns:
            ns = self.netns[name]
            for lk in ns.links:
                me = f"{name}|{lk.name}"
                if lk.kind == "veth" and lk.peer is not None:
                    other = f"{lk.peer[0]}|{lk.peer[1]}"
                    if me < other and g.has_node(other):
                        g.add_edge(me, other, kind="veth")
                if lk.master is not None:
                    g.add_edge(me, f"{name}|{lk.master}", kind="bridge-port")
                if lk.kind == "ether":
                    g.add_edge(me, UNDERLAY, kind="underlay")
                if lk.kind == "vxlan" and lk.vxlan is not None:
                    hub = f"vxlan:{lk.vxlan.vni}"
                    if not g.has_node(hub):
                        g.add_node(hub, netns=None, link=None, kind="vxlan-segment")
                    g.add_edge(me, hub, kind="vxlan", vni=lk.vxlan.vni, port=lk.vxlan.port)
        return g

    # ------------------------------------------------------------------ convenience

    def pod_by_ip(self, ip: IPv4Address) -> Pod | None:
        """The pod-network Pod with address ``ip``."""
        return self.pods_by_ip.get(ip)

    def node_by_address(self, ip: IPv4Address) -> Node | None:
        """The node whose InternalIP is ``ip``."""
        return self.node_by_ip.get(ip)
