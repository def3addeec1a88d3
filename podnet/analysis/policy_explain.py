"""NetworkPolicy in words: which policies isolate each end of a connection, which rule of which
policy admits it, or why none does.

The verdict of a trace comes from walking the policy agent's iptables rules
(podnet.control.policy); this module evaluates the same packet against the policy objects as
the API defines them (networking.k8s.io/v1, see shared reference section 4) to say *why*:
isolation per direction, rules as (peers AND ports), peers ORed, ports ORed, named ports
resolved on the destination Pod, policies unioned, traffic from the Pod's own node always
admitted. tests/test_policy_explain.py checks that both agree on every conformance probe.

>>> from podnet.model.spec import LabelSelector, LabelSelectorRequirement
>>> from podnet.model.base import FrozenDict
>>> selector_text(LabelSelector(FrozenDict(app="web"),
...     (LabelSelectorRequirement("tier", "NotIn", ("db",)),)))
'app=web,tier notin (db)'
>>> selector_text(LabelSelector())
'{}'
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from podnet.control.policy_select import Selection, policy_key, selection
from podnet.model.cluster import Cluster, Pod
from podnet.model.spec import LabelSelector, NetworkPolicySpec, PolicyPeer, PolicyPort, PolicyRule

# ------------------------------------------------------------------------------ texts


def selector_text(sel: LabelSelector | None) -> str:
    """A label selector as kubectl writes it (``app=web,tier notin (db)``); ``{}``: all."""
    if sel is None or sel.empty:
        return "{}"
    parts = [f"{k}={v}" for k, v in sel.match_labels.items()]
    for r in sel.match_expressions:
        vals = ",".join(r.values)
        parts.append(
            {
                "In": f"{r.key} in ({vals})",
                "NotIn": f"{r.key} notin ({vals})",
                "Exists": r.key,
                "DoesNotExist": f"!{r.key}",
            }.get(r.operator, r.key)  # fmt: skip
        )
    return ",".join(parts)


def peer_text(policy: NetworkPolicySpec, peer: PolicyPeer) -> str:
    """One peer in words."""
    if peer.ip_block is not None:
        b = peer.ip_block
        ex = f" except {', '.join(str(e) for e in b.excepts)}" if b.excepts else ""
        return f"ipBlock {b.cidr_text}{ex}"
    ns = policy.meta.namespace or "default"
    if peer.namespace_selector is not None:
        pods = (
            "all pods" if peer.pod_selector is None else f"pods {selector_text(peer.pod_selector)}"
        )
        return f"{pods} in namespaces {selector_text(peer.namespace_selector)}"
    return f"pods {selector_text(peer.pod_selector)} in namespace {ns}"


def port_text(p: PolicyPort) -> str:
    if p.port is None:
        return f"{p.protocol} (any port)"
    if p.end_port is not None:
        return f"{p.protocol} {p.port}-{p.end_port}"
    return f"{p.protocol} {p.port}"


def rule_text(policy: NetworkPolicySpec, rule: PolicyRule, direction: str) -> str:
    word = "from" if direction == "ingress" else "to"
    peers = "; ".join(peer_text(policy, p) for p in rule.peers) if rule.peers else "anywhere"
    ports = ", ".join(port_text(p) for p in rule.ports) if rule.ports else "any port"
    return f"{word} {peers} on {ports}"


# ------------------------------------------------------------------------------ evaluation


@dataclass(frozen=True, slots=True)
class RuleEval:
    index: int  # 0-based
    text: str
    peer_ok: bool
    port_ok: bool

    @property
    def admits(self) -> bool:
        return self.peer_ok and self.port_ok


@dataclass(frozen=True, slots=True)
class PolicyEval:
    policy: str  # ns/name
    direction: str
    rules: tuple[RuleEval, ...]

    @property
    def admitted_by(self) -> RuleEval | None:
        return next((r for r in self.rules if r.admits), None)


@dataclass(frozen=True, slots=True)
class DirectionEval:
    """One end's side of a connection: ``pod`` isolated (or not) in ``direction``."""

    pod: str
    direction: str  # ingress | egress
    policies: tuple[PolicyEval, ...]
    node_local: bool = False  # ingress from the Pod's own node: always admitted

    @property
    def isolated(self) -> bool:
        return bool(self.policies)

    @property
    def allowed(self) -> bool:
        if self.node_local or not self.policies:
            return True
        return any(p.admitted_by is not None for p in self.policies)


@dataclass(frozen=True, slots=True)
class Verdict:
    egress: DirectionEval | None
    ingress: DirectionEval | None

    @property
    def allowed(self) -> bool:
        return all(d is None or d.allowed for d in (self.egress, self.ingress))


def _node_local(cluster: Cluster, ip: IPv4Address, pod: Pod) -> bool:
    """The source is an address of the Pod's own node (what ``-m addrtype --src-type LOCAL``
    sees there): its InternalIP, cni0's and flannel.1's address, loopback."""
    n = cluster.node(pod.node)
    if n is None:
        return False
    return ip in (n.ip, n.gateway, n.pod_cidr.network_address) or ip.is_loopback


def _peer_ok(
    sel: Selection, policy: NetworkPolicySpec, peer: PolicyPeer, ip: IPv4Address, pod: Pod | None
) -> bool:
    if peer.ip_block is not None:
        b = peer.ip_block
        return ip in b.cidr and not any(ip in e for e in b.excepts)
    if pod is None:
        return False
    if peer.namespace_selector is not None:
        if not peer.namespace_selector.matches(sel.ns_labels.get(pod.namespace, {})):
            return False
    elif pod.namespace != (policy.meta.namespace or "default"):
        return False
    return peer.pod_selector is None or peer.pod_selector.matches(pod.labels)


