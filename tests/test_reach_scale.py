"""``podnet reach`` at scale: the class-level policy evaluation equals tracing every Pod pair
(quirks of the policy agent, hostNetwork Pods, the same and other nodes, the conformance cases,
size S), agrees with the trace engine on a sample of M, counts by class sizes, outputs."""

import doctest
import io
import json
import random
from pathlib import Path

import pytest

import podnet
import podnet.analysis.reach
import podnet.analysis.reach_policy
import podnet.render.reach_text
from podnet.analysis.reach import brute_force, compute_reach, parse_selector
from podnet.cli import run
from podnet.generate import SIZES, Size, generate, write_yaml
from podnet.render.progress import Progress
from podnet.render.reach_json import reach_dict
from podnet.render.reach_text import render_reach

CASES = Path(__file__).parent / "conformance"
ALL = parse_selector(None)

# Two nodes; Pods spread over both, a hostNetwork Pod; policies with both types (kube-router
# runs their ingress rules for the target's egress too), named ports on ingress and egress,
# an egress rule without peers naming a port, an ipBlock with an except, an endPort range, UDP.
QUIRKS = """
apiVersion: podnet/v1
kind: Cluster
metadata: {name: quirks}
spec:
  nodes: [{name: node-1}, {name: node-2}]
---
{apiVersion: v1, kind: Namespace, metadata: {name: x, labels: {team: red}}}
---
{apiVersion: v1, kind: Namespace, metadata: {name: y, labels: {team: blue}}}
"""
PODS = [
    # name, namespace, node, labels, ports (name, number, protocol)
    ("web-1", "x", "node-1", {"app": "web", "tier": "fe"}, [("http", 8080, "TCP")]),
    ("web-2", "x", "node-2", {"app": "web", "tier": "fe"}, [("http", 8080, "TCP")]),
    ("api-1", "x", "node-1", {"app": "api"}, [("http", 9000, "TCP"), ("dns", 53, "UDP")]),
    ("api-2", "x", "node-2", {"app": "api"}, [("http", 9000, "TCP"), ("dns", 53, "UDP")]),
    ("db-1", "x", "node-2", {"app": "db"}, [("sql", 5432, "TCP")]),
    ("cli-1", "y", "node-1", {"app": "cli"}, []),
    ("cli-2", "y", "node-2", {"app": "cli"}, []),
    ("mon-1", "y", "node-1", {"app": "mon", "tier": "fe"}, [("metrics", 9100, "TCP")]),
]
POLICIES = """
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-x, namespace: x}
spec: {podSelector: {}, policyTypes: [Ingress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: both-api, namespace: x}
spec:
  podSelector: {matchLabels: {app: api}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from: [{podSelector: {matchLabels: {tier: fe}}}]
    ports: [{port: http}]
  - from: [{namespaceSelector: {matchLabels: {team: blue}}, podSelector: {matchLabels: {app: mon}}}]
  egress:
  - to: [{podSelector: {matchLabels: {app: db}}}]
    ports: [{port: sql}]
  - ports: [{port: dns, protocol: UDP}, {port: 8000, endPort: 8100}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-anywhere-but, namespace: x}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{ipBlock: {cidr: 10.244.0.0/16, except: [10.244.2.0/24]}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: cli-egress, namespace: y}
spec:
  podSelector: {matchLabels: {app: cli}}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {matchLabels: {team: red}}}]
    ports: [{port: 8080}, {port: 9000}, {protocol: UDP}]
"""


def _pod(name, ns, node, labels, ports, host=False):
    spec = {
        "nodeName": node,
        "containers": [
            {
                "name": "c",
                "image": "x",
                "ports": [{"name": n, "containerPort": p, "protocol": pr} for n, p, pr in ports],
            }
        ],
    }
    if host:
        spec["hostNetwork"] = True
    doc = {"apiVersion": "v1", "kind": "Pod", "spec": spec}
    doc["metadata"] = {"name": name, "namespace": ns, "labels": labels}
    return json.dumps(doc)


def _quirks(tmp_path, host=True) -> Path:
    docs = [_pod(*p) for p in PODS]
    if host:
        docs.append(_pod("agent", "y", "node-1", {"app": "agent"}, [("m", 9200, "TCP")], True))
    path = tmp_path / "quirks.yaml"
    path.write_text(QUIRKS + "---\n" + "\n---\n".join(docs) + POLICIES)
    return path


