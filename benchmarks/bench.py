"""podnet at scale: load+build time, peak memory, trace latency, check throughput, reach time.

Run by hand (each size runs in a process of its own, so that one size's memory does not count
for the next; sizes are those of issue 7, see podnet/generate.py)::

    python3 benchmarks/bench.py                      # S, M, L, XL
    python3 benchmarks/bench.py --sizes S,M --json out.json --markdown table.md

What is measured, per size:

- ``load+build``: reading the generated YAML, the control plane, building the network (the
  network builds each namespace lazily, when a question first needs it), and peak RSS after it.
- first trace: the first question builds the cluster-wide state of kube-proxy and the policy
  agent (every Service port's rules, every policy's chains and ipsets) and the first nodes;
  chains are compiled when a walk first enters them, once for all nodes that share them.
- trace latency per path: a fixed random sample (from ``--seed``) of Pod->Pod traces on the same
  node and across nodes, and Pod->Service traces. A Service trace has one path per endpoint, so
  its time is divided by its number of paths. ``cold`` is the first trace touching its namespaces
  (they are built then); ``warm`` traces another connection (source port) between the same two
  ends: the engine answers the hook walks that did not read the port from its memo, as for any
  question asked again. Warm traces run in ``--rounds`` rounds (5), each tracing every pair of
  the sample once more with a connection of its own (the same work: the same walks remembered,
  new conntrack entries); a path's warm time is the least of its rounds, as Python's timeit
  advises for timing code on a machine that does other work (a higher time is that work's, not
  the code's): here the same sample's rounds differ by up to half on a shared machine. The
  first round alone is kept too (``warm_once`` in the JSON, and in the lines per kind).
  ``fresh`` traces two other ends, never traced between, whose namespaces
  were built first: no walk is memoized, what a new question costs. A delivered path is a
  round trip (about twenty hops with the reply); a refused one ends after a few hops: the
  warm medians by outcome (``delivered`` / ``refused``, over the traces of all kinds) compare
  like with like across sizes, whose samples mix them differently.
- node build: a sample of node namespaces not built yet, built and their rules compiled: time
  and memory (current RSS growth) per node; times the node count, what building all would cost.
- ``check``: probes per second over a fixed random sample of probes (Pod->Service and
  Pod->Pod), run as ``podnet check`` runs them (``--method auto``: from 500 probes on, the probes
  the model covers are answered from kube-proxy's endpoints and the policy rules, and 32 of them
  traced as a check; see podnet.analysis.check). These probes state no expectation, as a probe
  file's passing probes cost: a probe that fails its expectation is traced. In parentheses:
  another sample, with Pod->Service ``allow`` expectations, every probe traced
  (``--method trace``), nodes built on demand.
- ``reach``: all Pods x all Pods (podnet.analysis.reach.compute_reach), over classes of Pods;
  also through Services (``--via-service``), under the table.

Times are CPU seconds of the measuring process (the machine may be busy with other work);
``load_build_wall_s`` in the JSON is the wall time of loading.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_clock = time.process_time
"""Every time is this process's CPU time: the machine may be busy with other work, which wall
clock time would count. ``load_build_wall_s`` gives the wall time of loading as well."""
ORDER = ("S", "M", "L", "XL")


def _rss_mib() -> float:
    """Peak RSS of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _quantiles(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(round(0.99 * (len(values) - 1))))]
    return statistics.median(values), p99


# ---------------------------------------------------------------------------------- one size


def _sample(cluster, count: int, rng: random.Random) -> dict[str, list[tuple[str, str]]]:
    """``count`` (SRC, DST) pairs for each kind of trace, drawn deterministically."""
    pods = [p for p in cluster.pods if not p.host_network]
    by_node: dict[str, list] = {}
    for p in pods:
        by_node.setdefault(p.node, []).append(p)
    crowded = [n for n in sorted(by_node) if len(by_node[n]) > 1]
    services = [s for s in cluster.services if s.cluster_ip is not None and s.spec.ports]
    out: dict[str, list[tuple[str, str]]] = {
        "pod-pod same node": [],
        "pod-pod cross node": [],
        "pod-service": [],
    }
    for _ in range(count):
        if crowded:
            a, b = rng.sample(by_node[rng.choice(crowded)], 2)
            out["pod-pod same node"].append(
                (f"{a.namespace}/{a.name}", f"{b.namespace}/{b.name}:{_port(b)}")
            )
        if len(by_node) > 1:
            a = rng.choice(pods)
            b = rng.choice(pods)
            while b.node == a.node:
                b = rng.choice(pods)
            out["pod-pod cross node"].append(
                (f"{a.namespace}/{a.name}", f"{b.namespace}/{b.name}:{_port(b)}")
            )
        if services and pods:
            a = rng.choice(pods)
            s = rng.choice(services)
            out["pod-service"].append(
                (
                    f"{a.namespace}/{a.name}",
                    f"svc/{s.spec.meta.namespace}/{s.spec.meta.name}:{s.spec.ports[0].port}",
                )
            )
    return out


