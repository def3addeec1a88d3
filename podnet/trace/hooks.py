"""The engine's side of netfilter and conntrack: builds each hook's context from the namespace
and the flight, runs the chains, and turns verdicts into continuing flights or endings.

Conntrack follows Linux: the first packet of a connection is NEW and walks the nat table; its
entry is confirmed when it leaves the hooks (POSTROUTING or INPUT). A reply finds the entry by its
reply tuple and is translated back without the nat table: the destination before routing
(undoing SNAT/MASQUERADE), the source after it (undoing DNAT) — nf_nat_ipv4_fn on the reply
direction at PREROUTING/OUTPUT and POSTROUTING/INPUT.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from podnet.control.policy import POD_FW_PREFIX
from podnet.dataplane import conntrack as ctmod
from podnet.dataplane import netfilter as nf
from podnet.model.base import EMPTY, FrozenDict
from podnet.model.trace import Packet, Step, ip_text, new_packet, new_step
from podnet.trace.flight import ONE, End, Flight
from podnet.trace.policy_glue import policy_end, policy_steps
from podnet.trace.view import MEMO_LIMIT, NetView

EMPTY_CT = ctmod.ConntrackTable()


class CtState:
    """What conntrack knows of the packet in one namespace while it crosses the hooks (a
    plain slotted class, made by :func:`_ctstate`: one is made per namespace a packet
    crosses; never changed once made but for ``last``/``last_code``, the code of the last
    packet other than ``orig`` that :meth:`Hooks.run` saw, kept for the next hook)."""

    __slots__ = ("new", "direction", "entry", "orig", "state", "code", "last", "last_code")

    new: bool
    direction: str | None  # None (new), "original" or "reply"
    entry: object | None
    orig: Packet  # the headers as they entered this namespace's conntrack
    state: str  # what -m conntrack --ctstate sees
    # what a hook walk's memo key holds of the ctstate, the ct_new flag and the NAT seen, as
    # one int (an int hashes and compares at once): CTSTATES index << 3 | DNAT << 2 |
    # SNAT << 1 | new; ``code`` is that of the packet as it entered (no NAT known)
    code: int
    last: Packet | None
    last_code: int


CTSTATES = ("NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED")
_CTSTATE_BITS = {s: i << 3 for i, s in enumerate(CTSTATES)}


def _ctstate(new: bool, direction: str | None, entry, orig: Packet, state: str) -> CtState:
    """A CtState, without a Python-level ``__init__``."""
    ct = CtState()
    ct.new, ct.direction, ct.entry, ct.orig, ct.state = new, direction, entry, orig, state
    ct.code = _CTSTATE_BITS[state] | new
    ct.last = None
    return ct


def _decode(code: int) -> tuple[str, bool, bool, bool]:
    """``(ctstate, DNAT seen, SNAT seen, new)`` of a CtState code."""
    return CTSTATES[code >> 3], bool(code & 4), bool(code & 2), bool(code & 1)


NO_NETFILTER = _ctstate(True, None, None, None, "NEW")  # type: ignore[arg-type]
"""What :meth:`Hooks.ct_begin` gives in a namespace where nothing programs iptables: the hook
walks and conntrack steps of that namespace are skipped (Hooks.run, Hooks.ct_confirm)."""


def header(p: Packet) -> Packet:
    """The headers netfilter sees: the outer UDP packet of an encapsulated frame."""
    if p.encap is None:
        return p
    e = p.encap
    return new_packet(e.src, e.dst, "udp", e.sport, e.dport, 64, p.mark, None)


def with_header(p: Packet, h: Packet) -> Packet:
    """Put headers that netfilter may have changed (NAT, mark) back into the flight's packet."""
    if p.encap is None:
        return new_packet(h.src, h.dst, p.proto, h.sport, h.dport, p.ttl, h.mark, None)
    from dataclasses import replace

    e = replace(p.encap, src=h.src, dst=h.dst, sport=h.sport, dport=h.dport)
    return p.with_(encap=e, mark=h.mark)


