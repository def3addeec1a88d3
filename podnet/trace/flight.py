"""The state of one packet in flight along one branch, and how a branch ends.

A Flight is immutable: each decision returns a new Flight, so the branches that kube-proxy's
random choice creates share everything they had in common and never disturb each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction

from podnet.model.base import EMPTY, FrozenDict
from podnet.model.trace import Hop, Packet, Step


@dataclass(frozen=True, slots=True)
class HopDraft:
    """The hop being written: the packet on ``device`` of ``netns``."""

    node: str | None
    netns: str
    device: str
    direction: str
    packet: Packet
    steps: tuple[Step, ...] = ()

    def done(self) -> Hop:
        return Hop(self.node, self.netns, self.device, self.direction, self.steps, self.packet)


@dataclass(frozen=True, slots=True)
class Flight:
    """One branch of a packet's way: its headers, probability, hops so far and the state it left
    behind (conntrack entries and ``recent`` lists per namespace)."""

    packet: Packet
    prob: Fraction = Fraction(1)
    hops: tuple[Hop, ...] = ()
    hop: HopDraft | None = None
    dst_mac: str | None = None
    ct: FrozenDict = EMPTY  # netns -> conntrack table
    recent: FrozenDict = EMPTY  # netns -> FrozenDict(list name -> frozenset of source IPs)
    seen: frozenset = frozenset()  # (netns, device, direction, flow) already crossed
    nat_seen: bool = False  # some NAT rewrote the packet on this branch

    def enter(self, node: str | None, netns: str, device: str, direction: str) -> Flight:
        """Close the current hop and open a new one on ``device``."""
        hops = self.hops if self.hop is None else self.hops + (self.hop.done(),)
        return replace(
            self, hops=hops, hop=HopDraft(node, netns, device, direction, self.packet)
        )

    def step(self, *steps: Step) -> Flight:
        if self.hop is None or not steps:
            return self
        return replace(self, hop=replace(self.hop, steps=self.hop.steps + steps))

    def with_packet(self, packet: Packet) -> Flight:
        """Change the headers; the open hop shows the packet as it entered the device."""
        return replace(self, packet=packet)

    def all_hops(self) -> tuple[Hop, ...]:
        return self.hops if self.hop is None else self.hops + (self.hop.done(),)

    def update(self, **kw) -> Flight:
        return replace(self, **kw)


@dataclass(frozen=True, slots=True)
class End:
    """How a branch ended: disposition, the reason in one sentence, the Pod (or node) reached."""

    flight: Flight
    disposition: str
    reason: str
    endpoint: str | None = None
    netns: str | None = None  # where it was delivered (for the reply)
    extra: FrozenDict = field(default=EMPTY)
