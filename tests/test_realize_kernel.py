"""podnet realize/verify against the real kernel (root, Linux, iproute2, iptables).

Where the machine cannot realize networks these tests skip with the reason, except when
PODNET_KERNEL_TESTS=1 (set by .ci/run, which runs as root on a machine that can): there a
missing capability fails with the reason.
"""

import hashlib
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import podnet
from podnet.analysis.probes import load_probes
from podnet.errors import PodnetError
from podnet.realize import lifecycle, system
from podnet.realize.names import run_prefix
from podnet.realize.report import render_verify_text, summary
from podnet.realize.verify import verify

ROOT = Path(__file__).resolve().parents[1]
# Run names carry the test process's pid: two test runs on one machine never share a namespace.
PID = os.getpid()


def _name(what: str) -> str:
    return f"kt{PID}-{hashlib.sha256(what.encode()).hexdigest()[:12]}"


CASES = Path(__file__).parent / "conformance"
TOPOLOGIES = ROOT / "podnet" / "topologies"


def _capable() -> str | None:
    missing = system.missing_requirements((*system.TOOLS, "ipset"))
    if missing:
        return "missing " + "; ".join(missing)
    probe = f"pnktest{os.getpid()}"
    try:
        cp = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
        if cp.returncode:
            return f"cannot create a network namespace: {cp.stderr.strip()}"
        cp = subprocess.run(
            [
                "ip",
                "-n",
                probe,
                "link",
                "add",
                "flannel.1",
                "type",
                "vxlan",
                "id",
                "1",
                "dstport",
                "8472",
                "local",
                "192.168.0.11",
                "nolearning",
            ],
            capture_output=True,
            text=True,
        )
        if cp.returncode:
            return f"no VXLAN devices: {cp.stderr.strip()}"
        cp = subprocess.run(["ip", "netns", "exec", probe, "test", "-d", "/proc/sys/net/bridge"])
        if cp.returncode:
            return "br_netfilter is not loaded (modprobe br_netfilter)"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


REASON = _capable()
if REASON is not None:
    if os.environ.get("PODNET_KERNEL_TESTS") == "1":
        pytest.fail(
            f"the kernel tests must run here (PODNET_KERNEL_TESTS=1) but: {REASON}", pytrace=False
        )
    pytestmark = pytest.mark.skip(reason=f"cannot realize networks here: {REASON}")


def _host_snapshot() -> dict:
    def out(*argv):
        return subprocess.run(list(argv), capture_output=True, text=True).stdout

    rules = [line for line in out("iptables-save").splitlines() if not line.startswith("#")]
    # packet counters change with the host's own traffic: compare the rules, not the counters
    rules = [line.split(" [")[0] if line.startswith(":") else line for line in rules]
    return {
        "links": [line.split("\\")[0] for line in out("ip", "-o", "link").splitlines()],
        "addrs": out("ip", "-o", "addr"),
        "routes": out("ip", "route", "show", "table", "all"),
        "rules": out("ip", "rule"),
        "iptables": rules,
    }


def _ours(name: str) -> list[str]:
    return system.run_namespaces(run_prefix(name))


def test_up_down_leaves_the_host_namespace_untouched():
    before = _host_snapshot()
    loaded = podnet.load()
    real = lifecycle.up(loaded.network, _name("ktest-updown"))
    try:
        assert sorted(_ours(_name("ktest-updown"))) == sorted(real.plan.netns_names())
        ns = real.netns("node:node-1")
        routes = subprocess.run(
            ["ip", "-n", ns, "route", "show", "table", "main"], capture_output=True, text=True
        ).stdout.splitlines()
        want = {r.text() for r in loaded.network.get("node:node-1").routes if r.table == "main"} | {
            r.text() for r in loaded.network.peers.routes_for("node-1")
        }
        assert {
            line.strip() for line in routes
        } == want  # the kernel's main table is the emulator's
        saved = subprocess.run(
            ["ip", "netns", "exec", ns, "iptables-save"], capture_output=True, text=True
        ).stdout
        assert "KUBE-SERVICES" in saved and "FLANNEL-FWD" in saved
        link = subprocess.run(
            ["ip", "-n", ns, "-d", "link", "show", "flannel.1"], capture_output=True, text=True
        ).stdout
        assert (
            loaded.network.get("node:node-1").link("flannel.1").mac in link
            and "vxlan id 1" in link
            and "dstport 8472" in link
        )
        # up on a name already up fails clearly
        with pytest.raises(PodnetError) as e:
            lifecycle.up(loaded.network, _name("ktest-updown"))
        assert "already up" in e.value.problems[0].message
        assert _host_snapshot() == before  # nothing was made in the host's namespace
    finally:
        lifecycle.down(_name("ktest-updown"))
    assert _ours(_name("ktest-updown")) == []
    assert lifecycle.down(_name("ktest-updown")) == []  # idempotent
    assert system.load_state(_name("ktest-updown")) is None
    assert _host_snapshot() == before


