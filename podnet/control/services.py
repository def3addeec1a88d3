"""Phase 6: ClusterIPs and node ports, allocated as the API server does, deterministically.

The API server's allocators split each range in two bands (KEP-3070, KEP-3668): a lower band
kept for addresses/ports users ask for, and an upper band from which it draws at random
(pkg/registry/core/service/ipallocator/bitmap.go and portallocator/allocator.go,
``calculateRangeOffset``):

- ClusterIPs: usable offsets ``0 .. size-3`` after the network address (network and broadcast
  addresses excluded); lower band ``min(max(16, size/16), 256)`` addresses (0 when size <= 16).
  With 10.96.0.0/12 the band is 10.96.0.1-10.96.1.0, where ``kubernetes`` (10.96.0.1) and kube-dns
  (10.96.0.10, kubeadm DefaultClusterDNSIP) live.
- Node ports: lower band ``min(max(16, size/32), 128)`` ports (86 for 30000-32767).

podnet replaces the random draw by a hash: SHA-256 of ``ns/name`` (ClusterIP) or
``ns/name:port/protocol`` (node port) picks a start in the upper band, and the first free value
from there on (wrapping within the band, then the lower band) is taken. Values users give are
reserved first, for every Service, so a drawn value never takes one that a later Service asks for.

Node ports follow ``initNodePorts`` (pkg/registry/core/service/storage/alloc.go): ports of one
Service with the same ``port`` number (e.g. 53/TCP and 53/UDP) share one node port; a
LoadBalancer with ``allocateLoadBalancerNodePorts: false`` gets none it did not ask for; a
LoadBalancer with ``externalTrafficPolicy: Local`` gets a ``healthCheckNodePort``
(apiservice.NeedsHealthCheck).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from ipaddress import AddressValueError, IPv4Address, IPv4Network

from podnet.control.report import Report
from podnet.model.cluster import Service
from podnet.model.spec import ClusterConfig, ServiceSpec

NODE_PORT_TYPES = ("NodePort", "LoadBalancer")


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def range_offset(size: int, lo: int, hi: int, step: int) -> int:
    """calculateRangeOffset: ``min(max(lo, size/step), hi)``, 0 for ranges of ``lo`` or less.

    >>> range_offset(2**20, 16, 256, 16), range_offset(2768, 16, 128, 32), range_offset(256, 16, 256, 16)
    (256, 86, 16)
    """
    if size <= lo:
        return 0
    return min(max(lo, size // step), hi)


class BandAllocator:
    """Offsets ``0..size-1``; draws from ``[offset, size)`` first, then ``[0, offset)``."""

    __slots__ = ("size", "offset", "taken")

    def __init__(self, size: int, offset: int) -> None:
        self.size = max(size, 0)
        self.offset = min(offset, self.size)
        self.taken: dict[int, str] = {}

    def next(self, seed: str, owner: str) -> int | None:
        h = _hash(seed)
        for lo, hi in ((self.offset, self.size), (0, self.offset)):
            span = hi - lo
            if span <= 0:
                continue
            start = h % span
            for k in range(span):
                off = lo + (start + k) % span
                if off not in self.taken:
                    self.taken[off] = owner
                    return off
        return None


class _IPs:
    def __init__(self, cidr: IPv4Network) -> None:
        self.cidr = cidr
        self.base = int(cidr.network_address) + 1
        size = cidr.num_addresses
        self.alloc = BandAllocator(size - 2, range_offset(size, 16, 256, 16))


class _Ports:
    def __init__(self, rng: tuple[int, int]) -> None:
        self.lo, self.hi = rng
        size = self.hi - self.lo + 1
        self.alloc = BandAllocator(size, range_offset(size, 16, 128, 32))

    def text(self) -> str:
        return f"{self.lo}-{self.hi}"


def plan_services(
    services: Sequence[ServiceSpec], config: ClusterConfig, report: Report
) -> tuple[Service, ...]:
    """Phase 6: every Service with its ClusterIP and node ports (health check port included)."""
    ips = _IPs(config.service_cidr)
    ports = _Ports(config.node_port_range)
    seen: set[str] = set()
    valid: list[ServiceSpec] = []
    for svc in services:
        key = _key(svc)
        if key in seen:
            report.error(f"duplicate Service {key}", svc.meta.src, "metadata.name")
            continue
        seen.add(key)
        valid.append(svc)

    fixed_ip: dict[str, IPv4Address] = {}
    for svc in valid:
        ip = _reserve_ip(svc, ips, report)
        if ip is not None:
            fixed_ip[_key(svc)] = ip
        _reserve_ports(svc, ports, report)

    out: list[Service] = []
    for svc in valid:
        key = _key(svc)
        cluster_ip: IPv4Address | None = fixed_ip.get(key)
        if svc.type != "ExternalName" and svc.cluster_ip is None:
            off = ips.alloc.next(key, key)
            if off is None:
                report.error(
                    f"Service {key}: no ClusterIP left: range is full ({config.service_cidr})",
                    svc.meta.src,
                    "spec.clusterIP",
                )
            else:
                cluster_ip = IPv4Address(ips.base + off)
        new_ports, health = _allocate_ports(svc, ports, report)
        spec = dataclasses.replace(svc, ports=new_ports, health_check_node_port=health)
        if svc.cluster_ip is not None and svc.cluster_ip != "None" and key not in fixed_ip:
            continue  # a bad clusterIP, reported
        out.append(Service(spec, cluster_ip))
        detail = [f"clusterIP {cluster_ip}" if cluster_ip else f"type {svc.type}, no ClusterIP"]
        detail += [f"nodePort {p.node_port}/{p.protocol}" for p in new_ports if p.node_port]
        if health:
            detail.append(f"healthCheckNodePort {health}")
        report.event("api-server", "allocate", f"Service/{key}", ", ".join(detail))
    return tuple(out)


def _key(svc: ServiceSpec) -> str:
    return f"{svc.meta.namespace or 'default'}/{svc.meta.name}"


def _reserve_ip(svc: ServiceSpec, ips: _IPs, report: Report) -> IPv4Address | None:
    text = svc.cluster_ip
    if text is None or text == "None" or svc.type == "ExternalName":
        return None
    src = svc.meta.src
    try:
        ip = IPv4Address(text)
    except AddressValueError:
        report.error(
            f"must be a valid IP address, (e.g. 10.9.8.7) (found {text!r})", src, "spec.clusterIP"
        )
        return None
    off = int(ip) - ips.base
    if not 0 <= off < ips.alloc.size:
        report.error(
            f"provided IP is not in the valid range. The range of valid IPs is {ips.cidr}"
            f" (found {ip})",
            src,
            "spec.clusterIP",
        )
        return None
    if off in ips.alloc.taken:
        report.error(
            f"provided IP is already allocated (found {ip}, the ClusterIP of Service"
            f" {ips.alloc.taken[off]})",
            src,
            "spec.clusterIP",
        )
        return None
    ips.alloc.taken[off] = _key(svc)
    return ip


def _needs_health_check(svc: ServiceSpec) -> bool:
    return svc.type == "LoadBalancer" and svc.external_traffic_policy == "Local"


def _reserve_ports(svc: ServiceSpec, ports: _Ports, report: Report) -> None:
    key, src = _key(svc), svc.meta.src
    mine: dict[int, tuple[int, str]] = {}  # nodePort -> (service port, protocol) in this Service
    for i, p in enumerate(svc.ports):
        if p.node_port is None:
            continue
        path = f"spec.ports[{i}].nodePort"
        if svc.type not in NODE_PORT_TYPES:
            report.error(f"may not be used when `type` is '{svc.type}'", src, path)
            continue
        if not ports.lo <= p.node_port <= ports.hi:
            report.error(
                "provided port is not in the valid range. The range of valid ports is"
                f" {ports.text()} (found {p.node_port})",
                src,
                path,
            )
            continue
        if p.node_port in mine:
            port, proto = mine[p.node_port]
            if proto == p.protocol:
                report.error(f"Duplicate value: {p.node_port}/{p.protocol}", src, path)
            elif port != p.port:
                report.error(
                    f"provided port is already allocated (found {p.node_port}, taken by port"
                    f" {port}/{proto} of this Service)",
                    src,
                    path,
                )
            continue
        off = p.node_port - ports.lo
        if off in ports.alloc.taken:
            report.error(
                f"provided port is already allocated (found {p.node_port}, the node port of"
                f" Service {ports.alloc.taken[off]})",
                src,
                path,
            )
            continue
        ports.alloc.taken[off] = key
        mine[p.node_port] = (p.port, p.protocol)
    hc = svc.health_check_node_port
    if hc is not None:
        path = "spec.healthCheckNodePort"
        if not _needs_health_check(svc):
            report.error(
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is"
                " 'Local'",
                src,
                path,
            )
        elif not ports.lo <= hc <= ports.hi:
            report.error(
                "provided port is not in the valid range. The range of valid ports is"
                f" {ports.text()} (found {hc})",
                src,
                path,
            )
        elif hc - ports.lo in ports.alloc.taken:
            report.error(
                f"provided port is already allocated (found {hc}, taken by Service"
                f" {ports.alloc.taken[hc - ports.lo]})",
                src,
                path,
            )
        else:
            ports.alloc.taken[hc - ports.lo] = key


def _allocate_ports(svc: ServiceSpec, ports: _Ports, report: Report) -> tuple[tuple, int | None]:
    key, src = _key(svc), svc.meta.src
    out = list(svc.ports)
    if svc.type in NODE_PORT_TYPES:
        auto = svc.type == "NodePort" or svc.allocate_load_balancer_node_ports
        by_port: dict[int, int] = {}  # initNodePorts' svcPortToNodePort
        for p in svc.ports:
            if p.node_port is not None:
                by_port.setdefault(p.port, p.node_port)
        for i, p in enumerate(svc.ports):
            if p.node_port is not None or not auto:
                continue
            np = by_port.get(p.port)
            if np is None:
                off = ports.alloc.next(f"{key}:{p.port}/{p.protocol}", key)
                if off is None:
                    report.error(
                        f"failed to allocate a nodePort: range is full ({ports.text()})",
                        src,
                        f"spec.ports[{i}].nodePort",
                    )
                    continue
                np = ports.lo + off
                by_port[p.port] = np
            out[i] = dataclasses.replace(p, node_port=np)
    health = svc.health_check_node_port
    if _needs_health_check(svc) and health is None:
        off = ports.alloc.next(f"{key}:healthCheckNodePort", key)
        if off is None:
            report.error(
                f"failed to allocate a HealthCheck NodePort: range is full ({ports.text()})",
                src,
                "spec.healthCheckNodePort",
            )
        else:
            health = ports.lo + off
    return tuple(out), health
