"""The state of one packet in flight along one branch, and how a branch ends."""

from __future__ import annotations

from fractions import Fraction

from podnet.model.base import EMPTY, FrozenDict
from podnet.model.trace import Hop, NfTraces, Packet, Step

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
    # the open hop (None: none open yet), an _OpenHop that becomes the Hop itself when it
    # closes; its steps and TRACE records (the fields of an NfTrace each, see NfTraces) grow
    # in lists until then
    "hop",
    "hop_steps",
    "hop_nftrace",
)


class _OpenHop:
    """A hop being written: a Hop's slots, in a class whose instances take plain stores. When
    the hop closes, its steps and TRACE records are stored and it becomes a :class:`Hop`
    (CPython allows assigning ``__class__`` between classes of the same slots, as
    podnet.model.trace.fast_constructor does): no second object, no copying of its fields."""

    __slots__ = Hop.__slots__


_new_object = object.__new__


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
        self.hop = None
        self.hop_steps, self.hop_nftrace = [], []

    def fork(self) -> Flight:
        """A copy that changes apart from this one."""
        return _fork(self)

    def _close(self) -> None:
        """The open hop becomes a Hop, at the end of ``hops``."""
        hop = self.hop
        hop.steps = tuple(self.hop_steps)
        nftrace = self.hop_nftrace
        if nftrace:  # an NfTraces of the records (its __init__ written out: most hops have one)
            hop.nftrace = records = _new_object(NfTraces)
            records._fields = tuple(nftrace)
            records._made = None
        else:
            hop.nftrace = ()
        hop.__class__ = Hop
        self.hops += (hop,)
        self.hop = None

    def enter(
        self, node: str | None, netns: str, device: str, direction: str, key: tuple = None
    ) -> Flight:
        """Close the current hop and open a new one on ``device`` (and add ``key`` to
        ``seen``, if given)."""
        if self.hop is not None:
            self._close()
        self.hop = hop = _OpenHop()
        hop.node, hop.netns, hop.device, hop.direction = node, netns, device, direction
        hop.packet, hop.src_mac, hop.dst_mac = self.packet, self.src_mac, self.dst_mac
        self.hop_steps = []
        self.hop_nftrace = []
        if key is not None:
            self.seen.add(key)
        return self

    def l2(self, src_mac: str | None, dst_mac: str | None) -> Flight:
        """The frame gets Ethernet addresses (a device transmits it); the open hop shows them."""
        self.src_mac, self.dst_mac = src_mac, dst_mac
        hop = self.hop
        if hop is not None:
            hop.src_mac, hop.dst_mac = src_mac, dst_mac
        return self

    def step_l2(self, step: Step, src_mac: str | None, dst_mac: str | None) -> Flight:
        """``step(step).l2(src_mac, dst_mac)`` (one call: a device transmits at most hops)."""
        self.hop_steps.append(step)
        self.src_mac, self.dst_mac = src_mac, dst_mac
        hop = self.hop
        if hop is not None:
            hop.src_mac, hop.dst_mac = src_mac, dst_mac
        return self

    def step(self, step: Step) -> Flight:
        """The open hop takes ``step`` (none open: nothing is recorded). The engine appends to
        ``hop_steps`` itself, where a hop is open: the list is always there, and the next
        hop opened starts a new one."""
        self.hop_steps.append(step)
        return self

    def on_device(self, device: str) -> Flight:
        """The open hop is on ``device`` after all (a re-route changed the output device)."""
        if self.hop is not None:
            self.hop.device = device
        return self

    def advance(self, steps: tuple[Step, ...], record: tuple, **changes) -> Flight:
        """After a hook walk: its steps and TRACE record (the ten fields of an NfTrace) go
        to the open hop, and ``changes`` to the flight."""
        if self.hop is not None:
            self.hop_steps += steps
            self.hop_nftrace.append(record)
        for name, value in changes.items():
            setattr(self, name, value)
        return self

    def advance_prob(self, steps: tuple[Step, ...], record: tuple, prob) -> Flight:
        """``advance(steps, record, prob=prob)`` without keyword parsing: the common case."""
        if self.hop is not None:
            self.hop_steps += steps
            self.hop_nftrace.append(record)
        self.prob = prob
        return self

    def advance_packet(
        self, steps: tuple[Step, ...], record: tuple, prob, packet: Packet, nat_seen: bool
    ) -> Flight:
        """``advance`` for a walk that changed the packet (a NAT, a mark)."""
        if self.hop is not None:
            self.hop_steps += steps
            self.hop_nftrace.append(record)
        self.prob, self.packet, self.nat_seen = prob, packet, nat_seen
        return self

    def with_packet(self, packet: Packet) -> Flight:
        """Change the headers; the open hop shows the packet as it entered the device."""
        self.packet = packet
        return self

    def all_hops(self) -> tuple[Hop, ...]:
        """Every hop, the open one closed: the flight has ended (it writes no more steps)."""
        if self.hop is not None:
            self._close()
        return self.hops

    def update(self, **kw) -> Flight:
        for name, value in kw.items():
            if name not in _FIELDS:
                raise TypeError(f"Flight has no field {name!r}")
            setattr(self, name, value)
        return self


def _copy_hop(hop: _OpenHop) -> _OpenHop:
    """An open hop of a fork's own (its steps are in the fork's own lists)."""
    new = _OpenHop()
    new.node, new.netns, new.device, new.direction = hop.node, hop.netns, hop.device, hop.direction
    new.packet, new.src_mac, new.dst_mac = hop.packet, hop.src_mac, hop.dst_mac
    return new


def _make_fork():
    """Flight.fork, its fields copied one statement each (a loop of getattr and setattr costs
    a Python-level call per field; Service paths fork at each random choice): the open hop's
    lists, ``seen`` and the dict of conntrack tables copied, the rest shared."""
    copied = {"hop_steps", "hop_nftrace", "seen", "ct"}
    body = "".join(
        f"    new.{n} = fl.{n}.copy()\n"
        if n in copied
        else "    h = fl.hop\n    new.hop = h if h is None else _copy_hop(h)\n"
        if n == "hop"
        else f"    new.{n} = fl.{n}\n"
        for n in _FIELDS
    )
    env = {"_new": object.__new__, "Flight": Flight, "_copy_hop": _copy_hop}
    exec(f"def fork(fl):\n    new = _new(Flight)\n{body}    return new\n", env)  # noqa: S102
    return env["fork"]


_fork = _make_fork()


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
