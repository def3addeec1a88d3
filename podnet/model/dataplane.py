"""Network namespaces as Linux holds them: links, addresses, routes, neighbours, FDB entries,
iptables tables and sysctls. Texts are rendered the way iproute2 and iptables-save print them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from podnet.model.base import EMPTY, FrozenDict


@dataclass(frozen=True, slots=True)
class Vxlan:
    """A VXLAN link's attributes (``ip -d link show flannel.1``)."""

    vni: int = 1
    port: int = 8472
    local: IPv4Address | None = None
    dev: str = "eth0"
    learning: bool = False


@dataclass(frozen=True, slots=True)
class Link:
    """A network device in one namespace.

    ``kind`` is ``loopback``, ``veth``, ``bridge``, ``vxlan`` or ``ether`` (a node's underlay NIC).
    ``master`` names the bridge a port is enslaved to; ``peer`` is ``(netns, link)`` of a veth's
    other end.
    """

    name: str
    kind: str
    index: int
    mac: str
    mtu: int = 1500
    addresses: tuple[IPv4Interface, ...] = ()
    master: str | None = None
    peer: tuple[str, str] | None = None
    hairpin: bool = False
    vxlan: Vxlan | None = None


@dataclass(frozen=True, slots=True)
class Route:
    """One route of the ``main`` or ``local`` table.

    >>> Route(IPv4Network("10.244.2.0/24"), "flannel.1", gateway=IPv4Address("10.244.2.0"),
    ...       onlink=True).text()
    '10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink'
    >>> Route(IPv4Network("10.244.1.0/24"), "cni0", proto="kernel", scope="link",
    ...       src=IPv4Address("10.244.1.1")).text()
    '10.244.1.0/24 dev cni0 proto kernel scope link src 10.244.1.1'
    """

    dst: IPv4Network
    dev: str
    gateway: IPv4Address | None = None
    type: str = "unicast"  # unicast | local | broadcast | blackhole | unreachable
    table: str = "main"  # main | local
    proto: str | None = None  # None: boot (not printed)
    scope: str | None = None  # None: global (not printed)
    src: IPv4Address | None = None
    onlink: bool = False
    metric: int | None = None

    def text(self, with_table: bool = True) -> str:
        """The route as ``ip route show table all`` prints it.

        ``with_table=False`` leaves out ``table <name>``, as ``ip route show table <name>`` does
        (iproute2 ip/iproute.c print_route prints the table only when no table filter is set).

        >>> r = Route(IPv4Network("10.244.1.1/32"), "cni0", type="local", table="local",
        ...           proto="kernel", scope="host", src=IPv4Address("10.244.1.1"))
        >>> r.text()
        'local 10.244.1.1 dev cni0 table local proto kernel scope host src 10.244.1.1'
        >>> r.text(with_table=False)
        'local 10.244.1.1 dev cni0 proto kernel scope host src 10.244.1.1'
        """
        if self.dst.prefixlen == 0:
            dst = "default"
        elif self.dst.prefixlen == 32:
            dst = str(self.dst.network_address)
        else:
            dst = str(self.dst)
        parts = [dst] if self.type == "unicast" else [self.type, dst]
        if self.gateway is not None:
            parts += ["via", str(self.gateway)]
        parts += ["dev", self.dev]
        if self.table != "main" and with_table:
            parts += ["table", self.table]
        if self.proto:
            parts += ["proto", self.proto]
        if self.scope:
            parts += ["scope", self.scope]
        if self.src is not None:
            parts += ["src", str(self.src)]
        if self.metric is not None:
            parts += ["metric", str(self.metric)]
        if self.onlink:
            parts.append("onlink")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Neighbor:
    """An ARP entry (``ip neigh``).

    >>> Neighbor(IPv4Address("10.244.2.0"), "flannel.1", "5a:1f:00:00:00:02").text()
    '10.244.2.0 dev flannel.1 lladdr 5a:1f:00:00:00:02 PERMANENT'
    """

    ip: IPv4Address
    dev: str
    mac: str
    state: str = "PERMANENT"

    def text(self) -> str:
        return f"{self.ip} dev {self.dev} lladdr {self.mac} {self.state}"


