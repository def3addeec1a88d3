"""Services and EndpointSlices.

Checks are those of the API server (kubernetes pkg/apis/core/validation/validation.go
ValidateService, pkg/apis/discovery/validation/validation.go) for the fields podnet reads, and the
defaults those of pkg/apis/core/v1/defaults.go and the Service REST strategy.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from podnet.load.fields import Cursor, parse_ipv4, parse_network
from podnet.load.meta import (
    DNS1035_LABEL,
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    finish,
    labels,
    name_error,
    port_name_error,
    read_meta,
)
from podnet.model.spec import (
    PROTOCOLS,
    EndpointPortSpec,
    EndpointSliceSpec,
    EndpointSpec,
    ServicePort,
    ServiceSpec,
)

SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
_SPEC_READ = (
    "type",
    "selector",
    "ports",
    "clusterIP",
    "clusterIPs",
    "externalIPs",
    "loadBalancerSourceRanges",
    "externalTrafficPolicy",
    "internalTrafficPolicy",
    "sessionAffinity",
    "sessionAffinityConfig",
    "healthCheckNodePort",
    "externalName",
    "publishNotReadyAddresses",
    "allocateLoadBalancerNodePorts",
)
_SPEC_IGNORED = (
    "ipFamilies",
    "ipFamilyPolicy",
    "loadBalancerIP",
    "loadBalancerClass",
    "trafficDistribution",
    "topologyKeys",
)


def read_service(top: Cursor) -> ServiceSpec | None:
    """A ``Service`` object."""
    top.known(("apiVersion", "kind", "metadata", "spec", "status"))
    meta = read_meta(top, DNS1035_LABEL, namespaced=True)
    spec = top.map("spec", required=True)
    if spec is None:
        return None
    spec.known(_SPEC_READ, _SPEC_IGNORED)
    stype = spec.str("type", default="ClusterIP", choices=SERVICE_TYPES) or "ClusterIP"
    # An empty selector is no selector: the API server stores objects as protobuf, where an empty
    # map reads back as nil, and the EndpointSlice controller skips Services whose selector is nil
    # (kubernetes pkg/controller/endpointslice/endpointslice_controller.go, syncService).
    selector = labels(spec, "selector") or None
    cluster_ip = _cluster_ip(spec, stype)
    ports = _ports(spec, stype, cluster_ip)
    external_ips = _addresses(spec, "externalIPs")
    external = stype in ("NodePort", "LoadBalancer") or bool(external_ips)
    etp = _policy(spec, "externalTrafficPolicy", legacy=True)
    if etp is not None and not external:
        spec.error(
            "may only be set for externally-accessible services "
            "(type NodePort or LoadBalancer, or with externalIPs)",
            "externalTrafficPolicy",
        )
    itp = _policy(spec, "internalTrafficPolicy", legacy=False)
    affinity = spec.str("sessionAffinity", default="None", choices=("None", "ClientIP")) or "None"
    timeout = 10800  # kubernetes pkg/apis/core/types.go DefaultClientIPServiceAffinitySeconds
    cfg = spec.map("sessionAffinityConfig")
    if cfg is not None:
        cfg.known(("clientIP",))
        client = cfg.map("clientIP")
        if client is not None:
            client.known(("timeoutSeconds",))
            timeout = client.int("timeoutSeconds", default=timeout, lo=1, hi=86400) or timeout
        if affinity != "ClientIP":
            spec.error(
                "may only be set when sessionAffinity is 'ClientIP'", "sessionAffinityConfig"
            )
    hcnp = spec.int("healthCheckNodePort", lo=1, hi=65535)
    if hcnp is not None and not (stype == "LoadBalancer" and etp == "Local"):
        spec.error(
            "may only be set when type is 'LoadBalancer' and externalTrafficPolicy is 'Local'",
            "healthCheckNodePort",
        )
    external_name = _external_name(spec, stype)
    ranges = _source_ranges(spec, stype)
    alloc_np = spec.bool("allocateLoadBalancerNodePorts", default=True)
    if spec.has("allocateLoadBalancerNodePorts") and stype != "LoadBalancer":
        spec.error("may only be used when type is 'LoadBalancer'", "allocateLoadBalancerNodePorts")
    lb_ips = _lb_ingress(top)
    if meta is None:
        return None
    return ServiceSpec(
        meta=finish(meta, top),
        type=stype,
        selector=selector,
        ports=ports,
        cluster_ip=cluster_ip,
        external_ips=external_ips,
        load_balancer_ips=lb_ips,
        load_balancer_source_ranges=ranges,
        external_traffic_policy=etp or "Cluster",
        internal_traffic_policy=itp or "Cluster",
        session_affinity=affinity,
        session_affinity_timeout=timeout,
        health_check_node_port=hcnp,
        external_name=external_name,
        publish_not_ready_addresses=spec.bool("publishNotReadyAddresses"),
        allocate_load_balancer_node_ports=alloc_np,
    )


def _cluster_ip(spec: Cursor, stype: str) -> str | None:
    key = "clusterIP"
    text = spec.str(key)
    if text is None and not spec.has(key):
        first = next(iter(spec.strs("clusterIPs")), None)  # read only when clusterIP is absent
        if first is None:
            return None
        text, pos, path = first
    else:
        pos, path = (spec.raw(key).pos, spec.sub(key)) if spec.has(key) else (None, "")
    if not text:
        return None
    if text == "None":
        if stype in ("NodePort", "LoadBalancer"):
            spec.obj.error(f"may not be 'None' for {stype} services", pos, path)
        return "None"
    ip = parse_ipv4(text, spec.obj, pos, path)  # type: ignore[arg-type]
    return str(ip) if ip is not None else None


def _ports(spec: Cursor, stype: str, cluster_ip: str | None) -> tuple[ServicePort, ...]:
    items = list(spec.maps("ports"))
    if not items and stype != "ExternalName" and cluster_ip != "None":
        spec.error("missing required value", "ports")
    out: list[ServicePort] = []
    names: dict[str, str] = {}
    seen: dict[tuple[int, str], str] = {}
    node_ports: dict[tuple[int, str], str] = {}
    for p in items:
        p.known(("name", "protocol", "port", "targetPort", "nodePort"), ("appProtocol",))
        name = p.str("name", default="") or ""
        if not name and len(items) > 1:
            p.obj.error(
                "missing required value",
                p.pos,
                p.sub("name"),
                "a Service with more than one port must name every port",
            )
        elif name:
            why = name_error(name, DNS1123_LABEL)
            if why:
                p.error(why.replace("invalid name", "invalid port name"), "name")
            elif name in names:
                p.error(f"duplicate port name '{name}' (also at {names[name]})", "name")
            else:
                names[name] = p.path
        protocol = p.str("protocol", default="TCP", choices=PROTOCOLS) or "TCP"
        port = p.int("port", required=True, lo=1, hi=65535)
        target = p.int_or_str("targetPort", lo=0, hi=65535)
        if isinstance(target, str) and port_name_error(target):
            p.error(port_name_error(target) or "", "targetPort")
            target = None
        if target == 0:
            target = None  # defaulting: targetPort 0 or absent means "same as port"
        node_port = p.int("nodePort", lo=0, hi=65535) or None
        if node_port is not None and stype in ("ClusterIP", "ExternalName"):
            p.error(f"may not be used when type is '{stype}'", "nodePort")
        if port is None:
            continue
        if (port, protocol) in seen:
            p.error(f"duplicate port {port}/{protocol} (also at {seen[port, protocol]})", "port")
        seen.setdefault((port, protocol), p.path)
        if node_port is not None:
            if (node_port, protocol) in node_ports:
                p.error(
                    f"duplicate nodePort {node_port}/{protocol} "
                    f"(also at {node_ports[node_port, protocol]})",
                    "nodePort",
                )
            node_ports.setdefault((node_port, protocol), p.path)
        out.append(ServicePort(port, protocol, name, target, node_port))
    return tuple(out)


def _policy(spec: Cursor, key: str, legacy: bool) -> str | None:
    value = spec.str(key)
    if value is None:
        return None
    if legacy and value == "Global":
        return "Cluster"  # the pre-1.14 name of Cluster, still accepted by the API server
    if value not in ("Cluster", "Local"):
        spec.str(key, choices=("Cluster", "Local"))  # reports the problem with a hint
        return None
    return value


def _addresses(spec: Cursor, key: str) -> tuple[IPv4Address, ...]:
    out = []
    for text, pos, path in spec.strs(key):
        if ":" in text:
            spec.obj.warn(f"IPv6 address {text!r} ignored (podnet emulates IPv4 only)", pos, path)
            continue
        ip = parse_ipv4(text, spec.obj, pos, path)
        if ip is not None:
            out.append(ip)
    return tuple(out)


def _source_ranges(spec: Cursor, stype: str) -> tuple[IPv4Network, ...]:
    key = "loadBalancerSourceRanges"
    if spec.has(key) and stype != "LoadBalancer":
        spec.error("may only be used when type is 'LoadBalancer'", key)
    out = []
    for text, pos, path in spec.strs(key):
        # The API server trims spaces and, like net.ParseCIDR, accepts host bits.
        if ":" in text:
            spec.obj.warn(f"IPv6 range {text!r} ignored (podnet emulates IPv4 only)", pos, path)
            continue
        net = parse_network(text.strip(), spec.obj, pos, path, strict=False)
        if net is not None:
            out.append(net)
    return tuple(out)


def _external_name(spec: Cursor, stype: str) -> str | None:
    name = spec.str("externalName")
    if stype == "ExternalName":
        if not name:
            spec.error("missing required value", "externalName")
            return None
        why = name_error(name.rstrip("."), DNS1123_SUBDOMAIN)
        if why:
            spec.error(why, "externalName")
    return name


def _lb_ingress(top: Cursor) -> tuple[IPv4Address, ...]:
    status = top.map("status")
    lb = status.map("loadBalancer") if status is not None else None
    out = []
    if lb is None:
        return ()
    for ing in lb.maps("ingress"):
        # ipMode Proxy: the load balancer proxies, so kube-proxy does not capture the IP
        # (kubernetes pkg/proxy/serviceport.go, KEP-1860).
        if ing.str("ipMode") == "Proxy":
            continue
        text = ing.str("ip")
        if not text:
            continue
        if ":" in text:
            ing.warn(f"IPv6 address {text!r} ignored (podnet emulates IPv4 only)", "ip")
            continue
        ip = parse_ipv4(text, top.obj, ing.raw("ip").pos, ing.sub("ip"))
        if ip is not None:
            out.append(ip)
    return tuple(out)


# ---------------------------------------------------------------------------------- EndpointSlice


def read_endpoint_slice(top: Cursor) -> EndpointSliceSpec | None:
    """An ``EndpointSlice`` (IPv4 only; other address types are skipped with a warning)."""
    top.known(("apiVersion", "kind", "metadata", "addressType", "ports", "endpoints"))
    meta = read_meta(top, DNS1123_SUBDOMAIN, namespaced=True)
    atype = top.str("addressType", required=True, choices=("IPv4", "IPv6", "FQDN"))
    service = meta.labels.get(SERVICE_NAME_LABEL) if meta is not None else None
    if meta is not None and not service:
        top.obj.error(
            f"missing label {SERVICE_NAME_LABEL}",
            top.obj.paths.get("metadata"),
            "metadata.labels",
            "an EndpointSlice names its Service in this label",
        )
    if atype in ("IPv6", "FQDN"):
        top.warn(
            f"EndpointSlice with addressType {atype} skipped (podnet emulates IPv4 only)",
            "addressType",
        )
        return None
    ports = []
    for p in top.maps("ports"):
        p.known(("name", "port", "protocol"), ("appProtocol",))
        name = p.str("name", default="") or ""
        if name and name_error(name, DNS1123_LABEL):
            p.error((name_error(name, DNS1123_LABEL) or "").replace("name", "port name", 1), "name")
        port = p.int("port", lo=1, hi=65535)
        protocol = p.str("protocol", default="TCP", choices=PROTOCOLS) or "TCP"
        ports.append(EndpointPortSpec(port, name, protocol))
    namespace = meta.namespace if meta is not None else "default"
    endpoints = [_endpoint(e, namespace or "default") for e in top.maps("endpoints")]
    if meta is None or atype is None or not service:
        return None
    return EndpointSliceSpec(finish(meta, top), service, atype, tuple(ports), tuple(endpoints))


def _endpoint(e: Cursor, namespace: str) -> EndpointSpec:
    e.known(
        ("addresses", "conditions", "nodeName", "targetRef", "hostname", "zone"),
        ("hints", "deprecatedTopology"),
    )
    addresses = []
    for text, pos, path in e.strs("addresses"):
        ip = parse_ipv4(text, e.obj, pos, path)
        if ip is not None:
            addresses.append(ip)
    if not e.has("addresses"):
        e.error("missing required value", "addresses")
    # API defaults (discovery/v1 EndpointConditions): ready nil = true, serving nil = ready,
    # terminating nil = false.
    ready, serving, terminating = True, None, False
    cond = e.map("conditions")
    if cond is not None:
        cond.known(("ready", "serving", "terminating"))
        ready = cond.bool("ready", default=True)
        serving = cond.bool("serving", default=ready) if cond.has("serving") else None
        terminating = cond.bool("terminating", default=False)
    target = None
    ref = e.map("targetRef")
    if ref is not None:
        kind = ref.str("kind")
        name = ref.str("name")
        if kind == "Pod" and name:
            target = f"{ref.str('namespace') or namespace}/{name}"
    return EndpointSpec(
        addresses=tuple(addresses),
        ready=ready,
        serving=ready if serving is None else serving,
        terminating=terminating,
        node_name=e.str("nodeName"),
        target_ref=target,
        hostname=e.str("hostname"),
        zone=e.str("zone"),
    )
