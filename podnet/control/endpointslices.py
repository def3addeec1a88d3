"""Phase 7: EndpointSlices, as the EndpointSlice controller derives them
(kubernetes pkg/controller/endpointslice/reconciler.go, staging/src/k8s.io/endpointslice/utils.go).

For a Service with a selector (not ExternalName): the Pods of its namespace whose labels match,
without terminal Pods (phase Succeeded/Failed, ShouldPodBeInEndpoints). For each Service port the
target port is resolved per Pod (FindPort): a number as is, a name by the Pod's container port of
that name and protocol; a Pod without that name is no endpoint for that port. Endpoints are grouped
by their resolved port set, one set of slices per group (the reconciler's port map key), at most
100 endpoints a slice (``--max-endpoints-per-slice`` default). A Service that selects nothing gets
one empty placeholder slice.

Conditions (podToEndpoint): ``serving`` = Pod Ready, ``terminating`` = deletionTimestamp set,
``ready`` = publishNotReadyAddresses or (serving and not terminating). ``hostname`` is set when the
Pod has ``spec.hostname`` and its ``spec.subdomain`` is the Service's name (ShouldSetHostname);
``zone`` comes from the node's ``topology.kubernetes.io/zone`` label.

Slices given in the input for a Service (label ``kubernetes.io/service-name``) are used as they
are and the Service gets no derived slice. Names are ``<service>-<5 chars>`` (generateName),
derived deterministically. Endpoints are sorted by address.
"""

from __future__ import annotations

from collections.abc import Sequence

from podnet.control.naming import NameGenerator
from podnet.control.report import Report
from podnet.model.cluster import Endpoint, EndpointPort, EndpointSlice, Node, Pod, Service
from podnet.model.spec import EndpointSliceSpec

MAX_ENDPOINTS_PER_SLICE = 100
ZONE_LABEL = "topology.kubernetes.io/zone"
TERMINAL_PHASES = ("Succeeded", "Failed")


class PodIndex:
    """Pods by namespace and label, for selector look-ups without scanning every Pod."""

    def __init__(self, pods: Sequence[Pod]) -> None:
        self.pods = pods
        self.by_label: dict[tuple[str, str, str], list[int]] = {}
        for i, pod in enumerate(pods):
            if pod.spec is not None and pod.spec.phase in TERMINAL_PHASES:
                continue
            ns = pod.namespace
            for k, v in pod.labels.items():
                self.by_label.setdefault((ns, k, v), []).append(i)

    def select(self, namespace: str, selector: dict | object) -> list[Pod]:
        """Pods of ``namespace`` whose labels hold every pair of ``selector`` (non-empty), in order."""
        lists = []
        for k, v in selector.items():  # type: ignore[attr-defined]
            found = self.by_label.get((namespace, k, v))
            if not found:
                return []
            lists.append(found)
        lists.sort(key=len)
        chosen = set(lists[0])
        for other in lists[1:]:
            chosen.intersection_update(other)
            if not chosen:
                return []
        return [self.pods[i] for i in sorted(chosen)]


def convert_given(spec: EndpointSliceSpec, report: Report) -> EndpointSlice:
    """A slice from the input, as it is (the first address of each endpoint, as kube-proxy reads)."""
    ns = spec.meta.namespace or "default"
    ports = []
    for i, p in enumerate(spec.ports):
        if p.port is None:
            report.warn(
                "port without a number is ignored (kube-proxy skips it)",
                spec.meta.src,
                f"ports[{i}].port",
            )
            continue
        ports.append(EndpointPort(p.name, p.port, p.protocol))
    endpoints = []
    for i, e in enumerate(spec.endpoints):
        if not e.addresses:
            report.warn("endpoint without addresses is ignored", spec.meta.src, f"endpoints[{i}]")
            continue
        endpoints.append(
            Endpoint(
                e.addresses[0],
                e.ready,
                e.serving,
                e.terminating,
                e.node_name,
                e.target_ref,
                e.hostname,
                e.zone,
            )  # fmt: skip
        )
    return EndpointSlice(
        spec.meta.name, ns, spec.service_name, tuple(ports), tuple(endpoints), given=True
    )