def nat_text(before: Packet, after: Packet) -> str:
    """A NAT as a field diff: ``dst 10.96.0.20:80 -> 10.244.2.3:8080``."""
    parts = []
    # (the addresses as the ints IPv4Address keeps: its == is a Python-level call)
    if before.src._ip != after.src._ip or before.sport != after.sport:
        parts.append(
            f"src {ip_text(before.src)}:{before.sport} -> {ip_text(after.src)}:{after.sport}"
        )
    if before.dst._ip != after.dst._ip or before.dport != after.dport:
        parts.append(
            f"dst {ip_text(before.dst)}:{before.dport} -> {ip_text(after.dst)}:{after.dport}"
        )
    return ", ".join(parts)


class Hooks:
    """Runs netfilter hooks of one namespace for a flight."""

    def __init__(self, view: NetView):
        self.view = view
        self._walks = view.walks  # lives with the view: an Engine lasts one trace
        # the last encapsulated packet and its header(): the same object for the same packet
        self._last_p: Packet | None = None
        self._last_h: Packet | None = None
        self._bare = view.bare  # netns -> nothing programs iptables there (NetView.is_bare)

    def header(self, p: Packet) -> Packet:
        """:func:`header`, the same object again for the same packet: each hook and conntrack
        step of a VXLAN packet asks, and the walk memo sees an unchanged header by identity."""
        if p.encap is None:
            return p
        if self._last_p is p:
            return self._last_h
        h = header(p)
        self._last_p, self._last_h = p, h
        return h

    # ------------------------------------------------------------------ conntrack

    def ct_begin(self, fl: Flight, netns: str, hook: str) -> tuple[Flight, CtState]:
        """Look the packet up at PREROUTING or OUTPUT; translate a reply's destination back.
        In a namespace where nothing programs iptables (a Pod's), :data:`NO_NETFILTER`: no
        table hooks there and conntrack does not track there (NetView.is_bare)."""
        bare = self._bare.get(netns)
        if bare is None:
            bare = self.view.is_bare(netns)
        if bare:
            return fl, NO_NETFILTER
        table = fl.ct.get(netns)
        p = fl.packet
        # (self.header(p), its memo read in place: each hook of a VXLAN packet asks)
        h = p if p.encap is None else self._last_h if self._last_p is p else self.header(p)
        if table is None:  # the first packet to cross this namespace
            return fl, _ctstate(True, None, None, h, "NEW")
        # ctmod.lookup written out (with the entry's position, for seen_reply)
        hit = table._index.get((h.proto, h.src._ip, h.dst._ip, h.sport, h.dport))
        if hit is None:
            return fl, _ctstate(True, None, None, h, "NEW")
        at, direction = hit
        entry = table.entries[at]
        unreplied = "SEEN_REPLY" not in entry.status  # (Entry.unreplied, without the call)
        if direction == "reply":
            o = entry.orig
            if unreplied:
                fl.ct[netns] = ctmod.seen_reply(table, entry, at)
            # (addresses compared as the ints IPv4Address keeps: its == is a Python call)
            if h.dst._ip != o.src._ip or h.dport != o.sport:
                back = new_packet(h.src, o.src, h.proto, h.sport, o.sport, h.ttl, h.mark, None)
                fl.packet = with_header(fl.packet, back)
                fl.hop_steps.append(
                    Step(
                        "conntrack",
                        f"reply of {_tuple(o)}: {nat_text(h, back)} (undo SNAT)",
                        detail=FrozenDict(entry=ctmod.render_entry(entry)),
                    )
                )
            else:
                # (not memoised: the words name the connection, new for every one; a memo of
                # them would only fill with entries no other trace asks for)
                text = f"reply of {_tuple(o)}: ctstate ESTABLISHED"
                fl.hop_steps.append(new_step("conntrack", text, None, None, None, None, EMPTY))
            return fl, _ctstate(False, direction, entry, h, "ESTABLISHED")
        # A later packet of a known connection (e.g. back in over lo): the NAT binding is
        # reused, the nat table is not consulted again; it stays NEW until a reply was seen.
        state = "NEW" if unreplied else "ESTABLISHED"
        fwd = ctmod.translate_original(entry, h)
        if fwd != h:
            fl = fl.with_packet(with_header(fl.packet, fwd))
            fl.hop_steps.append(
                Step("conntrack", f"{_tuple(entry.orig)}: {nat_text(h, fwd)} (known connection)")
            )
        else:
            fl.hop_steps.append(
                Step("conntrack", f"{_tuple(entry.orig)}: known connection, ctstate {state}")
            )
        return fl, _ctstate(False, direction, entry, h, state)

    def ct_confirm(self, fl: Flight, netns: str, ct: CtState, hook: str) -> Flight:
        """Confirm a new connection's entry, or translate a reply's source back."""
        if ct is NO_NETFILTER:
            return fl
        p = fl.packet
        # (self.header(p), its memo read in place: each hook of a VXLAN packet asks)
        h = p if p.encap is None else self._last_h if self._last_p is p else self.header(p)
        if ct.new:
            # (``or`` would ask an existing table's Python-level __len__)
            table = fl.ct.get(netns)
            if table is None:
                table = EMPTY_CT
            fl.ct[netns] = ctmod.confirm(table, ct.orig, h)
            return fl
        if ct.direction == "reply":
            o = ct.entry.orig
            if h.src._ip != o.dst._ip or h.sport != o.dport:
                back = new_packet(o.dst, h.dst, h.proto, o.dport, h.dport, h.ttl, h.mark, None)
                fl.packet = with_header(fl.packet, back)
                text = f"reply of {_tuple(o)}: {nat_text(h, back)} (undo DNAT)"
                fl.hop_steps.append(new_step("conntrack", text, None, None, None, None, EMPTY))
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
    ) -> Sequence[tuple[Flight | None, End | None]]:
        """Walk ``hook`` of ``netns``; give ``(flight, None)`` per accepted branch and
        ``(None, end)`` per branch that a rule dropped or rejected. The last branch goes on
        in ``fl`` itself (the others in forks of it): ``fl`` is not to be used after."""
        if ct is NO_NETFILTER:  # no table hooks this namespace: nothing to walk, no TRACE
            return ((fl, None),)
        p = fl.packet
        # (self.header(p), its memo read in place: each hook of a VXLAN packet asks)
        h = p if p.encap is None else self._last_h if self._last_p is p else self.header(p)
        o = ct.orig
        entry = ct.entry
        if h is o and entry is None:  # as it entered, no connection: no NAT (the common case)
            cts = ct.code
        elif h is ct.last:  # the same packet again (FORWARD then POSTROUTING)
            cts = ct.last_code
        else:
            # (the addresses as the ints IPv4Address keeps: its == is a Python-level call)
            dnat = h.dst._ip != o.dst._ip or h.dport != o.dport
            snat = h.src._ip != o.src._ip or h.sport != o.sport
            if entry is not None:
                had = entry.status
                dnat = dnat or "DNAT" in had
                snat = snat or "SNAT" in had
            cts = ct.code | (4 if dnat else 0) | (2 if snat else 0)
            ct.last, ct.last_code = h, cts
        recent = fl.recent
        # (an empty FrozenDict is falsy only through a Python-level __len__)
        recent = None if recent is EMPTY else recent.get(netns)
        # Everything the walk and its steps depend on but the ports (the ruleset of a
        # namespace never changes: the netns names it); addresses as ints, which hash fast.
        key = (
            netns,
            hook,
            in_iface,
            out_iface,
            physin,
            physout,
            cts,
            recent,
            h.src._ip,  # the address as an int (IPv4Address keeps it there; int() is slower)
            h.dst._ip,
            h.proto,
            h.ttl,
            h.mark,
        )
        # The remembered walk for ``key`` whose read ports (if any) are the packet's. A walk
        # sees the ports only through reads it records (podnet.dataplane.netfilter), so one
        # that read neither (the common case, kept under ``key`` itself) gives the same
        # outcomes, the packet's own ports carried through, for any ports; one that read them
        # (kept in a dict by the ports read, see _remember) serves only the same values of
        # those it read.
        walk = self._walks.get(key)
        if type(walk) is dict:  # (None is no dict)
            by_reads, walk = walk, None
            sport, dport = h.sport, h.dport
            for read, known in by_reads.items():
                walk = known.get((sport if read & 1 else None, dport if read & 2 else None))
                if walk is not None:
                    break
        if walk is None:
            walk = self._walk(key, netns, hook, cts, h, recent)
        plain = walk[4]
        if plain is not None:  # most walks: one way through, accepted, nothing changed
            if fl.hop is not None:
                if plain[0]:
                    fl.hop_steps += plain[0]
                fl.hop_nftrace.append(
                    (
                        hook,
                        plain[1],
                        p,
                        p,
                        in_iface,
                        out_iface,
                        physin,
                        physout,
                        fl.src_mac,
                        fl.dst_mac,
                    )
                )
            return ((fl, None),)
        results, read, sport0, dport0, _ = walk
        same_ports = h.sport == sport0 and h.dport == dport0
        prob0, recent0, nat0, src_mac, dst_mac = (
            fl.prob,
            fl.recent,
            fl.nat_seen,
            fl.src_mac,
            fl.dst_mac,
        )
        # each branch changes a flight of its own; the last goes on in ``fl`` itself
        flights = [fl.fork() for _ in results[1:]] + [fl] if len(results) > 1 else (fl,)
        out = []
        for (prob, verdict, steps, changed, q, nat_seen, recent_set, oc, endings), fl in zip(
            results, flights, strict=True
        ):
            if prob is None:
                prob = prob0
            elif prob0 is not ONE:  # (a Fraction product is a dozen Python-level calls)
                prob = prob0 * prob
            if changed and not same_ports:
                q = nf.carry_ports(q, read, h.sport, h.dport)
            # unchanged headers put back give the packet itself (header() took them from it)
            after = with_header(p, q) if changed else p
            # the TRACE record's fields: an NfTrace is made only if someone reads it
            record = (
                hook,
                oc.trace,
                p,
                after,
                in_iface,
                out_iface,
                physin,
                physout,
                src_mac,
                dst_mac,
            )
            if verdict is not None:  # DROP or REJECT
                fl1 = fl.advance_prob(oc.steps, record, prob)
                # the words depend on the outcome and the packet's addresses, protocol and
                # destination port (a policy's ports): made once per destination port
                how = endings.get(h.dport)
                if how is None:
                    if not same_ports:
                        oc = replace(oc, packet=nf.carry_ports(oc.packet, read, h.sport, h.dport))
                    end = policy_end(self.view, fl1, oc, netns)  # NetworkPolicy: DENIED_*
                    if end is None:
                        end = _ending(fl1, verdict, oc, netns, hook)
                    if len(endings) >= MEMO_LIMIT:
                        endings.clear()
                    endings[h.dport] = (end.disposition, end.reason, end.extra)
                else:
                    end = End(fl1, how[0], how[1], extra=how[2])
                out.append((None, end))
                continue
            if changed:
                if recent_set:
                    fl1 = fl.advance(
                        steps,
                        record,
                        prob=prob,
                        packet=after,
                        nat_seen=nat_seen or nat0,
                        recent=_add_recent(recent0, netns, recent_set),
                    )
                else:
                    fl1 = fl.advance_packet(steps, record, prob, after, nat_seen or nat0)
            elif recent_set:
                fl1 = fl.advance(
                    steps, record, prob=prob, recent=_add_recent(recent0, netns, recent_set)
                )
            else:
                fl1 = fl.advance_prob(steps, record, prob)
            out.append((fl1, None))
        return out

    def _walk(self, key, netns, hook, cts, h, recent) -> tuple:
        """Walk the hook for real and remember what each outcome does to a flight (its steps
        with the policy and NAT steps added), under the ports the walk read."""
        v = self.view
        state, dnat, snat, new = _decode(cts)
        _, ctx = v.hook_context(
            netns,
            key[2],
            key[3],
            key[4],
            key[5],
            state,
            _STATUS[dnat, snat],
            new,
            recent if recent is not None else EMPTY,
        )
        reads = [0]
        outcomes = nf.traverse(v.ruleset(netns), hook, ctx, h, reads=reads, found=v.found(netns))
        read = reads[0]
        single = len(outcomes) == 1
        results = []
        for oc in outcomes:
            # one outcome has probability 1: no Fraction product per use
            prob = None if single else oc.probability
            q = oc.packet
            changed = q is not h and q != h  # (a walk that changed nothing gives h itself)
            verdict = _VERDICTS.get(oc.verdict)
            if verdict is not None:  # DROP or REJECT
                results.append((prob, verdict, oc.steps, changed, q, False, (), oc, {}))
                continue
            steps = oc.steps
            for s in steps:
                c = s.chain
                if c is not None and c.startswith(POD_FW_PREFIX):
                    # the words name policies and rules, never the ports: reusable for any ports
                    steps += policy_steps(v, oc)
                    break
            nat_seen = False
            if changed and (q.src, q.sport, q.dst, q.dport) != (h.src, h.sport, h.dst, h.dport):
                # a NAT read the ports it rewrote (and nat_text names only those)
                nat = Step(
                    "nat", nat_text(h, q), detail=FrozenDict(kind=oc.nat.kind if oc.nat else "")
                )
                steps += (nat,)
                nat_seen = True
            results.append((prob, None, steps, changed, q, nat_seen, oc.recent_set, oc, None))
        plain = None
        if len(results) == 1:
            prob, verdict, steps, changed, _, _, recent_set, oc, _ = results[0]
            if prob is None and verdict is None and not changed and not recent_set:
                plain = (steps, oc.trace)
        walk = (tuple(results), read, h.sport, h.dport, plain)
        _remember(self._walks, key, walk, read, h.sport, h.dport)
        return walk


