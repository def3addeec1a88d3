"""podnet.analysis.check_model and run_check's use of it: a modelled probe gets the result its
trace gets (every conformance probe, random probes on generated clusters, every pair of a small
hand-written cluster), the model leaves what it does not describe to the trace, and run_check
traces the answers it must and catches a wrong model with its sample."""

from __future__ import annotations

import doctest
import random
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

import podnet
import podnet.analysis.check as check
import podnet.analysis.check_model as cm
from podnet.analysis.check import CheckRun, run_check, run_probe
from podnet.analysis.check_model import Answer, CheckModel, check_model
from podnet.analysis.probes import Probe, load_probes
from podnet.generate import SIZES, Size, generate, write_yaml
from podnet.model.base import Pos
from podnet.model.trace import Trace

CASES = Path(__file__).parent / "conformance"
CASE_NAMES = sorted(d.name for d in CASES.iterdir() if (d / "probes.yaml").is_file())
POS = Pos("<test_check_model>", 1, 1)
RAW_KEYS = {"src": "from", "to": "to", "service": "service", "to_ip": "to_ip", "port": "port",
            "protocol": "protocol", "expect": "expect", "deny_kind": "deny_kind",
            "endpoints": "endpoints", "masq": "masq"}  # fmt: skip


def _probe(index: int, **fields) -> Probe:
    """A Probe as load_probes makes it (``raw`` in file order, plain values)."""
    raw = tuple(
        (RAW_KEYS[k], list(v) if isinstance(v, tuple) else str(v) if k == "to_ip" else v)
        for k, v in fields.items()
    )
    return Probe(index, POS, raw, **fields)


def _found(r) -> tuple:
    """What a result is judged on, with its judgement."""
    return (r.verdict, r.deny_kind, r.endpoints, r.masq, r.ok)


def _answer(r) -> Answer:
    return Answer(r.verdict, r.deny_kind, r.endpoints, r.masq)


def _own(loaded, probe: Probe, resolver=None) -> Answer | None:
    """The model's own answer for ``probe`` (None: not covered), before run_check traces any."""
    if probe.src is None:
        return None
    resolver = resolver or loaded.resolver()
    origin = check._origin(resolver, probe)
    if origin.pod is None:
        return None
    return check_model(loaded.cluster).answer(origin.pod, check._target(resolver, probe))


@dataclass
class Both:
    """One probe set checked from the model and by tracing every probe."""

    loaded: object
    probes: tuple[Probe, ...]
    model: tuple
    traced: tuple
    run: CheckRun


def _both(loaded, probes: tuple[Probe, ...]) -> Both:
    runs: list = []
    model = run_check(loaded, probes, method="model", run=runs)
    traced = run_check(loaded, probes, method="trace")
    assert len(runs) == 1
    return Both(loaded, probes, model, traced, runs[0])


def _assert_same(b: Both, label: str) -> tuple[int, int]:
    """Every probe: the model's result equals the traced one; the model's own answer, where it
    gives one, is the trace's; a result is modelled exactly when the model covers the probe and
    its answer meets what the probe states. Returns (covered, covered but failing)."""
    assert len(b.model) == len(b.traced) == len(b.probes)
    resolver = b.loaded.resolver()
    covered = failing = 0
    for p, m, t in zip(b.probes, b.model, b.traced, strict=True):
        assert m.probe is p and t.probe is p
        assert t.method == "trace"
        where = (label, p.index, p.as_dict())
        assert _found(m) == _found(t), (*where, m.method, _found(m), _found(t))
        assert m.mismatches == t.mismatches, where
        own = _own(b.loaded, p, resolver)
        if own is not None:
            assert own == _answer(t), (*where, own, _answer(t))
            covered += 1
            failing += check._judge(p, own, None).ok is False
        meets = own is not None and check._judge(p, own, None).ok is not False
        assert (m.method == "model") == meets, (*where, m.method, own)
    assert b.run.disagreements == (), (label, b.run.disagreements)
    assert b.run.modelled == covered - failing
    assert b.run.modelled == sum(m.method == "model" for m in b.model)
    assert b.run.checked == min(check.SAMPLE, b.run.modelled)
    assert b.run.traced == (len(b.probes) - b.run.modelled) + b.run.checked
    return covered, failing