def test_down_finds_leftovers_without_a_state_file():
    # a run that died without its state file: down still finds its namespaces by prefix
    # (`down --all` does the same for every prefix; not run here, as it would also remove the
    # runs of anyone else testing on this machine at the same time)
    lifecycle.up(podnet.load().network, _name("ktest-left"))
    assert _ours(_name("ktest-left"))
    system.drop_state(_name("ktest-left"))
    gone = lifecycle.down(_name("ktest-left"))
    assert gone and all(n.startswith(run_prefix(_name("ktest-left")) + "-") for n in gone)
    assert _ours(_name("ktest-left")) == []


def test_sigterm_tears_down():
    code = (
        "import sys, time, podnet\n"
        "from podnet.realize import lifecycle\n"
        f"with lifecycle.realized(podnet.load().network, {_name('ktest-sig')!r}):\n"
        "    print('UP', flush=True)\n"
        "    time.sleep(60)\n"
    )
    pr = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert pr.stdout.readline().strip() == "UP"
        assert _ours(_name("ktest-sig"))
        pr.send_signal(signal.SIGTERM)
        pr.wait(timeout=60)
    finally:
        if pr.poll() is None:
            pr.kill()
    assert _ours(_name("ktest-sig")) == []


@pytest.mark.parametrize("topology", ["demo.yaml", "demo-host-gw.yaml"])
def test_verify_demo_agrees_with_the_kernel(topology):
    run = verify(podnet.load(str(TOPOLOGIES / topology)), name=_name(topology))
    text = render_verify_text(run)
    assert not run.disagreements, text
    compared = [c for c in run.comparisons if c.agree is not None]
    assert len(compared) == len(run.comparisons) >= 30, text
    assert summary(run).startswith(
        f"verify: {len(compared)} probes compared with the kernel, {len(compared)} agreed, 0 disagreed"
    )
    # load balancing was observed for real: every backend of the Service answered
    lb = [c for c in compared if c.probe.service == "default/backend"]
    assert lb and all(len({a["pod"] for a in c.attempts}) == 3 for c in lb)
    assert _ours(_name(topology)) == []


def _cases():
    return sorted(d.name for d in CASES.iterdir() if d.is_dir() and (d / "probes.yaml").is_file())


def test_verify_every_conformance_case_agrees_with_the_kernel():
    def one(case):
        folder = CASES / case
        run = verify(
            podnet.load(str(folder / "manifests.yaml")),
            load_probes(str(folder / "probes.yaml")),
            name=_name(case),
        )
        return case, run

    with ThreadPoolExecutor(max_workers=6) as pool:
        runs = list(pool.map(one, _cases()))
    bad = [f"{case}:\n{render_verify_text(run)}" for case, run in runs if run.disagreements]
    assert not bad, "\n".join(bad)
    compared = sum(1 for _, run in runs for c in run.comparisons if c.agree is not None)
    assert compared > 1000
    # what is skipped is skipped for a stated reason (SCTP where the kernel has none)
    for _, run in runs:
        for c in run.comparisons:
            if c.agree is None:
                assert c.skipped and c.probe.protocol == "SCTP", c
    prefixes = tuple(run_prefix(_name(c)) + "-" for c in _cases())
    assert [n for n in system.run_namespaces() if n.startswith(prefixes)] == []


