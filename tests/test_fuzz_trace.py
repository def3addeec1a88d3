"""Fuzzing the SRC/DST parser and the trace engine (hypothesis).

- Random SRC and DST strings go to the parser (podnet.trace.endpoints) and to a trace of the
  demo: each is read, or refused with a UsageError; nothing else escapes.
- Random topologies (a Cluster document with 1-4 nodes on VXLAN or host-gw, Pods, Deployments,
  Services of every type, in two namespaces; sometimes broken on purpose) go through
  ``podnet.load`` and the engine: a broken one is refused with an InputError and exit status 2;
  a valid one traces between random ends, and every trace ends, its paths' probabilities add
  up to exactly 1, every delivered connection's reply reaches the client from the address the
  client used (no NetworkPolicies here, so no exception applies), and loading and tracing again
  prints the same bytes.

Example budget and longer runs: see tests/fuzz_support.py and tests/test_fuzz_load.py
(``PODNET_FUZZ_EXAMPLES=N`` raises max_examples; ``PODNET_FUZZ_REPORT=FILE`` records counts).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import yaml
from fuzz_support import COUNTS, budget, check_trace, cli, report, strict_reply
from hypothesis import given
from hypothesis import strategies as st

import podnet
from podnet.errors import InputError, PodnetError, UsageError
from podnet.render.trace_text import render_trace
from podnet.trace.endpoints import DstRef, SrcRef, parse_dst, parse_src


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    report(__name__)


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


@pytest.fixture(scope="module")
def demo():
    return podnet.load()


# ---------------------------------------------------------------------------- SRC and DST

PIECES = st.sampled_from([
    "svc/", "service/", "pod/", "po/", "deploy/", "deployment/", "node/", "ext/", "default/",
    "kube-system/", "frontend", "backend", "web", "node-1", "node-9", "203.0.113.7", "@", ":",
    ":80", ":http", ":0", ":65536", ":99999", "/", ".", ".default", ".svc.cluster.local",
    "localhost", "10.96.0.10", "192.168.0.11", "256.1.1.1", "-", "A", " ", "", "é", "*",
])  # fmt: skip
ENDPOINT_TEXT = st.one_of(
    st.lists(PIECES, max_size=6).map("".join),
    st.text(alphabet="abcdefkno-./:@0123456789 ABC_é", max_size=30),
    st.text(max_size=20),
)


@budget(600)
@given(ENDPOINT_TEXT, ENDPOINT_TEXT, st.sampled_from(["default", "kube-system", "x"]))
def test_parser_reads_or_refuses(src, dst, ns):
    COUNTS[f"{__name__}.parser"] += 1
    for parse, kind, text in ((parse_src, SrcRef, src), (parse_dst, DstRef, dst)):
        try:
            ref = parse(text, ns)
        except UsageError as e:
            (p,) = e.problems
            assert p.path in ("SRC", "DST") and p.render().startswith("error: ")
            if "\n    " in p.message:  # the caret picture: the text, then carets under a part of it
                shown, carets = p.message.split("\n")[1:3]
                assert shown == "    " + "".join(c if c.isprintable() else "?" for c in text)
                assert set(carets.strip()) == {"^"} and len(carets) <= len(shown) + 1
            continue
        assert isinstance(ref, kind) and ref.text == text


@budget(200)
@given(ENDPOINT_TEXT, ENDPOINT_TEXT)
def test_random_endpoints_on_the_demo(demo, src, dst):
    COUNTS[f"{__name__}.demo_endpoints"] += 1
    try:
        t = demo.trace(src, dst)
    except PodnetError:
        return
    check_trace(t)


# ---------------------------------------------------------------------------- topologies

NAMES = ["a", "b", "c"]


@st.composite
def topologies(draw) -> tuple[list[dict], bool]:
    """A cluster's documents, and whether it was broken on purpose."""
    n_nodes = draw(st.integers(1, 4))
    nodes = [{"name": f"n{i}"} for i in range(1, n_nodes + 1)]
    backend = draw(st.sampled_from(["vxlan", "host-gw"]))
    docs: list[dict] = [{
        "apiVersion": "podnet/v1", "kind": "Cluster",
        "spec": {"network": {"plugin": "flannel", "backend": backend}, "nodes": nodes},
    }]  # fmt: skip
    namespaces = ["default"] + (["x"] if draw(st.booleans()) else [])
    if "x" in namespaces:
        docs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}})

    def container(i: int) -> dict:
        ports = []
        for j, num in enumerate(
            draw(st.lists(st.sampled_from([80, 8080, 53, 9090]), max_size=2, unique=True))
        ):
            port = {"containerPort": num, "protocol": "UDP" if num == 53 else "TCP"}
            if draw(st.booleans()):
                port["name"] = ["http", "web"][j]
            ports.append(port)
        return {"name": f"c{i}", "image": "x", "ports": ports}

    for i in range(draw(st.integers(0, 5))):
        spec: dict = {"containers": [container(k) for k in range(draw(st.integers(1, 2)))]}
        if draw(st.booleans()):
            spec["nodeName"] = draw(st.sampled_from(nodes))["name"]
        if draw(st.integers(0, 9)) == 0:
            spec["hostNetwork"] = True
        docs.append({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"p{i}", "namespace": draw(st.sampled_from(namespaces)), "labels": {"app": draw(st.sampled_from(NAMES))}},
            "spec": spec,
        })  # fmt: skip
    for i in range(draw(st.integers(0, 2))):
        app = draw(st.sampled_from(NAMES))
        docs.append({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": f"d{i}", "namespace": draw(st.sampled_from(namespaces))},
            "spec": {
                "replicas": draw(st.integers(0, 3)), "selector": {"matchLabels": {"app": app}},
                "template": {"metadata": {"labels": {"app": app}}, "spec": {"containers": [container(0)]}},
            },
        })  # fmt: skip
    for i in range(draw(st.integers(0, 3))):
        stype = draw(st.sampled_from(["ClusterIP", "ClusterIP", "NodePort"]))
        ports = []
        for j, num in enumerate(
            draw(st.lists(st.sampled_from([80, 53, 8080]), min_size=1, max_size=2, unique=True))
        ):
            port = {"name": f"p{j}", "port": num, "protocol": "UDP" if num == 53 else "TCP",
                    "targetPort": draw(st.sampled_from([num, 80, 8080, 9090, "http", "web"]))}  # fmt: skip
            ports.append(port)
        spec = {"type": stype, "ports": ports}
        if draw(st.integers(0, 4)):
            spec["selector"] = {"app": draw(st.sampled_from(NAMES))}
        if draw(st.integers(0, 5)) == 0:
            spec["sessionAffinity"] = "ClientIP"
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": f"s{i}", "namespace": draw(st.sampled_from(namespaces))},
                "spec": spec,
            }
        )
    broken = draw(st.integers(0, 4)) == 0
    if broken:
        kind = draw(st.sampled_from(["node", "dup", "cidr", "port", "overlap"]))
        if kind == "node" or len(docs) == 1:
            nodes.append({"name": "n1", "ip": "192.168.0.250"})  # a node given twice
        elif kind == "dup":
            docs.append(docs[-1])
        elif kind == "cidr":
            docs[0]["spec"]["clusterCIDR"] = "10.244.0.0/33"
        elif kind == "port":
            docs.append(
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": "bad"},
                    "spec": {"ports": [{"port": 0}]},
                }
            )
        else:
            docs[0]["spec"]["serviceCIDR"] = "10.244.0.0/12"
    return docs, broken


