"""The netfilter engine: rule compilation, every match and target, and hook walking."""

from __future__ import annotations

from fractions import Fraction
from ipaddress import IPv4Address, IPv4Network

import pytest

from podnet.dataplane.netfilter import (
    HookContext,
    IpSet,
    Nat,
    trace_lines,
    traverse,
)
from podnet.dataplane.rules import RuleError, compile_rule, parse_probability, split_words
from podnet.dataplane.ruleset import Ruleset
from podnet.model.dataplane import Chain, Table
from podnet.model.trace import Packet

A = IPv4Address
SVC = "KUBE-SVC-XPGD46QRK7WJZT7O"
SEPS = ("KUBE-SEP-SXIVWICOYRO3J4NJ", "KUBE-SEP-UKSFD7AGPMPPLUHC", "KUBE-SEP-C6EBXVWJJZMIWKLZ")
EPS = ("10.180.0.1", "10.180.0.2", "10.180.0.3")


def pkt(src="10.244.1.2", dst="10.244.2.3", proto="tcp", sport=40000, dport=80, mark=0):
    return Packet(A(src), A(dst), proto, sport, dport, mark=mark)


def tables(spec: dict[str, dict[str, tuple]]) -> tuple[Table, ...]:
    """{"filter": {"INPUT": (rules, "ACCEPT"), "X": (rules,)}} -> Tables."""
    out = []
    for tname, chains in spec.items():
        out.append(
            Table(
                tname,
                tuple(
                    Chain(name, tuple(v[0]), v[1] if len(v) > 1 else None)
                    for name, v in chains.items()
                ),
            )
        )
    return tuple(out)


def verdict(rule: str, packet: Packet | None = None, ctx: HookContext | None = None) -> bool:
    """Whether ``rule`` (a match spec) matches: it is the only rule of filter INPUT, -j DROP."""
    rs = Ruleset.from_tables(tables({"filter": {"INPUT": ([f"{rule} -j DROP"], "ACCEPT")}}))
    (out,) = traverse(rs, "INPUT", ctx or HookContext(in_iface="eth0"), packet or pkt())
    return out.verdict == "DROP"


def kube_proxy_nat(extra_sep_rule: str = "") -> tuple[Table, ...]:
    """A KUBE-SERVICES -> KUBE-SVC -> 3 KUBE-SEP chain set as kube-proxy writes it."""
    sep_chains = {}
    for sep, ep in zip(SEPS, EPS, strict=True):
        sep_chains[sep] = (
            [
                f'-m comment --comment "ns1/svc1:p80" -s {ep} -j KUBE-MARK-MASQ',
                f'-m comment --comment "ns1/svc1:p80"{extra_sep_rule} -m tcp -p tcp '
                f"-j DNAT --to-destination {ep}:80",
            ],
        )
    return tables(
        {
            "nat": {
                "PREROUTING": (
                    ['-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'],
                    "ACCEPT",
                ),
                "INPUT": ([], "ACCEPT"),
                "OUTPUT": (
                    ['-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'],
                    "ACCEPT",
                ),
                "POSTROUTING": (
                    ['-m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING'],
                    "ACCEPT",
                ),
                "KUBE-SERVICES": (
                    [
                        '-m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp '
                        f"-d 172.30.0.41 --dport 80 -j {SVC}",
                        '-m comment --comment "kubernetes service nodeports; NOTE: this must be '
                        'the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
                    ],
                ),
                "KUBE-NODEPORTS": ([],),
                "KUBE-MARK-MASQ": (["-j MARK --or-mark 0x4000"],),
                "KUBE-POSTROUTING": (
                    [
                        "-m mark ! --mark 0x4000/0x4000 -j RETURN",
                        "-j MARK --xor-mark 0x4000",
                        '-m comment --comment "kubernetes service traffic requiring SNAT" '
                        "-j MASQUERADE --random-fully",
                    ],
                ),
                SVC: (
                    [
                        '-m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp '
                        "-d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ",
                        '-m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m statistic '
                        f"--mode random --probability 0.3333333333 -j {SEPS[0]}",
                        '-m comment --comment "ns1/svc1:p80 -> 10.180.0.2:80" -m statistic '
                        f"--mode random --probability 0.5000000000 -j {SEPS[1]}",
                        f'-m comment --comment "ns1/svc1:p80 -> 10.180.0.3:80" -j {SEPS[2]}',
                    ],
                ),
                **sep_chains,
            }
        }
    )


