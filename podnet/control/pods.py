"""Pods from the input and from workload controllers, in creation order, and their placement.

Creation order is the order of the source objects in the input (file order, then position in the
file); objects without a position come last, Pods before workloads, each in input order. Pods
bypassing the scheduler (``spec.nodeName``, a fixed ``status.podIP``, DaemonSet Pods) take
their node in that same order, so the scheduler sees them as already placed.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address

from podnet.control.addons import is_addon
from podnet.control.naming import NameGenerator
from podnet.control.nodes import unknown_node_hint
from podnet.control.report import Report
from podnet.control.scheduler import Scheduler, Unschedulable
from podnet.control.workloads import PodDraft, check_workload, expand
from podnet.model.cluster import Node, Pod, ScheduleDecision
from podnet.model.spec import Inputs, Source

MAX_SCHEDULING_ERRORS = 20
EXPLAIN_WORK = 200_000
"""Keep every node's verdict for every Pod when nodes x Pods stays below this."""


class SourceOrder:
    """Sort keys giving the input order of objects: (file rank, line, column, sequence)."""

    def __init__(self, files: Sequence[str]) -> None:
        self.rank = {f: i for i, f in enumerate(files)}
        self.last = len(files) + 1

    def key(self, src: Source, seq: int) -> tuple:
        pos = src.pos
        if pos is None:
            return (self.last, 0, 0, seq)
        return (self.rank.get(pos.file, self.last - 1), pos.line, pos.col, seq)


def mentioned_nodes(inputs: Inputs, order: SourceOrder) -> list[str]:
    """nodeNames of Pods and workload templates, in order of first mention."""
    found = [
        (order.key(p.meta.src, i), p.template.node_name)
        for i, p in enumerate(inputs.pods)
        if p.template.node_name
    ]
    base = len(inputs.pods)
    found += [
        (order.key(w.meta.src, base + j), w.template.node_name)
        for j, w in enumerate(inputs.workloads)
        if w.template.node_name
    ]
    found.sort(key=lambda kv: kv[0])
    return [name for _, name in found if name]


def make_drafts(
    inputs: Inputs, nodes: Sequence[Node], order: SourceOrder, report: Report
) -> list[PodDraft]:
    """Phase 3: input Pods and the Pods of every workload, sorted in creation order."""
    names = NameGenerator()
    drafts: list[PodDraft] = []
    for i, p in enumerate(inputs.pods):
        ns = p.meta.namespace or "default"
        if not names.reserve(ns, p.meta.name):
            report.error(f"duplicate Pod {ns}/{p.meta.name}", p.meta.src, "metadata.name")
            continue
        drafts.append(PodDraft(p, order.key(p.meta.src, i), p.meta.src))
    base = len(inputs.pods)
    seen: set[tuple[str, str, str]] = set()
    for j, w in enumerate(inputs.workloads):
        ident = (w.kind, w.meta.namespace or "default", w.meta.name)
        if ident in seen:
            report.error(f"duplicate {w.kind} {ident[1]}/{ident[2]}", w.meta.src, "metadata.name")
            continue
        seen.add(ident)
        if check_workload(w, report):
            drafts.extend(expand(w, order.key(w.meta.src, base + j), nodes, names, report))
    drafts.sort(key=lambda d: d.order)
    return drafts


