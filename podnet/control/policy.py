"""NetworkPolicy enforced as kube-router's iptables policy controller programs it.

Layout (cloudnativelabs/kube-router v2.6.3, pkg/controllers/netpol/network_policy_controller.go,
pod.go, policy.go, utils.go), filter table of every node:

* ``INPUT``/``FORWARD``/``OUTPUT`` jump first (rule 1, re-ensured each sync) to
  ``KUBE-ROUTER-INPUT``/``-FORWARD``/``-OUTPUT``. KUBE-ROUTER-INPUT first RETURNs traffic to
  the service CIDR and to local node ports.
* Per Pod *on the node*: ``KUBE-POD-FW-<hash>``, jumped to for traffic to the Pod (FORWARD,
  routed and bridged; OUTPUT) and from it (INPUT, FORWARD, OUTPUT; bridged). The chain runs
  KUBE-NWPLCY-COMMON (conntrack RELATED,ESTABLISHED accept), accepts traffic from the node
  itself (``-m addrtype --src-type LOCAL``), runs the chains of the policies selecting the Pod
  (ingress ones for ``-d POD``, egress ones for ``-s POD``) or KUBE-NWPLCY-DEFAULT when none
  selects it in a direction, then REJECTs what no chain marked 0x10000, and marks 0x20000.
* Per policy (on every node): ``KUBE-NWPLCY-<hash>``: pairs of rules per allowed (peers, ports)
  that mark 0x10000 and RETURN. Peers and targets are ipsets: ``KUBE-DST-<hash>`` (targets of an
  ingress policy), ``KUBE-SRC-<hash>`` (targets of an egress policy), indexed per rule for peer
  Pods (hash:ip), ipBlocks (hash:net with nomatch excepts) and named ports resolved per Pod.
* ``KUBE-ROUTER-*`` end with ``-m mark --mark 0x20000/0x20000 -j ACCEPT``.

Chain and set names are kube-router's sha256/base32 hashes. kube-router salts chain names with
the sync's start time; podnet uses the fixed sync version :data:`SYNC_VERSION` so names are
stable from run to run. Pods come in the order of their IPs (kube-router walks a Go map).
Rule texts are written as ``iptables-save`` prints them back (``kernel_form`` leaves them as
they are). The agent runs when the inputs hold at least one NetworkPolicy.

Known kube-router behaviour kept as it is: a policy with both policy types is one chain jumped
to for both directions of the Pod, so its ingress rules can admit the Pod's egress (and the
reverse) when both ends are targets of that policy; an egress rule without ``to`` resolves a
named port on the Pods of the policy's namespace, then allows that number to any destination.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Network

from podnet.control.naming import hash16
from podnet.control.policy_select import Selection, policy_key, selection
from podnet.model.cluster import Cluster, Pod
from podnet.model.dataplane import Chain, IpSet
from podnet.model.hostnet import host_network
from podnet.model.spec import NetworkPolicySpec, PolicyRule

SYNC_VERSION = "0"
FAMILY = "IPv4"  # v1core.IPv4Protocol
INPUT_CHAIN = "KUBE-ROUTER-INPUT"
FORWARD_CHAIN = "KUBE-ROUTER-FORWARD"
OUTPUT_CHAIN = "KUBE-ROUTER-OUTPUT"
DEFAULT_CHAIN = "KUBE-NWPLCY-DEFAULT"
COMMON_CHAIN = "KUBE-NWPLCY-COMMON"
POD_FW_PREFIX = "KUBE-POD-FW-"
POLICY_PREFIX = "KUBE-NWPLCY-"
TOP_CHAINS = (("INPUT", INPUT_CHAIN), ("FORWARD", FORWARD_CHAIN), ("OUTPUT", OUTPUT_CHAIN))
MARK_OK = "0x10000/0x10000"
MARK_ACCEPT = "0x20000/0x20000"
ACCEPT_COMMENT = "rule to explicitly ACCEPT traffic that comply to network policies"


_hash16 = hash16  # base32(sha256(text))[:16]


def pod_chain_name(namespace: str, name: str) -> str:
    """pod.go ``podFirewallChainName``."""
    return POD_FW_PREFIX + _hash16(namespace + name + SYNC_VERSION)


def policy_chain_name(namespace: str, name: str) -> str:
    """policy.go ``networkPolicyChainName``."""
    return POLICY_PREFIX + _hash16(namespace + name + SYNC_VERSION + FAMILY)


def _set_name(prefix: str, *parts: object) -> str:
    return prefix + _hash16("".join(str(p) for p in parts))


def _uuid_comment(chain: str, comment: str, spec: list[str]) -> str:
    """``ensureTopLevelChains``' addUUIDForRuleSpec: the comment gets `` - <hash>`` of the
    chain and the rule's words joined without spaces."""
    return f"{comment} - {_hash16(chain + ''.join(spec))}"


