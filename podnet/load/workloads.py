"""Pods and the workloads that make them (Deployment, ReplicaSet, StatefulSet, DaemonSet).

Validation follows the API server (kubernetes pkg/apis/core/validation/validation.go and
pkg/apis/apps/validation/validation.go) for the fields podnet reads; the many PodSpec and
Container fields podnet does not emulate are accepted and ignored.
"""

from __future__ import annotations

from podnet.load.fields import Cursor, parse_ipv4
from podnet.load.meta import (
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    checked_name,
    finish,
    label_key_error,
    labels,
    port_name_error,
    read_meta,
    resources,
    selector,
)
from podnet.model.base import EMPTY, FrozenDict
from podnet.model.spec import (
    PROTOCOLS,
    Container,
    ContainerPort,
    LabelSelector,
    PodSpec,
    PodTemplate,
    Resources,
    Toleration,
    Workload,
)

_POD_SPEC_READ = (
    "containers",
    "initContainers",
    "nodeName",
    "hostNetwork",
    "nodeSelector",
    "tolerations",
    "hostname",
    "subdomain",
    "dnsPolicy",
)
_POD_SPEC_IGNORED = (
    "volumes",
    "ephemeralContainers",
    "restartPolicy",
    "terminationGracePeriodSeconds",
    "activeDeadlineSeconds",
    "dnsConfig",
    "serviceAccountName",
    "serviceAccount",
    "automountServiceAccountToken",
    "hostPID",
    "hostIPC",
    "shareProcessNamespace",
    "securityContext",
    "imagePullSecrets",
    "affinity",
    "schedulerName",
    "priorityClassName",
    "priority",
    "readinessGates",
    "runtimeClassName",
    "enableServiceLinks",
    "preemptionPolicy",
    "overhead",
    "topologySpreadConstraints",
    "setHostnameAsFQDN",
    "os",
    "hostUsers",
    "schedulingGates",
    "resourceClaims",
    "hostAliases",
    "resources",
)
_CONTAINER_READ = ("name", "image", "ports", "resources")
_CONTAINER_IGNORED = (
    "command",
    "args",
    "workingDir",
    "envFrom",
    "env",
    "volumeMounts",
    "volumeDevices",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "imagePullPolicy",
    "securityContext",
    "stdin",
    "stdinOnce",
    "tty",
    "restartPolicy",
    "resizePolicy",
)
DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
TOLERATION_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def read_pod_template(
    spec: Cursor, pod_labels: FrozenDict = EMPTY, annotations: FrozenDict = EMPTY
) -> PodTemplate:
    """A PodSpec (at ``spec``) with the labels and annotations of its metadata."""
    spec.known(_POD_SPEC_READ, _POD_SPEC_IGNORED)
    containers = _containers(spec, "containers", init=False, required=True)
    containers += _containers(spec, "initContainers", init=True, required=False)
    seen: dict[str, str] = {}
    for c, path in containers:
        if c.name in seen:
            spec.obj.error(
                f"duplicate container name '{c.name}' (also at {seen[c.name]})",
                spec.obj.paths.get(path),
                path,
            )
        else:
            seen[c.name] = path
    tolerations = _tolerations(spec)
    hostname = checked_name(spec, "hostname", DNS1123_LABEL, required=False)
    subdomain = checked_name(spec, "subdomain", DNS1123_LABEL, required=False)
    return PodTemplate(
        labels=pod_labels,
        annotations=annotations,
        containers=tuple(c for c, _ in containers),
        node_name=checked_name(spec, "nodeName", DNS1123_SUBDOMAIN, required=False),
        node_selector=labels(spec, "nodeSelector"),
        tolerations=tolerations,
        host_network=spec.bool("hostNetwork"),
        hostname=hostname,
        subdomain=subdomain,
        dns_policy=spec.str("dnsPolicy", default="ClusterFirst", choices=DNS_POLICIES)
        or "ClusterFirst",
    )


def _containers(spec: Cursor, key: str, init: bool, required: bool) -> list[tuple[Container, str]]:
    out = []
    items = list(spec.maps(key, required=required))
    if required and not items and spec.has(key):
        spec.error("at least one container is required", key)
    for c in items:
        c.known(_CONTAINER_READ, _CONTAINER_IGNORED)
        name = checked_name(c, "name", DNS1123_LABEL)
        image = c.str("image", default="") or ""
        ports = _container_ports(c)
        requests = Resources()
        res = c.map("resources")
        if res is not None:
            res.known(("requests", "limits"), ("claims",))
            limits = res.map("limits")
            lim = resources(limits) if limits is not None else Resources()
            lim = Resources(lim.cpu_m, lim.memory)
            req = res.map("requests")
            # Pod defaulting: a request not given defaults to its limit
            # (kubernetes pkg/apis/core/v1/defaults.go, SetDefaults_ResourceRequirements).
            requests = resources(req, lim) if req is not None else lim
            requests = Resources(requests.cpu_m, requests.memory)
        if name is not None:
            out.append((Container(name, image, ports, requests, init), c.path))
    return out


def _container_ports(c: Cursor) -> tuple[ContainerPort, ...]:
    # A port name is unique within a container (kubernetes pkg/apis/core/validation/validation.go,
    # validateContainerPorts): a Service's named targetPort would otherwise be ambiguous.
    out: list[ContainerPort] = []
    names: dict[str, str] = {}
    for p in c.maps("ports"):
        port = _container_port(p)
        name = port.name if port is not None else None
        if name and name in names:
            p.error(f"duplicate port name '{name}' (also at {names[name]})", "name")
        elif name:
            names[name] = p.path
        if port is not None:
            out.append(port)
    return tuple(out)


