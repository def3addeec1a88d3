"""Property: on random small clusters (labels, namespaces, Services with named and numbered
target ports, NetworkPolicies of every shape), the check model's own answer for every probe it
covers is what tracing the probe finds (podnet.analysis.check_model)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from fuzz_support import budget
from hypothesis import given
from hypothesis import strategies as st

import podnet
import podnet.analysis.check as check
from podnet.analysis.check import run_check
from podnet.analysis.check_model import check_model
from podnet.analysis.probes import Probe
from podnet.model.base import Pos

POS = Pos("<prop>", 1, 1)
PORTS = [("http", 8080, "TCP"), ("web", 80, "TCP"), ("dns", 53, "UDP"), ("sql", 5432, "TCP")]
APPS = ["a", "b", "c"]


def _selector(draw, key="app", values=APPS):
    v = draw(st.sampled_from([None] + values))
    return {} if v is None else {"matchLabels": {key: v}}


@st.composite
def _peer(draw):
    kind = draw(st.sampled_from(["pod", "ns", "both", "block"]))
    if kind == "pod":
        return {"podSelector": _selector(draw)}
    if kind == "ns":
        return {"namespaceSelector": _selector(draw, "team", ["red", "blue"])}
    if kind == "both":
        return {
            "namespaceSelector": _selector(draw, "team", ["red", "blue"]),
            "podSelector": _selector(draw),
        }
    return {"ipBlock": {"cidr": "10.244.0.0/16", "except": ["10.244.2.0/24"]}}


@st.composite
def _policy_port(draw):
    name, num, proto = draw(st.sampled_from(PORTS))
    port = draw(st.sampled_from([name, num, None]))
    out = {"protocol": proto} if draw(st.booleans()) or proto != "TCP" else {}
    if port is not None:
        out["port"] = port
    return out


@st.composite
def _rule(draw, direction):
    rule = {}
    peers = draw(st.lists(_peer(), max_size=2))
    if peers:
        rule["from" if direction == "ingress" else "to"] = peers
    ports = draw(st.lists(_policy_port(), max_size=2))
    if ports:
        rule["ports"] = ports
    return rule


@st.composite
def cluster(draw):
    docs = [
        {"apiVersion": "podnet/v1", "kind": "Cluster", "metadata": {"name": "prop"},
         "spec": {"nodes": [{"name": "node-1"}, {"name": "node-2"}]}},
    ]  # fmt: skip
    for ns in ("x", "y"):
        team = draw(st.sampled_from(["red", "blue"]))
        docs.append({"apiVersion": "v1", "kind": "Namespace",
                     "metadata": {"name": ns, "labels": {"team": team}}})  # fmt: skip
    n = draw(st.integers(2, 5))
    for i in range(n):
        ports = draw(st.lists(st.sampled_from(PORTS), max_size=2, unique_by=lambda p: p[0]))
        docs.append({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"p{i}", "namespace": draw(st.sampled_from(["x", "y"])),
                         "labels": {"app": draw(st.sampled_from(APPS))}},
            "spec": {"nodeName": draw(st.sampled_from(["node-1", "node-2"])),
                     "containers": [{"name": "c", "image": "i", "ports": [
                         {"name": a, "containerPort": b, "protocol": c} for a, b, c in ports]}]},
        })  # fmt: skip
    for i in range(draw(st.integers(1, 3))):
        sports = []
        for j, (name, num, proto) in enumerate(
            draw(st.lists(st.sampled_from(PORTS), min_size=1, max_size=2, unique_by=lambda p: p[0]))
        ):
            target = draw(st.sampled_from([name, num]))
            sports.append(
                {"name": f"p{j}", "port": 1000 + j, "protocol": proto, "targetPort": target}
            )
        docs.append({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"s{i}", "namespace": draw(st.sampled_from(["x", "y"]))},
            "spec": {"selector": {"app": draw(st.sampled_from(APPS))}, "ports": sports},
        })  # fmt: skip
    docs += [draw(policy(f"np{i}")) for i in range(draw(st.integers(0, 3)))]
    return docs


@st.composite
def policy(draw, name: str):
    """A NetworkPolicy of namespace x or y, of any types, with up to two rules each way."""
    types = draw(st.sampled_from([["Ingress"], ["Egress"], ["Ingress", "Egress"]]))
    spec = {"podSelector": _selector(draw), "policyTypes": types}
    for t in types:
        spec[t.lower()] = draw(st.lists(_rule(t.lower()), max_size=2))
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": draw(st.sampled_from(["x", "y"]))},
            "spec": spec}  # fmt: skip


def _probes(loaded) -> tuple[Probe, ...]:
    pods = [p for p in loaded.cluster.pods if p.namespace in ("x", "y")]
    out = []
    for a in pods:
        for b in pods:
            ports = [(p.container_port, p.protocol) for c in b.containers for p in c.ports]
            for port, proto in ports or [(80, "TCP")]:
                out.append(dict(src=a.key, to=b.key, port=port, protocol=proto))
        for s in loaded.cluster.services:
            if s.namespace in ("x", "y"):
                for sp in s.spec.ports:
                    out.append(dict(src=a.key, service=s.key, port=sp.port, protocol=sp.protocol))
    return tuple(Probe(i, POS, (), **p) for i, p in enumerate(out))


COVERED = [0, 0]


@budget(25)
@given(cluster())
def test_model_answers_what_the_trace_finds(docs):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.yaml"
        path.write_text("\n---\n".join(json.dumps(x) for x in docs))
        loaded = podnet.load(str(path))
    probes = _probes(loaded)
    model = check_model(loaded.cluster)
    resolver = loaded.resolver()
    for r in run_check(loaded, probes, method="trace"):
        p = r.probe
        origin = check._origin(resolver, p)
        found = model.answer(origin.pod, check._target(resolver, p))
        COVERED[1] += 1
        if found is None:
            continue
        COVERED[0] += 1
        got = (found.verdict, found.deny_kind, found.endpoints, found.masq)
        assert got == (r.verdict, r.deny_kind, r.endpoints, r.masq), (p, docs)


def test_the_property_covered_probes():
    # runs after the property (file order): most of its probes were answered by the model
    assert COVERED[1] > 0 and COVERED[0] > 0.5 * COVERED[1]