@dataclass(frozen=True, slots=True)
class RuleOrigin:
    """Which part of which policy a marking rule of a policy chain stands for."""

    policy: str  # ns/name
    direction: str  # ingress | egress
    index: int  # 0-based rule index in spec.ingress / spec.egress
    what: str  # e.g. "from source pods", "from all sources", "from ipBlocks"


@dataclass
class AgentState:
    """Everything the agent programs that does not depend on the node, computed once per
    cluster, plus indexes the trace uses to name what a rule stands for."""

    sel: Selection
    shared_chains: tuple[Chain, ...] = ()
    ipsets: tuple[IpSet, ...] = ()
    origins: dict[tuple[str, int], RuleOrigin] = field(default_factory=dict)
    chain_policy: dict[str, str] = field(default_factory=dict)
    # KUBE-POD-FW-* -> Pod and Pod key -> KUBE-POD-FW-*, filled as Pods are named (see
    # chain_name): a node names its own Pods
    pod_chains: dict[str, Pod] = field(default_factory=dict)
    by_node: dict[str, list[Pod]] = field(default_factory=dict)
    policy_kind: dict[str, str] = field(default_factory=dict)  # ns/name -> ingress|egress|both
    shared_by_name: dict[str, Chain] = field(default_factory=dict)
    jumps: dict[str, str] = field(default_factory=dict)  # built-in chain -> its rule 1
    chain_of: dict[str, str] = field(default_factory=dict)
    host_nets: dict[int, IPv4Network] = field(default_factory=dict)  # one /32 object per IP
    members_memo: dict[int, tuple] = field(default_factory=dict)  # id(pods) -> (pods, members)
    # id of a policy of sel.cluster -> its positions there: a Pod's policies in cluster order
    # without walking every policy for every Pod
    policy_at: dict[int, list[int]] = field(default_factory=dict)
    _all_named: bool = False

    def chain_name(self, pod: Pod) -> str:
        """``pod``'s firewall chain (KUBE-POD-FW-*), named when first asked for: a node's rules
        name its own Pods, a trace a few nodes' (naming every Pod up front hashed 150,000
        names at 150,000 Pods, a tenth of the first question's cost)."""
        name = self.chain_of.get(pod.key)
        if name is None:
            name = self.chain_of[pod.key] = pod_chain_name(pod.namespace, pod.name)
            self.pod_chains[name] = pod
        return name

    def pod_of_chain(self, name: str) -> Pod | None:
        """The Pod whose firewall chain is ``name``, or None (every Pod named first if
        ``name`` could be one not named yet)."""
        pod = self.pod_chains.get(name)
        if pod is None and not self._all_named and name.startswith(POD_FW_PREFIX):
            for pods in self.by_node.values():
                for p in pods:
                    self.chain_name(p)
            self._all_named = True
            pod = self.pod_chains.get(name)
        return pod


# ------------------------------------------------------------------------------ shared chains


