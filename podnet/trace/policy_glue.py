"""NetworkPolicy in a trace: turn a REJECT/DROP in a Pod's firewall chain into DENIED_INGRESS or
DENIED_EGRESS with the reason in words, and name what admitted a packet that passed one.

The iptables walk decides (the rules of podnet.control.policy); the words come from
podnet.analysis.policy_explain, which evaluates the same packet against the policy objects.
"""

from __future__ import annotations

from podnet.analysis.policy_explain import admit_text, deny_reason, evaluate
from podnet.control.policy import DEFAULT_CHAIN, POD_FW_PREFIX, POLICY_PREFIX, agent_state
from podnet.model.base import FrozenDict
from podnet.model.trace import Step
from podnet.trace.flight import End, Flight


def _direction(pod, packet) -> str:
    return "ingress" if packet.dst == pod.ip else "egress"


def policy_end(view, fl: Flight, oc, netns: str) -> End | None:
    """The ending of a branch a Pod firewall chain refused, or None if another rule did."""
    last = next((s for s in reversed(oc.steps) if s.rule), None)
    if last is None or not (last.chain or "").startswith(POD_FW_PREFIX):
        return None
    cluster = view.network.cluster
    st = agent_state(cluster)
    pod = st.pod_of_chain(last.chain) if st is not None else None
    if pod is None:
        return None
    p = oc.packet
    direction = _direction(pod, p)
    v = evaluate(cluster, p.src, p.dst, p.proto, p.dport)
    d = v.ingress if direction == "ingress" else v.egress
    how = "refused (REJECT)" if oc.verdict == "REJECT" else "dropped"
    where = f"{how} by {last.chain} rule {last.rulenum} in {netns}"
    if d is not None and not d.allowed:
        reason = f"{deny_reason(cluster, d, p.src, p.dst, p.proto, p.dport)} ({where})"
    else:
        reason = f"{pod.key} {direction}: no policy chain marked the packet allowed ({where})"
    disposition = "DENIED_INGRESS" if direction == "ingress" else "DENIED_EGRESS"
    return End(fl, disposition, reason, extra=FrozenDict(pod=pod.key, direction=direction))


def policy_steps(view, oc) -> tuple[Step, ...]:
    """``policy`` steps for every Pod firewall chain an accepted packet passed: the policy and
    rule that admitted it, or why nothing needed to."""
    steps = oc.steps
    if not any((s.chain or "").startswith(POD_FW_PREFIX) for s in steps):
        return ()
    cluster = view.network.cluster
    st = agent_state(cluster)
    if st is None:
        return ()
    out: list[Step] = []
    seen: set[str] = set()
    pod = None
    p = oc.packet
    verdict = None
    for s in steps:
        chain = s.chain or ""
        if chain.startswith(POD_FW_PREFIX):
            pod = st.pod_of_chain(chain)
            if pod is not None and "--src-type LOCAL" in (s.rule or "") and s.type == "netfilter":
                text = f"ingress of {pod.key}: from its own node, always allowed"
                if text not in seen:
                    seen.add(text)
                    out.append(
                        Step("policy", text, detail=FrozenDict(pod=pod.key, direction="ingress"))
                    )
            continue
        if pod is None:
            continue
        direction = _direction(pod, p)
        text = None
        origin = st.origins.get((chain, s.rulenum)) if chain.startswith(POLICY_PREFIX) else None
        if origin is not None and (s.detail or {}).get("target", "").startswith("MARK"):
            text = f"{direction} of {pod.key}: allowed by {origin.policy} {origin.direction} rule {origin.index + 1}"
            if verdict is None:
                verdict = evaluate(cluster, p.src, p.dst, p.proto, p.dport)
            d = verdict.ingress if direction == "ingress" else verdict.egress
            if d is not None:
                pe = next((x for x in d.policies if x.policy == origin.policy), None)
                if pe is not None and origin.index < len(pe.rules):
                    text += f" ({pe.rules[origin.index].text})"
        elif chain == DEFAULT_CHAIN:
            text = f"{direction} of {pod.key}: not isolated (no policy selects it for {direction})"
        if text is not None and text not in seen:
            seen.add(text)
            out.append(Step("policy", text, detail=FrozenDict(pod=pod.key, direction=direction)))
    return tuple(out)


__all__ = ["admit_text", "policy_end", "policy_steps"]
