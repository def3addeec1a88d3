"""`podnet check` semantics (SPEC section 4): verdicts, deny kinds, endpoints, masquerade."""

from pathlib import Path

import podnet

CASES = Path(__file__).parent / "conformance"


def _result(loaded, probe):
    (r,) = loaded.check([probe])
    return r


def test_policy_reject_is_a_refusal_not_a_drop():
    # kube-router ends a Pod's firewall chain with REJECT: the client is refused at once
    loaded = podnet.load(str(CASES / "k8s-netpol-default-deny-ingress" / "manifests.yaml"))
    r = _result(
        loaded,
        {
            "from": "x/b",
            "to": "x/a",
            "service": "x/s-x-a",
            "port": 80,
            "expect": "deny",
            "deny_kind": "reject",
        },
    )
    assert r.verdict == "deny" and r.deny_kind == "reject" and r.ok is True
    assert r.trace.paths[0].disposition == "DENIED_INGRESS"


def test_kube_proxy_drop_and_reject_kinds():
    loaded = podnet.load(
        str(Path(__file__).resolve().parent.parent / "topologies" / "services.yaml")
    )
    itp = _result(loaded, {"from": "shop/client", "service": "shop/web-itp", "port": 80})
    assert (itp.verdict, itp.deny_kind, itp.ok) == ("deny", "drop", None)
    none = _result(loaded, {"from": "shop/client", "service": "shop/nobody", "port": 80})
    assert (none.verdict, none.deny_kind) == ("deny", "reject")


def test_endpoints_and_masq_are_compared():
    loaded = podnet.load(
        str(Path(__file__).resolve().parent.parent / "topologies" / "services.yaml")
    )
    good = {
        "from_ip": "203.0.113.7",
        "at_node": "node-1",
        "to_ip": "192.168.0.11",
        "port": 30080,
        "endpoints": ["shop/web-1", "shop/web-2"],
        "masq": True,
    }
    assert _result(loaded, good).ok is True
    wrong = dict(good, masq=False, endpoints=["shop/web-1"])
    r = _result(loaded, wrong)
    assert r.ok is False and len(r.mismatches) == 2