# ctstatus of a hook walk by (DNAT seen, SNAT seen): four shared sets, hashed once
_STATUS = {
    (d, s): frozenset(({"DNAT"} if d else set()) | ({"SNAT"} if s else set()))
    for d in (False, True)
    for s in (False, True)
}


def _tuple(p) -> str:
    return f"{p.proto} {ip_text(p.src)}:{p.sport} -> {ip_text(p.dst)}:{p.dport}"


def _set(m: FrozenDict, key: str, value) -> FrozenDict:
    # copy the FrozenDict's own dict: dict(m) would go key by key through the Mapping API
    d = dict(getattr(m, "_data", m))
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


_VERDICTS = {"DROP": "DROPPED", "REJECT": "REJECTED"}


def _remember(memo: dict, key: tuple, walk: tuple, read: int, sport: int, dport: int) -> None:
    """Keep ``walk`` for ``key``: itself when it read no port (it holds for any ports: a walk
    that never looked at the ports took the same way whatever they were, so every walk under
    ``key`` reads none), else in ``{read: {(sport or None, dport or None): walk}}``."""
    if len(memo) >= MEMO_LIMIT and key not in memo:  # bounds memory; any walk can be redone
        memo.clear()
    if not read:
        memo[key] = walk
        return
    by_reads = memo.get(key)
    if type(by_reads) is not dict:
        by_reads = memo[key] = {}
    known = by_reads.setdefault(read, {})
    if len(known) >= MEMO_LIMIT:
        known.clear()
    known[(sport if read & 1 else None, dport if read & 2 else None)] = walk
