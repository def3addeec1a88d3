"""``podnet reach``: which Pods can open a connection to which, as a truth table.

A cell is one connection from a source Pod to a destination Pod: at the destination's Pod IP,
or through the ClusterIP of a Service selecting it (``via_service``). The port is ``port`` when
given, else the destination Pod's first declared container port (with its protocol unless
``protocol`` is given; 80 for a Pod that declares none). Self pairs are not probed (the
Kubernetes e2e suite ignores them too: CNIs disagree on loopback, kubernetes/kubernetes#95879).

Classes. 150,000 x 150,000 Pods are 2.25 * 10^10 cells: the table is computed over classes of
Pods the network cannot tell apart, and Pod-level answers are expanded on demand. At the Pod IP
the network sees a Pod only through the policy agent's ipsets holding its IP (the policies
selecting it, the peers naming it, the ipBlocks holding it, its named ports) and, as a
destination, the port it is probed on (a Pod's namespace answers on every port); flannel routes
reach every Pod alike, and the node a Pod runs on does not change the agent's verdict
(podnet.analysis.reach_policy says why; tests/test_reach_scale.py checks it against tracing
every pair). So a Pod has a *source class* (its atoms as a source) and a *destination class*
(its atoms as a destination, protocol and port). At XL (11,000 Deployments, 1,500 policies)
that is 520 source and 1,000 destination classes. Pods the agent does not police (hostNetwork:
their traffic is their node's; finished Pods) are classes per node, and a plain Pod's class is
split by node when such a Pod is on its node (traffic from a Pod's own node is always
admitted), so that every class pair holds one verdict. ``via_service`` keeps the finer classes
of :func:`pod_class` (namespace and labels: the same Services and endpoints).

Verdicts per class pair (``method``):

* ``trace``: one trace through the real engine between two distinct representative Pods per
  class pair (faithful; used when there are at most :data:`TRACE_LIMIT` class pairs, always with
  ``via_service``);
* ``policy``: above that, the policy agent's rules evaluated for whole classes with bitsets
  (podnet.analysis.reach_policy); pairs with a hostNetwork or finished Pod's class are still
  traced, and ``sample`` class pairs (half allowed, half denied, evenly spread) are traced too as
  a check: a disagreement is counted in the summary and the traced verdict kept.

Pod-level answers come from the trace engine: :meth:`Reach.cell` and :meth:`Reach.trace` trace
one pair of Pods (``podnet reach --from NS/POD --to NS/POD`` is a 1 x 1 table, traced).
Summary counts multiply class sizes (minus self pairs).

JSON (``podnet reach -o json``), Pod level (at most :data:`POD_LEVEL_MAX` cells)::

    {"port": 80,                     // null: each destination Pod's first port
     "protocol": "tcp",              // null: each destination port's own protocol
     "via_service": false,
     "level": "pod",
     "from": ["x/a", ...], "to": ["x/a", ...],
     "matrix": [[".", "X", "-"], ...],  // rows follow "from", columns "to"
     "cells": [{"from": "x/a", "to": "x/b", "verdict": "deny", "disposition": "DENIED_INGRESS",
                "dst": "10.96.0.12:80/tcp", "reason": "..."}],   // every cell that is not "."
     "summary": {"pairs": 72, "allowed": 60, "denied": 12, "partial": 0, "unreachable": 0,
                 "self": 9, "classes": 9, "traces": 72, "source_classes": 4,
                 "destination_classes": 5, "class_pairs": 20, "method": "trace",
                 "checked": 0, "disagreements": 0}}

Class level (larger tables, or ``--classes``): ``"level": "class"``, no ``from``/``to``/
``matrix``/``cells``, instead::

     "source_classes": [{"id": "S1", "size": 312, "first": "ns/pod", "namespaces": ["ns"],
                         "members": [...]}],          // members with --members only
     "destination_classes": [{"id": "D1", ..., "protocol": "tcp", "port": 8080}],
     "class_matrix": [".XX.", ...],   // one string per source class, a symbol per destination class
     "class_cells": [...]             // traced class pairs that are not allowed: from/to are ids

Cells: ``.`` allowed, ``X`` denied, ``~`` some paths only, ``?`` no Service selects the
destination (with ``via_service``), ``-`` self. ``classes`` counts source plus destination
classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address
from itertools import compress, repeat
from operator import eq

from podnet.errors import Problem, UsageError
from podnet.model.cluster import Cluster, Pod
from podnet.trace.endpoints import SrcRef
from podnet.trace.resolve import Target
from podnet.trace.run import trace_between

SYMBOL = {"allow": ".", "deny": "X", "partial": "~", "none": "?", "self": "-"}
TRACE_LIMIT = 2_000
"""Class pairs up to which every pair is traced (about 1 ms each)."""
POD_LEVEL_MAX = 40_000
"""Pod x Pod cells up to which the outputs show the Pod-level table."""
POD_CELLS_MAX = 4_000_000
"""Pod x Pod cells up to which :attr:`Reach.cells` lists them (beyond: gigabytes)."""
SAMPLE = 32
"""Class pairs traced to check the policy evaluation (method ``policy``)."""


@dataclass(frozen=True, slots=True)
class PodSelector:
    """``--from``/``--to``: ``[NS/]LABELS`` where LABELS is ``k=v,k!=v,k,!k`` (empty: all), or
    one Pod: ``pod/[NS/]NAME``."""

    namespace: str | None
    terms: tuple[tuple[str, str, str | None], ...]  # (key, op, value): = != exists !exists
    text: str = ""
    name: str | None = None

    def matches(self, pod: Pod) -> bool:
        if self.namespace is not None and pod.namespace != self.namespace:
            return False
        if self.name is not None and pod.name != self.name:
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
    >>> parse_selector("pod/x/web-1")
    PodSelector(namespace='x', terms=(), text='pod/x/web-1', name='web-1')
    """
    if not text:
        return PodSelector(None, (), "")
    if text.startswith("pod/"):
        ns, _, name = text[4:].rpartition("/")
        return PodSelector(ns or "default", (), text, name)
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
class PodClass:
    """Pods the network cannot tell apart, in one role (source or destination)."""

    id: str  # S1... / D1...
    members: tuple[str, ...]  # Pod keys, sorted
    protocol: str | None = None  # destination classes: the probed port
    port: int | None = None

    @property
    def size(self) -> int:
        return len(self.members)

    def namespaces(self) -> tuple[str, ...]:
        return tuple(sorted({k.partition("/")[0] for k in self.members}))


