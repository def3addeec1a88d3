"""``podnet check PROBES.yaml``: routing assertions (SPEC section 4)."""

from __future__ import annotations

from podnet.commands import RAW, add_files, load, warn

EXAMPLES = """examples:
  podnet check probes.yaml -f cluster/
  podnet check probes.yaml -f cluster.yaml -o json
  podnet check probes.yaml -f cluster.yaml --method trace   # trace every probe

a probe file:
  - {from: default/frontend, service: default/backend, port: 80, expect: allow}
  - {from: default/frontend, to: default/db-0, port: 5432, expect: deny, deny_kind: drop}
"""


def add(sub) -> None:
    c = sub.add_parser(
        "check",
        help="run a probe file: connections and what should happen to them",
        description="Run every probe of PROBES.yaml (SPEC section 4) and compare the outcome with its expectations. Exit 1 when one is not met.",
        epilog=EXAMPLES,
        formatter_class=RAW,
    )
    c.add_argument("probes", metavar="PROBES.yaml")
    add_files(c)
    c.add_argument("-o", "--output", choices=["text", "json"], default="text")
    c.add_argument(
        "--method",
        choices=["auto", "trace", "model"],
        default="auto",
        help="trace every probe, or answer from kube-proxy's endpoints and the policy rules "
        "(traced: probes the model does not cover, probes that fail, a sample); auto: the "
        "model from 500 probes on",
    )


def run(args, out, err) -> int:
    from podnet.analysis.check import run_check
    from podnet.analysis.probes import load_probes
    from podnet.render.check_out import render_check_json, render_check_text

    probes = load_probes(args.probes)
    loaded = load(args, err)
    warn(loaded.warnings, err)
    from podnet.render.progress import Progress

    progress = Progress(err)
    how: list = []
    try:
        results = run_check(loaded, probes, progress, method=args.method, run=how)
    finally:
        progress.finish()
    render = render_check_json if args.output == "json" else render_check_text
    out.write(render(results, how[0]))
    return 1 if any(r.ok is False for r in results) else 0
