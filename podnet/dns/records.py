"""The cluster's DNS zone as CoreDNS serves it, record by record.

Kubernetes DNS-Based Service Discovery (kubernetes/dns docs/specification.md, schema 1.0.1) and
kubeadm's Corefile (``kubernetes cluster.local in-addr.arpa ip6.arpa { pods insecure; fallthrough
in-addr.arpa ip6.arpa; ttl 30 }``, ``forward . /etc/resolv.conf``):

- ``<svc>.<ns>.svc.<zone>``: A = the ClusterIP; headless: one A per *ready* endpoint address
  (NXDOMAIN when there is none); ExternalName: CNAME ``<externalName>.``.
- ``<hostname>.<svc>.<ns>.svc.<zone>`` (headless): A of the ready endpoint with that hostname
  (Pod ``spec.hostname`` + ``spec.subdomain`` = the Service); an endpoint without a hostname is
  named by its dashed address (CoreDNS endpointHostname, ``10-244-1-3``).
- ``_<port>._<proto>.<svc>.<ns>.svc.<zone>`` for each *named* port: SRV ``0 <weight> <port>
  <target>``; target the Service name (port = Service port) or, headless, each ready endpoint's
  name (port = the endpoint's port), weight 100 split evenly.
- ``<a>-<b>-<c>-<d>.<ns>.pod.<zone>``: A ``a.b.c.d`` (``pods insecure``: not checked against Pods).
- ``d.c.b.a.in-addr.arpa``: PTR ``<svc>.<ns>.svc.<zone>.`` for a ClusterIP; the endpoint name
  for a ready endpoint of a headless Service.
- ``dns-version.<zone>``: TXT ``"1.0.1"``.
- A name that exists with no record of the asked type: NOERROR, no answer (NODATA).
- Every other name of the zone: NXDOMAIN. Names outside the zone (and reverse names CoreDNS
  falls through) go to ``forward . /etc/resolv.conf``, the node's resolver, outside the cluster:
  podnet has no upstream, so they get SERVFAIL, as CoreDNS answers when its upstream does not.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address

from podnet.model.cluster import Cluster, Endpoint, Service

TTL = 30  # Corefile "ttl 30"
SCHEMA_VERSION = "1.0.1"
TYPES = ("A", "SRV", "PTR", "CNAME", "TXT")


@dataclass(frozen=True, slots=True)
class Record:
    """One resource record; ``name`` and names inside ``data`` are absolute (trailing dot)."""

    name: str
    type: str
    data: str
    ttl: int = TTL

    def text(self) -> str:
        """As dig prints it in a section.

        >>> Record("a.b.", "A", "10.96.0.1").text()
        'a.b.\\t\\t30\\tIN\\tA\\t10.96.0.1'
        """
        return f"{self.name}\t\t{self.ttl}\tIN\t{self.type}\t{self.data}"


@dataclass(frozen=True, slots=True)
class Answer:
    """CoreDNS's reply to one question: ``rcode`` NOERROR, NXDOMAIN or SERVFAIL."""

    qname: str
    qtype: str
    rcode: str
    records: tuple[Record, ...] = ()
    note: str = ""

    @property
    def positive(self) -> bool:
        """An answer a resolver stops its search at: NOERROR with records."""
        return self.rcode == "NOERROR" and bool(self.records)

    def addresses(self) -> tuple[IPv4Address, ...]:
        return tuple(IPv4Address(r.data) for r in self.records if r.type == "A")

    def cname(self) -> str | None:
        return next((r.data for r in self.records if r.type == "CNAME"), None)


def fqdn(name: str) -> str:
    """Lower case, with the trailing dot.

    >>> fqdn("Backend.default.svc.cluster.local")
    'backend.default.svc.cluster.local.'
    """
    name = name.lower()
    return name if name.endswith(".") else name + "."


def dashed(ip: IPv4Address) -> str:
    """``10.244.1.3`` -> ``10-244-1-3`` (Pod A records, endpoint names)."""
    return str(ip).replace(".", "-")