# ---------------------------------------------------------------------------- 1. conformance


@pytest.fixture(scope="module")
def conformance():
    """Each case checked both ways once for the whole module (traced in full once)."""
    cache: dict[str, Both] = {}

    def get(name: str) -> Both:
        if name not in cache:
            folder = CASES / name
            loaded = podnet.load(str(folder / "manifests.yaml"))
            cache[name] = _both(loaded, load_probes(str(folder / "probes.yaml")))
        return cache[name]

    return get


def test_there_are_conformance_cases():
    assert len(CASE_NAMES) >= 40
    assert any(n.startswith("kube-proxy-") for n in CASE_NAMES)
    assert any(n.startswith("k8s-netpol-") for n in CASE_NAMES)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_model_and_trace_agree_on_every_conformance_probe(conformance, name):
    b = conformance(name)
    assert b.probes
    _assert_same(b, name)


def test_the_model_answers_over_2000_conformance_probes(conformance):
    total = modelled = checked = 0
    for name in CASE_NAMES:
        b = conformance(name)
        total += len(b.probes)
        modelled += b.run.modelled
        checked += b.run.checked
        assert b.run.disagreements == (), name
    assert modelled >= 2000, (modelled, total)
    assert modelled > 0.8 * total
    assert 0 < checked < modelled


# ---------------------------------------------------------------------------- 2. generated

SMALL = Size(nodes=12, pods_per_node=8, services=40, policies=20)


def _generated(tmp_path: Path, size: Size, seed: int):
    path = tmp_path / f"generated-{seed}.yaml"
    with path.open("w") as out:
        write_yaml(generate(size, seed), out)
    return podnet.load(str(path))


def _first_port(pod) -> int:
    for c in pod.containers:
        for p in c.ports:
            return p.container_port
    return 80


def _expectations(rng: random.Random, dst_pod: str | None) -> dict:
    """Nothing stated (half of the probes), or a guess that may be right or wrong."""
    pick = rng.randrange(8)
    if pick < 4:
        return {}
    if pick == 4:
        return {"expect": "allow"}
    if pick == 5:
        return {"expect": "deny", "deny_kind": "reject"}
    if pick == 6:
        return {"expect": "allow", "masq": False}
    return {"endpoints": (dst_pod,)} if dst_pod else {"expect": "deny"}


def _random_probes(cluster, count: int, rng: random.Random) -> tuple[Probe, ...]:
    """Pod->Service and Pod->Pod probes, as benchmarks/bench.py makes them, over the Services'
    ports and the Pods' declared and undeclared ports."""
    pods = [p for p in cluster.pods if not p.host_network]
    services = [s for s in cluster.services if s.cluster_ip is not None and s.spec.ports]
    out = []
    for i in range(count):
        a = rng.choice(pods)
        if i % 2 == 0:
            s = rng.choice(services)
            port = rng.choice(s.spec.ports).port
            fields = {"src": a.key, "service": s.key, "port": port}
            fields.update(_expectations(rng, None))
        else:
            b = rng.choice(pods)
            port = rng.choice((_first_port(b), 8080, 9090, 80))
            fields = {"src": a.key, "to": b.key, "port": port}
            fields.update(_expectations(rng, b.key))
        out.append(_probe(i, **fields))
    return tuple(out)


