"""The words agree with the rules: on every NetworkPolicy conformance probe, the API-semantics
evaluation of podnet.analysis.policy_explain gives the verdict the iptables walk of the policy
agent's rules gives, and every denial names the isolating policies."""

from pathlib import Path

import pytest

import podnet
from podnet.analysis.check import run_check
from podnet.analysis.policy_explain import evaluate, explain_lines, selector_text
from podnet.analysis.probes import load_probes
from podnet.model.base import FrozenDict
from podnet.model.spec import LabelSelector, LabelSelectorRequirement

CASES = Path(__file__).parent / "conformance"
FAMILIES = ("k8s-netpol-", "recipe-")


def cases():
    return sorted(d.name for d in CASES.iterdir() if d.is_dir() and d.name.startswith(FAMILIES))


@pytest.mark.parametrize("case", cases())
def test_semantics_agree_with_iptables(case):
    folder = CASES / case
    loaded = podnet.load(str(folder / "manifests.yaml"))
    results = run_check(loaded, load_probes(str(folder / "probes.yaml")))
    checked = 0
    for r in results:
        for path in r.trace.paths:
            leg = path.forward
            p = leg.packet or r.trace.packet
            denied = leg.disposition in ("DENIED_INGRESS", "DENIED_EGRESS")
            if not denied and not path.delivered:
                continue  # not a policy matter (routing, kube-proxy)
            v = evaluate(loaded.cluster, r.trace.packet.src, p.dst, p.proto, p.dport)
            assert v.allowed == (not denied), f"#{r.probe.index} {r.probe.as_dict()}: {leg.reason}"
            if denied:
                d = v.ingress if leg.disposition == "DENIED_INGRESS" else v.egress
                assert f"{d.pod} is isolated for {d.direction} by " in leg.reason
                assert all(pe.policy in leg.reason for pe in d.policies)
            checked += 1
    assert checked == len(results)


def test_explain_lines_show_every_selecting_policy():
    loaded = podnet.load(
        str(CASES / "k8s-netpol-egress-deny-client-side-even-if-server-allows" / "manifests.yaml")
    )
    pods = {p.key: p for p in loaded.cluster.pods}
    a, b = pods["x/a"], pods["x/b"]
    text = "\n".join(explain_lines(loaded.cluster, a.ip, b.ip, "tcp", 80))
    v = evaluate(loaded.cluster, a.ip, b.ip, "tcp", 80)
    for d in (v.egress, v.ingress):
        for pe in d.policies:
            assert pe.policy in text
    assert f"egress of {a.key}" in text and f"ingress of {b.key}" in text


def test_selector_text():
    sel = LabelSelector(
        FrozenDict(app="web"),
        (
            LabelSelectorRequirement("ns", "In", ("y", "z")),
            LabelSelectorRequirement("x", "DoesNotExist"),
        ),
    )
    assert selector_text(sel) == "app=web,ns in (y,z),!x"
