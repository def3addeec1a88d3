"""podnet.realize without root: kernel names, the scripts for the demo, outcome comparison, the
agent's client against a local listener, requirement messages."""

import json
import re
import socket
import threading
from ipaddress import IPv4Address

import pytest

import podnet
from podnet.errors import PodnetError
from podnet.realize import system
from podnet.realize.agent import attempt, run_job
from podnet.realize.names import IFNAMSIZ, PREFIX_RE, RunNames, check_run_name, run_prefix
from podnet.realize.script import plan_run
from podnet.realize.verify import Expected, compare, default_probes, expected_outcomes


@pytest.fixture(scope="module")
def demo():
    return podnet.load()


@pytest.fixture(scope="module")
def plan(demo):
    return plan_run(demo.network, RunNames(run_prefix("t")))


def test_names_are_prefixed_short_and_deterministic(demo, plan):
    assert run_prefix("t") == run_prefix("t") != run_prefix("u")
    assert all(PREFIX_RE.match(n) for n in plan.netns_names())
    assert len(set(plan.netns_names())) == len(plan.netns_names())
    for s in plan.scripts:
        for line in s.ip:
            words = line.split()
            for i, w in enumerate(words[:-1]):
                if w in ("add", "name") and words[0] == "link":
                    assert len(words[i + 1]) <= IFNAMSIZ, line
    with pytest.raises(PodnetError):
        check_run_name("../etc")
    assert plan_run(demo.network, RunNames(run_prefix("t"))) == plan


def test_node_script_is_the_emulated_namespace(demo, plan):
    ns = demo.network.get("node:node-1")
    s = next(x for x in plan.scripts if x.emulated == "node:node-1")
    vx = ns.link("flannel.1")
    assert (
        f"link add flannel.1 address {vx.mac} mtu 1450 type vxlan id 1 local 192.168.0.11 dev eth0 dstport 8472 nolearning"
        in s.ip
    )
    assert "addr add 10.244.1.0/32 dev flannel.1" in s.ip
    assert "addr add 10.244.1.1/24 brd + dev cni0" in s.ip
    assert "route replace default via 192.168.0.1 dev eth0" in s.ip
    assert "route replace 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink" in s.ip
    peer = demo.network.get("node:node-2").link("flannel.1").mac
    assert f"neigh replace 10.244.2.0 lladdr {peer} nud permanent dev flannel.1" in s.ip
    assert len(s.bridge) == 2  # one VXLAN FDB entry per other node
    assert f"fdb append {peer} dev flannel.1 dst 192.168.0.12 self permanent" in s.bridge
    assert ("net.ipv4.ip_forward", "1") in s.sysctls and (
        "net.bridge.bridge-nf-call-iptables",
        "1",
    ) in s.sysctls
    # exactly what `podnet iptables-save --node node-1` prints
    assert s.iptables == demo.iptables_save("node-1")
    # nfacct objects the rules count into exist before iptables-restore runs
    assert s.nfacct == tuple(sorted(set(re.findall(r"--nfacct-name (\S+)", s.iptables))))
    veths = [lk for lk in ns.links if lk.kind == "veth"]
    for lk in veths:
        assert f"link set dev {lk.name} type bridge_slave hairpin on" in s.ip
        assert any(
            line.startswith(
                f"link add {lk.name} address {lk.mac} mtu 1450 type veth peer name eth0 netns {plan.names.prefix}-p-"
            )
            for line in s.ip
        )
    # no kernel route is added by hand
    assert not any("proto kernel" in line for line in s.ip)


def test_underlay_moves_every_eth0_into_its_owner(demo, plan):
    ul = plan.scripts[0]
    assert ul.netns.endswith("-underlay") and ul.ip[0] == "link add br0 mtu 1500 type bridge"
    owners = [line.split()[-1] for line in ul.ip if " peer name eth0 " in line]
    assert owners == [plan.mapping[f"node:{n.name}"] for n in demo.cluster.nodes] + [
        plan.names.gateway
    ]
    gw = plan.scripts[-1]
    assert gw.emulated == "gateway" and "addr add 192.168.0.1/24 brd + dev eth0" in gw.ip
    assert ("net.ipv4.conf.all.send_redirects", "0") in gw.sysctls


