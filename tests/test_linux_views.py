"""podnet show: the Linux tools' own formats; podnet trace -o iptables-trace; terminal output."""

import io
import re

import pytest

import podnet
from podnet.cli import run
from podnet.errors import UsageError
from podnet.render import linux_views as lv
from podnet.render.iptables_trace import render_iptables_trace
from podnet.render.term import render_trace_tty, use_colour


@pytest.fixture(scope="module")
def demo():
    return podnet.load()


def call(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def test_ip_addr_of_a_node_has_iproute2_layout(demo):
    text = demo.show("addr", "node-1")
    lines = text.splitlines()
    assert lines[:4] == [
        "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default qlen 1000",
        "    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00",
        "    inet 127.0.0.1/8 scope host lo",
        "       valid_lft forever preferred_lft forever",
    ]
    assert (
        "3: flannel.1: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue state UNKNOWN group default "
        in lines
    )
    assert "    inet 10.244.1.0/32 scope global flannel.1" in lines
    assert "    inet 10.244.1.1/24 brd 10.244.1.255 scope global cni0" in lines
    ports = [x for x in lines if "master cni0" in x]
    assert ports and all(
        re.match(
            r"^\d+: veth[0-9a-f]{8}@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue master cni0 state UP group default qlen 1000$",
            x,
        )
        for x in ports
    )


def test_ip_addr_of_a_pod_names_its_peer_ifindex(demo):
    pod_ns = demo.network.get(demo.trace("frontend", "svc/backend:80").paths[0].hops[0].netns)
    peer_ns, peer_dev = pod_ns.link("eth0").peer
    peer_index = demo.network.get(peer_ns).link(peer_dev).index
    text = lv.ip_addr(pod_ns, demo.network)
    # the frontend's address depends on where kubeadm's CoreDNS Pods went first
    ip = str(pod_ns.link("eth0").addresses[0].ip)
    mac = "0a:58:" + ":".join(f"{int(x):02x}" for x in ip.split("."))
    brd = ip.rsplit(".", 1)[0] + ".255"
    assert (
        f"2: eth0@if{peer_index}: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue state UP group default \n    link/ether {mac} brd ff:ff:ff:ff:ff:ff link-netnsid 0\n    inet {ip}/24 brd {brd} scope global eth0\n"
        in text
    )


def test_ip_link_says_mode_default(demo):
    first = demo.show("links", "node/node-2").splitlines()[0]
    assert (
        first
        == "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000"
    )


def test_routes_neigh_fdb(demo):
    assert (
        "10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink"
        in demo.show("routes", "node-1").splitlines()
    )
    local = demo.show("routes", "node-1", table="local").splitlines()
    assert "local 10.244.1.1 dev cni0 proto kernel scope host src 10.244.1.1" in local
    assert re.search(
        r"^10\.244\.2\.0 dev flannel\.1 lladdr ([0-9a-f]{2}:){5}[0-9a-f]{2} PERMANENT$",
        demo.show("neigh", "node-1"),
        re.M,
    )
    assert re.search(
        r"dev flannel\.1 dst 192\.168\.0\.12 self permanent$", demo.show("fdb", "node-1"), re.M
    )


def test_neigh_after_trace_adds_resolved_entries(demo):
    t = demo.trace("frontend", "svc/backend:80")
    text = demo.show("neigh", t.paths[0].hops[0].netns.split(":", 1)[1], after=t)
    gw = re.escape(str(demo.cluster.node(t.paths[0].hops[0].node).gateway))
    assert re.search(rf"^{gw} dev eth0 lladdr \S+ REACHABLE$", text, re.M)


def test_conntrack_after_trace(demo):
    front = next(p for p in demo.cluster.pods if p.name.startswith("frontend-"))
    code, out, err = call(
        "show", "conntrack", front.node, "--after-trace", "frontend", "svc/backend:80"
    )
    assert code == 0
    line = out.splitlines()[0]
    f = re.escape(str(front.ip))
    assert re.match(
        rf"^tcp      6 86400 ESTABLISHED src={f} dst=10\.\d+\.\d+\.\d+ sport=40000 dport=80 src=10\.244\.\d+\.\d+ dst={f} sport=8080 dport=40000 \[ASSURED\] mark=0 use=1$",
        line,
    )
    shown = len(out.splitlines())  # with the VXLAN flows when the backend is on another node
    assert err.endswith(
        f"conntrack v1.4.7 (conntrack-tools): {shown} flow entries have been shown.\n"
    )
    code, out, err = call("show", "conntrack", "node-1")
    assert (code, out) == (0, "") and "0 flow entries" in err
    # nothing programs iptables in a Pod's namespace: conntrack tracks nothing there
    # (tests/test_realize_kernel.py holds this to the kernel)
    for pod in ("frontend", "backend"):
        code, out, err = call(
            "show", "conntrack", pod, "--after-trace", "frontend", "svc/backend:80"
        )
        assert (code, out) == (0, "") and "0 flow entries" in err, (pod, out)
    trace = demo.trace("frontend", "svc/backend:80")
    held = {ns for p in trace.paths for ns in p.conntrack}
    assert held and all(ns.startswith("node:") for ns in held), held


def test_iptables_view_is_iptables_save(demo):
    code, out, _ = call("show", "iptables", "node-1")
    assert code == 0 and out == demo.iptables_save("node-1")
    # a Pod's namespace has no table loaded: iptables-save prints nothing there
    # (tests/test_realize_kernel.py holds this to the kernel)
    code, out, err = call("show", "iptables", "frontend")
    assert (code, out, err) == (0, "", "")


def test_names_resolve_and_unknown_names_are_usage_errors(demo):
    net = demo.network
    assert lv.resolve_netns(net, "node-1") == "node:node-1"
    assert lv.resolve_netns(net, "web") == "pod:default/web"
    assert (
        lv.resolve_netns(net, "default/web")
        == lv.resolve_netns(net, "pod/default/web")
        == "pod:default/web"
    )
    assert lv.resolve_netns(net, "frontend").startswith("pod:default/frontend-")
    with pytest.raises(UsageError) as e:
        lv.resolve_netns(net, "nod-1")
    assert "node-1" in e.value.problems[0].hint
    code, _, err = call("show", "routes", "node/nope")
    assert code == 2 and "no node 'nope'" in err and "Traceback" not in err


def test_iptables_trace_lines(demo):
    t = demo.trace("frontend", "svc/backend:80", seed=1)
    text = render_iptables_trace(t, demo.network)
    lines = [x for x in text.splitlines() if x.startswith("TRACE:")]
    src = t.packet.src  # the frontend's address
    # nothing programs iptables in a Pod's namespace: no table hooks there, so the first
    # TRACE line is the node's, where the frame comes up from the bridge
    assert lines[0].startswith("TRACE: raw:PREROUTING:policy:1 IN=cni0 OUT= PHYSIN=veth")
    assert f" SRC={src} " in lines[0]
    hop = None
    for x in text.splitlines():
        if x.startswith("#  "):
            hop = x
        elif x.startswith("TRACE:"):
            assert "pod:" not in hop, (hop, x)
    dnat = next(x for x in lines if x.startswith("TRACE: nat:KUBE-SEP-"))
    assert re.search(
        r" IN=cni0 OUT= PHYSIN=veth[0-9a-f]{8} MAC=([0-9a-f]{2}:){13}[0-9a-f]{2} SRC="
        + re.escape(str(src))
        + r" DST=10\.\d+\.\d+\.\d+ LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=\d+ DF PROTO=TCP SPT=40000 DPT=80 SEQ=\d+ ACK=0 WINDOW=64860 RES=0x00 SYN URGP=0 OPT \([0-9A-F]{40}\)$",
        dnat,
    )
    assert any(":KUBE-FORWARD:rule:" in x and "ACK SYN" in x for x in lines)  # the reply
    code, out, _ = call(
        "trace", "frontend", "svc/backend:80", "--seed", "1", "-o", "iptables-trace"
    )
    assert code == 0 and out == text
    # a node's own socket: locally generated, with the socket's owner (nf_log's UID/GID)
    node = render_iptables_trace(demo.trace("node/node-1", "svc/backend:80", seed=1), demo.network)
    first = next(x for x in node.splitlines() if x.startswith("TRACE:"))
    assert first.startswith("TRACE: raw:OUTPUT:policy:1 IN= OUT=eth0 SRC=")
    assert first.endswith(" UID=0 GID=0")


def test_colour_only_when_asked_or_on_a_terminal(demo, monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert use_colour("auto", Tty(), {}) and not use_colour("auto", Tty(), {"NO_COLOR": "1"})
    assert not use_colour("auto", io.StringIO(), {}) and use_colour(
        "always", io.StringIO(), {"NO_COLOR": "1"}
    )
    t = demo.trace("frontend", "svc/backend:80")
    tty = render_trace_tty(t)
    assert "\033[" in tty and "├─" in tty and "└─" in tty
    plain = re.sub(r"\033\[[0-9;]*m", "", tty)
    assert "DELIVERED" in plain and "nat        dst" in plain
    code, out, _ = call("trace", "frontend", "svc/backend:80")
    assert code == 0 and "\033[" not in out  # a StringIO is no terminal
    code, out, _ = call("trace", "frontend", "svc/backend:80", "--color", "always")
    assert "\033[32m" in out
