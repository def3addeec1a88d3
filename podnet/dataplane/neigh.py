"""Neighbour (ARP) table lookups: the entries a namespace holds (``ip neigh``).

podnet stores only the entries that programs install (flannel's PERMANENT entries for each
remote VTEP); ordinary ARP resolution on an Ethernet segment happens at trace time through
``Network.l2_resolve``.

>>> from ipaddress import IPv4Address as A
>>> ns = Netns("node:n1", "node", "n1", (), neighbors=(
...     Neighbor(A("10.244.2.0"), "flannel.1", "5a:1f:00:00:00:02"),))
>>> neigh_lookup(ns, "flannel.1", A("10.244.2.0")).mac
'5a:1f:00:00:00:02'
>>> neigh_lookup(ns, "eth0", A("10.244.2.0")) is None
True
"""

from __future__ import annotations

from ipaddress import IPv4Address

from podnet.model.dataplane import Neighbor, Netns, PeerEntries

_Key = tuple[str, IPv4Address]


class PeerNeighIndex:
    """The shared per-remote-node neighbours (``PeerEntries.neighbors``) indexed once."""

    __slots__ = ("index",)

    def __init__(self, peers: PeerEntries):
        self.index: dict[_Key, list[tuple[str, Neighbor]]] = {}
        for owner, entries in zip(peers.owners, peers.neighbors, strict=True):
            for n in entries:
                self.index.setdefault((n.dev, n.ip), []).append((owner, n))


class NeighIndex:
    """One namespace's neighbours by ``(dev, ip)``, shared peer entries included."""

    __slots__ = ("_own", "_peer", "_self")

    def __init__(self, netns: Netns, peer: PeerNeighIndex | None = None):
        self._own: dict[_Key, Neighbor] = {}
        for n in netns.neighbors:
            self._own.setdefault((n.dev, n.ip), n)
        if netns.peers is not None and peer is None:
            peer = PeerNeighIndex(netns.peers)
        self._peer = peer.index if (peer is not None and netns.peers is not None) else {}
        self._self = netns.node

    def get(self, dev: str, ip: IPv4Address) -> Neighbor | None:
        n = self._own.get((dev, ip))
        if n is not None:
            return n
        for owner, n in self._peer.get((dev, ip), ()):
            if owner != self._self:
                return n
        return None


def neigh_lookup(
    netns: Netns, dev: str, ip: IPv4Address, index: NeighIndex | None = None
) -> Neighbor | None:
    """The neighbour entry for ``ip`` on ``dev`` (pass ``index``, e.g. ``Network.neigh_index``,
    to avoid re-indexing the namespace on every call)."""
    if index is None:
        index = NeighIndex(netns)
    return index.get(dev, ip)


def all_neighbors(netns: Netns) -> tuple[Neighbor, ...]:
    """Every neighbour entry of ``netns``, its own then the shared peer entries (``ip neigh``)."""
    if netns.peers is None:
        return netns.neighbors
    return (*netns.neighbors, *netns.peers.neighbors_for(netns.node))


def show_neighbors(netns: Netns) -> tuple[str, ...]:
    """The lines of ``ip neigh show``."""
    return tuple(n.text() for n in all_neighbors(netns))
