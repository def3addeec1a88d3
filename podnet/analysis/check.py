"""``podnet check``: run every probe of a probe file and compare what happens with what it
expects (SPEC section 4).

Each probe is traced, unless the file is large (``method="auto"`` and at least
:data:`MODEL_MIN` probes) or ``method="model"``: then the probes podnet.analysis.check_model
covers are answered from kube-proxy's endpoints and the policy agent's rules, and traced only to
be held to the trace — every such probe whose answer misses its expectation, and an evenly
spread sample of :data:`SAMPLE` others. Where the trace disagrees, the traced result is kept and
the disagreement counted (:class:`CheckRun`). A modelled result's ``trace`` is made when first
read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from podnet.analysis.check_model import Answer, CheckModel, check_model
from podnet.analysis.probes import Probe
from podnet.errors import Problem, UsageError
from podnet.model.trace import Trace
from podnet.trace.endpoints import SrcRef
from podnet.trace.resolve import Origin, Resolver, Target
from podnet.trace.run import trace_between

# probes from which ``method="auto"`` answers from the model (fewer: each is traced, a few
# seconds at most even at 30,000 Pods)
MODEL_MIN = 500
# modelled probes traced as a check (besides every one that misses its expectation)
SAMPLE = 32


@dataclass(frozen=True, slots=True, eq=False)
class ProbeResult:
    """What a probe found, and whether it met each stated expectation (``ok`` None: none stated).

    ``method`` says where the answer came from: ``trace``, or ``model`` (then ``trace`` is
    traced when first read)."""

    probe: Probe
    verdict: str  # allow | deny | partial
    deny_kind: str | None
    endpoints: tuple[str, ...]
    masq: bool
    ok: bool | None
    mismatches: tuple[str, ...]
    _trace: Trace | None = None
    method: str = "trace"
    _later: Callable[[], Trace] | None = field(default=None, repr=False)

    @property
    def trace(self) -> Trace:
        """The probe's trace (forward legs; made now for a modelled result)."""
        t = self._trace
        if t is None:
            t = self._later()
            object.__setattr__(self, "_trace", t)
        return t


@dataclass(frozen=True, slots=True)
class CheckRun:
    """How a check went: probes answered by the model, traced, and the model's disagreements
    with the trace (``(index, model verdict, traced verdict)``; the traced result was kept)."""

    modelled: int = 0
    traced: int = 0
    checked: int = 0
    disagreements: tuple[tuple[int, str, str], ...] = ()


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
    return _judge(probe, Answer(verdict, deny_kind, trace.endpoints, masq), trace)


def _judge(probe: Probe, found: Answer, trace: Trace | None, later=None) -> ProbeResult:
    """Compare what a probe found with what it states."""
    verdict, deny_kind, endpoints, masq = (
        found.verdict,
        found.deny_kind,
        found.endpoints,
        found.masq,
    )
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
        "trace" if trace is not None else "model",
        later,
    )


def run_check(
    loaded,
    probes: tuple[Probe, ...],
    progress=None,
    *,
    replies: bool = False,
    method: str = "auto",
    run: list | None = None,
) -> tuple[ProbeResult, ...]:
    """Run every probe against a loaded cluster; ``progress(label, done, total)`` hears of each.

    ``method``: ``trace`` (every probe), ``model`` or ``auto`` (the model from :data:`MODEL_MIN`
    probes on; see the module docstring). ``run``, when given, gets the :class:`CheckRun`
    appended. The results' traces have no reply legs unless ``replies``: what a probe finds
    depends on the forward legs alone, and the replies would cost as much again."""
    resolver = loaded.resolver()
    network = loaded.network
    model = None
    if method == "model" or (method == "auto" and len(probes) >= MODEL_MIN):
        model = check_model(loaded.cluster)
    out: list[ProbeResult] = []
    modelled: list[int] = []
    traced, disagree = 0, []
    for i, p in enumerate(probes):
        if progress is not None:
            progress("checking probes", i, len(probes))
        r = None if model is None else _modelled(network, resolver, model, p, replies)
        if r is not None and r.ok is not False:
            modelled.append(i)
            out.append(r)
            continue
        t = run_probe(network, resolver, p, replies=replies)
        traced += 1
        if r is not None and _found(r) != _found(t):
            disagree.append((p.index, r.verdict, t.verdict))
        out.append(t)
    # hold the model to the trace on an evenly spread sample of what it answered alone
    n = len(modelled)
    picks = sorted({modelled[(2 * k + 1) * n // (2 * SAMPLE)] for k in range(SAMPLE)}) if n else []
    for k, i in enumerate(picks):
        if progress is not None:
            progress("checking the model by tracing", k, len(picks))
        r = out[i]
        t = run_probe(network, resolver, r.probe, replies=replies)
        traced += 1
        if _found(r) != _found(t):
            disagree.append((r.probe.index, r.verdict, t.verdict))
            out[i] = t
        else:
            object.__setattr__(r, "_trace", t.trace)
    if run is not None:
        run.append(CheckRun(len(modelled), traced, len(picks), tuple(sorted(disagree))))
    return tuple(out)


def _found(r: ProbeResult) -> tuple:
    return (r.verdict, r.deny_kind, r.endpoints, r.masq)


def _modelled(network, resolver: Resolver, model: CheckModel, probe: Probe, replies: bool):
    """The model's result for ``probe``, or None when the model does not cover it."""
    if probe.src is None:
        return None
    origin = _origin(resolver, probe)
    if origin.pod is None:
        return None
    target = _target(resolver, probe)
    found = model.answer(origin.pod, target)
    if found is None:
        return None

    def later() -> Trace:
        return run_probe(network, resolver, probe, replies=replies).trace

    return _judge(probe, found, None, later)