class _CidrLookup:
    """Which node's podCIDR holds an address: one dict per prefix length, no scan of the nodes."""

    def __init__(self, nodes: Sequence[Node]) -> None:
        self.tables: dict[int, dict[int, Node]] = {}
        for n in nodes:
            self.tables.setdefault(n.pod_cidr.prefixlen, {})[int(n.pod_cidr.network_address)] = n

    def find(self, ip: IPv4Address) -> Node | None:
        value = int(ip)
        for plen, table in self.tables.items():
            mask = (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF
            node = table.get(value & mask)
            if node is not None:
                return node
        return None


def place(
    drafts: Sequence[PodDraft],
    nodes: Sequence[Node],
    report: Report,
    mode: str = "auto",
) -> tuple[ScheduleDecision, ...]:
    """Phase 4: set each draft's ``node``; returns one decision per placed Pod, in order."""
    if mode == "auto" and len(nodes) * len(drafts) <= EXPLAIN_WORK:
        mode = "explicit"
    sched = Scheduler(nodes, mode)
    by_name = {n.name: n for n in nodes}
    by_ip = {n.ip: n for n in nodes}
    cidrs = _CidrLookup(nodes)
    names = [n.name for n in nodes]
    decisions: list[ScheduleDecision] = []
    failed = 0
    for d in drafts:
        t = d.spec.template
        key = d.key
        node: Node | None = None
        if d.bind is not None or t.node_name:
            wanted = d.bind or t.node_name
            assert wanted is not None
            node = by_name.get(wanted)
            via = "daemonset" if d.bind else "nodeName"
            if node is None:
                report.error(
                    f"Pod {key} bound to unknown node {wanted!r}"
                    f" (found {wanted!r}, expected one of the cluster's {len(nodes)} nodes)",
                    d.src,
                    f"{d.prefix}.nodeName",
                    hint=unknown_node_hint(wanted, names),
                )
                continue
        elif d.spec.pod_ip is not None:
            ip = d.spec.pod_ip
            node = by_ip.get(ip) if t.host_network else cidrs.find(ip)
            via = "podIP"
            if node is None:
                what = "InternalIP" if t.host_network else "podCIDR"
                report.error(
                    f"Pod {key}: no node's {what} holds its podIP {ip}",
                    d.src,
                    "status.podIP",
                    hint="set spec.nodeName, or use an address of a node's podCIDR",
                )
                continue
        if node is not None:
            reasons = sched.bind(d.spec, node.name)
            if reasons:
                report.warn(
                    f"Pod {key} does not fit on node {node.name} ({', '.join(reasons)}):"
                    " the kubelet would reject it",
                    d.src,
                    f"{d.prefix}.nodeName",
                )
            decisions.append(ScheduleDecision(key, node.name, via))
            detail = f"{node.name} ({'DaemonSet node' if d.bind else via})"
            report.event(
                "kubelet" if via == "nodeName" else "scheduler", "bind", f"Pod/{key}", detail
            )
        else:
            try:
                decision = sched.schedule(d.spec, key)
            except Unschedulable as e:
                if is_addon(
                    d.spec.meta
                ):  # kubeadm's CoreDNS stays Pending: DNS fails, not the input
                    report.warn(f"Pod {key} cannot be scheduled: {e.message}", d.src, d.prefix)
                    continue
                failed += 1
                if failed <= MAX_SCHEDULING_ERRORS:
                    report.error(
                        f"Pod {key} cannot be scheduled: {e.message}",
                        d.src,
                        d.prefix,
                        hint=per_node_hint(e.verdicts),
                    )
                continue
            node = by_name[decision.node]
            decisions.append(decision)
            fit = f", {decision.feasible}/{len(nodes)} nodes fit" if decision.feasible else ""
            report.event(
                "scheduler", "bind", f"Pod/{key}", f"{node.name} (score {decision.score}{fit})"
            )
        d.node = node
    if failed > MAX_SCHEDULING_ERRORS:
        report.error(f"... and {failed - MAX_SCHEDULING_ERRORS} more Pods cannot be scheduled")
    return tuple(decisions)


MAX_HINT_NODES = 5
"""Nodes named one by one in an unschedulable Pod's hint; the rest are counted."""


def per_node_hint(verdicts: Sequence) -> str | None:
    """Which filter rejected each node, for an unschedulable Pod's hint (None without verdicts).

    >>> from podnet.model.cluster import NodeVerdict
    >>> per_node_hint([NodeVerdict("n1", ("Insufficient cpu",)), NodeVerdict("n2", ("Too many pods",))])
    'n1: Insufficient cpu; n2: Too many pods'
    """
    shown = [f"{v.node}: {', '.join(v.reasons)}" for v in verdicts[:MAX_HINT_NODES] if v.reasons]
    if not shown:
        return None
    more = len(verdicts) - MAX_HINT_NODES
    return "; ".join(shown) + (f"; ... and {more} more nodes" if more > 0 else "")


def to_pods(drafts: Sequence[PodDraft]) -> tuple[Pod, ...]:
    """Phase 8's Pods: every draft that got a node and an address."""
    out = []
    for d in drafts:
        if d.node is None or d.ip is None:
            continue
        spec = d.spec
        t = spec.template
        out.append(
            Pod(
                name=spec.meta.name,
                namespace=spec.meta.namespace or "default",
                node=d.node.name,
                ip=d.ip,
                labels=spec.meta.labels or t.labels,
                containers=t.containers,
                host_network=t.host_network,
                ready=spec.ready,
                terminating=spec.terminating,
                owner=spec.owner,
                hostname=t.hostname,
                subdomain=t.subdomain,
                spec=spec,
            )
        )
    return tuple(out)
