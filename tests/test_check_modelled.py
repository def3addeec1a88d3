"""``podnet check`` answered from the model (podnet.analysis.check_model), beside
tests/test_check_model.py: the command's text and JSON, and the model against the trace over
named and numbered target ports, UDP, host-gw, not-ready, terminating and hand-written
endpoints."""

from __future__ import annotations

import io
import json
from pathlib import Path

import podnet
import podnet.analysis.check as check
import podnet.analysis.check_model as check_model
from podnet.analysis.check import run_check
from podnet.analysis.probes import Probe
from podnet.cli import run as cli
from podnet.model.base import Pos

POS = Pos("<test>", 1, 1)


def _found(r) -> tuple:
    return (r.verdict, r.deny_kind, r.endpoints, r.masq, r.ok)


# ---------------------------------------------------------------------------- the command

CLUSTER = """
apiVersion: podnet/v1
kind: Cluster
metadata: {name: small}
spec:
  nodes: [{name: node-1}, {name: node-2}]
  {proxy}
---
{apiVersion: v1, kind: Namespace, metadata: {name: x}}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {app: a}}
spec: {nodeName: node-1, containers: [{name: c, image: i, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: x, labels: {app: b}}
spec: {nodeName: node-2, containers: [{name: c, image: i, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: h, namespace: x, labels: {app: h}}
spec: {nodeName: node-1, hostNetwork: true, containers: [{name: c, image: i}]}
---
{apiVersion: v1, kind: Service, metadata: {name: sb, namespace: x}, spec: {selector: {app: b}, ports: [{port: 80}]}}
---
{apiVersion: v1, kind: Service, metadata: {name: sa, namespace: x}, spec: {selector: {app: a}, ports: [{port: 80}]}}
---
{apiVersion: v1, kind: Service, metadata: {name: none, namespace: x}, spec: {selector: {app: zzz}, ports: [{port: 80}]}}
---
apiVersion: v1
kind: Service
metadata: {name: sticky, namespace: x}
spec: {selector: {app: b}, sessionAffinity: ClientIP, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: local, namespace: x}
spec: {selector: {app: b}, internalTrafficPolicy: Local, ports: [{port: 80}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-a, namespace: x}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress: [{from: [{podSelector: {matchLabels: {app: a}}}]}]
"""


def _small(tmp_path: Path, proxy: str = ""):
    path = tmp_path / "small.yaml"
    path.write_text(CLUSTER.replace("{proxy}", proxy))
    return podnet.load(str(path))


def _raw(loaded, probe: Probe) -> tuple | None:
    """The model's own answer for ``probe`` (None: not covered)."""
    if probe.src is None:
        return None
    resolver = loaded.resolver()
    origin = check._origin(resolver, probe)
    if origin.pod is None:
        return None
    target = check._target(resolver, probe)
    found = check_model.check_model(loaded.cluster).answer(origin.pod, target)
    return None if found is None else (found.verdict, found.deny_kind, found.endpoints, found.masq)


def test_cli_reports_the_model_in_text_and_json(tmp_path):
    _small(tmp_path)
    probes = tmp_path / "p.yaml"
    probes.write_text("- {from: x/a, to: x/b, port: 80, expect: allow}\n")
    args = ["check", str(probes), "-f", str(tmp_path / "small.yaml"), "--method", "model"]
    out, err = io.StringIO(), io.StringIO()
    assert cli(args + ["-o", "json"], out, err) == 0
    summary = json.loads(out.getvalue())["summary"]
    assert summary == {"total": 1, "ok": 1, "failed": 0, "unchecked": 0, "modelled": 1,
                       "traced": 1, "checked": 1, "disagreements": []}  # fmt: skip
    out = io.StringIO()
    assert cli(args, out, io.StringIO()) == 0
    assert "1 answered from kube-proxy's endpoints and the policy rules" in out.getvalue()
    out = io.StringIO()
    assert cli(args[:-2] + ["-o", "json"], out, io.StringIO()) == 0
    assert "modelled" not in json.loads(out.getvalue())["summary"]  # auto, 1 probe: traced


# ---------------------------------------------------------------------------- variations