def _entries(netns: str) -> set[str]:
    """The TCP and UDP connections the kernel tracks in ``netns`` (``conntrack -L``), each
    as :func:`_normal` writes it."""
    cp = subprocess.run(
        ["ip", "netns", "exec", netns, "conntrack", "-L"], capture_output=True, text=True
    )
    assert cp.returncode == 0, cp.stderr
    return {_normal(line) for line in cp.stdout.splitlines() if line[:4] in ("tcp ", "udp ")}


def _normal(line: str, client_port: int | None = None) -> str:
    """A ``conntrack -L`` line without what differs between a model's connection and a real
    one: the timeout and TCP state (the real connection has closed by now: TIME_WAIT), the
    client's source port (C) and a VXLAN flow's source port (T, the kernel's own hash)."""
    words = line.split()
    proto, rest = words[0], words[3:]
    if rest and "=" not in rest[0] and not rest[0].startswith("["):
        rest = rest[1:]  # the TCP state
    out = [proto]
    for w in rest:
        k, _, v = w.partition("=")
        if k in ("sport", "dport"):
            if proto == "udp" and v != "8472":
                v = "T"
            elif client_port is not None and v == str(client_port):
                v = "C"
        out.append(f"{k}={v}" if _ else w)
    return " ".join(out)


def test_conntrack_tracks_what_and_where_the_kernel_tracks():
    """After a real connection, each namespace's conntrack entries, model against kernel: the
    nodes hold the TCP connection (with the Service's DNAT in its reply tuple) and the VXLAN
    tunnel's UDP flows both ways; a Pod's namespace, where nothing programs iptables, holds
    none (Linux registers conntrack's hooks in a namespace only when a ruleset there needs
    them, since 4.10)."""
    from podnet.dataplane.conntrack import render_entry
    from podnet.realize.verify import run_jobs, start_listeners, stop
    from podnet.render.linux_views import iptables_save

    loaded = podnet.load()
    network = loaded.network
    client = loaded.trace("frontend", "svc/backend:80")
    client_ns = client.paths[0].forward.hops[0].netns  # the frontend Pod's namespace
    backends = sorted({p.endpoint for p in client.paths})
    svc_ip = str(client.packet.dst)
    pod_ip = str(client.paths[0].forward.packet.dst)  # one backend's own address, no Service
    name = _name("ktest-conntrack")
    with lifecycle.realized(network, name) as real:
        procs, problems = start_listeners(
            {b: (real.netns(network.pod_netns(b)), {"tcp:8080"}) for b in backends}
        )
        assert not problems, problems
        # no table is loaded in a Pod's namespace: iptables-save prints nothing, as podnet shows
        for ns in (client_ns, network.pod_netns(backends[0])):
            cp = subprocess.run(
                ["ip", "netns", "exec", real.netns(ns), "iptables-save"],
                capture_output=True,
                text=True,
            )
            assert (cp.returncode, cp.stdout) == (0, iptables_save(network.get(ns))) == (0, "")
        try:
            for ip, port in ((pod_ip, 8080), (svc_ip, 80)):
                for kernel_ns in real.plan.mapping.values():  # podnet's own namespaces only
                    subprocess.run(
                        ["ip", "netns", "exec", kernel_ns, "conntrack", "-F"], capture_output=True
                    )
                job = {"id": "c", "proto": "tcp", "ip": ip, "port": port, "timeout": 3}
                tries = run_jobs(real.netns(client_ns), [job])["c"]
                assert tries[0]["outcome"] == "connected", tries
                kernel = {
                    ns: {e.replace(f"port={tries[0]['client'][1]} ", "port=C ") for e in found}
                    for ns, kernel_ns in real.plan.mapping.items()
                    if (found := _entries(kernel_ns))
                }
                # the model's, for the path to the Pod that answered
                trace = loaded.trace("frontend", f"{ip}:{port}")
                path = next(p for p in trace.paths if p.endpoint == tries[0]["pod"])
                sport = trace.packet.sport
                model = {
                    ns: {_normal(render_entry(e), sport) for e in table.entries}
                    for ns, table in path.conntrack.items()
                }
                assert kernel == model, (ip, port, kernel, model)
                assert kernel and all(ns.startswith("node:") for ns in kernel), kernel
                if port == 8080:  # the backend on another node: both nodes, tunnel flows too
                    assert len(kernel) == 2 and all(len(e) == 3 for e in kernel.values()), kernel
        finally:
            stop(procs)
    assert _ours(name) == []
