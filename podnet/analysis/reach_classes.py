"""How ``podnet reach`` groups Pods into source and destination classes (podnet.analysis.reach).

A class holds the Pods the network cannot tell apart in one role, so that the table is computed
once per class pair. At the Pod IP the network sees a Pod only through the policy agent's ipsets
holding its IP (the policies selecting it, the peers naming it, the ipBlocks holding it, its
named ports) and, as a destination, the port it is probed on (a Pod's namespace answers on every
port); flannel routes reach every Pod alike, and the node a Pod runs on does not change the
agent's verdict (podnet.analysis.reach_policy says why; tests/test_reach_scale.py checks it
against tracing every pair). So a Pod has a *source class* (its atoms as a source) and a
*destination class* (its atoms as a destination, protocol and port). At XL (11,000 Deployments,
1,500 policies) that is 520 source and 1,000 destination classes. Pods the agent does not police
(hostNetwork: their traffic is their node's; finished Pods) are classes per node, and a plain
Pod's class is split by node when such a Pod is on its node (traffic from a Pod's own node is
always admitted), so that every class pair holds one verdict. ``via_service`` keeps the finer
classes of :func:`pod_class` (namespace and labels: the same Services and endpoints).

Here: the class keys of the selected Pods (:func:`pod_class` with ``via_service``, else the
policy agent's signatures from podnet.analysis.reach_policy), the port a destination is probed
on, grouping Pods by key, and the representative Pods traced for a class pair.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from podnet.model.cluster import Cluster, Pod


def _block_signature(cluster: Cluster, ip: IPv4Address) -> tuple[bool, ...]:
    return tuple(ip in c and not any(ip in e for e in x) for c, x in _blocks(cluster))


def _blocks(cluster: Cluster) -> tuple:
    """Every policy peer's ipBlock (cidr, excepts), in policy order (made once per Cluster
    object: a table asks for each Pod)."""
    if _BLOCKS[0] is not cluster:
        found = []
        for pol in cluster.policies:
            for rule in pol.ingress + pol.egress:
                for peer in rule.peers:
                    if peer.ip_block is not None:
                        found.append((peer.ip_block.cidr, peer.ip_block.excepts))
        _BLOCKS[0], _BLOCKS[1] = cluster, tuple(found)
    return _BLOCKS[1]


_BLOCKS: list = [None, None]


def pod_class(cluster: Cluster, pod: Pod) -> tuple:
    """The fine class of ``pod`` used with ``via_service``: namespace, labels (the Services and
    policies selecting it), ports, hostNetwork (and its node), and the ipBlocks holding its IP."""
    return (
        pod.namespace,
        tuple(sorted(pod.labels.items())),
        _declared(pod),
        pod.host_network,
        pod.node if pod.host_network else None,
        _block_signature(cluster, pod.ip),
    )


def _declared(pod: Pod) -> tuple:
    return tuple(
        (c.init, p.name, p.protocol, p.container_port) for c in pod.containers for p in c.ports
    )


def _first_port(pod: Pod, protocol: str | None) -> tuple[int, str]:
    for c in pod.containers:
        for p in c.ports:
            if protocol is None or p.protocol.lower() == protocol:
                return p.container_port, p.protocol.lower()
    return 80, protocol or "tcp"


def _port_of(pod: Pod, port: int | None, protocol: str | None) -> tuple[int, str]:
    if port is None:
        return _first_port(pod, protocol)
    return port, protocol or "tcp"


def _keys(cluster, srcs, dsts, port, protocol, via_service):
    """Each source's and destination's class key, whether the class is evaluated by policy
    (plain) and the policy model (None with ``via_service``)."""
    if via_service:
        fine = {id(p): pod_class(cluster, p) for p in srcs + dsts}
        return [fine[id(p)] for p in srcs], [fine[id(p)] for p in dsts], None
    from podnet.analysis.reach_policy import build_model, dst_signature, plain, src_signature
    from podnet.control.policy_select import selection

    model = build_model(selection(cluster), list({id(p): p for p in srcs + dsts}.values()))
    # traffic from a Pod's own node is admitted whatever the policies: Pods sharing a node with
    # a hostNetwork (or otherwise special) Pod of the other side get classes per node
    odd_src = {p.node for p in srcs if not plain(p)}
    odd_dst = {p.node for p in dsts if not plain(p)}
    skeys = []
    for p in srcs:
        sig = src_signature(model, p)
        if plain(p):
            skeys.append((True, sig, p.node if p.node in odd_dst else None))
        else:
            skeys.append((False, sig, p.node, p.host_network))
    dkeys = []
    for p in dsts:
        sig = dst_signature(model, p)
        # a Pod's own namespace takes every port (podnet.trace.view socket_owner); a node's
        # gives a hostNetwork Pod the ports it declares
        if plain(p):
            what = (_port_of(p, port, protocol),)
            dkeys.append((True, sig, what, p.node if p.node in odd_src else None))
        else:
            what = (_port_of(p, port, protocol), _declared(p))
            dkeys.append((False, sig, what, p.node, p.host_network))
    return skeys, dkeys, model


def _group(pods: list[Pod], keys: list, prefix: str) -> tuple[list[int], list[list[Pod]], list]:
    """Classes in the order of their first member (Pods come sorted by key)."""
    index: dict = {}
    members: list[list[Pod]] = []
    of = []
    for p, k in zip(pods, keys, strict=True):
        i = index.get(k)
        if i is None:
            i = index[k] = len(members)
            members.append([])
        members[i].append(p)
        of.append(i)
    return of, members, list(index)


class _Picker:
    """Representatives of class pairs: two distinct Pods, on nodes already traced through when
    the classes have members there (the first trace touching a node builds its rules)."""

    def __init__(self, src_members, dst_members):
        self.src = src_members
        self.dst = dst_members
        self.touched: dict[str, None] = {}

    def _pick(self, members: list[Pod], avoid: Pod | None) -> Pod | None:
        if len(self.touched) and len(members) > 1:
            on = {}
            for p in members[:4096]:
                if p.node in self.touched and p is not avoid:
                    on.setdefault(p.node, p)
            for n in self.touched:
                if n in on:
                    return on[n]
        return next((p for p in members if p is not avoid), None)

    def pair(self, i: int, j: int) -> tuple[Pod, Pod] | None:
        s = self._pick(self.src[i], None)
        d = self._pick(self.dst[j], s)
        if d is None:  # the only destination is the source: try another source
            d = self.dst[j][0]
            s = self._pick(self.src[i], d)
            if s is None:
                return None
        self.touched.setdefault(s.node)
        self.touched.setdefault(d.node)
        return s, d
