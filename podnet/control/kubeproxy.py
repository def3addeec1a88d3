"""kube-proxy in iptables mode: the rules its ``syncProxyRules`` writes for one node.

Follows kubernetes ``pkg/proxy/iptables/proxier.go`` (1.31+ layout: KUBE-EXT/KUBE-SVL/KUBE-FW,
KUBE-PROXY-FIREWALL, nfacct counters), ``pkg/proxy/topology.go`` (CategorizeEndpoints),
``pkg/proxy/serviceport.go`` and ``pkg/proxy/endpointslicecache.go``. Rule texts are those kube-proxy
writes to ``iptables-restore`` (what its golden tests in ``proxier_test.go`` compare): comments with
spaces in double quotes, single words bare, addresses without ``/32``.
``podnet.render.iptables_save.kernel_form`` turns a rule into what ``iptables-save`` prints back.

Sharing across nodes (10,000 Services x 5,000 nodes must not be generated 5,000 times): the
service ports and their endpoint lists are computed once per Cluster (``proxy_state``, memoized on
the Cluster object). Each service port's block of rules depends on the node only through its
*variant*: the node-local endpoints (only for services that use local endpoints: iTP=Local, or
eTP=Local and externally reachable) and whether a loadBalancerSourceRange holds the node IP (only
with a KUBE-FW chain). Blocks are cached per (service port, variant), so nodes without local
endpoints share every block and its Chain objects; ``podnet.control.iptables`` also caches the
assembled chains per variant tuple.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Network

from podnet.control.naming import hash16
from podnet.model.cluster import Cluster, EndpointSlice, Service
from podnet.model.spec import ServicePort
from podnet.model.trace import fast_constructor, ip_text

# Chain names: kubernetes pkg/proxy/iptables/proxier.go constants.
KUBE_SERVICES = "KUBE-SERVICES"
KUBE_EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
KUBE_NODEPORTS = "KUBE-NODEPORTS"
KUBE_POSTROUTING = "KUBE-POSTROUTING"
KUBE_MARK_MASQ = "KUBE-MARK-MASQ"
KUBE_FORWARD = "KUBE-FORWARD"
KUBE_PROXY_FIREWALL = "KUBE-PROXY-FIREWALL"
KUBE_PROXY_CANARY = "KUBE-PROXY-CANARY"
KUBE_FIREWALL = "KUBE-FIREWALL"
# proxier.go largeClusterEndpointsThreshold
LARGE_CLUSTER_ENDPOINTS = 1000
# pkg/proxy/metrics nfacct counter names
NFACCT_INVALID = "ct_state_invalid_dropped_pkts"
NFACCT_LOCALHOST_NP = "localhost_nps_accepted_pkts"
# Default masquerade bit 14 (pkg/proxy/apis/config/v1alpha1/defaults.go); golden tests print 0x4000.
MASQ_MARK = "0x4000"

# The chains shared by all services, written by every sync (restore "chain lines", in order).
FILTER_TOP_CHAINS = (
    KUBE_SERVICES,
    KUBE_EXTERNAL_SERVICES,
    KUBE_FORWARD,
    KUBE_NODEPORTS,
    KUBE_PROXY_FIREWALL,
)
NAT_TOP_CHAINS = (KUBE_SERVICES, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_MARK_MASQ)


@dataclass(frozen=True, slots=True)
class KubeProxyOptions:
    """How kube-proxy runs on the node (defaults: a current kube-proxy on a current kernel).

    ``random_fully``: iptables >= 1.6.2 (``HasRandomFully``), appended to the KUBE-POSTROUTING
    MASQUERADE. ``nfacct``: the kernel has nfnetlink_acct, so the localhost NodePort and INVALID
    drop rules carry ``-m nfacct``. ``localhost_nodeports``: ``--iptables-localhost-nodeports``
    (default true). ``conntrack_tcp_be_liberal``: nf_conntrack_tcp_be_liberal set (no INVALID
    drop). kube-proxy's fake proxier in proxier_test.go uses random_fully=False.
    """

    random_fully: bool = True
    nfacct: bool = True
    localhost_nodeports: bool = True
    conntrack_tcp_be_liberal: bool = False


DEFAULT_OPTIONS = KubeProxyOptions()


# ------------------------------------------------------------------------------------- names


def service_port_name(namespace: str, name: str, port_name: str = "") -> str:
    """``ServicePortName.String()`` (pkg/proxy/types.go): ``ns/name`` plus ``:port`` if named.

    >>> service_port_name("ns1", "svc1", "p80"), service_port_name("default", "web")
    ('ns1/svc1:p80', 'default/web')
    """
    return f"{namespace}/{name}:{port_name}" if port_name else f"{namespace}/{name}"


_hash16 = hash16  # base32(sha256(text))[:16]


def port_proto_hash(spn: str, proto: str) -> str:
    """kube-proxy's ``portProtoHash``: base32(sha256(spn + protocol))[:16].

    >>> port_proto_hash("ns1/svc1:p80", "tcp")
    'XPGD46QRK7WJZT7O'
    """
    return _hash16(spn + proto.lower())


def svc_chain_name(spn: str, proto: str, prefix: str = "KUBE-SVC-") -> str:
    """KUBE-SVC-/KUBE-SVL-/KUBE-EXT-/KUBE-FW- + ``port_proto_hash`` (same suffix for all four)."""
    return prefix + port_proto_hash(spn, proto)


def endpoint_chain_name(spn: str, proto: str, endpoint: str) -> str:
    """``servicePortEndpointChainName``: KUBE-SEP- + base32(sha256(spn+proto+"ip:port"))[:16].

    >>> endpoint_chain_name("ns1/svc1:p80", "tcp", "10.180.0.1:80")
    'KUBE-SEP-SXIVWICOYRO3J4NJ'
    """
    return "KUBE-SEP-" + _hash16(spn + proto.lower() + endpoint)


def probability(n: int) -> str:
    """``computeProbability``: ``fmt.Sprintf("%0.10f", 1.0/float64(n))``.

    >>> [probability(n) for n in (3, 2)]
    ['0.3333333333', '0.5000000000']
    """
    return f"{1.0 / n:0.10f}"


# ------------------------------------------------------------------------------ service ports


@dataclass(frozen=True, slots=True)
class Ep:
    """One endpoint of a service port, as kube-proxy's BaseEndpointInfo sees it."""

    ip: str
    port: int
    ready: bool
    serving: bool
    terminating: bool
    node: str | None
    text: str  # "ip:port"
    spn: str  # the service port it serves, and its protocol (lower case): what names its chain
    proto: str

    @property
    def chain(self) -> str:
        """Its KUBE-SEP- chain (named when asked for: 160,000 endpoints at 10,000 Services,
        of which a question reaches a few ports')."""
        return endpoint_chain_name(self.spn, self.proto, self.text)