# class-pair codes: one character per cell of a class row
ALLOW, DENY_IN, DENY_EG, TRACED, SELF = "a", "i", "e", "t", "s"
_CODE_CELL = {
    ALLOW: Cell("allow"),
    DENY_IN: Cell("deny", "DENIED_INGRESS"),
    DENY_EG: Cell("deny", "DENIED_EGRESS"),
    SELF: Cell("self"),
}
_SYMBOLS = str.maketrans({ALLOW: ".", DENY_IN: "X", DENY_EG: "X", SELF: "-"})


@dataclass(frozen=True, slots=True, eq=False)
class Reach:
    """The table: classes, Pod -> class, class x class verdicts, counts; Pod cells on demand."""

    port: int | None
    protocol: str | None
    via_service: bool
    sources: tuple[str, ...]
    dests: tuple[str, ...]
    src_of: tuple[int, ...]  # per source: its source class
    dst_of: tuple[int, ...]
    src_classes: tuple[PodClass, ...]
    dst_classes: tuple[PodClass, ...]
    rows: tuple[str, ...]  # per source class: one code per destination class
    traced: dict[tuple[int, int], Cell]  # class pairs with a traced (or special) cell
    traces: int
    method: str  # trace | policy
    counts: dict[str, int]
    checked: int = 0
    disagreements: tuple[tuple[str, str, str, str], ...] = ()  # (S, D, evaluated, traced)
    loaded: object = field(default=None, repr=False)
    reasons: object = field(default=None, repr=False)  # (i, j, direction) -> reason text
    reps: dict = field(default_factory=dict, repr=False)  # class pair -> the Pod pair traced

    @property
    def classes(self) -> int:
        return len(self.src_classes) + len(self.dst_classes)

    def class_cell(self, i: int, j: int) -> Cell:
        """The verdict of source class ``i`` to destination class ``j``."""
        code = self.rows[i][j]
        if code == TRACED:
            return self.traced[(i, j)]
        cell = _CODE_CELL[code]
        if cell.verdict == "deny" and self.reasons is not None:
            direction = "ingress" if code == DENY_IN else "egress"
            return Cell("deny", cell.disposition, "", self.reasons(i, j, direction))
        return cell

    def symbols(self, i: int) -> str:
        """Source class ``i``'s row as cell symbols (``.X~?-``), one per destination class."""
        row = self.rows[i].translate(_SYMBOLS)
        if TRACED in row:
            row = "".join(
                SYMBOL[self.traced[(i, j)].verdict] if c == TRACED else c for j, c in enumerate(row)
            )
        return row

    @property
    def cells(self) -> tuple[tuple[Cell, ...], ...]:
        """The Pod x Pod table (each cell its class pair's verdict): for small tables only."""
        if len(self.sources) * len(self.dests) > POD_CELLS_MAX:
            raise UsageError(
                Problem(
                    f"{len(self.sources):,} x {len(self.dests):,} Pods are too many cells to list",
                    hint="ask verdict(src, dst), cell(src, dst) (traced) or the classes",
                )
            )
        targets = _dst_texts(self)
        out = []
        for s, si in zip(self.sources, self.src_of, strict=True):
            row = []
            for d, dj, text in zip(self.dests, self.dst_of, targets, strict=True):
                if s == d:
                    row.append(_CODE_CELL[SELF])
                    continue
                c = self.class_cell(si, dj)
                if c.verdict not in ("allow", "self"):
                    rep = self.reps.get((si, dj))
                    reason = c.reason
                    if rep is not None and rep != (s, d) and reason:
                        # the trace was of another pair of the same two classes: say which
                        reason = f"(as traced for {rep[0]} -> {rep[1]}, the same classes) {reason}"
                    c = Cell(c.verdict, c.disposition, text if text and c.dst else c.dst, reason)
                row.append(c)
            out.append(tuple(row))
        return tuple(out)

    def verdict(self, src: str, dst: str) -> Cell:
        """The class-level answer for two Pods (``NS/NAME``) of the table."""
        if src == dst:
            return _CODE_CELL[SELF]
        i, j = self._index(src, dst)
        return self.class_cell(self.src_of[i], self.dst_of[j])

    def trace(self, src: str, dst: str):
        """Trace the connection between two Pods of the table through the engine."""
        i, j = self._index(src, dst)
        loaded = self.loaded
        pods = {p.key: p for p in loaded.cluster.pods if p.key in (src, dst)}
        return _trace(loaded, pods[src], pods[dst], self.port, self.protocol, self.via_service)

    def cell(self, src: str, dst: str) -> Cell:
        """The Pod-level answer for two Pods of the table, traced."""
        if src == dst:
            return _CODE_CELL[SELF]
        t = self.trace(src, dst)
        return (
            Cell("none", reason=f"no Service selects {dst} on that port") if t is None else _cell(t)
        )

    def _index(self, src: str, dst: str) -> tuple[int, int]:
        try:
            return self.sources.index(src), self.dests.index(dst)
        except ValueError:
            raise UsageError(
                Problem(f"{src} -> {dst} is not a pair of this table", hint="pick Pods it holds")
            ) from None

    def summary(self) -> dict:
        return dict(self.counts)