def _common_chain() -> Chain:
    """network_policy_controller.go ``ensureCommonPolicyChain`` (ICMP rules from
    pkg/utils/iptables.go ``CommonICMPRules``; iptables-save prints ICMP types as numbers)."""
    icmp = (("8", "allow icmp echo requests"), ("3", "allow icmp destination unreachable messages"),
            ("11", "allow icmp time exceeded messages"))  # fmt: skip
    return Chain(
        COMMON_CHAIN,
        (
            '-m comment --comment "rule to drop invalid state for pod" -m conntrack --ctstate INVALID -j DROP',
            '-m comment --comment "rule for stateful firewall for pod" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
        )
        + tuple(
            f'-p icmp -m comment --comment "{c}" -m icmp --icmp-type {t} -j ACCEPT' for t, c in icmp
        ),
    )


def _default_chain() -> Chain:
    """``ensureDefaultNetworkPolicyChain``: traffic of a Pod no policy isolates is marked OK."""
    return Chain(
        DEFAULT_CHAIN,
        (
            '-m comment --comment "rule to mark traffic matching a network policy" '
            f"-j MARK --set-xmark {MARK_OK}",
        ),
    )


class _PolicyWriter:
    """Writes one policy's chain and ipsets (policy.go syncNetworkPolicyChains,
    processIngressRules, processEgressRules, appendRuleToPolicyChain)."""

    def __init__(self, st: AgentState, pol: NetworkPolicySpec, sets: dict[str, IpSet]):
        self.st, self.pol, self.sets = st, pol, sets
        self.ns = pol.meta.namespace or "default"
        self.name = pol.meta.name
        self.chain = policy_chain_name(self.ns, self.name)
        self.rules: list[str] = []

    def add_set(self, name: str, kind: str, members) -> str:
        if name not in self.sets:
            self.sets[name] = IpSet(name, kind, tuple(members))
        return name

    def host_set(self, name: str, pods) -> str:
        if name in self.sets:
            return name
        # IPs in address order (sorting ints, as IPv4Address orders them); the /32 networks
        # are made once per IP and shared by every set holding it: 100,000s of members at scale
        # Sets of the same selection (the same tuple of Pods) share one members tuple, and so
        # the index built over it (podnet.model.dataplane.IpSet).
        memo = self.st.members_memo
        hit = memo.get(id(pods))
        if hit is None or hit[0] is not pods:
            nets = self.st.host_nets
            members = []
            # (_ip: int() is Python-level; host_network: the stdlib's constructor is slow)
            by_int = {p.ip._ip: p.ip for p in pods}
            for ip in sorted(by_int):
                net = nets.get(ip)
                if net is None:
                    net = nets[ip] = host_network(by_int[ip])
                members.append((net, False))
            hit = memo[id(pods)] = (pods, tuple(members))
        return self.add_set(name, "hash:ip", hit[1])

    def append(self, origin: RuleOrigin, comment: str, src: str | None, dst: str | None,
               proto: str | None, port: int | None, end: int | None) -> None:  # fmt: skip
        """Two rules: mark 0x10000 if the packet matches, then RETURN if marked."""
        words = [f"-p {proto.lower()}"] if proto else []
        words.append(f'-m comment --comment "{comment}"')
        if src:
            words.append(f"-m set --match-set {src} src")
        if dst:
            words.append(f"-m set --match-set {dst} dst")
        if proto and port is not None:
            rng = f"{port}:{end}" if end is not None and end >= port else f"{port}"
            words.append(f"-m {proto.lower()} --dport {rng}")
        head = " ".join(words)
        self.rules.append(f"{head} -j MARK --set-xmark {MARK_OK}")
        self.st.origins[(self.chain, len(self.rules))] = origin
        self.rules.append(f"{head} -m mark --mark {MARK_OK} -j RETURN")
        self.st.origins[(self.chain, len(self.rules))] = origin

    def ports(self, rule: PolicyRule, named_from) -> tuple[list, list]:
        """``processNetworkPolicyPorts``: numeric (proto, port, end) and named ports resolved
        to (proto, number, pods having it) over ``named_from``."""
        numeric, named = [], []
        for p in rule.ports:
            if p.port is None:
                numeric.append((p.protocol, None, None))
            elif isinstance(p.port, int):
                numeric.append((p.protocol, p.port, p.end_port))
            else:
                by_num: dict[int, list[Pod]] = {}
                for pod in named_from:
                    num = container_port(pod, p.port, p.protocol)
                    if num is not None:
                        by_num.setdefault(num, []).append(pod)
                named += [(p.protocol, n, by_num[n]) for n in sorted(by_num)]
        return numeric, named

    def peer_pods(self, rule: PolicyRule) -> tuple[Pod, ...]:
        """The Pods of a rule's peers (a single peer's tuple as the selection memoized it, so
        that sets of the same peers share their members)."""
        peers = rule.peers
        if len(peers) == 1:
            return self.st.sel.peer_pods(self.pol, peers[0])
        return tuple(p for peer in peers for p in self.st.sel.peer_pods(self.pol, peer))

    def ingress(self, dst_set: str) -> None:
        pol, ns, name = self.pol, self.ns, self.name
        key = policy_key(pol)
        targets = self.st.sel.selected(pol)
        for i, rule in enumerate(pol.ingress):
            numeric, named = self.ports(rule, targets)
            all_ports = not rule.ports
            pods = self.peer_pods(rule)
            blocks = [peer.ip_block for peer in rule.peers if peer.ip_block is not None]
            c_pods = f"rule to ACCEPT traffic from source pods to dest pods selected by policy name {name} namespace {ns}"
            c_all = f"rule to ACCEPT traffic from all sources to dest pods selected by policy name: {name} namespace {ns}"
            c_blk = f"rule to ACCEPT traffic from specified ipBlocks to dest pods selected by policy name: {name} namespace {ns}"
            if pods:
                o = RuleOrigin(key, "ingress", i, "from source pods")
                src = self.host_set(
                    _set_name("KUBE-SRC-", ns, name, "ingressrule", i, FAMILY, "pod"), pods
                )
                for proto, port, end in numeric:
                    self.append(o, c_pods, src, dst_set, proto, port, end)
                for j, (proto, port, having) in enumerate(named):
                    dset = self.host_set(
                        _set_name("KUBE-DST-", ns, name, "ingressrule", i, j, FAMILY, "namedport"),
                        having,
                    )
                    self.append(o, c_pods, src, dset, proto, port, None)
                if all_ports:
                    self.append(o, c_pods, src, dst_set, None, None, None)
            if not rule.peers and not all_ports:
                o = RuleOrigin(key, "ingress", i, "from all sources")
                for proto, port, end in numeric:
                    self.append(o, c_all, None, dst_set, proto, port, end)
                for j, (proto, port, having) in enumerate(named):
                    dset = self.host_set(
                        _set_name("KUBE-DST-", ns, name, "ingressrule", i, j, FAMILY, "namedport"),
                        having,
                    )
                    self.append(o, c_all, None, dset, proto, port, None)
            if not rule.peers and all_ports:
                self.append(
                    RuleOrigin(key, "ingress", i, "from all sources"),
                    c_all,
                    None,
                    dst_set,
                    None,
                    None,
                    None,
                )
            if blocks:
                o = RuleOrigin(key, "ingress", i, "from ipBlocks")
                src = self.add_set(
                    _set_name("KUBE-SRC-", ns, name, "ingressrule", i, FAMILY, "ipblock"),
                    "hash:net",
                    _block_members(blocks),
                )
                if not all_ports:
                    for proto, port, end in numeric:
                        self.append(o, c_blk, src, dst_set, proto, port, end)
                    for j, (proto, port, having) in enumerate(named):
                        dset = self.host_set(
                            _set_name(
                                "KUBE-DST-", ns, name, "ingressrule", i, j, FAMILY, "namedport"
                            ),
                            having,
                        )
                        self.append(o, c_blk, src, dset, proto, port, None)
                else:
                    self.append(o, c_blk, src, dst_set, None, None, None)

    def egress(self, src_set: str) -> None:
        pol, ns, name = self.pol, self.ns, self.name
        key = policy_key(pol)
        for i, rule in enumerate(pol.egress):
            all_ports = not rule.ports
            pods = self.peer_pods(rule)
            blocks = [peer.ip_block for peer in rule.peers if peer.ip_block is not None]
            # Named ports resolve on the peer Pods; without peers, on the policy's namespace.
            named_from = pods if rule.peers else self.st.sel.pods(ns, None)
            numeric, named = self.ports(rule, named_from)
            c_pods = f"rule to ACCEPT traffic from source pods to dest pods selected by policy name {name} namespace {ns}"
            c_all = f"rule to ACCEPT traffic from source pods to all destinations selected by policy name: {name} namespace {ns}"
            c_blk = f"rule to ACCEPT traffic from source pods to specified ipBlocks selected by policy name: {name} namespace {ns}"
            if pods:
                o = RuleOrigin(key, "egress", i, "to dest pods")
                dst = self.host_set(
                    _set_name("KUBE-DST-", ns, name, "egressrule", i, FAMILY, "pod"), pods
                )
                for proto, port, end in numeric:
                    self.append(o, c_pods, src_set, dst, proto, port, end)
                for j, (proto, port, having) in enumerate(named):
                    dset = self.host_set(
                        _set_name("KUBE-DST-", ns, name, "egressrule", i, j, FAMILY, "namedport"),
                        having,
                    )
                    self.append(o, c_pods, src_set, dset, proto, port, None)
                if all_ports:
                    self.append(o, c_pods, src_set, dst, None, None, None)
            if not rule.peers and not all_ports:
                o = RuleOrigin(key, "egress", i, "to all destinations")
                for proto, port, end in numeric:
                    self.append(o, c_all, src_set, None, proto, port, end)
                for proto, port, _having in named:
                    self.append(o, c_all, src_set, None, proto, port, None)
            if not rule.peers and all_ports:
                self.append(
                    RuleOrigin(key, "egress", i, "to all destinations"),
                    c_all,
                    src_set,
                    None,
                    None,
                    None,
                    None,
                )
            if blocks:
                o = RuleOrigin(key, "egress", i, "to ipBlocks")
                dst = self.add_set(
                    _set_name("KUBE-DST-", ns, name, "egressrule", i, FAMILY, "ipblock"),
                    "hash:net",
                    _block_members(blocks),
                )
                if not all_ports:
                    for proto, port, end in numeric:
                        self.append(o, c_blk, src_set, dst, proto, port, end)
                else:
                    self.append(o, c_blk, src_set, dst, None, None, None)


