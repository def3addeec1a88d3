"""``podnet check``: run every probe of a probe file and compare what happens with what it
expects (SPEC section 4)."""

from __future__ import annotations

from dataclasses import dataclass

from podnet.analysis.probes import Probe
from podnet.errors import Problem, UsageError
from podnet.model.trace import Trace
from podnet.trace.endpoints import SrcRef
from podnet.trace.resolve import Origin, Resolver, Target
from podnet.trace.run import trace_between


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What a probe found, and whether it met each stated expectation (``ok`` None: none stated)."""

    probe: Probe
    verdict: str  # allow | deny | partial
    deny_kind: str | None
    endpoints: tuple[str, ...]
    masq: bool
    ok: bool | None
    mismatches: tuple[str, ...]
    trace: Trace


def _origin(resolver: Resolver, probe: Probe) -> Origin:
    if probe.src is not None:
        ns, _, name = probe.src.rpartition("/")
        return resolver.origin(SrcRef("pod", ns or "default", name, text=probe.src))
    if probe.from_node is not None:
        return resolver.origin(
            SrcRef("node", name=probe.from_node, node=probe.from_node, text=probe.from_node)
        )
    return resolver.origin(
        SrcRef(
            "ext", ip=probe.from_ip, node=probe.at_node, text=f"ext/{probe.from_ip}@{probe.at_node}"
        )
    )


def _target(resolver: Resolver, probe: Probe) -> Target:
    proto = probe.protocol.lower()
    if probe.to_ip is not None:
        if probe.port is None:
            raise UsageError(Problem("to_ip needs a port", probe.pos, f"[{probe.index}]"))
        svc = resolver.services.get(probe.service) if probe.service else None
        return Target(probe.to_ip, probe.port, proto, f"{probe.to_ip}:{probe.port}", service=svc)
    if probe.service is not None:
        ns, _, name = probe.service.rpartition("/")
        return resolver._service_target(
            ns or "default", name, None if probe.port is None else str(probe.port), proto
        )
    ns, _, name = probe.to.rpartition("/")
    pod = resolver.pod(ns or "default", name, f"[{probe.index}].to")
    num, p = resolver._pod_port(pod, None if probe.port is None else str(probe.port), proto)
    return Target(pod.ip, num, p, f"pod/{pod.key}:{num}", pod=pod)


def _refused(path) -> bool:
    """Whether the client is refused at once: an iptables REJECT ended the path — kube-proxy's
    (REJECTED) or a policy agent's REJECT at the end of a Pod's firewall chain (DENIED_*)."""
    if path.disposition == "REJECTED":
        return True
    if path.disposition in ("DENIED_INGRESS", "DENIED_EGRESS"):
        rules = [s.rule for h in path.hops for s in h.steps if s.rule]
        return bool(rules) and " -j REJECT" in rules[-1]
    return False


def run_probe(network, resolver: Resolver, probe: Probe, *, replies: bool = True) -> ProbeResult:
    """Trace one probe and compare. A probe's result (verdict, deny_kind, endpoints, masq)
    comes from the forward legs alone: ``replies=False`` skips sending the replies, and the
    result's trace then has none (podnet.realize.verify needs them, ``check`` does not)."""
    origin = _origin(resolver, probe)
    target = _target(resolver, probe)
    trace = trace_between(
        network,
        origin,
        target,
        src_text=origin.label,
        dst_text=target.label,
        replies=replies,
    )
    ok_paths = [p for p in trace.paths if p.delivered]
    verdict = {"delivered": "allow", "dropped": "deny", "partial": "partial"}[trace.verdict]
    deny_kind = None
    if verdict == "deny":
        deny_kind = "reject" if any(_refused(p) for p in trace.paths) else "drop"
    client = trace.packet.src
    masq = any(p.forward.packet is not None and p.forward.packet.src != client for p in ok_paths)
    endpoints = trace.endpoints
    wrong = []
    if probe.expect is not None and probe.expect != verdict:
        wrong.append(f"expected {probe.expect}, found {verdict}")
    if probe.deny_kind is not None and probe.deny_kind != deny_kind:
        wrong.append(f"expected deny_kind {probe.deny_kind}, found {deny_kind}")
    if probe.endpoints is not None and tuple(sorted(probe.endpoints)) != endpoints:
        wrong.append(f"expected endpoints {sorted(probe.endpoints)}, found {list(endpoints)}")
    if probe.masq is not None and probe.masq != masq:
        wrong.append(f"expected masq {probe.masq}, found {masq}")
    stated = any(
        v is not None for v in (probe.expect, probe.deny_kind, probe.endpoints, probe.masq)
    )
    return ProbeResult(
        probe,
        verdict,
        deny_kind,
        endpoints,
        masq,
        (not wrong) if stated else None,
        tuple(wrong),
        trace,
    )


def run_check(
    loaded, probes: tuple[Probe, ...], progress=None, *, replies: bool = False
) -> tuple[ProbeResult, ...]:
    """Run every probe against a loaded cluster; ``progress(label, done, total)`` hears of each.

    The results' traces have no reply legs unless ``replies``: what a probe finds depends on
    the forward legs alone, and the replies would cost as much again."""
    resolver = loaded.resolver()
    if progress is None:
        return tuple(run_probe(loaded.network, resolver, p, replies=replies) for p in probes)
    out = []
    for i, p in enumerate(probes):
        progress("checking probes", i, len(probes))
        out.append(run_probe(loaded.network, resolver, p, replies=replies))
    return tuple(out)