@pytest.mark.parametrize(
    "size, seed",
    [(SIZES["S"], 11), (SIZES["S"], 12), (SMALL, 21), (SMALL, 22)],
    ids=["S-11", "S-12", "12x8-21", "12x8-22"],
)
def test_model_and_trace_agree_on_generated_clusters(tmp_path, size, seed):
    loaded = _generated(tmp_path, size, seed)
    assert len(loaded.cluster.policies) == size.policies
    probes = _random_probes(loaded.cluster, 240, random.Random(seed))
    b = _both(loaded, probes)
    covered, failing = _assert_same(b, f"seed {seed}")
    # the model covers most probes; those it covers and that meet what they state are modelled
    assert covered > 0.8 * len(probes), covered
    meeting = sum(1 for m in b.model if m.ok is not False)
    assert b.run.modelled > 0.8 * meeting, (b.run.modelled, meeting)
    verdicts = {(m.verdict, m.method) for m in b.model}
    assert {("allow", "model"), ("deny", "model")} <= verdicts, verdicts
    assert failing > 0  # some guesses were wrong: those were traced
    assert {m.ok for m in b.model} == {None, True, False}


# ---------------------------------------------------------------------------- 3. coverage

EDGES = """
apiVersion: podnet/v1
kind: Cluster
metadata: {name: edges}
spec:
  nodes: [{name: node-1}, {name: node-2}]
  {extra}
---
{apiVersion: v1, kind: Namespace, metadata: {name: x}}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {app: a, role: client}}
spec: {nodeName: node-1, containers: [{name: c, image: i, ports: [{name: http, containerPort: 8080}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: x, labels: {app: b}}
spec: {nodeName: node-2, containers: [{name: c, image: i, ports: [{name: http, containerPort: 8080}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: c, namespace: x, labels: {app: c}}
spec: {nodeName: node-1, containers: [{name: c, image: i, ports: [{name: http, containerPort: 8080}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: d, namespace: x, labels: {app: d, role: client}}
spec: {nodeName: node-2, containers: [{name: c, image: i, ports: [{name: http, containerPort: 8080}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: h, namespace: x, labels: {app: h}}
spec: {nodeName: node-1, hostNetwork: true, containers: [{name: c, image: i, ports: [{containerPort: 9100}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: done, namespace: x, labels: {app: done}}
spec: {nodeName: node-2, containers: [{name: c, image: i, ports: [{containerPort: 8080}]}]}
status: {phase: Succeeded}
---
{apiVersion: v1, kind: Service, metadata: {name: sb, namespace: x}, spec: {selector: {app: b}, ports: [{port: 80, targetPort: http}]}}
---
{apiVersion: v1, kind: Service, metadata: {name: sa, namespace: x}, spec: {selector: {app: a}, ports: [{port: 80, targetPort: 8080}]}}
---
{apiVersion: v1, kind: Service, metadata: {name: clients, namespace: x}, spec: {selector: {role: client}, ports: [{port: 80, targetPort: 8080}]}}
---
{apiVersion: v1, kind: Service, metadata: {name: host, namespace: x}, spec: {selector: {app: h}, ports: [{port: 9100}]}}
---
{apiVersion: v1, kind: Service, metadata: {name: none, namespace: x}, spec: {selector: {app: nothing}, ports: [{port: 80}]}}
---
apiVersion: v1
kind: Service
metadata: {name: sticky, namespace: x}
spec: {selector: {app: b}, sessionAffinity: ClientIP, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: local, namespace: x}
spec: {selector: {app: b}, internalTrafficPolicy: Local, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-from-clients, namespace: x}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress: [{from: [{podSelector: {matchLabels: {role: client}}}], ports: [{port: http}]}]
"""
EGRESS_POLICY = """
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: d-egress, namespace: x}
spec:
  podSelector: {matchLabels: {app: d}}
  policyTypes: [Egress]
  egress: [{}]
"""


def _edges(directory: Path, extra: str = "", more: str = "", base: str = EDGES):
    """The edges cluster, with ``extra`` in the Cluster spec and ``more`` documents after."""
    path = directory / f"edges-{len(list(directory.glob('edges-*.yaml')))}.yaml"
    path.write_text(base.replace("{extra}", extra) + more)
    return podnet.load(str(path))


@pytest.fixture(scope="module")
def edges(tmp_path_factory):
    return _edges(tmp_path_factory.mktemp("edges"))