def _prebuild(loaded, src: str, dst: str) -> None:
    """Build the namespaces a trace between two Pods enters first (both Pods', both nodes',
    the nodes' built-in chains compiled), so that timing it leaves node builds out."""
    from podnet.model.dataplane import BUILTIN_CHAINS
    from podnet.trace.view import view_of

    view = view_of(loaded.network)
    by_key = _pods_by_key(loaded.cluster)
    for text in (src, dst):
        key = text.split(":")[0]
        if key.startswith("svc/"):
            continue
        pod = by_key[key]
        loaded.network.get(f"pod:{pod.key}")
        rs = view.ruleset(f"node:{pod.node}")
        for table, chains in BUILTIN_CHAINS.items():
            for chain in chains:
                rs.chain(table, chain)


_BY_KEY: dict = {}


def _pods_by_key(cluster) -> dict:
    hit = _BY_KEY.get(id(cluster))
    if hit is None:
        hit = _BY_KEY[id(cluster)] = {p.key: p for p in cluster.pods}
    return hit


def _port(pod) -> int:
    for c in pod.containers:
        for p in c.ports:
            return p.container_port
    return 80


def _outcome(trace) -> str:
    """``delivered`` when every path of the trace was delivered (a round trip: the forward
    leg and its reply), ``refused`` when none was (dropped, denied, rejected: the forward leg
    ends early and there is no reply), else ``mixed``."""
    delivered = sum(p.disposition == "DELIVERED" for p in trace.paths)
    if delivered == len(trace.paths):
        return "delivered"
    return "refused" if delivered == 0 else "mixed"


OUTCOMES = ("delivered", "refused")
"""The outcomes whose latency is given apart: a delivered path is a round trip of about twenty
hops, a refused one a few hops of one leg, so the share of each in a sample moves the overall
median (at M and beyond most sampled pairs cross a namespace's default-deny; at S most are
delivered)."""


WARM_ROUNDS = 5
"""Warm rounds over a sample: a path's warm time is the least of its rounds (see above)."""


def _time_traces(
    loaded,
    pairs: list[tuple[str, str]],
    fresh: list[tuple[str, str]],
    rounds: int = WARM_ROUNDS,
) -> dict:
    cold: list[float] = []
    new: list[float] = []
    by_outcome: dict[str, dict[str, list[float]]] = {
        m: {o: [] for o in OUTCOMES} for m in ("warm", "fresh")
    }
    for src, dst in pairs:
        t = _clock()
        trace = loaded.trace(src, dst)
        cold.append((_clock() - t) / len(trace.paths))
    # warm: the same ends again, another connection (source port) each round: hook walks that
    # did not read the port are answered from the engine's memo, as for any repeated question.
    # Round by round over the whole sample, so that a spell of the machine's other work falls
    # on one round of many paths rather than on every round of a few.
    once: list[float] = []
    warm = [float("inf")] * len(pairs)
    outcomes: list[str] = []
    paths = 0
    for r in range(rounds):
        for i, (src, dst) in enumerate(pairs):
            t = _clock()
            trace = loaded.trace(src, dst, sport=40001 + r)
            dt = (_clock() - t) / len(trace.paths)
            warm[i] = min(warm[i], dt)
            if r == 0:
                once.append(dt)
                outcomes.append(_outcome(trace))
                paths += len(trace.paths)
    for outcome, dt in zip(outcomes, warm, strict=True):
        by_outcome["warm"].get(outcome, []).append(dt)
    for src, dst in fresh:
        # fresh: two ends never traced between, their namespaces built: no walk memoized
        _prebuild(loaded, src, dst)
        t = _clock()
        trace = loaded.trace(src, dst, sport=40002)
        new.append((_clock() - t) / len(trace.paths))
        by_outcome["fresh"].get(_outcome(trace), []).append(new[-1])
    (cm, cp), (wm, wp), (fm, fp) = _quantiles(cold), _quantiles(warm), _quantiles(new)
    om, op = _quantiles(once)
    us = 1e6
    return {
        "traces": len(pairs),
        "paths": paths,
        "warm_rounds": rounds,
        "warm_median_us": wm and wm * us,
        "warm_p99_us": wp and wp * us,
        "warm_once_median_us": om and om * us,
        "warm_once_p99_us": op and op * us,
        "fresh_median_us": fm and fm * us,
        "fresh_p99_us": fp and fp * us,
        "cold_median_us": cm and cm * us,
        "cold_p99_us": cp and cp * us,
        # the samples themselves, µs per path, for the medians by outcome over all kinds
        "by_outcome_us": {
            m: {o: [round(v * us, 1) for v in vs] for o, vs in lists.items()}
            for m, lists in by_outcome.items()
        },
    }


