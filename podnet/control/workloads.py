"""Phase 3: workload controllers turn Deployments, ReplicaSets, StatefulSets and DaemonSets into Pods.

Names follow the controllers, with the random parts made deterministic (podnet.control.naming):

- Deployment ``web`` -> ReplicaSet ``web-<pod-template-hash>`` (pkg/controller/deployment/sync.go
  getNewReplicaSet) -> Pods ``web-<hash>-<5 chars>`` (generateName ``<rs>-``, pkg/controller/
  controller_utils.go GetPodFromTemplate); Pods carry the label ``pod-template-hash``.
- ReplicaSet ``rs`` -> Pods ``rs-<5 chars>``.
- StatefulSet ``db`` -> Pods ``db-0`` .. ``db-(n-1)`` with hostname = Pod name and subdomain =
  serviceName, labels ``controller-revision-hash`` (``db-<hash>``),
  ``statefulset.kubernetes.io/pod-name`` and ``apps.kubernetes.io/pod-index``
  (pkg/controller/statefulset/stateful_set_utils.go newStatefulSetPod, initIdentity).
- DaemonSet ``ds`` -> one Pod ``ds-<5 chars>`` per node it may run on (nodeSelector, nodeName and
  NoSchedule/NoExecute taints, pkg/controller/daemon/daemon_controller.go NodeShouldRunDaemonPod),
  with the tolerations the controller adds (pkg/controller/daemon/util/daemonset_util.go
  AddOrUpdateDaemonPodTolerations) and labels ``controller-revision-hash``, ``pod-template-generation``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from podnet.control.naming import NameGenerator, template_hash
from podnet.control.report import Report
from podnet.model.base import FrozenDict
from podnet.model.cluster import Node
from podnet.model.spec import Meta, PodSpec, PodTemplate, Source, Taint, Toleration, Workload

KINDS = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet")
TEMPLATE_PATH = "spec.template.spec"

# AddOrUpdateDaemonPodTolerations: every DaemonSet Pod tolerates these (NetworkUnavailable only
# for hostNetwork Pods).
DAEMON_TOLERATIONS = (
    Toleration("node.kubernetes.io/not-ready", "Exists", "", "NoExecute"),
    Toleration("node.kubernetes.io/unreachable", "Exists", "", "NoExecute"),
    Toleration("node.kubernetes.io/disk-pressure", "Exists", "", "NoSchedule"),
    Toleration("node.kubernetes.io/memory-pressure", "Exists", "", "NoSchedule"),
    Toleration("node.kubernetes.io/pid-pressure", "Exists", "", "NoSchedule"),
    Toleration("node.kubernetes.io/unschedulable", "Exists", "", "NoSchedule"),
)
DAEMON_HOSTNET_TOLERATION = Toleration(
    "node.kubernetes.io/network-unavailable", "Exists", "", "NoSchedule"
)


@dataclass(slots=True)
class PodDraft:
    """A Pod on its way through the phases (mutable, private to podnet.control).

    ``order`` is the creation order (source position of the Pod or its workload); ``prefix`` is
    the path of the Pod spec inside its source object, for messages; ``bind`` is the node a
    DaemonSet Pod was made for.
    """

    spec: PodSpec
    order: tuple
    src: Source
    prefix: str = "spec"
    bind: str | None = None
    node: Node | None = None
    ip: IPv4Address | None = None

    @property
    def key(self) -> str:
        return f"{self.spec.meta.namespace or 'default'}/{self.spec.meta.name}"


def check_workload(w: Workload, report: Report) -> bool:
    """The API server's validation of the selector against the template (apps validation.go)."""
    if w.kind not in KINDS:
        report.error(
            f"unsupported workload kind {w.kind!r} (expected one of {', '.join(KINDS)})",
            w.meta.src,
            "kind",
        )
        return False
    if w.selector.empty:
        report.error(f"empty selector is invalid for {w.kind.lower()}", w.meta.src, "spec.selector")
        return False
    if not w.selector.matches(w.template.labels):
        found = ", ".join(f"{k}={v}" for k, v in w.template.labels.items()) or "none"
        report.error(
            f"`selector` does not match template `labels` (found labels {found})",
            w.meta.src,
            "spec.template.metadata.labels",
            hint="the Pods a workload makes must carry every label its spec.selector asks for",
        )
        return False
    if w.replicas < 0:
        report.error(
            f"must be greater than or equal to 0 (found {w.replicas})",
            w.meta.src,
            "spec.replicas",
        )
        return False
    return True


