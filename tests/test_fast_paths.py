"""The engine's fast ways of making its records give exactly what the plain ways give: the
constructors that fill slots directly, conntrack tables built with their index, address texts
and chain-name hashes."""

import base64
import dataclasses
import hashlib
from fractions import Fraction
from ipaddress import IPv4Address, IPv4Network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podnet.control.kubeproxy import Ep
from podnet.control.naming import hash16
from podnet.dataplane import conntrack
from podnet.dataplane.matches import AddrMatch
from podnet.dataplane.netfilter import Outcome
from podnet.dataplane.rules import compile_rule
from podnet.dataplane.rulevalues import RuleError, _dotted_net, _parse_net, _parse_network
from podnet.model import hostnet
from podnet.model.dataplane import FdbEntry, Link
from podnet.model.trace import (
    Encap,
    Hop,
    Leg,
    NfTrace,
    Packet,
    Path,
    Step,
    fast_constructor,
    ip_text,
)

A, B = IPv4Address("10.244.1.2"), IPv4Address("10.96.0.10")
PACKET = Packet(A, B, "tcp", 40000, 80, 63, 0x4000, None)
STEP = Step("route", "10.96.0.10 via 10.244.1.1 dev eth0")
HOP = Hop("node-1", "pod-a", "eth0", "out", (STEP,), PACKET, "aa:bb:cc:dd:ee:01", None)
LEG = Leg("DELIVERED", (HOP,), "delivered", "default/b", PACKET)
ENTRY = conntrack.Entry(
    conntrack.Tuple5("tcp", A, B, 40000, 80),
    conntrack.Tuple5("tcp", B, A, 80, 40000),
    "SYN_SENT",
    frozenset({"DNAT"}),
    0,
    120,
)
# one record of every class the engine makes through fast_constructor, made the plain way
SAMPLES = [
    Encap(A, B, 41000, 8472, 1, "vxlan"),
    PACKET,
    STEP,
    NfTrace("OUTPUT", (("filter", "OUTPUT", "policy", 1),), PACKET, PACKET, None, "eth0"),
    HOP,
    LEG,
    Path(Fraction(1, 3), LEG, None),
    Outcome(Fraction(1), "ACCEPT", PACKET, None, (), (STEP,), None, (), frozenset(), False),
    ENTRY.orig,
    ENTRY,
    Ep("10.244.1.2", 8080, True, True, False, "node-1", "10.244.1.2:8080", "ns/web:http", "tcp"),
    compile_rule('-d 10.244.1.2/32 -p tcp -m comment --comment "web" -m tcp --dport 80 -j ACCEPT'),
    AddrMatch("dst", int(A), 0xFFFFFFFF, True),
    Link(
        "veth1a2b3c4d", "veth", 5, "0a:58:0a:f4:01:02", 1450, (), "cni0", ("pod:a/b", "eth0"), True
    ),
    FdbEntry("0a:58:0a:f4:01:02", "veth1a2b3c4d", "cni0", None, False, True, None),
]


@pytest.mark.parametrize("record", SAMPLES, ids=lambda r: type(r).__name__)
def test_fast_constructor_makes_what_the_class_makes(record):
    cls = type(record)
    values = [getattr(record, f.name) for f in dataclasses.fields(cls)]
    made = fast_constructor(cls)(*values)
    assert type(made) is cls
    assert made == record and hash(made) == hash(record) and repr(made) == repr(record)
    # still frozen: the object is the class's in every respect
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.__setattr__(dataclasses.fields(cls)[0].name, None)
    assert dataclasses.replace(made) == record


def test_endpoint_made_fast_keeps_its_chain_name():
    from podnet.control.kubeproxy import _new_ep, endpoint_chain_name

    ep = _new_ep("10.180.0.1", 80, True, True, False, None, "10.180.0.1:80", "ns1/svc1:p80", "tcp")
    assert ep.chain == endpoint_chain_name("ns1/svc1:p80", "tcp", "10.180.0.1:80")
    assert ep.chain == "KUBE-SEP-SXIVWICOYRO3J4NJ"  # kube-proxy's proxier_test.go expectation