@dataclass(frozen=True, slots=True)
class FdbEntry:
    """A forwarding-database entry (``bridge fdb``): a bridge port's MAC, or a VXLAN remote.

    >>> FdbEntry("5a:1f:00:00:00:02", "flannel.1", dst=IPv4Address("192.168.0.12"),
    ...          self_=True, permanent=True).text()
    '5a:1f:00:00:00:02 dev flannel.1 dst 192.168.0.12 self permanent'
    """

    mac: str
    dev: str
    master: str | None = None
    dst: IPv4Address | None = None
    self_: bool = False
    permanent: bool = False
    vlan: int | None = None

    def text(self) -> str:
        parts = [self.mac, "dev", self.dev]
        if self.dst is not None:
            parts += ["dst", str(self.dst)]
        if self.vlan is not None:
            parts += ["vlan", str(self.vlan)]
        if self.master:
            parts += ["master", self.master]
        if self.self_:
            parts.append("self")
        if self.permanent:
            parts.append("permanent")
        return " ".join(parts)


BUILTIN_CHAINS = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
}


@dataclass(frozen=True, slots=True)
class Chain:
    """An iptables chain. ``rules`` are the rule specs after ``-A <name> `` exactly as
    ``iptables-save`` prints them; ``policy`` is set for built-in chains only."""

    name: str
    rules: tuple[str, ...] = ()
    policy: str | None = None


@dataclass(frozen=True, slots=True)
class Table:
    """An iptables table: its chains in the order they are declared."""

    name: str
    chains: tuple[Chain, ...] = ()

    def chain(self, name: str) -> Chain | None:
        for c in self.chains:
            if c.name == name:
                return c
        return None


def netfilter_unused(tables) -> bool:
    """Whether nothing programs iptables in a namespace with ``tables``: every chain a built-in
    one without rules, policy ACCEPT (a Pod's namespace). Linux then hooks no table there
    (xtables registers a table's hooks in a namespace once the table is asked for there;
    nftables has no base chain) and conntrack tracks none of its connections: since Linux 4.10
    conntrack's hooks are registered in a namespace only when a ruleset there needs them
    (commit 0c66dc1ea3f0, "netfilter: conntrack: register hooks in netns when needed by
    ruleset"). A node's lazily written tables (kube-proxy's, with ``rules``) are in use.

    >>> netfilter_unused((Table("filter", (Chain("INPUT", policy="ACCEPT"),)),))
    True
    >>> netfilter_unused((Table("filter", (Chain("INPUT", ("-j DROP",), "ACCEPT"),)),))
    False
    """
    if getattr(tables, "rules", None) is not None:
        return False
    return all(not c.rules and c.policy in (None, "ACCEPT") for t in tables for c in t.chains)


