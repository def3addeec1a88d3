"""The hop loop: a packet moves the way Linux moves it, every decision taken from the tables of
the namespace it is in (DESIGN.md, "the one rule").

Paths through a namespace (Linux, net/ipv4 and net/bridge):

* received on a device: PREROUTING (raw, mangle, nat) -> routing -> INPUT (mangle, filter, nat) ->
  socket, or FORWARD (mangle, filter) -> POSTROUTING (mangle, nat) -> out;
* sent by a local socket: routing -> OUTPUT (raw, mangle, nat, filter) -> re-route if DNAT changed
  the destination -> POSTROUTING -> out;
* a frame on a bridge port: the bridge's FDB decides; with ``bridge-nf-call-iptables=1`` bridged
  IPv4 frames also pass PREROUTING, FORWARD and POSTROUTING of the host with ``-i cni0``
  and the ``physdev`` ports (net/bridge/br_netfilter_hooks.c); frames to the bridge's own MAC go up
  to the host's IP layer, PREROUTING having been walked once (ip_sabotage_in);
* a VXLAN device encapsulates after its permanent neighbour and FDB entries, and the outer UDP
  packet leaves as locally generated (iptunnel_xmit -> ip_local_out); on the far node the
  kernel's VXLAN socket on UDP 8472 takes it from INPUT and the inner frame arrives on flannel.1.

Every function returns the list of ways (``End``) its branch can end.
"""

from __future__ import annotations

import hashlib

from podnet.dataplane.names import LOOPBACK_MAC
from podnet.model.base import EMPTY, FrozenDict
from podnet.model.trace import Packet, Step, ip_text, new_encap, new_packet, new_step
from podnet.trace.flight import End, Flight
from podnet.trace.hooks import NO_NETFILTER, Hooks
from podnet.trace.view import NetView

MAX_HOPS = 128


def _flow_key(netns: str, device: str, direction: str, p: Packet) -> tuple:
    # (Engine._open makes the same key in place, every hop: the two stay alike, or _cycle
    # no longer finds the repeated hop it names.) Addresses as ints (an IPv4Address hashes
    # through hex()), read from the ``_ip`` an IPv4Address keeps them in: int() goes through
    # a Python-level __int__, at every hop
    e = p.encap
    if e is not None:
        e = (e.src._ip, e.dst._ip, e.sport, e.dport, e.vni, e.type)
    return (netns, device, direction, p.src._ip, p.dst._ip, p.proto, p.sport, p.dport, e)


def vxlan_source_port(inner: Packet, low: int = 32768, high: int = 60999) -> int:
    """The outer UDP source port: a hash of the inner flow in the local port range, as the
    kernel's udp_flow_src_port does (include/net/udp.h), so that one flow keeps one port.

    >>> from ipaddress import IPv4Address as A
    >>> 32768 <= vxlan_source_port(Packet(A("10.0.0.1"), A("10.0.0.2"), "tcp", 1, 2)) <= 60999
    True
    """
    key = f"{ip_text(inner.src)}|{ip_text(inner.dst)}|{inner.proto}|{inner.sport}|{inner.dport}".encode()
    h = int.from_bytes(hashlib.sha256(key).digest()[:4], "big")
    return low + h % (high - low + 1)