def test_fast_constructor_refuses_a_class_it_cannot_fill():
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        x: int

    with pytest.raises(TypeError):
        fast_constructor(NoSlots)


def test_conntrack_tables_built_with_their_index_equal_the_plain_ones():
    table = conntrack.confirm(conntrack.ConntrackTable(), PACKET, PACKET)
    table = conntrack.confirm(table, Packet(A, B, "udp", 41000, 53), Packet(A, B, "udp", 41000, 53))
    plain = conntrack.ConntrackTable(table.entries)
    assert type(table) is conntrack.ConntrackTable
    assert table == plain and table._index == plain._index
    udp = table.entries[1]
    assert (udp.orig, udp.reply) == (
        conntrack.Tuple5("udp", A, B, 41000, 53),
        conntrack.Tuple5("udp", B, A, 53, 41000),
    )
    assert conntrack.lookup(table, Packet(B, A, "udp", 53, 41000)) == (udp, "reply")


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_ip_text_is_str(n):
    a = IPv4Address(n)
    assert ip_text(a) == str(a)
    assert ip_text(a) == str(a)  # again, from the memo


@given(st.text(max_size=80))
def test_hash16_is_base32_of_sha256(text):
    digest = hashlib.sha256(text.encode()).digest()
    assert hash16(text) == base64.b32encode(digest).decode()[:16]


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_host_network_is_the_constructed_one(n):
    """A /32 made from an address is the one the stdlib constructs: equal both ways, same
    hash, text, hosts and attributes; in sets and dicts one key."""
    ip = IPv4Address(n)
    fast, plain = hostnet.host_network(ip), IPv4Network((n, 32))
    assert type(fast) is IPv4Network and vars(fast).keys() == vars(plain).keys()
    assert fast == plain and plain == fast and hash(fast) == hash(plain)
    assert (str(fast), repr(fast), fast.prefixlen, fast.hosts()) == (
        str(plain),
        repr(plain),
        plain.prefixlen,
        plain.hosts(),
    )
    assert (fast.network_address, fast.broadcast_address, fast.netmask) == (
        plain.network_address,
        plain.broadcast_address,
        plain.netmask,
    )
    assert len({fast, plain}) == 1 and ip in fast and fast.overlaps(plain)


def test_host_network_fast_way_taken_here():
    """On this interpreter the two agree, so the fast way is the one in use (a Python whose
    ipaddress differs would get the constructor instead)."""
    assert hostnet._agree() and hostnet.host_network is hostnet._made


def test_host_network_doctest():
    import doctest

    result = doctest.testmod(hostnet)
    assert result.attempted > 0 and result.failed == 0


_OCTETS = st.one_of(st.integers(0, 300).map(str), st.sampled_from(["00", "010", "01", "0255", "٣"]))


@given(
    st.lists(_OCTETS, min_size=3, max_size=5),
    st.one_of(st.none(), st.integers(0, 40).map(str), st.sampled_from(["08", "032", "٨", ""])),
)
def test_dotted_addresses_parse_as_ipaddress_parses_them(octets, plen):
    """The dotted form's fast parse gives what the general parse (ipaddress) gives, or leaves
    the text to it; the rule compiler's parse of any such text agrees with ipaddress's."""
    tok = ".".join(octets) + ("" if plen is None else f"/{plen}")
    try:
        net = _parse_network(tok, f"-d {tok}")
        want = (int(net.network_address), int(net.netmask), net.prefixlen)
    except RuleError:
        want = None
    fast = _dotted_net(tok)
    assert fast is None or fast == want
    plain = len(octets) == 4 and all(o.isascii() and o.isdigit() for o in octets)
    plain = plain and all(int(o) <= 255 and (o == "0" or o[0] != "0") for o in octets)
    plain = plain and (plen is None or (plen.isascii() and plen.isdigit() and len(plen) <= 2))
    if plain and want is not None:
        assert fast == want  # the fast way is taken for the plain form
    if want is None:
        with pytest.raises(RuleError):
            _parse_net(tok, f"-d {tok}")
    else:
        assert _parse_net(tok, f"-d {tok}") == want
