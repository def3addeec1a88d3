"""Phase 2: namespaces. Every namespace an object names exists; all carry the label
``kubernetes.io/metadata.name=<name>``, which the API server sets on every Namespace and keeps
equal to its name (kubernetes pkg/registry/core/namespace/strategy.go, NamespaceDefaultLabelName).
"""

from __future__ import annotations

from collections.abc import Iterable

from podnet.control.report import Report
from podnet.model.base import FrozenDict
from podnet.model.spec import Inputs, Namespace

NAME_LABEL = "kubernetes.io/metadata.name"


def plan_namespaces(
    inputs: Inputs, mentioned: Iterable[str], report: Report
) -> tuple[Namespace, ...]:
    """Given Namespaces (labels kept) plus every namespace named elsewhere, sorted by name.

    >>> [n.name for n in plan_namespaces(Inputs(), ["b", "a", "b"], Report())]
    ['a', 'b']
    """
    found: dict[str, Namespace] = {}
    for ns in inputs.namespaces:
        if ns.name in found:
            report.error(f"duplicate Namespace {ns.name!r}", ns.src, "metadata.name")
            continue
        labels = dict(ns.labels)
        labels[NAME_LABEL] = ns.name
        found[ns.name] = Namespace(ns.name, FrozenDict(labels), ns.src)
    for name in mentioned:
        if name not in found:
            found[name] = Namespace(name, FrozenDict({NAME_LABEL: name}))
    out = tuple(found[n] for n in sorted(found))
    for ns in out:
        report.event("api-server", "create", f"Namespace/{ns.name}")
    return out


def namespaces_named(inputs: Inputs) -> list[str]:
    """Namespaces named by namespaced objects, in input order (None counts as ``default``)."""
    names: list[str] = []
    seen: set[str] = set()
    groups: tuple[Iterable, ...] = (
        (p.meta for p in inputs.pods),
        (w.meta for w in inputs.workloads),
        (s.meta for s in inputs.services),
        (e.meta for e in inputs.endpoint_slices),
        (n.meta for n in inputs.policies),
    )
    for metas in groups:
        for meta in metas:
            ns = meta.namespace or "default"
            if ns not in seen:
                seen.add(ns)
                names.append(ns)
    return names