VARIED = """
apiVersion: podnet/v1
kind: Cluster
metadata: {name: varied}
spec:
  network: {plugin: flannel, backend: host-gw}
  nodes: [{name: node-1}, {name: node-2}, {name: node-3}]
---
{apiVersion: v1, kind: Namespace, metadata: {name: a, labels: {team: red}}}
---
{apiVersion: v1, kind: Namespace, metadata: {name: b, labels: {team: blue}}}
---
{apiVersion: v1, kind: Service, metadata: {name: web, namespace: a}, spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: http}, {name: alt, port: 8443, targetPort: 8443}]}}
---
{apiVersion: v1, kind: Service, metadata: {name: dns, namespace: a}, spec: {selector: {app: dns}, ports: [{port: 53, protocol: UDP, targetPort: dns}]}}
---
{apiVersion: v1, kind: Service, metadata: {name: db, namespace: b}, spec: {selector: {app: db}, ports: [{port: 5432}]}}
---
{apiVersion: v1, kind: Service, metadata: {name: slow, namespace: b}, spec: {selector: {app: slow}, ports: [{port: 80, targetPort: 8080}]}}
---
{apiVersion: v1, kind: Service, metadata: {name: manual, namespace: b}, spec: {ports: [{port: 80}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: manual-1, namespace: b, labels: {kubernetes.io/service-name: manual}}
addressType: IPv4
ports: [{port: 80, protocol: TCP}]
endpoints: [{addresses: ["{db_ip}"]}, {addresses: ["192.0.2.10"]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-red, namespace: a}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {team: red}}}], ports: [{port: http}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-egress, namespace: b}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: 10.244.0.0/16, except: [10.244.3.0/24]}}], ports: [{port: 53, protocol: UDP}, {port: 8000, endPort: 8500}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: dns-deny, namespace: a}
spec: {podSelector: {matchLabels: {app: dns}}, policyTypes: [Ingress, Egress]}
"""

VARIED_PODS = [
    # name, namespace, node, labels, ports, extra status / metadata
    ("web-1", "a", "node-1", {"app": "web"}, [("http", 8080, "TCP"), ("tls", 8443, "TCP")], {}),
    ("web-2", "a", "node-2", {"app": "web"}, [("http", 9090, "TCP"), ("tls", 8443, "TCP")], {}),
    ("web-3", "a", "node-3", {"app": "web"}, [("http", 8080, "TCP")], {"ready": False}),
    ("dns-1", "a", "node-3", {"app": "dns"}, [("dns", 5353, "UDP")], {}),
    ("cli-1", "a", "node-2", {"app": "cli"}, [], {}),
    ("db-1", "b", "node-3", {"app": "db"}, [("sql", 5432, "TCP")], {"ip": "10.244.3.20"}),
    ("db-2", "b", "node-1", {"app": "db"}, [("sql", 5432, "TCP")], {"terminating": True}),
    ("slow-1", "b", "node-1", {"app": "slow"}, [("h", 8080, "TCP")], {"ready": False}),
    ("cli-2", "b", "node-1", {"app": "cli"}, [], {}),
]


def _varied(tmp_path: Path):
    docs = []
    for name, ns, node, labels, ports, extra in VARIED_PODS:
        spec = {
            "nodeName": node,
            "containers": [
                {"name": "c", "image": "i",
                 "ports": [{"name": n, "containerPort": p, "protocol": pr} for n, p, pr in ports]}
            ],
        }  # fmt: skip
        meta = {"name": name, "namespace": ns, "labels": labels}
        if extra.get("terminating"):
            meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        status = {"phase": "Running"}
        if "ip" in extra:
            status["podIP"] = extra["ip"]
        if extra.get("ready") is False:
            status["conditions"] = [{"type": "Ready", "status": "False"}]
        docs.append(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": meta,
                    "spec": spec,
                    "status": status,
                }
            )
        )
    path = tmp_path / "varied.yaml"
    path.write_text(VARIED.replace("{db_ip}", "10.244.3.20") + "---\n" + "\n---\n".join(docs))
    return podnet.load(str(path))


def test_model_agrees_with_the_trace_across_ports_protocols_and_endpoint_states(tmp_path):
    loaded = _varied(tmp_path)
    cluster = loaded.cluster
    pods = [p for p in cluster.pods if p.namespace in ("a", "b")]
    services = [s for s in cluster.services if s.namespace in ("a", "b")]
    probes = []
    for a in pods:
        for b in pods:
            for c in b.containers:
                for port in c.ports:
                    probes.append(dict(src=a.key, to=b.key, port=port.container_port,
                                       protocol=port.protocol))  # fmt: skip
        for s in services:
            for sp in s.spec.ports:
                probes.append(dict(src=a.key, service=s.key, port=sp.port, protocol=sp.protocol))
                probes.append(dict(src=a.key, service=s.key, to_ip=s.cluster_ip, port=sp.port,
                                   protocol=sp.protocol))  # fmt: skip
    probes = tuple(Probe(i, POS, (), **p) for i, p in enumerate(probes))
    traced = run_check(loaded, probes, method="trace")
    covered = 0
    for t in traced:
        raw = _raw(loaded, t.probe)
        assert raw is None or raw == _found(t)[:4], (t.probe, raw, _found(t))
        covered += raw is not None
    found = {_found(t)[:2] for t, p in zip(traced, probes, strict=True) if _raw(loaded, p)}
    # allowed and denied both modelled, over UDP too; the manual slice (an address that is no
    # Pod) and the Service with no ready endpoint left to the trace
    assert {("allow", None), ("deny", "reject")} <= found
    assert any(_raw(loaded, p) and p.protocol == "UDP" for p in probes)
    assert not any(_raw(loaded, p) for p in probes if p.service in ("b/manual", "b/slow"))
    assert covered >= len(probes) // 2
