"""One trace: resolve SRC and DST, send the first packet, follow every branch, send each delivered
branch's reply back through the conntrack state that branch left, and collect the paths."""

from __future__ import annotations

import random
from dataclasses import replace
from fractions import Fraction
from ipaddress import IPv4Address

from podnet.errors import Problem, UsageError
from podnet.model.base import FrozenDict
from podnet.model.trace import Leg, Packet, Path, Trace, fast_constructor, ip_text, new_packet
from podnet.trace.endpoints import parse_dst, parse_src
from podnet.trace.engine import Engine
from podnet.trace.flight import End, Flight
from podnet.trace.resolve import NameTarget, Origin, Resolver, Target
from podnet.trace.view import MEMO_LIMIT, view_of

PROTOCOLS = ("tcp", "udp", "sctp")
LOOPBACK = IPv4Address("127.0.0.1")


def _resolve(network, resolver: Resolver, src, dst, namespace, port, protocol) -> tuple:
    """SRC and DST resolved, memoised in the network's view: the cluster never changes, so
    neither do the answers (a question asked again, on another source port, skips parsing)."""
    memo = view_of(network).resolved
    key = (id(resolver), src, dst, namespace, port, protocol)
    hit = memo.get(key)
    if hit is None or hit[0] is not resolver:
        origin = resolver.origin(parse_src(src, namespace))
        target = resolver.target(parse_dst(dst, namespace), origin, port, protocol)
        if len(memo) >= MEMO_LIMIT:
            memo.clear()
        hit = memo[key] = (resolver, origin, target)
    return hit[1], hit[2]


# a trace makes a leg or two per path: without the frozen __init__
_new_leg = fast_constructor(Leg)
_new_path = fast_constructor(Path)


def _leg(end: End) -> Leg:
    fl = end.flight
    return _new_leg(end.disposition, fl.all_hops(), end.reason, end.endpoint, fl.packet)


def run_trace(
    network,
    src: str,
    dst: str,
    *,
    namespace: str = "default",
    port: int | None = None,
    protocol: str | None = None,
    sport: int = 40000,
    seed: int | None = None,
    resolver: Resolver | None = None,
) -> Trace:
    """Trace a connection's first packet from ``src`` to ``dst`` and its reply.

    ``src``/``dst`` use the grammar of podnet.trace.endpoints. Every branch of kube-proxy's random
    choice is a path with its exact probability; ``seed`` keeps one, drawn as the kernel would.
    """
    resolver = resolver or Resolver(network.cluster)
    origin, target = _resolve(network, resolver, src, dst, namespace, port, protocol)
    if isinstance(target, NameTarget):  # a DNS name: the Pod's resolver asks kube-dns first
        from podnet.trace.dnsflow import trace_by_name

        return trace_by_name(
            network,
            origin,
            target,
            resolver,
            trace_between,
            sport=sport,
            seed=seed,
            src_text=src,
            dst_text=dst,
        )
    return trace_between(
        network, origin, target, sport=sport, seed=seed, src_text=src, dst_text=dst
    )


def trace_between(
    network,
    origin: Origin,
    target: Target,
    *,
    sport: int = 40000,
    seed: int | None = None,
    src_text: str = "",
    dst_text: str = "",
    replies: bool = True,
) -> Trace:
    """Trace from a resolved origin to a resolved target (used by ``check`` and ``reach`` too).

    ``replies=False``: delivered paths get no reply leg (``reply`` None) and no reply is sent,
    for callers that look at the forward leg only (``podnet check``)."""
    view = view_of(network)
    if origin.external is not None:
        from podnet.dataplane.build import with_external_client

        try:
            view = view.extended(with_external_client(network, origin.external, origin.node))
        except ValueError:
            raise UsageError(
                Problem(
                    f"{origin.external} is an address inside the cluster, not an outside client",
                    path="SRC",
                    hint="pick an address outside clusterCIDR, serviceCIDR and the nodes' network",
                )
            ) from None
    engine = Engine(view)
    src_ip = origin.ip
    if target.ip == LOOPBACK:
        src_ip = target.ip
    if src_ip is None:
        src_ip = engine.view.source_address(origin.netns, target.ip)
    packet = new_packet(src_ip, target.ip, target.protocol, sport, target.port, 64, 0, None)
    ends = engine.send(Flight(packet), origin.netns)
    paths = []
    for end in ends:
        reply, ct = None, FrozenDict(end.flight.ct)
        if replies and end.disposition == "DELIVERED":
            reply, ct = _reply(engine, end, origin, packet)
        paths.append(_new_path(end.flight.prob, _leg(end), reply, ct))
    paths = _merge(paths)
    if seed is not None and len(paths) > 1:
        rng = random.Random(seed)
        pick = rng.random()
        acc = Fraction(0)
        chosen = paths[-1]
        for p in paths:
            acc += p.probability
            if pick < acc:
                chosen = p
                break
        paths = [chosen]
    return Trace(src_text or origin.label, dst_text or target.label, packet, tuple(paths))


def _reply(engine: Engine, end: End, origin: Origin, sent: Packet) -> tuple[Leg, FrozenDict]:
    got = end.flight.packet
    answer = new_packet(got.dst, got.src, got.proto, got.dport, got.sport, 64, 0, None)
    fl = Flight(answer, ct=end.flight.ct, recent=end.flight.recent)
    replies = engine.send(fl, end.netns)
    # replies do not branch: conntrack already fixed the way back
    r = replies[0]
    leg = _leg(r)
    if r.disposition == "DELIVERED":
        p = r.flight.packet
        if r.netns != origin.netns:
            return Leg(
                "DROPPED",
                leg.hops,
                f"the reply reaches {r.netns}, not the client in {origin.netns}",
                None,
                p,
            ), FrozenDict(r.flight.ct)
        if (p.src, p.sport, p.dst, p.dport) != (sent.dst, sent.dport, sent.src, sent.sport):
            return Leg(
                "DROPPED",
                leg.hops,
                f"the reply comes from {p.src}:{p.sport} but the client connected to {sent.dst}:{sent.dport}: its socket does not accept it",
                None,
                p,
            ), FrozenDict(r.flight.ct)
        return _new_leg(
            "DELIVERED",
            leg.hops,
            f"the reply reaches the client from {ip_text(p.src)}:{p.sport}, the address it connected to",
            None,
            p,
        ), FrozenDict(r.flight.ct)
    return leg, FrozenDict(r.flight.ct)


def _merge(paths: list[Path]) -> list[Path]:
    """Branches that went exactly the same way are one path with their probabilities added (a rule
    that did not match on one branch and was skipped on the other leaves no trace)."""
    # Equal legs share a cheap key, so each path is compared (==) only with the few merged
    # paths of its key, never hashed whole: hashing hashes every hop and step of both legs.
    merged: list[Path] = []
    buckets: dict[tuple, list[int]] = {}
    for p in paths:
        bucket = buckets.setdefault((_cheap_key(p.forward), _cheap_key(p.reply)), [])
        for i in bucket:
            q = merged[i]
            if q.forward == p.forward and q.reply == p.reply:
                merged[i] = replace(q, probability=q.probability + p.probability)
                break
        else:
            bucket.append(len(merged))
            merged.append(p)
    return merged


def _cheap_key(leg: Leg | None) -> tuple | None:
    """Fields of a leg that equal legs share, quick to hash."""
    if leg is None:
        return None
    return (leg.disposition, leg.reason, leg.endpoint, len(leg.hops))