def container_port(pod: Pod, name: str, protocol: str) -> int | None:
    """kube-router ``grabNamedPortFromPod``: the containers' (not init containers') port of that
    name and protocol (also what podnet.analysis.reach_policy resolves named ports with)."""
    for c in pod.containers:
        if c.init:
            continue
        for p in c.ports:
            if p.name == name and p.protocol == protocol:
                return p.container_port
    return None


def _block_members(blocks) -> list[tuple[IPv4Network, bool]]:
    """``evalIPBlockPeer``: the cidr, excepts as ``nomatch``; /0 as two /1 (hash:net cannot
    hold /0)."""
    out: list[tuple[IPv4Network, bool]] = []
    for b in blocks:
        for net, nomatch in [(b.cidr, False)] + [(e, True) for e in b.excepts]:
            if net.prefixlen == 0:
                out += [(IPv4Network("0.0.0.0/1"), nomatch), (IPv4Network("128.0.0.0/1"), nomatch)]
            else:
                out.append((net, nomatch))
    return out


def _kind(pol: NetworkPolicySpec) -> str:
    ing, eg = "Ingress" in pol.policy_types, "Egress" in pol.policy_types
    return "both" if ing and eg else "egress" if eg else "ingress"


def build_agent(cluster: Cluster) -> AgentState:
    """The node-independent part of the agent's state for ``cluster``."""
    st = AgentState(selection(cluster))
    for i, pol in enumerate(st.sel.cluster.policies):
        st.policy_at.setdefault(id(pol), []).append(i)
    sets: dict[str, IpSet] = {}
    chains = [_common_chain(), _default_chain()]
    for pol in cluster.policies:
        w = _PolicyWriter(st, pol, sets)
        kind = st.policy_kind[policy_key(pol)] = _kind(pol)
        st.chain_policy[w.chain] = policy_key(pol)
        targets = st.sel.selected(pol)
        if kind in ("both", "ingress"):
            dst = w.host_set(_set_name("KUBE-DST-", w.ns, w.name, FAMILY), targets)
            w.ingress(dst)
        if kind in ("both", "egress"):
            src = w.host_set(_set_name("KUBE-SRC-", w.ns, w.name, FAMILY), targets)
            w.egress(src)
        chains.append(Chain(w.chain, tuple(w.rules)))
    st.shared_chains = tuple(chains)
    st.shared_by_name = {c.name: c for c in chains}
    st.jumps = builtin_jumps()
    st.ipsets = tuple(sets[n] for n in sorted(sets))
    for ns_pods in st.sel.pods_by_ns.values():
        for pod in ns_pods:
            st.by_node.setdefault(pod.node, []).append(pod)
    for pods in st.by_node.values():
        pods.sort(key=lambda p: (p.ip._ip, p.key))
    return st