# ---------------------------------------------------------------------------------------------
# compile_rule


def test_compile_kube_proxy_service_rule():
    r = compile_rule(
        '-m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 '
        f"--dport 80 -j {SVC}"
    )
    assert r.comment == "ns1/svc1:p80 cluster IP"
    assert (r.target.kind, r.target.chain) == ("JUMP", SVC)
    assert r.key == (int(A("172.30.0.41")), "tcp", 80)
    assert compile_rule(r.text) is r  # cached


def test_split_words_quotes_and_escapes():
    assert split_words('--comment "a b" -j X') == ["--comment", "a b", "-j", "X"]
    assert split_words(r'--comment "say \"hi\"" -j X') == ["--comment", 'say "hi"', "-j", "X"]
    assert split_words("--comment 'one two'") == ["--comment", "one two"]


@pytest.mark.parametrize(
    "text, word",
    [
        ("-m tcp -p tcp --dport 80 --frobnicate 1 -j ACCEPT", "--frobnicate"),
        ("-m nosuchmodule -j ACCEPT", "nosuchmodule"),
        ("-s 10.0.0.300 -j ACCEPT", "10.0.0.300"),
        ("-p tcp --dport 99999 -j ACCEPT", "99999"),
        ("-p gre -j ACCEPT", "gre"),
        ("-m udp -p tcp --dport 53 -j ACCEPT", "-m udp"),
        ('-m comment --comment "unterminated -j ACCEPT', "quotation"),
        ("-j ACCEPT -j DROP", "more than one target"),
        ("-j DNAT", "--to-destination"),
        ("-j TCPMSS --clamp-mss-to-pmtu", "TCPMSS"),
        ("-m conntrack --ctstate BOGUS -j ACCEPT", "BOGUS"),
        ("-m statistic --mode random --probability 1.5 -j ACCEPT", "1.5"),
        ("-j ACCEPT bogus", "bogus"),
        ("! -j ACCEPT", "'!'"),
    ],
)
def test_compile_errors_name_the_token(text, word):
    with pytest.raises(RuleError) as exc:
        compile_rule(text)
    assert word in str(exc.value)
    assert text in str(exc.value)


def test_probability_is_the_intended_fraction():
    assert parse_probability("0.3333333333") == Fraction(1, 3)
    assert parse_probability("0.5000000000") == Fraction(1, 2)
    assert parse_probability("0.33333333349") == Fraction(1, 3)  # iptables-save's %.11f
    assert parse_probability("0.1428571429") == Fraction(1, 7)
    assert parse_probability("0.0002000000") == Fraction(1, 5000)
    assert parse_probability("0.7") == Fraction(7, 10)
    assert parse_probability("1") == 1


def test_mark_target_forms():
    def mark(spec, old):
        return compile_rule(f"-j MARK {spec}").target.apply_mark(old)

    assert mark("--or-mark 0x4000", 0x1) == 0x4001
    assert mark("--xor-mark 0x4000", 0x4001) == 0x1
    assert mark("--set-xmark 0x4000/0x4000", 0x1) == 0x4001
    assert mark("--set-xmark 0x0/0x4000", 0x4001) == 0x1
    assert mark("--and-mark 0xff", 0x4001) == 0x1
    assert mark("--set-mark 0x10", 0xFFFF) == 0x10
    assert mark("--set-mark 0x10/0xf0", 0xFFFF) == 0xFF1F


# ---------------------------------------------------------------------------------------------
# matches (each as the only rule of filter INPUT)


