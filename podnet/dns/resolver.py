"""A Pod's stub resolver: its resolv.conf and the order in which it tries names.

The kubelet writes each Pod's ``/etc/resolv.conf`` from its ``dnsPolicy`` (kubernetes
pkg/kubelet/network/dns/dns.go): ``ClusterFirst`` (the default) gives ``nameserver <cluster DNS
IP>``, ``search <ns>.svc.<zone> svc.<zone> <zone>`` and ``options ndots:5``. A hostNetwork Pod with
``ClusterFirst`` falls back to ``Default`` (the node's own resolv.conf), unless its policy is
``ClusterFirstWithHostNet``. ``Default`` and ``None`` are not modelled (podnet knows no node
resolver).

The search order is glibc's res_search: a name ending with a dot is tried as is, alone; a name
with at least ``ndots`` dots is tried as is first, then with each search domain; any other name
with each search domain first, then as is. The search stops at the first answer with records;
NXDOMAIN, NODATA and SERVFAIL move on to the next name.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from podnet.control.addons import DNS_IP_INDEX, DNS_NAMESPACE, DNS_SERVICE, nth_address
from podnet.dns.records import Answer, Zone, fqdn
from podnet.model.cluster import Cluster, Pod

NDOTS = 5  # kubelet's ndots for ClusterFirst


@dataclass(frozen=True, slots=True)
class ResolvConf:
    """The resolver configuration the kubelet writes into a Pod."""

    nameservers: tuple[IPv4Address, ...]
    search: tuple[str, ...]
    ndots: int = NDOTS

    def text(self) -> str:
        """The file as the Pod sees it.

        >>> print(ResolvConf((IPv4Address("10.96.0.10"),), ("a.svc.cluster.local",)).text(), end="")
        search a.svc.cluster.local
        nameserver 10.96.0.10
        options ndots:5
        """
        lines = [f"search {' '.join(self.search)}"] if self.search else []
        lines += [f"nameserver {ip}" for ip in self.nameservers]
        lines.append(f"options ndots:{self.ndots}")
        return "\n".join(lines) + "\n"


class NoClusterDns(Exception):
    """The Pod does not use cluster DNS (its dnsPolicy); ``message`` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def cluster_dns_ip(cluster: Cluster) -> IPv4Address | None:
    """kube-dns's ClusterIP, else the kubelet's default ``--cluster-dns`` (10th service address)."""
    for svc in cluster.services:
        if svc.namespace == DNS_NAMESPACE and svc.name == DNS_SERVICE and svc.cluster_ip:
            return svc.cluster_ip
    return nth_address(cluster.config.service_cidr, DNS_IP_INDEX)


def resolv_conf(cluster: Cluster, pod: Pod) -> ResolvConf:
    """The Pod's resolv.conf; raises NoClusterDns when its dnsPolicy does not use cluster DNS."""
    policy = pod.spec.template.dns_policy if pod.spec is not None else "ClusterFirst"
    if policy == "ClusterFirst" and pod.host_network:
        raise NoClusterDns(
            f"Pod {pod.key} uses the host network with dnsPolicy ClusterFirst: the kubelet gives"
            " it the node's resolv.conf (dnsPolicy Default), which podnet does not model"
        )
    if policy not in ("ClusterFirst", "ClusterFirstWithHostNet"):
        raise NoClusterDns(
            f"Pod {pod.key} has dnsPolicy {policy}: it does not ask the cluster DNS"
            " (podnet models ClusterFirst only)"
        )
    ip = cluster_dns_ip(cluster)
    if ip is None:
        raise NoClusterDns("the cluster has no DNS address (serviceCIDR too small)")
    domain = cluster.config.cluster_domain.rstrip(".")
    search = (f"{pod.namespace}.svc.{domain}", f"svc.{domain}", domain)
    return ResolvConf((ip,), search)


def search_names(name: str, conf: ResolvConf) -> tuple[str, ...]:
    """The absolute names the resolver asks for, in order.

    >>> conf = ResolvConf((), ("default.svc.cluster.local", "svc.cluster.local", "cluster.local"))
    >>> search_names("backend", conf)[0], search_names("backend", conf)[-1]
    ('backend.default.svc.cluster.local.', 'backend.')
    >>> search_names("a.b.c.d.e.f", conf)[0], search_names("x.", conf)
    ('a.b.c.d.e.f.', ('x.',))
    """
    if name.endswith("."):
        return (fqdn(name),)
    with_search = tuple(fqdn(f"{name}.{s}") for s in conf.search)
    if name.count(".") >= conf.ndots:
        return (fqdn(name), *with_search)
    return (*with_search, fqdn(name))


@dataclass(frozen=True, slots=True)
class Resolution:
    """What the resolver asked, in order, and the answer it returned (None: every name failed)."""

    name: str
    qtype: str
    conf: ResolvConf
    asked: tuple[Answer, ...]
    answer: Answer | None

    @property
    def ok(self) -> bool:
        return self.answer is not None


def resolve(zone: Zone, name: str, conf: ResolvConf, qtype: str = "A") -> Resolution:
    """Ask ``zone`` for ``name`` the way the Pod's resolver does (search list, ndots)."""
    asked = []
    for qname in search_names(name, conf):
        ans = zone.lookup(qname, qtype)
        asked.append(ans)
        if ans.positive:
            return Resolution(name, qtype.upper(), conf, tuple(asked), ans)
    return Resolution(name, qtype.upper(), conf, tuple(asked), None)
