"""A trace to a DNS name: the source Pod's resolver asks the cluster DNS first, then connects.

The query is a real packet: UDP from the Pod to the nameserver of its resolv.conf (kube-dns's
ClusterIP, 10.96.0.10), through kube-proxy's DNAT to a CoreDNS Pod, and the answer back, traced
by the same engine as any connection (so a NetworkPolicy that blocks port 53 shows up as the
DENIED_EGRESS it is). The resolver then tries the names of its search list in order
(podnet.dns.resolver); every try travels the same way, so the flow is traced once. When no
query gets through the resolver times out and no connection is attempted; when every name
fails there is nothing to connect to either. Otherwise the connection goes to the first address
of the answer (what getaddrinfo hands the client first).

podnet fixes the query's source port (``DNS_SPORT``) where the resolver picks a random one.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from ipaddress import IPv4Address

from podnet.dns.records import Answer
from podnet.dns.resolver import NoClusterDns, resolv_conf, resolve
from podnet.errors import Problem, UsageError, closest
from podnet.model.trace import DnsLookup, DnsQuery, Leg, Packet, Path, Trace
from podnet.trace.resolve import NameTarget, Origin, Resolver, Target

DNS_SPORT = 53053
UNKNOWN_ADDRESS = IPv4Address("0.0.0.0")


def _queries(asked: tuple[Answer, ...]) -> tuple[DnsQuery, ...]:
    return tuple(
        DnsQuery(a.qname, a.qtype, a.rcode, tuple(r.text() for r in a.records)) for a in asked
    )


def trace_by_name(
    network,
    origin: Origin,
    target: NameTarget,
    resolver: Resolver,
    trace_between,
    *,
    sport: int = 40000,
    seed: int | None = None,
    src_text: str = "",
    dst_text: str = "",
) -> Trace:
    """Resolve ``target`` from ``origin``'s Pod over the traced DNS flow, then trace the
    connection to the address found (``trace_between`` is podnet.trace.run.trace_between)."""
    assert origin.pod is not None
    cluster = network.cluster
    try:
        conf = resolv_conf(cluster, origin.pod)
    except NoClusterDns as e:
        raise UsageError(
            Problem(e.message, path="DST", hint="name the Service instead: svc/NS/NAME[:PORT]")
        ) from None
    server = conf.nameservers[0]
    query = Target(server, 53, "udp", f"{server}:53")
    flow = trace_between(
        network,
        origin,
        query,
        sport=DNS_SPORT,
        seed=seed,
        src_text=src_text,
        dst_text=f"{server}:53",
    )
    res = resolve(resolver.zone(), target.name, conf, "A")
    src_text = src_text or origin.label
    dst_text = dst_text or target.text

    def lookup(queries, ok, address, reason) -> DnsLookup:
        return DnsLookup(
            target.name, server, conf.search, conf.ndots, queries, flow, ok, address, reason
        )

    if not any(p.delivered for p in flow.paths):
        why = flow.paths[0].forward if flow.paths else None
        detail = f"{why.disposition}: {why.reason}" if why is not None else "no path"
        first = DnsQuery(res.asked[0].qname, "A", "TIMEOUT")
        reason = (
            f"the query to {server}:53 udp gets no answer ({detail}): the lookup times out,"
            " no connection is attempted"
        )
        return Trace(src_text, dst_text, flow.packet, (), dns=lookup((first,), False, None, reason))
    queries = _queries(res.asked)
    answer = res.answer
    if answer is None:
        last = res.asked[-1]
        reason = f"no name of the search list resolves ({', '.join(sorted({a.rcode for a in res.asked}))})"
        near = closest(target.name.split(".")[0], sorted({s.name for s in cluster.services}), n=3)
        if near:
            reason += f"; Services with a close name: {', '.join(near)}"
        if last.note:
            reason += f"; {last.qname} {last.note}"
        return Trace(src_text, dst_text, flow.packet, (), dns=lookup(queries, False, None, reason))
    addresses = answer.addresses()
    svc = _service_of(resolver, answer.qname, cluster.config.cluster_domain)
    if not addresses:
        cname = answer.cname() or answer.qname
        reason = (
            f"{answer.qname} is a CNAME to {cname} (ExternalName), outside the cluster: the"
            " upstream resolver answers for it and the connection leaves the cluster (podnet"
            " does not know the address)"
        )
        port = _port(target, svc, None)
        proto = (target.protocol or "tcp").lower()
        src_ip = origin.ip if origin.ip is not None else flow.packet.src
        packet = Packet(src_ip, UNKNOWN_ADDRESS, proto, sport, port)
        leg = Leg("EXITS_NETWORK", (), reason, None, packet)
        return Trace(
            src_text,
            dst_text,
            packet,
            (Path(Fraction(1), leg),),
            dns=lookup(queries, True, None, reason),
        )
    ip = addresses[0]
    port = _port(target, svc, ip)
    proto = target.protocol
    if proto is None and svc is not None:
        proto = next((p.protocol for p in svc.spec.ports if p.port == port), None)
    proto = (proto or "tcp").lower()
    more = f" (first of {len(addresses)} addresses)" if len(addresses) > 1 else ""
    reason = f"{answer.qname} is {ip}{more}: the connection goes there"
    conn = Target(
        ip,
        port,
        proto,
        f"{target.name}:{port}",
        service=svc if svc and svc.cluster_ip == ip else None,
    )
    trace = trace_between(
        network, origin, conn, sport=sport, seed=seed, src_text=src_text, dst_text=dst_text
    )
    return replace(trace, dns=lookup(queries, True, ip, reason))


def _service_of(resolver: Resolver, qname: str, domain: str):
    """The Service an answered name belongs to (``[host.]svc.ns.svc.<domain>.``), if any."""
    suffix = f".svc.{domain.rstrip('.')}."
    if not qname.endswith(suffix):
        return None
    labels = qname[: -len(suffix)].split(".")
    if len(labels) < 2:
        return None
    return resolver.services.get(f"{labels[-1]}/{labels[-2]}")


def _port(target: NameTarget, svc, ip: IPv4Address | None) -> int:
    port = target.port
    if port is not None and port.isdigit():
        return int(port)
    ports = svc.spec.ports if svc is not None else ()
    for sp in ports:
        if port is None or sp.name == port:
            return sp.port  # a headless Service's too: the client dials the Pod on that port
    if port is None:
        raise UsageError(
            Problem(
                f"'{target.text}' needs a port",
                path="DST",
                hint=f"write {target.text}:PORT or use -p PORT",
            )
        )
    raise UsageError(
        Problem(
            f"'{target.name}' has no port named '{port}'", path="DST", hint="give the port number"
        )
    )
