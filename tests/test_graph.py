"""podnet graph: DOT structure, and that Graphviz's dot renders it (CI installs graphviz)."""

import io
import re
import shutil
import subprocess

import pytest
from trace_fixtures import pod, service

import podnet
from podnet.cli import run
from podnet.control import plan
from podnet.dataplane.build import build_network
from podnet.errors import UsageError
from podnet.model.spec import ClusterConfig, Inputs
from podnet.render.graph import PATH_COLOURS, cluster_dot, columns, render
from podnet.trace.run import run_trace


@pytest.fixture(scope="module")
def demo():
    return podnet.load()


def dot_ok(text: str, fmt: str = "svg") -> bytes:
    exe = shutil.which("dot")
    assert exe, "graphviz's dot is not installed (CI installs it: apt-get install graphviz)"
    done = subprocess.run([exe, f"-T{fmt}"], input=text.encode(), capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert not done.stderr.strip(), done.stderr.decode()  # no warnings either
    return done.stdout


def test_demo_structure(demo):
    text = cluster_dot(demo.network)
    for n in demo.cluster.nodes:
        assert f'subgraph "cluster_node:{n.name}"' in text
        for dev in ("cni0", "flannel.1", "eth0"):
            assert f'"node:{n.name}|{dev}" [label="{dev}' in text
        assert (
            f'"node:{n.name}|eth0" -> "underlay"' in text
            and f'"node:{n.name}|flannel.1" -> "overlay"' in text
        )
    for p in demo.cluster.pods:
        if not p.host_network:
            assert f'"pod:{p.key}" [label=' in text
    assert "VNI 1, UDP 8472" in text
    svg = dot_ok(text).decode()
    assert "<svg" in svg and "192.168.0.11" in svg


def test_traced_paths_are_numbered_hop_by_hop(demo):
    t = demo.trace("frontend", "svc/backend:80")
    text = cluster_dot(demo.network, t)
    for i, path in enumerate(t.paths):
        colour = PATH_COLOURS[i]
        labels = re.findall(
            rf'color="{colour}" penwidth=3 dir=forward[^\n]*<b>(\d+)( VXLAN)?</b>', text
        )
        numbers = [int(n) for n, _ in labels]
        assert numbers == sorted(numbers) and numbers[0] == 2 and numbers[-1] == len(path.hops)
    # the two remote paths cross the underlay between the nodes' eth0s, encapsulated
    assert text.count(" VXLAN</b>") == 2
    assert "1 start" in text and "path 3  p=0.3333333333  DELIVERED" in text
    png = dot_ok(text, "png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_twenty_nodes_render_in_rows(tmp_path):
    pods = tuple(
        pod(f"p{n}-{k}", f"node-{n}", {"app": "web" if k else "client"}, [8080])
        for n in range(1, 21)
        for k in range(2)
    )
    net = build_network(
        plan(
            Inputs(
                config=ClusterConfig(),
                pods=pods,
                services=(service("web", {"app": "web"}, target=8080),),
            )
        )
    )
    t = run_trace(net, "default/p1-0", "default/p17-1:8080")
    text = cluster_dot(net, t)
    assert columns(20) == 7 and text.count('subgraph "cluster_node:') == 20
    # no wire from every node to the hubs at this size, the hubs say it in words
    assert '-> "underlay"' not in text and "every node's eth0" in text
    f = tmp_path / "c20.svg"
    render(text, str(f))
    svg = f.read_text()
    width, height = (
        float(x) for x in re.search(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"', svg).groups()
    )
    assert width < 4 * height  # rows, not one long strip


def test_cli_graph(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    f = tmp_path / "t.png"
    assert run(["graph", "--trace", "frontend", "svc/backend:80", "-o", str(f)], out, err) == 0, (
        err.getvalue()
    )
    assert f.read_bytes()[:4] == b"\x89PNG"
    d = tmp_path / "t.dot"
    assert run(["graph", "-o", str(d)], out, err) == 0
    assert d.read_text().startswith("digraph podnet {")
    assert run(["graph", "-o", str(tmp_path / "t.jpg2")], out, err) == 2
    assert "expected .svg, .png" in err.getvalue()


def test_render_refuses_unknown_extension(tmp_path):
    with pytest.raises(UsageError):
        render("digraph x {}", str(tmp_path / "x.bmpx"))


def test_host_gw_has_no_overlay():
    from podnet.api import topologies_dir

    loaded = podnet.load(str(topologies_dir() / "demo-host-gw.yaml"))
    text = cluster_dot(loaded.network)
    assert '"overlay"' not in text and "flannel.1" not in text
    dot_ok(text)
