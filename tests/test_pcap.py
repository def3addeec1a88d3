"""podnet trace --pcap: real frames, read back with tshark (CI installs it)."""

import shutil
import subprocess

import pytest

import podnet
from podnet.cli import run
from podnet.render.pcap import frames, write_pcap
from podnet.render.wire import path_crossings

TSHARK = shutil.which("tshark")


@pytest.fixture(scope="module")
def demo():
    return podnet.load()


def tshark(path, *fields, filt=None):
    assert TSHARK, "tshark is not installed (CI installs it: apt-get install tshark)"
    cmd = [
        TSHARK,
        "-n",
        "-r",
        str(path),
        "-d",
        "udp.port==8472,vxlan",
        "-T",
        "fields",
        "-E",
        "separator=/t",
    ]
    if filt:
        cmd += ["-Y", filt]
    for f in fields:
        cmd += ["-e", f]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return [line.split("\t") for line in done.stdout.splitlines()]


def test_cross_node_service_decodes_vxlan_outer_and_inner(demo, tmp_path):
    t = demo.trace("frontend", "svc/backend:80")
    f = tmp_path / "t.pcap"
    n = write_pcap(t, str(f), demo.network)
    assert n == sum(len(path_crossings(t, i)) for i in range(len(t.paths)))
    rows = tshark(
        f,
        "vxlan.vni",
        "udp.dstport",
        "ip.src",
        "ip.dst",
        "tcp.flags.syn",
        "tcp.flags.ack",
        "tcp.srcport",
        "tcp.dstport",
        filt="vxlan",
    )
    # two remote backends: SYN and SYN-ACK cross the underlay once each, per path
    assert len(rows) == 4
    for vni, dport, src, dst, syn, ack, sport, tdport in rows:
        assert vni == "1" and dport == "8472"
        outer_src, inner_src = src.split(",")
        outer_dst, inner_dst = dst.split(",")
        assert outer_src.startswith("192.168.0.") and outer_dst.startswith("192.168.0.")
        assert inner_src.startswith("10.244.") and inner_dst.startswith("10.244.")
        assert syn in ("1", "True")
        if ack in ("1", "True"):  # the SYN-ACK: from the backend's port 8080, before un-DNAT
            assert (sport, tdport) == ("8080", "40000")
        else:  # after kube-proxy's DNAT: to the endpoint's port
            assert (sport, tdport) == ("40000", "8080")


def test_nat_applied_where_it_happened(demo, tmp_path):
    t = demo.trace("frontend", "svc/backend:80")
    f = tmp_path / "t.pcap"
    write_pcap(t, str(f), demo.network)
    rows = tshark(f, "frame.time_epoch", "ip.dst", "ip.src", "tcp.flags.ack", filt="not vxlan")
    first = rows[0]
    assert first[0].startswith("0.000000") and first[1] == t.packet.dst.exploded  # to the ClusterIP
    # the reply reaching the client comes from the ClusterIP again (conntrack undid the DNAT)
    last_of_path1 = [r for r in rows if r[0].startswith("0.")][-1]
    assert last_of_path1[2] == str(t.packet.dst) and last_of_path1[3] in ("1", "True")
    # path i starts at second i, frames 1 us apart
    assert [r[0][:10] for r in rows if r[0].startswith("1.")][:2] == ["1.00000000", "1.00000200"]


def test_udp_and_same_node_frames(demo, tmp_path):
    t = demo.trace("default/web", "localhost:9090")
    f = tmp_path / "lo.pcap"
    assert write_pcap(t, str(f), demo.network) >= 2
    rows = tshark(f, "eth.src", "ip.src", "ip.dst", "tcp.dstport")
    assert rows[0][0] == "00:00:00:00:00:00" and rows[0][1] == "127.0.0.1"


def test_byte_deterministic_and_pcapng_names_devices(demo, tmp_path):
    t = demo.trace("frontend", "svc/backend:80")
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    write_pcap(t, str(a), demo.network)
    write_pcap(t, str(b), demo.network)
    assert a.read_bytes() == b.read_bytes()
    ng = tmp_path / "t.pcapng"
    write_pcap(t, str(ng), demo.network)
    rows = tshark(ng, "frame.interface_name", "frame.comment")
    assert rows[0][0].startswith("pod:default/frontend-") and rows[0][0].endswith("|eth0")
    assert rows[0][1].startswith("path 1/3 forward: pod:default/frontend-")


def test_frame_macs_follow_the_hops(demo):
    t = demo.trace("frontend", "svc/backend:80")
    items = frames(t, None)
    first = items[0][0]
    pod_eth0 = demo.network.get(t.paths[0].hops[0].netns).link("eth0")
    cni0 = demo.network.get(f"node:{t.paths[0].hops[0].node}").link("cni0")
    assert first.src == pod_eth0.mac and first.dst == cni0.mac


def test_cli_pcap_option(tmp_path):
    f = tmp_path / "cli.pcap"
    out, err = _io(), _io()
    code = run(["trace", "frontend", "svc/backend:80", "--pcap", str(f)], out, err)
    assert code == 0 and f.stat().st_size > 24
    assert tshark(f, "vxlan.vni", filt="vxlan")[0] == ["1"]


def _io():
    import io

    return io.StringIO()
