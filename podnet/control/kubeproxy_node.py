"""kube-proxy's user chains on a node, each Service port's own chains written when first needed.

kube-proxy writes the same chains on every node but for the ports whose rules depend on the node
(local endpoints, load-balancer source ranges: podnet.control.kubeproxy_sync). A node's chains
are the chains every port adds lines to (KUBE-SERVICES, KUBE-NODEPORTS...), the fixed ones
(KUBE-MARK-MASQ, KUBE-POSTROUTING...) and each port's own: KUBE-SVC-, KUBE-SVL-, KUBE-EXT-,
KUBE-FW- and one KUBE-SEP- per endpoint. At 10,000 ports and 160,000 endpoints the own chains
are most of the text, and a question enters a few of them: :class:`KubeChains` writes the shared
and fixed chains in full, knows which per-Service chains every port declares (so that the jumps
of KUBE-SERVICES can be checked, as iptables-restore checks them), and writes a port's own
chains the first time one of them is asked for. Nodes of one variant share one KubeChains; a
port whose rules do not depend on the node gives every variant the same chain objects, and so
do shared chains equal to the node-independent variant's (compiled once for all nodes).

>>> from podnet.api import load
>>> from podnet.control.iptables import proxy_options
>>> from podnet.control.kubeproxy_sync import proxy_state
>>> cluster = load("topologies/demo.yaml").cluster
>>> state = proxy_state(cluster, proxy_options(cluster))
>>> kube = kube_chains(state, state.variants("node-1", None))
>>> svc = kube["nat", "KUBE-SERVICES"].rules[0].split(" -j ")[-1]
>>> (svc.startswith("KUBE-SVC-"), ("nat", svc) in kube, kube.get(("nat", "KUBE-SVC-NONE")))
(True, True, None)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from itertools import chain as ichain
from operator import attrgetter

from podnet.control import kubeproxy as kp
from podnet.control import kubeproxy_chains as kc
from podnet.control.kubeproxy_sync import ProxyState
from podnet.model.dataplane import Chain

SHARED = {
    "filter": (
        kp.KUBE_SERVICES,
        kp.KUBE_EXTERNAL_SERVICES,
        kp.KUBE_NODEPORTS,
        kp.KUBE_PROXY_FIREWALL,
    ),
    "nat": (kp.KUBE_SERVICES, kp.KUBE_NODEPORTS),
}
"""Chains that collect rules from every service port, per table."""

KUBELET_FIREWALL_RULE = (
    '-m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 '
    "-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP"
)
"""kubelet's KUBE-FIREWALL rule (pkg/kubelet/kubelet_network_linux.go; kube-proxy writes the same
rule)."""

SEP_PREFIX = "KUBE-SEP-"
"""An endpoint's chain (podnet.control.kubeproxy.endpoint_chain_name)."""

_NAME = attrgetter("name")


class KubeChains(Mapping):
    """``(table, name) -> Chain``: kube-proxy's user chains on the nodes of one variant.

    Looking up, or testing with ``in``, a port's per-Service chain does not write it: the
    shared chains and the names the ports declare answer that. Getting one of a port's own
    chains writes all of them (a KUBE-SEP-* chain is reached from its port's KUBE-SVC-*).
    Iterating, ``len`` and :meth:`sorted_chains` write every port's (iptables-save).
    """

    __slots__ = ("state", "variants", "shared", "declared", "_own", "_made", "_sorted")

    def __init__(
        self,
        state: ProxyState,
        variants: dict[int, tuple | None],
        shared: dict[tuple[str, str], Chain],
        declared: tuple[frozenset[str], frozenset[str]],
    ):
        self.state = state
        self.variants = variants  # node-dependent port -> its variant on these nodes
        self.shared = shared  # the chains written in full: shared and fixed ones
        # the per-Service nat chains the ports declare: those of node-independent ports (one
        # set for every variant), those of the node-dependent ones on these nodes
        self.declared = declared
        self._own: dict[tuple[str, str], Chain] = {}
        self._made: set[int] = set()
        self._sorted: dict[str, tuple[Chain, ...]] = {}

    def get(self, key, default=None):
        hit = self.shared.get(key)
        if hit is None and key[0] == "nat":
            hit = self._own.get(key)
            if hit is None and self._owned(key[1]):
                i = self.state.port_of(key[1])
                if i is None:  # an endpoint's: written with its port's KUBE-SVC-
                    if len(self._made) < len(self.state.ports):
                        self._make_all()  # (asked for before it: every port's, to know)
                        hit = self._own.get(key)
                elif i not in self._made:
                    self._make(i)
                    hit = self._own.get(key)
        return default if hit is None else hit

    def _declares(self, name: str) -> bool:
        """Whether a port declares the per-Service chain ``name`` on these nodes."""
        declared, mine = self.declared
        return name in declared or name in mine

    def _owned(self, name: str) -> bool:
        """Whether ``name`` can be a port's own chain here: one a port declares, or an
        endpoint's (whose port says whether it writes it)."""
        return self._declares(name) or name.startswith(SEP_PREFIX)

    def __getitem__(self, key) -> Chain:
        hit = self.get(key)
        if hit is None:
            raise KeyError(key)
        return hit

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or len(key) != 2:
            return False
        if key in self.shared or key in self._own:
            return True
        if key[0] != "nat":
            return False
        if self._declares(key[1]):
            return True
        return key[1].startswith(SEP_PREFIX) and self.get(key) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        self._make_all()
        return iter([*self.shared, *self._own])

    def __len__(self) -> int:
        self._make_all()
        return len(self.shared) + len(self._own)

    def sorted_chains(self, table: str) -> tuple[Chain, ...]:
        """Every chain of ``table`` sorted by name (iptables-save's order); made once."""
        hit = self._sorted.get(table)
        if hit is None:
            self._make_all()
            chains = [c for (t, _), c in self.shared.items() if t == table]
            chains += [c for (t, _), c in self._own.items() if t == table]
            chains.sort(key=_NAME)
            hit = self._sorted[table] = tuple(chains)
        return hit

    def _make(self, i: int) -> None:
        self._made.add(i)
        for c in self.state.block(i, self.variants.get(i)).chains:
            self._own[("nat", c.name)] = c

    def _make_all(self) -> None:
        for i in range(len(self.state.ports)):
            if i not in self._made:
                self._make(i)


