"""Golden traces: the canonical paths of the bundled demo, on both flannel backends, in text and
JSON, compared byte for byte. Regenerate after an intended change with
``PODNET_UPDATE_GOLDEN=1 python -m pytest tests/test_golden_traces.py`` and review the diff."""

import os
from pathlib import Path

import pytest

import podnet
from podnet.render.trace_json import render_trace_json
from podnet.render.trace_text import render_trace

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("PODNET_UPDATE_GOLDEN") == "1"


def _demo(backend: str):
    name = "demo.yaml" if backend == "vxlan" else "demo-host-gw.yaml"
    return podnet.load(str(ROOT / "topologies" / name))


def _cases(loaded):
    """(label, SRC, DST) for each canonical path, with Pod names looked up in the cluster."""
    pods = loaded.cluster.pods
    front = next(p for p in pods if p.labels.get("app") == "frontend")
    backs = sorted((p for p in pods if p.labels.get("app") == "backend"), key=lambda p: p.name)
    same = next(p for p in backs if p.node == front.node)
    other = next(p for p in backs if p.node != front.node)
    return [
        ("intra-pod-lo", "default/web", "localhost:9090"),
        ("pod-pod-same-node", front.key, f"{same.key}:8080"),
        ("pod-pod-cross-node", front.key, f"{other.key}:8080"),
        ("pod-service", front.key, "svc/backend:80"),
        ("node-service", f"node/{front.node}", "svc/backend:http"),
    ]


@pytest.mark.parametrize("backend", ["vxlan", "host-gw"])
def test_golden(backend):
    loaded = _demo(backend)
    mismatched = []
    for label, src, dst in _cases(loaded):
        trace = loaded.trace(src, dst)
        assert trace.verdict == "delivered", f"{label}: {trace.paths[0].forward.reason}"
        for ext, text in (("txt", render_trace(trace)), ("json", render_trace_json(trace))):
            path = GOLDEN / f"{backend}-{label}.{ext}"
            if UPDATE:
                path.write_text(text)
            elif not path.exists() or path.read_text() != text:
                mismatched.append(path.name)
    assert not mismatched, f"differs from golden: {mismatched}"
