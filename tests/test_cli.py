"""The command line, in process: exit codes, streams, messages."""

import io
import json
from pathlib import Path

from podnet.cli import run

ROOT = Path(__file__).resolve().parent.parent
DEMO = str(ROOT / "topologies" / "demo.yaml")


def call(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def test_trace_demo_without_file_uses_bundled_demo():
    code, out, err = call("trace", "frontend", "svc/backend:80")
    assert code == 0, err
    assert out.startswith("trace frontend -> svc/backend:80\n")
    assert "verdict delivered (3 paths)" in out
    assert out.count("p=0.3333333333") == 3


def test_trace_json_follows_spec():
    code, out, _ = call("trace", "frontend", "svc/backend:80", "-f", DEMO, "-o", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["verdict"] == "delivered"
    assert set(doc["packet"]) == {"src", "dst", "proto", "sport", "dport"}
    path = doc["paths"][0]
    assert set(path) >= {"probability", "disposition", "endpoint", "hops", "reply", "reason"}
    hop = path["hops"][0]
    assert set(hop) >= {"node", "netns", "device", "steps", "packet"}
    nf = [s for h in path["hops"] for s in h["steps"] if s["type"] == "netfilter"]
    assert nf and all({"table", "chain", "rule", "rulenum"} <= set(s) for s in nf)


def test_trace_not_delivered_exits_1():
    code, out, _ = call("trace", "frontend", "10.96.255.254:80")
    assert code == 1
    assert "NO_ROUTE" in out


def test_unknown_pod_exit_2_with_closest_names():
    code, out, err = call("trace", "frontnd", "svc/backend:80")
    assert code == 2 and out == ""
    assert "no Pod 'default/frontnd'" in err
    assert "did you mean default/frontend-" in err
    assert "Traceback" not in err


def test_unknown_service_hint():
    code, _, err = call("trace", "frontend", "svc/backnd:80")
    assert code == 2
    assert "no Service 'default/backnd'" in err and "default/backend" in err


def test_bad_dst_shows_caret():
    code, _, err = call("trace", "frontend", "svc/backend:http2x!")
    assert code == 2
    assert "^" in err


def test_missing_file_is_exit_2():
    code, _, err = call("trace", "a", "b:1", "-f", "/nonexistent/cluster.yaml")
    assert code == 2
    assert "/nonexistent/cluster.yaml" in err and "Traceback" not in err


def test_usage_error_is_exit_2():
    code, _, err = call("trace")
    assert code == 2
    assert "error:" in err


def test_help_lists_commands_and_examples():
    code, out, _ = call("--help")
    assert code == 0 and "trace" in out and "iptables-save" in out
    code, out, _ = call("trace", "--help")
    assert code == 0 and "examples:" in out


def test_iptables_save_node_has_kube_proxy_and_flannel_chains():
    code, out, _ = call("iptables-save", "--node", "node-1")
    assert code == 0
    assert out.count("COMMIT") == 4
    assert ":KUBE-SERVICES - [0:0]" in out and ":FLANNEL-POSTRTG - [0:0]" in out
    assert "-A KUBE-SVC-" in out and "--probability 0.3333333333" in out


def test_iptables_save_unknown_node():
    code, _, err = call("iptables-save", "--node", "node-9")
    assert code == 2 and "no node 'node-9'" in err


def test_check_exit_codes(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("- {from: default/web, service: default/backend, port: 80, expect: allow}\n")
    code, out, _ = call("check", str(good))
    assert code == 0, out
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {from: default/web, service: default/backend, port: 80, expect: deny}\n")
    code, out, _ = call("check", str(bad))
    assert code == 1 and "FAIL" in out


def test_check_probe_file_errors_point_at_the_key(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("- from: default/web\n  servce: default/backend\n  port: 80\n")
    code, _, err = call("check", str(f))
    assert code == 2
    assert f"{f}:2:3: error: [0].servce: unknown probe key 'servce'" in err
    assert "did you mean 'service'?" in err


def test_iptables_save_formats():
    code, kube, _ = call("iptables-save", "--node", "node-2", "--format", "kube-proxy")
    assert code == 0
    assert "FLANNEL" not in kube and ":KUBE-NODEPORTS - [0:0]" in kube.splitlines()[1]
    lines = kube.splitlines()
    nat = lines.index("*nat")
    services = [ln for ln in lines[nat:] if ln.startswith("-A KUBE-SERVICES")]
    assert "must be the last rule" in services[-1]
    code, kernel, _ = call("iptables-save", "--node", "node-2", "--format", "kernel")
    assert code == 0
    assert any(
        ln.startswith("-A KUBE-SERVICES -d 10.") and "/32 -p tcp -m comment" in ln
        for ln in kernel.splitlines()
    )