def _model_answer(loaded, **fields) -> Answer | None:
    """A fresh CheckModel's answer (not the memo's) for one probe."""
    probe = _probe(0, **fields)
    resolver = loaded.resolver()
    origin = check._origin(resolver, probe)
    assert origin.pod is not None
    return CheckModel(loaded.cluster).answer(origin.pod, check._target(resolver, probe))


def _traced(loaded, **fields):
    return run_probe(loaded.network, loaded.resolver(), _probe(0, **fields), replies=False)


COVERED = [
    ("pod-to-pod", {"src": "x/a", "to": "x/b", "port": 8080}, Answer("allow", None, ("x/b",), False)),
    ("pod-to-pod-denied", {"src": "x/c", "to": "x/b", "port": 8080}, Answer("deny", "reject", (), False)),
    ("pod-to-pod-other-port", {"src": "x/a", "to": "x/b", "port": 9999}, Answer("deny", "reject", (), False)),
    ("pod-to-unpoliced-pod", {"src": "x/b", "to": "x/c", "port": 8080}, Answer("allow", None, ("x/c",), False)),
    ("pod-to-service", {"src": "x/a", "service": "x/sb", "port": 80}, Answer("allow", None, ("x/b",), False)),
    ("pod-to-service-denied", {"src": "x/c", "service": "x/sb", "port": 80}, Answer("deny", "reject", (), False)),
    ("pod-to-clusterip", {"src": "x/c", "service": "x/clients", "port": 80}, Answer("allow", None, ("x/a", "x/d"), False)),
    ("udp", {"src": "x/a", "to": "x/c", "port": 53, "protocol": "UDP"}, Answer("allow", None, ("x/c",), False)),
    # a hairpin: the client reaches itself through the bridge, masqueraded (KUBE-MARK-MASQ)
    ("hairpin", {"src": "x/a", "service": "x/sa", "port": 80}, Answer("allow", None, ("x/a",), True)),
    ("hairpin-among-others", {"src": "x/a", "service": "x/clients", "port": 80}, Answer("allow", None, ("x/a", "x/d"), True)),
]  # fmt: skip


@pytest.mark.parametrize("fields, want", [c[1:] for c in COVERED], ids=[c[0] for c in COVERED])
def test_the_model_answers_plain_pod_connections_as_the_trace_does(edges, fields, want):
    assert _model_answer(edges, **fields) == want
    assert _answer(_traced(edges, **fields)) == want


def test_a_partly_allowed_service_is_partial_for_model_and_trace(tmp_path):
    # a Service over a and b, from c: b admits the clients only, a lets everyone in
    base = EDGES.replace("labels: {app: b}}", "labels: {app: b, tier: bc}}").replace(
        "labels: {app: a, role: client}}", "labels: {app: a, role: client, tier: bc}}"
    )
    assert base.count("tier: bc") == 2
    more = (
        "---\n{apiVersion: v1, kind: Service, metadata: {name: bc, namespace: x}, spec: "
        "{selector: {tier: bc}, ports: [{port: 80, targetPort: 8080}]}}\n"
    )
    loaded = _edges(tmp_path, more=more, base=base)
    fields = {"src": "x/c", "service": "x/bc", "port": 80}
    want = _answer(_traced(loaded, **fields))
    assert want.verdict == "partial" and want.endpoints == ("x/a",)
    assert _model_answer(loaded, **fields) == want


UNCOVERED = [
    ("hostnetwork-client", {"src": "x/h", "to": "x/b", "port": 8080}),
    ("hostnetwork-client-to-service", {"src": "x/h", "service": "x/sb", "port": 80}),
    ("finished-client", {"src": "x/done", "to": "x/b", "port": 8080}),
    ("to-itself", {"src": "x/a", "to": "x/a", "port": 8080}),
    ("to-a-hostnetwork-pod", {"src": "x/a", "to": "x/h", "port": 9100}),
    ("to-a-finished-pod", {"src": "x/a", "to": "x/done", "port": 8080}),
    ("hostnetwork-endpoint", {"src": "x/a", "service": "x/host", "port": 9100}),
    ("session-affinity", {"src": "x/a", "service": "x/sticky", "port": 80}),
    ("internal-traffic-policy-local", {"src": "x/a", "service": "x/local", "port": 80}),
    ("port-the-service-lacks", {"src": "x/a", "service": "x/sb", "port": 81}),
    ("protocol-the-service-lacks", {"src": "x/a", "service": "x/sb", "port": 80, "protocol": "UDP"}),
]  # fmt: skip


