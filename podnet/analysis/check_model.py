"""Probe answers without a trace, for large probe files: kube-proxy's endpoints and the policy
agent's rules evaluated per Pod pair (the model podnet.analysis.reach_policy builds for
``podnet reach``).

A traced probe costs some milliseconds at 30,000 Pods (a fresh Pod pair misses every remembered
hook walk, and a Service's probe follows each endpoint). Between two ordinary Pods of a flannel
cluster with kube-proxy in iptables mode, what decides a probe is known without walking the
packet: the routes reach every Pod alike, kube-proxy sends a ClusterIP connection to each of
the port's cluster endpoints (podnet.control.kubeproxy, the code the KUBE-SVC- chains are written
from) without SNAT (no masquerade-all; the client is inside the cluster CIDR), and the policy
agent's chains accept the connection when the source Pod's chain lets it out and the
destination Pod's chain lets it in (REJECT otherwise). :class:`CheckModel` answers the probes
that fit that description and says None for every other (hostNetwork or finished Pods, node or
external clients, addresses other than a ClusterIP, session affinity, local traffic policy,
Services without endpoints in a cluster with NetworkPolicies, other cluster modes): those are
traced. A *hairpin* connection (the
client is one of the Service's endpoints) is answered too: its connection to itself passes its
own firewall chain once with both directions' rules (:meth:`CheckModel._self_verdict`).

The answers are held to the trace: podnet.analysis.check traces every probe whose answer misses
its expectation and a sample of the others, and tests/test_check_model.py compares every probe of
the conformance cases and of generated clusters both ways.

>>> from podnet.analysis.check_model import Answer
>>> Answer("deny", "reject", (), False).verdict
'deny'
"""

from __future__ import annotations

from dataclasses import dataclass
from socket import inet_aton

from podnet.analysis.reach_policy import (
    Model,
    build_model,
    chain,
    dst_signature,
    plain,
    port_ok,
    src_signature,
)
from podnet.control.iptables import proxy_options
from podnet.control.kubeproxy_sync import proxy_state
from podnet.control.policy_select import selection
from podnet.model.cluster import Cluster, Pod
from podnet.model.trace import ip_text
from podnet.trace.resolve import Target


@dataclass(frozen=True, slots=True)
class Answer:
    """What a probe finds (the fields of podnet.analysis.check.ProbeResult it is judged on)."""

    verdict: str  # allow | deny | partial
    deny_kind: str | None
    endpoints: tuple[str, ...]
    masq: bool


