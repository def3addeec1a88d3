"""``podnet reach --via-service`` for tables too large to trace class pair by class pair.

Through a Service, a cell is one connection from a source Pod to the ClusterIP and port of the
first Service (by name) of the destination's namespace that selects it on the probed port
(:func:`service_for`). The connection does not depend on which of the Service's Pods was the
destination, only on that *target*: destination classes are targets (and, per probed port,
the Pods no Service selects: ``?`` cells).

What a source Pod finds at a target is what podnet.analysis.check_model answers for a probe: a
connection to each of the port's cluster endpoints, each accepted when the source's policy
chain lets it out and the endpoint's lets it in. That depends on the source only through its
policy signature (the atoms the agent's rules test) and, for a *hairpin* connection (the source
is one of the target's endpoints), on which targets it serves (on which port) and its signature
as an endpoint: its connection to itself passes kube-router's Pod chain once with both
directions' jumps (:meth:`podnet.analysis.check_model.CheckModel._self_verdict`). A source class is the signature, the
served targets with the endpoint signature, and the node where the verdict can depend on it (a
target with ``internalTrafficPolicy: Local``, an endpoint that is not an ordinary Pod). Sources
the model does not cover (hostNetwork, finished Pods) are classes per :func:`pod_class` and
node.

A class pair is then ``allow`` (every endpoint accepted), ``deny`` (none; the first endpoint's
denial names the chain: the source's egress or the endpoint's ingress — where both refuse on
one node, kube-router's order of its Pods' jumps decides which the trace names) or traced:
partial pairs, targets the model does not describe (session affinity, local traffic policy, no
endpoints, endpoints that are not ordinary Pods) and the other sources' pairs; ``?`` where no
Service selects the destination. Each signature's row is evaluated once over the distinct
endpoint profiles of the targets. podnet.analysis.reach traces a sample of the evaluated pairs
as a check, as it does for the policy evaluation at the Pod IP; tests/test_reach_service.py
holds the tables to tracing every pair.
"""

from __future__ import annotations

from podnet.analysis.check_model import CheckModel, _ordinary, check_model
from podnet.analysis.reach_classes import _port_of, pod_class
from podnet.analysis.reach_policy import (
    dst_signature,
    isolating,
    src_signature,
)
from podnet.analysis.reach_result import ALLOW, DENY_EG, DENY_IN, TRACED
from podnet.model.cluster import Cluster, Pod
from podnet.trace.resolve import Target

NONE = ("none",)
"""The profile of a destination class no Service selects."""


def _by_namespace(cluster: Cluster) -> dict[str, list]:
    """Each namespace's Services with a ClusterIP and a selector, sorted by key (made once per
    Cluster object)."""
    if _INDEX[0] is not cluster:
        index: dict[str, list] = {}
        for svc in sorted(cluster.services, key=lambda s: s.key):
            if svc.spec.selector and svc.cluster_ip is not None:
                index.setdefault(svc.namespace, []).append(svc)
        _INDEX[0], _INDEX[1] = cluster, index
    return _INDEX[1]


_INDEX: list = [None, None]


def service_for(cluster: Cluster, pod: Pod, port: int, proto: str):
    """The first Service (by name) of the Pod's namespace that selects it and has a port whose
    target is ``port`` (by number or by the Pod's port name), with that service port; None when
    there is none."""
    for svc in _by_namespace(cluster).get(pod.namespace, ()):
        if any(pod.labels.get(k) != v for k, v in svc.spec.selector.items()):
            continue
        for sp in svc.spec.ports:
            if sp.protocol.lower() != proto:
                continue
            t = sp.target
            num = t if isinstance(t, int) else pod.named_port(t, sp.protocol)
            if num == port:
                return svc, sp
    return None


def service_target(cluster: Cluster, pod: Pod, port: int | None, protocol: str | None):
    """The :class:`Target` a cell through a Service dials for destination ``pod`` (None: no
    Service selects it on that port).

    >>> import podnet
    >>> c = podnet.load().cluster  # the bundled demo
    >>> backend = next(p for p in c.pods if p.labels.get("app") == "backend")
    >>> service_target(c, backend, None, None).label  # its first port, 8080: the Service's 80
    'svc/default/backend:80'
    >>> frontend = next(p for p in c.pods if p.labels.get("app") == "frontend")
    >>> service_target(c, frontend, None, None) is None  # no Service selects it
    True
    """
    num, proto = _port_of(pod, port, protocol)
    found = service_for(cluster, pod, num, proto)
    if found is None:
        return None
    svc, sp = found
    return Target(svc.cluster_ip, sp.port, proto, f"svc/{svc.key}:{sp.port}", service=svc)