@pytest.mark.parametrize("fields", [c[1] for c in UNCOVERED], ids=[c[0] for c in UNCOVERED])
def test_the_model_leaves_other_connections_to_the_trace(edges, fields):
    assert _model_answer(edges, **fields) is None
    # and run_check, told to use the model, traces them
    runs: list = []
    (r,) = run_check(edges, (_probe(0, **fields),), method="model", run=runs)
    assert r.method == "trace"
    assert runs[0].modelled == 0 and runs[0].traced == 1 and runs[0].checked == 0


def test_to_ip_probes(edges):
    sb = next(s for s in edges.cluster.services if s.key == "x/sb")
    b = next(p for p in edges.cluster.pods if p.key == "x/b")
    # an address with no Service named, or one that is no ClusterIP: traced
    assert _model_answer(edges, src="x/a", to_ip=b.ip, port=8080) is None
    assert _model_answer(edges, src="x/a", to_ip=sb.cluster_ip, port=80) is None
    assert _model_answer(edges, src="x/a", service="x/sb", to_ip=b.ip, port=8080) is None
    # a Service's ClusterIP: that port's endpoints, as the trace finds
    fields = {"src": "x/a", "service": "x/sb", "to_ip": sb.cluster_ip, "port": 80}
    got = _model_answer(edges, **fields)
    assert got == Answer("allow", None, ("x/b",), False)
    assert got == _answer(_traced(edges, **fields))


def test_a_service_without_endpoints_refuses_the_client_as_the_trace_finds(tmp_path):
    # no NetworkPolicy: no policy agent chains, kube-proxy's filter REJECT refuses the client
    base = EDGES[: EDGES.index("---\napiVersion: networking.k8s.io/v1")]
    loaded = _edges(tmp_path, base=base)
    assert loaded.cluster.policies == ()
    for src in ("x/a", "x/c"):
        fields = {"src": src, "service": "x/none", "port": 80, "expect": "deny"}
        traced = _traced(loaded, **fields)
        assert _found(traced) == ("deny", "reject", (), False, True), src
        assert [p.disposition for p in traced.trace.paths] == ["REJECTED"]
        own = _model_answer(loaded, **fields)
        assert own == _answer(traced), (src, own)
        runs: list = []
        (r,) = run_check(loaded, (_probe(0, **fields),), method="model", run=runs)
        assert _found(r) == _found(traced) and r.method == "model"
        assert runs[0].disagreements == ()


def test_a_service_without_endpoints_under_the_policy_agent_is_left_to_the_trace(tmp_path):
    # with policies, every Pod's firewall chain ends in kube-router's ACCEPT, which sits in
    # filter FORWARD before kube-proxy's "has no endpoints" REJECT (kube-router issue #1453):
    # the client is not refused, its packet leaves for the underlay. The model does not say
    loaded = _edges(tmp_path, more=EGRESS_POLICY)
    for src in ("x/a", "x/c", "x/d"):
        fields = {"src": src, "service": "x/none", "port": 80}
        traced = _traced(loaded, **fields)
        assert traced.verdict == "deny", src
        assert _model_answer(loaded, **fields) is None
        (r,) = run_check(loaded, (_probe(0, **fields),), method="model")
        assert r.method == "trace" and _found(r) == _found(traced)