def _probes(cluster, count: int, rng: random.Random, expect: bool = True):
    """``count`` probes; the Pod->Service ones state ``expect: allow`` when ``expect``."""
    from podnet.analysis.probes import Probe
    from podnet.model.base import Pos

    pods = [p for p in cluster.pods if not p.host_network]
    services = [s for s in cluster.services if s.cluster_ip is not None and s.spec.ports]
    out = []
    pos = Pos("<bench>", 1, 1)
    for i in range(count):
        a = rng.choice(pods)
        if services and i % 2 == 0:
            s = rng.choice(services)
            key = f"{s.spec.meta.namespace}/{s.spec.meta.name}"
            port = s.spec.ports[0].port
            want = "allow" if expect else None
            raw = (("from", a.key), ("service", key), ("port", port))
            raw += (("expect", want),) if want else ()
            out.append(Probe(i, pos, raw, src=a.key, service=key, port=port, expect=want))
        else:
            b = rng.choice(pods)
            raw = (("from", a.key), ("to", b.key), ("port", _port(b)))
            out.append(Probe(i, pos, raw, src=a.key, to=b.key, port=_port(b)))
    return tuple(out)


def _node_builds(loaded, rng: random.Random, count: int = 40) -> dict:
    """Build ``count`` node namespaces no question built yet: time and memory per node. A node
    is built as a first question through it builds it: its namespace (links, routes, FDB, its
    rules written chain by chain on demand) and its built-in chains compiled; other chains are
    compiled when a walk first enters them, once for every node sharing them. n/a when the
    traces before built every node."""
    import gc

    from podnet.model.dataplane import BUILTIN_CHAINS as BUILTINS
    from podnet.trace.view import view_of

    view = view_of(loaded.network)
    built = set(getattr(view, "_rulesets", {}))
    names = [f"node:{n.name}" for n in loaded.cluster.nodes if f"node:{n.name}" not in built]
    names = rng.sample(names, min(count, len(names)))
    if not names:
        return {"node_build_ms": None, "node_build_kib": None}
    gc.collect()
    before = _current_rss_kib()
    t = _clock()
    for name in names:
        loaded.network.get(name)
        rs = view.ruleset(name)
        for table, chains in BUILTINS.items():
            for chain in chains:
                rs.chain(table, chain)
    dt = _clock() - t
    gc.collect()
    grown = _current_rss_kib() - before
    return {
        "node_build_ms": dt / len(names) * 1e3,
        "node_build_kib": grown / len(names),
        "node_build_sample": len(names),
    }


def _current_rss_kib() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024
    except OSError:  # not Linux: peak instead of current
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reach(loaded, via_service: bool = False) -> dict:
    """All Pods x all Pods, at the Pod IP (keys ``reach_*``) or through Services
    (``reach_service_*``)."""
    from podnet.analysis.reach import compute_reach, parse_selector

    t = _clock()
    r = compute_reach(loaded, parse_selector(None), parse_selector(None), via_service=via_service)
    dt = _clock() - t
    s = r.summary()
    how = " through Services" if via_service else ""
    note = (
        f"{len(r.sources):,} x {len(r.dests):,} Pods{how}: {r.classes:,} classes, "
        f"{s['class_pairs']:,} class pairs by {r.method}, {r.traces} traces, "
        f"{s['disagreements']} disagreements"
    )
    if via_service:
        return {"reach_service_s": dt, "reach_service_note": f"{note}, {dt:.1f} s"}
    return {
        "reach_s": dt,
        "reach_note": note,
        "reach_classes": r.classes,
        "reach_class_pairs": s["class_pairs"],
        "reach_traces": r.traces,
        "reach_method": r.method,
        "reach_disagreements": s["disagreements"],
    }