@pytest.mark.parametrize(
    "rule, packet, expected",
    [
        ("-s 10.244.1.0/24", pkt(), True),
        ("-s 10.244.1.0/255.255.255.0", pkt(), True),
        ("-s 10.244.2.0/24", pkt(), False),
        ("! -s 10.244.2.0/24", pkt(), True),
        ("-s ! 10.244.1.0/24", pkt(), False),  # old intrapositioned negation
        ("-d 10.244.2.3", pkt(), True),
        ("-d 10.244.2.3/32", pkt(dst="10.244.2.4"), False),
        ("-s 0.0.0.0/0", pkt(), True),
        ("-p tcp", pkt(), True),
        ("-p udp", pkt(), False),
        ("! -p udp", pkt(), True),
        ("-p 6", pkt(), True),
        ("-p all", pkt(proto="icmp", sport=0, dport=0), True),
        ("-p tcp -m tcp --dport 80", pkt(), True),
        ("-p tcp --dport 80", pkt(), True),  # implicit -m tcp
        ("-m tcp -p tcp ! --dport 80", pkt(), False),
        ("-p tcp -m tcp --dport 70:90", pkt(), True),
        ("-p tcp -m tcp --dport 81:", pkt(), False),
        ("-p tcp -m tcp --sport 40000", pkt(), True),
        ("-p udp -m udp --dport 53", pkt(proto="udp", dport=53), True),
        ("-p sctp -m sctp --dport 80", pkt(proto="sctp"), True),
        ("-p tcp -m multiport --dports 22,80,443", pkt(), True),
        ("-p tcp -m multiport --dports 22,8000:9000", pkt(), False),
        ("-p tcp -m multiport ! --dports 22,443", pkt(), True),
        ("-p tcp -m multiport --ports 40000", pkt(), True),
        ("-p tcp -m multiport --sports 1:1024", pkt(), False),
        ('-m comment --comment "anything at all"', pkt(), True),
        ("-m mark --mark 0x4000/0x4000", pkt(mark=0x4001), True),
        ("-m mark --mark 0x4000/0x4000", pkt(mark=0x1), False),
        ("-m mark ! --mark 0x4000/0x4000", pkt(mark=0x1), True),
        ("-m mark --mark 0x1", pkt(mark=0x4001), False),
        ("-m nfacct --nfacct-name ct_state_invalid_dropped_pkts", pkt(), True),
        ("-m limit --limit 5/min --limit-burst 10", pkt(), True),
        ("-m pkttype --pkt-type unicast", pkt(), True),
        ("-m pkttype --pkt-type broadcast", pkt(dst="255.255.255.255"), True),
        ("-m pkttype --pkt-type multicast", pkt(dst="224.0.0.251"), True),
        ("-f", pkt(), False),
        ("! -f", pkt(), True),
    ],
)
def test_matches(rule, packet, expected):
    assert verdict(rule, packet) is expected


@pytest.mark.parametrize(
    "rule, in_iface, expected",
    [
        ("-i eth0", "eth0", True),
        ("-i eth0", "eth1", False),
        ("-i veth+", "veth1a2b3c4d", True),
        ("-i veth+", "cni0", False),
        ("! -i veth+", "cni0", True),
        ("-i +", "lo", True),
        ("! -i cni0", "cni0", False),
        ("-i eth0", None, False),  # a hook without an input device
        ("! -i eth0", None, True),
    ],
)
def test_in_interface(rule, in_iface, expected):
    assert verdict(rule, ctx=HookContext(in_iface=in_iface)) is expected


def test_out_interface_wildcard():
    ctx = HookContext(in_iface="cni0", out_iface="flannel.1")
    assert verdict("-o flannel+", ctx=ctx)
    assert not verdict("-o cni0", ctx=ctx)
    assert verdict("! -o cni0", ctx=ctx)