def _dst_texts(r: Reach) -> list[str]:
    if r.via_service or r.loaded is None:
        return [""] * len(r.dests)
    pods = {p.key: p for p in r.loaded.cluster.pods}
    out = []
    for d in r.dests:
        num, proto = _port_of(pods[d], r.port, r.protocol)
        out.append(f"{pods[d].ip}:{num}/{proto}")
    return out


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
    """The fine class of ``pod`` used with ``via_service``: namespace, labels (the Services and
    policies selecting it), ports, hostNetwork (and its node), and the ipBlocks holding its IP."""
    return (
        pod.namespace,
        tuple(sorted(pod.labels.items())),
        _declared(pod),
        pod.host_network,
        pod.node if pod.host_network else None,
        _block_signature(cluster, pod.ip),
    )


def _declared(pod: Pod) -> tuple:
    return tuple(
        (c.init, p.name, p.protocol, p.container_port) for c in pod.containers for p in c.ports
    )


def _first_port(pod: Pod, protocol: str | None) -> tuple[int, str]:
    for c in pod.containers:
        for p in c.ports:
            if protocol is None or p.protocol.lower() == protocol:
                return p.container_port, p.protocol.lower()
    return 80, protocol or "tcp"


def _port_of(pod: Pod, port: int | None, protocol: str | None) -> tuple[int, str]:
    if port is None:
        return _first_port(pod, protocol)
    return port, protocol or "tcp"


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


