"""``podnet reach``: which Pods can open a connection to which, as a truth table.

A cell is one connection from a source Pod to a destination Pod: at the destination's Pod IP,
or through the ClusterIP of a Service selecting it (``via_service``). The port is ``port`` when
given, else the destination Pod's first declared container port (with its protocol unless
``protocol`` is given; 80 for a Pod that declares none). Self pairs are not probed (the
Kubernetes e2e suite ignores them too: CNIs disagree on loopback, kubernetes/kubernetes#95879).

Classes. 150,000 x 150,000 Pods are 2.25 * 10^10 cells: the table is computed over classes of
Pods the network cannot tell apart, and Pod-level answers are expanded on demand. A Pod has a
*source class* and a *destination class*; podnet.analysis.reach_classes says how Pods are
grouped. ``via_service`` keeps the finer classes of :func:`pod_class`. The result type
(:class:`Reach`) and its Pod-level expansion are in podnet.analysis.reach_result; this module
holds the selectors and the computation, and re-exports the public names of both.

Verdicts per class pair (``method``):

* ``trace``: one trace through the real engine between two distinct representative Pods per
  class pair (faithful; used when there are at most :data:`TRACE_LIMIT` class pairs, always with
  ``via_service``);
* ``policy``: above that, the policy agent's rules evaluated for whole classes with bitsets
  (podnet.analysis.reach_policy); pairs with a hostNetwork or finished Pod's class are still
  traced, and ``sample`` class pairs (half allowed, half denied, evenly spread) are traced too as
  a check: a disagreement is counted in the summary and the traced verdict kept. With
  ``via_service``, ``policy`` evaluates each Service's endpoints and the policy rules over classes
  of its own (podnet.analysis.reach_service: a destination class is the ClusterIP and port
  dialled), in a flannel cluster with kube-proxy in iptables mode; in other modes every class
  pair is traced.

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

from dataclasses import dataclass

from podnet.analysis.reach_classes import _group, _keys, _Picker, _port_of, pod_class
from podnet.analysis.reach_result import (
    _CODE_CELL,
    ALLOW,
    DENY_EG,
    DENY_IN,
    POD_CELLS_MAX,
    SELF,
    SYMBOL,
    TRACED,
    Cell,
    PodClass,
    Reach,
    _count,
    _evaluate,
)
from podnet.analysis.reach_service import ServiceReach
from podnet.errors import Problem, UsageError
from podnet.model.cluster import Cluster, Pod

__all__ = [
    "ALLOW",
    "DENY_EG",
    "DENY_IN",
    "POD_CELLS_MAX",
    "POD_LEVEL_MAX",
    "SAMPLE",
    "SELF",
    "SYMBOL",
    "TRACED",
    "TRACE_LIMIT",
    "Cell",
    "PodClass",
    "PodSelector",
    "Reach",
    "brute_force",
    "compute_reach",
    "parse_selector",
    "pod_class",
]

TRACE_LIMIT = 2_000
"""Class pairs up to which every pair is traced (about 1 ms each)."""
POD_LEVEL_MAX = 40_000
"""Pod x Pod cells up to which the outputs show the Pod-level table."""
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
    service = None
    if via_service and (method == "policy" or (method == "auto" and n_s * n_d > TRACE_LIMIT)):
        # too many class pairs to trace: Services' endpoints and the policy rules evaluated
        # (podnet.analysis.reach_service), over classes of its own
        service = ServiceReach.of(cluster)
        if service is not None:
            skeys, dkeys = service.keys(srcs, dsts, port, protocol)
            src_of, src_members, skeys_u = _group(srcs, skeys, "S")
            dst_of, dst_members, dkeys_u = _group(dsts, dkeys, "D")
            n_s, n_d = len(src_members), len(dst_members)
            method = "policy"
    if method == "auto":
        method = "trace" if model is None or n_s * n_d <= TRACE_LIMIT else "policy"
    if method == "policy" and model is None and service is None:
        raise UsageError(
            Problem(
                "--via-service is traced pair by pair in this cluster's modes",
                hint="leave the method auto (the evaluation covers flannel with kube-proxy "
                "in iptables mode, without masquerade-all)",
            )
        )
    picker = _Picker(src_members, dst_members)
    traced: dict[tuple[int, int], Cell] = {}
    reps: dict[tuple[int, int], tuple[str, str]] = {}
    traces = 0

    def run(i: int, j: int) -> Cell:
        nonlocal traces
        if service is not None and dkeys_u[j][0] == "none":
            # no Service selects the class's Pods on that port: nothing to trace (nor to
            # pick nodes for)
            d, s = dst_members[j][0], src_members[i][0]
            if s is d:  # two distinct Pods, as the picker gives
                if len(dst_members[j]) > 1:
                    d = dst_members[j][1]
                elif len(src_members[i]) > 1:
                    s = src_members[i][1]
                else:
                    return _CODE_CELL[SELF]
            reps[(i, j)] = (keys[id(s)], keys[id(d)])
            return Cell("none", reason=f"no Service selects {d.key} on that port")
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
        if service is not None:
            rows, todo, reasons = service.rows(skeys_u, dkeys_u, progress)
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
