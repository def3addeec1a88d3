"""flanneld's iptables rules on a node (flannel-io/flannel pkg/trafficmngr/iptables/iptables.go).

``masqRules`` (``--ip-masq``, set by kube-flannel.yml) fill nat FLANNEL-POSTRTG, jumped to from
POSTROUTING; ``forwardRules`` (``--iptables-forward-rules``, default true) fill filter FLANNEL-FWD,
jumped to from FORWARD. flannel applies them with ``iptables-restore --noflush`` using ``-A``:
the jumps are *appended* to the built-in chains, so they end up after kube-proxy's jumps, which
kube-proxy prepends (EnsureRule Prepend) -- whichever of the two starts first. flannel writes every
``--comment`` value in double quotes (iptables_restore.go buildIPTablesRestorePayload).
"""

from __future__ import annotations

from podnet.model.cluster import Cluster

POSTRTG = "FLANNEL-POSTRTG"
FWD = "FLANNEL-FWD"
# trafficmngr.KubeProxyMark: traffic kube-proxy marked is left to KUBE-POSTROUTING.
KUBE_PROXY_MARK = "0x4000/0x4000"
_MASQ = '-m comment --comment "flanneld masq"'
_FWD = '-m comment --comment "flanneld forward"'


def flannel_rules(
    cluster: Cluster, node: str, *, random_fully: bool = True
) -> dict[tuple[str, str], tuple[str, ...]]:
    """flannel's rules on ``node``: ``{(table, chain): rules}`` for POSTROUTING/FORWARD (the
    jumps, to append) and FLANNEL-POSTRTG/FLANNEL-FWD. Empty when the CNI is not flannel.

    ``random_fully``: go-iptables HasRandomFully (iptables >= 1.6.2) and
    ``--ip-masq-random-fully-disable`` unset; then MASQUERADE gets ``--random-fully``.

    >>> from podnet.model.spec import ClusterConfig
    >>> from podnet.model.cluster import Cluster, Node
    >>> from ipaddress import IPv4Address, IPv4Network
    >>> c = Cluster(ClusterConfig(), (Node("n1", 1, IPv4Address("192.168.0.11"),
    ...             IPv4Network("10.244.1.0/24")),), (), (), (), ())
    >>> flannel_rules(c, "n1")[("filter", "FLANNEL-FWD")][0]
    '-s 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT'
    """
    n = cluster.node(node)
    if n is None or cluster.config.network_plugin != "flannel":
        return {}
    cluster_cidr = str(cluster.config.cluster_cidr)
    pod_cidr = str(n.pod_cidr)
    masq = "-j MASQUERADE --random-fully" if random_fully else "-j MASQUERADE"
    return {
        ("nat", "POSTROUTING"): (f"{_MASQ} -j {POSTRTG}",),
        ("nat", POSTRTG): (
            f"-m mark --mark {KUBE_PROXY_MARK} {_MASQ} -j RETURN",
            f"-s {pod_cidr} -d {cluster_cidr} {_MASQ} -j RETURN",
            f"-s {cluster_cidr} -d {pod_cidr} {_MASQ} -j RETURN",
            f"! -s {cluster_cidr} -d {pod_cidr} {_MASQ} -j RETURN",
            f"-s {cluster_cidr} ! -d 224.0.0.0/4 {_MASQ} {masq}",
            f"! -s {cluster_cidr} -d {cluster_cidr} {_MASQ} {masq}",
        ),
        ("filter", "FORWARD"): (f"{_FWD} -j {FWD}",),
        ("filter", FWD): (
            f"-s {cluster_cidr} {_FWD} -j ACCEPT",
            f"-d {cluster_cidr} {_FWD} -j ACCEPT",
        ),
    }
