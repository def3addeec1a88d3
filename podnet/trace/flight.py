"""The state of one packet in flight along one branch, and how a branch ends."""

from __future__ import annotations

from fractions import Fraction

from podnet.model.base import EMPTY, FrozenDict
from podnet.model.trace import Hop, NfTraces, Packet, Step, new_hop

ONE = Fraction(1)
"""A flight's probability until a random choice splits it (the same object: tested by identity)."""


_FIELDS = (
    "packet",
    "prob",
    "hops",
    "dst_mac",
    "src_mac",
    "inner_l2",
    "ct",
    "recent",
    "seen",
    "nat_seen",
    # the open hop (hop_netns None: none open yet): its steps and TRACE records (the fields
    # of an NfTrace each, see NfTraces) grow in lists, frozen into a Hop when it closes
    "hop_node",
    "hop_netns",
    "hop_device",
    "hop_direction",
    "hop_packet",
    "hop_steps",
    "hop_src_mac",
    "hop_dst_mac",
    "hop_nftrace",
)


class Flight:
    """One branch of a packet's way: its headers, probability, hops so far, the hop being
    written, and the state it left behind (conntrack entries and ``recent`` lists per
    namespace).

    A Flight is the engine's working state and changes in place: each method changes it and
    returns it, so a hop's dozens of decisions cost no copies. Where kube-proxy's random choice
    makes branches, each branch gets its own :meth:`fork` before it changes (the open hop's
    lists, ``seen`` and the dict of conntrack tables copied); everything else a flight holds
    (packets, closed hops, the conntrack tables themselves) is immutable and shared. An ended
    branch (:class:`End`) is never changed again.
    """

    __slots__ = _FIELDS

    def __init__(
        self,
        packet: Packet,
        prob: Fraction = ONE,
        hops: tuple[Hop, ...] = (),
        dst_mac: str | None = None,
        src_mac: str | None = None,  # the frame's source MAC (set where a device transmits it)
        inner_l2: tuple[str, str] | None = None,  # (src, dst) MACs of the frame inside VXLAN
        ct: dict | None = None,  # netns -> conntrack table (a dict of its own, see fork)
        recent: FrozenDict = EMPTY,  # netns -> FrozenDict(list name -> frozenset of sources)
        seen: set | None = None,  # (netns, device, direction, flow) already crossed
        nat_seen: bool = False,  # some NAT rewrote the packet on this branch
    ):
        self.packet, self.prob, self.hops = packet, prob, hops
        self.dst_mac, self.src_mac, self.inner_l2 = dst_mac, src_mac, inner_l2
        self.ct = {} if ct is None else dict(ct)
        self.recent, self.nat_seen = recent, nat_seen
        self.seen = set() if seen is None else set(seen)
        self.hop_node = self.hop_netns = self.hop_device = self.hop_direction = None
        self.hop_packet = self.hop_src_mac = self.hop_dst_mac = None
        self.hop_steps, self.hop_nftrace = [], []

    def fork(self) -> Flight:
        """A copy that changes apart from this one."""
        return _fork(self)

    def _closed(self) -> Hop:
        nftrace = self.hop_nftrace
        return new_hop(
            self.hop_node,
            self.hop_netns,
            self.hop_device,
            self.hop_direction,
            tuple(self.hop_steps),
            self.hop_packet,
            self.hop_src_mac,
            self.hop_dst_mac,
            _nftraces(tuple(nftrace)) if nftrace else (),
        )

    def enter(
        self, node: str | None, netns: str, device: str, direction: str, key: tuple = None
    ) -> Flight:
        """Close the current hop and open a new one on ``device`` (and add ``key`` to
        ``seen``, if given)."""
        if self.hop_netns is not None:
            self.hops += (self._closed(),)
        self.hop_node = node
        self.hop_netns = netns
        self.hop_device = device
        self.hop_direction = direction
        self.hop_packet = self.packet
        self.hop_src_mac = self.src_mac
        self.hop_dst_mac = self.dst_mac
        self.hop_steps = []
        self.hop_nftrace = []
        if key is not None:
            self.seen.add(key)
        return self

    def l2(self, src_mac: str | None, dst_mac: str | None) -> Flight:
        """The frame gets Ethernet addresses (a device transmits it); the open hop shows them."""
        self.src_mac, self.dst_mac = src_mac, dst_mac
        if self.hop_netns is not None:
            self.hop_src_mac, self.hop_dst_mac = src_mac, dst_mac
        return self

    def step_l2(self, step: Step, src_mac: str | None, dst_mac: str | None) -> Flight:
        """``step(step).l2(src_mac, dst_mac)``."""
        if self.hop_netns is not None:
            self.hop_steps.append(step)
        return self.l2(src_mac, dst_mac)

    def step(self, *steps: Step) -> Flight:
        if self.hop_netns is not None:
            self.hop_steps += steps
        return self

    def on_device(self, device: str) -> Flight:
        """The open hop is on ``device`` after all (a re-route changed the output device)."""
        if self.hop_netns is not None:
            self.hop_device = device
        return self

    def advance(self, steps: tuple[Step, ...], record: tuple, **changes) -> Flight:
        """After a hook walk: its steps and TRACE record (the ten fields of an NfTrace) go
        to the open hop, and ``changes`` to the flight."""
        if self.hop_netns is not None:
            self.hop_steps += steps
            self.hop_nftrace.append(record)
        for name, value in changes.items():
            setattr(self, name, value)
        return self

    def advance_prob(self, steps: tuple[Step, ...], record: tuple, prob) -> Flight:
        """``advance(steps, record, prob=prob)`` without keyword parsing: the common case."""
        if self.hop_netns is not None:
            self.hop_steps += steps
            self.hop_nftrace.append(record)
        self.prob = prob
        return self

    def advance_packet(
        self, steps: tuple[Step, ...], record: tuple, prob, packet: Packet, nat_seen: bool
    ) -> Flight:
        """``advance`` for a walk that changed the packet (a NAT, a mark)."""
        if self.hop_netns is not None:
            self.hop_steps += steps
            self.hop_nftrace.append(record)
        self.prob, self.packet, self.nat_seen = prob, packet, nat_seen
        return self

    def with_packet(self, packet: Packet) -> Flight:
        """Change the headers; the open hop shows the packet as it entered the device."""
        self.packet = packet
        return self

    def all_hops(self) -> tuple[Hop, ...]:
        return self.hops if self.hop_netns is None else self.hops + (self._closed(),)

    def update(self, **kw) -> Flight:
        for name, value in kw.items():
            if name not in _FIELDS:
                raise TypeError(f"Flight has no field {name!r}")
            setattr(self, name, value)
        return self


