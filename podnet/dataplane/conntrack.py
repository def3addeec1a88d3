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
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address

from podnet.model.trace import Packet

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
        return Tuple5(packet.proto, packet.src, packet.dst, packet.sport, packet.dport)

    def inverse(self) -> Tuple5:
        """The tuple of a packet going the other way."""
        return Tuple5(self.proto, self.dst, self.src, self.dport, self.sport)

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
    _index: Mapping[Tuple5, tuple[int, str]] = field(
        init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        index: dict[Tuple5, tuple[int, str]] = {}
        for i, e in enumerate(self.entries):
            # The first entry holding a tuple wins, as in the kernel's hash (it refuses clashes).
            index.setdefault(e.orig, (i, "original"))
            index.setdefault(e.reply, (i, "reply"))
        object.__setattr__(self, "_index", index)

    def __len__(self) -> int:
        return len(self.entries)


def lookup(table: ConntrackTable, packet: Packet) -> tuple[Entry, str] | None:
    """The connection ``packet`` belongs to and its direction (``original`` or ``reply``)."""
    hit = table._index.get(Tuple5.of(packet))
    if hit is None:
        return None
    return table.entries[hit[0]], hit[1]


def confirm(
    table: ConntrackTable, orig_packet: Packet, final_packet: Packet, *, mark: int | None = None
) -> ConntrackTable:
    """``table`` with the connection ``orig_packet`` starts, which left as ``final_packet``
    (after all NAT). A connection already tracked leaves the table as it is."""
    orig = Tuple5.of(orig_packet)
    if orig in table._index:
        return table
    reply = Tuple5.of(final_packet).inverse()
    status = set()
    if (final_packet.dst, final_packet.dport) != (orig_packet.dst, orig_packet.dport):
        status.add("DNAT")
    if (final_packet.src, final_packet.sport) != (orig_packet.src, orig_packet.sport):
        status.add("SNAT")
    entry = Entry(
        orig,
        reply,
        STATE_NEW.get(orig.proto),
        frozenset(status),
        final_packet.mark if mark is None else mark,
        TIMEOUT_NEW.get(orig.proto, 30),
    )
    # the index grows by this entry's two tuples: no need to index every entry again
    index = dict(table._index)
    n = len(table.entries)
    index.setdefault(orig, (n, "original"))
    index.setdefault(reply, (n, "reply"))
    return _indexed(table.entries + (entry,), index)


def _indexed(entries: tuple[Entry, ...], index: dict[Tuple5, tuple[int, str]]) -> ConntrackTable:
    """A table whose index the caller built, equal to what ``__post_init__`` would build."""
    table = object.__new__(ConntrackTable)
    object.__setattr__(table, "entries", entries)
    object.__setattr__(table, "_index", index)
    return table


def seen_reply(table: ConntrackTable, entry: Entry) -> ConntrackTable:
    """``table`` after a reply of ``entry`` passed: SEEN_REPLY; a TCP connection counts as
    established and ASSURED (the handshake completes), UDP only as replied."""
    status = entry.status | {"SEEN_REPLY"}
    if entry.orig.proto in ("tcp", "sctp"):
        status |= {"ASSURED"}
    new = replace(
        entry,
        state=STATE_REPLIED.get(entry.orig.proto, entry.state),
        status=frozenset(status),
        timeout=TIMEOUT_REPLIED.get(entry.orig.proto, 30),
    )
    entries = tuple(new if e == entry else e for e in table.entries)
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