def _target(cluster: Cluster, pod: Pod, port: int | None, protocol: str | None,
            via_service: bool) -> Target | None:  # fmt: skip
    num, proto = _port_of(pod, port, protocol)
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


def _trace(loaded, s: Pod, d: Pod, port, protocol, via_service):
    """The engine's trace of ``s`` -> ``d`` (None: no Service selects ``d`` on that port)."""
    target = _target(loaded.cluster, d, port, protocol, via_service)
    if target is None:
        return None
    origin = loaded.resolver().origin(SrcRef("pod", s.namespace, s.name, text=s.key))
    return trace_between(loaded.network, origin, target, src_text=s.key, dst_text=target.label)


def _evaluate(loaded, s: Pod, d: Pod, port, protocol, via_service) -> Cell:
    t = _trace(loaded, s, d, port, protocol, via_service)
    if t is None:
        return Cell("none", reason=f"no Service selects {d.key} on that port")
    return _cell(t)


def _wanted(sel: PodSelector, pod: Pod) -> bool:
    """An empty selector means the input's Pods: the cluster add-ons podnet adds on its own
    (CoreDNS) take part only when a selector names them (e.g. ``kube-system/``)."""
    from podnet.control.addons import is_addon

    if sel.namespace is not None or sel.terms or sel.name is not None:
        return True
    return pod.spec is None or not is_addon(pod.spec.meta)


def _select(cluster: Cluster, src_sel: PodSelector, dst_sel: PodSelector):
    """The selected sources and destinations sorted by key, and every Pod's key (made once:
    building 150,000 key strings over and over costs seconds)."""
    keyed = sorted((p.key, p) for p in cluster.pods)  # keys are unique: Pods never compared
    keys = {id(p): k for k, p in keyed}
    srcs = [p for _, p in keyed if src_sel.matches(p) and _wanted(src_sel, p)]
    dsts = [p for _, p in keyed if dst_sel.matches(p) and _wanted(dst_sel, p)]
    for sel, found in ((src_sel, srcs), (dst_sel, dsts)):
        if not found:
            raise UsageError(
                Problem(
                    f"no Pod matches {sel.text!r}",
                    hint="selectors read [NS/]k=v,k!=v,k,!k or pod/[NS/]NAME",
                )  # fmt: skip
            )
    return srcs, dsts, keys


def _keys(cluster, srcs, dsts, port, protocol, via_service):
    """Each source's and destination's class key, whether the class is evaluated by policy
    (plain) and the policy model (None with ``via_service``)."""
    if via_service:
        fine = {id(p): pod_class(cluster, p) for p in srcs + dsts}
        return [fine[id(p)] for p in srcs], [fine[id(p)] for p in dsts], None
    from podnet.analysis.reach_policy import build_model, dst_signature, plain, src_signature
    from podnet.control.policy_select import selection

    model = build_model(selection(cluster), list({id(p): p for p in srcs + dsts}.values()))
    # traffic from a Pod's own node is admitted whatever the policies: Pods sharing a node with
    # a hostNetwork (or otherwise special) Pod of the other side get classes per node
    odd_src = {p.node for p in srcs if not plain(p)}
    odd_dst = {p.node for p in dsts if not plain(p)}
    skeys = []
    for p in srcs:
        sig = src_signature(model, p)
        if plain(p):
            skeys.append((True, sig, p.node if p.node in odd_dst else None))
        else:
            skeys.append((False, sig, p.node, p.host_network))
    dkeys = []
    for p in dsts:
        sig = dst_signature(model, p)
        # a Pod's own namespace takes every port (podnet.trace.view socket_owner); a node's
        # gives a hostNetwork Pod the ports it declares
        if plain(p):
            what = (_port_of(p, port, protocol),)
            dkeys.append((True, sig, what, p.node if p.node in odd_src else None))
        else:
            what = (_port_of(p, port, protocol), _declared(p))
            dkeys.append((False, sig, what, p.node, p.host_network))
    return skeys, dkeys, model


