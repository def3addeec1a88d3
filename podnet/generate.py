"""Synthetic clusters of a given size, for benchmarks and for trying podnet at scale.

The output is what podnet reads: one ``Cluster`` document, then ``Namespace``, ``Deployment``,
``Service`` and ``NetworkPolicy`` objects, deterministically derived from a seed (the same size and
seed give the same bytes on every run and machine: ``random.Random`` is seeded and nothing depends
on set or hash order).

The shape follows what large clusters look like:

- Deployments of very different sizes: many with a handful of replicas, a few with hundreds (a
  Pareto spread, capped at 250 endpoints per Service, the sig-scalability limit of
  kubernetes/community sig-scalability/configs-and-limits/thresholds.md).
- One Service per Deployment (selector ``app``), port 80 to the named container port ``http``;
  a few are NodePort Services, some expose a second (metrics) port. About one Deployment in ten is
  a worker without a Service.
- Namespaces per team (about 20 Services each), labelled ``team`` and ``env``.
- NetworkPolicies in the patterns the Kubernetes documentation teaches: a default deny of ingress
  per namespace, an allow from the namespaces of the same team, and allows by label (``tier:
  frontend`` Pods may reach one ``app`` on its port).

>>> docs = generate(SIZES["S"], seed=1)
>>> [d["kind"] for d in docs][:2]
['Cluster', 'Namespace']
>>> sum(d["spec"]["replicas"] for d in docs if d["kind"] == "Deployment")
30
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TextIO

MAX_ENDPOINTS = 250
"""Endpoints per Service at most (sig-scalability thresholds)."""
SERVICES_PER_NAMESPACE = 20
WORDS = (
    "ads", "analytics", "auth", "billing", "cart", "catalog", "checkout", "search", "inventory",
    "mail", "media", "orders", "payments", "profile", "ranking", "reviews", "shipping", "social",
    "stock", "users",
)  # fmt: skip
ROLES = ("api", "web", "worker", "db", "cache", "gateway", "frontend", "backend")
TIERS = {"api": "backend", "web": "frontend", "worker": "backend", "db": "data", "cache": "data",
         "gateway": "frontend", "frontend": "frontend", "backend": "backend"}  # fmt: skip
ZONES = ("zone-a", "zone-b", "zone-c")


@dataclass(frozen=True)
class Size:
    """How big a cluster to make. ``endpoints`` caps the replicas behind one Service."""

    nodes: int
    pods_per_node: int
    services: int
    endpoints: int = MAX_ENDPOINTS
    policies: int = 0

    @property
    def pods(self) -> int:
        return self.nodes * self.pods_per_node


SIZES = {
    "S": Size(nodes=3, pods_per_node=10, services=10, policies=3),
    "M": Size(nodes=100, pods_per_node=30, services=1000, policies=150),
    "L": Size(nodes=1000, pods_per_node=30, services=5000, policies=750),
    "XL": Size(nodes=5000, pods_per_node=30, services=10000, policies=1500),
}
"""The sizes of issue 7; XL is Kubernetes' tested limit (5,000 nodes, 150,000 Pods, 10,000
Services), with 1,500 NetworkPolicies."""


def generate(size: Size, seed: int = 0) -> list[dict]:
    """The documents of a synthetic cluster of ``size``, derived from ``seed`` alone."""
    rng = random.Random(seed)
    namespaces = _namespaces(size)
    deployments = _deployments(size, namespaces, rng)
    docs: list[dict] = [_cluster(size)]
    docs += [_namespace(ns, i) for i, ns in enumerate(namespaces)]
    for d in deployments:
        docs.append(_deployment(d))
    for d in deployments:
        if d.service:
            docs.append(_service(d, rng))
    docs += _policies(size.policies, namespaces, deployments)
    return docs


def write_yaml(docs: Iterable[dict], out: TextIO) -> None:
    """Write the documents as one YAML stream (libyaml's emitter when present: it is fast)."""
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    yaml.dump_all(
        docs,
        out,
        Dumper=dumper,
        sort_keys=False,
        default_flow_style=False,
        width=200,
        explicit_start=True,
    )


# ---------------------------------------------------------------------------------- parts


@dataclass(frozen=True)
class _Deploy:
    namespace: str
    name: str
    role: str
    replicas: int
    service: bool
    metrics: bool


def _namespaces(size: Size) -> list[str]:
    count = max(1, -(-size.services // SERVICES_PER_NAMESPACE))
    if count == 1:
        return ["default"]
    return [f"{WORDS[i % len(WORDS)]}-{i // len(WORDS) + 1}" for i in range(count)]


def _spread(total: int, count: int, cap: int, rng: random.Random) -> list[int]:
    """``total`` split over ``count`` parts of at most ``cap``: Pareto weights (many small, few
    large), at least one each while enough remain. Exact sum unless ``count * cap < total``."""
    if count == 0:
        return []
    total = min(total, count * cap)
    base = 1 if total >= count else 0
    sizes = [base] * count if base else [1 if i < total else 0 for i in range(count)]
    weights = [rng.paretovariate(1.16) for _ in range(count)]
    left = total - sum(sizes)
    open_ = [i for i in range(count) if sizes[i] < cap]
    while left > 0 and open_:
        w = sum(weights[i] for i in open_)
        given = 0
        for i in open_:
            add = min(cap - sizes[i], int(left * weights[i] / w))
            sizes[i] += add
            given += add
        left -= given
        open_ = [i for i in open_ if sizes[i] < cap]
        if given == 0:  # what rounding left: one each, heaviest first
            for i in sorted(open_, key=lambda j: (-weights[j], j))[:left]:
                sizes[i] += 1
            left = 0
    return sizes


def _deployments(size: Size, namespaces: list[str], rng: random.Random) -> list[_Deploy]:
    workers = size.services // 10
    count = size.services + workers
    replicas = _spread(size.pods, count, size.endpoints, rng)
    out = []
    for i in range(count):
        service = i < size.services
        ns = namespaces[(i if service else i - size.services) % len(namespaces)]
        role = ROLES[rng.randrange(len(ROLES))] if service else "worker"
        word = WORDS[rng.randrange(len(WORDS))]
        out.append(
            _Deploy(
                ns, f"{word}-{role}-{i}", role, replicas[i], service, service and rng.random() < 0.2
            )
        )
    return out


def _cluster(size: Size) -> dict:
    spec: dict = {}
    if size.nodes > 254:  # one /24 per node: 10.244.0.0/16 holds 255 of them
        # node i (1-based) takes the i-th /24, so N nodes need N + 1 of them
        spec["clusterCIDR"] = f"10.128.0.0/{max(24 - size.nodes.bit_length(), 9)}"
    spec["nodes"] = [
        {"name": f"node-{i}", "labels": {"topology.kubernetes.io/zone": ZONES[i % len(ZONES)]}}
        for i in range(1, size.nodes + 1)
    ]
    if size.pods_per_node > 100:
        for n in spec["nodes"]:
            n["allocatable"] = {
                "cpu": "64",
                "memory": "256Gi",
                "pods": str(size.pods_per_node + 10),
            }
    return {
        "apiVersion": "podnet/v1",
        "kind": "Cluster",
        "metadata": {"name": f"synthetic-{size.nodes}"},
        "spec": spec,
    }


def _namespace(name: str, i: int) -> dict:
    labels = {
        "team": name.rsplit("-", 1)[0] if name != "default" else "default",
        "env": ("prod", "staging")[i % 5 == 4],
    }
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def _deployment(d: _Deploy) -> dict:
    labels = {"app": d.name, "tier": TIERS[d.role]}
    ports = [{"name": "http", "containerPort": 8080}]
    if d.metrics:
        ports.append({"name": "metrics", "containerPort": 9090})
    container = {
        "name": d.role,
        "image": f"registry.example/{d.name.rsplit('-', 1)[0]}:1.0",
        "ports": ports,
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": d.name, "namespace": d.namespace},
        "spec": {
            "replicas": d.replicas,
            "selector": {"matchLabels": {"app": d.name}},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }


def _service(d: _Deploy, rng: random.Random) -> dict:
    ports = [{"name": "http", "port": 80, "targetPort": "http"}]
    if d.metrics:
        ports.append({"name": "metrics", "port": 9090, "targetPort": 9090})
    spec: dict = {"selector": {"app": d.name}, "ports": ports}
    if rng.random() < 0.03:
        spec["type"] = "NodePort"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": d.name, "namespace": d.namespace},
        "spec": spec,
    }


def _policies(count: int, namespaces: list[str], deployments: list[_Deploy]) -> list[dict]:
    """Policy k goes to namespace ``k % n``; the first in a namespace denies all ingress, the second
    allows the team's namespaces, the others allow ``tier: frontend`` Pods to one app's port."""
    apps: dict[str, list[str]] = {ns: [] for ns in namespaces}
    for d in deployments:
        if d.service:
            apps[d.namespace].append(d.name)
    out = []
    n = len(namespaces)
    for k in range(count):
        ns = namespaces[k % n]
        nth = k // n
        meta = {"name": "", "namespace": ns}
        if nth == 0:
            meta["name"] = "default-deny-ingress"
            spec: dict = {"podSelector": {}, "policyTypes": ["Ingress"]}
        elif nth == 1:
            meta["name"] = "allow-from-team"
            team = ns.rsplit("-", 1)[0] if ns != "default" else "default"
            spec = {
                "podSelector": {},
                "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": team}}}]}],
            }
        else:
            names = apps[ns] or [ns]
            app = names[(nth - 2) % len(names)]
            meta["name"] = (
                f"allow-frontend-to-{app}" if nth - 2 < len(names) else f"allow-frontend-{nth}"
            )
            spec = {
                "podSelector": {"matchLabels": {"app": app}},
                "ingress": [
                    {
                        "from": [{"podSelector": {"matchLabels": {"tier": "frontend"}}}],
                        "ports": [{"protocol": "TCP", "port": 8080}],
                    }
                ],
            }
        out.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": meta,
                "spec": spec,
            }
        )
    return out