class ServiceReach:
    """Class keys and class rows of a reach table through Services (see the module)."""

    def __init__(self, cluster: Cluster, model: CheckModel):
        self.cluster = cluster
        self.cm = model
        self.targets: dict[tuple, Target | None] = {}  # destination key -> target
        self._profiles: dict[tuple, tuple | None] = {}
        self._counts: dict[tuple, dict[tuple, int]] = {}  # endpoints per profile entry

    @staticmethod
    def of(cluster: Cluster) -> ServiceReach | None:
        """The table's evaluation for ``cluster``, or None when the model does not describe its
        modes (another network plugin, proxy mode, masquerade-all): then every pair is traced.

        >>> import podnet
        >>> c = podnet.load().cluster
        >>> sr = ServiceReach.of(c)
        >>> pods = sorted(c.pods, key=lambda p: p.key)
        >>> skeys, dkeys = sr.keys(pods, pods, None, None)
        >>> sorted({k[0] for k in dkeys})  # Services dialled, and Pods no Service selects
        ['none', 'svc']
        """
        cm = check_model(cluster)
        return ServiceReach(cluster, cm) if cm.fits else None

    # ------------------------------------------------------------------ classes

    def keys(self, srcs: list[Pod], dsts: list[Pod], port, protocol) -> tuple[list, list]:
        """The source and destination class keys."""
        dkeys = []
        memo: dict[tuple, tuple] = {}
        for d in dsts:
            num, proto = _port_of(d, port, protocol)
            # Pods of one Deployment share the answer: namespace, labels and declared ports
            # are all service_for reads
            mk = (d.namespace, tuple(sorted(d.labels.items())), _declared(d), num, proto)
            key = memo.get(mk)
            if key is None:
                t = service_target(self.cluster, d, num, proto)
                key = ("none", proto, num) if t is None else ("svc", t.label, proto, num)
                self.targets.setdefault(key, t)
                memo[mk] = key
            dkeys.append(key)
        # endpoint address -> the targets it serves, with its port there: the endpoints a
        # described target connects to, every endpoint of one that is traced
        served: dict[str, list[tuple]] = {}
        by_node = False
        for key, t in self.targets.items():
            if t is None:
                continue
            info = self.cm._port(t)
            if info is None:
                continue
            eps = info.endpoints if self.profile(key) is None else info.cluster_endpoints()
            for e in eps:
                served.setdefault(e.ip, []).append((key, e.port))
            by_node = by_node or self._node_dependent(info)
        m = self.cm.model
        skeys = []
        for s in srcs:
            node = s.node if by_node else None
            if _ordinary(s):
                mine = tuple(sorted(set(served.get(str(s.ip), ()))))
                # a hairpin connection goes to the target's other endpoints and to the source
                # itself: as an endpoint, its destination signature counts too
                own = dst_signature(m, s) if mine else None
                skeys.append(("pod", src_signature(m, s), mine, own, node))
            else:
                skeys.append(("odd", pod_class(self.cluster, s), s.node))
        return skeys, dkeys

    def _node_dependent(self, info) -> bool:
        """Whether a connection to this port can depend on the client's node: only its local
        endpoints serve it, or an endpoint is not an ordinary Pod (the trace decides those)."""
        if info.itp_local:
            return True
        for e in info.endpoints:
            pod = self.cm._pod_at(e.ip)
            if pod is None or not _ordinary(pod):
                return True
        return False

    # ------------------------------------------------------------------ rows

    def profile(self, dkey: tuple) -> tuple | None:
        """What the verdict of a connection to ``dkey`` depends on besides the source: its
        endpoints' (signature, protocol, port) in kube-proxy's order without repeats; NONE for
        no Service; None when the model does not describe the target (traced)."""
        if dkey[0] == "none":
            return NONE
        hit = self._profiles.get(dkey, self)
        if hit is not self:
            return hit
        t = self.targets[dkey]
        info = self.cm._port(t)
        out = None
        if info is not None and info.affinity_timeout is None and info.uses_cluster_endpoints:
            # the check model's groups of the port's endpoints (None: no endpoints, or one
            # that is not an ordinary Pod: traced)
            groups = self.cm._endpoints(info)
            if groups is not None:
                proto = t.protocol.lower()
                counts = {(d, proto, p): len(keys) for (d, p), keys in groups[0]}
                out = tuple(counts)
                self._counts[dkey] = counts
        self._profiles[dkey] = out
        return out

    def rows(self, skeys: list, dkeys: list, progress) -> tuple[list[str], list, object]:
        """A row of codes per source class, the class pairs to trace, and the deny reasons."""
        m = self.cm.model
        profiles = [self.profile(k) for k in dkeys]
        ids: dict = {}
        pid = [ids.setdefault(p, len(ids)) for p in profiles]
        distinct = list(ids)
        by_sig: dict[tuple, tuple[str, list[int]]] = {}
        col = {k: j for j, k in enumerate(dkeys)}
        n_d = len(dkeys)
        rows: list[str] = []
        todo: list[tuple[int, int]] = []
        for i, key in enumerate(skeys):
            progress("reach: rows through Services", i, len(skeys))
            if key[0] == "odd":
                rows.append(TRACED * n_d)
                todo += [(i, j) for j in range(n_d)]
                continue
            sig = key[1]
            hit = by_sig.get(sig)
            if hit is None:
                codes = [self._code(sig, p) for p in distinct]
                row = "".join([codes[x] for x in pid])
                hit = by_sig[sig] = (row, [j for j, c in enumerate(row) if c == TRACED])
            row, traced = hit
            hairpin = {}
            for t, p in key[2]:
                j = col.get(t)
                if j is not None:
                    hairpin[j] = self._hairpin(sig, key[3], t, p, profiles[j])
            if hairpin:
                chars = list(row)
                for j, code in hairpin.items():
                    chars[j] = code
                row = "".join(chars)
            rows.append(row)
            if hairpin:  # the base row's traced pairs, the hairpin ones changed
                mine = set(traced) - hairpin.keys()
                mine |= {j for j, c in hairpin.items() if c == TRACED}
                todo += [(i, j) for j in sorted(mine)]
            else:
                todo += [(i, j) for j in traced]

        def reasons(i: int, j: int, direction: str) -> str:
            sig = skeys[i][1]
            label = dkeys[j][1]
            if direction == "egress":
                pols = ", ".join(isolating(m, sig, "egress"))
                return (f"the Pods of S{i + 1} are isolated for egress by {pols}; no egress rule "
                        f"admits traffic to the endpoints of {label}")  # fmt: skip
            first = profiles[j][0][0]  # DENY_IN: the first endpoint's chain refuses it
            pols = ", ".join(isolating(m, first, "ingress"))
            return (f"the endpoints of {label} are isolated for ingress by {pols}; no ingress "
                    f"rule admits traffic from the Pods of S{i + 1} on that port")  # fmt: skip

        return rows, todo, reasons

    def _code(self, sig: tuple, profile: tuple | None) -> str:
        """The class-pair code of a source signature at a target profile."""
        if profile is None or profile == NONE:
            return TRACED
        denials = [self.cm._verdict(sig, d, proto, port) for d, proto, port in profile]
        if all(x is None for x in denials):
            return ALLOW
        if all(x is not None for x in denials):
            # each endpoint's path walks the source's chain first: the first endpoint's
            # denial is the one the trace names
            return DENY_EG if denials[0] == "egress" else DENY_IN
        return TRACED  # some endpoints only: traced for its words

    def _hairpin(self, sig: tuple, own: tuple, dkey: tuple, port: int, profile) -> str:
        """The code of a source that is one of the target's endpoints (on ``port``): its
        connection goes to the other endpoints and, through the bridge's hairpin, to itself."""
        if profile is None or profile == NONE:
            return TRACED
        proto = dkey[2]
        mine = (own, proto, port)
        counts = self._counts[dkey]
        denials = []
        for entry in profile:
            if entry == mine:
                denials.append(self.cm._self_verdict(sig, own, proto, port))
                if counts[entry] == 1:  # no other endpoint like it
                    continue
            denials.append(self.cm._verdict(sig, *entry))
        if all(x is None for x in denials):
            return ALLOW
        if all(x is not None for x in denials):
            return DENY_EG if denials[0] == "egress" else DENY_IN
        return TRACED


def _declared(pod: Pod) -> tuple:
    return tuple(
        (c.init, p.name, p.protocol, p.container_port) for c in pod.containers for p in c.ports
    )