VIA_SERVICE_SIZES = ("S", "M", "L", "XL")
"""Sizes where ``reach --via-service`` is measured too (at XL: 100 million class pairs)."""


def measure(
    path: str,
    size: str,
    sample: int,
    probes: int,
    seed: int,
    reach: bool = True,
    rounds: int = WARM_ROUNDS,
) -> dict:
    """Measure one size in this process (``worker`` mode): returns the row as a dict."""
    import podnet

    t, wall = _clock(), time.perf_counter()
    loaded = podnet.api.load(path)
    load_s, wall = _clock() - t, time.perf_counter() - wall
    rss_load = _rss_mib()
    cluster = loaded.cluster
    row: dict = {
        "size": size,
        "nodes": len(cluster.nodes),
        "pods": len(cluster.pods),
        "services": len(cluster.services),
        "policies": len(cluster.policies),
        "load_build_s": load_s,
        "load_build_wall_s": wall,
        "rss_after_load_mib": rss_load,
    }
    rng = random.Random(seed)
    kinds = _sample(cluster, sample, rng)
    # the first question builds the first node in full (its rules compiled and checked); later
    # nodes are built over it, sharing what is the same
    first = next((pairs[0] for pairs in kinds.values() if pairs), None)
    if first is not None:
        t = _clock()
        loaded.trace(*first, sport=39999)
        row["first_trace_s"] = _clock() - t
        row["rss_after_first_trace_mib"] = _rss_mib()
    fresh = _sample(cluster, sample, rng)
    row["trace"] = {
        kind: _time_traces(loaded, pairs, fresh[kind], rounds) for kind, pairs in kinds.items()
    }
    for m in ("warm", "warm_once", "fresh"):
        ms = [v for r in row["trace"].values() for v in [r[f"{m}_median_us"]] if v is not None]
        row[f"trace_{m}_median_us"] = statistics.median(ms) if ms else None
        if m == "warm_once":
            continue
        # like for like across sizes: the median of each outcome over the traces of all kinds
        for o in OUTCOMES:
            vs = [v for r in row["trace"].values() for v in r["by_outcome_us"][m][o]]
            row[f"trace_{m}_{o}_median_us"] = statistics.median(vs) if vs else None
            row[f"trace_{m}_{o}_traces"] = len(vs)
    row.update(_node_builds(loaded, rng))
    if probes:
        from podnet.analysis.check import run_check

        # as podnet check runs them (the model from 500 probes on), then every probe traced
        for field, method in (("check", "auto"), ("check_traced", "trace")):
            ps = _probes(cluster, probes, rng, expect=method == "trace")
            how: list = []
            t = _clock()
            results = run_check(loaded, ps, method=method, run=how)
            dt = _clock() - t
            row[f"{field}_probes"] = len(results)
            row[f"{field}_probes_per_s"] = len(results) / dt if dt else None
            if method == "auto":
                run = how[0]
                row["check_modelled"], row["check_model_traces"] = run.modelled, run.traced
                row["check_disagreements"] = len(run.disagreements)
    row.update(_reach(loaded) if reach else {"reach_s": None, "reach_note": "skipped"})
    if reach and size in VIA_SERVICE_SIZES:
        row.update(_reach(loaded, via_service=True))
    row["peak_rss_mib"] = _rss_mib()
    return row


# ---------------------------------------------------------------------------------- the driver


def _generate(size: str, seed: int, directory: str) -> str:
    from podnet.generate import SIZES, generate, write_yaml

    path = os.path.join(directory, f"cluster-{size}.yaml")
    with open(path, "w") as f:
        write_yaml(generate(SIZES[size], seed), f)
    return path


def _run_worker(path: str, size: str, args) -> dict:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        path,
        "--sizes",
        size,
        "--sample",
        str(args.sample),
        "--probes",
        str(args.probes),
        "--seed",
        str(args.seed),
        "--rounds",
        str(args.rounds),
    ]
    if args.no_reach:
        cmd.append("--no-reach")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"size {size} failed:\n{done.stderr}")
    return json.loads(done.stdout)


