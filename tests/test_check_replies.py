"""`podnet check` traces no replies: what a probe finds (verdict, deny_kind, endpoints, masq, and
the text and JSON of SPEC section 4) comes from the forward legs alone, so it is the same with
and without them, on every conformance case and the services topology."""

from pathlib import Path

import pytest
from test_conformance import CASES, cases

import podnet
from podnet.analysis.check import run_check
from podnet.analysis.probes import load_probes
from podnet.api import _probes
from podnet.render.check_out import render_check_json, render_check_text

TOPOLOGIES = Path(__file__).resolve().parent.parent / "topologies"


def _same_results(loaded, probes) -> None:
    without = run_check(loaded, probes)
    with_replies = run_check(loaded, probes, replies=True)
    assert [(r.verdict, r.deny_kind, r.endpoints, r.masq, r.ok, r.mismatches) for r in without] == [
        (r.verdict, r.deny_kind, r.endpoints, r.masq, r.ok, r.mismatches) for r in with_replies
    ]
    assert render_check_text(without) == render_check_text(with_replies)
    assert render_check_json(without) == render_check_json(with_replies)
    # and the replies really were left out (or traced) on delivered paths
    delivered = [p for r in without for p in r.trace.paths if p.disposition == "DELIVERED"]
    assert all(p.reply is None for p in delivered)
    assert all(
        p.reply is not None
        for r in with_replies
        for p in r.trace.paths
        if p.disposition == "DELIVERED"
    )


@pytest.mark.parametrize("case", cases())
def test_conformance_probes_agree_without_replies(case):
    folder = CASES / case
    loaded = podnet.load(str(folder / "manifests.yaml"))
    _same_results(loaded, load_probes(str(folder / "probes.yaml")))


def test_services_probes_agree_without_replies():
    loaded = podnet.load(str(TOPOLOGIES / "services.yaml"))
    probes = [
        {"from": "shop/client", "service": "shop/web-itp", "port": 80},
        {"from": "shop/client", "service": "shop/nobody", "port": 80},
        {
            "from_ip": "203.0.113.7",
            "at_node": "node-1",
            "to_ip": "192.168.0.11",
            "port": 30080,
            "endpoints": ["shop/web-1", "shop/web-2"],
            "masq": True,
        },
    ]
    assert any(p.disposition == "DELIVERED" for r in loaded.check(probes) for p in r.trace.paths)
    _same_results(loaded, _probes(probes))
