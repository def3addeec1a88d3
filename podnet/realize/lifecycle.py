"""``realize up`` and ``realize down``: make a run's namespaces, tear them down on failure,
Ctrl-C and SIGTERM, and find leftovers of earlier runs."""

from __future__ import annotations

import atexit
import contextlib
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from podnet.errors import Problem
from podnet.realize import system
from podnet.realize.names import RunNames, check_run_name, run_prefix
from podnet.realize.script import RunPlan, plan_run


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: unwinds like Ctrl-C so every ``finally`` tears down."""


@dataclass(frozen=True, slots=True)
class Realized:
    """A run that is up: its name, plan and where its state is saved."""

    name: str
    plan: RunPlan

    def netns(self, emulated: str) -> str:
        """The kernel namespace of an emulator namespace name."""
        return self.plan.mapping[emulated]


@contextmanager
def signals_unwind() -> Iterator[None]:
    """While inside: SIGTERM (and SIGHUP) raise :class:`Terminated`, so cleanup code runs."""

    def _raise(signum, frame):
        raise Terminated(f"signal {signum}")

    old = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        # outside the main thread signal.signal raises ValueError: the caller handles signals
        with contextlib.suppress(ValueError):
            old[sig] = signal.signal(sig, _raise)
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def up(network, name: str) -> Realized:
    """Create every namespace, device, route, neighbour, FDB entry, sysctl and rule of
    ``network`` for run ``name``. Anything half made is removed before an error propagates
    (including Ctrl-C and SIGTERM). Raises RealizeError when the run is already up."""
    check_run_name(name)
    system.require()
    names = RunNames(run_prefix(name))
    present = system.run_namespaces(names.prefix)
    if present or system.load_state(name) is not None:
        raise system.RealizeError(
            Problem(
                f"run '{name}' is already up ({len(present)} namespaces {names.prefix}-*)",
                path="--name",
                hint=f"podnet realize down --name {name}   (or pick another --name)",
            )
        )
    plan = plan_run(network, names)
    if any(s.ipset for s in plan.scripts):
        system.require(("ipset",))
    if any(s.nfacct for s in plan.scripts):
        system.require(("nfacct",))
    state = system.State(name, names.prefix, plan.netns_names(), dict(plan.mapping))
    done = False

    def _atexit() -> None:
        if not done:
            _teardown(name, names.prefix)

    atexit.register(_atexit)
    try:
        with signals_unwind():
            system.save_state(state)
            system.netns_add(plan.netns_names())
            for s in plan.scripts:
                system.apply_script(s)
        done = True
    finally:
        if not done:
            _teardown(name, names.prefix)
            done = True
        atexit.unregister(_atexit)
    return Realized(name, plan)


def _teardown(name: str, prefix: str) -> list[str]:
    gone = system.netns_delete(system.run_namespaces(prefix))
    system.drop_state(name)
    return gone


def down(name: str | None = None, every: bool = False) -> list[str]:
    """Remove run ``name`` (its namespaces and state), or with ``every`` every podnet run's
    namespaces and states found on this machine. Idempotent: nothing to remove is no error.
    Returns the namespaces deleted."""
    system.require(("ip",))
    if every:
        gone = system.netns_delete(system.run_namespaces())
        for st in system.all_states():
            system.drop_state(st.name)
        return gone
    check_run_name(name)
    return _teardown(name, run_prefix(name))


@contextmanager
def realized(network, name: str) -> Iterator[Realized]:
    """Up for the duration of the ``with`` block; down afterwards whatever happens (exception,
    Ctrl-C, SIGTERM, interpreter exit)."""
    r = up(network, name)
    prefix = r.plan.names.prefix
    finished = False

    def _atexit() -> None:
        if not finished:
            _teardown(name, prefix)

    atexit.register(_atexit)
    try:
        with signals_unwind():
            yield r
    finally:
        _teardown(name, prefix)
        finished = True
        atexit.unregister(_atexit)