def _group(pods: list[Pod], keys: list, prefix: str) -> tuple[list[int], list[list[Pod]], list]:
    """Classes in the order of their first member (Pods come sorted by key)."""
    index: dict = {}
    members: list[list[Pod]] = []
    of = []
    for p, k in zip(pods, keys, strict=True):
        i = index.get(k)
        if i is None:
            i = index[k] = len(members)
            members.append([])
        members[i].append(p)
        of.append(i)
    return of, members, list(index)


class _Picker:
    """Representatives of class pairs: two distinct Pods, on nodes already traced through when
    the classes have members there (the first trace touching a node builds its rules)."""

    def __init__(self, src_members, dst_members):
        self.src = src_members
        self.dst = dst_members
        self.touched: dict[str, None] = {}

    def _pick(self, members: list[Pod], avoid: Pod | None) -> Pod | None:
        if len(self.touched) and len(members) > 1:
            on = {}
            for p in members[:4096]:
                if p.node in self.touched and p is not avoid:
                    on.setdefault(p.node, p)
            for n in self.touched:
                if n in on:
                    return on[n]
        return next((p for p in members if p is not avoid), None)

    def pair(self, i: int, j: int) -> tuple[Pod, Pod] | None:
        s = self._pick(self.src[i], None)
        d = self._pick(self.dst[j], s)
        if d is None:  # the only destination is the source: try another source
            d = self.dst[j][0]
            s = self._pick(self.src[i], d)
            if s is None:
                return None
        self.touched.setdefault(s.node)
        self.touched.setdefault(d.node)
        return s, d


