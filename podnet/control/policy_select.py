"""Which Pods a NetworkPolicy selects and which Pods its peers name: the selection both the
policy agent's rules (podnet.control.policy) and the explanation of a verdict
(podnet.analysis.policy_explain) start from.

Semantics (networking.k8s.io/v1, kubernetes pkg/apis/networking/types.go): ``spec.podSelector``
selects Pods of the policy's namespace; a peer with only ``podSelector`` names Pods of the
policy's namespace; ``namespaceSelector`` names namespaces by their labels (every namespace
carries ``kubernetes.io/metadata.name``), both in one peer are ANDed. Pods the agent ignores
are left out, as kube-router's ``isNetPolActionable`` does (pkg/controllers/netpol/utils.go):
hostNetwork Pods (their traffic is the node's) and finished Pods (Succeeded, Failed).

Selections are memoised per selector, so policies that repeat a selector (the common case:
``podSelector: {}``) cost one scan of the namespace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address

from podnet.model.cluster import Cluster, Pod
from podnet.model.spec import LabelSelector, NetworkPolicySpec, PolicyPeer

FINISHED_PHASES = frozenset({"Succeeded", "Failed", "Completed"})


def actionable(pod: Pod) -> bool:
    """A Pod the policy agent writes rules for and puts in ipsets (kube-router
    ``isNetPolActionable``: not finished, has an IP, not hostNetwork)."""
    phase = pod.spec.phase if pod.spec is not None else "Running"
    return not pod.host_network and phase not in FINISHED_PHASES


def policy_key(policy: NetworkPolicySpec) -> str:
    return f"{policy.meta.namespace or 'default'}/{policy.meta.name}"


@dataclass
class Selection:
    """Selections over one cluster (built once per cluster; see :func:`selection`)."""

    cluster: Cluster
    pods_by_ns: dict[str, list[Pod]] = field(default_factory=dict)
    ns_labels: dict = field(default_factory=dict)
    by_ip: dict[IPv4Address, Pod] = field(default_factory=dict)
    _pods_memo: dict = field(default_factory=dict)
    _ns_memo: dict = field(default_factory=dict)
    _peers_memo: dict = field(default_factory=dict)
    _selected: dict[str, tuple[Pod, ...]] = field(default_factory=dict)
    _isolating: dict[str, tuple] = field(default_factory=dict)
    _policies_by_ns: dict[str, list[NetworkPolicySpec]] | None = None
    _target_key_sets: dict[str, frozenset[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for ns in self.cluster.namespaces:
            self.ns_labels[ns.name] = ns.labels
            self.pods_by_ns.setdefault(ns.name, [])
        for p in self.cluster.pods:
            if actionable(p):
                self.pods_by_ns.setdefault(p.namespace, []).append(p)
                self.by_ip.setdefault(p.ip, p)

    def pods(self, namespace: str, sel: LabelSelector | None) -> tuple[Pod, ...]:
        """Actionable Pods of ``namespace`` that ``sel`` selects (None: every Pod)."""
        key = (namespace, sel)
        hit = self._pods_memo.get(key)
        if hit is None:
            pods = self.pods_by_ns.get(namespace, ())
            hit = tuple(pods) if sel is None else tuple(p for p in pods if sel.matches(p.labels))
            self._pods_memo[key] = hit
        return hit

    def namespaces(self, sel: LabelSelector) -> tuple[str, ...]:
        """Namespaces whose labels ``sel`` selects, by name."""
        hit = self._ns_memo.get(sel)
        if hit is None:
            hit = tuple(sorted(n for n, labels in self.ns_labels.items() if sel.matches(labels)))
            self._ns_memo[sel] = hit
        return hit

    def selected(self, policy: NetworkPolicySpec) -> tuple[Pod, ...]:
        """The Pods ``spec.podSelector`` selects (the policy's targets)."""
        key = policy_key(policy)
        hit = self._selected.get(key)
        if hit is None:
            hit = self._selected[key] = self.pods(
                policy.meta.namespace or "default", policy.pod_selector
            )
        return hit

    def peer_pods(self, policy: NetworkPolicySpec, peer: PolicyPeer) -> tuple[Pod, ...]:
        """The Pods a peer names (kube-router ``evalPodPeer``); none for an ipBlock peer."""
        if peer.ip_block is not None:
            return ()
        if peer.namespace_selector is not None:
            # memoized: the same peers recur across policies, and the agent shares the members
            # of the sets it makes of equal selections (by the identity of this tuple)
            key = (peer.namespace_selector, peer.pod_selector)
            hit = self._peers_memo.get(key)
            if hit is None:
                out: list[Pod] = []
                for ns in self.namespaces(peer.namespace_selector):
                    out += self.pods(ns, peer.pod_selector)
                hit = self._peers_memo[key] = tuple(out)
            return hit
        if peer.pod_selector is not None:
            return self.pods(policy.meta.namespace or "default", peer.pod_selector)
        return ()

    def isolating(
        self, pod: Pod
    ) -> tuple[tuple[NetworkPolicySpec, ...], tuple[NetworkPolicySpec, ...]]:
        """The policies that isolate ``pod`` for (ingress, egress), in input order: those of
        its namespace that select it (asked per Pod: a question asks of a few Pods, where
        indexing every policy's targets first cost a second at 150,000 Pods)."""
        key = pod.key
        hit = self._isolating.get(key)
        if hit is None:
            ing, eg = [], []
            for pol in self._by_ns().get(pod.namespace, ()):
                if key in self._target_keys(pol):
                    if "Ingress" in pol.policy_types:
                        ing.append(pol)
                    if "Egress" in pol.policy_types:
                        eg.append(pol)
            hit = self._isolating[key] = (tuple(ing), tuple(eg))
        return hit

    def _by_ns(self) -> dict[str, list[NetworkPolicySpec]]:
        """The cluster's policies by namespace, in input order."""
        if self._policies_by_ns is None:
            index: dict[str, list[NetworkPolicySpec]] = {}
            for pol in self.cluster.policies:
                index.setdefault(pol.meta.namespace or "default", []).append(pol)
            self._policies_by_ns = index
        return self._policies_by_ns

    def _target_keys(self, policy: NetworkPolicySpec) -> frozenset[str]:
        """The keys of the Pods ``policy`` selects (made once per policy)."""
        name = policy_key(policy)
        hit = self._target_key_sets.get(name)
        if hit is None:
            hit = self._target_key_sets[name] = frozenset(p.key for p in self.selected(policy))
        return hit


def selection(cluster: Cluster) -> Selection:
    """The cluster's Selection, made once per Cluster object (identity memo, as
    podnet.control.kubeproxy_sync does: hashing 150,000 Pods per call would cost more)."""
    if _MEMO[0] is cluster:
        return _MEMO[1]
    sel = Selection(cluster)
    _MEMO[0], _MEMO[1] = cluster, sel
    return sel


_MEMO: list = [None, None]