def _ends(data, cluster) -> list[tuple[str, str]]:
    srcs = [p.key for p in cluster.pods] + [f"node/{n.name}" for n in cluster.nodes]
    dsts = [
        f"{p.key}:{(p.containers[0].ports or [None])[0].container_port if p.containers[0].ports else 80}"
        for p in cluster.pods
    ]
    for s in cluster.services:
        for sp in s.spec.ports:
            if s.cluster_ip is not None:
                dsts.append(f"svc/{s.key}:{sp.port}")
            if sp.node_port:
                dsts.append(f"node/{cluster.nodes[-1].name}:{sp.node_port}")
    if not dsts:
        return []
    n = data.draw(st.integers(1, 3), label="traces")
    return [
        (
            data.draw(st.sampled_from(srcs), label="src"),
            data.draw(st.sampled_from(dsts), label="dst"),
        )
        for _ in range(n)
    ]


@budget(90)
@given(topologies(), st.data())
def test_random_topologies_trace_soundly(workdir, topo, data):
    docs, broken = topo
    f = workdir / "t.yaml"
    f.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    COUNTS[f"{__name__}.topologies" + (".broken" if broken else ".valid")] += 1
    try:
        loaded = podnet.load(str(f))
    except InputError:
        status, out, _ = cli(["trace", "a", "b:80", "-f", str(f)])
        assert status == 2 and out == ""
        return
    assert not broken, "a broken topology was accepted"
    for src, dst in _ends(data, loaded.cluster):
        try:
            t = loaded.trace(src, dst)
        except UsageError:
            continue
        COUNTS[f"{__name__}.topology_traces"] += 1
        check_trace(t)
        strict_reply(t)
        again = podnet.load(str(f)).trace(src, dst)
        assert render_trace(again) == render_trace(t)
