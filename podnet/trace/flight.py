"""The state of one packet in flight along one branch, and how a branch ends.

A Flight is immutable: each decision returns a new Flight, so the branches that kube-proxy's
random choice creates share everything they had in common and never disturb each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from fractions import Fraction

from podnet.model.base import EMPTY, FrozenDict
from podnet.model.trace import Hop, NfTrace, Packet, Step

_COPIERS: dict[type, object] = {}
_MISSING = object()


def _copier(cls: type):
    """A function ``copy(obj, **changes)`` for ``cls``, written out field by field the way
    dataclasses writes ``__init__``: it fills the slots through their descriptors directly."""
    names = [f.name for f in fields(cls)]
    params = ", ".join(f"{n}=_M" for n in names)
    body = "".join(f"    _s_{n}(new, obj.{n} if {n} is _M else {n})\n" for n in names)
    env = {"_M": _MISSING, "_new": object.__new__, "cls": cls} | {
        f"_s_{n}": getattr(cls, n).__set__ for n in names
    }
    exec(f"def copy(obj, *, {params}):\n    new = _new(cls)\n{body}    return new\n", env)  # noqa: S102
    return env["copy"]


def _setter(cls: type, *changed: str):
    """A function ``set_(obj, *values)`` copying ``obj`` with the fields ``changed`` given
    positionally (``set_(*values)`` if they are all the fields): the hot copies of a trace,
    without keyword parsing and the frozen ``__init__``'s ``object.__setattr__`` calls."""
    names = [f.name for f in fields(cls)]
    args = ", ".join(f"v_{n}" for n in changed)
    body = "".join(
        f"    _s_{n}(new, v_{n})\n" if n in changed else f"    _s_{n}(new, obj.{n})\n"
        for n in names
    )
    env = {"_new": object.__new__, "cls": cls} | {f"_s_{n}": getattr(cls, n).__set__ for n in names}
    head = "" if set(changed) == set(names) else "obj, "  # all given: a constructor
    exec(f"def set_({head}{args}):\n    new = _new(cls)\n{body}    return new\n", env)  # noqa: S102
    return env["set_"]


def replace(obj, /, **changes):
    """``dataclasses.replace`` for the frozen, slotted dataclasses of this module (no
    ``__post_init__``, no init-only fields), without its generic machinery: a trace makes
    hundreds of these copies, and ``dataclasses.replace`` costs over twice as much per copy."""
    cls = type(obj)
    copy = _COPIERS.get(cls)
    if copy is None:
        copy = _COPIERS[cls] = _copier(cls)
    return copy(obj, **changes)


@dataclass(frozen=True, slots=True)
class HopDraft:
    """The hop being written: the packet on ``device`` of ``netns``."""

    node: str | None
    netns: str
    device: str
    direction: str
    packet: Packet
    steps: tuple[Step, ...] = ()
    src_mac: str | None = None
    dst_mac: str | None = None
    nftrace: tuple[NfTrace, ...] = ()

    def done(self) -> Hop:
        return Hop(
            self.node,
            self.netns,
            self.device,
            self.direction,
            self.steps,
            self.packet,
            self.src_mac,
            self.dst_mac,
            self.nftrace,
        )


@dataclass(frozen=True, slots=True)
class Flight:
    """One branch of a packet's way: its headers, probability, hops so far and the state it left
    behind (conntrack entries and ``recent`` lists per namespace)."""

    packet: Packet
    prob: Fraction = Fraction(1)
    hops: tuple[Hop, ...] = ()
    hop: HopDraft | None = None
    dst_mac: str | None = None
    src_mac: str | None = None  # the frame's source MAC (set where a device transmits it)
    inner_l2: tuple[str, str] | None = None  # (src, dst) MACs of the frame inside a VXLAN packet
    ct: FrozenDict = EMPTY  # netns -> conntrack table
    recent: FrozenDict = EMPTY  # netns -> FrozenDict(list name -> frozenset of source IPs)
    seen: frozenset = frozenset()  # (netns, device, direction, flow) already crossed
    nat_seen: bool = False  # some NAT rewrote the packet on this branch

    def enter(
        self, node: str | None, netns: str, device: str, direction: str, seen: frozenset = None
    ) -> Flight:
        """Close the current hop and open a new one on ``device`` (and set ``seen``, if given)."""
        hops = self.hops if self.hop is None else self.hops + (self.hop.done(),)
        hop = _new_hop(
            node, netns, device, direction, self.packet, (), self.src_mac, self.dst_mac, ()
        )
        return _set_hops_hop_seen(self, hops, hop, self.seen if seen is None else seen)

    def l2(self, src_mac: str | None, dst_mac: str | None) -> Flight:
        """The frame gets Ethernet addresses (a device transmits it); the open hop shows them."""
        hop = self.hop if self.hop is None else _set_hop_macs(self.hop, src_mac, dst_mac)
        return _set_macs_hop(self, src_mac, dst_mac, hop)

    def nftrace(self, record: NfTrace) -> Flight:
        """Note a netfilter hook walk on the open hop (for the TRACE view)."""
        if self.hop is None:
            return self
        return _set_hop(self, _set_hop_nftrace(self.hop, self.hop.nftrace + (record,)))

    def step(self, *steps: Step) -> Flight:
        if self.hop is None or not steps:
            return self
        return _set_hop(self, _set_hop_steps(self.hop, self.hop.steps + steps))

    def advance(self, steps: tuple[Step, ...], record: NfTrace, **changes) -> Flight:
        """After a hook walk: its steps and TRACE record go to the open hop, and ``changes``
        to the flight, in one copy (a trace walks dozens of hooks)."""
        hop = self.hop
        if hop is not None:
            hop = _set_hop_steps_nftrace(
                hop, hop.steps + steps if steps else hop.steps, hop.nftrace + (record,)
            )
        if not changes:
            return _set_hop(self, hop)
        changes["hop"] = hop
        return replace(self, **changes)

    def with_packet(self, packet: Packet) -> Flight:
        """Change the headers; the open hop shows the packet as it entered the device."""
        return _set_packet(self, packet)

    def all_hops(self) -> tuple[Hop, ...]:
        return self.hops if self.hop is None else self.hops + (self.hop.done(),)

    def update(self, **kw) -> Flight:
        return replace(self, **kw)


_new_hop = _setter(HopDraft, *(f.name for f in fields(HopDraft)))
_set_hop_steps = _setter(HopDraft, "steps")
_set_hop_nftrace = _setter(HopDraft, "nftrace")
_set_hop_steps_nftrace = _setter(HopDraft, "steps", "nftrace")
_set_hop_macs = _setter(HopDraft, "src_mac", "dst_mac")
_set_hop = _setter(Flight, "hop")
_set_packet = _setter(Flight, "packet")
_set_macs_hop = _setter(Flight, "src_mac", "dst_mac", "hop")
_set_hops_hop_seen = _setter(Flight, "hops", "hop", "seen")


@dataclass(frozen=True, slots=True)
class End:
    """How a branch ended: disposition, the reason in one sentence, the Pod (or node) reached."""

    flight: Flight
    disposition: str
    reason: str
    endpoint: str | None = None
    netns: str | None = None  # where it was delivered (for the reply)
    extra: FrozenDict = field(default=EMPTY)