def test_masquerade_all_is_left_to_the_trace(tmp_path):
    loaded = _edges(tmp_path, "kubeProxy: {masqueradeAll: true}")
    assert loaded.cluster.config.masquerade_all is True
    probes = (
        _probe(0, src="x/c", service="x/sa", port=80),
        _probe(1, src="x/a", service="x/sb", port=80),
        _probe(2, src="x/a", to="x/b", port=8080),
    )
    for p in probes:
        assert _own(loaded, p) is None, p.as_dict()
    runs: list = []
    results = run_check(loaded, probes, method="model", run=runs)
    assert [r.method for r in results] == ["trace"] * 3
    assert runs[0] == CheckRun(modelled=0, traced=3, checked=0, disagreements=())
    # what the model would miss: the Service's connection arrives SNATed (to the node's
    # flannel.1 address), so b, which admits the clients only, no longer sees x/a
    assert (results[0].verdict, results[0].masq) == ("allow", True)
    assert (results[1].verdict, results[1].deny_kind) == ("deny", "reject")
    assert (results[2].verdict, results[2].masq) == ("allow", False)


def test_a_proxy_mode_other_than_iptables_is_left_to_the_trace(edges):
    # the loader knows iptables mode alone; a Cluster of another mode is made by hand
    cluster = replace(edges.cluster, config=replace(edges.cluster.config, proxy_mode="ipvs"))
    resolver = edges.resolver()
    probe = _probe(0, src="x/a", service="x/sb", port=80)
    src = check._origin(resolver, probe).pod
    target = check._target(resolver, probe)
    assert CheckModel(edges.cluster).answer(src, target) is not None
    assert CheckModel(cluster).answer(src, target) is None
    other = replace(edges.cluster, config=replace(edges.cluster.config, network_plugin="calico"))
    assert CheckModel(other).answer(src, target) is None


def _every_pair(loaded) -> tuple[Probe, ...]:
    pods = [p for p in loaded.cluster.pods if p.namespace == "x"]
    services = [s for s in loaded.cluster.services if s.namespace == "x"]
    fields = []
    for a in pods:
        for b in pods:
            for port in sorted({_first_port(b), 8080, 9100}):
                fields.append({"src": a.key, "to": b.key, "port": port})
        for s in services:
            for sp in s.spec.ports:
                fields.append({"src": a.key, "service": s.key, "port": sp.port})
                fields.append({"src": a.key, "service": s.key, "port": sp.port, "expect": "allow"})
    return tuple(_probe(i, **f) for i, f in enumerate(fields))


@pytest.mark.parametrize(
    "extra, more",
    [("", ""), ("network: {plugin: flannel, backend: host-gw}", ""),
     ("kubeProxy: {nfacct: true}", EGRESS_POLICY)],
    ids=["vxlan", "host-gw", "nfacct-egress"],
)  # fmt: skip
def test_model_and_trace_agree_on_every_pair_of_the_small_cluster(tmp_path, extra, more):
    loaded = _edges(tmp_path, extra, more)
    b = _both(loaded, _every_pair(loaded))
    covered, _ = _assert_same(b, extra or "default")
    # a, b, c, d with each other (not themselves) on 2 ports: 24; sb, sa and clients from each
    # of a, b, c, d (its own Service too: a hairpin), each twice: 24. The rest involve h, done,
    # themselves or Services the model leaves to the trace
    assert len(b.probes) == 156 and covered == 48
    assert {m.verdict for m in b.model} >= {"allow", "deny"}


# ---------------------------------------------------------------------------- 4. run_check


def _n(n: int, **fields) -> tuple[Probe, ...]:
    return tuple(_probe(i, **fields) for i in range(n))


A_TO_B = {"src": "x/a", "to": "x/b", "port": 8080}
C_TO_B = {"src": "x/c", "to": "x/b", "port": 8080}


@pytest.fixture
def fresh_memo(monkeypatch):
    """check_model's memo emptied (answers patched below must not be served from it)."""
    monkeypatch.setattr(cm, "_MEMO", [None, None])


def test_auto_traces_every_probe_below_model_min(edges):
    assert check.MODEL_MIN == 500
    runs: list = []
    results = run_check(edges, _n(6, **A_TO_B), run=runs)
    assert [r.method for r in results] == ["trace"] * 6
    assert runs == [CheckRun(modelled=0, traced=6, checked=0, disagreements=())]
    assert all(r.verdict == "allow" and r.endpoints == ("x/b",) for r in results)


