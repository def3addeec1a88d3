"""Assertions over traces for test suites, each printing the whole rendered trace when it fails
(the pytest plugin podnet.pytest_plugin makes them available with its ``podnet_cluster``
fixture).

>>> import podnet
>>> t = podnet.load().trace("frontend", "svc/backend:80")
>>> assert_delivered(t)
>>> assert_endpoints(t, {"default/backend-*"})
>>> assert_dropped(t)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
AssertionError: expected frontend -> svc/backend:80 to be dropped on every path, but its verdict is delivered
...
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from podnet.model.trace import SUCCESS, Path, Trace

__all__ = ["assert_delivered", "assert_dropped", "assert_endpoints"]


def _fail(message: str, trace: Trace) -> AssertionError:
    from podnet.render.trace_text import render_trace

    return AssertionError(f"{message}\n\n{render_trace(trace)}")


def assert_delivered(trace: Trace) -> None:
    """Every path of ``trace`` is delivered (or leaves the cluster as asked)."""
    if not trace.delivered:
        bad = next((p for p in trace.paths if not p.delivered), None)
        why = f": {bad.disposition} — {bad.forward.reason}" if bad is not None else ": no path"
        raise _fail(
            f"expected {trace.src} -> {trace.dst} to be delivered, but its verdict is {trace.verdict}{why}",
            trace,
        )


def _dropped_by(path: Path, by: str) -> bool:
    if by in path.forward.reason:
        return True
    last = path.forward.hops[-1] if path.forward.hops else None
    return last is not None and any(s.rule and (s.chain == by or by in s.rule) for s in last.steps)


def _denied_by_policy(path: Path, policy: str) -> bool:
    if policy in path.forward.reason:
        return True
    return any(s.type == "policy" and policy in s.text for h in path.forward.hops for s in h.steps)


def assert_dropped(trace: Trace, by: str | None = None, policy: str | None = None) -> None:
    """No path of ``trace`` is delivered. ``by``: the chain (``KUBE-FIREWALL``) or a piece of
    the rule or reason that stopped each path; ``policy``: the NetworkPolicy (``ns/name`` or
    ``name``) that denied each path."""
    if any(p.disposition in SUCCESS for p in trace.paths) or not trace.paths:
        raise _fail(
            f"expected {trace.src} -> {trace.dst} to be dropped on every path, but its verdict is {trace.verdict}",
            trace,
        )
    for i, p in enumerate(trace.paths, 1):
        if by is not None and not _dropped_by(p, by):
            raise _fail(
                f"expected path {i} of {trace.src} -> {trace.dst} to be dropped by {by!r}, but: {p.disposition} — {p.forward.reason}",
                trace,
            )
        if policy is not None and not _denied_by_policy(p, policy):
            raise _fail(
                f"expected path {i} of {trace.src} -> {trace.dst} to be denied by NetworkPolicy {policy!r}, but: {p.disposition} — {p.forward.reason}",
                trace,
            )


def assert_endpoints(trace: Trace, expected: Iterable[str]) -> None:
    """The Pods the delivered paths reach are exactly ``expected`` (``ns/name``; shell-style
    patterns such as ``default/backend-*`` match a workload's generated names, and every
    pattern must match at least one)."""
    got = set(trace.endpoints)
    want = set(expected)
    exact = {w for w in want if not any(c in w for c in "*?[")}
    patterns = want - exact
    unmatched = sorted(w for w in patterns if not any(fnmatchcase(e, w) for e in got))
    missing = sorted(exact - got)
    extra = sorted(e for e in got - exact if not any(fnmatchcase(e, w) for w in patterns))
    if missing or extra or unmatched:
        parts = []
        if missing or unmatched:
            parts.append("missing " + ", ".join(missing + unmatched))
        if extra:
            parts.append("unexpected " + ", ".join(extra))
        raise _fail(
            f"endpoints of {trace.src} -> {trace.dst} are {sorted(got)}: {'; '.join(parts)}", trace
        )