@pytest.mark.parametrize(
    "rule, ctstate, ctstatus, expected",
    [
        ("-m conntrack --ctstate NEW", "NEW", frozenset(), True),
        ("-m conntrack --ctstate RELATED,ESTABLISHED", "NEW", frozenset(), False),
        ("-m conntrack --ctstate RELATED,ESTABLISHED", "ESTABLISHED", frozenset(), True),
        ("-m conntrack --ctstate INVALID", "INVALID", frozenset(), True),
        ("-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT", "NEW", frozenset({"DNAT"}), False),
        ("-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT", "NEW", frozenset(), True),
        ("-m conntrack --ctstate SNAT", "ESTABLISHED", frozenset({"SNAT"}), True),
        ("-m conntrack --ctstatus ASSURED", "ESTABLISHED", frozenset({"ASSURED"}), True),
        ("-m state --state ESTABLISHED", "ESTABLISHED", frozenset(), True),
        ("-m state --state NEW", "ESTABLISHED", frozenset(), False),
    ],
)
def test_conntrack_state(rule, ctstate, ctstatus, expected):
    ctx = HookContext(in_iface="eth0", ctstate=ctstate, ctstatus=ctstatus, ct_new=ctstate == "NEW")
    assert verdict(rule, ctx=ctx) is expected


def test_addrtype_local():
    ctx = HookContext(
        in_iface="eth0",
        local_addrs=frozenset({A("192.168.0.11")}),
        broadcast_addrs=frozenset({A("10.244.1.255")}),
    )
    assert verdict("-m addrtype --dst-type LOCAL", pkt(dst="192.168.0.11"), ctx)
    assert verdict("-m addrtype --dst-type LOCAL", pkt(dst="127.0.0.53"), ctx)
    assert not verdict("-m addrtype --dst-type LOCAL", pkt(dst="192.168.0.12"), ctx)
    assert verdict("-m addrtype ! --dst-type LOCAL", pkt(dst="192.168.0.12"), ctx)
    assert verdict("-m addrtype --src-type LOCAL", pkt(src="192.168.0.11"), ctx)
    assert verdict("-m addrtype --dst-type BROADCAST", pkt(dst="10.244.1.255"), ctx)
    assert verdict("-m addrtype --dst-type UNICAST", pkt(dst="8.8.8.8"), ctx)
    assert verdict("-m addrtype --dst-type LOCAL --limit-iface-in", pkt(dst="192.168.0.11"), ctx)
    custom = HookContext(addrtype=lambda ip: "BLACKHOLE")
    assert verdict("-m addrtype --dst-type BLACKHOLE", ctx=custom)


def test_physdev():
    bridged = HookContext(in_iface="cni0", physin="veth1", physout="veth2")
    routed = HookContext(in_iface="cni0", physin="veth1")
    assert verdict("-m physdev --physdev-is-bridged", ctx=bridged)
    assert not verdict("-m physdev --physdev-is-bridged", ctx=routed)
    assert verdict("-m physdev ! --physdev-is-bridged", ctx=routed)
    assert verdict("-m physdev --physdev-in veth+", ctx=routed)
    assert verdict("-m physdev --physdev-is-in --physdev-out veth2", ctx=bridged)
    assert not verdict("-m physdev --physdev-out veth2", ctx=routed)
    assert not verdict("-m physdev --physdev-is-out", ctx=HookContext(in_iface="eth0"))


def test_recent_rcheck_and_set():
    client = A("10.244.1.2")
    fresh = HookContext(in_iface="eth0", recent={"KUBE-SEP-X": frozenset({client})})
    rule = "-m recent --name KUBE-SEP-X --rcheck --seconds 10800 --reap"
    assert verdict(rule, ctx=fresh)
    assert not verdict(rule, ctx=HookContext(in_iface="eth0"))
    assert not verdict(rule, pkt(src="10.244.1.3"), fresh)
    assert verdict(
        "-m recent --name KUBE-SEP-X --rcheck --mask 255.255.255.0",
        pkt(src="10.244.1.3"),
        fresh,
    )
    rs = Ruleset.from_tables(
        tables(
            {
                "filter": {
                    "INPUT": (["-m recent --name KUBE-SEP-X --set -m tcp -p tcp -j ACCEPT"], "DROP")
                }
            }
        )
    )
    (out,) = traverse(rs, "INPUT", HookContext(in_iface="eth0"), pkt())
    assert out.verdict == "ACCEPT"
    assert out.recent_set == (("KUBE-SEP-X", client),)


