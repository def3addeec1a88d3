"""The control plane's story, event by event, as the cluster lives it (``podnet events``).

The planner records the cheap events while it works (podnet.control.report: objects created,
bindings, addresses, Service IPs, EndpointSlices); the detailed ones are derived here, only when
asked, from ``Cluster.schedule`` (every node's verdict) and the built network (veth names,
routes, kube-proxy's chains), so planning stays as fast with or without a story to tell.

Order: nodes join; kubeadm's objects and the input's are stored by the API server and the
controllers make ReplicaSets and Pods; then, Pod by Pod in the order they were placed, the
scheduler filters, scores and binds, the kubelet starts the sandbox and calls the CNI plugin
(flannel delegating to bridge, host-local IPAM) and the Pod becomes Ready; the API server
allocates ClusterIPs; the EndpointSlice controller adds the ready Pods; kube-proxy syncs.
"""

from __future__ import annotations

from collections.abc import Iterator

from podnet.model.cluster import Cluster, Event, Pod, ScheduleDecision

DEFERRED = {("scheduler", "bind"), ("kubelet", "bind"), ("host-local", "allocate")}


def pod_events(
    cluster: Cluster, network, pod: Pod, decision: ScheduleDecision | None
) -> list[Event]:
    """Scheduler, kubelet and CNI events of one Pod."""
    obj = f"Pod/{pod.key}"
    out: list[Event] = []
    if pod.owner is None:  # a Pod of the input: stored as it is, no controller involved
        out.append(Event("api-server", "create", obj, "validated, stored in etcd"))
    n_nodes = len(cluster.nodes)
    if decision is None:
        out.append(Event("scheduler", "bind", obj, pod.node))
    elif decision.via != "scheduler":
        how = {
            "nodeName": "spec.nodeName",
            "daemonset": "DaemonSet node",
            "podIP": "node holding its podIP",
        }
        actor = "kubelet" if decision.via == "nodeName" else "scheduler"
        out.append(
            Event(
                actor,
                "bind",
                obj,
                f"{decision.node} ({how.get(decision.via, decision.via)}, no scheduling)",
            )
        )
    else:
        for v in decision.verdicts:
            if v.reasons:
                out.append(
                    Event("scheduler", "filter", obj, f"{v.node}: rejected: {', '.join(v.reasons)}")
                )
            else:
                out.append(Event("scheduler", "filter", obj, f"{v.node}: fits"))
        for v in decision.verdicts:
            if not v.reasons:
                out.append(
                    Event(
                        "scheduler",
                        "score",
                        obj,
                        f"{v.node}: LeastAllocated {v.least_allocated} + spread {v.spread} = {v.score}",
                    )
                )
        fit = f", {decision.feasible}/{n_nodes} nodes fit" if decision.feasible else ""
        out.append(
            Event("scheduler", "bind", obj, f"{decision.node} (score {decision.score}{fit})")
        )
    out.append(
        Event(
            "kubelet",
            "start",
            obj,
            f"on {pod.node}: RunPodSandbox (pause container, network namespace)",
        )
    )
    if pod.host_network:
        out.append(
            Event(
                "kubelet",
                "network",
                obj,
                f"hostNetwork: the node's namespace, IP {pod.ip}, no CNI call",
            )
        )
    else:
        out.append(Event("cni", "ADD", obj, _cni_detail(cluster, network, pod)))
    ready = "containers started, Ready" if pod.ready else "containers started, not Ready"
    if pod.terminating:
        ready += ", terminating"
    out.append(Event("kubelet", "status", obj, ready))
    return out


def _cni_detail(cluster: Cluster, network, pod: Pod) -> str:
    node = cluster.node(pod.node)
    assert node is not None
    ns = network.get(f"pod:{pod.key}") if network is not None else None
    veth = "veth?"
    if ns is not None:
        eth0 = next((link for link in ns.links if link.name == "eth0"), None)
        if eth0 is not None and eth0.peer is not None:
            veth = eth0.peer[1]
    gw = node.gateway
    return (
        f"flannel -> bridge: veth {veth} on cni0 <-> eth0, host-local {pod.ip}/{node.pod_cidr.prefixlen}"
        f" from {node.pod_cidr}, routes: default via {gw}, {cluster.config.cluster_cidr} via {gw}"
    )


def _slice_events(cluster: Cluster, name: str, namespace: str, detail: str) -> list[Event]:
    out = [Event("endpointslice-controller", "create", f"EndpointSlice/{namespace}/{name}", detail)]
    for sl in cluster.endpoint_slices:
        if sl.name == name and sl.namespace == namespace:
            ports = ",".join(f"{p.port}/{p.protocol}" for p in sl.ports) or "no port"
            for ep in sl.endpoints:
                state = (
                    "ready" if ep.ready else ("serving, terminating" if ep.serving else "not ready")
                )
                who = f"Pod {ep.pod}" if ep.pod else "address"
                out.append(
                    Event(
                        "endpointslice-controller",
                        "add-endpoint",
                        f"EndpointSlice/{namespace}/{name}",
                        f"{who} {ep.ip} ({ports}, {state})",
                    )
                )
            break
    return out


def kube_proxy_events(cluster: Cluster) -> list[Event]:
    """kube-proxy's chains per Service port (the same on every node, up to local endpoints)."""
    from podnet.control.kubeproxy import service_ports

    out = []
    for p in service_ports(cluster):
        seps = ", ".join(f"{e.chain} ({e.text})" for e in p.endpoints) or "no endpoints: REJECT"
        out.append(
            Event(
                "kube-proxy",
                "sync",
                f"Service/{p.spn}",
                f"{p.cluster_ip}:{p.port}/{p.proto}: KUBE-SERVICES -> {p.svc_chain} -> {seps}",
            )
        )
    nodes = ", ".join(n.name for n in cluster.nodes)
    out.append(
        Event("kube-proxy", "restore", "iptables", f"iptables-restore on every node ({nodes})")
    )
    return out


def story(cluster: Cluster, network=None) -> Iterator[Event]:
    """Every event of the cluster's creation, in order (see the module's docstring)."""
    decisions = {d.pod: d for d in cluster.schedule}
    pods_done = False
    for ev in cluster.events:
        if (ev.actor, ev.action) in DEFERRED:
            if not pods_done:
                pods_done = True
                for pod in cluster.pods:
                    yield from pod_events(cluster, network, pod, decisions.get(pod.key))
            continue
        if ev.actor == "endpointslice-controller" and ev.action == "create":
            ns, name = ev.object.split("/", 1)[1].split("/", 1)
            yield from _slice_events(cluster, name, ns, ev.detail)
            continue
        yield ev
    if not pods_done:
        for pod in cluster.pods:
            yield from pod_events(cluster, network, pod, decisions.get(pod.key))
    for sl in cluster.endpoint_slices:
        if sl.given:
            eps = ", ".join(str(e.ip) for e in sl.endpoints) or "none"
            yield Event(
                "api-server",
                "create",
                f"EndpointSlice/{sl.namespace}/{sl.name}",
                f"given for Service {sl.service}: {eps}",
            )
    for pol in cluster.policies:
        yield Event(
            "api-server",
            "create",
            f"NetworkPolicy/{pol.meta.namespace or 'default'}/{pol.meta.name}",
            "validated, stored in etcd",
        )
    yield from kube_proxy_events(cluster)
