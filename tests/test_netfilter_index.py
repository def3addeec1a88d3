"""The chain index never changes a walk: indexed and rule-by-rule walks give identical outcomes."""

from __future__ import annotations

from ipaddress import IPv4Address

from hypothesis import given, settings
from hypothesis import strategies as st

from podnet.dataplane.netfilter import HookContext, traverse
from podnet.dataplane.ruleset import Ruleset
from podnet.model.dataplane import Chain, Table
from podnet.model.trace import Packet

IPS = ("10.96.0.10", "10.96.0.11", "10.96.0.12", "192.168.0.11")
PORTS = (53, 80, 443)
PROTOS = ("tcp", "udp")
TARGETS = ("ACCEPT", "DROP", "RETURN", "KUBE-SUB", "MARK --or-mark 0x4000", None)


@st.composite
def rule(draw) -> str:
    """A rule shaped like kube-proxy's (indexable) or something else (never indexable)."""
    target = draw(st.sampled_from(TARGETS))
    tail = f" -j {target}" if target else ""
    kind = draw(st.sampled_from(("service", "service", "nodeport", "other", "stat", "mark")))
    proto = draw(st.sampled_from(PROTOS))
    port = draw(st.sampled_from(PORTS))
    ip = draw(st.sampled_from(IPS))
    if kind == "service":
        extra = draw(st.sampled_from(("", " ! -s 10.244.0.0/16", " -m mark --mark 0x4000/0x4000")))
        return (
            f'-m comment --comment "svc {ip}" -m {proto} -p {proto} -d {ip} --dport {port}'
            f"{extra}{tail}"
        )
    if kind == "nodeport":
        return f"-m {proto} -p {proto} --dport {port}{tail}"
    if kind == "stat":
        return f"-d {ip} -m statistic --mode random --probability 0.5000000000{tail}"
    if kind == "mark":
        return f"-m mark ! --mark 0x4000/0x4000{tail}"
    return draw(
        st.sampled_from(
            (
                f"-d {ip}{tail}",
                f"-p {proto} -m {proto} ! --dport {port}{tail}",
                f"-m addrtype --dst-type LOCAL{tail}",
                f"-p {proto} -m multiport --dports {port},9999{tail}",
                f"-d {ip}/30 -p {proto} -m {proto} --dport {port}{tail}",
            )
        )
    )


def _tables(main: list[str], sub: list[str]) -> tuple[Table, ...]:
    return (
        Table(
            "filter",
            (
                Chain("INPUT", ("-j KUBE-MAIN",), "ACCEPT"),
                Chain("KUBE-MAIN", tuple(main)),
                Chain("KUBE-SUB", tuple(r.replace("KUBE-SUB", "RETURN") for r in sub)),
            ),
        ),
    )


def _key(outcomes):
    return [
        (o.probability, o.verdict, o.packet, o.steps, o.trace, o.nat, o.recent_set)
        for o in outcomes
    ]


@settings(max_examples=300, deadline=None)
@given(
    main=st.lists(rule(), max_size=40),
    sub=st.lists(rule(), max_size=8),
    dst=st.sampled_from(IPS + ("10.244.2.3",)),
    proto=st.sampled_from(PROTOS),
    dport=st.sampled_from(PORTS + (8080,)),
    src=st.sampled_from(("10.244.1.2", "203.0.113.7")),
    mark=st.sampled_from((0, 0x4000)),
)
def test_indexed_walk_equals_linear_walk(main, sub, dst, proto, dport, src, mark):
    tables = _tables(main, sub)
    indexed = Ruleset.from_tables(tables, index_threshold=0)
    linear = Ruleset.from_tables(tables, index_threshold=None)
    assert indexed.chain("filter", "KUBE-MAIN").index is not None
    assert linear.chain("filter", "KUBE-MAIN").index is None
    packet = Packet(IPv4Address(src), IPv4Address(dst), proto, 40000, dport, mark=mark)
    ctx = HookContext(in_iface="eth0", local_addrs=frozenset({IPv4Address("192.168.0.11")}))
    a = traverse(indexed, "INPUT", ctx, packet, record_returns=True)
    b = traverse(linear, "INPUT", ctx, packet, record_returns=True)
    assert _key(a) == _key(b)
    assert sum(o.probability for o in a) == 1


def test_index_skips_to_the_candidate_and_keeps_rule_numbers():
    rules = [
        f"-m tcp -p tcp -d 10.96.{i // 250}.{i % 250} --dport 80 -j ACCEPT" for i in range(5000)
    ]
    rules.append("-m addrtype --dst-type LOCAL -j DROP")
    tables = (Table("filter", (Chain("INPUT", ("-j BIG",), "ACCEPT"), Chain("BIG", tuple(rules)))),)
    rs = Ruleset.from_tables(tables)
    big = rs.chain("filter", "BIG")
    assert big.index is not None and big.always == (5000,)
    ctx = HookContext(in_iface="eth0", local_addrs=frozenset({IPv4Address("192.168.0.11")}))
    hit = Packet(IPv4Address("10.96.3.7"), IPv4Address("10.96.3.7"), "tcp", 1, 80)
    (out,) = traverse(rs, "INPUT", ctx, hit)
    assert out.steps[-1].rulenum == 3 * 250 + 7 + 1
    local = hit.with_(dst=IPv4Address("192.168.0.11"))
    (out,) = traverse(rs, "INPUT", ctx, local)
    assert out.verdict == "DROP" and out.steps[-1].rulenum == 5001