def test_outside_clients_get_a_namespace_and_a_gateway_route(demo):
    from podnet.dataplane.build import with_external_client

    net = with_external_client(demo.network, IPv4Address("203.0.113.2"), "node-1")
    p = plan_run(net, RunNames("pn000000"))
    ext = next(s for s in p.scripts if s.emulated == "external:203.0.113.2")
    assert ext.netns == "pn000000-x-203.0.113.2"
    assert "addr add 203.0.113.2/32 dev eth0" in ext.ip
    assert "route replace default via 192.168.0.11 dev eth0 onlink" in ext.ip
    assert "route replace 203.0.113.2/32 dev eth0 scope link" in p.scripts[-1].ip


def test_default_probes_cover_every_pod_and_service_port(demo):
    probes = default_probes(demo.cluster, demo.network)
    pods = [p for p in demo.cluster.pods if demo.network.pod_netns(p.key)]
    ports = sum(
        len({(cp.container_port, cp.protocol) for c in p.containers for cp in c.ports})
        for p in pods
    )
    svc_ports = sum(len(s.spec.ports) for s in demo.cluster.services if s.cluster_ip)
    assert ports and svc_ports
    assert len(probes) == len(pods) * (ports + svc_ports)
    assert {p.src for p in probes} == {p.key for p in pods}


def test_expected_outcomes_of_a_load_balanced_service(demo):
    t = demo.trace("default/frontend", "svc/backend:80")
    exp, why = expected_outcomes(t)
    assert why is None
    assert [e.key for e in exp] == [f"connected:{p}" for p in t.endpoints]
    assert all(e.local_port == 8080 and e.peer_ip == str(t.packet.src) for e in exp)


def test_compare():
    e = [Expected("connected:default/b", "10.244.1.2", "10.244.2.2", 8080)]
    ok = {
        "outcome": "connected",
        "pod": "default/b",
        "peer": ["10.244.1.2", 4],
        "local": ["10.244.2.2", 8080],
    }
    assert compare(e, [ok], "tcp") == ()
    masq = dict(ok, peer=["10.244.2.1", 4])
    assert compare(e, [masq], "tcp") == (
        "default/b saw the client as 10.244.2.1, the emulator predicts 10.244.1.2",
    )
    assert len(compare(e, [ok, {"outcome": "refused"}], "tcp")) == 1
    # a drop may show as a timeout or as unreachable; a REJECT must be a refusal
    assert compare([Expected("timeout")], [{"outcome": "unreachable"}], "tcp") == ()
    assert compare([Expected("refused")], [{"outcome": "timeout"}], "tcp") != ()


def _listener(kind):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    if kind == socket.SOCK_STREAM:
        s.listen(8)
    return s


def test_agent_client_reads_the_listener_answer():
    srv = _listener(socket.SOCK_STREAM)
    port = srv.getsockname()[1]

    def serve():
        c, peer = srv.accept()
        c.sendall(
            (
                json.dumps({"pod": "ns/p", "peer": list(peer), "local": list(c.getsockname())})
                + "\n"
            ).encode()
        )
        c.close()

    threading.Thread(target=serve, daemon=True).start()
    a = attempt("tcp", "127.0.0.1", port, 2)
    assert a["outcome"] == "connected" and a["pod"] == "ns/p" and a["local"] == ["127.0.0.1", port]
    srv.close()
    assert attempt("tcp", "127.0.0.1", port, 2)["outcome"] == "refused"


def test_agent_udp_and_job_bound():
    srv = _listener(socket.SOCK_DGRAM)
    port = srv.getsockname()[1]

    def serve():
        for _ in range(2):
            _, peer = srv.recvfrom(100)
            srv.sendto(
                json.dumps({"pod": "ns/u", "peer": list(peer), "local": ["", port]}).encode()
                + b"\n",
                peer,
            )

    threading.Thread(target=serve, daemon=True).start()
    tries = run_job(
        {
            "id": "0",
            "proto": "udp",
            "ip": "127.0.0.1",
            "port": port,
            "tries": 5,
            "min_tries": 2,
            "want": ["connected:ns/u"],
        }
    )
    assert [t["outcome"] for t in tries] == ["connected", "connected"]
    srv.close()


def test_missing_requirements_name_what_is_missing(monkeypatch):
    monkeypatch.setattr(
        system.shutil, "which", lambda tool: None if tool == "bridge" else "/bin/" + tool
    )
    missing = system.missing_requirements()
    assert any("'bridge' command (package iproute2)" in m for m in missing)
    with pytest.raises(PodnetError) as e:
        system.require()
    assert "missing" in e.value.problems[0].message
