"""podnet generate: synthetic clusters, deterministic, loadable, with the promised shape."""

from __future__ import annotations

import io
from collections import Counter

import pytest

from podnet.cli import run
from podnet.generate import MAX_ENDPOINTS, SIZES, Size, generate, write_yaml


def _text(size: Size, seed: int = 0) -> str:
    buf = io.StringIO()
    write_yaml(generate(size, seed), buf)
    return buf.getvalue()


def test_same_seed_same_bytes_other_seed_other_bytes():
    size = SIZES["M"]
    assert _text(size, 1) == _text(size, 1)
    assert _text(size, 1) != _text(size, 2)


@pytest.mark.parametrize("name", ["S", "M"])
def test_counts_match_the_size(name):
    size = SIZES[name]
    docs = generate(size)
    kinds = Counter(d["kind"] for d in docs)
    assert kinds["Cluster"] == 1
    assert kinds["Service"] == size.services
    assert kinds["NetworkPolicy"] == size.policies
    assert len(docs[0]["spec"]["nodes"]) == size.nodes
    assert sum(d["spec"]["replicas"] for d in docs if d["kind"] == "Deployment") == size.pods


def test_spread_many_small_few_large_capped():
    docs = generate(SIZES["L"], seed=3)
    services = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
    reps = sorted(
        d["spec"]["replicas"]
        for d in docs
        if d["kind"] == "Deployment" and d["metadata"]["name"] in services
    )
    assert max(reps) <= MAX_ENDPOINTS
    assert reps[len(reps) // 2] <= 10  # the median Service is small
    assert reps[-1] >= 100  # and a few are large


def test_policy_patterns():
    docs = generate(SIZES["M"])
    names = Counter(
        d["metadata"]["name"].split("-to-")[0] for d in docs if d["kind"] == "NetworkPolicy"
    )
    assert names["default-deny-ingress"] == 50
    assert names["allow-from-team"] == 50
    assert names["allow-frontend"] == 50


def test_large_cluster_gets_a_cluster_cidr_that_holds_every_node():
    from ipaddress import IPv4Network

    from podnet.generate import _cluster

    spec = _cluster(Size(nodes=5000, pods_per_node=1, services=0))["spec"]
    assert IPv4Network(spec["clusterCIDR"]).num_addresses // 256 > 5000
    assert not IPv4Network(spec["clusterCIDR"]).overlaps(IPv4Network("10.96.0.0/12"))


def test_generated_cluster_loads_and_traces(tmp_path):
    import podnet

    path = tmp_path / "s.yaml"
    assert run(["generate", "--size", "S", "--seed", "5", "-o", str(path)]) == 0
    loaded = podnet.api.load(str(path))
    # the generated Pods and Services, beside kubeadm's (CoreDNS, kubernetes, kube-dns)
    pods = [p for p in loaded.cluster.pods if p.namespace != "kube-system"]
    services = [s for s in loaded.cluster.services if s.spec.meta.src.pos.file == str(path)]
    assert len(pods) == 30
    assert len(loaded.cluster.nodes) == 3
    pod = pods[0]
    svc = services[0].spec.meta
    trace = loaded.trace(f"{pod.namespace}/{pod.name}", f"svc/{svc.namespace}/{svc.name}:80")
    assert trace.paths


def test_cli_overrides_and_bad_numbers():
    out, err = io.StringIO(), io.StringIO()
    assert (
        run(
            [
                "generate",
                "--nodes",
                "2",
                "--pods-per-node",
                "3",
                "--services",
                "2",
                "--policies",
                "0",
            ],
            out,
            err,
        )
        == 0
    )
    assert out.getvalue().count("kind: Deployment") == 2
    assert "kind: NetworkPolicy" not in out.getvalue()
    out, err = io.StringIO(), io.StringIO()
    assert run(["generate", "--endpoints-per-service", "300"], out, err) == 2
    assert "--endpoints-per-service: must be at most 250 (found 300)" in err.getvalue()