def test_ipset_mapping_and_callable():
    sets = {
        "KUBE-CLUSTER-IP": IpSet(
            "KUBE-CLUSTER-IP", "hash:ip,port", frozenset({(A("10.96.0.10"), "udp", 53)})
        ),
        "NETS": IpSet("NETS", "hash:net", frozenset({IPv4Network("10.244.0.0/16")})),
    }
    ctx = HookContext(in_iface="eth0", ipsets=sets)
    dns = pkt(dst="10.96.0.10", proto="udp", dport=53)
    assert verdict("-m set --match-set KUBE-CLUSTER-IP dst,dst", dns, ctx)
    assert not verdict("-m set --match-set KUBE-CLUSTER-IP dst,dst", dns.with_(dport=54), ctx)
    assert not verdict("-m set --match-set KUBE-CLUSTER-IP dst", dns, ctx)
    assert verdict("-m set --match-set NETS src", pkt(), ctx)
    assert verdict("-m set ! --match-set NETS dst", pkt(dst="8.8.8.8"), ctx)
    seen = []

    def lookup(name, flags, packet):
        seen.append((name, flags, packet.dst))
        return True

    assert verdict("-m set --match-set ANY src,dst", pkt(), HookContext(ipsets=lookup))
    assert seen == [("ANY", ("src", "dst"), A("10.244.2.3"))]
    with pytest.raises(RuleError, match="MISSING"):
        verdict("-m set --match-set MISSING src", pkt(), ctx)


def test_statistic_nth_is_a_share():
    rs = Ruleset.from_tables(
        tables({"filter": {"INPUT": (["-m statistic --mode nth --every 4 --packet 0 -j DROP"],)}})
    )
    outs = traverse(rs, "INPUT", HookContext(), pkt())
    assert [(o.verdict, o.probability) for o in outs] == [
        ("DROP", Fraction(1, 4)),
        ("ACCEPT", Fraction(3, 4)),
    ]


# ---------------------------------------------------------------------------------------------
# walking


def test_jump_return_goto_and_policy():
    rs = Ruleset.from_tables(
        tables(
            {
                "filter": {
                    "INPUT": (["-j A", "-p tcp -j B", "-g C", "-j ACCEPT"], "DROP"),
                    "A": (["-p udp -j ACCEPT"],),  # falls off the end: implicit return
                    "B": (["-j RETURN", "-j DROP"],),
                    "C": (["-p udp -j ACCEPT"],),  # reached by goto: return goes to the policy
                }
            }
        )
    )
    (out,) = traverse(rs, "INPUT", HookContext(in_iface="eth0"), pkt(), record_returns=True)
    assert out.verdict == "DROP"
    assert out.trace == (
        ("filter", "INPUT", "rule", 1),
        ("filter", "A", "return", 2),
        ("filter", "INPUT", "rule", 2),
        ("filter", "B", "return", 1),  # an unconditional RETURN reads as the tail
        ("filter", "INPUT", "rule", 3),
        ("filter", "C", "return", 2),
        ("filter", "INPUT", "policy", 5),
    )
    assert [s.text for s in out.steps] == [
        "filter INPUT rule 1 -> A",
        "filter A return",
        "filter INPUT rule 2 -> B",
        "filter B rule 1 RETURN",
        "filter INPUT rule 3 goto C",
        "filter C return",
        "filter INPUT policy DROP",
    ]
    assert out.steps[0].rule == "-A INPUT -j A" and out.steps[0].rulenum == 1
    assert out.steps[-1].rulenum is None
    assert trace_lines(out)[-1] == "TRACE: filter:INPUT:policy:5"


