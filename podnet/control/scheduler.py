"""Phase 4: kube-scheduler's filter-then-score, deterministic and fast.

Filters, in the default profile's order, stopping at the first that rejects a node
(pkg/scheduler/framework/runtime/framework.go RunFilterPlugins):

1. TaintToleration: the first NoSchedule/NoExecute taint the Pod does not tolerate ->
   ``node(s) had untolerated taint {key: value}`` (plugins/tainttoleration).
2. NodeAffinity (``spec.nodeSelector``) -> ``node(s) didn't match Pod's node affinity/selector``.
3. NodeResourcesFit: ``Too many pods``, ``Insufficient cpu``, ``Insufficient memory``
   (plugins/noderesources/fit.go fitsRequest), from the Pods' real requests.

Scores (each 0..100, summed, weight 1 each):

- LeastAllocated (plugins/noderesources/least_allocated.go): per resource
  ``(allocatable - requested) * 100 // allocatable``, averaged (integer division) over cpu and
  memory, where ``requested`` counts Pods without a request as 100m cpu / 200Mi memory
  (pkg/scheduler/util/pod_resources.go DefaultMilliCPURequest, DefaultMemoryRequest).
- Spreading of one owner's Pods, as SelectorSpread scored it (plugins/selectorspread, kube-scheduler
  <= 1.26): ``int(100 * (max - count) / max)`` with ``count`` the owner's Pods on the node and
  ``max`` the highest count over the nodes that fit (100 everywhere when max is 0); 0 for Pods
  without an owner.

The highest sum wins; ties go to the node listed first (the real scheduler picks at random among
ties). When nothing fits, the message is the scheduler's FitError text
(framework/types.go): ``0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had ...``.

Speed: scores only fall as Pods are placed, so each distinct (tolerations, nodeSelector, request)
keeps a heap of nodes keyed by their last computed LeastAllocated score. A popped entry whose node
changed since is re-scored and pushed back (a stale key is an upper bound); the first fresh entry
that fits is the best node without the owner's Pods, and the few nodes that hold the owner's Pods
are scored one by one. The result equals scoring every node (tests check both ways agree).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

from podnet.model.cluster import Node, NodeVerdict, ScheduleDecision
from podnet.model.spec import DEFAULT_ALLOCATABLE, PodSpec, PodTemplate, Taint, Toleration

EXPLAIN_NODES = 64
"""Clusters up to this many nodes are scored node by node and every verdict is kept."""

MAX_NODE_SCORE = 100
_UNSCORED = MAX_NODE_SCORE + 1  # heap key of a node not scored yet: above any real score
OWNER_LEVELS_AT = 32
"""An owner with Pods on more nodes than this is scored by count level (see _fast_levels)."""
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 1024 * 1024
REASON_SELECTOR = "node(s) didn't match Pod's node affinity/selector"
REASON_PODS = "Too many pods"
REASON_CPU = "Insufficient cpu"
REASON_MEMORY = "Insufficient memory"


@dataclass(frozen=True, slots=True)
class Request:
    """A Pod's requests: real ones for filtering, non-zero ones for scoring."""

    cpu: int = 0
    memory: int = 0
    nz_cpu: int = DEFAULT_MILLI_CPU
    nz_memory: int = DEFAULT_MEMORY


def pod_request(t: PodTemplate) -> Request:
    """max(sum of containers, each init container), as the scheduler's NodeInfo computes it.

    >>> pod_request(PodTemplate())
    Request(cpu=0, memory=0, nz_cpu=100, nz_memory=209715200)
    """
    cpu = mem = nz_cpu = nz_mem = 0
    regular = [c for c in t.containers if not c.init]
    for c in regular:
        r = c.requests
        cpu += r.cpu_m or 0
        mem += r.memory or 0
        nz_cpu += DEFAULT_MILLI_CPU if r.cpu_m is None else r.cpu_m
        nz_mem += DEFAULT_MEMORY if r.memory is None else r.memory
    if not regular:  # a Pod has at least one container; count it without requests
        nz_cpu, nz_mem = DEFAULT_MILLI_CPU, DEFAULT_MEMORY
    for c in t.containers:
        if c.init:
            r = c.requests
            cpu = max(cpu, r.cpu_m or 0)
            mem = max(mem, r.memory or 0)
            nz_cpu = max(nz_cpu, DEFAULT_MILLI_CPU if r.cpu_m is None else r.cpu_m)
            nz_mem = max(nz_mem, DEFAULT_MEMORY if r.memory is None else r.memory)
    return Request(cpu, mem, nz_cpu, nz_mem)


