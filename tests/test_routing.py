"""Tests of podnet.dataplane.routing: kernel route lookup order and iproute2 texts."""

from __future__ import annotations

from ipaddress import IPv4Address as A
from ipaddress import IPv4Interface as I
from ipaddress import IPv4Network as N

from hypothesis import given
from hypothesis import strategies as st

from podnet.dataplane.build import kernel_routes
from podnet.dataplane.routing import PeerRouteIndex, RouteTable, route_get_text, show_routes
from podnet.model.dataplane import Link, Netns, PeerEntries, Route


def test_longest_prefix_match():
    t = RouteTable.from_routes(
        [
            Route(N("0.0.0.0/0"), "eth0", gateway=A("192.168.0.1")),
            Route(N("10.244.0.0/16"), "eth0", gateway=A("10.244.1.1")),
            Route(N("10.244.1.0/24"), "cni0"),
        ]
    )
    assert t.lookup(A("10.244.1.9")).dev == "cni0"
    assert t.lookup(A("10.244.7.9")).gateway == A("10.244.1.1")
    assert t.lookup(A("1.1.1.1")).gateway == A("192.168.0.1")


def test_no_route():
    t = RouteTable.from_routes([Route(N("10.0.0.0/8"), "eth0")])
    assert t.lookup(A("11.0.0.1")) is None
    assert RouteTable.from_routes([]).lookup(A("1.2.3.4")) is None


def test_lowest_metric_wins_among_equal_prefixes():
    t = RouteTable.from_routes(
        [
            Route(N("10.0.0.0/8"), "eth0", metric=200),
            Route(N("10.0.0.0/8"), "eth1", metric=100),
            Route(N("10.0.0.0/8"), "eth2", metric=300),
        ]
    )
    assert t.lookup(A("10.1.2.3")).dev == "eth1"


def test_local_table_wins_over_a_longer_main_route():
    t = RouteTable.from_routes(
        [
            Route(N("10.244.1.1/32"), "eth9"),  # even a /32 in main loses
            *kernel_routes("cni0", I("10.244.1.1/24")),
        ]
    )
    r = t.lookup(A("10.244.1.1"))
    assert (r.type, r.table, r.dev) == ("local", "local", "cni0")
    assert t.lookup(A("10.244.1.255")).type == "broadcast"
    assert t.lookup(A("10.244.1.0")).type == "unicast"  # the lowest address is unicast (5.14+)


def test_kernel_routes_for_32_and_loopback():
    assert [r.text() for r in kernel_routes("flannel.1", I("10.244.1.0/32"))] == [
        "local 10.244.1.0 dev flannel.1 table local proto kernel scope host src 10.244.1.0"
    ]
    assert [r.text() for r in kernel_routes("lo", I("127.0.0.1/8"), loopback=True)] == [
        "local 127.0.0.1 dev lo table local proto kernel scope host src 127.0.0.1",
        "local 127.0.0.0/8 dev lo table local proto kernel scope host src 127.0.0.1",
        "broadcast 127.255.255.255 dev lo table local proto kernel scope link src 127.0.0.1",
    ]


def test_shared_peer_routes_skip_the_own_node():
    peers = PeerEntries(
        owners=("n1", "n2"),
        routes=(
            (Route(N("10.244.1.0/24"), "flannel.1", gateway=A("10.244.1.0"), onlink=True),),
            (Route(N("10.244.2.0/24"), "flannel.1", gateway=A("10.244.2.0"), onlink=True),),
        ),
        neighbors=((), ()),
        fdb=((), ()),
    )
    idx = PeerRouteIndex(peers)
    own = [Route(N("10.244.1.0/24"), "cni0", proto="kernel", scope="link")]
    t1 = RouteTable.from_routes(own, idx, "n1")
    assert t1.lookup(A("10.244.1.5")).dev == "cni0"
    assert t1.lookup(A("10.244.2.5")).gateway == A("10.244.2.0")
    t2 = RouteTable.from_routes([], idx, "n2")
    assert t2.lookup(A("10.244.2.5")) is None
    assert t2.lookup(A("10.244.1.5")).gateway == A("10.244.1.0")
    ns = Netns("node:n1", "node", "n1", (), routes=tuple(own), peers=peers)
    assert show_routes(ns) == (
        "10.244.1.0/24 dev cni0 proto kernel scope link",
        "10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink",
    )
    assert RouteTable.for_netns(ns).lookup(A("10.244.2.5")).dev == "flannel.1"


def _node1() -> tuple[Netns, RouteTable]:
    links = (
        Link("lo", "loopback", 1, "00:00:00:00:00:00", addresses=(I("127.0.0.1/8"),)),
        Link("eth0", "ether", 2, "02:00:00:00:00:01", addresses=(I("192.168.0.11/24"),)),
        Link("flannel.1", "vxlan", 3, "02:00:00:00:00:02", addresses=(I("10.244.1.0/32"),)),
        Link("cni0", "bridge", 4, "02:00:00:00:00:03", addresses=(I("10.244.1.1/24"),)),
    )
    routes = [r for lk in links for a in lk.addresses for r in kernel_routes(lk.name, a)]
    routes.append(Route(N("10.244.2.0/24"), "flannel.1", gateway=A("10.244.2.0"), onlink=True))
    ns = Netns("node:node-1", "node", "node-1", links, routes=tuple(routes))
    return ns, RouteTable.for_netns(ns)


def test_route_get_output_route():
    ns, t = _node1()
    assert route_get_text(ns, t, A("10.244.2.5")) == (
        "10.244.2.5 via 10.244.2.0 dev flannel.1 src 10.244.1.0 uid 0 \n    cache \n"
    )
    assert route_get_text(ns, t, A("10.244.1.7")) == (
        "10.244.1.7 dev cni0 src 10.244.1.1 uid 0 \n    cache \n"
    )
    assert route_get_text(ns, t, A("8.8.8.8")) is None


def test_route_get_input_and_local():
    ns, t = _node1()
    assert route_get_text(ns, t, A("10.244.2.5"), from_=A("10.244.1.2"), iif="cni0") == (
        "10.244.2.5 from 10.244.1.2 via 10.244.2.0 dev flannel.1 \n    cache iif cni0 \n"
    )
    assert route_get_text(ns, t, A("10.244.1.1")) == (
        "local 10.244.1.1 dev lo table local src 10.244.1.1 uid 0 \n    cache <local> \n"
    )
    assert route_get_text(ns, t, A("10.244.1.255")) == (
        "broadcast 10.244.1.255 dev cni0 table local src 10.244.1.1 uid 0 \n"
        "    cache <local,brd> \n"
    )


@given(
    st.lists(
        st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 32), st.integers(0, 3)),
        max_size=25,
    ),
    st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=20),
)
def test_lookup_equals_brute_force(specs, dsts):
    routes = [
        Route(N((addr, plen), strict=False), f"dev{i}", metric=metric)
        for i, (addr, plen, metric) in enumerate(specs)
    ]
    t = RouteTable.from_routes(routes)
    for d in map(A, dsts):
        matching = [r for r in routes if d in r.dst]
        if not matching:
            assert t.lookup(d) is None
            continue
        best_len = max(r.dst.prefixlen for r in matching)
        best = min((r for r in matching if r.dst.prefixlen == best_len), key=lambda r: r.metric)
        assert t.lookup(d) is best