def _make_fork():
    """Flight.fork, its fields copied one statement each (a loop of getattr and setattr costs
    a Python-level call per field; Service paths fork at each random choice): the open hop's
    lists, ``seen`` and the dict of conntrack tables copied, the rest shared."""
    copied = {"hop_steps", "hop_nftrace", "seen", "ct"}
    body = "".join(
        f"    new.{n} = fl.{n}.copy()\n" if n in copied else f"    new.{n} = fl.{n}\n"
        for n in _FIELDS
    )
    env = {"_new": object.__new__, "Flight": Flight}
    exec(f"def fork(fl):\n    new = _new(Flight)\n{body}    return new\n", env)  # noqa: S102
    return env["fork"]


_fork = _make_fork()


def _nftraces(records: tuple[tuple, ...]) -> NfTraces:
    """``NfTraces(records)`` without its Python-level ``__init__`` (a hop that walked a hook
    closes with one)."""
    made = _new_object(NfTraces)
    made._fields = records
    made._made = None
    return made


_new_object = object.__new__


class End:
    """How a branch ended: disposition, the reason in one sentence, the Pod (or node) reached
    (never changed once made; a plain slotted class: every path makes one or two)."""

    __slots__ = ("flight", "disposition", "reason", "endpoint", "netns", "extra")

    def __init__(
        self,
        flight: Flight,
        disposition: str,
        reason: str,
        endpoint: str | None = None,
        netns: str | None = None,  # where it was delivered (for the reply)
        extra: FrozenDict = EMPTY,
    ):
        self.flight, self.disposition, self.reason = flight, disposition, reason
        self.endpoint, self.netns, self.extra = endpoint, netns, extra
