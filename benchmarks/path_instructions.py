"""Instructions a warm traced path costs, by size and outcome: latency compared like for like.

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


def _instructions(cmd: list[str], options: tuple[str, ...] = ()) -> tuple[int, str]:
    """Instructions callgrind counts running ``cmd`` (with valgrind ``options``), and its
    output."""
    # The worker imports this checkout's podnet. One hash seed for both runs of a row: the
    # row is the difference of two processes that load the same cluster, and string hashing
    # seeded at random moves a large load's cost by more than the few traced paths cost.
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]),
        PYTHONHASHSEED="0",
    )
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *options, *cmd],
        capture_output=True,
        text=True,
        check=False,
        env=env,
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
    p.add_argument("--worker", nargs=3, metavar=("FILE", "OUTCOME", "LOOP"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        path, outcome, loop = args.worker
        return worker(path, args.kind, outcome, loop == "1", args.seed)
    if shutil.which("valgrind") is None:
        p.error("valgrind is not installed (Debian: apt-get install valgrind)")
    print(f"| size | outcome | warm paths | instructions per path ({args.kind}) |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="podnet-instr-") as tmp:
        for size in [s.strip().upper() for s in args.sizes.split(",") if s.strip()]:
            path = bench._generate(size, CLUSTER_SEED, tmp)
            for outcome in args.outcomes.split(","):
                base = [sys.executable, __file__, "--kind", args.kind, "--seed", str(args.seed)]
                b, _ = _instructions([*base, "--worker", path, outcome, "0"])
                w, out = _instructions([*base, "--worker", path, outcome, "1"])
                paths = int(re.search(r"paths (\d+)", out).group(1))
                per = f"{(w - b) // paths:,}" if paths else "n/a (none in the sample)"
                print(f"| {size} | {outcome} | {paths} | {per} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
