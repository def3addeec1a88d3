"""The benchmark script runs (at size S, a tiny sample): a smoke test, no timing asserted."""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench.py"


def _bench():
    spec = importlib.util.spec_from_file_location("podnet_bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_size_s_prints_the_table_and_writes_json(tmp_path):
    out = io.StringIO()
    js, md = tmp_path / "b.json", tmp_path / "b.md"
    assert (
        _bench().main(
            [
                "--sizes",
                "S",
                "--sample",
                "3",
                "--probes",
                "4",
                "--rounds",
                "2",
                "--json",
                str(js),
                "--markdown",
                str(md),
            ],
            out,
        )
        == 0
    )
    text = out.getvalue()
    assert text.startswith("| size | nodes | Pods |")
    assert "\n| S | 3 | " in text  # 3 nodes (Pods and Services: 30 and 10, plus cluster DNS)
    assert md.read_text() == text
    data = json.loads(js.read_text())
    (row,) = data["rows"]
    assert row["pods"] >= 30 and row["nodes"] == 3 and row["services"] >= 10
    assert row["load_build_s"] > 0 and row["peak_rss_mib"] > 0
    assert set(row["trace"]) == {"pod-pod same node", "pod-pod cross node", "pod-service"}
    assert all(t["traces"] == 3 and t["warm_median_us"] > 0 for t in row["trace"].values())
    # a path's warm time is the least of its rounds: never above the first round's
    for t in row["trace"].values():
        assert t["warm_rounds"] == 2 and 0 < t["warm_median_us"] <= t["warm_once_median_us"]
    assert data["rounds"] == 2 and row["trace_warm_once_median_us"] > 0
    # latency by outcome: every warm trace is delivered, refused or mixed (counted in neither)
    counted = row["trace_warm_delivered_traces"] + row["trace_warm_refused_traces"]
    assert 0 < counted <= 9 and row["trace_warm_delivered_traces"] > 0
    assert row["trace_warm_delivered_median_us"] > 0
    assert "| warm µs/path: delivered / refused (traces) |" in text
    assert row["check_probes"] == 4 and row["check_probes_per_s"] > 0


def test_path_instructions_worker_traces_the_sample_warm(capsys):
    """The script's worker (what runs under callgrind): the sample's delivered traces of the
    bundled demo, traced again warm on three source ports."""
    path = BENCH.parent / "path_instructions.py"
    spec = importlib.util.spec_from_file_location("podnet_path_instructions", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    demo = str(BENCH.parent.parent / "topologies" / "demo.yaml")
    assert mod.main(["--kind", "pod-service", "--worker", demo, "delivered", "1"]) == 0
    paths, pairs = map(int, capsys.readouterr().out.split()[1::2])
    assert 0 < pairs <= mod.PAIRS and paths >= mod.REPEATS * pairs
    assert mod.main(["--kind", "pod-service", "--worker", demo, "delivered", "0"]) == 0
    assert capsys.readouterr().out == f"paths 0 pairs {pairs}\n"


def test_path_instructions_fresh_worker_traces_new_pairs_once(capsys):
    """The --fresh worker: the outcome's pairs are found by a classifying run; the counted runs
    build the same namespaces, and only the second traces each chosen pair, once."""
    path = BENCH.parent / "path_instructions.py"
    spec = importlib.util.spec_from_file_location("podnet_path_instructions_fresh", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    demo = str(BENCH.parent.parent / "topologies" / "demo.yaml")
    base = ["--fresh", "--kind", "pod-pod same node"]
    assert mod.main([*base, "--worker", demo, "classify:delivered", "0"]) == 0
    picks = capsys.readouterr().out.split()[1]
    assert picks and all(i.isdigit() for i in picks.split(","))
    assert mod.main([*base, "--worker", demo, picks, "1"]) == 0
    paths, pairs = map(int, capsys.readouterr().out.split()[1::2])
    assert pairs == len(picks.split(",")) and paths >= pairs
    assert mod.main([*base, "--worker", demo, picks, "0"]) == 0
    assert capsys.readouterr().out == f"paths 0 pairs {pairs}\n"


def test_first_question_worker_traces_the_first_sampled_pair(capsys):
    """The script's worker (what runs under callgrind, here without it): bench.py's first
    sampled pair of the bundled demo, traced once."""
    path = BENCH.parent / "first_question_instructions.py"
    spec = importlib.util.spec_from_file_location("podnet_first_question", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    demo = str(BENCH.parent.parent / "topologies" / "demo.yaml")
    assert mod.main(["--worker", demo, "--no-toggle"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("first question ") and out.rstrip().endswith(" paths")
    assert int(out.split(": ")[1].split()[0]) >= 1
