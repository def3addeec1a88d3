"""A rule compiled from the shape of another (podnet.dataplane.rules: the same text but for a
leading host address, comments and the user chain jumped to) equals the rule compiled from its
own text: on every rule of the bundled and generated clusters, and on made-up variants."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import podnet
from podnet.control.iptables import node_tables
from podnet.dataplane import rules as rmod
from podnet.dataplane.rulevalues import RuleError

ROOT = Path(__file__).resolve().parent.parent


def _all_texts(cluster) -> list[str]:
    return [
        text
        for n in cluster.nodes
        for t in node_tables(cluster, n.name)
        for c in t.chains
        for text in c.rules
    ]


def _assert_same(text: str) -> None:
    fast = rmod.compile_rule.__wrapped__(text)  # through the shapes, without the text cache
    full = rmod._compile(text)
    assert fast == full, text
    assert [c.__self__ for c in fast.checks] == list(full.matches)


@pytest.mark.parametrize("name", ["demo.yaml", "services.yaml"])
def test_bundled_rules_compile_the_same_through_shapes(name):
    cluster = podnet.api.load(str(ROOT / "topologies" / name)).cluster
    for text in _all_texts(cluster):
        _assert_same(text)


def test_generated_rules_compile_the_same_through_shapes():
    from test_scale_index import _network

    texts = _all_texts(_network(4, 60, 300, 8, 6, 4).cluster)
    assert len(texts) > 5000
    shaped = 0
    for text in texts:
        shaped += rmod._shape(text) is not None
        _assert_same(text)
    assert shaped > 1000  # the per-Pod rules took the shape path


octet = st.integers(0, 255)
host = st.tuples(octet, octet, octet, octet).map(lambda t: ".".join(map(str, t)))
comment = st.text(
    st.characters(min_codepoint=32, max_codepoint=126, exclude_characters="\"\\'"), max_size=30
)
chain = st.from_regex(r"KUBE-[A-Z0-9]{1,16}", fullmatch=True)
TEMPLATES = (
    "-s {h} -j {j}",
    "-m tcp -p tcp -j DNAT --to-destination {h}:8080",
    '-s {h}/{n} -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j RETURN',
    '! -s {h}/{n} -d {h}/24 -m comment --comment "{c}" -j RETURN',
    '-d {h}/{n} -m comment --comment "pod\'s {c}" -m addrtype --src-type LOCAL -j ACCEPT',
    "-s {h}/0 -d {h}/32 -p udp -m udp --dport 53 -j {j}",
    '-d {h}/32 -m comment --comment "{c}" -j {j}',
    '-s {h}/32 -m physdev --physdev-is-bridged -m comment --comment "{c}" -j {j}',
    '-d {h}/32 -m comment --comment "{c}" -m addrtype --src-type LOCAL -j ACCEPT',
    '-m comment --comment "{c}" -m mark ! --mark 0x10000/0x10000 -j REJECT --reject-with icmp-port-unreachable',
    '-d {h}/32 -p tcp -m comment --comment "{c}" -m tcp --dport 80 -j {j}',
    "-s {h}/32 -d 10.0.0.1/32 -m comment --comment {j} -j {j}",
    '-m comment --comment "{c}" -j DNAT --to-destination {h}:8080',
    # kube-proxy's: addresses after other options, one exact --dport
    '-m comment --comment "{c} cluster IP" -m tcp -p tcp -d {h} --dport {p} -j {j}',
    '-m comment --comment "{c} cluster IP" -m udp -p udp -d {h}/{n} --dport {p} ! -s 10.244.0.0/16 -j {j}',
    "-m comment --comment {j} -s {h} -j KUBE-MARK-MASQ",
    '-m comment --comment "{c}" -m sctp -p sctp -j DNAT --to-destination {h}:{p}',
    "-m tcp -p tcp ! --dport {p} -d {h} -j {j}",
    "-p tcp -m tcp --dport {p}:9000 -d {h} -j {j}",
    "-p udp -m udp --sport {p} -m udp --dport {p} -j {j}",
    "-m tcp -p tcp --dport {p} -m addrtype --dst-type LOCAL -j {j}",
    "-p tcp -d {h} --dport {p} -j {j}",
)


port = st.integers(0, 70000)  # (above 65535: refused both ways)


@settings(max_examples=600, deadline=None)
@given(
    st.sampled_from(TEMPLATES),
    host,
    host,
    comment,
    comment,
    chain,
    chain,
    st.integers(0, 32),
    port,
    port,
)
def test_variants_compile_the_same_through_shapes(template, h1, h2, c1, c2, j1, j2, n, p1, p2):
    a = template.format(h=h1, c=c1, j=j1, n=n, p=p1)
    b = template.format(h=h2, c=c2, j=j2, n=n, p=p2)
    for text in (a, b):  # the second takes the first's shape when they share one
        try:
            full = rmod._compile(text)
        except RuleError:
            with pytest.raises(RuleError):
                rmod.compile_rule.__wrapped__(text)
            continue
        fast = rmod.compile_rule.__wrapped__(text)
        assert fast == full, text
