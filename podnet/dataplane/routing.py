"""IPv4 route lookup as the kernel does it, and route listings as iproute2 prints them.

Lookup follows the default policy rules (``ip rule``: 0 ``local``, 32766 ``main``): the
``local`` table first (local and broadcast routes), then ``main``; in each, the longest prefix
wins, then the lowest metric (net/ipv4/fib_rules.c, fib_trie.c fib_table_lookup).

>>> from ipaddress import IPv4Address as A, IPv4Network as N
>>> t = RouteTable.from_routes([Route(N("0.0.0.0/0"), "eth0", gateway=A("10.0.0.1")),
...                             Route(N("10.244.0.0/16"), "eth0", gateway=A("10.0.0.2")),
...                             Route(N("10.244.1.0/24"), "cni0")])
>>> t.lookup(A("10.244.1.7")).dev, t.lookup(A("10.244.9.9")).gateway, t.lookup(A("8.8.8.8")).gateway
('cni0', IPv4Address('10.0.0.2'), IPv4Address('10.0.0.1'))
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address

from podnet.model.dataplane import Netns, PeerEntries, Route

TABLES = ("local", "main")  # the order the default ip rules consult them
_MASKS = tuple(((1 << 32) - 1) ^ ((1 << (32 - n)) - 1) for n in range(33))

# {table: {prefixlen: {network as int: [(owner or None, route), ...]}}}
_Index = dict[str, dict[int, dict[int, list[tuple[str | None, Route]]]]]


def _add(index: _Index, owner: str | None, route: Route) -> None:
    by_len = index.setdefault(route.table, {})
    by_net = by_len.setdefault(route.dst.prefixlen, {})
    by_net.setdefault(int(route.dst.network_address), []).append((owner, route))


class PeerRouteIndex:
    """The shared per-remote-node routes (``PeerEntries.routes``) indexed once for all nodes."""

    __slots__ = ("index",)

    def __init__(self, peers: PeerEntries):
        self.index: _Index = {}
        for owner, routes in zip(peers.owners, peers.routes, strict=True):
            for r in routes:
                _add(self.index, owner, r)


class RouteTable:
    """A namespace's routes indexed for lookup: one dict per table and prefix length, so a lookup
    costs at most 33 dict probes per table. Build with :meth:`from_routes` or :meth:`for_netns`.
    """

    __slots__ = ("_own", "_peer", "_self", "_lens")

    def __init__(self, own: _Index, peer: PeerRouteIndex | None, self_owner: str | None):
        self._own = own
        self._peer = peer.index if peer is not None else {}
        self._self = self_owner
        # Prefix lengths present per table, longest first: only those are probed.
        self._lens = {
            t: tuple(sorted(set(own.get(t, {})) | set(self._peer.get(t, {})), reverse=True))
            for t in TABLES
        }

    @classmethod
    def from_routes(
        cls,
        routes: Sequence[Route],
        peer: PeerRouteIndex | None = None,
        self_owner: str | None = None,
    ) -> RouteTable:
        """Index ``routes`` (of tables ``local`` and ``main``); with ``peer``, the shared routes of
        every owner but ``self_owner`` take part too."""
        own: _Index = {}
        for r in routes:
            _add(own, None, r)
        return cls(own, peer, self_owner)

    @classmethod
    def for_netns(cls, netns: Netns, peer: PeerRouteIndex | None = None) -> RouteTable:
        """The route table of ``netns``, its shared peer routes included (indexed here unless
        ``peer``, the index of ``netns.peers``, is given)."""
        if netns.peers is not None and peer is None:
            peer = PeerRouteIndex(netns.peers)
        return cls.from_routes(netns.routes, peer if netns.peers is not None else None, netns.node)

    def lookup_table(self, table: str, dst: IPv4Address) -> Route | None:
        """Longest-prefix match of ``dst`` in one table, ties broken by the lowest metric."""
        own = self._own.get(table, {})
        peer = self._peer.get(table, {})
        d = int(dst)
        for plen in self._lens.get(table, ()):
            key = d & _MASKS[plen]
            cands = [r for _, r in own.get(plen, {}).get(key, ())]
            cands += [r for o, r in peer.get(plen, {}).get(key, ()) if o != self._self]
            if cands:
                # min() keeps the first of equal metrics: the route added first wins, as in the
                # kernel's alias list.
                return min(cands, key=lambda r: r.metric or 0)
        return None

    def lookup(self, dst: IPv4Address) -> Route | None:
        """The route the kernel picks for ``dst``: table local first, then main."""
        for table in TABLES:
            r = self.lookup_table(table, dst)
            if r is not None:
                return r
        return None


def _trie_key(r: Route) -> tuple[int, int]:
    # fib_trie dumps leaves in key order and, within a leaf, longer prefixes first
    # (fib_insert_alias keeps aliases sorted by ascending suffix length).
    return (int(r.dst.network_address), -r.dst.prefixlen)


def all_routes(netns: Netns) -> tuple[Route, ...]:
    """Every route of ``netns`` (its own and the shared peer routes), table main then local,
    each in the order the kernel lists them."""
    routes: Iterable[Route] = netns.routes
    if netns.peers is not None:
        routes = (*netns.routes, *netns.peers.routes_for(netns.node))
    out: list[Route] = []
    for table in ("main", "local"):
        out += sorted((r for r in routes if r.table == table), key=_trie_key)
    return tuple(out)


def show_routes(netns: Netns, table: str = "main") -> tuple[str, ...]:
    """The lines of ``ip route show table <table>`` (``table="all"``: ``ip route show table all``,
    which names the table of every non-main route)."""
    if table == "all":
        return tuple(r.text() for r in all_routes(netns))
    return tuple(r.text(with_table=False) for r in all_routes(netns) if r.table == table)


def _is_loopback_net(addr: IPv4Address) -> bool:
    return addr.is_loopback


def select_src(netns: Netns, dev: str, toward: IPv4Address | None) -> IPv4Address | None:
    """The source address the kernel picks for a route without ``src`` (net/ipv4/devinet.c
    inet_select_addr): an address of ``dev`` on the subnet of ``toward`` if any, else its primary
    address, else the first non-loopback address of any device in ifindex order."""
    link = netns.link(dev)
    if link is not None:
        addrs = [a for a in link.addresses if not _is_loopback_net(a.ip)]
        if toward is not None:
            for a in addrs:
                if toward in a.network:
                    return a.ip
        if addrs:
            return addrs[0].ip
    for lk in sorted(netns.links, key=lambda x: x.index):
        for a in lk.addresses:
            if not _is_loopback_net(a.ip):
                return a.ip
    return None


def route_get_text(
    netns: Netns,
    table: RouteTable,
    dst: IPv4Address,
    *,
    from_: IPv4Address | None = None,
    iif: str | None = None,
    uid: int = 0,
) -> str | None:
    """What ``ip route get DST [from SRC iif DEV]`` prints in ``netns``, byte for byte (iproute2
    ends every field with a space, so both lines end with one), or None when there is no route
    (``RTNETLINK answers: Network is unreachable``).

    Without ``iif`` the kernel resolves an output route (locally generated packet): it shows the
    chosen source as ``src`` (unless ``from_`` gives one) and ``uid``. With ``iif`` it resolves an
    input route (a packet arriving on ``iif``): ``from`` is shown, and ``iif`` on the cache line.
    Local and broadcast destinations show their type and ``table local``; local delivery goes
    through ``lo`` (net/ipv4/route.c ip_route_output_key_hash_rcu, ip_route_input_slow).

    >>> from ipaddress import IPv4Address as A, IPv4Interface as I, IPv4Network as N
    >>> from podnet.model.dataplane import Link
    >>> ns = Netns("pod:x/y", "pod", "node-1", (Link("eth0", "veth", 2, "0a:58:0a:f4:01:02",
    ...           addresses=(I("10.244.1.2/24"),)),))
    >>> t = RouteTable.from_routes([Route(N("0.0.0.0/0"), "eth0", gateway=A("10.244.1.1"))])
    >>> route_get_text(ns, t, A("10.96.0.10"))
    '10.96.0.10 via 10.244.1.1 dev eth0 src 10.244.1.2 uid 0 \\n    cache \\n'
    """
    r = table.lookup(dst)
    if r is None:
        return None
    local = r.type in ("local", "broadcast")
    parts = [r.type, str(dst)] if r.type != "unicast" else [str(dst)]
    if from_ is not None:
        parts += ["from", str(from_)]
    if r.gateway is not None:
        parts += ["via", str(r.gateway)]
    out_dev = "lo" if (r.type == "local" or (local and iif is not None)) else r.dev
    parts += ["dev", out_dev]
    if r.table != "main":
        parts += ["table", r.table]
    if iif is None:
        if from_ is None:
            src = r.src if r.src is not None else select_src(netns, r.dev, r.gateway or dst)
            if src is not None:
                parts += ["src", str(src)]
        parts += ["uid", str(uid)]
    flags = {"local": "<local>", "broadcast": "<local,brd>"}.get(r.type)
    cache = ["    cache"]
    if flags:
        cache.append(flags)
    if iif is not None:
        cache += ["iif", iif]
    return " ".join(parts) + " \n" + " ".join(cache) + " \n"