def _same(loaded, **kw):
    """compute_reach by policy evaluation, and by tracing class pairs, equal brute force."""
    want = brute_force(loaded, ALL, ALL, **kw)
    keys = [p.key for p in sorted(loaded.cluster.pods, key=lambda p: p.key)]
    for method in ("policy", "trace"):
        r = compute_reach(loaded, ALL, ALL, method=method, sample=0, **kw)
        rows = [keys.index(k) for k in r.sources]
        cols = [keys.index(k) for k in r.dests]
        expect = tuple(tuple(want[a][b] for b in cols) for a in rows)
        got = tuple(tuple(c.verdict for c in row) for row in r.cells)
        assert got == expect, (method, kw)
    return r


@pytest.mark.parametrize(
    "kw",
    [{}, {"port": 9000}, {"port": 53, "protocol": "udp"}, {"port": 8050}, {"port": 5432}],
)
def test_policy_quirks_equal_brute_force(tmp_path, kw):
    loaded = podnet.load(str(_quirks(tmp_path)))
    r = _same(loaded, **kw)
    s = r.summary()
    assert s["allowed"] and s["denied"] and s["pairs"] == 9 * 8
    # the hostNetwork Pod's node is its own: Pods sharing it are split from their look-alikes
    by = dict(zip(r.sources, r.src_of, strict=True))
    assert r.method == "trace" and by["x/web-1"] != by["x/web-2"]


def test_classes_ignore_the_node_and_split_only_where_needed(tmp_path):
    loaded = podnet.load(str(_quirks(tmp_path, host=False)))
    r = compute_reach(loaded, ALL, ALL, method="policy", sample=0)
    dby = dict(zip(r.dests, r.dst_of, strict=True))
    # as destinations, web-1 and web-2 run on different nodes yet are one class; so are the APIs
    assert dby["x/web-1"] == dby["x/web-2"] and dby["x/api-1"] == dby["x/api-2"]
    assert dby["x/api-1"] != dby["x/db-1"]
    # as sources the clients differ: the ipBlock's except holds node-2's Pod IPs
    by = dict(zip(r.sources, r.src_of, strict=True))
    assert by["y/cli-1"] != by["y/cli-2"]
    assert r.traces == 0 and r.method == "policy"
    _same(loaded)


@pytest.mark.parametrize(
    "case",
    sorted(d.name for d in CASES.iterdir() if d.name.startswith(("k8s-netpol-", "recipe-"))),
)
def test_conformance_cases_equal_brute_force(case):
    loaded = podnet.load(str(CASES / case / "manifests.yaml"))
    _same(loaded)


@pytest.fixture(scope="module")
def size_s(tmp_path_factory):
    path = tmp_path_factory.mktemp("gen") / "S.yaml"
    with path.open("w") as f:
        write_yaml(generate(SIZES["S"], seed=0), f)
    return podnet.load(str(path))


@pytest.mark.parametrize("shape", ["S", "three-namespaces"])
def test_generated_equal_brute_force_and_counts_multiply(size_s, tmp_path, shape):
    loaded = size_s
    if shape != "S":  # three teams' namespaces: default deny, same team, frontend to one app
        path = tmp_path / "g.yaml"
        with path.open("w") as f:
            write_yaml(generate(Size(nodes=3, pods_per_node=12, services=60, policies=9)), f)
        loaded = podnet.load(str(path))
    r = _same(loaded)
    cells = [c.verdict for row in r.cells for c in row]
    s = r.summary()
    assert s["allowed"] == cells.count("allow") and s["denied"] == cells.count("deny")
    assert s["self"] == cells.count("self") and s["pairs"] == len(cells) - s["self"]
    assert s["source_classes"] * s["destination_classes"] == s["class_pairs"]
    assert s["allowed"] and (s["denied"] or shape == "S")


def test_size_m_sample_agrees_with_the_trace_engine(tmp_path):
    path = tmp_path / "M.yaml"
    with path.open("w") as f:
        write_yaml(generate(SIZES["M"], seed=0), f)
    loaded = podnet.load(str(path))
    r = compute_reach(loaded, ALL, ALL, sample=16)
    s = r.summary()
    assert r.method == "policy" and s["checked"] == 16 and s["disagreements"] == 0
    assert s["pairs"] == len(r.sources) * len(r.dests) - s["self"]
    assert s["source_classes"] < 300 and s["destination_classes"] < 300  # 1,100 Deployments
    rng = random.Random(7)
    seen = set()
    for _ in range(60):
        a, b = rng.choice(r.sources), rng.choice(r.dests)
        cell = r.cell(a, b)  # traced
        assert cell.verdict == r.verdict(a, b).verdict, (a, b, cell.reason)
        seen.add(cell.verdict)
    # and pairs the policies allow: same team, frontend to its app
    allowed = [(i, j) for i in range(len(r.src_classes)) for j, c in enumerate(r.symbols(i))
               if c == "."][::97][:20]  # fmt: skip
    for i, j in allowed:
        a, b = r.src_classes[i].members[-1], r.dst_classes[j].members[-1]
        if a != b:
            assert r.cell(a, b).verdict == "allow"
            seen.add("allow")
    assert seen == {"allow", "deny"}


