"""Third-party expectations (tests/conformance, see its README.md): every probe of every case
must give what the upstream test suite expects, through `podnet check`."""

from pathlib import Path

import pytest

import podnet
from podnet.analysis.check import run_check
from podnet.analysis.probes import load_probes

CASES = Path(__file__).parent / "conformance"
FAMILIES = ("kube-proxy-", "k8s-netpol-", "recipe-")  # the families podnet enforces so far


def cases():
    return sorted(d.name for d in CASES.iterdir() if d.is_dir() and d.name.startswith(FAMILIES))


@pytest.mark.parametrize("case", cases())
def test_case(case):
    folder = CASES / case
    loaded = podnet.load(str(folder / "manifests.yaml"))
    probes = load_probes(str(folder / "probes.yaml"))
    results = run_check(loaded, probes)
    failed = [
        f"#{r.probe.index} {r.probe.as_dict().get('note', '')}: {'; '.join(r.mismatches)}"
        for r in results
        if r.ok is False
    ]
    assert not failed, "\n".join(failed)
    assert all(r.ok is True for r in results)
