"""``podnet reach``: the e2e 9-pod matrix, selectors, and classes equal to tracing every pair."""

import io
from pathlib import Path

import podnet
from podnet.analysis.probes import load_probes
from podnet.analysis.reach import brute_force, compute_reach, parse_selector, pod_class
from podnet.cli import run
from podnet.render.reach_json import reach_dict
from podnet.render.reach_text import render_reach

CASES = Path(__file__).parent / "conformance"
CASE = CASES / "k8s-netpol-podselector-or-nsselector"


def _expected(case):
    """The case's probes as {(from, to): allow|deny} (they dial each Pod's Service)."""
    return {(p.src, p.to): p.expect for p in load_probes(str(case / "probes.yaml"))}


def test_e2e_matrix_via_service_matches_probes():
    loaded = podnet.load(str(CASE / "manifests.yaml"))
    r = compute_reach(
        loaded,
        parse_selector("pod"),  # the model's Pods (label pod=<name>), not cluster add-ons
        parse_selector("pod"),
        port=80,
        protocol="tcp",
        via_service=True,
    )
    assert r.sources == r.dests == tuple(f"{n}/{p}" for n in "xyz" for p in "abc")
    want = _expected(CASE)
    got = {
        (s, d): {"allow": "allow", "deny": "deny"}[c.verdict]
        for s, row in zip(r.sources, r.cells, strict=True)
        for d, c in zip(r.dests, row, strict=True)
        if s != d
    }
    assert got == want
    text = render_reach(r)
    lines = text.splitlines()
    assert len(lines) <= 14 and all(len(line) <= 100 for line in lines)
    s = r.summary()
    assert s["pairs"] == 72 and s["self"] == 9 and s["allowed"] + s["denied"] == 72
    assert f"summary: {s['allowed']} allowed, {s['denied']} denied of 72 pairs" in text
    d = reach_dict(r)
    assert d["matrix"][0][0] == "-" and len(d["cells"]) == s["denied"]


def test_classes_equal_brute_force(tmp_path):
    # two look-alike Pods per class: x/a and x/a2 share namespace, labels and ports
    text = (CASE / "manifests.yaml").read_text()
    docs = text.split("\n---\n")
    extra = [
        d.replace("name: a\n", "name: a2\n", 1)
        for d in docs
        if "kind: Pod\n" in d and "name: a\n" in d and "namespace: x" in d
    ]
    assert extra
    path = tmp_path / "m.yaml"
    path.write_text(text + "\n---\n" + "\n---\n".join(extra))
    loaded = podnet.load(str(path))
    pods = {p.key: p for p in loaded.cluster.pods}
    assert pod_class(loaded.cluster, pods["x/a"]) == pod_class(loaded.cluster, pods["x/a2"])
    for kw in ({"port": 80}, {"port": 81, "via_service": False}, {}):
        r = compute_reach(loaded, parse_selector("pod"), parse_selector("pod"), **kw)
        assert r.traces < len(r.sources) * (len(r.dests) - 1)
        assert tuple(tuple(c.verdict for c in row) for row in r.cells) == brute_force(
            loaded, parse_selector("pod"), parse_selector("pod"), **kw
        )


def test_selectors():
    s = parse_selector("x/pod!=a,pod")
    loaded = podnet.load(str(CASE / "manifests.yaml"))
    keys = [p.key for p in loaded.cluster.pods if s.matches(p)]
    assert sorted(keys) == ["x/b", "x/c"]


def test_reach_command_text_and_json():
    out, err = io.StringIO(), io.StringIO()
    code = run(
        ["reach", "-f", str(CASE / "manifests.yaml"), "--from", "x/", "--to", "y/", "-p", "80"],
        out,
        err,
    )
    assert code == 0 and out.getvalue().startswith(
        "reach: tcp port 80 to the Pod IP; 3 sources x 3 destinations"
    )
    out = io.StringIO()
    assert (
        run(
            ["reach", "-f", str(CASE / "manifests.yaml"), "-o", "json", "--from", "pod=a"], out, err
        )
        == 0
    )
    import json

    d = json.loads(out.getvalue())
    assert d["from"] == ["x/a", "y/a", "z/a"] and len(d["matrix"]) == 3
    out = io.StringIO()
    assert run(["reach", "-f", str(CASE / "manifests.yaml"), "--from", "nope=1"], out, err) == 2


def test_default_selection_leaves_out_cluster_addons_unless_named():
    import podnet
    from podnet.analysis.reach import compute_reach, parse_selector

    loaded = podnet.load()
    everyone = compute_reach(loaded, parse_selector(None), parse_selector(None), port=8080)
    assert everyone.sources and not any(k.startswith("kube-system/") for k in everyone.sources)
    named = compute_reach(
        loaded, parse_selector("kube-system/"), parse_selector("app=backend"), port=8080
    )
    assert named.sources and all(k.startswith("kube-system/coredns-") for k in named.sources)