def plan_endpoint_slices(
    services: Sequence[Service],
    pods: Sequence[Pod],
    nodes: Sequence[Node],
    given: Sequence[EndpointSliceSpec],
    report: Report,
) -> tuple[EndpointSlice, ...]:
    """Phase 7: the given slices, then one or more derived slices per selecting Service."""
    names = NameGenerator()
    out: list[EndpointSlice] = []
    covered: set[tuple[str, str]] = set()
    known = {(s.namespace, s.name) for s in services}
    for spec in given:
        ns = spec.meta.namespace or "default"
        if not names.reserve(ns, spec.meta.name):
            report.error(f"duplicate EndpointSlice {ns}/{spec.meta.name}", spec.meta.src)
            continue
        out.append(convert_given(spec, report))
        covered.add((ns, spec.service_name))
        if (ns, spec.service_name) not in known:
            report.warn(
                f"EndpointSlice {ns}/{spec.meta.name} belongs to Service {ns}/{spec.service_name},"
                " which does not exist",
                spec.meta.src,
                "metadata.labels",
            )
    zones = {n.name: n.labels.get(ZONE_LABEL) for n in nodes}
    index = PodIndex(pods)
    for svc in services:
        spec = svc.spec
        if not spec.selector or spec.type == "ExternalName":
            continue
        if (svc.namespace, svc.name) in covered:
            continue
        out.extend(_derive(svc, index, zones, names, report))
    return tuple(out)


def _derive(
    svc: Service,
    index: PodIndex,
    zones: dict[str, str | None],
    names: NameGenerator,
    report: Report,
) -> list[EndpointSlice]:
    spec = svc.spec
    assert spec.selector is not None
    selected = index.select(svc.namespace, spec.selector)
    src = spec.meta.src
    if not selected:
        sel = ",".join(f"{k}={v}" for k, v in spec.selector.items())
        report.warn(
            f"Service {svc.key}: selector {sel} selects no Pod in namespace {svc.namespace}",
            src,
            "spec.selector",
            hint="the Service has no endpoints: connections to it are rejected",
        )
    named_found = [False] * len(spec.ports)
    groups: dict[tuple[EndpointPort, ...], list[Endpoint]] = {}
    publish = spec.publish_not_ready_addresses
    resolved: dict[tuple[int, str, str], int | None] = {}
    for pod in selected:
        ports = []
        for i, p in enumerate(spec.ports):
            target = p.target
            if isinstance(target, str):
                # Pods of one workload share their containers tuple: resolve the name once.
                ck = (id(pod.containers), target, p.protocol)
                if ck in resolved:
                    number = resolved[ck]
                else:
                    number = resolved[ck] = pod.named_port(target, p.protocol)
                if number is None:
                    continue
                named_found[i] = True
            else:
                number = target
            ports.append(EndpointPort(p.name, number, p.protocol))
        serving = pod.ready
        terminating = pod.terminating
        hostname = pod.hostname if pod.hostname and pod.subdomain == svc.name else None
        ep = Endpoint(
            pod.ip,
            ready=publish or (serving and not terminating),
            serving=serving,
            terminating=terminating,
            node_name=pod.node,
            pod=pod.key,
            hostname=hostname,
            zone=zones.get(pod.node),
        )
        groups.setdefault(tuple(ports), []).append(ep)
    if selected:
        for i, p in enumerate(spec.ports):
            if isinstance(p.target, str) and not named_found[i]:
                report.warn(
                    f"Service {svc.key}: no selected Pod declares a container port named"
                    f" {p.target!r} with protocol {p.protocol}",
                    src,
                    f"spec.ports[{i}].targetPort",
                    hint="the Service has no endpoints for this port",
                )
    if not groups:
        groups[()] = []
    out = []
    for ports, endpoints in groups.items():
        endpoints.sort(key=lambda e: int(e.ip))
        portkey = ",".join(f"{p.name}:{p.port}/{p.protocol}" for p in ports)
        chunks = range(0, max(len(endpoints), 1), MAX_ENDPOINTS_PER_SLICE)
        for c, start in enumerate(chunks):
            part = tuple(endpoints[start : start + MAX_ENDPOINTS_PER_SLICE])
            name = names.generate(svc.namespace, svc.name + "-", f"{svc.name}|{portkey}|{c}")
            out.append(EndpointSlice(name, svc.namespace, svc.name, ports, part))
            report.event(
                "endpointslice-controller",
                "create",
                f"EndpointSlice/{svc.namespace}/{name}",
                f"{len(part)} endpoint(s), ports {portkey or 'none'}",
            )
    return out
