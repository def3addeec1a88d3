"""Connection tracking: confirm, lookup by either tuple, reply de-NAT, conntrack -L lines."""

from __future__ import annotations

from ipaddress import IPv4Address

from podnet.dataplane.conntrack import (
    ConntrackTable,
    Entry,
    Tuple5,
    confirm,
    lookup,
    render_entry,
    render_table,
    seen_reply,
    translate_original,
    translate_reply,
)
from podnet.model.trace import Packet

A = IPv4Address


def pkt(src, dst, sport, dport, proto="tcp"):
    return Packet(A(src), A(dst), proto, sport, dport)


CLIENT = pkt("10.244.1.2", "10.96.0.20", 40000, 80)
DNATED = CLIENT.with_(dst=A("10.244.2.3"), dport=8080)


def test_confirm_records_orig_and_inverse_of_final():
    table = confirm(ConntrackTable(), CLIENT, DNATED)
    (e,) = table.entries
    assert e.orig == Tuple5("tcp", A("10.244.1.2"), A("10.96.0.20"), 40000, 80)
    assert e.reply == Tuple5("tcp", A("10.244.2.3"), A("10.244.1.2"), 8080, 40000)
    assert e.status == frozenset({"DNAT"}) and e.state == "SYN_SENT" and e.unreplied
    assert confirm(table, CLIENT, DNATED) is table  # already tracked
    assert len(ConntrackTable()) == 0 and len(table) == 1


def test_lookup_both_directions_and_miss():
    table = confirm(ConntrackTable(), CLIENT, DNATED)
    entry, direction = lookup(table, CLIENT)
    assert direction == "original"
    reply = pkt("10.244.2.3", "10.244.1.2", 8080, 40000)
    assert lookup(table, reply) == (entry, "reply")
    assert lookup(table, pkt("10.244.2.3", "10.244.1.2", 8080, 40001)) is None
    assert lookup(table, reply.with_(proto="udp")) is None


def test_reply_translation_round_trip_with_dnat_and_masquerade():
    # Off-cluster client -> NodePort, DNAT to an endpoint and MASQUERADE to the node's address.
    first = pkt("203.0.113.2", "192.168.0.11", 51000, 30080)
    final = first.with_(src=A("10.244.1.0"), dst=A("10.244.2.3"), dport=8080)
    table = confirm(ConntrackTable(), first, final)
    (e,) = table.entries
    assert e.status == frozenset({"DNAT", "SNAT"})
    reply = pkt("10.244.2.3", "10.244.1.0", 8080, 51000)
    entry, direction = lookup(table, reply)
    assert direction == "reply"
    back = translate_reply(entry, reply)
    assert (back.src, back.sport, back.dst, back.dport) == (
        A("192.168.0.11"),
        30080,
        A("203.0.113.2"),
        51000,
    )
    assert lookup(table, back) is None  # the de-NATed reply is the inverse of orig, not a tuple
    again = translate_original(entry, first.with_(ttl=63))
    assert (again.src, again.dst, again.dport, again.ttl) == (
        A("10.244.1.0"),
        A("10.244.2.3"),
        8080,
        63,
    )


def test_render_entry_matches_conntrack_layout():
    table = seen_reply(
        confirm(ConntrackTable(), CLIENT, DNATED),
        confirm(ConntrackTable(), CLIENT, DNATED).entries[0],
    )
    (e,) = table.entries
    assert render_entry(e) == (
        "tcp      6 86400 ESTABLISHED src=10.244.1.2 dst=10.96.0.20 sport=40000 dport=80 "
        "src=10.244.2.3 dst=10.244.1.2 sport=8080 dport=40000 [ASSURED] mark=0 use=1"
    )
    # The reference's sample line, rebuilt field by field.
    sample = Entry(
        Tuple5("tcp", A("192.168.2.100"), A("123.59.27.117"), 34846, 993),
        Tuple5("tcp", A("123.59.27.117"), A("192.168.2.100"), 993, 34846),
        "ESTABLISHED",
        frozenset({"SEEN_REPLY", "ASSURED"}),
        timeout=431982,
    )
    assert render_entry(sample) == (
        "tcp      6 431982 ESTABLISHED src=192.168.2.100 dst=123.59.27.117 sport=34846 "
        "dport=993 src=123.59.27.117 dst=192.168.2.100 sport=993 dport=34846 [ASSURED] mark=0 use=1"
    )


def test_render_udp_unreplied():
    dns = pkt("10.244.1.2", "10.96.0.10", 41000, 53, proto="udp")
    table = confirm(ConntrackTable(), dns, dns.with_(dst=A("10.244.2.4")))
    assert render_table(table.entries) == (
        "udp      17 30 src=10.244.1.2 dst=10.96.0.10 sport=41000 dport=53 [UNREPLIED] "
        "src=10.244.2.4 dst=10.244.1.2 sport=53 dport=41000 mark=0 use=1\n"
    )
    replied = seen_reply(table, table.entries[0]).entries[0]
    assert "[UNREPLIED]" not in render_entry(replied) and "[ASSURED]" not in render_entry(replied)


def test_tables_are_immutable_values():
    empty = ConntrackTable()
    one = confirm(empty, CLIENT, DNATED)
    assert empty.entries == () and one.entries != ()
    assert one == confirm(ConntrackTable(), CLIENT, DNATED)
    marked = confirm(ConntrackTable(), CLIENT.with_(mark=0x4000), DNATED.with_(mark=0x4000))
    assert marked.entries[0].mark == 0x4000