def compute_reach(loaded, src_sel: PodSelector, dst_sel: PodSelector, *, port: int | None = None,
                  protocol: str | None = None, via_service: bool = False, method: str = "auto",
                  sample: int = SAMPLE, progress=None) -> Reach:  # fmt: skip
    """The reachability table of the Pods ``src_sel`` selects to those ``dst_sel`` selects.

    ``method``: ``auto`` (trace when at most :data:`TRACE_LIMIT` class pairs), ``trace`` or
    ``policy`` (see the module docstring); ``progress(label, done, total)`` hears of the work.
    """
    from podnet.render.progress import quiet

    progress = progress or quiet
    cluster = loaded.cluster
    srcs, dsts, keys = _select(cluster, src_sel, dst_sel)
    progress("reach: classes", 0, None)
    skeys, dkeys, model = _keys(cluster, srcs, dsts, port, protocol, via_service)
    src_of, src_members, skeys_u = _group(srcs, skeys, "S")
    dst_of, dst_members, dkeys_u = _group(dsts, dkeys, "D")
    n_s, n_d = len(src_members), len(dst_members)
    if method == "auto":
        method = "trace" if model is None or n_s * n_d <= TRACE_LIMIT else "policy"
    if method == "policy" and model is None:
        raise UsageError(Problem("--via-service needs tracing", hint="leave the method auto"))
    picker = _Picker(src_members, dst_members)
    traced: dict[tuple[int, int], Cell] = {}
    reps: dict[tuple[int, int], tuple[str, str]] = {}
    traces = 0

    def run(i: int, j: int) -> Cell:
        nonlocal traces
        pair = picker.pair(i, j)
        if pair is None:
            return _CODE_CELL[SELF]
        reps[(i, j)] = (keys[id(pair[0])], keys[id(pair[1])])
        cell = _evaluate(loaded, pair[0], pair[1], port, protocol, via_service)
        traces += cell.verdict != "none"
        return cell

    rows: list[str] = []
    reasons = None
    checked, disagree = 0, []
    if method == "trace":
        for i in range(n_s):
            row = []
            for j in range(n_d):
                progress("reach: tracing class pairs", i * n_d + j, n_s * n_d)
                c = traced[(i, j)] = run(i, j)
                row.append(SELF if c.verdict == "self" else TRACED)
            rows.append("".join(row))
    else:
        rows, reasons = _by_policy(model, skeys_u, dkeys_u, progress)
        todo = [(i, j) for i, k in enumerate(skeys_u) for j, d in enumerate(dkeys_u)
                if not (k[0] and d[0])]  # fmt: skip
        for n, (i, j) in enumerate(todo):
            progress("reach: tracing special classes", n, len(todo))
            traced[(i, j)] = run(i, j)
        rows = _patch(rows, {ij: TRACED for ij in todo})
        picks = _sample(rows, sample)
        fixes = {}
        for n, (i, j) in enumerate(picks):
            progress("reach: checking by tracing", n, len(picks))
            want = _CODE_CELL[rows[i][j]]
            got = run(i, j)
            if got.verdict == "self":
                continue
            checked += 1
            if got.verdict != want.verdict:
                disagree.append((f"S{i + 1}", f"D{j + 1}", want.verdict, got.verdict))
                traced[(i, j)] = got
                fixes[(i, j)] = TRACED
        rows = _patch(rows, fixes)
    progress("reach: counting", 0, None)
    src_classes = tuple(PodClass(f"S{i + 1}", tuple(keys[id(p)] for p in m))
                        for i, m in enumerate(src_members))  # fmt: skip
    dst_classes = []
    for j, m in enumerate(dst_members):
        num, proto = _port_of(m[0], port, protocol)
        dst_classes.append(PodClass(f"D{j + 1}", tuple(keys[id(p)] for p in m), proto, num))
    self_pairs: dict[tuple[int, int], int] = {}
    dpos = {id(p): j for p, j in zip(dsts, dst_of, strict=True)}
    for p, i in zip(srcs, src_of, strict=True):
        j = dpos.get(id(p))
        if j is not None:
            self_pairs[(i, j)] = self_pairs.get((i, j), 0) + 1
    r = Reach(port, protocol, via_service, tuple(keys[id(p)] for p in srcs),
              tuple(keys[id(p)] for p in dsts),
              tuple(src_of), tuple(dst_of), src_classes, tuple(dst_classes), tuple(rows), traced,
              traces, method, {}, checked, tuple(disagree), loaded, reasons, reps)  # fmt: skip
    r.counts.update(_count(r, self_pairs))
    return r


def _patch(rows: list[str], codes: dict[tuple[int, int], str]) -> list[str]:
    out = list(rows)
    by_row: dict[int, list[tuple[int, str]]] = {}
    for (i, j), c in codes.items():
        by_row.setdefault(i, []).append((j, c))
    for i, changes in by_row.items():
        row = list(out[i])
        for j, c in changes:
            row[j] = c
        out[i] = "".join(row)
    return out


def _by_policy(model, skeys, dkeys, progress) -> tuple[list[str], object]:
    """Class rows from the policy evaluation (podnet.analysis.reach_policy)."""
    from podnet.analysis.reach_policy import evaluate, isolating

    srcs = [k[1] for k in skeys]
    dsts = [(k[1], k[2][0][1], k[2][0][0]) for k in dkeys]
    ingress, egress = evaluate(model, srcs, dsts, progress)
    n_s, n_d = len(srcs), len(dsts)
    # transpose the ingress bitmasks (per destination class, over source classes) into one
    # string per source class with str operations: 10^6 cells in C loops, not Python ones
    cols = [format(m, f"0{n_s}b")[::-1] for m in ingress]
    rows = []
    for i in range(n_s):
        progress("reach: class rows", i, n_s)
        ing = "".join(c[i] for c in cols) if n_d else ""
        eg = format(egress[i], f"0{n_d}b")[::-1] if n_d else ""
        # egress is walked first (the source's chain), so its denial is the one named
        row = ing.replace("1", ALLOW).replace("0", DENY_IN)
        if "0" in eg:
            row = "".join(DENY_EG if e == "0" else c for e, c in zip(eg, row, strict=True))
        rows.append(row)

    def reasons(i: int, j: int, direction: str) -> str:
        sig, cls = (dsts[j][0], f"D{j + 1}") if direction == "ingress" else (srcs[i], f"S{i + 1}")
        pols = ", ".join(isolating(model, sig, direction))
        word = "from" if direction == "ingress" else "to"
        other = f"S{i + 1}" if direction == "ingress" else f"D{j + 1}"
        return (f"the Pods of {cls} are isolated for {direction} by {pols}; no {direction} rule "
                f"admits traffic {word} the Pods of {other} on that port")  # fmt: skip

    return rows, reasons