def untolerated(taints: Sequence[Taint], tolerations: Sequence[Toleration]) -> Taint | None:
    """The first NoSchedule/NoExecute taint no toleration tolerates (FindMatchingUntoleratedTaint)."""
    for taint in taints:
        if taint.effect in ("NoSchedule", "NoExecute") and not any(
            t.tolerates(taint) for t in tolerations
        ):
            return taint
    return None


def fit_error(n_nodes: int, reasons: Sequence[Sequence[str]]) -> str:
    """FitError.Error(): the sorted histogram of reasons.

    >>> fit_error(3, [["Insufficient cpu"], [REASON_SELECTOR], [REASON_SELECTOR]])
    "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector."
    """
    hist: dict[str, int] = {}
    for rs in reasons:
        for r in rs:
            hist[r] = hist.get(r, 0) + 1
    parts = sorted(f"{v} {k}" for k, v in hist.items())
    msg = f"0/{n_nodes} nodes are available:"
    if parts:
        msg += " " + ", ".join(parts) + "."
    return msg


class _State:
    """One node's bookkeeping: allocatable, what placed Pods request, and a version."""

    __slots__ = (
        "node", "idx", "cap_cpu", "cap_mem", "cap_pods",
        "cpu", "mem", "pods", "nz_cpu", "nz_mem", "version",
    )  # fmt: skip

    def __init__(self, node: Node, idx: int) -> None:
        a, d = node.allocatable, DEFAULT_ALLOCATABLE
        self.node = node
        self.idx = idx
        self.cap_cpu = d.cpu_m if a.cpu_m is None else a.cpu_m
        self.cap_mem = d.memory if a.memory is None else a.memory
        self.cap_pods = d.pods if a.pods is None else a.pods
        self.cpu = self.mem = self.pods = self.nz_cpu = self.nz_mem = self.version = 0


def _la(st: _State, req: Request) -> int:
    c, m = st.nz_cpu + req.nz_cpu, st.nz_mem + req.nz_memory
    sc = 0 if st.cap_cpu <= 0 or c > st.cap_cpu else (st.cap_cpu - c) * MAX_NODE_SCORE // st.cap_cpu
    sm = 0 if st.cap_mem <= 0 or m > st.cap_mem else (st.cap_mem - m) * MAX_NODE_SCORE // st.cap_mem
    return (sc + sm) // 2


def _fits(st: _State, req: Request) -> bool:
    if st.pods + 1 > st.cap_pods:
        return False
    if req.cpu > 0 and req.cpu > st.cap_cpu - st.cpu:
        return False
    return not (req.memory > 0 and req.memory > st.cap_mem - st.mem)


def _fit_reasons(st: _State, req: Request) -> list[str]:
    out = []
    if st.pods + 1 > st.cap_pods:
        out.append(REASON_PODS)
    if req.cpu > 0 and req.cpu > st.cap_cpu - st.cpu:
        out.append(REASON_CPU)
    if req.memory > 0 and req.memory > st.cap_mem - st.mem:
        out.append(REASON_MEMORY)
    return out


def _spread(count: int, most: int) -> int:
    if most <= 0:
        return MAX_NODE_SCORE
    return int(float(MAX_NODE_SCORE) * ((most - count) / most))


class Unschedulable(Exception):
    """No node fits: ``message`` is the scheduler's text, ``verdicts`` every node's reasons."""

    def __init__(self, message: str, verdicts: tuple[NodeVerdict, ...]):
        super().__init__(message)
        self.message = message
        self.verdicts = verdicts