def _labels(base: FrozenDict, **extra: str) -> FrozenDict:
    out = dict(base)
    out.update(extra)
    return FrozenDict(out)


def _with_tolerations(t: PodTemplate) -> PodTemplate:
    tols = list(t.tolerations)
    wanted = DAEMON_TOLERATIONS + ((DAEMON_HOSTNET_TOLERATION,) if t.host_network else ())
    for tol in wanted:
        # AddOrUpdateTolerationInPodSpec: replace a toleration with the same key and effect
        tols = [x for x in tols if not (x.key == tol.key and x.effect == tol.effect)]
        tols.append(tol)
    return dataclasses.replace(t, tolerations=tuple(tols))


def daemon_fits(t: PodTemplate, node: Node) -> bool:
    """NodeShouldRunDaemonPod's predicates: nodeName, nodeSelector, NoSchedule/NoExecute taints."""
    if t.node_name and t.node_name != node.name:
        return False
    for k, v in t.node_selector.items():
        if node.labels.get(k) != v:
            return False
    return all(_tolerated(taint, t.tolerations) for taint in node.taints)


def _tolerated(taint: Taint, tolerations: Sequence[Toleration]) -> bool:
    if taint.effect not in ("NoSchedule", "NoExecute"):
        return True
    return any(tol.tolerates(taint) for tol in tolerations)


def expand(
    w: Workload,
    order: tuple,
    nodes: Sequence[Node],
    names: NameGenerator,
    report: Report,
) -> list[PodDraft]:
    """The Pods one (valid) workload's controller creates, in creation order."""
    ns = w.meta.namespace or "default"
    name = w.meta.name
    t = w.template
    src = w.meta.src
    out: list[PodDraft] = []
    report.event("api-server", "create", f"{w.kind}/{ns}/{name}", "validated, stored in etcd")

    def make(pod_name: str, template: PodTemplate, owner: tuple[str, str], i: int, **kw: Any):
        meta = Meta(pod_name, ns, template.labels, template.annotations, src=src)
        spec = PodSpec(meta, template, owner=owner)
        out.append(PodDraft(spec, order + (i,), src, TEMPLATE_PATH, **kw))
        report.event(actor, "create", f"Pod/{ns}/{pod_name}", f"owner {owner[0]}/{owner[1]}")

    if w.kind == "Deployment":
        h = template_hash(t)
        rs = f"{name}-{h}"
        report.event(
            "deployment-controller",
            "create",
            f"ReplicaSet/{ns}/{rs}",
            f"pod-template-hash {h}, replicas {w.replicas}",
        )
        actor = "replicaset-controller"
        template = dataclasses.replace(t, labels=_labels(t.labels, **{"pod-template-hash": h}))
        for i in range(w.replicas):
            make(names.generate(ns, rs + "-", f"{rs}#{i}"), template, ("ReplicaSet", rs), i)
    elif w.kind == "ReplicaSet":
        actor = "replicaset-controller"
        for i in range(w.replicas):
            make(names.generate(ns, name + "-", f"{name}#{i}"), t, ("ReplicaSet", name), i)
    elif w.kind == "StatefulSet":
        actor = "statefulset-controller"
        revision = f"{name}-{template_hash({'kind': w.kind, 'template': t})}"
        for i in range(w.replicas):
            pod_name = f"{name}-{i}"
            if not names.reserve(ns, pod_name):
                report.error(
                    f"Pod {ns}/{pod_name} of StatefulSet {name} already exists",
                    src,
                    "metadata.name",
                )
                continue
            labels = _labels(
                t.labels,
                **{
                    "controller-revision-hash": revision,
                    "statefulset.kubernetes.io/pod-name": pod_name,
                    "apps.kubernetes.io/pod-index": str(i),
                },
            )
            template = dataclasses.replace(
                t, labels=labels, hostname=pod_name, subdomain=w.service_name or None
            )
            make(pod_name, template, ("StatefulSet", name), i)
    else:  # DaemonSet
        actor = "daemonset-controller"
        h = template_hash({"kind": w.kind, "template": t})
        template = _with_tolerations(
            dataclasses.replace(
                t,
                labels=_labels(
                    t.labels, **{"controller-revision-hash": h, "pod-template-generation": "1"}
                ),
            )
        )
        for i, node in enumerate(nodes):
            if daemon_fits(template, node):
                pod_name = names.generate(ns, name + "-", f"{name}@{node.name}")
                make(pod_name, template, ("DaemonSet", name), i, bind=node.name)
    return out