def agent_state(cluster: Cluster) -> AgentState | None:
    """The agent's state, once per Cluster object; None when the cluster has no policy."""
    if not cluster.policies:
        return None
    if _MEMO[0] is cluster:
        return _MEMO[1]
    st = build_agent(cluster)
    _MEMO[0], _MEMO[1] = cluster, st
    return st


_MEMO: list = [None, None]


# ------------------------------------------------------------------------------ per node


def _pod_chain(st: AgentState, pod: Pod, chain: str) -> Chain:
    """pod.go ``setupPodNetpolRules`` (rules inserted at 1, so they read in reverse) and the
    tail rules of ``syncPodFirewallChains``."""
    ip = f"{pod.ip}/32"
    ing, eg = st.sel.isolating(pod)
    inserted: list[str] = []  # in the order kube-router inserts them at position 1
    has_ing = has_eg = False
    mine = {id(p) for p in ing + eg}
    policies = st.sel.cluster.policies
    for at in sorted(i for pid in mine for i in st.policy_at.get(pid, ())):
        pol = policies[at]
        kind = st.policy_kind[policy_key(pol)]
        target = policy_chain_name(pol.meta.namespace or "default", pol.meta.name)
        comment = f'-m comment --comment "run through nw policy {pol.meta.name}"'
        if kind == "both":
            has_ing = has_eg = True
            inserted.append(f"{comment} -j {target}")
        elif kind == "ingress":
            has_ing = True
            inserted.append(f"-d {ip} {comment} -j {target}")
        else:
            has_eg = True
            inserted.append(f"-s {ip} {comment} -j {target}")
    if not has_ing:
        inserted.append(
            f'-d {ip} -m comment --comment "run through default ingress network policy chain" -j {DEFAULT_CHAIN}'
        )
    if not has_eg:
        inserted.append(
            f'-s {ip} -m comment --comment "run through default egress network policy chain" -j {DEFAULT_CHAIN}'
        )
    inserted.append(
        f'-d {ip} -m comment --comment "rule to permit the traffic traffic to pods when source is the pod\'s local node" -m addrtype --src-type LOCAL -j ACCEPT'
    )
    inserted.append(
        f'-m comment --comment "common bi-directional traffic policy rules" -j {COMMON_CHAIN}'
    )
    who = f"POD name:{pod.name} namespace: {pod.namespace}"
    tail = (
        f'-m comment --comment "rule to log dropped traffic {who}" -m mark ! --mark {MARK_OK} -m limit --limit 10/min --limit-burst 10 -j NFLOG --nflog-group 100',
        f'-m comment --comment "rule to REJECT traffic destined for {who}" -m mark ! --mark {MARK_OK} -j REJECT --reject-with icmp-port-unreachable',
        "-j MARK --set-xmark 0x0/0x10000",
        f'-m comment --comment "set mark to ACCEPT traffic that comply to network policies" -j MARK --set-xmark {MARK_ACCEPT}',
    )
    return Chain(chain, tuple(reversed(inserted)) + tail)