@dataclass(frozen=True, slots=True)
class IpSet:
    """An ipset as ``ipset save`` lists it: ``hash:ip`` (host addresses) or ``hash:net`` (networks,
    with ``nomatch`` exceptions, the most specific entry deciding: ipset(8) "nomatch").

    ``members`` are ``(network, nomatch)`` pairs, /32 for a host. The set answers the netfilter
    engine's ``contains(flags, packet)`` through an index built once (the same set object is
    shared by every node that holds it).

    >>> s = IpSet("KUBE-SRC-X", "hash:net", ((IPv4Network("10.0.0.0/8"), False),
    ...                                      (IPv4Network("10.1.0.0/16"), True)))
    >>> s.has(IPv4Address("10.2.3.4")), s.has(IPv4Address("10.1.3.4"))
    (True, False)
    >>> s.entries()
    ('10.0.0.0/8', '10.1.0.0/16 nomatch')
    """

    name: str
    type: str  # hash:ip | hash:net
    members: tuple[tuple[IPv4Network, bool], ...] = ()
    _index: dict = field(default=None, init=False, repr=False, compare=False)  # type: ignore[assignment]

    def _build_index(self) -> dict:
        # Built on first test, once per members tuple (sets of equal selections share theirs):
        # a large cluster's policy agent holds 1,000s of sets of 100s of members, few tested.
        hit = _SET_INDEX.get(id(self.members))
        if hit is not None and hit[0] is self.members:
            index = hit[1]
        else:
            by_len: dict[int, dict[int, bool]] = {}
            for net, nomatch in self.members:
                by_len.setdefault(net.prefixlen, {})[int(net.network_address)] = nomatch
            # Longest prefix first: the most specific entry decides (hash:net semantics).
            index = dict(sorted(by_len.items(), reverse=True))
            if len(_SET_INDEX) >= 1 << 14:
                _SET_INDEX.clear()
            _SET_INDEX[id(self.members)] = (self.members, index)
        object.__setattr__(self, "_index", index)
        return index

    def has(self, addr: IPv4Address | int) -> bool:
        """``ipset test NAME ADDR``."""
        a = int(addr)
        index = self._index
        if index is None:
            index = self._build_index()
        for plen, nets in index.items():
            mask = (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF
            hit = nets.get(a & mask)
            if hit is not None:
                return not hit
        return False

    def contains(self, flags: tuple[str, ...], packet) -> bool:
        """What ``-m set --match-set NAME FLAGS`` asks: the packet's address chosen by the first
        flag (``src`` or ``dst``) is in the set (extra flags are for multi-dimension sets)."""
        return self.has(packet.src if flags[0] == "src" else packet.dst)

    def entries(self) -> tuple[str, ...]:
        """The entries as ``ipset save`` prints them after ``add NAME`` (hosts without /32)."""
        out = []
        for net, nomatch in self.members:
            text = str(net.network_address) if net.prefixlen == 32 else str(net)
            out.append(text + (" nomatch" if nomatch else ""))
        return tuple(out)


_SET_INDEX: dict[int, tuple[tuple, dict]] = {}
"""id of an IpSet's members tuple -> (the tuple, kept alive so its id stays its own; its index)."""


@dataclass(frozen=True, slots=True)
class PeerEntries:
    """Entries every node installs for each *other* node, held once for the whole cluster.

    flannel gives each node one route (and, under VXLAN, one neighbour and one FDB entry) per
    remote node; these are identical on every node except that a node skips its own. At 5,000
    nodes that is 25 million objects if each node held its own copy, so a node's Netns refers to
    this shared value instead (``Netns.peers``) and holds every member's entries except those of
    ``Netns.node``. ``routes[i]``, ``neighbors[i]`` and ``fdb[i]`` belong to ``owners[i]``.
    """

    owners: tuple[str, ...] = ()
    routes: tuple[tuple[Route, ...], ...] = ()
    neighbors: tuple[tuple[Neighbor, ...], ...] = ()
    fdb: tuple[tuple[FdbEntry, ...], ...] = ()

    def routes_for(self, node: str | None) -> tuple[Route, ...]:
        """Every member's routes except ``node``'s own."""
        return tuple(
            r for o, rs in zip(self.owners, self.routes, strict=True) if o != node for r in rs
        )

    def neighbors_for(self, node: str | None) -> tuple[Neighbor, ...]:
        """Every member's neighbours except ``node``'s own."""
        return tuple(
            n for o, ns in zip(self.owners, self.neighbors, strict=True) if o != node for n in ns
        )

    def fdb_for(self, node: str | None) -> tuple[FdbEntry, ...]:
        """Every member's FDB entries except ``node``'s own."""
        return tuple(
            e for o, es in zip(self.owners, self.fdb, strict=True) if o != node for e in es
        )


@dataclass(frozen=True, slots=True)
class Netns:
    """A network namespace: ``name`` is ``node:<node>``, ``pod:<ns>/<pod>`` or ``external:<ip>``."""

    name: str
    kind: str  # node | pod | external
    node: str | None
    links: tuple[Link, ...]
    routes: tuple[Route, ...] = ()
    neighbors: tuple[Neighbor, ...] = ()
    fdb: tuple[FdbEntry, ...] = ()
    tables: tuple[Table, ...] = ()
    sysctls: FrozenDict = EMPTY
    # Shared per-remote-node entries (flannel): this netns also holds every entry of ``peers``
    # except its own node's. ``routes``/``neighbors``/``fdb`` above are the netns' own entries.
    peers: PeerEntries | None = None
    # ipsets of the namespace (a node's policy agent); nodes share equal sets as one object.
    ipsets: tuple[IpSet, ...] = ()

    def link(self, name: str) -> Link | None:
        for lk in self.links:
            if lk.name == name:
                return lk
        return None

    def table(self, name: str) -> Table | None:
        for t in self.tables:
            if t.name == name:
                return t
        return None
