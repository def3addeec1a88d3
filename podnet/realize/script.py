"""What to run in every namespace to realize an emulated network: iproute2 ``-batch`` lines,
``bridge -batch`` lines, sysctls, ``ipset restore`` and ``iptables-restore`` input.

Pure: :func:`plan_run` turns a :class:`~podnet.dataplane.network.Network` into a
:class:`RunPlan`; nothing is executed here (podnet.realize.system does that), so every command
is testable without root.

Topology (the emulator's, made real):

* ``<prefix>-underlay`` holds bridge ``br0``: the nodes' shared L2 segment. Each node's, each
  outside client's and the gateway's ``eth0`` is a veth created *inside* this namespace whose peer
  is moved straight into its owner's namespace (``peer name eth0 netns X``): no device ever
  exists in the host's namespace.
* ``<prefix>-gw`` owns the underlay gateway address (every node's ``default via``) and routes to
  the outside clients, which sit on the underlay with ``IP/32`` and ``default via <node> onlink``
  (podnet.dataplane.build external_client). It sends no redirects, so nodes keep using it as
  the emulator's nodes do.
* One namespace per node and per pod-network Pod, with the emulator's devices, MACs, MTUs,
  addresses, routes, neighbours, FDB entries, sysctls and iptables rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from podnet.dataplane.names import mac_from_seed
from podnet.model.dataplane import Link, Netns, netfilter_unused
from podnet.realize.names import UNDERLAY_BRIDGE, RunNames

UNDERLAY_MTU = 1500
# Not the emulator's: Linux sends ICMP errors (a REJECT's port unreachable, too) to one
# destination at most 6 in a burst, then one a second (net/ipv4/icmp.c icmpv4_xrlim_allow,
# net.ipv4.icmp_ratelimit=1000 ms). `podnet verify` rejects dozens of probes from one client at
# once, so with the limit on, later refusals arrive as timeouts: the limit is off in every
# realized node and the gateway (a measurement setting; podnet models no ICMP rate limit).
MEASUREMENT_SYSCTLS = (("net.ipv4.icmp_ratelimit", "0"), ("net.ipv4.icmp_ratemask", "0"))


@dataclass(frozen=True, slots=True)
class NetnsScript:
    """Everything to run in one kernel namespace, in order: ``ip`` lines, ``bridge`` lines,
    sysctls, ``nfacct add`` names, ``ipset restore`` input, ``iptables-restore`` input (None: nothing to load)."""

    emulated: str  # emulator namespace name, or "underlay" / "gateway"
    netns: str  # kernel namespace name
    ip: tuple[str, ...] = ()
    bridge: tuple[str, ...] = ()
    sysctls: tuple[tuple[str, str], ...] = ()
    nfacct: tuple[str, ...] = ()  # accounting objects the rules name (-m nfacct)
    ipset: str | None = None
    iptables: str | None = None


@dataclass(frozen=True, slots=True)
class RunPlan:
    """The scripts of one run, in the order they must run (a namespace's devices are made by an
    earlier script: ``eth0`` of a node by the underlay's, a Pod's ``eth0`` by its node's)."""

    names: RunNames
    scripts: tuple[NetnsScript, ...]
    # emulator namespace name -> kernel namespace name (plus "underlay" and "gateway")
    mapping: Mapping[str, str]

    def netns_names(self) -> tuple[str, ...]:
        """Every kernel namespace of the run, in creation order."""
        return tuple(s.netns for s in self.scripts)


def _addr_line(dev: str, addr) -> str:
    # CNI plugins and flannel add IPv4 addresses through vishvananda/netlink, which fills in the
    # broadcast address for prefixes shorter than /31 (netlink addr_linux.go addrHandle): "brd +".
    brd = " brd +" if addr.network.prefixlen < 31 else ""
    return f"addr add {addr.with_prefixlen}{brd} dev {dev}"


def _link_lines(ns: Netns, lk: Link, names: RunNames) -> list[str]:
    """Create (or adjust, when an earlier script made it) one device, without addresses."""
    if lk.kind == "loopback":
        return []
    if lk.kind == "ether" or (lk.kind == "veth" and lk.master is None):
        # made by the underlay's script (eth0 on the segment) or by the node's (a Pod's eth0)
        return [f"link set dev {lk.name} address {lk.mac} mtu {lk.mtu}"]
    if lk.kind == "vxlan":
        vx = lk.vxlan
        learning = "learning" if vx.learning else "nolearning"
        local = f" local {vx.local}" if vx.local is not None else ""
        return [
            f"link add {lk.name} address {lk.mac} mtu {lk.mtu} type vxlan id {vx.vni}{local} "
            f"dev {vx.dev} dstport {vx.port} {learning}"
        ]
    if lk.kind == "bridge":
        return [f"link add {lk.name} address {lk.mac} mtu {lk.mtu} type bridge"]
    if lk.kind == "veth":
        if lk.peer is None:
            raise ValueError(f"{ns.name} {lk.name}: a bridge port veth without a peer")
        peer_ns, peer_link = lk.peer
        return [
            f"link add {lk.name} address {lk.mac} mtu {lk.mtu} type veth peer name {peer_link} "
            f"netns {names.netns(peer_ns)}",
            f"link set dev {lk.name} master {lk.master}",
            # the bridge plugin's hairpinMode (flannel's delegate sets it true)
            f"link set dev {lk.name} type bridge_slave hairpin {'on' if lk.hairpin else 'off'}",
        ]
    raise ValueError(f"{ns.name} {lk.name}: no way to realize a device of kind {lk.kind!r}")


def netns_script(ns: Netns, names: RunNames, tables_text: str | None = None) -> NetnsScript:
    """The script of one emulated namespace (node, Pod or outside client)."""
    links = sorted(ns.links, key=lambda x: x.index)
    ip: list[str] = []
    for lk in links:
        ip += _link_lines(ns, lk, names)
    for lk in links:
        if lk.kind != "loopback":
            ip += [_addr_line(lk.name, a) for a in lk.addresses]
    ip += [f"link set dev {lk.name} up" for lk in links]
    peers = ns.peers
    routes = list(ns.routes) + (list(peers.routes_for(ns.node)) if peers else [])
    # the kernel adds proto-kernel routes itself for every address (fib_add_ifaddr)
    ip += [f"route replace {r.text()}" for r in routes if r.proto != "kernel"]
    neighbors = list(ns.neighbors) + (list(peers.neighbors_for(ns.node)) if peers else [])
    ip += [
        f"neigh replace {n.ip} lladdr {n.mac} nud {n.state.lower()} dev {n.dev}" for n in neighbors
    ]
    fdb = list(ns.fdb) + (list(peers.fdb_for(ns.node)) if peers else [])
    # Only the entries someone installs: bridge ports' own MACs are the kernel's, and a Pod's MAC
    # on its port is learned from traffic.
    bridge = tuple(
        f"fdb append {e.mac} dev {e.dev} dst {e.dst} self permanent"
        for e in fdb
        if e.dst is not None and e.self_
    )
    sysctls = tuple(sorted((k, str(v)) for k, v in ns.sysctls.items()))
    if ns.kind == "node":
        sysctls += MEASUREMENT_SYSCTLS
    return NetnsScript(
        emulated=ns.name,
        netns=names.netns(ns.name),
        ip=tuple(ip),
        bridge=bridge,
        sysctls=sysctls,
        nfacct=nfacct_names(ns) if tables_text else (),
        ipset=ipset_restore_text(getattr(ns, "ipsets", None)),
        iptables=tables_text,
    )


_NFACCT = re.compile(r"--nfacct-name (\S+)")


def nfacct_names(ns: Netns) -> tuple[str, ...]:
    """The nfacct objects the namespace's rules count into. kube-proxy creates them before it
    writes the rules (pkg/proxy/iptables/proxier.go: nfacctRunner.Ensure); iptables-restore
    refuses a rule naming one that does not exist.

    >>> from podnet.model.dataplane import Chain, Table
    >>> ns = Netns("n", "node", "n", (), tables=(Table("filter", (Chain("X", (
    ...     "-m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP",)),)),))
    >>> nfacct_names(ns)
    ('ct_state_invalid_dropped_pkts',)
    """
    found = {
        m.group(1)
        for t in ns.tables
        for c in t.chains
        for r in c.rules
        for m in _NFACCT.finditer(r)
    }
    return tuple(sorted(found))


def ipset_restore_text(sets) -> str | None:
    """``ipset restore`` input for a namespace's sets: exactly what ``podnet ipset-save`` prints
    (podnet.render.ipset_save), None when the namespace has no sets."""
    if not sets:
        return None
    from podnet.render.ipset_save import render_ipsets

    return render_ipsets(sets)


def underlay_script(names: RunNames, attached: Iterable[tuple[str, str, str]]) -> NetnsScript:
    """The underlay namespace: bridge ``br0`` and one port per attached ``(emulated, kernel netns,
    eth0 MAC)``; each port's peer goes straight into its owner's namespace as ``eth0``."""
    ip = [f"link add {UNDERLAY_BRIDGE} mtu {UNDERLAY_MTU} type bridge"]
    for emulated, netns, mac in attached:
        port = names.underlay_port(emulated)
        ip += [
            f"link add {port} address {mac_from_seed(f'underlay|{port}')} mtu {UNDERLAY_MTU} "
            f"type veth peer name eth0 address {mac} mtu {UNDERLAY_MTU} netns {netns}",
            f"link set dev {port} master {UNDERLAY_BRIDGE}",
            f"link set dev {port} up",
        ]
    ip += [f"link set dev {UNDERLAY_BRIDGE} up", "link set dev lo up"]
    # a plain switch: its frames never go through this namespace's (empty) iptables
    return NetnsScript(
        "underlay",
        names.underlay,
        ip=tuple(ip),
        sysctls=(("net.bridge.bridge-nf-call-iptables", "0"),),
    )


def gateway_script(
    names: RunNames, address: IPv4Address, underlay: IPv4Network, clients: Iterable[IPv4Address]
) -> NetnsScript:
    """The underlay gateway: owns ``address`` and forwards to the outside clients (each a /32 on
    the segment), without ICMP redirects (which would teach nodes a path the emulator's nodes
    do not take)."""
    ip = [
        "link set dev lo up",
        f"addr add {address}/{underlay.prefixlen} brd + dev eth0",
        "link set dev eth0 up",
    ]
    ip += [f"route replace {c}/32 dev eth0 scope link" for c in sorted(clients)]
    sysctls = (
        ("net.ipv4.conf.all.send_redirects", "0"),
        ("net.ipv4.conf.eth0.send_redirects", "0"),
        ("net.ipv4.ip_forward", "1"),
        *MEASUREMENT_SYSCTLS,
    )
    return NetnsScript("gateway", names.gateway, ip=tuple(ip), sysctls=sysctls)


def gateway_mac() -> str:
    """The gateway's ``eth0`` MAC (deterministic like every other)."""
    return mac_from_seed("underlay-gateway|eth0")


def plan_run(network, names: RunNames) -> RunPlan:
    """Every script of a run for ``network`` (with any outside clients already added through
    podnet.dataplane.build.with_external_client)."""
    from podnet.render.iptables_save import render_tables

    emulated = [network.netns[n] for n in network.netns_names()]
    attached: list[tuple[str, str, str]] = []
    for ns in emulated:
        eth0 = ns.link("eth0")
        if eth0 is not None and eth0.kind == "ether":
            attached.append((ns.name, names.netns(ns.name), eth0.mac))
    gw = network.underlay_gateway
    if gw is not None:
        attached.append(("gateway", names.gateway, gateway_mac()))
    scripts = [underlay_script(names, attached)]
    kinds = {"node": 0, "pod": 1, "external": 2}
    for ns in sorted(emulated, key=lambda n: kinds.get(n.kind, 3)):
        # exactly what `podnet iptables-save --node` prints (LoadedCluster.iptables_save)
        text = None if netfilter_unused(ns.tables) else render_tables(ns.tables)
        scripts.append(netns_script(ns, names, text))
    if gw is not None:
        clients = [
            IPv4Address(n.partition(":")[2])
            for n in network.netns_names()
            if n.startswith("external:")
        ]
        scripts.append(gateway_script(names, gw, network.underlay, clients))
    mapping = {s.emulated: s.netns for s in scripts}
    return RunPlan(names, tuple(scripts), mapping)