_new_ep = fast_constructor(Ep)
"""``Ep(...)`` with its nine fields in order, without the frozen ``__init__``'s per-field
``object.__setattr__`` (164,000 endpoints at 10,000 Services)."""


@dataclass(frozen=True, slots=True)
class PortInfo:
    """A Service port as kube-proxy's servicePortInfo holds it (pkg/proxy/serviceport.go)."""

    spn: str
    proto: str
    cluster_ip: str
    port: int
    node_port: int
    external_ips: tuple[str, ...]
    lb_ips: tuple[str, ...]
    source_ranges: tuple[IPv4Network, ...]
    hc_node_port: int
    affinity_timeout: int | None  # seconds when sessionAffinity is ClientIP
    itp_local: bool
    etp_local: bool  # apiservice.ExternalPolicyLocal
    endpoints: tuple[Ep, ...]  # sorted by "ip:port" string (endpointslicecache byEndpoint)
    svc_chain: str
    svl_chain: str
    ext_chain: str
    fw_chain: str

    @property
    def externally_accessible(self) -> bool:
        """ServicePort.ExternallyAccessible: nodePort, LB VIPs or external IPs."""
        return bool(self.node_port or self.lb_ips or self.external_ips)

    @property
    def uses_cluster_endpoints(self) -> bool:
        return not self.itp_local or self.externally_accessible

    @property
    def uses_local_endpoints(self) -> bool:
        return self.itp_local or (self.etp_local and self.externally_accessible)

    @property
    def uses_fw(self) -> bool:
        return bool(self.lb_ips and self.source_ranges)

    def cluster_endpoints(self) -> tuple[Ep, ...]:
        """Ready endpoints, else serving+terminating ones (topology.go, no topology hints)."""
        if not self.uses_cluster_endpoints:
            return ()
        ready = tuple(e for e in self.endpoints if e.ready)
        return ready or tuple(e for e in self.endpoints if e.serving and e.terminating)

    def local_endpoints(self, node: str) -> tuple[Ep, ...]:
        """Local ready endpoints, else local serving+terminating ones (CategorizeEndpoints)."""
        if not self.uses_local_endpoints:
            return ()
        local = [e for e in self.endpoints if e.node == node]
        ready = tuple(e for e in local if e.ready)
        return ready or tuple(e for e in local if e.serving and e.terminating)

    def has_any_endpoints(self) -> bool:
        """Any usable endpoint anywhere: ready, or serving and terminating."""
        return any(e.ready or (e.serving and e.terminating) for e in self.endpoints)


