"""Instructions a traced path costs, by size and outcome: latency compared like for like.

CPU time on a shared machine moves by half between runs; instruction counts do not. This
script runs itself under ``valgrind --tool=callgrind`` (Debian's valgrind) twice per row: once
loading the cluster and tracing its sample (base), once tracing the sample again three times
on other source ports (warm, as benchmarks/bench.py's ``warm`` is); the difference over the
warm paths is the cost of one path::

    python3 benchmarks/path_instructions.py                   # S, M, L; cross-node Pod->Pod
    python3 benchmarks/path_instructions.py --sizes S --kind pod-service

A row counts the sample's traces of one outcome (``delivered``: a round trip, ``refused``:
the forward leg ends early), drawn as bench.py draws its sample. Under callgrind a process runs
about fifty times slower: L takes about a quarter of an hour, XL is left out by default.

``--fresh`` counts what a new question costs instead (bench.py's ``fresh``): pairs of ends never
traced between, whose namespaces both runs build first (after a first question has built the
cluster-wide rule state), traced once in the second run: no hook walk is memoized, and the
chains the walks enter for the first time are compiled then. Which sampled pairs have the row's
outcome is found first by a run outside callgrind (tracing them would memoize their walks)::

    python3 benchmarks/path_instructions.py --fresh --sizes S,M
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench  # noqa: E402 (the sample and the generated clusters are bench.py's)

KINDS = ("pod-pod cross node", "pod-pod same node", "pod-service")
REPEATS = 3
PAIRS = 40
CLUSTER_SEED = 7  # bench.py's default: the same clusters


def worker(path: str, kind: str, outcome: str, loop: bool, seed: int) -> int:
    """Load, trace the sample; with ``loop``, trace it again warm. Prints the warm paths."""
    import podnet

    loaded = podnet.api.load(path)
    pairs = []
    for src, dst in bench._sample(loaded.cluster, 200, random.Random(seed))[kind]:
        if bench._outcome(loaded.trace(src, dst)) == outcome:
            pairs.append((src, dst))
    pairs = pairs[:PAIRS]
    paths = 0
    if loop:
        for r in range(REPEATS):
            for src, dst in pairs:
                paths += len(loaded.trace(src, dst, sport=41001 + r).paths)
    print(f"paths {paths} pairs {len(pairs)}")
    return 0


def fresh_worker(path: str, kind: str, picks: str, loop: bool, seed: int) -> int:
    """Load, answer a first question, build the namespaces of the sample's pairs ``picks``
    (their indices, comma-separated); with ``loop``, trace each once.
    Prints the paths traced. With ``picks`` ``classify:OUTCOME``, trace every pair and print
    the indices of those with that outcome (``pairs 0,3,...``) instead."""
    import podnet

    loaded = podnet.api.load(path)
    rng = random.Random(seed)
    first = next((p[0] for p in bench._sample(loaded.cluster, 200, rng).values() if p), None)
    if first is not None:  # the cluster-wide rule state: built before the sample, in both runs
        loaded.trace(*first, sport=39999)
    pairs = bench._sample(loaded.cluster, 200, rng)[kind]
    if picks.startswith("classify:"):
        outcome = picks.split(":", 1)[1]
        found = [
            i for i, (s, d) in enumerate(pairs) if bench._outcome(loaded.trace(s, d)) == outcome
        ]
        print("pairs " + ",".join(map(str, found[:PAIRS])))
        return 0
    chosen = [pairs[int(i)] for i in picks.split(",") if i]
    for src, dst in chosen:
        bench._prebuild(loaded, src, dst)
    paths = 0
    if loop:
        for src, dst in chosen:
            paths += len(loaded.trace(src, dst, sport=40002).paths)
    print(f"paths {paths} pairs {len(chosen)}")
    return 0


def _worker_env() -> dict[str, str]:
    """The environment of a worker: it imports this checkout's podnet. One hash seed for both
    runs of a row: the row is the difference of two processes that load the same cluster, and
    string hashing seeded at random moves a large load's cost by more than the few traced
    paths cost."""
    return dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]),
        PYTHONHASHSEED="0",
    )


def _instructions(cmd: list[str], options: tuple[str, ...] = ()) -> tuple[int, str]:
    """Instructions callgrind counts running ``cmd`` (with valgrind ``options``), and its
    output."""
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *options, *cmd],
        capture_output=True,
        text=True,
        check=False,
        env=_worker_env(),
    )
    m = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or m is None:
        raise RuntimeError(f"callgrind failed:\n{done.stderr[-2000:]}")
    return int(m.group(1)), done.stdout


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="S,M,L", help="comma-separated, of S, M, L, XL")
    p.add_argument("--kind", default="pod-pod cross node", choices=KINDS)
    p.add_argument("--outcomes", default="delivered,refused")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--fresh", action="store_true", help="new questions instead of warm ones")
    p.add_argument("--worker", nargs=3, metavar=("FILE", "OUTCOME", "LOOP"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        path, outcome, loop = args.worker
        if args.fresh:  # OUTCOME holds the pairs to trace (see fresh_worker)
            return fresh_worker(path, args.kind, outcome, loop == "1", args.seed)
        return worker(path, args.kind, outcome, loop == "1", args.seed)
    if shutil.which("valgrind") is None:
        p.error("valgrind is not installed (Debian: apt-get install valgrind)")
    what = "fresh" if args.fresh else "warm"
    print(f"| size | outcome | {what} paths | instructions per path ({args.kind}) |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="podnet-instr-") as tmp:
        for size in [s.strip().upper() for s in args.sizes.split(",") if s.strip()]:
            path = bench._generate(size, CLUSTER_SEED, tmp)
            for outcome in args.outcomes.split(","):
                base = [sys.executable, __file__, "--kind", args.kind, "--seed", str(args.seed)]
                if args.fresh:
                    base.append("--fresh")
                    outcome_arg = _classified(base, path, outcome)
                else:
                    outcome_arg = outcome
                b, _ = _instructions([*base, "--worker", path, outcome_arg, "0"])
                w, out = _instructions([*base, "--worker", path, outcome_arg, "1"])
                paths = int(re.search(r"paths (\d+)", out).group(1))
                per = f"{(w - b) // paths:,}" if paths else "n/a (none in the sample)"
                print(f"| {size} | {outcome} | {paths} | {per} |", flush=True)
    return 0


def _classified(base: list[str], path: str, outcome: str) -> str:
    """The indices of the fresh sample's pairs with ``outcome``, found by a run outside
    callgrind (the same interpreter, hash seed and checkout as the counted runs)."""
    done = subprocess.run(
        [*base, "--worker", path, f"classify:{outcome}", "0"],
        capture_output=True,
        text=True,
        check=True,
        env=_worker_env(),
    )
    return re.search(r"pairs ([0-9,]*)", done.stdout).group(1)


if __name__ == "__main__":
    sys.exit(main())