class Engine:
    """Moves packets through a built network. Stateless apart from read-only caches."""

    def __init__(self, view: NetView):
        self.view = view
        self.hooks = Hooks(view)

    # ------------------------------------------------------------------ leaving a local socket

    def send(self, fl: Flight, netns: str) -> list[End]:
        """A local socket in ``netns`` sends ``fl.packet`` (``ip_local_out``)."""
        v = self.view
        p = fl.packet
        hdr = p if p.encap is None else self.hooks.header(p)
        # NetView.routed, its memo read in place (as in _route_input: a helper for the two
        # would cost a call at every routing decision, about 1 % of a path)
        routed = v._routed.get((netns, hdr.dst._ip), v)
        if routed is v:
            routed = v.routed(netns, hdr.dst)
        if routed is None:
            fl = fl.enter(v.node_of(netns), netns, "-", "out")
            return [
                self._end(
                    fl,
                    "NO_ROUTE",
                    f"{netns} has no route to {hdr.dst}: connect() fails with 'Network is unreachable'",
                )
            ]
        route, step = routed
        loop = self._open(fl, netns, route.dev, "out")
        if loop:
            return [loop]
        fl.hop_steps.append(step)
        fl, ct = self.hooks.ct_begin(fl, netns, "OUTPUT")
        if ct is NO_NETFILTER and route.type != "local":  # no hook to walk (a Pod's netns)
            return self._transmit(fl, netns, route.dev, route.gateway or hdr.dst)
        ends: list[End] = []
        for fl1, oc in self.hooks.run(fl, netns, "OUTPUT", ct, in_iface=None, out_iface=route.dev):
            if oc is not None:
                ends.append(oc)
                continue
            p1 = fl1.packet
            hdr1 = p1 if p1.encap is None else self.hooks.header(p1)
            route1 = route
            if hdr1.dst is not hdr.dst and hdr1.dst != hdr.dst:
                # ip_route_me_harder: DNAT in OUTPUT re-routes the packet (net/ipv4/netfilter.c)
                route1 = v.route(netns, hdr1.dst)
                if route1 is None:
                    ends.append(
                        self._end(fl1, "NO_ROUTE", f"{netns} has no route to {hdr1.dst} after DNAT")
                    )
                    continue
                fl1 = fl1.step(v.route_step(route1, reroute=True))
                if route1.dev != route.dev:
                    fl1 = fl1.on_device(route1.dev)
            if route1.type == "local":
                ends += self._postrouting_then(fl1, netns, "lo", ct, None, local=True)
            else:
                ends += self._postrouting_then(
                    fl1, netns, route1.dev, ct, route1.gateway or hdr1.dst
                )
        return ends

    # ------------------------------------------------------------------ arriving on a device

    def receive(self, fl: Flight, netns: str, device: str) -> list[End]:
        """A frame arrives on ``device`` of ``netns``."""
        if fl.packet.mark and fl.hop is not None and fl.hop.netns != netns:
            # Another host or namespace: the skb mark does not travel (skb_scrub_packet on a
            # netns crossing; on the wire a mark never exists).
            p = fl.packet
            fl = fl.with_packet(
                new_packet(p.src, p.dst, p.proto, p.sport, p.dport, p.ttl, 0, p.encap)
            )
        v = self.view
        link = v._links.get((netns, device), v)  # (NetView.link's memo read in place)
        if link is v:
            link = v.link(netns, device)
        if link is not None and link.master:
            return self._bridge_ingress(fl, netns, device, link.master)
        return self._l3_input(fl, netns, device)

    def _l3_input(
        self,
        fl: Flight,
        netns: str,
        device: str,
        physin: str | None = None,
        *,
        opened: bool = False,
    ) -> list[End]:
        if not opened:
            loop = self._open(fl, netns, device, "in")
            if loop:
                return [loop]
        fl, ct = self.hooks.ct_begin(fl, netns, "PREROUTING")
        if ct is NO_NETFILTER:  # no hook to walk (a Pod's netns)
            return self._route_input(fl, netns, device, physin, ct)
        ends: list[End] = []
        for fl1, oc in self.hooks.run(
            fl, netns, "PREROUTING", ct, in_iface=device, out_iface=None, physin=physin
        ):
            if oc is not None:
                ends.append(oc)
                continue
            ends += self._route_input(fl1, netns, device, physin, ct)
        return ends

    def _route_input(
        self, fl: Flight, netns: str, device: str, physin: str | None, ct
    ) -> list[End]:
        v = self.view
        p = fl.packet
        hdr = p if p.encap is None else self.hooks.header(p)
        routed = v._routed.get((netns, hdr.dst._ip), v)  # (NetView.routed's memo in place)
        if routed is v:
            routed = v.routed(netns, hdr.dst)
        if routed is None:
            return [self._end(fl, "NO_ROUTE", f"{netns} has no route to {hdr.dst}")]
        route, step = routed
        fl.hop_steps.append(step)
        if route.type == "local":
            if ct is NO_NETFILTER:
                return self._local_deliver(fl, netns, device)
            ends: list[End] = []
            for fl1, oc in self.hooks.run(
                fl, netns, "INPUT", ct, in_iface=device, out_iface=None, physin=physin
            ):
                if oc is not None:
                    ends.append(oc)
                    continue
                fl1 = self.hooks.ct_confirm(fl1, netns, ct, "INPUT")
                ends += self._local_deliver(fl1, netns, device)
            return ends
        if route.type != "unicast":
            return [
                self._end(
                    fl, "DROPPED", f"route type {route.type} to {hdr.dst} discards the packet"
                )
            ]
        if v.sysctl(netns, "net.ipv4.ip_forward") != 1:
            return [
                self._end(
                    fl,
                    "DROPPED",
                    f"{netns} does not forward (net.ipv4.ip_forward = 0) and {hdr.dst} is not its own address",
                )
            ]
        if fl.packet.ttl <= 1:
            return [
                self._end(
                    fl,
                    "TTL_EXCEEDED",
                    f"TTL expired in {netns}: the kernel answers ICMP time exceeded",
                )
            ]
        # ip_forward decrements the TTL before the FORWARD hook (net/ipv4/ip_forward.c)
        p = fl.packet
        fl.packet = new_packet(p.src, p.dst, p.proto, p.sport, p.dport, p.ttl - 1, p.mark, p.encap)
        loop = self._open(fl, netns, route.dev, "out")
        if loop:
            return [loop]
        ends = []
        for fl1, oc in self.hooks.run(
            fl, netns, "FORWARD", ct, in_iface=device, out_iface=route.dev, physin=physin
        ):
            if oc is not None:
                ends.append(oc)
                continue
            ends += self._postrouting_then(fl1, netns, route.dev, ct, route.gateway or hdr.dst)
        return ends

    def _postrouting_then(
        self,
        fl: Flight,
        netns: str,
        dev: str,
        ct,
        nexthop,
        *,
        local: bool = False,
        physout: str | None = None,
        physin: str | None = None,
        bridged_port: str | None = None,
    ) -> list[End]:
        ends: list[End] = []
        for fl1, oc in self.hooks.run(
            fl,
            netns,
            "POSTROUTING",
            ct,
            in_iface=None,
            out_iface=dev,
            physin=physin,
            physout=physout,
        ):
            if oc is not None:
                ends.append(oc)
                continue
            fl1 = self.hooks.ct_confirm(fl1, netns, ct, "POSTROUTING")
            if local:
                fl1 = fl1.step(Step("route", "loopback: the packet is its own host's")).l2(
                    LOOPBACK_MAC, LOOPBACK_MAC
                )
                ends += self._l3_input(fl1, netns, "lo")
            elif bridged_port is not None:
                ends += self._xmit_port(fl1, netns, bridged_port)
            else:
                ends += self._transmit(fl1, netns, dev, nexthop)
        return ends

    # ------------------------------------------------------------------ local delivery

    def _local_deliver(self, fl: Flight, netns: str, device: str) -> list[End]:
        v = self.view
        p = fl.packet
        if p.encap is not None:
            vx = v.vxlan_socket(netns, p.encap.dst, p.encap.dport, p.encap.vni)
            if vx is None:
                return [
                    self._end(
                        fl,
                        "DROPPED",
                        f"no VXLAN device of {netns} listens on {p.encap.dst}:{p.encap.dport} with VNI {p.encap.vni}",
                    )
                ]
            e = p.encap
            inner = new_packet(p.src, p.dst, p.proto, p.sport, p.dport, p.ttl, p.mark, None)
            fl.hop_steps.append(
                new_step(
                    "decap",
                    f"vxlan VNI {e.vni} from {ip_text(e.src)}:{e.sport}: inner frame to {vx.name}",
                    None,
                    None,
                    None,
                    None,
                    v.memo_step(("vni", e.vni), lambda: _d(vni=e.vni)),
                )
            )
            fl = fl.with_packet(inner).l2(fl.inner_l2[0] if fl.inner_l2 else None, vx.mac)
            fl.inner_l2 = None
            return self._l3_input(fl, netns, vx.name)
        # (not memoised: a reply's destination port is the client's source port, new for
        # every connection)
        who = v.socket_owner(netns, p)
        what = who or netns
        to = f"{ip_text(p.dst)}:{p.dport}"
        step = new_step(
            "deliver", f"{p.proto} {to} socket of {what}", None, None, None, None, EMPTY
        )
        reason = f"delivered to {what} on {to}/{p.proto}"
        return [self._end(fl, "DELIVERED", reason, endpoint=who, netns=netns, step=step)]

    # ------------------------------------------------------------------ out a device

    def _transmit(self, fl: Flight, netns: str, dev: str, nexthop) -> list[End]:
        v = self.view
        link = v._links.get((netns, dev), v)  # (NetView.link's memo read in place)
        if link is v:
            link = v.link(netns, dev)
        if link is None:
            return [self._end(fl, "NO_ROUTE", f"{netns} has no device {dev}")]
        if link.kind == "loopback":
            return self._l3_input(fl.l2(LOOPBACK_MAC, LOOPBACK_MAC), netns, dev)
        if link.kind == "vxlan":
            return self._vxlan_xmit(fl, netns, link, nexthop)
        gw = v.gateway
        # (the ints IPv4Address keeps compared: its == is a Python-level call)
        if gw is not None and nexthop._ip == gw._ip and link.kind == "ether":
            return self._via_gateway(fl.l2(link.mac, None), netns, dev, nexthop)
        hit = v.arp(netns, dev, nexthop)
        if hit is None:
            return [
                self._end(
                    fl,
                    "NEIGHBOR_UNREACHABLE",
                    f"no host answers ARP for {nexthop} on {dev} of {netns}",
                )
            ]
        peer_ns, peer_dev, mac, step = hit
        fl = fl.step_l2(step, link.mac, mac)
        if link.kind == "bridge":
            return self._bridge_output(fl, netns, dev, mac)
        if link.kind == "veth" and link.peer is not None:
            return self.receive(fl, *link.peer)
        # the underlay: one L2 segment; the switch delivers the frame to the owner of the MAC
        return self.receive(fl, peer_ns, peer_dev)

    def _vxlan_xmit(self, fl: Flight, netns: str, link, nexthop) -> list[End]:
        v = self.view
        neigh, neigh_step, remote, fdb_step = v.vxlan_next(netns, link.name, nexthop)
        if neigh is None:
            return [
                self._end(
                    fl,
                    "NEIGHBOR_UNREACHABLE",
                    f"{link.name} has no neighbour entry for {nexthop}: flannel adds one per node it knows, and VXLAN does not ARP",
                )
            ]
        fl = fl.step_l2(neigh_step, link.mac, neigh.mac)
        if remote is None:
            return [
                self._end(
                    fl,
                    "NEIGHBOR_UNREACHABLE",
                    f"{link.name} has no FDB entry for {neigh.mac}: no VTEP to send to",
                )
            ]
        vx = link.vxlan
        fl.hop_steps.append(fdb_step)
        p = fl.packet  # (the port depends on the inner flow only: hashed once per flow)
        key = ("vxsport", p.src._ip, p.dst._ip, p.proto, p.sport, p.dport)
        sport = v.memo_step(key, lambda: vxlan_source_port(p))
        encap = new_encap(vx.local, remote, sport, vx.port, vx.vni, "vxlan")
        fl.hop_steps.append(
            new_step(
                "encap",
                f"vxlan VNI {vx.vni}: {ip_text(vx.local)}:{sport} -> {ip_text(remote)}:{vx.port} udp",
                None,
                None,
                None,
                None,
                v.memo_step(("vni", vx.vni), lambda: _d(vni=vx.vni)),
            )
        )
        fl.packet = new_packet(p.src, p.dst, p.proto, p.sport, p.dport, p.ttl, p.mark, encap)
        fl.inner_l2 = (link.mac, neigh.mac)
        # the outer packet is sent as locally generated (iptunnel_xmit -> ip_local_out)
        return self.send(fl, netns)

    def _via_gateway(self, fl: Flight, netns: str, dev: str, gw) -> list[End]:
        """The underlay's router: podnet does not emulate it, but knows what it does with a
        packet — hands it to an outside client it was asked to model, sends it on toward the
        Internet, or has nowhere to send an address that exists only inside the cluster."""
        v = self.view
        dst = self.hooks.header(fl.packet).dst
        fl.hop_steps.append(Step("neigh", f"{gw} dev {dev}: the underlay's default gateway"))
        client = v.external_netns(dst)
        if client is not None:
            fl.hop_steps.append(Step("route", f"the gateway routes {dst} to the outside client"))
            return self.receive(fl.update(dst_mac=None), client, "eth0")
        cfg = v.network.cluster.config
        if dst in cfg.cluster_cidr or dst in cfg.service_cidr or dst in v.network.underlay:
            what = (
                "ClusterIPs exist only in kube-proxy's rules on the nodes"
                if dst in cfg.service_cidr
                else "the cluster's own addresses are not routed beyond the nodes"
            )
            return [
                self._end(
                    fl, "NO_ROUTE", f"the underlay gateway {gw} has no route to {dst}: {what}"
                )
            ]
        return [
            self._end(
                fl,
                "EXITS_NETWORK",
                f"leaves the cluster through the underlay gateway {gw} toward {dst}",
            )
        ]

    # ------------------------------------------------------------------ the bridge

    def _bridge_ingress(self, fl: Flight, netns: str, port: str, bridge: str) -> list[End]:
        v = self.view
        loop = self._open(fl, netns, port, "in")
        if loop:
            return [loop]
        mac = fl.dst_mac
        own, entry, fdb_step = v.bridge_lookup(netns, bridge, mac)
        if own is not None:
            fl.hop_steps.append(own)
            loop = self._open(fl, netns, bridge, "in")
            if loop:
                return [loop]
            return self._l3_input(fl, netns, bridge, physin=port, opened=True)
        if entry is None:
            return [
                self._end(
                    fl,
                    "NEIGHBOR_UNREACHABLE",
                    f"{bridge} has no FDB entry for {mac}; the flooded frame reaches no host with that address",
                )
            ]
        fl.hop_steps.append(fdb_step)
        out_port = entry.dev
        if out_port == port and not v.link(netns, port).hairpin:
            return [
                self._end(
                    fl,
                    "DROPPED",
                    f"{bridge} does not send a frame back out its ingress port {port} (hairpin off)",
                )
            ]
        fl.hop_steps.append(
            v.memo_step(
                ("bridge-fwd", bridge, port, out_port),
                lambda: Step("bridge", f"{bridge}: forward {port} -> {out_port}"),
            )
        )
        if v.sysctl(netns, "net.bridge.bridge-nf-call-iptables") != 1:
            return self._xmit_port(fl, netns, out_port)
        # br_netfilter: the bridged IPv4 frame walks the host's iptables with -i/-o the bridge
        fl, ct = self.hooks.ct_begin(fl, netns, "PREROUTING")
        dst = fl.packet.dst  # before the walk: a branch goes on in ``fl`` itself
        ends: list[End] = []
        for fl1, oc in self.hooks.run(
            fl, netns, "PREROUTING", ct, in_iface=bridge, out_iface=None, physin=port
        ):
            if oc is not None:
                ends.append(oc)
                continue
            if fl1.packet.dst is not dst and fl1.packet.dst != dst:
                # DNAT on a bridged frame: br_netfilter hands it to IP routing instead
                fl1 = fl1.step(
                    Step("bridge", f"{bridge}: destination changed by DNAT: routed by the host")
                )
                ends += self._route_input(fl1, netns, bridge, port, ct)
                continue
            for fl2, oc2 in self.hooks.run(
                fl1,
                netns,
                "FORWARD",
                ct,
                in_iface=bridge,
                out_iface=bridge,
                physin=port,
                physout=out_port,
            ):
                if oc2 is not None:
                    ends.append(oc2)
                    continue
                ends += self._postrouting_then(
                    fl2,
                    netns,
                    bridge,
                    ct,
                    None,
                    physin=port,
                    physout=out_port,
                    bridged_port=out_port,
                )
        return ends

    def _bridge_output(self, fl: Flight, netns: str, bridge: str, mac: str) -> list[End]:
        """The host sends a frame out its bridge device: the FDB picks the port."""
        _, entry, fdb_step = self.view.bridge_lookup(netns, bridge, mac)
        if entry is None:
            return [self._end(fl, "NEIGHBOR_UNREACHABLE", f"{bridge} has no FDB entry for {mac}")]
        fl.hop_steps.append(fdb_step)
        return self._xmit_port(fl, netns, entry.dev)

    def _xmit_port(self, fl: Flight, netns: str, port: str) -> list[End]:
        v = self.view
        loop = self._open(fl, netns, port, "out")
        if loop:
            return [loop]
        link = v.link(netns, port)
        if link is None or link.peer is None:
            return [self._end(fl, "DROPPED", f"bridge port {port} leads nowhere")]
        return self.receive(fl, *link.peer)

    # ------------------------------------------------------------------ endings

    def _open(self, fl: Flight, netns: str, device: str, direction: str) -> End | None:
        """Start a hop on ``device`` (in ``fl`` itself); end the branch as LOOP when the same
        packet was already there (a forwarding loop) or the path grows beyond any real one."""
        # _flow_key written out (every hop opens here; keep the two alike)
        p = fl.packet
        e = p.encap
        if e is not None:
            e = (e.src._ip, e.dst._ip, e.sport, e.dport, e.vni, e.type)
        key = (netns, device, direction, p.src._ip, p.dst._ip, p.proto, p.sport, p.dport, e)
        seen = fl.seen
        n = len(seen)
        seen.add(key)  # (one hash of the key: grown or not tells whether it was there)
        again = len(seen) == n
        v = self.view
        node = v._nodes.get(netns, v)  # (NetView.node_of's memo read in place: every hop)
        if node is v:
            node = v.node_of(netns)
        fl.enter(node, netns, device, direction)
        if again:
            return self._end(
                fl,
                "LOOP",
                f"the packet comes back to {device} of {netns} unchanged: a forwarding loop {_cycle(fl.hops, key)}",
            )
        if n > MAX_HOPS:  # (every hop before this one added its key: n counts them)
            return self._end(
                fl,
                "LOOP",
                f"more than {MAX_HOPS} hops: a forwarding loop (the last hops: {_walk(fl.hops[-8:])} -> {netns} {device} {direction})",
            )
        return None

    def _end(
        self,
        fl: Flight,
        disposition: str,
        reason: str,
        *,
        endpoint: str | None = None,
        netns: str | None = None,
        step: Step | None = None,
    ) -> End:
        if step is None:
            step = (
                Step("drop", reason) if disposition not in ("DELIVERED", "EXITS_NETWORK") else None
            )
        if step is not None:
            fl.hop_steps.append(step)
        return End(fl, disposition, reason, endpoint=endpoint, netns=netns)


def _walk(hops, limit: int = 12) -> str:
    """The hops as ``NETNS DEVICE DIRECTION`` joined by arrows (the first ``limit`` of them)."""
    names = [f"{h.netns} {h.device} {h.direction}" for h in hops[:limit]]
    if len(hops) > limit:
        names.append(f"... {len(hops) - limit} more")
    return " -> ".join(names)


def _cycle(hops, key: tuple) -> str:
    """The hops that repeat: from the first visit of ``key``'s device back to it."""
    netns, device, direction = key[:3]
    for i, h in enumerate(hops):
        if (h.netns, h.device, h.direction) == (netns, device, direction) and _flow_key(
            netns, device, direction, h.packet
        ) == key:
            return f"through {_walk(hops[i:])} -> {netns} {device} {direction} again"
    return f"at {netns} {device} {direction}"


def _d(**kw):
    return FrozenDict(kw)