def kube_chains(state: ProxyState, variants: tuple) -> KubeChains:
    """kube-proxy's chains for nodes whose node-dependent ports have ``variants`` (in
    ``state.dependent`` order); cached in ``state``, so that nodes of one variant share them."""
    key = ("chains", variants)
    hit = state.chain_cache.get(key)
    if hit is not None:
        return hit  # type: ignore[return-value]
    plain = (None,) * len(variants)
    common = None if variants == plain else kube_chains(state, plain).shared
    base = state.chain_cache.get("segments")
    if base is None:
        base = state.chain_cache["segments"] = _base_segments(state)
    segs, declared = base  # type: ignore[misc]
    heads = {i: state.head(i, v) for i, v in zip(state.dependent, variants, strict=True)}
    opts = state.ctx.options
    f_fixed, n_fixed = kc.fixed_rules(opts)
    f_tail, n_tail = kc.tail_rules(opts)
    rules: dict[tuple[str, str], list[str]] = {}
    for table, chains in SHARED.items():
        for name in chains:
            lst = list(segs[(table, name)])
            for i, b in heads.items():
                lst[i] = b.segment(table, name)
            rules[(table, name)] = list(ichain.from_iterable(lst))
    for table, fixed in (("filter", f_fixed + f_tail), ("nat", n_fixed + n_tail)):
        for c, r in fixed:
            rules.setdefault((table, c), []).append(r)
    rules.setdefault(("filter", kp.KUBE_FORWARD), [])
    rules.setdefault(("filter", kp.KUBE_FIREWALL), [KUBELET_FIREWALL_RULE])
    rules.setdefault(("nat", kp.KUBE_MARK_MASQ), [])
    rules.setdefault(("nat", kp.KUBE_POSTROUTING), [])
    shared = {k: _same(common, k, r) for k, r in rules.items()}
    mine = frozenset(n for b in heads.values() for n in b.nat_chains)
    out = KubeChains(
        state, dict(zip(state.dependent, variants, strict=True)), shared, (declared, mine)
    )
    state.chain_cache[key] = out
    return out


def _same(common: dict | None, key: tuple[str, str], rules: list[str]) -> Chain:
    """``Chain(name, rules)``, or the node-independent variant's equal chain object."""
    c = common.get(key) if common is not None else None
    if c is not None and len(c.rules) == len(rules) and c.rules == tuple(rules):
        return c
    return Chain(key[1], tuple(rules))


def _base_segments(state: ProxyState) -> tuple[dict, frozenset[str]]:
    """Per-port segments of the shared chains for the node-independent variant, and the
    per-Service chains the node-independent ports declare."""
    n = len(state.ports)
    segs = {(t, c): [()] * n for t, cs in SHARED.items() for c in cs}
    declared: list[str] = []
    dependent = set(state.dependent)
    for i in range(n):
        if i in dependent:
            continue  # replaced per node
        b = state.head(i, None)
        for (t, c), lst in segs.items():
            lst[i] = b.segment(t, c)
        declared += b.nat_chains
    return segs, frozenset(declared)
