"""The engine's side of netfilter and conntrack: builds each hook's context from the namespace
and the flight, runs the chains, and turns verdicts into continuing flights or endings.

Conntrack follows Linux: the first packet of a connection is NEW and walks the nat table; its
entry is confirmed when it leaves the hooks (POSTROUTING or INPUT). A reply finds the entry by its
reply tuple and is translated back without the nat table: the destination before routing
(undoing SNAT/MASQUERADE), the source after it (undoing DNAT) — nf_nat_ipv4_fn on the reply
direction at PREROUTING/OUTPUT and POSTROUTING/INPUT.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from podnet.dataplane import conntrack as ctmod
from podnet.dataplane import netfilter as nf
from podnet.model.base import FrozenDict
from podnet.model.trace import NfTrace, Packet, Step
from podnet.trace.flight import End, Flight
from podnet.trace.policy_glue import policy_end, policy_steps
from podnet.trace.view import NetView

EMPTY_CT = ctmod.ConntrackTable()


@dataclass(frozen=True, slots=True)
class CtState:
    """What conntrack knows of the packet in one namespace while it crosses the hooks."""

    new: bool
    direction: str | None  # None (new), "original" or "reply"
    entry: object | None
    orig: Packet  # the headers as they entered this namespace's conntrack
    state: str = "NEW"  # what -m conntrack --ctstate sees


def header(p: Packet) -> Packet:
    """The headers netfilter sees: the outer UDP packet of an encapsulated frame."""
    if p.encap is None:
        return p
    e = p.encap
    return Packet(e.src, e.dst, "udp", e.sport, e.dport, ttl=64, mark=p.mark)


def with_header(p: Packet, h: Packet) -> Packet:
    """Put headers that netfilter may have changed (NAT, mark) back into the flight's packet."""
    if p.encap is None:
        return p.with_(src=h.src, dst=h.dst, sport=h.sport, dport=h.dport, mark=h.mark)
    from dataclasses import replace

    e = replace(p.encap, src=h.src, dst=h.dst, sport=h.sport, dport=h.dport)
    return p.with_(encap=e, mark=h.mark)


def nat_text(before: Packet, after: Packet) -> str:
    """A NAT as a field diff: ``dst 10.96.0.20:80 -> 10.244.2.3:8080``."""
    parts = []
    if (before.src, before.sport) != (after.src, after.sport):
        parts.append(f"src {before.src}:{before.sport} -> {after.src}:{after.sport}")
    if (before.dst, before.dport) != (after.dst, after.dport):
        parts.append(f"dst {before.dst}:{before.dport} -> {after.dst}:{after.dport}")
    return ", ".join(parts)


