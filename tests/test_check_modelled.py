"""``podnet check`` answered from the model (podnet.analysis.check_model): the same results as
tracing every probe — on every conformance probe and on generated clusters —, what the model
leaves to the trace, and how run_check holds the model to the trace."""

from __future__ import annotations

import doctest
import io
import json
import random
from pathlib import Path

import pytest

import podnet
import podnet.analysis.check as check
import podnet.analysis.check_model as check_model
from podnet.analysis.check import run_check
from podnet.analysis.probes import Probe, load_probes
from podnet.cli import run as cli
from podnet.generate import SIZES, Size, generate, write_yaml
from podnet.model.base import Pos

CASES = Path(__file__).parent / "conformance"
POS = Pos("<test>", 1, 1)


def _found(r) -> tuple:
    return (r.verdict, r.deny_kind, r.endpoints, r.masq, r.ok)


def _both(loaded, probes):
    how: list = []
    model = run_check(loaded, probes, method="model", run=how)
    traced = run_check(loaded, probes, method="trace")
    return model, traced, how[0]


# ---------------------------------------------------------------------------- conformance

_CONFORMANCE: dict = {}


def _case(name: str):
    hit = _CONFORMANCE.get(name)
    if hit is None:
        folder = CASES / name
        loaded = podnet.load(str(folder / "manifests.yaml"))
        hit = _CONFORMANCE[name] = _both(loaded, load_probes(str(folder / "probes.yaml")))
    return hit


CASE_NAMES = sorted(d.name for d in CASES.iterdir() if (d / "probes.yaml").exists())


@pytest.mark.parametrize("name", CASE_NAMES)
def test_model_gives_the_traced_result_on_every_conformance_probe(name):
    model, traced, _ = _case(name)
    assert len(model) == len(traced)
    for m, t in zip(model, traced, strict=True):
        assert _found(m) == _found(t), (name, m.probe.as_dict())
    # the model's own answers (run_check would trace one that fails its expectation)
    loaded = podnet.load(str(CASES / name / "manifests.yaml"))
    for t in traced:
        raw = _raw(loaded, t.probe)
        assert raw is None or raw == _found(t)[:4], (name, t.probe.as_dict())


def test_the_model_answers_most_conformance_probes_and_never_disagrees():
    modelled = disagreements = total = 0
    for name in CASE_NAMES:
        model, _, how = _case(name)
        total += len(model)
        modelled += how.modelled
        disagreements += len(how.disagreements)
    assert total == 2434
    assert modelled >= 2000
    assert disagreements == 0


# ---------------------------------------------------------------------------- generated


def _generated(tmp_path: Path, size: Size, seed: int):
    path = tmp_path / f"gen-{seed}.yaml"
    with path.open("w") as out:
        write_yaml(generate(size, seed), out)
    return podnet.load(str(path))


def _random_probes(cluster, count: int, rng: random.Random) -> tuple[Probe, ...]:
    """Pod->Service and Pod->Pod probes, half of them stating an expectation."""
    pods = [p for p in cluster.pods if not p.host_network]
    services = [s for s in cluster.services if s.cluster_ip is not None and s.spec.ports]
    out = []
    for i in range(count):
        a = rng.choice(pods)
        expect = rng.choice((None, "allow", "deny"))
        extra = (("expect", expect),) if expect else ()
        if i % 2 == 0:
            s = rng.choice(services)
            key, port = s.key, s.spec.ports[0].port
            raw = (("from", a.key), ("service", key), ("port", port)) + extra
            out.append(Probe(i, POS, raw, src=a.key, service=key, port=port, expect=expect))
        else:
            b = rng.choice(pods)
            raw = (("from", a.key), ("to", b.key)) + extra
            out.append(Probe(i, POS, raw, src=a.key, to=b.key, expect=expect))
    return tuple(out)


@pytest.mark.parametrize(
    "size, seed",
    [(SIZES["S"], 1), (SIZES["S"], 2), (Size(12, 8, 40, policies=20), 3), (Size(12, 8, 40, policies=20), 4)],
)  # fmt: skip
def test_model_gives_the_traced_result_on_generated_clusters(tmp_path, size, seed):
    loaded = _generated(tmp_path, size, seed)
    probes = _random_probes(loaded.cluster, 160, random.Random(seed))
    model, traced, how = _both(loaded, probes)
    for m, t in zip(model, traced, strict=True):
        assert _found(m) == _found(t), m.probe.as_dict()
        raw = _raw(loaded, t.probe)
        assert raw is None or raw == _found(t)[:4], t.probe.as_dict()
    # the model covers most probes: those it answered, and those traced because its answer
    # failed their expectation
    covered = sum(_covered(loaded, p) for p in probes)
    assert covered > 0.8 * len(probes)
    failing = sum(
        1 for m, p in zip(model, probes, strict=True) if _covered(loaded, p) and m.ok is False
    )
    assert how.modelled == covered - failing > 0
    assert how.disagreements == ()
    assert {"allow", "deny"} <= {m.verdict for m in model}


# ---------------------------------------------------------------------------- coverage

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


def _covered(loaded, probe: Probe) -> bool:
    return _raw(loaded, probe) is not None