def reverse_name(ip: IPv4Address) -> str:
    """The PTR name of an address.

    >>> reverse_name(IPv4Address("10.96.0.10"))
    '10.0.96.10.in-addr.arpa.'
    """
    return ".".join(reversed(str(ip).split("."))) + ".in-addr.arpa."


def _parse_dashed(label: str) -> IPv4Address | None:
    parts = label.split("-")
    if len(parts) != 4 or not all(p.isdigit() and len(p) <= 3 for p in parts):
        return None
    try:
        return IPv4Address(".".join(str(int(p)) for p in parts))
    except ValueError:
        return None


class Zone:
    """Answers questions about one cluster, with indexes built once (reverse ones on demand)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.domain = fqdn(cluster.config.cluster_domain)
        self.services: dict[tuple[str, str], Service] = {
            (s.namespace, s.name): s for s in cluster.services
        }
        self.namespaces = {n.name for n in cluster.namespaces}
        self._slices: dict[tuple[str, str], list] = {}
        for sl in cluster.endpoint_slices:
            self._slices.setdefault((sl.namespace, sl.service), []).append(sl)
        self._reverse: dict[IPv4Address, list[str]] | None = None

    # ------------------------------------------------------------------ helpers

    def service_name(self, svc: Service) -> str:
        return f"{svc.name}.{svc.namespace}.svc.{self.domain}"

    def ready_endpoints(self, svc: Service) -> list[tuple[Endpoint, dict[str, int]]]:
        """Ready endpoints of a Service, by address (first slice wins), with their named ports."""
        seen: dict[IPv4Address, tuple[Endpoint, dict[str, int]]] = {}
        for sl in self._slices.get((svc.namespace, svc.name), ()):
            ports = {f"{p.name}/{p.protocol}": p.port for p in sl.ports}
            for ep in sl.endpoints:
                if ep.ready and ep.ip not in seen:
                    seen[ep.ip] = (ep, ports)
                elif ep.ready:
                    seen[ep.ip][1].update(ports)
        return [seen[ip] for ip in sorted(seen, key=int)]

    @staticmethod
    def endpoint_label(ep: Endpoint) -> str:
        return ep.hostname or dashed(ep.ip)

    def _reverse_index(self) -> dict[IPv4Address, list[str]]:
        if self._reverse is None:
            rev: dict[IPv4Address, list[str]] = {}
            for svc in self.cluster.services:
                if svc.cluster_ip is not None:
                    rev.setdefault(svc.cluster_ip, []).append(self.service_name(svc))
                elif svc.spec.type != "ExternalName":
                    for ep, _ in self.ready_endpoints(svc):
                        name = f"{self.endpoint_label(ep)}.{self.service_name(svc)}"
                        rev.setdefault(ep.ip, []).append(name)
            self._reverse = rev
        return self._reverse

    # ------------------------------------------------------------------ questions

    def lookup(self, name: str, qtype: str = "A") -> Answer:
        """CoreDNS's answer to ``name`` ``qtype``.

        >>> from podnet.control import plan
        >>> from podnet.model.spec import Inputs
        >>> z = Zone(plan(Inputs()))
        >>> a = z.lookup("kube-dns.kube-system.svc.cluster.local")
        >>> a.rcode, a.records[0].data
        ('NOERROR', '10.96.0.10')
        >>> z.lookup("nope.default.svc.cluster.local").rcode
        'NXDOMAIN'
        """
        qname, qtype = fqdn(name), qtype.upper()
        if qname.endswith(".in-addr.arpa."):
            return self._ptr(qname, qtype)
        if qname == self.domain or not qname.endswith("." + self.domain):
            return Answer(
                qname,
                qtype,
                "SERVFAIL",
                note="outside the cluster zone: CoreDNS forwards it to the node's resolver"
                " (forward . /etc/resolv.conf), which podnet does not model",
            )
        labels = qname[: -len(self.domain) - 1].split(".")
        if labels == ["dns-version"]:
            return self._only(qname, qtype, "TXT", [f'"{SCHEMA_VERSION}"'])
        kind = labels[-1]
        if kind == "svc":
            return self._svc(qname, qtype, labels[:-1])
        if kind == "pod" and len(labels) == 3:
            ip = _parse_dashed(labels[0])
            if ip is not None:
                return self._only(qname, qtype, "A", [str(ip)])
        if kind == "pod" and (
            len(labels) == 1 or (len(labels) == 2 and labels[0] in self.namespaces)
        ):
            return Answer(qname, qtype, "NOERROR")  # an empty non-terminal
        return Answer(qname, qtype, "NXDOMAIN")

    def _only(self, qname: str, qtype: str, rtype: str, datas: Iterable[str]) -> Answer:
        if qtype != rtype:
            return Answer(qname, qtype, "NOERROR")
        return Answer(qname, qtype, "NOERROR", tuple(Record(qname, rtype, d) for d in datas))

    def _svc(self, qname: str, qtype: str, labels: list[str]) -> Answer:
        if len(labels) < 2:
            if not labels or labels[0] in self.namespaces:
                return Answer(qname, qtype, "NOERROR")  # an empty non-terminal
            return Answer(qname, qtype, "NXDOMAIN")
        svc = self.services.get((labels[-1], labels[-2]))
        if svc is None:
            return Answer(qname, qtype, "NXDOMAIN")
        head = labels[:-2]
        if svc.spec.type == "ExternalName":
            if head:
                return Answer(qname, qtype, "NXDOMAIN")
            target = fqdn(svc.spec.external_name or "")
            rec = (Record(qname, "CNAME", target),)
            note = f"{target} is outside the cluster: the resolver asks the upstream servers for it"
            return Answer(qname, qtype, "NOERROR", rec, note)
        if not head:
            return self._service_address(qname, qtype, svc)
        if len(head) == 2 and head[0].startswith("_") and head[1].startswith("_"):
            return self._srv(qname, qtype, svc, head[0][1:], head[1][1:].upper())
        if len(head) == 1 and svc.cluster_ip is None:
            found = [
                str(ep.ip)
                for ep, _ in self.ready_endpoints(svc)
                if self.endpoint_label(ep) == head[0]
            ]
            if found:
                return self._only(qname, qtype, "A", found)
        return Answer(qname, qtype, "NXDOMAIN")

    def _service_address(self, qname: str, qtype: str, svc: Service) -> Answer:
        if svc.cluster_ip is not None:
            return self._only(qname, qtype, "A", [str(svc.cluster_ip)])
        ready = self.ready_endpoints(svc)
        if not ready:
            return Answer(qname, qtype, "NXDOMAIN", note="headless Service without ready endpoints")
        return self._only(qname, qtype, "A", [str(ep.ip) for ep, _ in ready])

    def _srv(self, qname: str, qtype: str, svc: Service, port: str, proto: str) -> Answer:
        sp = next((p for p in svc.spec.ports if p.name == port and p.protocol == proto), None)
        if sp is None or not port:
            return Answer(qname, qtype, "NXDOMAIN")
        if svc.cluster_ip is not None:
            return self._only(qname, qtype, "SRV", [f"0 100 {sp.port} {self.service_name(svc)}"])
        targets = []
        for ep, ports in self.ready_endpoints(svc):
            number = ports.get(f"{port}/{proto}")
            if number is not None:
                targets.append((number, f"{self.endpoint_label(ep)}.{self.service_name(svc)}"))
        if not targets:
            return Answer(qname, qtype, "NXDOMAIN")
        weight = max(1, 100 // len(targets))
        return self._only(qname, qtype, "SRV", [f"0 {weight} {n} {t}" for n, t in targets])

    def _ptr(self, qname: str, qtype: str) -> Answer:
        parts = qname[: -len(".in-addr.arpa.")].split(".")
        ip = None
        if len(parts) == 4 and all(p.isdigit() for p in parts):
            try:
                ip = IPv4Address(".".join(reversed(parts)))
            except ValueError:
                ip = None
        names = self._reverse_index().get(ip, []) if ip is not None else []
        if not names:
            return Answer(
                qname,
                qtype,
                "SERVFAIL",
                note="no Service or endpoint has this address: CoreDNS falls through to the"
                " node's resolver (fallthrough in-addr.arpa), which podnet does not model",
            )
        return self._only(qname, qtype, "PTR", names)
