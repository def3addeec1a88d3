"""A Flight changes in place; a fork is a branch of its own (kube-proxy's random choice)."""

from ipaddress import IPv4Address as A

from podnet.model.trace import NfTrace, Packet, Step
from podnet.trace.flight import Flight

P = Packet(A("10.244.1.2"), A("10.96.0.10"), "tcp", 40000, 80)


def test_fork_changes_apart_from_its_flight():
    fl = Flight(P).enter("node-1", "pod:default/a", "eth0", "out", ("k",))
    fl.step(Step("route", "default via 10.244.1.1 dev eth0"))
    fl.ct["pod:default/a"] = "table"
    other = fl.fork()
    q = P.with_(dst=A("10.244.2.3"), dport=8080)
    record = ("OUTPUT", (), P, q, None, "eth0", None, None, None, None)
    other.advance_packet((Step("nat", "dst 10.96.0.10:80 -> 10.244.2.3:8080"),), record, 1, q, True)
    other.enter("node-1", "node:node-1", "veth1", "in", ("k2",))
    other.ct["node:node-1"] = "table 2"
    # the flight is as it was
    assert fl.packet is P and not fl.nat_seen and fl.seen == {("k",)}
    assert list(fl.ct) == ["pod:default/a"]
    (hop,) = fl.all_hops()
    assert [s.type for s in hop.steps] == ["route"] and not hop.nftrace
    # the fork went on
    first, second = other.all_hops()
    assert [s.type for s in first.steps] == ["route", "nat"] and second.packet is q
    assert first.nftrace == (NfTrace("OUTPUT", (), P, q, None, "eth0"),)
    assert other.seen == {("k",), ("k2",)} and other.nat_seen


def test_fork_copies_every_field():
    from podnet.trace.flight import _FIELDS

    own = ("hop", "hop_steps", "hop_nftrace", "seen", "ct")
    fl = Flight(P).enter("node-1", "pod:default/a", "eth0", "out", ("k",))
    for i, name in enumerate(_FIELDS):
        if name not in own:
            setattr(fl, name, ("value", i))
    other = fl.fork()
    hop_fields = ("node", "netns", "device", "direction", "packet", "src_mac", "dst_mac")
    for name in _FIELDS:
        mine, theirs = getattr(fl, name), getattr(other, name)
        if name == "hop":  # the open hop: a copy of its own, equal field for field
            assert [getattr(mine, f) for f in hop_fields] == [
                getattr(theirs, f) for f in hop_fields
            ]
        else:
            assert mine == theirs, name
        # what a branch changes in place is its own; the rest is shared
        assert (mine is theirs) == (name not in own), name


def test_a_closed_hop_is_a_hop_and_a_fork_keeps_its_own():
    from podnet.model.trace import Hop

    fl = Flight(P).enter("node-1", "pod:default/a", "eth0", "out")
    fl.step(Step("route", "default via 10.244.1.1 dev eth0")).l2("aa", "bb")
    other = fl.fork()
    other.l2("cc", "dd").on_device("eth1")
    (hop,) = fl.all_hops()
    assert type(hop) is Hop and hop == Hop(
        "node-1",
        "pod:default/a",
        "eth0",
        "out",
        (Step("route", "default via 10.244.1.1 dev eth0"),),
        P,
        "aa",
        "bb",
    )
    (theirs,) = other.all_hops()
    assert (theirs.device, theirs.src_mac, theirs.dst_mac) == ("eth1", "cc", "dd")
    assert fl.all_hops() == (hop,)  # closed once