def _answer(loaded, src: str, **dst):
    probe = Probe(0, POS, (), src=src, **dst)
    resolver = loaded.resolver()
    origin = check._origin(resolver, probe)
    return check_model.CheckModel(loaded.cluster).answer(origin.pod, check._target(resolver, probe))


def test_the_model_answers_plain_pods_and_leaves_the_rest_to_the_trace(tmp_path):
    loaded = _small(tmp_path)
    assert _answer(loaded, "x/a", to="x/b", port=80).verdict == "allow"
    assert _answer(loaded, "x/b", to="x/a", port=80).verdict == "allow"
    assert _answer(loaded, "x/a", service="x/sb", port=80).endpoints == ("x/b",)
    assert _answer(loaded, "x/h", to="x/b", port=80) is None  # hostNetwork client
    assert _answer(loaded, "x/a", to="x/a", port=80) is None  # to itself
    assert _answer(loaded, "x/a", service="x/sa", port=80) is None  # hairpin
    assert _answer(loaded, "x/a", service="x/sticky", port=80) is None  # session affinity
    assert _answer(loaded, "x/a", service="x/local", port=80) is None  # local traffic policy
    # a Service without endpoints: refused by kube-proxy, or let through by the policy agent's
    # ACCEPT before kube-proxy's REJECT (the order of FORWARD): traced
    assert _answer(loaded, "x/a", service="x/none", port=80) is None


def test_the_policy_decides_like_the_trace_in_the_small_cluster(tmp_path):
    loaded = _small(tmp_path)
    # b admits a only: the hostNetwork-free pairs in both directions, Pod IP and Service
    probes = tuple(
        Probe(i, POS, (), src=s, **d)
        for i, (s, d) in enumerate(
            [("x/a", {"to": "x/b", "port": 80}), ("x/b", {"to": "x/a", "port": 80}),
             ("x/a", {"service": "x/sb", "port": 80}), ("x/b", {"service": "x/sa", "port": 80})]
        )
    )  # fmt: skip
    model, traced, how = _both(loaded, probes)
    assert [_found(m) for m in model] == [_found(t) for t in traced]
    assert how.modelled == 4


def test_other_cluster_modes_are_traced(tmp_path):
    loaded = _small(tmp_path, "kubeProxy: {masqueradeAll: true}")
    assert _answer(loaded, "x/a", to="x/b", port=80) is None
    how: list = []
    run_check(loaded, (Probe(0, POS, (), src="x/a", to="x/b", port=80),), method="model", run=how)
    assert how[0].modelled == 0 and how[0].traced == 1


# ---------------------------------------------------------------------------- run_check


def _probes_b(n: int, expect: str | None = None) -> tuple[Probe, ...]:
    extra = (("expect", expect),) if expect else ()
    return tuple(
        Probe(
            i,
            POS,
            (("from", "x/a"), ("to", "x/b")) + extra,
            src="x/a",
            to="x/b",
            port=80,
            expect=expect,
        )  # fmt: skip
        for i in range(n)
    )


def test_auto_traces_small_files_and_models_large_ones(tmp_path, monkeypatch):
    loaded = _small(tmp_path)
    how: list = []
    results = run_check(loaded, _probes_b(3), run=how)
    assert {r.method for r in results} == {"trace"} and how[0].modelled == 0
    monkeypatch.setattr(check, "MODEL_MIN", 3)
    monkeypatch.setattr(check, "SAMPLE", 1)
    how = []
    results = run_check(loaded, _probes_b(3), run=how)
    assert how[0].modelled == 3 and how[0].traced == 1 and how[0].checked == 1
    assert [r.method for r in results] == ["model", "model", "model"]
    # the sampled one already holds its trace; the others trace when first read
    later = results[0]
    assert later._trace is None
    assert later.trace.verdict == "delivered" and later._trace is not None


def test_a_failing_probe_is_traced(tmp_path):
    loaded = _small(tmp_path)
    how: list = []
    results = run_check(loaded, _probes_b(2, "deny"), method="model", run=how)
    assert [r.method for r in results] == ["trace", "trace"]
    assert [r.ok for r in results] == [False, False]
    assert how[0].modelled == 0 and how[0].traced == 2 and how[0].disagreements == ()


def test_a_wrong_model_is_caught_by_the_trace(tmp_path, monkeypatch):
    loaded = _small(tmp_path)
    monkeypatch.setattr(check_model, "_MEMO", [None, None])
    monkeypatch.setattr(check_model, "_evaluate", lambda *a: "ingress")  # denies everything
    # no expectation: answered by the model, and the sampled trace finds it wrong
    how: list = []
    results = run_check(loaded, _probes_b(1), method="model", run=how)
    assert how[0].disagreements == ((0, "deny", "allow"),)
    assert results[0].verdict == "allow" and results[0].method == "trace"
    # expecting allow: the model's deny fails it, so it is traced, and counted as a disagreement
    monkeypatch.setattr(check_model, "_MEMO", [None, None])
    how = []
    results = run_check(loaded, _probes_b(1, "allow"), method="model", run=how)
    assert how[0].disagreements == ((0, "deny", "allow"),) and results[0].ok is True


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


def test_doctests():
    assert doctest.testmod(check_model).failed == 0


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
