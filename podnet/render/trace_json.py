"""A trace as the JSON of SPEC section 3."""

from __future__ import annotations

import json

from podnet.model.trace import Hop, Leg, Packet, Path, Step, Trace


def packet_dict(p: Packet) -> dict:
    d = {
        "src": str(p.src),
        "dst": str(p.dst),
        "proto": p.proto,
        "sport": p.sport,
        "dport": p.dport,
        "ttl": p.ttl,
    }
    if p.mark:
        d["mark"] = p.mark
    if p.encap is None:
        d["encap"] = None
    else:
        e = p.encap
        d["encap"] = {
            "type": e.type,
            "src": str(e.src),
            "dst": str(e.dst),
            "sport": e.sport,
            "dport": e.dport,
            "vni": e.vni,
        }
    return d


def step_dict(s: Step) -> dict:
    d = {"type": s.type, "text": s.text}
    if s.type in ("netfilter", "nat") or s.rule:
        d.update(table=s.table, chain=s.chain, rule=s.rule, rulenum=s.rulenum)
    return d


def hop_dict(h: Hop) -> dict:
    return {
        "node": h.node,
        "netns": h.netns,
        "device": h.device,
        "direction": h.direction,
        "steps": [step_dict(s) for s in h.steps],
        "packet": packet_dict(h.packet),
    }


def leg_dict(leg: Leg) -> dict:
    return {
        "disposition": leg.disposition,
        "reason": leg.reason,
        "hops": [hop_dict(h) for h in leg.hops],
    }


def path_dict(p: Path) -> dict:
    d = {
        "probability": round(float(p.probability), 10),
        "disposition": p.disposition,
        "endpoint": p.endpoint,
        "reason": p.forward.reason,
        "hops": [hop_dict(h) for h in p.hops],
        "reply": leg_dict(p.reply) if p.reply is not None else None,
    }
    return d


def dns_dict(d) -> dict:
    """The name lookup before the connection (Trace.dns)."""
    return {
        "name": d.name,
        "ok": d.ok,
        "address": str(d.address) if d.address is not None else None,
        "reason": d.reason,
        "resolvConf": {"nameserver": str(d.server), "search": list(d.search), "ndots": d.ndots},
        "queries": [
            {"name": q.name, "type": q.qtype, "rcode": q.rcode, "answers": list(q.answers)}
            for q in d.queries
        ],
        "flow": trace_dict(d.flow) if d.flow is not None else None,
    }


def trace_dict(t: Trace) -> dict:
    d = {
        "src": t.src,
        "dst": t.dst,
        "packet": {k: v for k, v in packet_dict(t.packet).items() if k not in ("ttl", "encap")},
        "verdict": t.verdict,
        "endpoints": list(t.endpoints),
    }
    if t.dns is not None:  # before the paths, as it happens first
        d["dns"] = dns_dict(t.dns)
    d["paths"] = [path_dict(p) for p in t.paths]
    return d


def render_trace_json(t: Trace) -> str:
    return json.dumps(trace_dict(t), indent=2) + "\n"