class Hooks:
    """Runs netfilter hooks of one namespace for a flight."""

    def __init__(self, view: NetView):
        self.view = view

    # ------------------------------------------------------------------ conntrack

    def ct_begin(self, fl: Flight, netns: str, hook: str) -> tuple[Flight, CtState]:
        """Look the packet up at PREROUTING or OUTPUT; translate a reply's destination back."""
        table = fl.ct.get(netns)
        h = header(fl.packet)
        hit = ctmod.lookup(table, h) if table is not None else None
        if hit is None:
            return fl, CtState(True, None, None, h, "NEW")
        entry, direction = hit
        if direction == "reply":
            o = entry.orig
            if entry.unreplied:
                fl = fl.update(ct=_set(fl.ct, netns, ctmod.seen_reply(table, entry)))
            back = h.with_(dst=o.src, dport=o.sport)
            if back != h:
                fl = fl.with_packet(with_header(fl.packet, back))
                fl = fl.step(
                    Step(
                        "conntrack",
                        f"reply of {_tuple(o)}: {nat_text(h, back)} (undo SNAT)",
                        detail=FrozenDict(entry=ctmod.render_entry(entry)),
                    )
                )
            else:
                fl = fl.step(Step("conntrack", f"reply of {_tuple(o)}: ctstate ESTABLISHED"))
            return fl, CtState(False, direction, entry, h, "ESTABLISHED")
        # A later packet of a known connection (e.g. back in over lo): the NAT binding is
        # reused, the nat table is not consulted again; it stays NEW until a reply was seen.
        state = "NEW" if entry.unreplied else "ESTABLISHED"
        fwd = ctmod.translate_original(entry, h)
        if fwd != h:
            fl = fl.with_packet(with_header(fl.packet, fwd))
            fl = fl.step(
                Step("conntrack", f"{_tuple(entry.orig)}: {nat_text(h, fwd)} (known connection)")
            )
        else:
            fl = fl.step(
                Step("conntrack", f"{_tuple(entry.orig)}: known connection, ctstate {state}")
            )
        return fl, CtState(False, direction, entry, h, state)

    def ct_confirm(self, fl: Flight, netns: str, ct: CtState, hook: str) -> Flight:
        """Confirm a new connection's entry, or translate a reply's source back."""
        h = header(fl.packet)
        if ct.new:
            table = fl.ct.get(netns) or EMPTY_CT
            table = ctmod.confirm(table, ct.orig, h)
            return fl.update(ct=_set(fl.ct, netns, table))
        if ct.direction == "reply":
            o = ct.entry.orig
            back = h.with_(src=o.dst, sport=o.dport)
            if back != h:
                fl = fl.with_packet(with_header(fl.packet, back))
                fl = fl.step(
                    Step("conntrack", f"reply of {_tuple(o)}: {nat_text(h, back)} (undo DNAT)")
                )
        return fl

    # ------------------------------------------------------------------ hooks

    def run(
        self,
        fl: Flight,
        netns: str,
        hook: str,
        ct: CtState,
        *,
        in_iface: str | None,
        out_iface: str | None,
        physin: str | None = None,
        physout: str | None = None,
    ) -> Iterator[tuple[Flight | None, End | None]]:
        """Walk ``hook`` of ``netns``; yield ``(flight, None)`` per accepted branch and
        ``(None, end)`` per branch that a rule dropped or rejected."""
        v = self.view
        ruleset = v.ruleset(netns)
        h = header(fl.packet)
        status = set()
        if (h.dst, h.dport) != (ct.orig.dst, ct.orig.dport):
            status.add("DNAT")
        if (h.src, h.sport) != (ct.orig.src, ct.orig.sport):
            status.add("SNAT")
        if ct.entry is not None:
            status |= set(getattr(ct.entry, "status", ()) or ()) & {"DNAT", "SNAT"}
        ctx = nf.HookContext(
            in_iface=in_iface,
            out_iface=out_iface,
            physin=physin,
            physout=physout,
            ctstate=ct.state,
            ctstatus=frozenset(status),
            ct_new=ct.new,
            local_addrs=v.local_addrs(netns),
            masq_addr=v.primary_addr(netns, out_iface) if out_iface else None,
            recent=fl.recent.get(netns, FrozenDict()),
            ipsets=v.ipsets(netns),
        )
        outcomes = nf.traverse(ruleset, hook, ctx, h)
        for oc in outcomes:
            # one outcome has probability 1: skip the Fraction product and the copy
            fl1 = (fl if len(outcomes) == 1 else fl.update(prob=fl.prob * oc.probability)).step(
                *oc.steps
            )
            fl1 = fl1.nftrace(
                NfTrace(
                    hook,
                    oc.trace,
                    fl.packet,
                    with_header(fl.packet, oc.packet),
                    in_iface,
                    out_iface,
                    physin,
                    physout,
                    fl.src_mac,
                    fl.dst_mac,
                )
            )
            if oc.verdict in ("DROP", "REJECT"):
                end = policy_end(self.view, fl1, oc, netns)  # NetworkPolicy: DENIED_*
                if end is not None:
                    yield None, end
                    continue
            else:
                fl1 = fl1.step(*policy_steps(self.view, oc))
            if oc.verdict == "DROP":
                yield None, _ending(fl1, "DROPPED", oc, netns, hook)
                continue
            if oc.verdict == "REJECT":
                yield None, _ending(fl1, "REJECTED", oc, netns, hook)
                continue
            if oc.packet != h:
                if (oc.packet.src, oc.packet.sport, oc.packet.dst, oc.packet.dport) != (
                    h.src,
                    h.sport,
                    h.dst,
                    h.dport,
                ):
                    fl1 = fl1.step(
                        Step(
                            "nat",
                            nat_text(h, oc.packet),
                            detail=FrozenDict(kind=oc.nat.kind if oc.nat else ""),
                        )
                    )
                    fl1 = fl1.update(nat_seen=True)
                fl1 = fl1.with_packet(with_header(fl1.packet, oc.packet))
            if oc.recent_set:
                fl1 = fl1.update(recent=_add_recent(fl1.recent, netns, oc.recent_set))
            yield fl1, None


def _tuple(p) -> str:
    return f"{p.proto} {p.src}:{p.sport} -> {p.dst}:{p.dport}"


def _set(m: FrozenDict, key: str, value) -> FrozenDict:
    d = dict(m)
    d[key] = value
    return FrozenDict(d)


def _add_recent(recent: FrozenDict, netns: str, items) -> FrozenDict:
    lists = dict(recent.get(netns, FrozenDict()))
    for name, ip in items:
        lists[name] = frozenset(lists.get(name, frozenset()) | {ip})
    return _set(recent, netns, FrozenDict(lists))


def _ending(fl: Flight, disposition: str, oc, netns: str, hook: str) -> End:
    last = next((s for s in reversed(oc.steps) if s.rule), None)
    if last is not None:
        if disposition == "REJECTED":
            # REJECT answers with ICMP port unreachable: connect() fails at once (ECONNREFUSED)
            how, seen = "rejected", "the client is refused at once"
        else:
            how, seen = "dropped", "the client hears nothing and times out"
        reason = f"{how} in {netns} by {last.table} {last.chain} rule {last.rulenum}: {last.rule} ({seen})"
    else:
        reason = f"{hook} policy of {netns} drops it"
    return End(fl, disposition, reason)
