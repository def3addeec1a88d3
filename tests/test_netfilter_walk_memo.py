"""What the hook walk keeps between walks (per chain and per ruleset) never changes an outcome:
a walk over warm memos equals one over a freshly compiled ruleset, field by field."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from podnet.dataplane.netfilter import HookContext, traverse
from podnet.dataplane.rules import RuleError
from podnet.dataplane.ruleset import CompiledChain, Ruleset
from podnet.model.dataplane import Chain, Table
from podnet.model.trace import Packet

A = IPv4Address


def pkt(dst="10.96.0.10", dport=80, mark=0, sport=40000):
    return Packet(A("10.244.1.2"), A(dst), "tcp", sport, dport, mark=mark)


def _tables() -> tuple[Table, ...]:
    return (
        Table(
            "mangle",
            (
                Chain(
                    "PREROUTING",
                    (
                        "-j MARKS",
                        "-m mark --mark 0x4000/0x4000 -j ACCEPT",
                    ),
                    "ACCEPT",
                ),
                Chain("MARKS", ("-m mark --mark 0x1/0x1 -j MARK --set-xmark 0x4000/0x4000",)),
            ),
        ),
        Table(
            "nat",
            (
                Chain("PREROUTING", ("-j KUBE-SERVICES",), "ACCEPT"),
                Chain(
                    "KUBE-SERVICES",
                    (
                        "-d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-A",
                        "-d 10.96.0.11/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-B",
                    ),
                ),
                Chain(
                    "KUBE-SVC-A",
                    (
                        "-m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-1",
                        "-j KUBE-SEP-2",
                    ),
                ),
                Chain("KUBE-SVC-B", ("-j RETURN",)),
                Chain("KUBE-SEP-1", ("-p tcp -m tcp -j DNAT --to-destination 10.244.2.3:8080",)),
                Chain("KUBE-SEP-2", ("-p tcp -m tcp -j DNAT --to-destination 10.244.3.4:8080",)),
            ),
        ),
        Table(
            "filter",
            (
                Chain("FORWARD", ("-d 10.96.0.11/32 -j REJECT",), "DROP"),
                Chain("INPUT", (), "DROP"),
            ),
        ),
    )


def _fields(outcomes):
    return [
        (
            o.probability,
            o.verdict,
            o.packet,
            o.nat,
            o.recent_set,
            o.steps,
            o.reject_with,
            o.trace,
            o.ctstatus,
            o.untracked,
        )
        for o in outcomes
    ]


CASES = [
    ("PREROUTING", pkt()),
    ("PREROUTING", pkt(mark=1)),
    ("PREROUTING", pkt(mark=3)),
    ("PREROUTING", pkt(dst="10.96.0.11")),
    ("PREROUTING", pkt(dst="10.96.0.12")),
    ("FORWARD", pkt(dst="10.96.0.11")),
    ("FORWARD", pkt()),
    ("INPUT", pkt()),
]


def test_warm_walks_equal_fresh_ones():
    warm = Ruleset.from_tables(_tables(), index_threshold=0)
    found: dict = {}
    ctx = HookContext(in_iface="eth0", out_iface="eth1")
    for _ in range(3):  # the first round fills the memos, later ones read them
        for hook, p in CASES:
            # a ruleset compiled afresh (no cache shared with ``warm``): nothing remembered
            fresh = Ruleset.from_tables(_tables(), index_threshold=None)
            got = traverse(warm, hook, ctx, p, found=found)
            assert _fields(got) == _fields(traverse(fresh, hook, ctx, p)), (hook, p)
            assert _fields(traverse(warm, hook, ctx, p)) == _fields(got)


def test_outcome_probabilities_sum_to_one_and_steps_name_the_marks():
    rs = Ruleset.from_tables(_tables())
    ctx = HookContext(in_iface="eth0")
    outs = traverse(rs, "PREROUTING", ctx, pkt(mark=1))
    assert sum(o.probability for o in outs) == 1
    assert [o.packet.dst for o in outs] == [A("10.244.2.3"), A("10.244.3.4")]
    marks = [s.text for s in outs[0].steps if "--set-xmark" in s.text]
    assert marks == ["mangle MARKS rule 1 MARK --set-xmark 0x4000/0x4000 (mark 0x1 -> 0x4001)"]
    # the same rule from another mark: its own words, not the remembered step's
    outs = traverse(rs, "PREROUTING", ctx, pkt(mark=3))
    marks = [s.text for s in outs[0].steps if "--set-xmark" in s.text]
    assert marks == ["mangle MARKS rule 1 MARK --set-xmark 0x4000/0x4000 (mark 0x3 -> 0x4003)"]


def test_an_unchanged_packet_leaves_as_itself():
    rs = Ruleset.from_tables(_tables())
    p = pkt(dst="10.96.0.12")
    (out,) = traverse(rs, "PREROUTING", HookContext(in_iface="eth0"), p)
    assert out.packet is p
    (out,) = traverse(rs, "PREROUTING", HookContext(in_iface="eth0"), pkt(mark=1, dst="1.1.1.1"))
    assert out.packet.mark == 0x4001 and out.packet.dst == A("1.1.1.1")


def test_a_missing_jump_target_fails_every_time():
    # Ruleset.from_tables refuses a jump to a missing chain; a hand-built ruleset may hold one
    cc = CompiledChain(
        "filter",
        "INPUT",
        Ruleset.from_tables(
            (Table("filter", (Chain("INPUT", ("-j X",), "ACCEPT"), Chain("X", ()))),)
        )
        .chain("filter", "INPUT")
        .rules,
        "ACCEPT",
        True,
        labels=("rule",),
    )
    rs = Ruleset({("filter", "INPUT"): cc}, ("filter",))
    found: dict = {}
    for _ in range(2):
        with pytest.raises(RuleError, match="jump to chain 'X'"):
            traverse(rs, "INPUT", HookContext(), pkt(), found=found)
