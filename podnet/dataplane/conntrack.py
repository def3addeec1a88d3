"""Connection tracking: an immutable table of connections with their original and reply tuples.

The first packet of a connection is confirmed after its last hook with the tuple it had before
any NAT (original) and the inverse of the tuple it left with (reply), as
net/netfilter/nf_conntrack_core.c ``nf_conntrack_confirm`` and nf_nat_core.c do. A later packet
is found by either tuple; a reply is translated back by inverting the original tuple.

>>> from ipaddress import IPv4Address as A
>>> syn = Packet(A("10.244.1.2"), A("10.96.0.20"), "tcp", 40000, 80)
>>> table = confirm(ConntrackTable(), syn, syn.with_(dst=A("10.244.2.3"), dport=8080))
>>> reply = Packet(A("10.244.2.3"), A("10.244.1.2"), "tcp", 8080, 40000)
>>> entry, direction = lookup(table, reply)
>>> direction, translate_reply(entry, reply).flow()
('reply', '10.96.0.20:80 -> 10.244.1.2:40000 tcp')
>>> print(render_entry(seen_reply(table, entry).entries[0]))
tcp      6 86400 ESTABLISHED src=10.244.1.2 dst=10.96.0.20 sport=40000 dport=80 src=10.244.2.3 dst=10.244.1.2 sport=8080 dport=40000 [ASSURED] mark=0 use=1
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from podnet.model.trace import Packet, fast_constructor

PROTO_NUMBERS = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1}

# Timeouts in seconds (net/netfilter/nf_conntrack_proto_{tcp,udp,icmp,sctp}.c defaults), except
# TCP ESTABLISHED, which kube-proxy sets to 24h (pkg/proxy/apis/config/v1alpha1/defaults.go
# Conntrack.TCPEstablishedTimeout) through nf_conntrack_tcp_timeout_established.
TIMEOUT_NEW = {
    "tcp": 120,
    "udp": 30,
    "icmp": 30,
    "sctp": 3,
}  # SYN_SENT, unreplied, ICMP, COOKIE_WAIT
TIMEOUT_REPLIED = {"tcp": 86400, "udp": 30, "icmp": 30, "sctp": 210}
STATE_NEW = {"tcp": "SYN_SENT", "sctp": "COOKIE_WAIT"}
STATE_REPLIED = {"tcp": "ESTABLISHED", "sctp": "ESTABLISHED"}


@dataclass(frozen=True, slots=True, order=True)
class Tuple5:
    """One direction of a connection: protocol, addresses and ports (ICMP: ports are 0)."""

    proto: str
    src: IPv4Address
    dst: IPv4Address
    sport: int
    dport: int

    @staticmethod
    def of(packet: Packet) -> Tuple5:
        """The tuple of a packet."""
        return _new_tuple5(packet.proto, packet.src, packet.dst, packet.sport, packet.dport)

    def inverse(self) -> Tuple5:
        """The tuple of a packet going the other way."""
        return _new_tuple5(self.proto, self.dst, self.src, self.dport, self.sport)

    def text(self) -> str:
        """``src=.. dst=.. sport=.. dport=..`` as conntrack -L prints a tuple."""
        head = f"src={self.src} dst={self.dst}"
        if self.proto == "icmp":
            return head  # podnet does not model ICMP type/code/id
        return f"{head} sport={self.sport} dport={self.dport}"


@dataclass(frozen=True, slots=True)
class Entry:
    """A connection. ``state`` is the protocol state (TCP ``SYN_SENT``, ``ESTABLISHED``...;
    None for UDP/ICMP); ``status`` holds ``DNAT``, ``SNAT``, ``SEEN_REPLY``, ``ASSURED``
    (no ``SEEN_REPLY`` is what conntrack prints as ``[UNREPLIED]``)."""

    orig: Tuple5
    reply: Tuple5
    state: str | None = None
    status: frozenset[str] = frozenset()
    mark: int = 0
    timeout: int = 120

    @property
    def unreplied(self) -> bool:
        return "SEEN_REPLY" not in self.status


@dataclass(frozen=True, slots=True)
class ConntrackTable:
    """The connections of one namespace, in the order they were confirmed."""

    entries: tuple[Entry, ...] = ()
    # (proto, src, dst, sport, dport) with the addresses as ints (_key, _packet_key) ->
    # (position, direction): such keys hash fast, where a Tuple5 hashes its two IPv4Address
    # through hex()
    _index: Mapping[tuple, tuple[int, str]] = field(
        init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        index: dict[tuple, tuple[int, str]] = {}
        for i, e in enumerate(self.entries):
            # The first entry holding a tuple wins, as in the kernel's hash (it refuses clashes).
            index.setdefault(_key(e.orig), (i, "original"))
            index.setdefault(_key(e.reply), (i, "reply"))
        object.__setattr__(self, "_index", index)

    def __len__(self) -> int:
        return len(self.entries)


def lookup(table: ConntrackTable, packet: Packet) -> tuple[Entry, str] | None:
    """The connection ``packet`` belongs to and its direction (``original`` or ``reply``)."""
    hit = table._index.get(_packet_key(packet))
    if hit is None:
        return None
    return table.entries[hit[0]], hit[1]


def confirm(
    table: ConntrackTable, orig_packet: Packet, final_packet: Packet, *, mark: int | None = None
) -> ConntrackTable:
    """``table`` with the connection ``orig_packet`` starts, which left as ``final_packet``
    (after all NAT). A connection already tracked leaves the table as it is."""
    # Keys, tuples, the entry and the table written out (made as fast_constructor makes
    # objects, without a call each): a trace confirms in every namespace it crosses.
    o = orig_packet
    proto = o.proto
    okey = (proto, o.src._ip, o.dst._ip, o.sport, o.dport)
    if okey in table._index:
        return table
    f = final_packet
    orig = _Tuple5Builder()
    orig.proto, orig.src, orig.dst, orig.sport, orig.dport = proto, o.src, o.dst, o.sport, o.dport
    orig.__class__ = Tuple5
    reply = _Tuple5Builder()
    reply.proto, reply.src, reply.dst = f.proto, f.dst, f.src
    reply.sport, reply.dport = f.dport, f.sport
    reply.__class__ = Tuple5
    if f is orig_packet:  # left as it came: no NAT (and no addresses to compare)
        status = _NO_STATUS
    else:
        # (addresses compared as the ints IPv4Address keeps: its == is slow)
        status = _STATUS[
            f.dst._ip != o.dst._ip or f.dport != o.dport,
            f.src._ip != o.src._ip or f.sport != o.sport,
        ]
    entry = _EntryBuilder()
    entry.orig, entry.reply, entry.state = orig, reply, STATE_NEW.get(proto)
    entry.status, entry.mark = status, f.mark if mark is None else mark
    entry.timeout = TIMEOUT_NEW.get(proto, 30)
    entry.__class__ = Entry
    entries = table.entries
    rkey = (f.proto, f.dst._ip, f.src._ip, f.dport, f.sport)  # _key(reply)
    if not entries:  # a namespace's first connection: a new index of its two tuples
        index = {okey: (0, "original")}
        if rkey not in index:
            index[rkey] = (0, "reply")
        entries = (entry,)
    else:
        # the index grows by this entry's two tuples: no need to index every entry again
        index = dict(table._index)
        n = len(entries)
        index.setdefault(okey, (n, "original"))
        index.setdefault(rkey, (n, "reply"))
        entries += (entry,)
    new = _TableBuilder()
    new.entries, new._index = entries, index
    new.__class__ = ConntrackTable
    return new


# every traced connection makes a few tuples and entries: without the frozen __init__
_new_tuple5 = fast_constructor(Tuple5)
_new_entry = fast_constructor(Entry)
# classes of the same slots as Tuple5 and Entry, whose instances take plain stores and then
# become a Tuple5 or an Entry (see podnet.model.trace.fast_constructor)
_Tuple5Builder = type("_Tuple5Builder", (), {"__slots__": Tuple5.__slots__})
_EntryBuilder = type("_EntryBuilder", (), {"__slots__": Entry.__slots__})
_TableBuilder = type("_ConntrackTableBuilder", (), {"__slots__": ConntrackTable.__slots__})
_NO_STATUS: frozenset[str] = frozenset()
# what a reply adds to the status, by whether the protocol counts as established then
_REPLIED = {True: frozenset({"SEEN_REPLY", "ASSURED"}), False: frozenset({"SEEN_REPLY"})}
# status of a new entry by (DNAT, SNAT): shared sets
_STATUS = {
    (d, s): frozenset(({"DNAT"} if d else set()) | ({"SNAT"} if s else set()))
    for d in (False, True)
    for s in (False, True)
}


def _key(t: Tuple5) -> tuple:
    """The index key of a tuple: the same as :func:`_packet_key` of its packet."""
    return (t.proto, t.src._ip, t.dst._ip, t.sport, t.dport)


def _packet_key(p: Packet) -> tuple:
    # IPv4Address keeps its value in ``_ip``: int() would go through a Python-level __int__
    return (p.proto, p.src._ip, p.dst._ip, p.sport, p.dport)


def _indexed(entries: tuple[Entry, ...], index: dict[tuple, tuple[int, str]]) -> ConntrackTable:
    """A table whose index the caller built, equal to what ``__post_init__`` would build."""
    # stored into a plain object of the same slots, which then becomes a ConntrackTable (as
    # podnet.model.trace.fast_constructor does): a frozen dataclass refuses plain stores
    table = _TableBuilder()
    table.entries = entries
    table._index = index
    table.__class__ = ConntrackTable
    return table


def seen_reply(table: ConntrackTable, entry: Entry, at: int | None = None) -> ConntrackTable:
    """``table`` after a reply of ``entry`` passed: SEEN_REPLY; a TCP connection counts as
    established and ASSURED (the handshake completes), UDP only as replied. ``at``: the
    entry's position, where the caller knows it (its tuples are in the table once, as confirm
    keeps them)."""
    proto = entry.orig.proto
    status = entry.status | _REPLIED[proto in ("tcp", "sctp")]
    new = _new_entry(
        entry.orig,
        entry.reply,
        STATE_REPLIED.get(proto, entry.state),
        status,
        entry.mark,
        TIMEOUT_REPLIED.get(proto, 30),
    )
    entries: tuple[Entry, ...] = table.entries
    if at is not None and entries[at] is entry:
        entries = entries[:at] + (new,) + entries[at + 1 :]
    elif len(entries) == 1 and entries[0] is entry:
        entries = (new,)
    else:
        # every entry equal to ``entry`` (one, in a table confirm built): the tuples' keys
        # compared first, as entries compare their addresses field by field
        k = _key(entry.orig)
        entries = tuple(
            new if e is entry or (_key(e.orig) == k and e == entry) else e for e in table.entries
        )
    # the tuples do not change, so neither does the index
    return _indexed(entries, table._index)


def translate_reply(entry: Entry, packet: Packet) -> Packet:
    """De-NAT a reply-direction packet: it leaves as the inverse of the original tuple."""
    back = entry.orig.inverse()
    return packet.with_(src=back.src, dst=back.dst, sport=back.sport, dport=back.dport)


def translate_original(entry: Entry, packet: Packet) -> Packet:
    """NAT a later original-direction packet the way the first one was translated."""
    fwd = entry.reply.inverse()
    return packet.with_(src=fwd.src, dst=fwd.dst, sport=fwd.sport, dport=fwd.dport)


def render_entry(entry: Entry) -> str:
    """A line of ``conntrack -L`` (libnetfilter_conntrack src/conntrack/snprintf_default.c:
    ``"%-8s %u "`` protocol name and number, timeout, TCP state, original tuple,
    ``[UNREPLIED]``, reply tuple, ``[ASSURED]``, ``mark=``, ``use=``)."""
    proto = entry.orig.proto
    parts = [f"{proto:<8} {PROTO_NUMBERS.get(proto, 0)}", str(entry.timeout)]
    if entry.state is not None:
        parts.append(entry.state)
    parts.append(entry.orig.text())
    if entry.unreplied:
        parts.append("[UNREPLIED]")
    parts.append(entry.reply.text())
    if "ASSURED" in entry.status:
        parts.append("[ASSURED]")
    parts += [f"mark={entry.mark}", "use=1"]
    return " ".join(parts)


def render_table(entries: Iterable[Entry]) -> str:
    """``conntrack -L`` output (one line per entry, newline-terminated)."""
    return "".join(render_entry(e) + "\n" for e in entries)
