"""What the fuzz tests share: the example budget, the properties of a trace, the case counter.

``PODNET_FUZZ_EXAMPLES=N`` raises every fuzz test's ``max_examples`` to N (and draws fresh
random examples instead of the fixed CI ones); ``PODNET_FUZZ_REPORT=FILE`` appends how many
cases each test ran to FILE when the module finishes.
"""

from __future__ import annotations

import io
import os
from collections import Counter
from fractions import Fraction

from hypothesis import HealthCheck, settings

from podnet.cli import run
from podnet.model.trace import DISPOSITIONS

EXAMPLES = int(os.environ.get("PODNET_FUZZ_EXAMPLES", "0") or 0)
COUNTS: Counter = Counter()


def budget(ci_examples: int):
    """Hypothesis settings: ``ci_examples`` in CI (derandomized, so CI is repeatable), or
    PODNET_FUZZ_EXAMPLES random ones when that is set."""
    return settings(
        max_examples=EXAMPLES or ci_examples,
        deadline=None,
        derandomize=not EXAMPLES,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def report(module: str) -> None:
    """Append the cases run per test of ``module`` to PODNET_FUZZ_REPORT, if set."""
    target = os.environ.get("PODNET_FUZZ_REPORT")
    if not target:
        return
    with open(target, "a") as fh:
        for name, n in sorted(COUNTS.items()):
            if name.startswith(module + "."):
                fh.write(f"| {name} | {n} |\n")


def cli(argv: list[str]) -> tuple[int, str, str]:
    """Run the CLI in process: (status, stdout, stderr). It must never raise."""
    out, err = io.StringIO(), io.StringIO()
    status = run(argv, out, err)
    assert status in (0, 1, 2), (argv, status, err.getvalue())
    if status == 2:
        assert err.getvalue().strip(), "exit 2 without a message"
        assert "Traceback" not in err.getvalue()
    return status, out.getvalue(), err.getvalue()


def check_trace(t) -> None:
    """The properties every trace has: it ended, its paths' probabilities add up to exactly 1,
    every leg has a known disposition and a reason, and a delivered connection's reply either
    reaches the client from the address the client used or says why it does not."""
    assert t.paths, "a trace without paths"
    total = sum((p.probability for p in t.paths), Fraction(0))
    assert isinstance(total, Fraction) and total == 1, total
    sent = t.packet
    for p in t.paths:
        fwd = p.forward
        assert fwd.disposition in DISPOSITIONS and fwd.reason, fwd
        if fwd.disposition != "DELIVERED":
            assert p.reply is None
            continue
        r = p.reply
        assert r is not None and r.disposition in DISPOSITIONS and r.reason
        if r.disposition == "DELIVERED":
            got = r.packet
            assert (got.src, got.sport, got.dst, got.dport) == (
                sent.dst,
                sent.dport,
                sent.src,
                sent.sport,
            ), (sent, got)
            assert got.proto == sent.proto


def strict_reply(t) -> None:
    """Without NetworkPolicies and outside clients, every delivered connection's reply is
    delivered too (kube-proxy masquerades the hairpin case; conntrack undoes every NAT)."""
    for p in t.paths:
        if p.forward.disposition == "DELIVERED":
            assert p.reply.disposition == "DELIVERED", (t.src, t.dst, p.reply.reason)