def _sample(rows: list[str], count: int) -> list[tuple[int, int]]:
    """``count`` evaluated class pairs, half allowed and half denied, evenly spread."""
    out: list[tuple[int, int]] = []
    for codes, k in (((ALLOW,), (count + 1) // 2), ((DENY_IN, DENY_EG), count // 2)):
        per_row = [sum(r.count(c) for c in codes) for r in rows]
        total = sum(per_row)
        if not total or not k:
            continue
        ranks = sorted({int((n + 0.5) * total / k) for n in range(min(k, total))})
        at, base = 0, 0
        for i, row in enumerate(rows):
            while at < len(ranks) and ranks[at] < base + per_row[i]:
                want = ranks[at] - base
                seen = -1
                for j, c in enumerate(row):
                    if c in codes:
                        seen += 1
                        if seen == want:
                            out.append((i, j))
                            break
                at += 1
            base += per_row[i]
    return sorted(out)


def _count(r: Reach, self_pairs: dict[tuple[int, int], int]) -> dict:
    """Summary counts from class sizes (multiplied), self pairs taken out."""
    sizes = [c.size for c in r.dst_classes]
    by = {"allow": 0, "deny": 0, "partial": 0, "none": 0, "self": 0}
    for i, row in enumerate(r.rows):
        n = r.src_classes[i].size
        for code in (ALLOW, DENY_IN, DENY_EG):
            if code in row:
                by[_CODE_CELL[code].verdict] += n * sum(compress(sizes, map(eq, row, repeat(code))))
        if TRACED in row or SELF in row:
            for j, code in enumerate(row):
                if code == TRACED:
                    by[r.traced[(i, j)].verdict] += n * sizes[j]
                elif code == SELF:
                    by["self"] += n * sizes[j]
    for (i, j), k in self_pairs.items():
        code = r.rows[i][j]
        v = r.traced[(i, j)].verdict if code == TRACED else _CODE_CELL[code].verdict
        by[v] -= k
        by["self"] += k
    return {
        "pairs": by["allow"] + by["deny"] + by["partial"] + by["none"],
        "allowed": by["allow"],
        "denied": by["deny"],
        "partial": by["partial"],
        "unreachable": by["none"],
        "self": by["self"],
        "classes": r.classes,
        "traces": r.traces,
        "source_classes": len(r.src_classes),
        "destination_classes": len(r.dst_classes),
        "class_pairs": len(r.src_classes) * len(r.dst_classes),
        "method": r.method,
        "checked": r.checked,
        "disagreements": len(r.disagreements),
    }


def brute_force(
    loaded, src_sel: PodSelector, dst_sel: PodSelector, **kw
) -> tuple[tuple[str, ...], ...]:
    """Every pair traced on its own (no classes): the verdicts, for checking the classes."""
    pods = sorted(loaded.cluster.pods, key=lambda p: p.key)
    out = []
    for s in (p for p in pods if src_sel.matches(p)):
        row = []
        for d in (p for p in pods if dst_sel.matches(p)):
            if s.key == d.key:
                row.append("self")
                continue
            row.append(_evaluate(loaded, s, d, kw.get("port"), kw.get("protocol"),
                                 kw.get("via_service", False)).verdict)  # fmt: skip
        out.append(tuple(row))
    return tuple(out)
