"""Instructions the first question costs, by size: the cluster-wide rule state, like for like.

The first trace after loading builds what every later question shares: kube-proxy's service
ports and the chains every port adds to, the policy agent's chains and ipsets, the first nodes
(bench.py's ``first trace``). CPU time on a shared machine moves by half between runs;
instruction counts do not. This script runs itself under ``valgrind --tool=callgrind`` with
instrumentation off while the cluster loads, turns it on (``callgrind_control -i on``) for the
first trace of bench.py's sample alone, and prints what it counted::

    python3 benchmarks/first_question_instructions.py               # S, M, L
    python3 benchmarks/first_question_instructions.py --sizes L,XL

Loading runs uninstrumented, several times slower than natively: L takes a few minutes, XL
about half an hour.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench  # noqa: E402 (the sample and the generated clusters are bench.py's)
from path_instructions import _instructions  # noqa: E402

CLUSTER_SEED = 7  # bench.py's default: the same clusters
SAMPLE_SEED = 7  # bench.py's default: the same first trace


def worker(path: str, toggle: bool) -> int:
    """Load, then trace bench.py's first sampled pair, counted alone when ``toggle``."""
    import podnet

    loaded = podnet.api.load(path)
    kinds = bench._sample(loaded.cluster, 200, random.Random(SAMPLE_SEED))
    first = next(pairs[0] for pairs in kinds.values() if pairs)
    if toggle:
        _instrument("on")
    trace = loaded.trace(*first, sport=39999)
    if toggle:
        _instrument("off")
    print(f"first question {first[0]} -> {first[1]}: {len(trace.paths)} paths")
    return 0


def _instrument(state: str) -> None:
    subprocess.run(
        ["callgrind_control", "-i", state, str(os.getpid())], capture_output=True, check=True
    )


def _count(path: str) -> tuple[int, str]:
    # this checkout's podnet on one hash seed, as path_instructions.py runs its rows
    n, out = _instructions([sys.executable, __file__, "--worker", path], ("--instr-atstart=no",))
    return n, out.strip()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="S,M,L", help="comma-separated, of S, M, L, XL")
    p.add_argument("--worker", metavar="FILE", help=argparse.SUPPRESS)
    p.add_argument("--no-toggle", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args.worker, not args.no_toggle)
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            p.error(f"{tool} is not installed (Debian: apt-get install valgrind)")
    print("| size | first question | instructions |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="podnet-first-") as tmp:
        for size in [s.strip().upper() for s in args.sizes.split(",") if s.strip()]:
            path = bench._generate(size, CLUSTER_SEED, tmp)
            n, what = _count(path)
            print(f"| {size} | {what} | {n:,} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
