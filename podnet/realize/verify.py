"""``podnet verify``: realize the cluster, run every probe for real and compare the kernel's
answers with the emulator's traces.

For each probe the emulator's trace is turned into the outcomes a client socket can observe
(:func:`expected_outcomes`): ``connected:<pod>`` with the client address and destination port the
backend sees, ``refused`` (REJECT: ICMP port unreachable or TCP RST), ``timeout`` (a drop, or a
reply that never reaches the client), ``unreachable`` (no route / no neighbour: ICMP host or net
unreachable). Listeners answer in the destination Pods' namespaces; a client in the source's
namespace tries the probe until every predicted outcome was seen or the bound is spent. A probe
agrees when the kernel showed every predicted outcome and nothing else, and each backend saw
the client at the predicted address on the predicted port.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from podnet.analysis.check import ProbeResult, run_probe
from podnet.analysis.probes import Probe
from podnet.model.base import Pos
from podnet.realize import lifecycle

MAX_TRIES = 60  # load-balanced probes: P(missing one of 3 equally likely endpoints) ~ 3*(2/3)^60
CONNECT_TIMEOUT = 1.5  # seconds; the namespaces are on one machine, an answer takes microseconds
NO_ANSWER = frozenset({"timeout", "unreachable"})  # both: the client hears nothing useful


@dataclass(frozen=True, slots=True)
class Expected:
    """One outcome the emulator predicts: ``key`` (``connected:<pod>``, ``refused``,
    ``timeout``, ``unreachable``), and for connections the client address and the address and
    port the backend sees (after NAT)."""

    key: str
    peer_ip: str | None = None
    local_ip: str | None = None
    local_port: int | None = None
    why: str = ""


@dataclass(frozen=True, slots=True)
class Comparison:
    """A probe, the emulator's result, what the kernel did, and how they differ.

    ``agree`` is None when the probe could not be run for real (``skipped`` says why)."""

    probe: Probe
    result: ProbeResult | None
    expected: tuple[Expected, ...]
    attempts: tuple[dict, ...]
    agree: bool | None
    differences: tuple[str, ...] = ()
    skipped: str | None = None
    source_netns: str | None = None


def expected_outcomes(trace) -> tuple[tuple[Expected, ...], str | None]:
    """The outcomes a client can observe for a trace's paths, and a reason when the trace has
    a path the kernel run cannot observe (it leaves the realized network)."""
    out: dict[str, Expected] = {}
    for path in trace.paths:
        f = path.forward
        d = f.disposition
        if d == "EXITS_NETWORK":
            return (), "a path leaves the cluster's network (nothing listens outside)"
        if d == "DELIVERED":
            # a socket of the node itself (the API server behind `kubernetes`, a hostNetwork
            # process): the listener there answers with the namespace's name
            who = f.endpoint or (f.hops[-1].netns if f.hops else None)
            if who is None:
                return (), f"delivered nowhere a listener can run ({f.reason})"
            if path.reply is not None and path.reply.disposition == "DELIVERED":
                p = f.packet
                e = Expected(f"connected:{who}", str(p.src), str(p.dst), p.dport, f.reason)
            else:
                why = path.reply.reason if path.reply is not None else "no reply"
                e = Expected("timeout", why=f"the reply is lost: {why}")
        elif d == "REJECTED" or _ends_in_reject(f):
            e = Expected("refused", why=f.reason)
        elif d in ("NO_ROUTE", "NEIGHBOR_UNREACHABLE", "TTL_EXCEEDED"):
            e = Expected("unreachable", why=f.reason)
        else:
            e = Expected("timeout", why=f"{d}: {f.reason}")
        out.setdefault(e.key, e)
    return tuple(out[k] for k in sorted(out)), None


def _ends_in_reject(leg) -> bool:
    """Whether a denied leg's last verdict is an iptables REJECT (a NetworkPolicy agent's
    ``-j REJECT``: the trace says DENIED_INGRESS/EGRESS, the client sees a refusal)."""
    if not leg.hops:
        return False
    for step in reversed(leg.hops[-1].steps):
        if step.type in ("netfilter", "policy", "drop") and step.rule:
            return "-j REJECT" in step.rule
    return False


def _same(key: str, keys: Iterable[str]) -> bool:
    return key in keys or (key in NO_ANSWER and any(k in NO_ANSWER for k in keys))


def _attempt_key(a: dict) -> str:
    return f"connected:{a.get('pod')}" if a["outcome"] == "connected" else a["outcome"]


def compare(expected: Sequence[Expected], attempts: Sequence[dict], proto: str) -> tuple[str, ...]:
    """The differences between predicted outcomes and the kernel's attempts (empty: they agree).

    >>> e = [Expected("connected:default/b", "10.244.1.2", "10.244.2.2", 8080)]
    >>> compare(e, [{"outcome": "connected", "pod": "default/b", "peer": ["10.244.1.2", 5],
    ...              "local": ["10.244.2.2", 8080]}], "tcp")
    ()
    >>> compare(e, [{"outcome": "timeout"}], "tcp")  # doctest: +NORMALIZE_WHITESPACE
    ('the kernel timed out (1 of 1 tries), which the emulator never predicts',
     'the emulator predicts connected:default/b, which the kernel never showed in 1 tries')
    """
    diffs: list[str] = []
    keys = [e.key for e in expected]
    seen = [_attempt_key(a) for a in attempts]
    n = len(attempts)
    words = {
        "timeout": "timed out",
        "refused": "was refused",
        "unreachable": "found the destination unreachable",
        "error": "failed",
    }
    for k in sorted(set(seen)):
        if not _same(k, keys):
            count = seen.count(k)
            what = (
                f"answered from {k.partition(':')[2]}"
                if k.startswith("connected:")
                else words.get(k, k)
            )
            detail = next(
                (a.get("detail") for a in attempts if _attempt_key(a) == k and a.get("detail")),
                None,
            )
            diffs.append(
                f"the kernel {what} ({count} of {n} tries){' [' + detail + ']' if detail else ''}, which the emulator never predicts"
            )
    for k in keys:
        if not _same(k, seen):
            diffs.append(f"the emulator predicts {k}, which the kernel never showed in {n} tries")
    by_key = {e.key: e for e in expected}
    for a in attempts:
        e = by_key.get(_attempt_key(a))
        if e is None or a["outcome"] != "connected":
            continue
        peer = (a.get("peer") or [None])[0]
        local = a.get("local") or [None, None]
        if peer != e.peer_ip:
            diffs.append(f"{a['pod']} saw the client as {peer}, the emulator predicts {e.peer_ip}")
        if local[1] != e.local_port:
            diffs.append(
                f"{a['pod']} was reached on port {local[1]}, the emulator predicts {e.local_port}"
            )
        elif proto == "tcp" and local[0] != e.local_ip:
            diffs.append(
                f"{a['pod']} was reached at {local[0]}, the emulator predicts {e.local_ip}"
            )
    return tuple(dict.fromkeys(diffs))


# ---------------------------------------------------------------------------------- probes


def default_probes(cluster, network) -> tuple[Probe, ...]:
    """Every Pod to every Pod's declared container ports and to every Service port with a
    ClusterIP (SPEC: ``podnet verify`` without a probe file)."""
    pods = [p for p in cluster.pods if network.pod_netns(p.key) is not None]
    dests: list[tuple[tuple, dict]] = []
    for d in pods:
        for port, proto in sorted(
            {(cp.container_port, cp.protocol) for c in d.containers for cp in c.ports}
        ):
            dests.append(
                (
                    (("to", d.key), ("port", port), ("protocol", proto)),
                    dict(to=d.key, port=port, protocol=proto),
                )
            )
    for s in cluster.services:
        if s.cluster_ip is None:
            continue
        for sp in s.spec.ports:
            dests.append(
                (
                    (("service", s.key), ("port", sp.port), ("protocol", sp.protocol)),
                    dict(service=s.key, port=sp.port, protocol=sp.protocol),
                )
            )
    out = []
    for src in pods:
        for raw, kw in dests:
            i = len(out)
            out.append(
                Probe(
                    index=i,
                    pos=Pos("<every Pod to every Pod and Service port>", i + 1, 1),
                    raw=(("from", src.key), *raw),
                    src=src.key,
                    **kw,
                )
            )
    return tuple(out)


def _with_externals(network, probes: Sequence[Probe]):
    from podnet.dataplane.build import with_external_client

    for p in probes:
        if (
            p.from_ip is not None
            and network.external_netns(p.from_ip) is None
            and p.at_node is not None
        ):
            # a bad client (unknown node, cluster address) is reported by run_probe as the trace is
            with contextlib.suppress(KeyError, ValueError):
                network = with_external_client(network, p.from_ip, p.at_node)
    return network


def _source_netns(network, resolver, probe: Probe) -> str:
    from podnet.analysis.check import _origin  # the same resolution `podnet check` uses

    return _origin(resolver, probe).netns


# ---------------------------------------------------------------------------------- processes


def _agent(netns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", netns, sys.executable, "-m", "podnet.realize.agent", *args]


def _env() -> dict:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def sctp_reason(netns: str) -> str | None:
    """None when SCTP sockets work inside ``netns``, else why not."""
    cp = subprocess.run(
        _agent(netns, "sctp"), capture_output=True, text=True, env=_env(), timeout=60
    )
    try:
        return json.loads(cp.stdout)["reason"]
    except (ValueError, KeyError):
        return f"cannot tell whether the kernel has SCTP: {cp.stderr.strip()}"


def start_listeners(
    listeners: dict[str, tuple[str, set[str]]],
) -> tuple[list[subprocess.Popen], list[str]]:
    """One listener per Pod: ``pod key -> (kernel netns, {"tcp:8080", ...})``. Returns the
    processes and the problems they reported (ports that could not be bound)."""
    procs = []
    problems = []
    for pod, (netns, specs) in sorted(listeners.items()):
        args = ["serve", "--name", pod]
        for s in sorted(specs):
            args += ["--listen", s]
        procs.append(
            subprocess.Popen(
                _agent(netns, *args),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=_env(),
            )
        )
    for (pod, _), pr in zip(sorted(listeners.items()), procs, strict=True):
        line = pr.stdout.readline().strip()
        if line != "READY":
            problems.append(f"listener of {pod}: {line or pr.stderr.read().strip()}")
    return procs, problems


def stop(procs: Iterable[subprocess.Popen]) -> None:
    for pr in procs:
        with contextlib.suppress(OSError):
            pr.stdin.close()
        pr.kill()
        pr.wait()


def run_jobs(netns: str, jobs: list[dict]) -> dict[str, list[dict]]:
    """Run the jobs of one source namespace (concurrently, inside one client process)."""
    cp = subprocess.run(
        _agent(netns, "probe", "--workers", "64"),
        input=json.dumps({"jobs": jobs}),
        capture_output=True,
        text=True,
        env=_env(),
        timeout=3600,
    )
    try:
        return json.loads(cp.stdout)["results"]
    except (ValueError, KeyError):
        err = cp.stderr.strip().splitlines()
        return {
            j["id"]: [
                {
                    "outcome": "error",
                    "detail": f"client failed: {err[-1] if err else cp.returncode}",
                }
            ]
            for j in jobs
        }


# ---------------------------------------------------------------------------------- verify


@dataclass(frozen=True, slots=True)
class VerifyRun:
    """Every comparison, and what the machine could not do (``notes``)."""

    comparisons: tuple[Comparison, ...]
    notes: tuple[str, ...]

    @property
    def disagreements(self) -> tuple[Comparison, ...]:
        return tuple(c for c in self.comparisons if c.agree is False)


def verify(
    loaded, probes: Sequence[Probe] | None = None, name: str | None = None, tries: int = MAX_TRIES
) -> VerifyRun:
    """Realize ``loaded``'s network, run ``probes`` (default: :func:`default_probes`) for real
    and compare. Tears everything down before it returns or raises."""
    network = loaded.network
    resolver = loaded.resolver()
    if probes is None:
        probes = default_probes(loaded.cluster, network)
    network = _with_externals(network, probes)
    prepared = []
    for p in probes:
        result = run_probe(network, resolver, p)
        exp, why = expected_outcomes(result.trace)
        prepared.append((p, result, exp, why, _source_netns(network, resolver, p)))
    listeners: dict[str, tuple[str, set[str]]] = {}
    for _, result, exp, why, _ in prepared:
        if why:
            continue
        for e in exp:
            if e.key.startswith("connected:"):
                pod = e.key.partition(":")[2]
                ns = network.pod_netns(pod) or (pod if pod in network.netns else None)
                if ns is not None:
                    listeners.setdefault(pod, (ns, set()))[1].add(
                        f"{result.trace.packet.proto}:{e.local_port}"
                    )
    for pod in loaded.cluster.pods:
        ns = network.pod_netns(pod.key)
        if ns is not None and not pod.host_network:
            for c in pod.containers:
                for cp in c.ports:
                    if cp.protocol in ("TCP", "UDP"):
                        listeners.setdefault(pod.key, (ns, set()))[1].add(
                            f"{cp.protocol.lower()}:{cp.container_port}"
                        )
    notes: list[str] = []
    name = name or f"verify-{os.getpid()}"
    comparisons: list[Comparison] = []
    with lifecycle.realized(network, name) as real:
        first = real.plan.scripts[-1].netns
        sctp = sctp_reason(first)
        if sctp and any(p.protocol == "SCTP" for p in probes):
            notes.append(f"SCTP probes skipped: {sctp}")
        if not Path("/proc/sys/net/bridge").is_dir():
            notes.append(
                "br_netfilter is not loaded: bridged Pod traffic skips iptables in the kernel"
            )
        kl = {
            pod: (real.netns(ns), {s for s in specs if not s.startswith("sctp:")})
            for pod, (ns, specs) in listeners.items()
        }
        procs, problems = start_listeners(kl)
        notes += problems
        try:
            by_src: dict[str, list[dict]] = {}
            for p, result, exp, why, src in prepared:
                if why or (p.protocol == "SCTP" and sctp):
                    continue
                only_conn = all(e.key.startswith("connected:") for e in exp)
                by_src.setdefault(real.netns(src), []).append(
                    {
                        "id": str(p.index),
                        "proto": result.trace.packet.proto,
                        "ip": str(result.trace.packet.dst),
                        "port": result.trace.packet.dport,
                        "tries": tries if len(exp) > 1 or only_conn else 1,
                        "min_tries": 3 if only_conn else 1,
                        "timeout": CONNECT_TIMEOUT,
                        "want": [e.key for e in exp],
                    }
                )
            with ThreadPoolExecutor(max_workers=max(1, len(by_src))) as pool:
                done = list(pool.map(lambda kv: run_jobs(*kv), by_src.items()))
            attempts: dict[str, list[dict]] = {}
            for d in done:
                attempts.update(d)
        finally:
            stop(procs)
    for p, result, exp, why, src in prepared:
        if why or (p.protocol == "SCTP" and sctp):
            comparisons.append(
                Comparison(
                    p, result, exp, (), None, skipped=why or f"SCTP: {sctp}", source_netns=src
                )
            )
            continue
        tr = tuple(attempts.get(str(p.index), ()))
        diffs = compare(exp, tr, result.trace.packet.proto)
        comparisons.append(Comparison(p, result, exp, tr, not diffs, diffs, source_netns=src))
    return VerifyRun(tuple(comparisons), tuple(notes))