def _top_rules(cluster: Cluster) -> dict[str, list[str]]:
    """The fixed head of KUBE-ROUTER-INPUT (``ensureTopLevelChains``)."""
    cidr = str(cluster.config.service_cidr)
    lo, hi = cluster.config.node_port_range
    ports = f"{lo}:{hi}"
    c = "allow traffic to primary/secondary cluster IP range"
    spec = ["-m", "comment", "--comment", c, "-d", cidr, "-j", "RETURN"]
    head = [f'-d {cidr} -m comment --comment "{_uuid_comment(INPUT_CHAIN, c, spec)}" -j RETURN']
    for proto in ("tcp", "udp"):
        c = f"allow LOCAL {proto.upper()} traffic to node ports"
        spec = ["-p", proto, "-m", "comment", "--comment", c, "-m", "addrtype", "--dst-type",
                "LOCAL", "-m", "multiport", "--dports", ports, "-j", "RETURN"]  # fmt: skip
        head.append(
            f'-p {proto} -m comment --comment "{_uuid_comment(INPUT_CHAIN, c, spec)}" '
            f"-m addrtype --dst-type LOCAL -m multiport --dports {ports} -j RETURN"
        )
    return {INPUT_CHAIN: head, FORWARD_CHAIN: [], OUTPUT_CHAIN: []}