def _externally_accessible_type(svc: Service) -> bool:
    """apiservice.ExternallyAccessible (pkg/api/v1/service/util.go): by Service type."""
    t = svc.spec.type
    return t in ("LoadBalancer", "NodePort") or (t == "ClusterIP" and bool(svc.spec.external_ips))


def _slice_index(slices: Iterable[EndpointSlice]) -> dict[tuple[str, str], list[EndpointSlice]]:
    index: dict[tuple[str, str], list[EndpointSlice]] = {}
    for s in slices:
        index.setdefault((s.namespace, s.service), []).append(s)
    return index


def _endpoints_for(slices: list[EndpointSlice], spn: str, sp: ServicePort) -> tuple[Ep, ...]:
    """The endpoints of one service port: slice ports matched by name and protocol; deduplicated
    by "ip:port" (a ready copy wins), sorted by that string (endpointslicecache.go)."""
    proto = sp.protocol.lower()
    found: dict[str, Ep] = {}
    for sl in slices:
        for p in sl.ports:
            if p.name != sp.name or p.protocol != sp.protocol or not p.port:
                continue
            for e in sl.endpoints:
                ip = ip_text(e.ip)  # (str() of an IPv4Address is Python-level, and slower)
                text = f"{ip}:{p.port}"
                old = found.get(text)
                if old is not None and (old.ready or not e.ready):
                    continue
                # (fields in order: ip, port, ready, serving, terminating, node, text, spn, proto)
                found[text] = _new_ep(
                    ip, p.port, e.ready, e.serving, e.terminating, e.node_name, text, spn, proto
                )
    return tuple(found[k] for k in sorted(found))


def service_ports(cluster: Cluster) -> tuple[PortInfo, ...]:
    """Every proxied service port of the cluster, sorted by service port name and protocol.

    Headless and ExternalName Services (no ClusterIP) are not proxied (ServiceChangeTracker skips
    them). Real kube-proxy walks a Go map (random order); sorting gives one deterministic order.
    """
    index = _slice_index(cluster.endpoint_slices)
    out: list[PortInfo] = []
    for svc in cluster.services:
        if svc.cluster_ip is None or svc.spec.type == "ExternalName":
            continue
        spec = svc.spec
        etp_local = _externally_accessible_type(svc) and spec.external_traffic_policy == "Local"
        needs_hc = spec.type == "LoadBalancer" and etp_local
        # A zero-length range allows everything: kube-proxy then installs no KUBE-FW chain
        # (shared/reference/dataplane.md 1.6, serviceport.go).
        ranges = tuple(r for r in spec.load_balancer_source_ranges if r.prefixlen != 0)
        if len(ranges) != len(spec.load_balancer_source_ranges):
            ranges = ()
        slices = index.get((svc.namespace, svc.name), [])
        for sp in spec.ports:
            spn = service_port_name(svc.namespace, svc.name, sp.name)
            proto = sp.protocol.lower()
            h = port_proto_hash(spn, proto)
            out.append(
                PortInfo(
                    spn=spn,
                    proto=proto,
                    cluster_ip=str(svc.cluster_ip),
                    port=sp.port,
                    node_port=sp.node_port or 0,
                    external_ips=tuple(str(i) for i in spec.external_ips),
                    lb_ips=tuple(str(i) for i in spec.load_balancer_ips),
                    source_ranges=ranges,
                    hc_node_port=(spec.health_check_node_port or 0) if needs_hc else 0,
                    affinity_timeout=(
                        spec.session_affinity_timeout
                        if spec.session_affinity == "ClientIP"
                        else None
                    ),
                    itp_local=spec.internal_traffic_policy == "Local",
                    etp_local=etp_local,
                    endpoints=_endpoints_for(slices, spn, sp),
                    svc_chain="KUBE-SVC-" + h,
                    svl_chain="KUBE-SVL-" + h,
                    ext_chain="KUBE-EXT-" + h,
                    fw_chain="KUBE-FW-" + h,
                )
            )
    out.sort(key=lambda p: (p.spn, p.proto))
    return tuple(out)