def _fmt(v, spec: str = ".1f") -> str:
    return "n/a" if v is None else format(v, spec)


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    head = [
        "size",
        "nodes",
        "Pods",
        "Services",
        "policies",
        "load+build s",
        "first trace s",
        "RSS MiB (load / peak)",
        "trace warm µs/path median (p99), best of rounds",
        "warm µs/path: delivered / refused (traces)",
        "trace fresh / cold µs/path median",
        "node build ms / KiB",
        "check probes/s (all traced)",
        "reach s",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        warm_p99 = max(
            (t["warm_p99_us"] for t in r["trace"].values() if t["warm_p99_us"] is not None),
            default=None,
        )
        cold = [t["cold_median_us"] for t in r["trace"].values() if t["cold_median_us"] is not None]
        cells = [
            r["size"], f"{r['nodes']:,}", f"{r['pods']:,}", f"{r['services']:,}", f"{r['policies']:,}",
            _fmt(r["load_build_s"], ".2f"), _fmt(r.get("first_trace_s"), ".2f"), f"{r['rss_after_load_mib']:.0f} / {r['peak_rss_mib']:.0f}",
            f"{_fmt(r['trace_warm_median_us'], '.0f')} ({_fmt(warm_p99, '.0f')})",
            " / ".join(f"{_fmt(r.get(f'trace_warm_{o}_median_us'), '.0f')} ({r.get(f'trace_warm_{o}_traces', 0)})" for o in OUTCOMES),
            f"{_fmt(r.get('trace_fresh_median_us'), '.0f')} / {_fmt(statistics.median(cold) if cold else None, '.0f')}",
            f"{_fmt(r.get('node_build_ms'), '.1f')} / {_fmt(r.get('node_build_kib'), '.0f')}",
            f"{_fmt(r.get('check_probes_per_s'), ',.0f')} ({_fmt(r.get('check_traced_probes_per_s'), ',.0f')})",
            _fmt(r.get("reach_s"), ".1f"),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    per_kind = [
        "",
        "trace latency per kind (warm median / p99, best of rounds / warm median, first round /"
        " fresh median / cold median, µs per path):",
        "",
    ]
    for r in rows:
        parts = [
            f"{k}: {_fmt(t['warm_median_us'], '.0f')} / {_fmt(t['warm_p99_us'], '.0f')} / {_fmt(t.get('warm_once_median_us'), '.0f')} / {_fmt(t.get('fresh_median_us'), '.0f')} / {_fmt(t['cold_median_us'], '.0f')}"
            for k, t in r["trace"].items()
        ]
        per_kind.append(f"- {r['size']}: " + "; ".join(parts))
    for r in rows:
        if r.get("check_modelled") is not None:
            per_kind.append(
                f"- {r['size']} check: {r['check_modelled']:,} of {r['check_probes']:,} probes "
                f"answered by the model, {r['check_model_traces']} traced, "
                f"{r['check_disagreements']} disagreements"
            )
    notes = sorted({r["reach_note"] for r in rows if r.get("reach_note")})
    notes += [r["reach_service_note"] for r in rows if r.get("reach_service_note")]
    return (
        "\n".join(lines + per_kind + ([""] + [f"reach: {n}" for n in notes] if notes else []))
        + "\n"
    )


def main(argv: list[str] | None = None, out=None) -> int:
    """Run the benchmark; prints the table, writes JSON (and Markdown with ``--markdown``)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default=",".join(ORDER), help="comma-separated, of S, M, L, XL")
    p.add_argument("--sample", type=int, default=200, help="traces of each kind (default 200)")
    p.add_argument("--probes", type=int, default=2000, help="probes for the check throughput")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", default="bench.json", help="where to write the results")
    p.add_argument("--markdown", help="also write the table here")
    p.add_argument(
        "--rounds", type=int, default=WARM_ROUNDS, help="warm rounds over the sample (default 5)"
    )
    p.add_argument("--no-reach", action="store_true")
    p.add_argument("--worker", metavar="FILE", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    out = out or sys.stdout
    sizes = [s.strip().upper() for s in args.sizes.split(",") if s.strip()]
    bad = [s for s in sizes if s not in ORDER]
    if bad:
        p.error(f"unknown size {bad[0]} (expected one of {', '.join(ORDER)})")
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    if args.worker:
        row = measure(
            args.worker,
            sizes[0],
            args.sample,
            args.probes,
            args.seed,
            reach=not args.no_reach,
            rounds=args.rounds,
        )
        out.write(json.dumps(row) + "\n")
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="podnet-bench-") as tmp:
        for size in sizes:
            path = _generate(size, args.seed, tmp)
            rows.append(_run_worker(path, size, args))
            os.unlink(path)
    text = table(rows)
    out.write(text)
    machine = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    Path(args.json).write_text(
        json.dumps(
            {
                "machine": machine,
                "seed": args.seed,
                "sample": args.sample,
                "rounds": args.rounds,
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    if args.markdown:
        Path(args.markdown).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