def test_return_in_builtin_chain_applies_policy():
    rs = Ruleset.from_tables(tables({"filter": {"FORWARD": (["-j RETURN", "-j ACCEPT"], "DROP")}}))
    (out,) = traverse(rs, "FORWARD", HookContext(in_iface="cni0", out_iface="eth0"), pkt())
    assert out.verdict == "DROP"
    assert out.steps[-1].text == "filter FORWARD policy DROP"


def test_accept_in_user_chain_ends_only_its_table():
    spec = {
        "mangle": {"FORWARD": (["-j M"], "ACCEPT"), "M": (["-j ACCEPT", "-j DROP"],)},
        "filter": {"FORWARD": (["-j DROP"], "ACCEPT")},
    }
    rs = Ruleset.from_tables(tables(spec))
    (out,) = traverse(rs, "FORWARD", HookContext(in_iface="cni0", out_iface="eth0"), pkt())
    assert out.verdict == "DROP"  # mangle's ACCEPT did not skip filter
    assert [s.table for s in out.steps] == ["mangle", "mangle", "filter"]
    (only,) = traverse(
        rs, "FORWARD", HookContext(in_iface="cni0", out_iface="eth0"), pkt(), tables=["mangle"]
    )
    assert only.verdict == "ACCEPT"


def test_reject_ends_the_hook_with_reject_with():
    spec = {
        "filter": {
            "OUTPUT": (['-m conntrack --ctstate NEW -m comment --comment "x" -j KUBE-SERVICES'],),
            "KUBE-SERVICES": (
                [
                    '-m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp -p tcp '
                    "-d 172.30.0.41 --dport 80 -j REJECT --reject-with icmp-port-unreachable"
                ],
            ),
        },
        "nat": {"OUTPUT": (["-j DNAT --to-destination 10.0.0.9"], "ACCEPT")},
    }
    rs = Ruleset.from_tables(tables(spec))
    (out,) = traverse(rs, "OUTPUT", HookContext(out_iface=None), pkt(dst="172.30.0.41"))
    # nat OUTPUT runs before filter OUTPUT, so the DNAT happened and filter saw the new address.
    assert out.verdict == "ACCEPT" and out.packet.dst == A("10.0.0.9")
    rs2 = Ruleset.from_tables(tables({"filter": spec["filter"]}))
    (out2,) = traverse(rs2, "OUTPUT", HookContext(), pkt(dst="172.30.0.41"))
    assert (out2.verdict, out2.reject_with) == ("REJECT", "icmp-port-unreachable")
    assert out2.steps[-1].rulenum == 1 and out2.steps[-1].chain == "KUBE-SERVICES"


def test_kube_proxy_service_branches_exactly():
    rs = Ruleset.from_tables(kube_proxy_nat())
    outs = traverse(rs, "PREROUTING", HookContext(in_iface="cni0"), pkt(dst="172.30.0.41"))
    assert [o.probability for o in outs] == [Fraction(1, 3)] * 3
    assert sum(o.probability for o in outs) == 1
    assert [str(o.packet.dst) for o in outs] == list(EPS)
    assert all(o.verdict == "ACCEPT" and o.packet.dport == 80 for o in outs)
    first = outs[0]
    assert first.nat == Nat("DNAT", (A("172.30.0.41"), 80), (A("10.180.0.1"), 80))
    assert first.ctstatus == frozenset({"DNAT"})
    assert [(s.type, s.chain, s.rulenum) for s in first.steps] == [
        ("netfilter", "PREROUTING", 1),
        ("netfilter", "KUBE-SERVICES", 1),
        ("netfilter", SVC, 2),
        ("nat", SEPS[0], 2),
    ]
    assert first.steps[2].text == f"nat {SVC} rule 2 -> {SEPS[0]} (p=1/3)"
    assert first.steps[2].detail["probability"] == "1/3"
    assert first.steps[3].rule.startswith(f"-A {SEPS[0]} -m comment")
    assert first.steps[3].detail["after"] == "10.180.0.1:80"
    assert outs[2].trace[2] == ("nat", SVC, "rule", 4)