class Scheduler:
    """Places Pods one at a time on ``nodes``, remembering what each node already holds.

    ``mode``: ``"auto"`` (node by node with verdicts up to EXPLAIN_NODES nodes, heaps above),
    ``"explicit"`` or ``"fast"``. Both ways give the same placements.
    """

    def __init__(self, nodes: Sequence[Node], mode: str = "auto") -> None:
        self.states = [_State(n, i) for i, n in enumerate(nodes)]
        self.by_name = {n.name: i for i, n in enumerate(nodes)}
        if mode == "auto":
            mode = "explicit" if len(nodes) <= EXPLAIN_NODES else "fast"
        self.mode = mode
        self._owners: dict[tuple, dict[int, int]] = {}
        # per owner: [histogram count -> nodes, lowest count, highest count] over its nodes
        self._owner_stats: dict[tuple, list] = {}
        # owners spread over many nodes: per (owner, heap key), count level -> heap of nodes
        self._levels: dict[tuple, dict[int, list]] = {}
        self._owner_levels: dict[tuple, list[dict[int, list]]] = {}
        self._static: dict[tuple, bytearray] = {}
        self._heaps: dict[tuple, list[tuple[int, int, int]]] = {}

    # ------------------------------------------------------------------ bookkeeping

    def bind(self, spec: PodSpec, node: str) -> list[str]:
        """Count a Pod placed without the scheduler (nodeName, podIP, DaemonSet) on ``node``.

        Returns what NodeResourcesFit would have said about it (empty when it fits): the kubelet
        admits such a Pod only when it fits (OutOf<resource>).
        """
        st = self.states[self.by_name[node]]
        req = pod_request(spec.template)
        reasons = _fit_reasons(st, req)
        self._add(st, req, _owner_key(spec))
        return reasons

    def _add(self, st: _State, req: Request, okey: tuple | None) -> None:
        st.cpu += req.cpu
        st.mem += req.memory
        st.nz_cpu += req.nz_cpu
        st.nz_mem += req.nz_memory
        st.pods += 1
        st.version += 1
        if okey is not None:
            counts = self._owners.setdefault(okey, {})
            c = counts.get(st.idx, 0)
            counts[st.idx] = c + 1
            for levels in self._owner_levels.get(okey, ()):
                heapq.heappush(levels.setdefault(c + 1, []), (-_UNSCORED, st.idx, -1))
            stats = self._owner_stats.get(okey)
            if stats is None:
                self._owner_stats[okey] = [{1: 1}, 1, 1]
                return
            hist = stats[0]
            if c:
                hist[c] -= 1
            hist[c + 1] = hist.get(c + 1, 0) + 1
            if c + 1 > stats[2]:
                stats[2] = c + 1
            if c == 0:
                stats[1] = 1
            elif c == stats[1] and not hist[c]:
                stats[1] = c + 1

    # ------------------------------------------------------------------ scheduling

    def schedule(self, spec: PodSpec, key: str) -> ScheduleDecision:
        """Choose a node for the Pod and count it there; raises Unschedulable when none fits."""
        req = pod_request(spec.template)
        okey = _owner_key(spec)
        skey = (spec.template.tolerations, spec.template.node_selector)
        if self.mode == "explicit":
            idx, decision = self._explicit(req, okey, skey, key)
        else:
            found = self._fast(req, okey, skey)
            if found is None:
                self._explicit(req, okey, skey, key)  # raises with every node's reasons
                raise AssertionError("fast and explicit scheduling disagree")  # pragma: no cover
            idx, score = found
            decision = ScheduleDecision(key, self.states[idx].node.name, "scheduler", score)
        self._add(self.states[idx], req, okey)
        return decision

    def _static_reason(self, st: _State, skey: tuple) -> str | None:
        tolerations, selector = skey
        taint = untolerated(st.node.taints, tolerations)
        if taint is not None:
            return f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"
        labels = st.node.labels
        for k, v in selector.items():
            if labels.get(k) != v:
                return REASON_SELECTOR
        return None

    def _explicit(
        self, req: Request, okey: tuple | None, skey: tuple, key: str
    ) -> tuple[int, ScheduleDecision]:
        reasons: list[list[str]] = []
        feasible: list[_State] = []
        for st in self.states:
            r = self._static_reason(st, skey)
            rs = [r] if r else _fit_reasons(st, req)
            reasons.append(rs)
            if not rs:
                feasible.append(st)
        if not feasible:
            verdicts = tuple(
                NodeVerdict(st.node.name, tuple(rs))
                for st, rs in zip(self.states, reasons, strict=True)
            )
            raise Unschedulable(fit_error(len(self.states), reasons), verdicts)
        counts = self._owners.get(okey, {}) if okey is not None else {}
        most = max((counts.get(st.idx, 0) for st in feasible), default=0)
        scored: dict[int, tuple[int, int]] = {}
        best: tuple[int, int] | None = None
        for st in feasible:
            la = _la(st, req)
            ss = _spread(counts.get(st.idx, 0), most) if okey is not None else 0
            scored[st.idx] = (la, ss)
            if best is None or la + ss > best[0]:
                best = (la + ss, st.idx)
        assert best is not None
        verdicts = []
        for st, rs in zip(self.states, reasons, strict=True):
            if st.idx in scored:
                la, ss = scored[st.idx]
                verdicts.append(NodeVerdict(st.node.name, (), la, ss, la + ss))
            else:
                verdicts.append(NodeVerdict(st.node.name, tuple(rs)))
        decision = ScheduleDecision(
            key,
            self.states[best[1]].node.name,
            "scheduler",
            best[0],
            len(feasible),
            tuple(verdicts),
        )
        return best[1], decision

    def _fast(self, req: Request, okey: tuple | None, skey: tuple) -> tuple[int, int] | None:
        states = self.states
        mask = self._static.get(skey)
        if mask is None:
            mask = bytearray(0 if self._static_reason(st, skey) else 1 for st in states)
            self._static[skey] = mask
        hkey = (skey, req.nz_cpu, req.nz_memory)
        heap = self._heaps.get(hkey)
        if heap is None:
            heap = [(-_la(st, req), st.idx, st.version) for st in states if mask[st.idx]]
            heapq.heapify(heap)
            self._heaps[hkey] = heap
        counts = self._owners.get(okey, {}) if okey is not None else {}
        if len(counts) > OWNER_LEVELS_AT:
            return self._fast_levels(req, okey, hkey, mask, heap, counts)

        # The best node holding none of the owner's Pods: the heap's first fresh, fitting entry.
        aside = []
        top_la, top_idx = -1, -1
        while heap:
            neg, idx, version = heap[0]
            st = states[idx]
            if version != st.version:
                heapq.heapreplace(heap, (-_la(st, req), idx, st.version))
            elif idx in counts:
                aside.append(heapq.heappop(heap))
            elif st.pods >= st.cap_pods:
                heapq.heappop(heap)  # full for good: no Pod fits it again
            elif not _fits(st, req):
                aside.append(heapq.heappop(heap))
            else:
                top_la, top_idx = -neg, idx
                break
        for entry in aside:
            heapq.heappush(heap, entry)

        spreads = okey is not None
        best_score, best_idx = -1, -1
        if top_idx >= 0:
            best_score, best_idx = top_la + (MAX_NODE_SCORE if spreads else 0), top_idx
            if counts:
                # No node of the owner's can beat it when even the least loaded one, with a
                # perfect LeastAllocated score, stays below: spread(min, max) bounds them all.
                _, low, high = self._owner_stats[okey]  # type: ignore[index]
                if MAX_NODE_SCORE + _spread(low, high) < best_score:
                    return best_idx, best_score

        # The owner's nodes that fit, and the highest count among them (SelectorSpread's max).
        owned: list[tuple[int, int]] = []
        most = 0
        for idx, c in counts.items():
            if mask[idx] and _fits(states[idx], req):
                owned.append((idx, c))
                if c > most:
                    most = c
        for idx, c in owned:
            ss = _spread(c, most) if spreads else 0
            # LeastAllocated is at most 100: skip nodes that cannot reach the best so far.
            if ss + MAX_NODE_SCORE < best_score:
                continue
            score = _la(states[idx], req) + ss
            if score > best_score or (score == best_score and idx < best_idx):
                best_score, best_idx = score, idx
        if best_idx < 0:
            return None
        return best_idx, best_score

    def _fast_levels(
        self,
        req: Request,
        okey: tuple | None,
        hkey: tuple,
        mask: bytearray,
        heap: list,
        counts: dict[int, int],
    ) -> tuple[int, int] | None:
        """For an owner spread over many nodes: one heap per count level, the spread score being
        the same across a level, so each level's best LeastAllocated node is its candidate."""
        levels = self._levels.get((okey, hkey))
        if levels is None:
            levels = {0: [e for e in heap if e[1] not in counts]}
            for idx, c in counts.items():
                levels.setdefault(c, []).append((-_UNSCORED, idx, -1))
            for h in levels.values():
                heapq.heapify(h)
            self._levels[(okey, hkey)] = levels
            self._owner_levels.setdefault(okey, []).append(levels)  # type: ignore[arg-type]
        states = self.states
        tops = {}
        for c, h in levels.items():
            top = _level_top(h, c, states, req, mask, counts)
            if top is not None:
                tops[c] = top
        most = max(tops, default=0)
        best_score, best_idx = -1, -1
        for c, (la, idx) in tops.items():
            score = la + _spread(c, most)
            if score > best_score or (score == best_score and idx < best_idx):
                best_score, best_idx = score, idx
        if best_idx < 0:
            return None
        return best_idx, best_score


def _level_top(
    h: list, c: int, states: list[_State], req: Request, mask: bytearray, counts: dict[int, int]
) -> tuple[int, int] | None:
    """The best fitting node of one count level (lazy: stale entries re-scored or dropped)."""
    aside = []
    found = None
    while h:
        neg, idx, version = h[0]
        st = states[idx]
        if counts.get(idx, 0) != c or not mask[idx]:
            heapq.heappop(h)  # moved to the next level, or never feasible for these Pods
        elif version != st.version:
            heapq.heapreplace(h, (-_la(st, req), idx, st.version))
        elif st.pods >= st.cap_pods:
            heapq.heappop(h)
        elif not _fits(st, req):
            aside.append(heapq.heappop(h))
        else:
            found = (-neg, idx)
            break
    for entry in aside:
        heapq.heappush(h, entry)
    return found


def _owner_key(spec: PodSpec) -> tuple | None:
    if spec.owner is None:
        return None
    return (spec.meta.namespace or "default", spec.owner[0], spec.owner[1])