def test_auto_models_from_model_min_on(edges, monkeypatch):
    monkeypatch.setattr(check, "MODEL_MIN", 6)
    runs: list = []
    below = run_check(edges, _n(5, **A_TO_B), run=runs)
    assert {r.method for r in below} == {"trace"} and runs[-1].modelled == 0
    at = run_check(edges, _n(6, **A_TO_B), run=runs)
    assert [r.method for r in at] == ["model"] * 6
    assert runs[-1] == CheckRun(modelled=6, traced=6, checked=6, disagreements=())
    # method="trace" traces whatever the number of probes
    traced = run_check(edges, _n(6, **A_TO_B), method="trace", run=runs)
    assert {r.method for r in traced} == {"trace"} and runs[-1].modelled == 0
    assert [_found(r) for r in at] == [_found(r) for r in traced]


def test_the_sample_is_spread_and_counted(edges, monkeypatch):
    monkeypatch.setattr(check, "SAMPLE", 3)
    heard: list = []
    runs: list = []
    results = run_check(
        edges,
        _n(30, **A_TO_B),
        lambda label, done, total: heard.append((label, done, total)),
        method="model",
        run=runs,
    )
    assert runs == [CheckRun(modelled=30, traced=3, checked=3, disagreements=())]
    assert [h for h in heard if h[0] == "checking probes"] == [
        ("checking probes", i, 30) for i in range(30)
    ]
    assert [h for h in heard if h[0] != "checking probes"] == [
        ("checking the model by tracing", k, 3) for k in range(3)
    ]
    assert {r.method for r in results} == {"model"}


@pytest.mark.parametrize("fields, verdict", [(A_TO_B, "delivered"), (C_TO_B, "dropped")])
def test_a_modelled_result_has_a_real_trace(edges, monkeypatch, fields, verdict):
    monkeypatch.setattr(check, "SAMPLE", 1)
    results = run_check(edges, _n(5, **fields), method="model")
    assert {r.method for r in results} == {"model"}
    for r in (results[0], results[2]):  # one made on reading, the sampled one
        t = r.trace
        assert isinstance(t, Trace)
        assert t.verdict == verdict
        assert t.endpoints == r.endpoints
        assert all(p.reply is None for p in t.paths)  # replies=False
        assert r.trace is t  # kept
    assert _found(results[0]) == _found(run_check(edges, _n(1, **fields), method="trace")[0])


def test_a_modelled_answer_that_misses_its_expectation_is_traced(edges):
    probes = (
        _probe(0, **C_TO_B, expect="allow"),  # the model says deny
        _probe(1, **A_TO_B, expect="allow"),
        _probe(2, src="x/a", service="x/sb", port=80, endpoints=("x/c",)),  # it says x/b
        _probe(3, **A_TO_B, expect="deny"),
    )
    runs: list = []
    results = run_check(edges, probes, method="model", run=runs)
    assert [r.method for r in results] == ["trace", "model", "trace", "trace"]
    assert [r.ok for r in results] == [False, True, False, False]
    assert results[0].mismatches == ("expected allow, found deny",)
    assert results[2].mismatches == ("expected endpoints ['x/c'], found ['x/b']",)
    assert isinstance(results[0]._trace, Trace)
    assert runs == [CheckRun(modelled=1, traced=4, checked=1, disagreements=())]


def _flip(answer: Answer) -> Answer:
    if answer.verdict == "allow":
        return Answer("deny", "reject", (), False)
    return Answer("allow", None, ("x/nowhere",), False)


@pytest.fixture
def flipped(monkeypatch, fresh_memo):
    """A wrong model: every answer's verdict turned over."""
    real = CheckModel.answer

    def answer(self, src, target):
        found = real(self, src, target)
        return None if found is None else _flip(found)

    monkeypatch.setattr(CheckModel, "answer", answer)