def builtin_jumps() -> dict[str, str]:
    """Rule 1 of INPUT, FORWARD and OUTPUT: the jump to kube-router's top-level chain."""
    out = {}
    for builtin, custom in TOP_CHAINS:
        spec = ["-m", "comment", "--comment", "kube-router netpol", "-j", custom]
        out[builtin] = (
            f'-m comment --comment "{_uuid_comment(builtin, "kube-router netpol", spec)}" -j {custom}'
        )
    return out


@dataclass(frozen=True, slots=True, eq=False)
class AgentNode:
    """The agent's filter-table state on one node: the jumps it inserts as rule 1 of INPUT,
    FORWARD and OUTPUT, its top-level chains (one jump per local Pod each way), the policy
    chains every node shares, and the local Pods' firewall chains, written when first asked
    for (a trace reads a few of them; ``iptables-save`` all)."""

    node: str
    jumps: dict[str, str]
    tops: tuple[Chain, ...]
    st: AgentState
    _pods: dict[str, Chain] = field(default_factory=dict, repr=False)
    _heads: dict[str, tuple] = field(default_factory=dict, repr=False)

    def chain(self, name: str) -> Chain | None:
        """The agent's chain ``name`` on this node, or None."""
        for c in self.tops:
            if c.name == name:
                return c
        hit = self.st.shared_by_name.get(name)
        if hit is not None:
            return hit
        hit = self._pods.get(name)
        if hit is None:
            # (the node's own Pods were named when its top chains were written)
            pod = self.st.pod_chains.get(name)
            if pod is None or pod.node != self.node:
                return None
            hit = self._pods[name] = _pod_chain(self.st, pod, name)
        return hit

    def has(self, name: str) -> bool:
        """Whether ``chain(name)`` gives a chain, without writing a Pod's firewall chain."""
        if name in self._pods or name in self.st.shared_by_name:
            return True
        if any(c.name == name for c in self.tops):
            return True
        pod = self.st.pod_chains.get(name)
        return pod is not None and pod.node == self.node

    def host_index(self, name: str, head_of) -> tuple | None:
        """A top chain's rules by the host address their text begins with, as a walk's index
        keys them (podnet.dataplane.lazy_ruleset): ``({IP: positions}`` of ``-d IP/32``,
        ``{IP: positions}`` of ``-s IP/32``, the other positions``)``; None for another chain.
        The rules written per local Pod are placed as they were written (a Pod's address
        known, not read back from the texts); the few others are read by ``head_of(text)``,
        which gives ``("dst" | "src", IP as an int)`` or None."""
        hit = self._heads.get(name)
        if hit is not None:
            return hit
        chain = next((c for c in self.tops if c.name == name), None)
        if chain is None:
            return None
        layout = _PER_POD[name]  # the head each of a Pod's rules begins with, in order
        pods = self.st.by_node.get(self.node, ())
        rules = chain.rules
        first = len(rules) - 1 - len(layout) * len(pods)  # the fixed head, then the Pods'
        found: tuple[dict[int, tuple[int, ...]], dict[int, tuple[int, ...]]] = ({}, {})
        always: list[int] = []
        for pos in (*range(first), len(rules) - 1):
            head = head_of(rules[pos])
            if head is None:
                always.append(pos)
            else:
                d = found[head[0] == "src"]
                d[head[1]] = d.get(head[1], ()) + (pos,)
        pos = first
        for pod in pods:
            ip = pod.ip._ip  # (the int IPv4Address keeps)
            for src in layout:
                d = found[src]
                d[ip] = d.get(ip, ()) + (pos,)
                pos += 1
        # (positions ascend in each entry and in ``always``: the head, the Pods', the tail)
        hit = self._heads[name] = (found[0], found[1], tuple(always))
        return hit

    def user_chains(self) -> tuple[Chain, ...]:
        """Every user chain, in the order the agent creates them (tops, policies, Pods)."""
        pods = tuple(self.chain(self.st.chain_name(p)) for p in self.st.by_node.get(self.node, ()))
        return self.tops + self.st.shared_chains + pods  # type: ignore[operator]


