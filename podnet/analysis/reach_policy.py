"""NetworkPolicy as the policy agent enforces it, evaluated for classes of Pods at once.

``podnet reach`` over 150,000 x 150,000 Pods cannot trace every pair, nor every pair of the
classes a Deployment-per-class split gives (10,000 Deployments: 10^8 pairs). What a Pod-to-Pod
connection at the Pod IP meets, besides routes that reach every Pod of a flannel cluster alike,
is the policy agent's filter rules (podnet.control.policy, after kube-router v2.6.3
pkg/controllers/netpol): the source Pod's firewall chain, then the destination Pod's (on the
same node the bridge path runs both, in the order of the Pods' IPs; across nodes the source's
node runs the first, the destination's node the second: the verdict is the same, only which
denial is named first can differ). Each chain:

* accepts traffic to the Pod from its own node (``--src-type LOCAL``): only a hostNetwork source
  on that node, never a Pod IP;
* runs the chains of the policies selecting the Pod: ingress-only ones for ``-d POD``,
  egress-only ones for ``-s POD``, policies of both types for every packet (kube-router's
  layout: such a chain holds both directions' rules), or KUBE-NWPLCY-DEFAULT (mark OK) when no
  policy selects it in that direction;
* REJECTs what no rule marked (KUBE-NWPLCY-COMMON before them accepts only ICMP and
  established traffic, never a connection's first TCP, UDP or SCTP packet).

A policy chain's rules each match (source ipset, destination ipset, protocol, port range). The
ipsets hold the policy's targets, each rule's peer Pods, its ipBlocks (hash:net, excepts as
``nomatch``) and, for named ports, the Pods whose port of that name has a given number. So a Pod's
part in every verdict is fixed by the sets holding its IP (its *atoms*) and, as a destination, by
the port it is probed on: Pods with the same atoms (and port) are interchangeable. The atoms are
computed with the selections' label indexes (podnet.control.policy_select, one scan per distinct
selector and namespace; peers written alike share one atom), never Pod x policy.

:func:`evaluate` then works on classes with bitsets: for each destination class the set of source
classes some ingress rule of its chain admits, for each source class the set of destination
classes some egress rule admits; a cell is allowed when both say so. The rules are compiled here
from the policy objects exactly as podnet.control.policy writes them (including kube-router's
quirks: a both-types policy's ingress rules can admit its target's egress; an egress rule without
peers allows a named port's numbers to any destination); tests/test_reach_scale.py checks the
result against tracing every Pod pair through the real rules.

>>> rule = MarkRule(src=None, dst=None, proto="tcp", lo=80, hi=90)
>>> port_ok(rule, "tcp", 85), port_ok(rule, "udp", 85), port_ok(rule, "tcp", 91)
(True, False, False)
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from ipaddress import IPv4Network
from operator import itemgetter

from podnet.control.policy import container_port
from podnet.control.policy_select import Selection, actionable, policy_key
from podnet.model.cluster import Pod
from podnet.model.dataplane import IpSet
from podnet.model.spec import NetworkPolicySpec, PolicyRule


@dataclass(frozen=True, slots=True)
class MarkRule:
    """One marking rule of a policy chain: atoms (None: any address), protocol, port range."""

    src: int | None
    dst: int | None
    proto: str | None  # lower case; None: every protocol (and then every port)
    lo: int | None
    hi: int | None


def port_ok(r: MarkRule, proto: str, port: int) -> bool:
    """``-p PROTO -m PROTO --dport LO[:HI]`` for a packet to ``port``."""
    if r.proto is None:
        return True
    if r.proto != proto:
        return False
    return r.lo is None or r.lo <= port <= (r.hi if r.hi is not None else r.lo)


@dataclass(frozen=True, slots=True)
class PolicyModel:
    key: str  # ns/name
    kind: str  # ingress | egress | both
    target: int  # atom of the Pods spec.podSelector selects
    rules: tuple[MarkRule, ...]


@dataclass
class Model:
    """The cluster's policies as atoms and marking rules, and each actionable Pod's atoms."""

    policies: tuple[PolicyModel, ...]
    atoms_of: dict[int, list[int]]  # id(Pod) -> atoms holding its IP (sorted)
    nets: list[tuple[int, IpSet]]  # hash:net atoms, tested by address
    src_atoms: frozenset[int]  # atoms some rule tests on the source (or egress targets)
    dst_atoms: frozenset[int]
    by_target: dict[int, tuple[int, ...]]  # atom -> indexes of the policies it is the target of
    names: dict[int, str]  # atom -> what it is, for humans


def _kind(pol: NetworkPolicySpec) -> str:
    ing, eg = "Ingress" in pol.policy_types, "Egress" in pol.policy_types
    return "both" if ing and eg else "egress" if eg else "ingress"


def _block_members(blocks) -> tuple[tuple[IPv4Network, bool], ...]:
    out: list[tuple[IPv4Network, bool]] = []
    for b in blocks:
        for net, nomatch in [(b.cidr, False)] + [(e, True) for e in b.excepts]:
            if net.prefixlen == 0:  # hash:net cannot hold /0: two /1
                out += [(IPv4Network("0.0.0.0/1"), nomatch), (IPv4Network("128.0.0.0/1"), nomatch)]
            else:
                out.append((net, nomatch))
    return tuple(out)


class _Builder:
    def __init__(self, sel: Selection, pods_by_ip: list[tuple[int, Pod]]):
        self.sel = sel
        self.ids: dict[tuple, int] = {}
        self.members: list[tuple[Pod, ...]] = []
        self.nets: list[tuple[int, IpSet]] = []
        self.names: dict[int, str] = {}
        self.by_ip = pods_by_ip
        self.ips = [ip for ip, _ in pods_by_ip]

    def pods(self, key: tuple, make, name: str) -> int | None:
        """The atom of a Pod set (deduplicated by ``key``); None when empty (kube-router writes
        no rule for peers that name no Pod)."""
        at = self.ids.get(key)
        if at is None:
            found = make()
            if type(found) is not list and type(found) is not tuple:
                found = list(found)
            # each Pod once, in order (deduplicated by object; dict(zip) runs in C)
            members = tuple(dict(zip(map(id, found), found, strict=True)).values())
            at = self.ids[key] = len(self.members) if members else -1
            if members:
                self.members.append(members)
                self.names[at] = name
        return None if at < 0 else at

    def net(self, blocks) -> int:
        members = _block_members(blocks)
        key = ("net", members)
        at = self.ids.get(key)
        if at is None:
            at = self.ids[key] = len(self.members)
            s = IpSet("", "hash:net", members)
            hit: dict[int, Pod] = {}
            for n, nomatch in members:
                if nomatch:
                    continue
                lo = bisect_left(self.ips, int(n.network_address))
                hi = bisect_right(self.ips, int(n.broadcast_address))
                for ip, pod in self.by_ip[lo:hi]:
                    if s.has(ip):
                        hit[id(pod)] = pod
            self.members.append(tuple(hit.values()))
            self.nets.append((at, s))
            self.names[at] = "ipBlock " + ",".join(
                str(n) + (" nomatch" if x else "") for n, x in members
            )
        return at


def _peer_key(pol: NetworkPolicySpec, peer) -> tuple:
    if peer.namespace_selector is not None:
        return ("nssel", peer.namespace_selector, peer.pod_selector)
    return ("ns", pol.meta.namespace or "default", peer.pod_selector)


def _ports(rule: PolicyRule, b: _Builder, base_key: tuple, named_from) -> tuple[list, list]:
    """Numeric (proto, lo, hi) and named (proto, number, atom of the Pods having it)."""
    numeric, named = [], []
    for p in rule.ports:
        proto = p.protocol.lower()
        if p.port is None:
            numeric.append((proto, None, None))
        elif isinstance(p.port, int):
            end = p.end_port if p.end_port is not None and p.end_port >= p.port else None
            numeric.append((proto, p.port, end))
        else:
            by_num: dict[int, list[Pod]] = {}
            for pod in named_from():
                num = container_port(pod, p.port, p.protocol)
                if num is not None:
                    by_num.setdefault(num, []).append(pod)
            for n in sorted(by_num):
                at = b.pods(("named", base_key, p.port, p.protocol, n), lambda n=n, by_num=by_num: by_num[n],
                            f"Pods with port {p.port}={n}/{proto}")  # fmt: skip
                named.append((proto, n, at))
    return numeric, named


def _ingress(b: _Builder, pol: NetworkPolicySpec, target: int) -> list[MarkRule]:
    out: list[MarkRule] = []
    tkey = ("target", pol.meta.namespace or "default", pol.pod_selector)
    for rule in pol.ingress:
        numeric, named = _ports(rule, b, tkey, lambda: b.members[target])
        all_ports = not rule.ports
        peers = tuple(p for p in rule.peers if p.ip_block is None)
        blocks = [p.ip_block for p in rule.peers if p.ip_block is not None]
        src = None
        if peers:
            key = ("peers",) + tuple(_peer_key(pol, p) for p in peers)
            src = b.pods(key, lambda peers=peers: [q for p in peers for q in b.sel.peer_pods(pol, p)],
                         "peers of " + policy_key(pol))  # fmt: skip
        sources = []
        if src is not None:
            sources.append((src, all_ports))
        if not rule.peers:
            sources.append((None, all_ports))
        if blocks:
            sources.append((b.net(blocks), all_ports))
        for s, every in sources:
            if every:
                out.append(MarkRule(s, target, None, None, None))
                continue
            out += [MarkRule(s, target, pr, lo, hi) for pr, lo, hi in numeric]
            out += [MarkRule(s, at, pr, n, None) for pr, n, at in named]
    return out


def _egress(b: _Builder, pol: NetworkPolicySpec, target: int) -> list[MarkRule]:
    out: list[MarkRule] = []
    ns = pol.meta.namespace or "default"
    for rule in pol.egress:
        all_ports = not rule.ports
        peers = tuple(p for p in rule.peers if p.ip_block is None)
        blocks = [p.ip_block for p in rule.peers if p.ip_block is not None]
        key = ("peers",) + tuple(_peer_key(pol, p) for p in peers)
        dst = None
        if peers:
            dst = b.pods(key, lambda peers=peers: [q for p in peers for q in b.sel.peer_pods(pol, p)],
                         "peers of " + policy_key(pol))  # fmt: skip
        # named ports resolve on the peer Pods; without peers, on the policy's namespace
        if rule.peers:
            numeric, named = _ports(
                rule, b, key, lambda dst=dst: b.members[dst] if dst is not None else ()
            )
        else:
            numeric, named = _ports(rule, b, ("ns", ns), lambda: b.sel.pods(ns, None))
        if dst is not None:
            if all_ports:
                out.append(MarkRule(target, dst, None, None, None))
            else:
                out += [MarkRule(target, dst, pr, lo, hi) for pr, lo, hi in numeric]
                out += [MarkRule(target, at, pr, n, None) for pr, n, at in named]
        if not rule.peers:
            if all_ports:
                out.append(MarkRule(target, None, None, None, None))
            else:
                out += [MarkRule(target, None, pr, lo, hi) for pr, lo, hi in numeric]
                out += [MarkRule(target, None, pr, n, None) for pr, n, _ in named]
        if blocks:
            net = b.net(blocks)
            if all_ports:
                out.append(MarkRule(target, net, None, None, None))
            else:  # kube-router leaves named ports out of ipBlock rules
                out += [MarkRule(target, net, pr, lo, hi) for pr, lo, hi in numeric]
    return out


_first = itemgetter(0)


def build_model(sel: Selection, pods: list[Pod]) -> Model:
    """Atoms and marking rules of every policy of ``sel.cluster``, and the atoms of ``pods``."""
    cluster = sel.cluster
    by_ip = [(p.ip._ip, p) for p in pods]  # (the int IPv4Address keeps: int() is Python code)
    if len({ip for ip, _ in by_ip}) == len(by_ip):  # the common case: every address once
        by_ip.sort(key=_first)
    else:
        by_ip.sort(key=lambda t: (t[0], t[1].namespace, t[1].name))
    b = _Builder(sel, by_ip)
    policies = []
    for pol in cluster.policies:
        ns = pol.meta.namespace or "default"
        kind = _kind(pol)
        target = b.pods(("target", ns, pol.pod_selector), lambda pol=pol: sel.selected(pol),
                        f"targets of {policy_key(pol)}")  # fmt: skip
        if target is None:  # selects no Pod: its chain is never jumped to
            continue
        rules: list[MarkRule] = []
        if kind in ("both", "ingress"):
            rules += _ingress(b, pol, target)
        if kind in ("both", "egress"):
            rules += _egress(b, pol, target)
        policies.append(PolicyModel(policy_key(pol), kind, target, tuple(rules)))
    src_atoms, dst_atoms = set(), set()
    by_target: dict[int, list[int]] = {}
    for i, pm in enumerate(policies):
        by_target.setdefault(pm.target, []).append(i)
        # a target decides which chains its Pods run: egress ones as a source, ingress ones as
        # a destination (a both-types chain runs either way)
        if pm.kind != "ingress":
            src_atoms.add(pm.target)
        if pm.kind != "egress":
            dst_atoms.add(pm.target)
        for r in pm.rules:
            if r.src is not None:
                src_atoms.add(r.src)
            if r.dst is not None:
                dst_atoms.add(r.dst)
    # Pods are identified by object (the cluster holds each once): no key strings at 150,000
    # (a list per Pod made once, not a [] per membership as setdefault would: 70,000
    # memberships at 30,000 Pods)
    atoms_of: dict[int, list[int]] = {id(p): [] for p in pods}
    for at, members in enumerate(b.members):
        for k in map(id, members):
            atoms = atoms_of.get(k)
            if atoms is not None:
                atoms.append(at)
    atoms_of = {k: v for k, v in atoms_of.items() if v}
    return Model(tuple(policies), atoms_of, b.nets, frozenset(src_atoms), frozenset(dst_atoms),
                 {k: tuple(v) for k, v in by_target.items()}, b.names)  # fmt: skip


def plain(pod: Pod) -> bool:
    """A Pod whose traffic the class evaluation covers: one the agent polices (not hostNetwork,
    not finished). Pairs with other Pods are traced."""
    return actionable(pod)


def src_signature(m: Model, pod: Pod) -> tuple:
    """The atoms that matter of ``pod`` as a source (sorted)."""
    keep = m.src_atoms
    return tuple([a for a in m.atoms_of.get(id(pod), ()) if a in keep])


def dst_signature(m: Model, pod: Pod) -> tuple:
    """The atoms that matter of ``pod`` as a destination (sorted)."""
    keep = m.dst_atoms
    return tuple([a for a in m.atoms_of.get(id(pod), ()) if a in keep])


def _bits(classes: list[tuple], atoms) -> dict[int, int]:
    """atom -> bitmask of the classes whose signature holds it."""
    out: dict[int, int] = {}
    for i, sig in enumerate(classes):
        for a in sig:
            if a in atoms:
                out[a] = out.get(a, 0) | (1 << i)
    return out


def evaluate(m: Model, srcs: list[tuple], dsts: list[tuple[tuple, str, int]], progress=None
             ) -> tuple[list[int], list[int]]:  # fmt: skip
    """For plain classes: ``ingress[j]``, the bitmask of source classes destination class ``j``'s
    chain admits, and ``egress[i]``, the bitmask of destination classes source class ``i``'s chain
    lets out. ``srcs`` are source signatures, ``dsts`` (signature, protocol, port)."""
    all_src = (1 << len(srcs)) - 1
    all_dst = (1 << len(dsts)) - 1
    src_bits = _bits(srcs, m.src_atoms)
    dst_bits = _bits([d[0] for d in dsts], m.dst_atoms)
    by_port: dict[tuple[str, int], int] = {}
    for j, (_, proto, port) in enumerate(dsts):
        by_port[(proto, port)] = by_port.get((proto, port), 0) | (1 << j)
    port_memo: dict[tuple, int] = {}

    def ports(r: MarkRule) -> int:
        k = (r.proto, r.lo, r.hi)
        hit = port_memo.get(k)
        if hit is None:
            hit = 0
            for (proto, port), mask in by_port.items():
                if port_ok(r, proto, port):
                    hit |= mask
            port_memo[k] = hit
        return hit

    ingress = []
    for j, (sig, proto, port) in enumerate(dsts):
        if progress is not None and j % 256 == 0:
            progress("reach: destination classes", j, len(dsts))
        mine = chain(m, sig, "ingress")
        if not mine:
            ingress.append(all_src)
            continue
        have = set(sig)
        ok = 0
        for p in mine:
            for r in p.rules:
                if (r.dst is None or r.dst in have) and port_ok(r, proto, port):
                    ok |= all_src if r.src is None else src_bits.get(r.src, 0)
        ingress.append(ok)
    egress = []
    for i, sig in enumerate(srcs):
        if progress is not None and i % 256 == 0:
            progress("reach: source classes", i, len(srcs))
        mine = chain(m, sig, "egress")
        if not mine:
            egress.append(all_dst)
            continue
        have = set(sig)
        ok = 0
        for p in mine:
            for r in p.rules:
                if r.src is None or r.src in have:
                    ok |= (all_dst if r.dst is None else dst_bits.get(r.dst, 0)) & ports(r)
        egress.append(ok)
    return ingress, egress


def chain(m: Model, atoms, direction: str) -> list[PolicyModel]:
    """The policies whose rules a Pod holding ``atoms`` runs for ``direction`` (``ingress`` or
    ``egress``): those targeting it with that type (a both-types policy's chain holds both
    directions' rules, and all are tried: kube-router's layout)."""
    skip = "egress" if direction == "ingress" else "ingress"
    return [p for a in atoms for i in m.by_target.get(a, ()) if (p := m.policies[i]).kind != skip]


def isolating(m: Model, sig: tuple, direction: str) -> list[str]:
    """The policies whose chains a class's Pods run for ``direction`` (for reasons)."""
    return sorted({p.key for p in chain(m, sig, direction)})