def _port_ok(p: PolicyPort, proto: str, dport: int, dst_pod: Pod | None) -> bool:
    if p.protocol.lower() != proto:
        return False
    if p.port is None:
        return True
    if isinstance(p.port, str):
        return dst_pod is not None and dst_pod.named_port(p.port, p.protocol) == dport
    hi = p.end_port if p.end_port is not None else p.port
    return p.port <= dport <= hi


def _direction(sel: Selection, pod: Pod, direction: str, peer_ip: IPv4Address, peer: Pod | None,
               proto: str, dport: int, dst_pod: Pod | None) -> tuple[PolicyEval, ...]:  # fmt: skip
    ing, eg = sel.isolating(pod)
    out = []
    for pol in ing if direction == "ingress" else eg:
        rules = pol.ingress if direction == "ingress" else pol.egress
        evals = []
        for i, rule in enumerate(rules):
            peer_ok = not rule.peers or any(
                _peer_ok(sel, pol, p, peer_ip, peer) for p in rule.peers
            )
            port_ok = not rule.ports or any(_port_ok(p, proto, dport, dst_pod) for p in rule.ports)
            evals.append(RuleEval(i, rule_text(pol, rule, direction), peer_ok, port_ok))
        out.append(PolicyEval(policy_key(pol), direction, tuple(evals)))
    return tuple(out)


def evaluate(
    cluster: Cluster, src: IPv4Address, dst: IPv4Address, proto: str, dport: int
) -> Verdict:
    """The API's answer for a connection's first packet as the policy agent sees it (after
    Service DNAT): egress of the source Pod, ingress of the destination Pod."""
    sel = selection(cluster)
    src_pod, dst_pod = sel.by_ip.get(src), sel.by_ip.get(dst)
    egress = ingress = None
    if src_pod is not None:
        egress = DirectionEval(
            src_pod.key,
            "egress",
            _direction(sel, src_pod, "egress", dst, dst_pod, proto, dport, dst_pod),
        )
    if dst_pod is not None:
        local = _node_local(cluster, src, dst_pod)
        ingress = DirectionEval(
            dst_pod.key,
            "ingress",
            _direction(sel, dst_pod, "ingress", src, src_pod, proto, dport, dst_pod),
            node_local=local,
        )
    return Verdict(egress, ingress)


# ------------------------------------------------------------------------------ words


def _who(sel: Selection, ip: IPv4Address) -> str:
    pod = sel.by_ip.get(ip)
    return f"{ip} ({pod.key})" if pod is not None else str(ip)


def deny_reason(
    cluster: Cluster, d: DirectionEval, src: IPv4Address, dst: IPv4Address, proto: str, dport: int
) -> str:
    """Why ``d`` does not admit the connection, in one paragraph."""
    sel = selection(cluster)
    names = ", ".join(p.policy for p in d.policies)
    what = f"{proto} {_who(sel, src)} -> {_who(sel, dst)}:{dport}"
    head = f"{d.pod} is isolated for {d.direction} by {names}; no {d.direction} rule admits {what}"
    tried = []
    for p in d.policies:
        if not p.rules:
            tried.append(f"{p.policy} allows no {d.direction} at all")
            continue
        for r in p.rules:
            miss = []
            if not r.peer_ok:
                miss.append("peer does not match")
            if not r.port_ok:
                miss.append(f"port {proto}/{dport} does not match")
            tried.append(
                f"{p.policy} {d.direction} rule {r.index + 1} ({r.text}): {' and '.join(miss)}"
            )
    return head + (": " + "; ".join(tried) if tried else "")


def admit_text(d: DirectionEval) -> str:
    """How ``d`` admits the connection (for a trace's ``policy`` step)."""
    if d.node_local:
        return f"{d.direction} of {d.pod}: from its own node, always allowed"
    if not d.policies:
        return f"{d.direction} of {d.pod}: not isolated (no policy selects it for {d.direction})"
    for p in d.policies:
        r = p.admitted_by
        if r is not None:
            return f"{d.direction} of {d.pod}: allowed by {p.policy} {d.direction} rule {r.index + 1} ({r.text})"
    return f"{d.direction} of {d.pod}: no rule admits it"


def explain_lines(
    cluster: Cluster, src: IPv4Address, dst: IPv4Address, proto: str, dport: int
) -> list[str]:
    """``podnet trace --explain``: every policy selecting either end, rule by rule."""
    v = evaluate(cluster, src, dst, proto, dport)
    out = [f"NetworkPolicy evaluation of {proto} {src} -> {dst}:{dport} (after Service DNAT):"]
    for d in (v.egress, v.ingress):
        if d is None:
            continue
        verdict = "allowed" if d.allowed else "DENIED"
        if not d.isolated:
            out.append(f"  {d.direction} of {d.pod}: not isolated -> allowed")
            continue
        extra = " (from its own node: always allowed)" if d.node_local else ""
        out.append(
            f"  {d.direction} of {d.pod}: isolated by {len(d.policies)} policies -> {verdict}{extra}"
        )
        for p in d.policies:
            out.append(
                f"    {p.policy}:" + ("" if p.rules else f" no {d.direction} rules (denies all)")
            )
            for r in p.rules:
                mark = (
                    "admits"
                    if r.admits
                    else "no: "
                    + " and ".join(
                        w for w, ok in (("peer", r.peer_ok), ("port", r.port_ok)) if not ok
                    )
                    + " mismatch"
                )
                out.append(f"      rule {r.index + 1}: {r.text} -> {mark}")
    if v.egress is None and v.ingress is None:
        out.append("  neither end is a Pod the policy agent enforces: no policy applies")
    return out