# the rules agent_node writes per local Pod in each top chain, by the address they begin with:
# False for "-d POD/32", True for "-s POD/32"
_PER_POD = {
    FORWARD_CHAIN: (False, False, True, True),
    OUTPUT_CHAIN: (False, True),
    INPUT_CHAIN: (True,),
}


def agent_node(cluster: Cluster, node: str) -> AgentNode | None:
    """The agent's state on ``node`` (see :class:`AgentNode`); None when the cluster has no
    policy."""
    st = agent_state(cluster)
    if st is None:
        return None
    top = _top_rules(cluster)
    fwd, out, inp = top[FORWARD_CHAIN], top[OUTPUT_CHAIN], top[INPUT_CHAIN]
    for pod in st.by_node.get(node, ()):
        chain = st.chain_name(pod)
        ip = f"{pod.ip}/32"
        to = f'-m comment --comment "rule to jump traffic destined to POD name:{pod.name} namespace: {pod.namespace} to chain {chain}"'
        frm = f'-m comment --comment "rule to jump traffic from POD name:{pod.name} namespace: {pod.namespace} to chain {chain}"'
        fwd += (
            f"-d {ip} {to} -j {chain}",
            f"-d {ip} -m physdev --physdev-is-bridged {to} -j {chain}",
            f"-s {ip} {frm} -j {chain}",
            f"-s {ip} -m physdev --physdev-is-bridged {frm} -j {chain}",
        )
        out += (f"-d {ip} {to} -j {chain}", f"-s {ip} {frm} -j {chain}")
        inp.append(f"-s {ip} {frm} -j {chain}")
    accept = f'-m comment --comment "{ACCEPT_COMMENT}" -m mark --mark {MARK_ACCEPT} -j ACCEPT'
    tops = tuple(Chain(name, tuple(rules) + (accept,)) for name, rules in top.items())
    return AgentNode(node, st.jumps, tops, st)


def agent_chains(cluster: Cluster, node: str) -> tuple[dict[str, str], tuple[Chain, ...]] | None:
    """The filter-table rules the agent programs on ``node``: the jump to insert as rule 1 of
    each built-in chain, and its user chains. None when the cluster has no policy."""
    an = agent_node(cluster, node)
    return None if an is None else (an.jumps, an.user_chains())


def node_ipsets(cluster: Cluster, node: str) -> tuple[IpSet, ...]:
    """The ipsets on ``node``: every policy's sets (kube-router syncs all policies on every
    node); one shared tuple for all nodes."""
    st = agent_state(cluster)
    return () if st is None else st.ipsets