def _container_port(p: Cursor) -> ContainerPort | None:
    p.known(("containerPort", "name", "protocol", "hostPort"), ("hostIP",))
    port = p.int("containerPort", required=True, lo=1, hi=65535)
    name = p.str("name")
    if name is not None and port_name_error(name):
        p.error(port_name_error(name) or "", "name")
    protocol = p.str("protocol", default="TCP", choices=PROTOCOLS) or "TCP"
    host_port = p.int("hostPort", lo=0, hi=65535) or None
    if port is None:
        return None
    return ContainerPort(port, name, protocol, host_port)


def _tolerations(spec: Cursor) -> tuple[Toleration, ...]:
    out = []
    for t in spec.maps("tolerations"):
        t.known(("key", "operator", "value", "effect"), ("tolerationSeconds",))
        key = t.str("key") or None
        if key is not None and label_key_error(key):
            t.error(label_key_error(key) or "", "key")
        op = t.str("operator", default="Equal", choices=("Equal", "Exists")) or "Equal"
        value = t.str("value", default="") or ""
        effect = t.str("effect", choices=("", *TOLERATION_EFFECTS)) or None
        if op == "Exists" and value:
            t.error("value must be empty when operator is 'Exists'", "value")
        if key is None and op != "Exists":
            t.error(
                "operator must be 'Exists' when key is empty",
                "operator" if t.has("operator") else None,
            )
        out.append(Toleration(key, op, value, effect))
    return tuple(out)


def read_pod(top: Cursor) -> PodSpec | None:
    """A ``Pod`` object."""
    top.known(("apiVersion", "kind", "metadata", "spec", "status"))
    meta = read_meta(top, DNS1123_SUBDOMAIN, namespaced=True)
    spec = top.map("spec", required=True)
    template = None
    if spec is not None:
        if meta is not None:
            template = read_pod_template(spec, meta.labels, meta.annotations)
        else:
            read_pod_template(spec)  # still report what is wrong in the spec
    pod_ip, ready, phase = None, True, "Running"
    status = top.map("status")
    if status is not None:  # kubectl prints much more status; only these parts matter here
        phase = status.str("phase", default="Running", choices=PHASES) or "Running"
        if status.has("podIP"):
            pod_ip = status.ipv4("podIP")
        else:
            for addr in status.maps("podIPs"):
                text = addr.str("ip")
                if text is not None and ":" not in text:
                    pod_ip = parse_ipv4(text, top.obj, addr.raw("ip").pos, addr.sub("ip"))
                    break
        for cond in status.maps("conditions"):
            if cond.str("type") == "Ready":
                # podutil.IsPodReady: Ready only when the condition's status is "True".
                ready = cond.str("status", choices=("True", "False", "Unknown")) == "True"
    if meta is None or template is None:
        return None
    return PodSpec(finish(meta, top), template, pod_ip, ready, phase)


_WORKLOAD_SPEC_IGNORED = {
    "Deployment": (
        "strategy",
        "minReadySeconds",
        "revisionHistoryLimit",
        "progressDeadlineSeconds",
        "paused",
    ),
    "ReplicaSet": ("minReadySeconds",),
    "StatefulSet": (
        "updateStrategy",
        "podManagementPolicy",
        "volumeClaimTemplates",
        "persistentVolumeClaimRetentionPolicy",
        "ordinals",
        "minReadySeconds",
        "revisionHistoryLimit",
    ),
    "DaemonSet": (
        "updateStrategy",
        "minReadySeconds",
        "revisionHistoryLimit",
        "templateGeneration",
    ),
}
_TEMPLATE_META_IGNORED = ("name", "namespace", "generateName", "creationTimestamp", "uid")


def read_workload(kind: str, top: Cursor) -> Workload | None:
    """A Deployment, ReplicaSet, StatefulSet or DaemonSet."""
    top.known(("apiVersion", "kind", "metadata", "spec", "status"))
    meta = read_meta(top, DNS1123_SUBDOMAIN, namespaced=True)
    spec = top.map("spec", required=True)
    if spec is None:
        return None
    read = ["selector", "template"]
    if kind != "DaemonSet":
        read.append("replicas")
    if kind == "StatefulSet":
        read.append("serviceName")
    spec.known(read, _WORKLOAD_SPEC_IGNORED[kind])
    replicas = 1
    if kind != "DaemonSet":
        replicas = spec.int("replicas", default=1, lo=0) or 0
        if not spec.has("replicas"):
            replicas = 1
    service_name = spec.str("serviceName") if kind == "StatefulSet" else None
    sel = selector(spec, "selector")
    tpl = spec.map("template", required=True)
    template = None
    if tpl is not None:
        tpl.known(("metadata", "spec"))
        tmeta = tpl.map("metadata")
        tlabels, tann = EMPTY, EMPTY
        if tmeta is not None:
            tmeta.known(("labels", "annotations"), _TEMPLATE_META_IGNORED)
            tlabels, tann = labels(tmeta, "labels"), tmeta.str_map("annotations")
        tspec = tpl.map("spec", required=True)
        if tspec is not None:
            template = read_pod_template(tspec, tlabels, tann)
    # apps/v1 validation: a selector is required, must not be empty, and must match the template.
    if sel is None:
        spec.error("missing required value", "selector")
    elif sel.empty:
        spec.error("empty selector is invalid for a " + kind, "selector")
    elif template is not None and not sel.matches(template.labels):
        spec.error(
            "selector does not match template labels",
            "selector",
            "the Pod template's metadata.labels must satisfy spec.selector",
        )
    if meta is None or template is None or sel is None:
        return None
    return Workload(
        kind, finish(meta, top), template, replicas, sel or LabelSelector(), service_name
    )