def test_traced_checks_catch_a_wrong_evaluation(tmp_path, monkeypatch):
    import podnet.analysis.reach_policy as rp

    path = tmp_path / "g.yaml"
    with path.open("w") as f:
        write_yaml(generate(Size(nodes=3, pods_per_node=12, services=60, policies=9)), f)
    loaded = podnet.load(str(path))
    right = compute_reach(loaded, ALL, ALL, method="policy", sample=0)

    def everything(m, srcs, dsts, progress=None):  # a broken evaluation: all allowed
        return [(1 << len(srcs)) - 1] * len(dsts), [(1 << len(dsts)) - 1] * len(srcs)

    monkeypatch.setattr(rp, "evaluate", everything)
    wrong = compute_reach(loaded, ALL, ALL, method="policy", sample=64)
    s = wrong.summary()
    assert s["disagreements"] > 0 and s["checked"] > s["disagreements"]
    assert all(e == "allow" and t == "deny" for _, _, e, t in wrong.disagreements)
    # the traced verdicts are the ones kept: every pair of classes the sample saw is right
    for a, b, _, _ in wrong.disagreements:
        i, j = int(a[1:]) - 1, int(b[1:]) - 1
        assert wrong.class_cell(i, j).verdict == right.class_cell(i, j).verdict == "deny"
    err = io.StringIO()
    monkeypatch.setattr(podnet.analysis.reach, "TRACE_LIMIT", 0)  # as for a large cluster
    assert run(["reach", "-f", str(path), "--sample", "64"], io.StringIO(), err) == 0
    assert "warning: class pair S" in err.getvalue() and "the trace says deny" in err.getvalue()


def test_class_outputs_are_compact_and_deterministic(size_s):
    r = compute_reach(size_s, ALL, ALL)
    text = render_reach(r, classes=True)
    assert "source classes:" in text and "by destination class" in text
    assert len(text.splitlines()) < 3 * r.classes + 10
    d = reach_dict(r, classes=True, members=True)
    assert d["level"] == "class" and "matrix" not in d
    assert len(d["class_matrix"]) == len(d["source_classes"])
    assert all(len(row) == len(d["destination_classes"]) for row in d["class_matrix"])
    assert sum(c["size"] for c in d["source_classes"]) == len(r.sources)
    assert sorted(k for c in d["destination_classes"] for k in c["members"]) == sorted(r.dests)
    assert reach_dict(r)["level"] == "pod"
    again = compute_reach(size_s, ALL, ALL)
    assert render_reach(again, classes=True) == text


def test_command_one_pair_and_classes(tmp_path):
    path = str(_quirks(tmp_path))
    out, err = io.StringIO(), io.StringIO()
    assert run(["reach", "-f", path, "--from", "y/app=cli", "--to", "x/app=db", "-p", "5432",
                "--classes", "-o", "json"], out, err) == 0  # fmt: skip
    d = json.loads(out.getvalue())
    assert d["summary"]["denied"] == 2 and d["class_matrix"] == ["X", "X"]
    out = io.StringIO()
    assert run(["reach", "-f", path, "--from", "pod/x/web-1", "--to", "pod/x/api-2"], out, err) == 0
    assert "1 allowed, 0 denied of 1 pairs" in out.getvalue()
    assert err.getvalue() == ""


def test_progress_is_reported(size_s):
    heard = []
    compute_reach(size_s, ALL, ALL, method="policy", progress=lambda *a: heard.append(a[0]))
    assert "reach: classes" in heard and "reach: checking by tracing" in heard
    p = Progress(io.StringIO(), enabled=True)
    compute_reach(size_s, ALL, ALL, progress=p)
    assert "reach:" in p.stream.getvalue()


@pytest.mark.parametrize(
    "module",
    [podnet.analysis.reach, podnet.analysis.reach_policy, podnet.render.reach_text],
    ids=lambda m: m.__name__,
)
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