def test_the_sample_catches_a_wrong_model(edges, flipped):
    probes = (
        _probe(0, **A_TO_B),
        _probe(1, **C_TO_B),
        _probe(2, src="x/a", service="x/sb", port=80),
        _probe(3, src="x/c", service="x/sb", port=80),
    )
    runs: list = []
    results = run_check(edges, probes, method="model", run=runs)
    truth = run_check(edges, probes, method="trace")
    # every one sampled (fewer than SAMPLE), every one found wrong, the traced result kept
    assert [_found(r) for r in results] == [_found(t) for t in truth]
    assert [r.method for r in results] == ["trace"] * 4
    assert runs == [
        CheckRun(
            modelled=4,
            traced=4,
            checked=4,
            disagreements=(
                (0, "deny", "allow"),
                (1, "allow", "deny"),
                (2, "deny", "allow"),
                (3, "allow", "deny"),
            ),
        )
    ]


def test_a_wrong_answer_that_misses_its_expectation_is_traced_and_counted(edges, flipped):
    runs: list = []
    (r,) = run_check(edges, (_probe(0, **A_TO_B, expect="allow"),), method="model", run=runs)
    assert r.method == "trace" and r.ok is True and r.verdict == "allow"
    assert runs == [CheckRun(0, 1, 0, ((0, "deny", "allow"),))]
    # a wrong answer that meets a wrong expectation is modelled, then the sample finds it out
    runs = []
    (r,) = run_check(edges, (_probe(0, **A_TO_B, expect="deny"),), method="model", run=runs)
    assert r.method == "trace" and r.ok is False and r.verdict == "allow"
    assert runs == [CheckRun(1, 1, 1, ((0, "deny", "allow"),))]


def test_only_the_sample_is_checked_and_it_is_spread(edges, flipped, monkeypatch):
    monkeypatch.setattr(check, "SAMPLE", 2)
    runs: list = []
    results = run_check(edges, _n(8, **A_TO_B), method="model", run=runs)
    (run,) = runs
    assert run.modelled == 8 and run.checked == 2 and run.traced == 2
    caught = [i for i, _, _ in run.disagreements]
    assert len(caught) == 2 and caught[0] < 4 <= caught[1]
    assert [r.method == "trace" for r in results] == [i in caught for i in range(8)]
    assert {r.verdict for r in results if r.method == "trace"} == {"allow"}


def test_a_disagreement_on_masquerade_alone_is_caught(edges, fresh_memo, monkeypatch):
    real = CheckModel.answer
    monkeypatch.setattr(
        CheckModel, "answer", lambda self, s, t: replace(real(self, s, t), masq=True)
    )
    runs: list = []
    (r,) = run_check(edges, _n(1, **A_TO_B), method="model", run=runs)
    assert runs[0].disagreements == ((0, "allow", "allow"),)
    assert r.method == "trace" and r.masq is False


def test_a_wrong_policy_evaluation_is_caught(edges, fresh_memo, monkeypatch):
    real = cm._evaluate
    monkeypatch.setattr(cm, "_evaluate", lambda *a: None if real(*a) else "ingress")
    assert _model_answer(edges, **A_TO_B).verdict == "deny"
    assert _model_answer(edges, **C_TO_B).verdict == "allow"
    runs: list = []
    results = run_check(edges, (_probe(0, **A_TO_B), _probe(1, **C_TO_B)), method="model", run=runs)
    assert runs[0].disagreements == ((0, "deny", "allow"), (1, "allow", "deny"))
    assert [(r.verdict, r.method) for r in results] == [("allow", "trace"), ("deny", "trace")]


# ---------------------------------------------------------------------------- memo and doctest


def test_check_model_is_one_per_cluster_object(edges, tmp_path, fresh_memo):
    first = check_model(edges.cluster)
    assert check_model(edges.cluster) is first and first.cluster is edges.cluster
    other = _edges(tmp_path)
    assert check_model(other.cluster) is not first
    assert check_model(edges.cluster) is not first  # one entry: made again


def test_doctests():
    result = doctest.testmod(cm)
    assert result.attempted > 0 and result.failed == 0