def test_masquerade_for_off_cluster_source_and_hairpin():
    rs = Ruleset.from_tables(kube_proxy_nat())
    # An off-cluster client: KUBE-SVC marks it for masquerade.
    outs = traverse(
        rs, "PREROUTING", HookContext(in_iface="eth0"), pkt("192.168.0.99", "172.30.0.41")
    )
    assert all(o.packet.mark == 0x4000 for o in outs)
    # A pod client: only the hairpin (endpoint to itself) is marked.
    outs = traverse(rs, "PREROUTING", HookContext(in_iface="cni0"), pkt(EPS[1], "172.30.0.41"))
    assert [o.packet.mark for o in outs] == [0, 0x4000, 0]
    ctx = HookContext(in_iface="cni0", out_iface="cni0", masq_addr=A("10.180.0.254"))
    (post,) = traverse(rs, "POSTROUTING", ctx, outs[1].packet)
    assert post.packet.src == A("10.180.0.254") and post.packet.sport == 40000
    assert post.packet.mark == 0  # KUBE-POSTROUTING clears the bit with --xor-mark
    assert post.nat == Nat("MASQUERADE", (A(EPS[1]), 40000), (A("10.180.0.254"), 40000))
    assert [s.rulenum for s in post.steps if s.chain == "KUBE-POSTROUTING"] == [2, 3]
    (unmarked,) = traverse(rs, "POSTROUTING", ctx, outs[0].packet)
    assert unmarked.nat is None and unmarked.packet.src == A(EPS[1])
    assert ("nat", "KUBE-POSTROUTING", "rule", 1) in unmarked.trace
    # MASQUERADE with no address on the way out drops the packet.
    (dropped,) = traverse(rs, "POSTROUTING", HookContext(out_iface="cni0"), outs[1].packet)
    assert dropped.verdict == "DROP"


def test_snat_and_dnat_ports():
    spec = {
        "nat": {
            "PREROUTING": (
                [
                    "-p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.5",
                    "-p tcp -m tcp --dport 81 -j DNAT --to-destination 10.0.0.5:8081",
                ],
                "ACCEPT",
            ),
            "POSTROUTING": (["-s 10.244.0.0/16 -j SNAT --to-source 192.168.0.11:5000"], "ACCEPT"),
        }
    }
    rs = Ruleset.from_tables(tables(spec))
    ctx = HookContext(in_iface="eth0")
    (a,) = traverse(rs, "PREROUTING", ctx, pkt(dport=80))
    (b,) = traverse(rs, "PREROUTING", ctx, pkt(dport=81))
    assert (a.packet.dst, a.packet.dport) == (A("10.0.0.5"), 80)
    assert (b.packet.dst, b.packet.dport) == (A("10.0.0.5"), 8081)
    (c,) = traverse(rs, "POSTROUTING", HookContext(out_iface="eth0"), pkt())
    assert (c.packet.src, c.packet.sport, c.nat.kind) == (A("192.168.0.11"), 5000, "SNAT")


def test_nat_skipped_unless_new_connection():
    rs = Ruleset.from_tables(kube_proxy_nat())
    ctx = HookContext(in_iface="cni0", ctstate="ESTABLISHED", ct_new=False)
    (out,) = traverse(rs, "PREROUTING", ctx, pkt(dst="172.30.0.41"))
    assert out.packet.dst == A("172.30.0.41") and out.nat is None and out.steps == ()


