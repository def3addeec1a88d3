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

from podnet.control.policy import POD_FW_PREFIX
from podnet.dataplane import conntrack as ctmod
from podnet.dataplane import netfilter as nf
from podnet.model.base import EMPTY, FrozenDict
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
        self._fw = view.policed  # lives with the view: an Engine lasts one trace

    def _policed(self, steps: tuple[Step, ...]) -> bool:
        """Whether a walk's steps pass a Pod firewall chain (policy_steps has words for them),
        memoised per steps tuple: memoised walks share theirs."""
        hit = self._fw.get(id(steps))
        if hit is None or hit[0] is not steps:
            if len(self._fw) >= 1 << 12:
                self._fw.clear()
            hit = (steps, any((s.chain or "").startswith(POD_FW_PREFIX) for s in steps))
            self._fw[id(steps)] = hit
        return hit[1]

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
        p = fl.packet
        h = header(p)
        o = ct.orig
        dnat = h.dst != o.dst or h.dport != o.dport
        snat = h.src != o.src or h.sport != o.sport
        if ct.entry is not None:
            had = getattr(ct.entry, "status", ()) or ()
            dnat = dnat or "DNAT" in had
            snat = snat or "SNAT" in had
        key, ctx = v.hook_context(
            netns,
            in_iface,
            out_iface,
            physin,
            physout,
            ct.state,
            _STATUS[dnat, snat],
            ct.new,
            fl.recent.get(netns, EMPTY),
        )
        # the ruleset of a namespace never changes: the context key (netns first) names it
        outcomes = nf.traverse_memo(
            v.walks,
            (key, hook, int(h.src), int(h.dst), h.proto, h.ttl, h.mark, h.encap),
            v.ruleset(netns),
            hook,
            ctx,
            h,
        )
        single = len(outcomes) == 1
        for oc in outcomes:
            # one outcome has probability 1: skip the Fraction product
            prob = fl.prob if single else fl.prob * oc.probability
            changed = oc.packet != h
            # unchanged headers put back give the packet itself (header() took them from it)
            after = with_header(p, oc.packet) if changed else p
            record = NfTrace(
                hook,
                oc.trace,
                p,
                after,
                in_iface,
                out_iface,
                physin,
                physout,
                fl.src_mac,
                fl.dst_mac,
            )
            if oc.verdict in ("DROP", "REJECT"):
                fl1 = fl.advance(oc.steps, record, prob=prob)
                end = policy_end(self.view, fl1, oc, netns)  # NetworkPolicy: DENIED_*
                if end is not None:
                    yield None, end
                elif oc.verdict == "DROP":
                    yield None, _ending(fl1, "DROPPED", oc, netns, hook)
                else:
                    yield None, _ending(fl1, "REJECTED", oc, netns, hook)
                continue
            steps = oc.steps
            if self._policed(steps):
                steps += policy_steps(self.view, oc)
            changes = {}
            if changed:
                q = oc.packet
                if (q.src, q.sport, q.dst, q.dport) != (h.src, h.sport, h.dst, h.dport):
                    nat = Step(
                        "nat",
                        nat_text(h, q),
                        detail=FrozenDict(kind=oc.nat.kind if oc.nat else ""),
                    )
                    steps += (nat,)
                    changes["nat_seen"] = True
                changes["packet"] = after
            if oc.recent_set:
                changes["recent"] = _add_recent(fl.recent, netns, oc.recent_set)
            yield fl.advance(steps, record, prob=prob, **changes), None


# ctstatus of a hook walk by (DNAT seen, SNAT seen): four shared sets, hashed once
_STATUS = {
    (d, s): frozenset(({"DNAT"} if d else set()) | ({"SNAT"} if s else set()))
    for d in (False, True)
    for s in (False, True)
}


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
