"""The engine's read-only view of a built network: every lookup a namespace makes while it
forwards, each answered from that namespace's own state through the network's indexes."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address

from podnet.dataplane.bridge import fdb_lookup, is_bridge_own, vxlan_remote
from podnet.dataplane.lazy_ruleset import lazy_ruleset
from podnet.dataplane.neigh import neigh_lookup
from podnet.dataplane.netfilter import HookContext
from podnet.dataplane.routing import select_src
from podnet.dataplane.ruleset import Ruleset
from podnet.dataplane.rulevalues import RuleError
from podnet.model.base import FrozenDict
from podnet.model.dataplane import FdbEntry, Link, Neighbor, Route, netfilter_unused
from podnet.model.trace import Packet, Step

MEMO_LIMIT = 1 << 16
"""Entries a memo of the view holds before it starts afresh (bounds its memory)."""


class NetView:
    """Lookups over one ``podnet.dataplane.network.Network``, with per-namespace memos."""

    def __init__(self, network):
        self.network = network
        # the underlay's router (podnet.dataplane.network.Network.underlay_gateway)
        self.gateway: IPv4Address | None = network.underlay_gateway
        self._rulesets: dict[str, Ruleset] = {}
        self._found: dict[str, dict] = {}  # chains walks found per ruleset (netfilter.traverse)
        self._local: dict[str, frozenset[IPv4Address]] = {}
        self._contexts: dict[tuple, HookContext] = {}
        # Lookups a trace repeats at every hop, memoised: namespaces, their links and route
        # tables never change once built (the network builds each one once, on first use).
        self._ns: dict[str, object] = {}
        self._links: dict[tuple[str, str], Link | None] = {}
        self._routes: dict[tuple[str, int], Route | None] = {}
        self._routed: dict[tuple[str, int], tuple[Route, Step] | None] = {}
        self._route_texts: dict[int, tuple[Route, str]] = {}
        self._ipsets: dict[int, tuple] = {}  # id(tuple of sets) -> (sets, {name: set})
        self._host_pods_of: dict[str, tuple] = {}
        self._arp: dict[tuple, tuple[str, str, str, Step]] = {}
        self._nodes: dict[str, str | None] = {}
        self._sysctls: dict[tuple[str, str], int] = {}
        self._fdb: dict[tuple, tuple[Step | None, FdbEntry | None, Step | None]] = {}
        self._route_steps: dict[int, tuple[Route, Step]] = {}
        # VXLAN neighbours, FDB entries and sockets by (kind, netns, ...): fixed once built
        self._l2: dict[tuple, object] = {}
        self.walks: dict = {}  # memo of hook walks (podnet.trace.hooks)
        self.resolved: dict = {}  # memo of SRC/DST resolutions (podnet.trace.run)
        self._steps: dict = {}  # steps and texts of hops, see memo_step
        self.bare: dict[str, bool] = {}  # netns -> no netfilter in use there, see is_bare

    def extended(self, network) -> NetView:
        """A view of ``network`` (this one's plus namespaces) that shares this view's memos."""
        other = NetView(network)
        other._rulesets = self._rulesets
        other._found = self._found
        other._local = self._local
        other.bare = self.bare
        return other

    def netns(self, name: str):
        ns = self._ns.get(name)
        if ns is None:
            ns = self.network.get(name)
            if ns is None:
                raise KeyError(name)
            self._ns[name] = ns
        return ns

    def node_of(self, name: str) -> str | None:
        node = self._nodes.get(name, self)  # (None is a node: an outside client's has none)
        if node is self:
            if len(self._nodes) >= MEMO_LIMIT:
                self._nodes.clear()
            node = self._nodes[name] = self.netns(name).node
        return node

    def kind_of(self, name: str) -> str:
        return self.netns(name).kind

    def route(self, name: str, dst: IPv4Address) -> Route | None:
        key = (name, dst._ip)  # (the int IPv4Address keeps: int() is a Python-level call)
        memo = self._routes
        if key in memo:
            return memo[key]
        if len(memo) >= MEMO_LIMIT:
            memo.clear()
        route = memo[key] = self.network.route_table(name).lookup(dst)
        return route

    def routed(self, name: str, dst: IPv4Address) -> tuple[Route, Step] | None:
        """:meth:`route` and its :meth:`route_step` in one lookup (None: no route)."""
        key = (name, dst._ip)
        memo = self._routed
        if key in memo:
            return memo[key]
        if len(memo) >= MEMO_LIMIT:
            memo.clear()
        route = self.route(name, dst)
        hit = memo[key] = None if route is None else (route, self.route_step(route))
        return hit

    def route_text(self, route: Route) -> str:
        """``route.text()``, memoised per route."""
        hit = self._route_texts.get(id(route))
        if hit is None or hit[0] is not route:
            if len(self._route_texts) >= MEMO_LIMIT:
                self._route_texts.clear()
            hit = self._route_texts[id(route)] = (route, route.text())
        return hit[1]

    def route_step(self, route: Route, **detail) -> Step:
        """The ``route`` step of ``route`` (one Step object per route and detail, shared by
        every trace: steps are immutable)."""
        if not detail:
            hit = self._route_steps.get(id(route))
            if hit is None or hit[0] is not route:
                if len(self._route_steps) >= MEMO_LIMIT:
                    self._route_steps.clear()
                hit = self._route_steps[id(route)] = (route, Step("route", self.route_text(route)))
            return hit[1]
        key = ("route", id(route), tuple(detail.items()))
        hit = self._steps.get(key)
        if hit is None or hit[0] is not route:
            if len(self._steps) >= MEMO_LIMIT:
                self._steps.clear()
            step = Step("route", self.route_text(route), detail=FrozenDict(detail))
            hit = self._steps[key] = (route, step)
        return hit[1]

    def memo_step(self, key: tuple, make) -> object:
        """``make()`` memoised under ``key`` (a tuple starting with a name of its kind, naming
        everything the value depends on): the steps a hop repeats in every trace through it,
        made once. A value that depends on an object's identity holds that object, so that
        its ``id`` in the key stays its own."""
        memo = self._steps
        hit = memo.get(key)
        if hit is None:
            if len(memo) >= MEMO_LIMIT:
                memo.clear()
            hit = memo[key] = make()
        return hit

    def link(self, name: str, dev: str) -> Link | None:
        key = (name, dev)
        memo = self._links
        if key in memo:
            return memo[key]
        if len(memo) >= MEMO_LIMIT:
            memo.clear()
        link = memo[key] = self.netns(name).link(dev)
        return link

    def sysctl(self, name: str, key: str) -> int:
        memo = self._sysctls
        value = memo.get((name, key))
        if value is None:
            if len(memo) >= MEMO_LIMIT:
                memo.clear()
            value = memo[name, key] = int(self.netns(name).sysctls.get(key, 0))
        return value

    def arp(self, name: str, dev: str, ip: IPv4Address) -> tuple[str, str, str, Step] | None:
        """Who answers ARP for ``ip`` on ``dev``: ``(netns, device, MAC, neigh step)``, the
        step the neighbour entry ``IP dev DEV lladdr MAC REACHABLE`` (None: nobody)."""
        key = (name, dev, ip._ip)
        hit = self._arp.get(key)
        if hit is None:
            found = self.network.l2_resolve(name, dev, ip)
            if found is not None:  # an answer stays true: namespaces never change once built
                if len(self._arp) >= MEMO_LIMIT:
                    self._arp.clear()
                mac = found[2]
                step = Step("neigh", f"{ip} dev {dev} lladdr {mac} REACHABLE")
                hit = self._arp[key] = (*found, step)
        return hit

    def neigh(self, name: str, dev: str, ip: IPv4Address) -> Neighbor | None:
        return self._l2_memo(
            ("neigh", name, dev, ip._ip),
            lambda: neigh_lookup(self.netns(name), dev, ip, index=self.network.neigh_index(name)),
        )

    def _l2_memo(self, key: tuple, make):
        """``make()`` memoised in ``_l2`` under ``key``, None included (a namespace's
        neighbours and FDB never change once built)."""
        memo = self._l2
        if key in memo:
            return memo[key]
        if len(memo) >= MEMO_LIMIT:
            memo.clear()
        hit = memo[key] = make()
        return hit

    def vxlan_next(self, name: str, dev: str, ip: IPv4Address) -> tuple:
        """How the VXLAN device ``dev`` reaches ``ip``: ``(neighbour, its neigh step, remote
        VTEP, the fdb step of the neighbour's MAC)``, each None where the entry is missing."""
        key = ("vxnext", name, dev, ip._ip)
        memo = self._l2
        hit = memo.get(key)
        if hit is None:
            neigh = self.neigh(name, dev, ip)
            remote = fdb_step = None
            if neigh is not None:
                remote = self.vxlan_fdb(name, dev, neigh.mac)
                if remote is not None:
                    text = f"{neigh.mac} dev {dev} dst {remote} self permanent"
                    fdb_step = Step("fdb", text)
            neigh_step = None if neigh is None else Step("neigh", neigh.text())
            if len(memo) >= MEMO_LIMIT:
                memo.clear()
            hit = memo[key] = (neigh, neigh_step, remote, fdb_step)
        return hit

    def vxlan_fdb(self, name: str, dev: str, mac: str) -> IPv4Address | None:
        return self._l2_memo(
            ("vxfdb", name, dev, mac),
            lambda: vxlan_remote(self.netns(name), dev, mac, index=self.network.fdb_index(name)),
        )

    def bridge_lookup(
        self, name: str, bridge: str, mac: str | None
    ) -> tuple[Step | None, FdbEntry | None, Step | None]:
        """What ``bridge`` does with a frame to ``mac``: ``(own, entry, fdb step)``, ``own``
        the ``bridge`` step when ``mac`` is the bridge's own (up to the host), ``entry`` its
        FDB entry (None: none) and ``fdb step`` that entry's step. Memoised: a frame crosses
        the same bridge to the same MAC in every trace through it, and a bridge's FDB never
        changes once its namespace is built."""
        key = (name, bridge, mac)
        hit = self._fdb.get(key)
        if hit is None:
            own = entry = step = None
            if mac is not None:
                ns, index = self.netns(name), self.network.fdb_index(name)
                if is_bridge_own(ns, bridge, mac, index=index):
                    text = f"{bridge}: {mac} is the bridge's own address: up to the host (L3) on {bridge}"
                    own = Step("bridge", text)
                entry = fdb_lookup(ns, bridge, mac, index=index)
                if entry is not None:
                    step = Step("fdb", entry.text())
            if len(self._fdb) >= MEMO_LIMIT:
                self._fdb.clear()
            hit = self._fdb[key] = (own, entry, step)
        return hit

    def vxlan_socket(self, name: str, local: IPv4Address, port: int, vni: int) -> Link | None:
        """The VXLAN device whose kernel socket takes UDP ``port`` packets for ``vni``."""
        key = ("vxsock", name, local._ip, port, vni)
        memo = self._l2
        if key in memo:
            return memo[key]
        if len(memo) >= MEMO_LIMIT:
            memo.clear()
        memo[key] = found = next(
            (
                link
                for link in self.netns(name).links
                if (vx := link.vxlan) is not None
                and vx.port == port
                and vx.vni == vni
                and vx.local in (None, local)
            ),
            None,
        )
        return found

    def is_bare(self, name: str) -> bool:
        """Whether nothing programs iptables in ``name`` (a Pod's namespace): no table's hooks
        and no conntrack there (podnet.model.dataplane.netfilter_unused). Kept in ``bare``."""
        bare = self.bare.get(name)
        if bare is None:
            if len(self.bare) >= MEMO_LIMIT:
                self.bare.clear()
            bare = self.bare[name] = netfilter_unused(self.netns(name).tables)
        return bare

    def ruleset(self, name: str) -> Ruleset:
        rs = self._rulesets.get(name)
        if rs is None:
            try:
                tables = self.netns(name).tables
                rules = getattr(tables, "rules", None)  # a node's: compiled chain by chain
                if rules is not None:
                    rs = lazy_ruleset(rules, rules.table_names)
                else:
                    rs = Ruleset.from_tables(tables)
            except RuleError as e:  # name the namespace: the ruleset's own messages cannot
                raise RuleError(
                    [
                        dataclasses.replace(
                            p,
                            path=f"{name} {p.path}".strip(),
                            hint=p.hint
                            or f"iptables-restore would refuse the rules of {name} too: nothing was traced",
                        )
                        for p in e.problems
                    ]
                ) from None
            self._rulesets[name] = rs
        return rs

    def found(self, name: str) -> dict:
        """The dict in which hook walks of ``name`` keep the chains they looked up
        (``found`` of podnet.dataplane.netfilter.traverse): one per ruleset."""
        found = self._found.get(name)
        if found is None:
            found = self._found[name] = {}
        return found

    def hook_context(
        self,
        name: str,
        in_iface: str | None,
        out_iface: str | None,
        physin: str | None,
        physout: str | None,
        ctstate: str,
        ctstatus: frozenset[str],
        ct_new: bool,
        recent,
    ) -> tuple[tuple, HookContext]:
        """The HookContext of a hook walk in ``name`` and a key naming all of it: the rest
        (local addresses, MASQUERADE's address, ipsets) is the namespace's own and fixed."""
        key = (name, in_iface, out_iface, physin, physout, ctstate, ctstatus, ct_new, recent)
        ctx = self._contexts.get(key)
        if ctx is None:
            if len(self._contexts) >= MEMO_LIMIT:  # bounds memory; any entry can be remade
                self._contexts.clear()
            ctx = self._contexts[key] = HookContext(
                in_iface=in_iface,
                out_iface=out_iface,
                physin=physin,
                physout=physout,
                ctstate=ctstate,
                ctstatus=ctstatus,
                ct_new=ct_new,
                local_addrs=self.local_addrs(name),
                masq_addr=self.primary_addr(name, out_iface) if out_iface else None,
                recent=recent,
                ipsets=self.ipsets(name),
            )
        return key, ctx

    def ipsets(self, name: str) -> dict:
        """The namespace's ipsets by name (one dict per distinct tuple of sets: nodes share)."""
        sets = self.netns(name).ipsets
        hit = self._ipsets.get(id(sets))
        if hit is None or hit[0] is not sets:
            hit = self._ipsets[id(sets)] = (sets, {s.name: s for s in sets})
        return hit[1]

    def local_addrs(self, name: str) -> frozenset[IPv4Address]:
        addrs = self._local.get(name)
        if addrs is None:
            addrs = frozenset(a.ip for link in self.netns(name).links for a in link.addresses)
            self._local[name] = addrs
        return addrs

    def primary_addr(self, name: str, dev: str) -> IPv4Address | None:
        link = self.link(name, dev)
        if link is None or not link.addresses:
            return None
        return link.addresses[0].ip

    def source_address(self, name: str, dst: IPv4Address) -> IPv4Address | None:
        """The source address a socket in ``name`` gets toward ``dst`` (route src, else the
        out device's address)."""
        route = self.route(name, dst)
        if route is None:
            return None
        if route.src is not None:
            return route.src
        return select_src(self.netns(name), route.dev, route.gateway or dst)

    def socket_owner(self, name: str, p: Packet) -> str | None:
        """The Pod whose socket receives ``p`` in ``name``: the Pod of a Pod namespace; in a
        node's namespace, a hostNetwork Pod of that node that declares the port."""
        ns = self.netns(name)
        if ns.kind == "pod":
            return name.split(":", 1)[1]
        if ns.kind == "node":
            for pod in self._host_pods(ns.node):
                for c in pod.containers:
                    for cp in c.ports:
                        if cp.container_port == p.dport and cp.protocol.lower() == p.proto:
                            return pod.key
        return None

    def _host_pods(self, node: str) -> tuple:
        pods = self._host_pods_of.get(node)
        if pods is None:
            pods = self._host_pods_of[node] = tuple(
                p for p in self.network.cluster.pods if p.host_network and p.node == node
            )
        return pods

    # the underlay's router -------------------------------------------------------------------

    def external_netns(self, ip: IPv4Address) -> str | None:
        return self.network.external_netns(ip)


def view_of(network) -> NetView:
    """The network's view, made once per network."""
    memo = network._memo
    view = memo.get("trace-view")
    if view is None:
        view = memo["trace-view"] = NetView(network)
    return view