class CheckModel:
    """kube-proxy's endpoints and the policy agent's verdicts for one cluster, built on first use.

    ``answer(src, target)`` gives the :class:`Answer` of a connection from Pod ``src`` to
    ``target`` (as podnet.trace.resolve resolves a probe's destination), or None when the
    connection is not one the model covers.
    """

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        cfg = cluster.config
        # the modes the model describes; any other is traced
        self.fits = (
            cfg.network_plugin == "flannel"
            and cfg.proxy_mode == "iptables"
            and not cfg.masquerade_all
        )
        self._model: Model | None = None
        self._ports: dict | None = None
        self._pod_by_ip: dict | None = None
        self._verdicts: dict[tuple, str | None] = {}
        self._groups: dict[int, tuple] = {}  # id(port) -> (port, its endpoint groups)

    # ------------------------------------------------------------------ built on first use

    @property
    def model(self) -> Model:
        if self._model is None:
            pods = [p for p in self.cluster.pods if plain(p) and p.ip is not None]
            self._model = build_model(selection(self.cluster), pods)
        return self._model

    def _port(self, target: Target):
        if self._ports is None:
            # the options the nodes' rules are written with: proxy_state keeps one state
            ports = proxy_state(self.cluster, proxy_options(self.cluster)).ports
            self._ports = {(p.cluster_ip, p.port, p.proto): p for p in ports}
        return self._ports.get((ip_text(target.ip), target.port, target.protocol))

    def _pod_at(self, ip: str) -> Pod | None:
        if self._pod_by_ip is None:
            # the Pods an endpoint address can be: the policy agent's (actionable) ones, by
            # address as an int (the int an IPv4Address keeps: no text made for 30,000 Pods;
            # only the endpoints of the Services probed are parsed)
            self._pod_by_ip = {k._ip: v for k, v in selection(self.cluster).by_ip.items()}
        try:
            key = int.from_bytes(inet_aton(ip), "big")
        except OSError:
            return None
        return self._pod_by_ip.get(key)

    # ------------------------------------------------------------------ answers

    def answer(self, src: Pod, target: Target) -> Answer | None:
        """The answer for Pod ``src`` connecting to ``target``, or None (trace it)."""
        if not self.fits or not _ordinary(src):
            return None
        proto = target.protocol.lower()
        if target.pod is not None and target.service is None:
            dst = target.pod
            if dst is src or not _ordinary(dst) or dst.ip != target.ip:
                return None
            why = self._denial(src, dst, proto, target.port)
            if why is None:
                return Answer("allow", None, (dst.key,), False)
            return Answer("deny", "reject", (), False)
        if target.service is None or target.pod is not None:
            return None
        # (found by address: a probe dialling a ClusterIP with ``to_ip`` reaches that port's
        # endpoints whatever Service it names; other addresses are not ClusterIPs: traced)
        port = self._port(target)
        if port is None or port.affinity_timeout is not None or not port.uses_cluster_endpoints:
            return None
        groups = self._endpoints(port)
        if groups is None:
            if not self.cluster.policies and not port.cluster_endpoints():
                # no policy agent chains in filter FORWARD: kube-proxy's "has no endpoints"
                # REJECT refuses the client at once (with policies, see _endpoints)
                return Answer("deny", "reject", (), False)
            return None  # no endpoints under the policy agent, an odd endpoint: traced
        m = self.model
        s = src_signature(m, src)
        # a hairpin: the client is one of the endpoints, and reaches itself through the bridge
        mine = groups[1].get(ip_text(src.ip))
        own = None if mine is None else (dst_signature(m, src), mine)
        reached: list[str] = []
        denied = masq = False
        for (d, eport), keys in groups[0]:
            if (d, eport) == own:
                keys = [k for k in keys if k != src.key]
                if self._self_verdict(s, d, proto, eport) is None:
                    # accepted, and masqueraded: kube-proxy's KUBE-SEP rule marks a
                    # connection from the endpoint itself (KUBE-MARK-MASQ)
                    reached.append(src.key)
                    masq = True
                else:
                    denied = True
                if not keys:
                    continue
            if self._verdict(s, d, proto, eport) is None:
                reached += keys
            else:
                denied = True
        if not denied:
            return Answer("allow", None, groups[2], masq)
        if not reached:
            return Answer("deny", "reject", (), False)
        return Answer("partial", None, tuple(sorted(set(reached))), masq)

    def _self_verdict(self, sig: tuple, own: tuple, proto: str, port: int) -> str | None:
        """A Pod's connection to itself through its Service: kube-router's Pod chain (pod.go)
        holds both directions' jumps, guarded by ``-d`` and ``-s`` the Pod's address, and
        both guards match; its policies' rules mark the packet, and only an unmarked one is
        rejected at the chain's end. So it is accepted (None) when the Pod is not isolated in
        one of the directions (the default chain marks it) or any rule of its ingress or
        egress policies admits the Pod to itself; else ``ingress``."""
        key = ("self", sig, own, proto, port)
        hit = self._verdicts.get(key, _MISS)
        if hit is _MISS:
            m = self.model
            out_, in_ = chain(m, sig, "egress"), chain(m, own, "ingress")
            ok = not out_ or not in_ or _admits(out_ + in_, sig, own, proto, port)
            hit = self._verdicts[key] = None if ok else "ingress"
        return hit

    def _endpoints(self, port) -> tuple | None:
        """The port's cluster endpoints grouped by what the policy rules test of them (their
        signature as a destination, and their port), each group's Pods, in kube-proxy's
        order; with each endpoint address's port and every Pod's key (sorted). None when the
        model does not describe them: no endpoints (kube-proxy's "has no endpoints" REJECT
        sits in filter FORWARD after the policy agent's chain, which ACCEPTs what its
        policies allow: whether the client is refused or its packet leaves for the underlay
        depends on that order), or an endpoint that is not an ordinary Pod. Made once per
        port: a Service's probes from every source share it."""
        hit = self._groups.get(id(port))
        if hit is not None and hit[0] is port:
            return hit[1]
        m = self.model
        eps = port.cluster_endpoints()
        groups: dict[tuple, list[str]] = {}
        out = None
        if eps:
            for e in eps:
                pod = self._pod_at(e.ip)
                if pod is None or not _ordinary(pod):
                    groups = {}
                    break
                groups.setdefault((dst_signature(m, pod), e.port), []).append(pod.key)
            if groups:
                keys = tuple(sorted({k for v in groups.values() for k in v}))
                out = (tuple(groups.items()), {e.ip: e.port for e in eps}, keys)
        self._groups[id(port)] = (port, out)
        return out

    def _denial(self, src: Pod, dst: Pod, proto: str, port: int) -> str | None:
        """None when both Pods' chains accept ``src`` -> ``dst`` on ``proto``/``port``, else
        ``egress`` or ``ingress``: the chain that rejects it first (the source's runs first)."""
        m = self.model
        # the atoms that matter (rules test only these): Pods alike share one evaluation
        return self._verdict(src_signature(m, src), dst_signature(m, dst), proto, port)

    def _verdict(self, s: tuple, d: tuple, proto: str, port: int) -> str | None:
        """:func:`_evaluate` of two signatures, memoized."""
        key = (s, d, proto, port)
        hit = self._verdicts.get(key, _MISS)
        if hit is _MISS:
            hit = self._verdicts[key] = _evaluate(self.model, s, d, proto, port)
        return hit


_MISS = object()


def check_model(cluster: Cluster) -> CheckModel:
    """The cluster's CheckModel, made once per Cluster object (identity memo, as
    podnet.control.policy_select.selection does): its answers are kept between checks."""
    if _MEMO[0] is not cluster:
        _MEMO[0], _MEMO[1] = cluster, CheckModel(cluster)
    return _MEMO[1]


_MEMO: list = [None, None]


def _ordinary(pod: Pod) -> bool:
    """A Pod the model covers: the agent polices it (not hostNetwork, not finished), it has an
    address and a node."""
    return plain(pod) and pod.ip is not None and pod.node is not None


def _evaluate(m: Model, src: tuple, dst: tuple, proto: str, port: int) -> str | None:
    """The policy verdict of one connection: the tests of reach_policy.evaluate for one pair of
    signatures instead of bitsets over classes; the source's chain runs first. A Pod no policy
    targets in a direction is not isolated in it."""
    for direction, atoms in (("egress", src), ("ingress", dst)):
        mine = chain(m, atoms, direction)
        if mine and not _admits(mine, src, dst, proto, port):
            return direction
    return None


def _admits(policies, src: tuple, dst: tuple, proto: str, port: int) -> bool:
    """Whether a rule of ``policies`` marks a connection between Pods holding the atoms
    ``src`` and ``dst`` on ``proto``/``port``."""
    have_s, have_d = set(src), set(dst)
    return any(
        (r.src is None or r.src in have_s)
        and (r.dst is None or r.dst in have_d)
        and port_ok(r, proto, port)
        for p in policies
        for r in p.rules
    )