def test_notrack_skips_nat_and_marks_untracked():
    spec = {
        "raw": {"PREROUTING": (["-p udp -j CT --notrack"], "ACCEPT")},
        "nat": {"PREROUTING": (["-j DNAT --to-destination 10.0.0.5"], "ACCEPT")},
        "filter": {"INPUT": (["-m conntrack --ctstate UNTRACKED -j DROP"], "ACCEPT")},
    }
    rs = Ruleset.from_tables(tables(spec))
    (out,) = traverse(rs, "PREROUTING", HookContext(in_iface="eth0"), pkt(proto="udp"))
    assert out.untracked and out.nat is None
    (tcp,) = traverse(rs, "PREROUTING", HookContext(in_iface="eth0"), pkt())
    assert tcp.nat is not None and not tcp.untracked


def test_mark_and_log_continue_and_no_target_counts():
    spec = {
        "mangle": {
            "PREROUTING": (
                [
                    "-j MARK --set-xmark 0x10/0xff",
                    '-j LOG --log-prefix "seen: "',
                    '-m comment --comment "other traffic to ns/lb will be dropped by KUBE-PROXY-FIREWALL"',
                    "-m mark --mark 0x10/0xff -j DROP",
                ],
                "ACCEPT",
            )
        }
    }
    rs = Ruleset.from_tables(tables(spec))
    (out,) = traverse(rs, "PREROUTING", HookContext(in_iface="eth0"), pkt())
    assert out.verdict == "DROP" and out.packet.mark == 0x10
    assert [s.rulenum for s in out.steps] == [1, 2, 3, 4]
    assert "(mark 0x0 -> 0x10)" in out.steps[0].text


def test_policy_steps_only_when_they_explain():
    rs = Ruleset.from_tables(
        tables({"raw": {"PREROUTING": ([], "ACCEPT")}, "filter": {"INPUT": ([], "DROP")}})
    )
    (pre,) = traverse(rs, "PREROUTING", HookContext(in_iface="eth0"), pkt())
    assert pre.steps == () and pre.trace == (("raw", "PREROUTING", "policy", 1),)
    (inp,) = traverse(rs, "INPUT", HookContext(in_iface="eth0"), pkt())
    assert inp.verdict == "DROP" and [s.text for s in inp.steps] == ["filter INPUT policy DROP"]


def test_no_tables_accepts():
    (out,) = traverse(Ruleset.from_tables(()), "FORWARD", HookContext(), pkt())
    assert out.verdict == "ACCEPT" and out.probability == 1 and out.packet == pkt()


# ---------------------------------------------------------------------------------------------
# ruleset checks


def test_jump_cycle_is_refused():
    spec = {
        "filter": {
            "INPUT": (["-j KUBE-A"], "ACCEPT"),
            "KUBE-A": (["-p tcp -j KUBE-B"],),
            "KUBE-B": (["-p udp -j KUBE-C", "-g KUBE-A"],),
            "KUBE-C": ([],),
        }
    }
    with pytest.raises(RuleError) as exc:
        Ruleset.from_tables(tables(spec))
    assert "jump loop KUBE-A -> KUBE-B -> KUBE-A" in str(exc.value)


def test_ruleset_collects_every_problem():
    spec = {
        "filter": {
            "INPUT": (["-j KUBE-SERVISES", "-j DNAT --to-destination 10.0.0.1", "-j INPUT"],),
            "FORWARD": (["--bogus"],),
            "KUBE-SERVICES": ([],),
        }
    }
    with pytest.raises(RuleError) as exc:
        Ruleset.from_tables(tables(spec))
    text = str(exc.value)
    assert "filter INPUT rule 1: jump to chain 'KUBE-SERVISES' that does not exist" in text
    assert "did you mean 'KUBE-SERVICES'?" in text
    assert "filter INPUT rule 2: target DNAT is only valid in the nat table" in text
    assert "cannot jump to built-in chain 'INPUT'" in text
    assert "filter FORWARD rule 1: unknown option '--bogus'" in text


def test_unknown_hook():
    with pytest.raises(ValueError, match="PREROUTNG"):
        traverse(Ruleset.from_tables(()), "PREROUTNG", HookContext(), pkt())
