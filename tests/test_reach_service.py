"""``podnet reach --via-service`` from Services' endpoints and the policy rules
(podnet.analysis.reach_service): the same Pod-level table as tracing every pair (random small
clusters, the conformance cases), chosen by itself for large tables and checked by a traced
sample there, and refused where the cluster's modes are not the ones it describes."""

from __future__ import annotations

import doctest
import io
import json
import random
import tempfile
from pathlib import Path

import pytest
from fuzz_support import budget
from hypothesis import given
from hypothesis import strategies as st
from test_check_model_props import cluster, policy

import podnet
import podnet.analysis.reach_service
from podnet.analysis.reach import brute_force, compute_reach, parse_selector
from podnet.analysis.reach_service import ServiceReach
from podnet.cli import run
from podnet.errors import UsageError
from podnet.generate import Size, generate, write_yaml

CASES = Path(__file__).parent / "conformance"
ALL = parse_selector(None)
CODES: dict[str, int] = {}  # class-pair codes the property's evaluated tables held


def _load(docs) -> podnet.api.Loaded:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.yaml"
        path.write_text("\n---\n".join(json.dumps(x) for x in docs))
        return podnet.load(str(path))


def _table(r) -> tuple:
    """The Pod-level verdicts. (Which chain a denial names is not compared: where both Pods'
    chains refuse a connection on one node, kube-router's per-Pod order in its FORWARD chain
    decides which runs first, and a class's representative pair stands for Pods on any node.)"""
    return tuple(tuple(c.verdict for c in row) for row in r.cells)


def _count(r) -> None:
    for row in r.rows:
        for code in row:
            CODES[code] = CODES.get(code, 0) + 1


@st.composite
def served_cluster(draw):
    """A cluster of :func:`cluster`'s kind where most Pods are behind a Service on the port
    reach probes by default (their first, ``http`` 8080), so that most pairs are evaluated."""
    docs = draw(cluster())
    for d in docs:
        if d["kind"] == "Pod":
            ports = d["spec"]["containers"][0]["ports"]
            ports[:] = [{"name": "http", "containerPort": 8080, "protocol": "TCP"}] + [
                p for p in ports if p["name"] != "http"
            ]
        elif d["kind"] == "Service":
            d["spec"]["ports"][0].update(
                protocol="TCP", targetPort=draw(st.sampled_from(["http", 8080]))
            )
    for i in range(draw(st.integers(0, 3))):  # more Pods, of every app
        app = draw(st.sampled_from(["a", "b", "c"]))
        docs.append({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"q{i}", "namespace": draw(st.sampled_from(["x", "y"])),
                         "labels": {"app": app}},
            "spec": {"nodeName": draw(st.sampled_from(["node-1", "node-2"])),
                     "containers": [{"name": "c", "image": "i", "ports": [
                         {"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]},
        })  # fmt: skip
    for ns in ("x", "y"):  # a Service per app and namespace
        for app in ("a", "b", "c"):
            docs.append({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": f"t-{app}", "namespace": ns},
                "spec": {"selector": {"app": app}, "ports": [
                    {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]},
            })  # fmt: skip
    docs += [draw(policy(f"extra{i}")) for i in range(draw(st.integers(0, 2)))]
    return docs


@budget(25)
@given(st.one_of(cluster(), served_cluster()))
def test_evaluated_table_is_the_traced_one(docs):
    loaded = _load(docs)
    sel = parse_selector("app")  # the generated Pods (not the cluster's add-ons)
    for kw in ({}, {"port": 8080}, {"port": 53, "protocol": "udp"}):
        got = compute_reach(loaded, sel, sel, via_service=True, method="policy", **kw)
        want = compute_reach(loaded, sel, sel, via_service=True, method="trace", **kw)
        assert got.method == "policy" and want.method == "trace"
        assert _table(got) == _table(want), (kw, docs)
        assert got.summary() | {"method": "", "classes": 0, "source_classes": 0,
                                "destination_classes": 0, "class_pairs": 0, "traces": 0,
                                "checked": 0} == want.summary() | {
            "method": "", "classes": 0, "source_classes": 0, "destination_classes": 0,
            "class_pairs": 0, "traces": 0, "checked": 0}  # fmt: skip
        assert _table(got) == brute_force(loaded, sel, sel, via_service=True, **kw)
        _count(got)


def test_the_property_evaluated_pairs():
    # runs after the property (file order): its tables held evaluated allowed and denied class
    # pairs (with ingress and egress named), not only traced ones (hairpin, no Service, ...)
    assert CODES.get("a", 0) > 5 and CODES.get("i", 0) > 5 and CODES.get("e", 0) > 0, CODES


@pytest.mark.parametrize(
    "case", sorted(p.name for p in CASES.iterdir() if (p / "manifests.yaml").exists())
)
def test_conformance_cases(case):
    loaded = podnet.load(str(CASES / case / "manifests.yaml"))
    got = compute_reach(loaded, ALL, ALL, via_service=True, method="policy")
    want = compute_reach(loaded, ALL, ALL, via_service=True, method="trace")
    assert _table(got) == _table(want)


def _generated(tmp_path: Path, masq: bool = False) -> podnet.api.Loaded:
    size = Size(nodes=12, pods_per_node=25, services=100, endpoints=12, policies=24)
    path = tmp_path / "gen.yaml"
    with open(path, "w") as f:
        write_yaml(generate(size, 5), f)
    if masq:
        text = path.read_text().replace(
            "spec:\n", "spec:\n  kubeProxy: {mode: iptables, masqueradeAll: true}\n", 1
        )
        path.write_text(text)
    return podnet.load(str(path))


def test_large_tables_choose_the_evaluation_and_check_it(tmp_path):
    loaded = _generated(tmp_path)
    r = compute_reach(loaded, ALL, ALL, via_service=True)
    assert r.method == "policy"
    s = r.summary()
    assert s["disagreements"] == 0 and s["checked"] > 0
    assert s["pairs"] == len(r.sources) * len(r.dests) - s["self"]
    # Pod-level answers traced one by one agree with the table's classes
    rng = random.Random(3)
    for _ in range(60):
        a, b = rng.choice(r.sources), rng.choice(r.dests)
        if a == b:
            continue
        assert r.cell(a, b).verdict == r.verdict(a, b).verdict, (a, b)


def test_other_modes_are_traced(tmp_path):
    loaded = _generated(tmp_path, masq=True)
    assert ServiceReach.of(loaded.cluster) is None
    with pytest.raises(UsageError, match="traced pair by pair"):
        compute_reach(loaded, ALL, ALL, via_service=True, method="policy")


def test_documented_examples():
    result = doctest.testmod(podnet.analysis.reach_service)
    assert result.attempted >= 6 and result.failed == 0


def test_command(tmp_path):
    _generated(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    code = run(["reach", "-f", str(tmp_path / "gen.yaml"), "--via-service", "-o", "json"], out, err)
    assert code in (0, 1), err.getvalue()
    d = json.loads(out.getvalue())
    s = d["summary"]
    assert d["via_service"] is True and d["level"] == "class"
    assert s["method"] == "policy" and s["checked"] > 0 and s["disagreements"] == 0
    assert s["allowed"] + s["denied"] + s["partial"] + s["unreachable"] == s["pairs"]
    # destination classes are Services dialled (and the Pods no Service selects)
    assert len(d["destination_classes"]) <= 100 + 2
