"""``podnet reach``: which Pods can open a connection to which, as a truth table.

Every cell is the verdict of the trace engine (iptables walk, policy agent included) for one
connection from a source Pod to a destination Pod: at the destination's Pod IP, or through the
ClusterIP of a Service selecting it (``via_service``). The port is ``port`` when given, else the
destination Pod's first declared container port (with its protocol unless ``protocol`` is
given; 80 for a Pod that declares none). Self pairs are not probed (the Kubernetes e2e suite
ignores them too: CNIs disagree on loopback, kubernetes/kubernetes#95879).

Pods that the network cannot tell apart get the same answers, so the table is computed per
equivalence class and then expanded: the class of a Pod is its namespace, labels (hence the
policies selecting it and the Services selecting it), container ports, hostNetwork (and then
its node: hostNetwork traffic is node traffic), and which ipBlocks of any policy hold its IP.
One trace per pair of classes, taken between two distinct representative Pods.

JSON (``podnet reach -o json``)::

    {"port": 80,                     // null: each destination Pod's first port
     "protocol": "tcp",              // null: each destination port's own protocol
     "via_service": false,
     "from": ["x/a", ...], "to": ["x/a", ...],
     "matrix": [[".", "X", "-"], ...],  // rows follow "from", columns "to"
     "cells": [{"from": "x/a", "to": "x/b", "verdict": "deny", "disposition": "DENIED_INGRESS",
                "dst": "10.96.0.12:80/tcp", "reason": "..."}],   // every cell that is not "."
     "summary": {"pairs": 72, "allowed": 60, "denied": 12, "partial": 0, "unreachable": 0,
                 "self": 9, "classes": 9, "traces": 72}}

Cells: ``.`` allowed, ``X`` denied, ``~`` some paths only, ``?`` no Service selects the
destination (with ``via_service``), ``-`` self.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from podnet.errors import Problem, UsageError
from podnet.model.cluster import Cluster, Pod
from podnet.trace.endpoints import SrcRef
from podnet.trace.resolve import Target
from podnet.trace.run import trace_between

SYMBOL = {"allow": ".", "deny": "X", "partial": "~", "none": "?", "self": "-"}


@dataclass(frozen=True, slots=True)
class PodSelector:
    """``--from``/``--to``: ``[NS/]LABELS`` where LABELS is ``k=v,k!=v,k,!k`` (empty: all)."""

    namespace: str | None
    terms: tuple[tuple[str, str, str | None], ...]  # (key, op, value): = != exists !exists
    text: str = ""

    def matches(self, pod: Pod) -> bool:
        if self.namespace is not None and pod.namespace != self.namespace:
            return False
        for k, op, v in self.terms:
            have = pod.labels.get(k)
            if op == "=" and have != v:
                return False
            if op == "!=" and have == v:
                return False
            if op == "exists" and k not in pod.labels:
                return False
            if op == "!exists" and k in pod.labels:
                return False
        return True


def parse_selector(text: str | None) -> PodSelector:
    """Parse ``[NS/]k=v,k!=v,k,!k``.

    >>> s = parse_selector("x/pod=a,tier!=db")
    >>> s.namespace, s.terms
    ('x', (('pod', '=', 'a'), ('tier', '!=', 'db')))
    >>> parse_selector(None).terms
    ()
    """
    if not text:
        return PodSelector(None, (), "")
    ns = None
    rest = text
    if "/" in text:
        ns, _, rest = text.partition("/")
    terms = []
    for part in filter(None, (p.strip() for p in rest.split(","))):
        if "!=" in part:
            k, _, v = part.partition("!=")
            terms.append((k.strip(), "!=", v.strip()))
        elif "=" in part:
            k, _, v = part.partition("=")
            terms.append((k.strip(), "=", v.strip().lstrip("=")))
        elif part.startswith("!"):
            terms.append((part[1:].strip(), "!exists", None))
        else:
            terms.append((part, "exists", None))
    for k, _, _ in terms:
        if not k:
            raise UsageError(
                Problem(
                    f"bad selector {text!r}: empty label key",
                    hint="write k=v,k!=v,k,!k, optionally after NS/",
                )
            )
    return PodSelector(ns or None, tuple(terms), text)


@dataclass(frozen=True, slots=True)
class Cell:
    verdict: str  # allow | deny | partial | none | self
    disposition: str = ""
    dst: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Reach:
    port: int | None
    protocol: str | None
    via_service: bool
    sources: tuple[str, ...]
    dests: tuple[str, ...]
    cells: tuple[tuple[Cell, ...], ...]
    classes: int
    traces: int

    def summary(self) -> dict:
        flat = [c.verdict for row in self.cells for c in row]
        return {
            "pairs": sum(v != "self" for v in flat),
            "allowed": flat.count("allow"),
            "denied": flat.count("deny"),
            "partial": flat.count("partial"),
            "unreachable": flat.count("none"),
            "self": flat.count("self"),
            "classes": self.classes,
            "traces": self.traces,
        }


def _block_signature(cluster: Cluster, ip: IPv4Address) -> tuple[bool, ...]:
    blocks = []
    for pol in cluster.policies:
        for rule in pol.ingress + pol.egress:
            for peer in rule.peers:
                if peer.ip_block is not None:
                    b = peer.ip_block
                    blocks.append(ip in b.cidr and not any(ip in e for e in b.excepts))
    return tuple(blocks)


def pod_class(cluster: Cluster, pod: Pod) -> tuple:
    """The equivalence class of ``pod`` (see the module docstring)."""
    ports = tuple(
        (c.init, p.name, p.protocol, p.container_port) for c in pod.containers for p in c.ports
    )
    node = pod.node if pod.host_network else None
    return (
        pod.namespace,
        tuple(sorted(pod.labels.items())),
        ports,
        pod.host_network,
        node,
        _block_signature(cluster, pod.ip),
    )


def _first_port(pod: Pod, protocol: str | None) -> tuple[int, str]:
    for c in pod.containers:
        for p in c.ports:
            if protocol is None or p.protocol.lower() == protocol:
                return p.container_port, p.protocol.lower()
    return 80, protocol or "tcp"


def _service_for(cluster: Cluster, pod: Pod, port: int, proto: str):
    """The first Service (by name) of the Pod's namespace that selects it and has a port whose
    target is ``port`` (by number or by the Pod's port name), with that service port."""
    for svc in sorted(cluster.services, key=lambda s: s.key):
        sel = svc.spec.selector
        if svc.namespace != pod.namespace or not sel or svc.cluster_ip is None:
            continue
        if any(pod.labels.get(k) != v for k, v in sel.items()):
            continue
        for sp in svc.spec.ports:
            if sp.protocol.lower() != proto:
                continue
            t = sp.target
            num = t if isinstance(t, int) else pod.named_port(t, sp.protocol)
            if num == port:
                return svc, sp
    return None


def _target(
    cluster: Cluster, resolver, pod: Pod, port: int | None, protocol: str | None, via_service: bool
) -> Target | None:
    if port is None:
        num, proto = _first_port(pod, protocol)
    else:
        num, proto = port, protocol or "tcp"
    if not via_service:
        return Target(pod.ip, num, proto, f"pod/{pod.key}:{num}", pod=pod)
    found = _service_for(cluster, pod, num, proto)
    if found is None:
        return None
    svc, sp = found
    return Target(svc.cluster_ip, sp.port, proto, f"svc/{svc.key}:{sp.port}", service=svc)


def _cell(trace) -> Cell:
    verdict = {"delivered": "allow", "dropped": "deny", "partial": "partial"}[trace.verdict]
    p = trace.paths[0] if trace.paths else None
    bad = next((x for x in trace.paths if not x.delivered), p)
    dst = f"{trace.packet.dst}:{trace.packet.dport}/{trace.packet.proto}"
    return Cell(
        verdict,
        bad.disposition if bad else "",
        dst,
        bad.forward.reason if bad and verdict != "allow" else "",
    )


def _wanted(sel: PodSelector, pod: Pod) -> bool:
    """An empty selector means the input's Pods: the cluster add-ons podnet adds on its own
    (CoreDNS) take part only when a selector names them (e.g. ``kube-system/``)."""
    from podnet.control.addons import is_addon

    if sel.namespace is not None or sel.terms:
        return True
    return pod.spec is None or not is_addon(pod.spec.meta)


def compute_reach(loaded, src_sel: PodSelector, dst_sel: PodSelector, *, port: int | None = None,
                  protocol: str | None = None, via_service: bool = False) -> Reach:  # fmt: skip
    """The reachability table of the Pods ``src_sel`` selects to those ``dst_sel`` selects."""
    cluster = loaded.cluster
    resolver = loaded.resolver()
    pods = sorted(cluster.pods, key=lambda p: p.key)
    srcs = [p for p in pods if src_sel.matches(p) and _wanted(src_sel, p)]
    dsts = [p for p in pods if dst_sel.matches(p) and _wanted(dst_sel, p)]
    for sel, found in ((src_sel, srcs), (dst_sel, dsts)):
        if not found:
            raise UsageError(
                Problem(f"no Pod matches {sel.text!r}", hint="selectors read [NS/]k=v,k!=v,k,!k")
            )
    classes: dict[tuple, list[Pod]] = {}
    for p in {p.key: p for p in srcs + dsts}.values():
        classes.setdefault(pod_class(cluster, p), []).append(p)
    cls_of = {p.key: k for k, members in classes.items() for p in members}
    memo: dict[tuple, Cell] = {}
    traces = 0
    rows = []
    for s in srcs:
        row = []
        for d in dsts:
            if s.key == d.key:
                row.append(Cell("self"))
                continue
            key = (cls_of[s.key], cls_of[d.key])
            cell = memo.get(key)
            if cell is None:
                cell = _evaluate(
                    cluster, resolver, loaded.network, s, d, port, protocol, via_service
                )
                traces += cell is not None and cell.verdict != "none"
                memo[key] = cell
            row.append(cell)
        rows.append(tuple(row))
    used = {cls_of[p.key] for p in srcs + dsts}
    return Reach(port, protocol, via_service, tuple(p.key for p in srcs), tuple(p.key for p in dsts),
                 tuple(rows), len(used), traces)  # fmt: skip


def _evaluate(cluster, resolver, network, s: Pod, d: Pod, port, protocol, via_service) -> Cell:
    target = _target(cluster, resolver, d, port, protocol, via_service)
    if target is None:
        return Cell("none", reason=f"no Service selects {d.key} on that port")
    origin = resolver.origin(SrcRef("pod", s.namespace, s.name, text=s.key))
    trace = trace_between(network, origin, target, src_text=s.key, dst_text=target.label)
    return _cell(trace)


def brute_force(
    loaded, src_sel: PodSelector, dst_sel: PodSelector, **kw
) -> tuple[tuple[str, ...], ...]:
    """Every pair traced on its own (no classes): the verdicts, for checking the classes."""
    cluster = loaded.cluster
    resolver = loaded.resolver()
    pods = sorted(cluster.pods, key=lambda p: p.key)
    out = []
    for s in (p for p in pods if src_sel.matches(p)):
        row = []
        for d in (p for p in pods if dst_sel.matches(p)):
            if s.key == d.key:
                row.append("self")
                continue
            row.append(
                _evaluate(
                    cluster,
                    resolver,
                    loaded.network,
                    s,
                    d,
                    kw.get("port"),
                    kw.get("protocol"),
                    kw.get("via_service", False),
                ).verdict
            )
        out.append(tuple(row))
    return tuple(out)
