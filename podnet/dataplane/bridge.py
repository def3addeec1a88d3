"""Bridge and VXLAN forwarding databases (``bridge fdb``).

A bridge's entries carry ``master=<bridge>``: a learned MAC names the port it was seen on; the
bridge's and each port's own MAC are ``permanent`` and mean "for this host" (the bridge passes
such frames up to IP, net/bridge/br_input.c: ``fdb_entry->is_local``). A VXLAN device's entries
carry ``self`` and ``dst``: the remote VTEP to send a frame for that MAC to.

>>> from ipaddress import IPv4Address as A
>>> ns = Netns("node:n1", "node", "n1", (), fdb=(
...     FdbEntry("0a:58:0a:f4:01:02", "veth1a2b3c4d", master="cni0"),
...     FdbEntry("5e:00:00:00:00:01", "cni0", master="cni0", permanent=True),
...     FdbEntry("5a:1f:00:00:00:02", "flannel.1", dst=A("192.168.0.12"), self_=True,
...              permanent=True)))
>>> fdb_lookup(ns, "cni0", "0a:58:0a:f4:01:02").dev
'veth1a2b3c4d'
>>> is_bridge_own(ns, "cni0", "5e:00:00:00:00:01"), is_bridge_own(ns, "cni0", "0a:58:0a:f4:01:02")
(True, False)
>>> vxlan_remote(ns, "flannel.1", "5a:1f:00:00:00:02")
IPv4Address('192.168.0.12')
"""

from __future__ import annotations

from ipaddress import IPv4Address

from podnet.model.dataplane import FdbEntry, Netns, PeerEntries

_Key = tuple[str, str]  # (bridge or vxlan device, mac)


def _better(old: FdbEntry | None, new: FdbEntry) -> bool:
    # With VLAN filtering off (the default, and cni0's setting) the bridge looks entries up with
    # vid 0; the "vlan 1" copies exist too but are not consulted, so prefer the entry without.
    return old is None or (old.vlan is not None and new.vlan is None)


def _index_vxlan(entries, into: dict, owner: str | None) -> None:
    for e in entries:
        if e.self_ and e.dst is not None:
            into.setdefault((e.dev, e.mac.lower()), []).append((owner, e))


class PeerFdbIndex:
    """The shared per-remote-node VXLAN FDB entries (``PeerEntries.fdb``) indexed once."""

    __slots__ = ("index",)

    def __init__(self, peers: PeerEntries):
        self.index: dict[_Key, list[tuple[str | None, FdbEntry]]] = {}
        for owner, entries in zip(peers.owners, peers.fdb, strict=True):
            _index_vxlan(entries, self.index, owner)


class FdbIndex:
    """One namespace's FDB entries: bridge entries by ``(bridge, mac)``, VXLAN remotes by
    ``(device, mac)``, shared peer entries included."""

    __slots__ = ("_bridge", "_vxlan", "_peer", "_self")

    def __init__(self, netns: Netns, peer: PeerFdbIndex | None = None):
        self._bridge: dict[_Key, FdbEntry] = {}
        own_vx: dict[_Key, list[tuple[str | None, FdbEntry]]] = {}
        for e in netns.fdb:
            if e.master is not None:
                key = (e.master, e.mac.lower())
                if _better(self._bridge.get(key), e):
                    self._bridge[key] = e
        _index_vxlan(netns.fdb, own_vx, None)
        self._vxlan = own_vx
        if netns.peers is not None and peer is None:
            peer = PeerFdbIndex(netns.peers)
        self._peer = peer.index if (peer is not None and netns.peers is not None) else {}
        self._self = netns.node

    def bridge_entry(self, bridge: str, mac: str) -> FdbEntry | None:
        return self._bridge.get((bridge, mac.lower()))

    def vxlan_entry(self, dev: str, mac: str) -> FdbEntry | None:
        key = (dev, mac.lower())
        for _, e in self._vxlan.get(key, ()):
            return e
        for owner, e in self._peer.get(key, ()):
            if owner != self._self:
                return e
        return None


def fdb_lookup(
    netns: Netns, bridge: str, mac: str, index: FdbIndex | None = None
) -> FdbEntry | None:
    """The entry of bridge ``bridge`` for destination ``mac`` (its ``dev`` is the port, or the
    bridge itself), or None: unknown unicast, which the bridge floods."""
    return (index or FdbIndex(netns)).bridge_entry(bridge, mac)


def is_bridge_own(netns: Netns, bridge: str, mac: str, index: FdbIndex | None = None) -> bool:
    """Whether ``mac`` is the bridge's own or one of its ports' own address (a permanent local
    entry): such frames are delivered to the host's IP stack, not forwarded."""
    e = fdb_lookup(netns, bridge, mac, index)
    return e is not None and e.permanent


def vxlan_remote(
    netns: Netns, dev: str, mac: str, index: FdbIndex | None = None
) -> IPv4Address | None:
    """The remote VTEP (``dst``) VXLAN device ``dev`` sends frames for ``mac`` to, or None (no
    entry: flannel installs no default flood entry, so the frame is dropped)."""
    e = (index or FdbIndex(netns)).vxlan_entry(dev, mac)
    return e.dst if e is not None else None


def all_fdb(netns: Netns) -> tuple[FdbEntry, ...]:
    """Every FDB entry of ``netns`` (own then shared peer entries), as ``bridge fdb show``."""
    if netns.peers is None:
        return netns.fdb
    return (*netns.fdb, *netns.peers.fdb_for(netns.node))


def show_fdb(netns: Netns) -> tuple[str, ...]:
    """The lines of ``bridge fdb show`` (the entries podnet models)."""
    return tuple(e.text() for e in all_fdb(netns))
