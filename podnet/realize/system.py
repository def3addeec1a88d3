"""Running iproute2, bridge, sysctl, ipset and iptables-restore inside the run's namespaces.

Every command that touches networking runs in a namespace the run created: through
``ip -n NS`` / ``bridge -n NS`` (iproute2 switches namespace before it does anything) or
``ip netns exec NS``. The only commands run without a namespace are ``ip netns add/del/list/pids``,
which manage the namespaces' names under /run/netns and change nothing in the host's network.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from podnet.errors import PodnetError, Problem
from podnet.realize.names import PREFIX_RE
from podnet.realize.script import NetnsScript

STATE_DIR = Path(os.environ.get("PODNET_STATE_DIR", "/run/podnet"))
TOOLS = ("ip", "bridge", "sysctl", "iptables-restore")


class RealizeError(PodnetError):
    """A kernel command failed, or the machine cannot realize networks (exit 2)."""


def _problem(message: str, hint: str | None = None) -> RealizeError:
    return RealizeError(Problem(message, path="realize", hint=hint))


def missing_requirements(need: Sequence[str] = TOOLS) -> list[str]:
    """What this machine lacks to realize a network: root, Linux, tools (empty: nothing)."""
    out = []
    if not sys.platform.startswith("linux"):
        out.append(f"Linux (this is {sys.platform})")
    elif os.geteuid() != 0:
        out.append("root (network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN)")
    for tool in need:
        if shutil.which(tool) is None:
            pkg = {"ip": "iproute2", "bridge": "iproute2", "sysctl": "procps"}.get(
                tool, tool.split("-")[0]
            )
            out.append(f"the '{tool}' command (package {pkg})")
    return out


def require(need: Sequence[str] = TOOLS) -> None:
    """Raise RealizeError (exit 2) naming everything missing."""
    missing = missing_requirements(need)
    if missing:
        raise _problem(
            "cannot realize the network here: missing " + "; ".join(missing),
            hint="run as root on Linux with iproute2, procps and iptables installed "
            "(apt-get install iproute2 procps iptables ipset)",
        )


def run(
    argv: Sequence[str], stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    """Run one command; a failure raises RealizeError with the command and its stderr."""
    try:
        cp = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=300)
    except FileNotFoundError:
        raise _problem(f"'{argv[0]}' is not installed") from None
    if check and cp.returncode != 0:
        raise _problem(
            f"'{' '.join(argv)}' failed (exit {cp.returncode}): {cp.stderr.strip() or cp.stdout.strip()}"
        )
    return cp


# ---------------------------------------------------------------------------------- namespaces


def netns_list() -> list[str]:
    """Every named network namespace (``ip netns list``)."""
    cp = run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in cp.stdout.splitlines() if line.strip()]


def run_namespaces(prefix: str | None = None) -> list[str]:
    """Named namespaces of podnet runs: of the run with ``prefix``, or of any run."""
    if prefix is not None:
        return [n for n in netns_list() if n.startswith(prefix + "-")]
    return [n for n in netns_list() if PREFIX_RE.match(n)]


def netns_add(names: Iterable[str]) -> None:
    """Create the named namespaces (one ``ip -batch``)."""
    lines = "".join(f"netns add {n}\n" for n in names)
    if lines:
        run(["ip", "-batch", "-"], stdin=lines)


def netns_pids(name: str) -> list[int]:
    """Processes inside namespace ``name`` (``ip netns pids``)."""
    cp = run(["ip", "netns", "pids", name], check=False)
    return [int(x) for x in cp.stdout.split() if x.isdigit()]


def netns_delete(names: Iterable[str]) -> list[str]:
    """Stop every process inside the namespaces (podnet's listeners and clients: nothing else
    runs there), then delete them. Missing ones are ignored. Returns the names deleted."""
    names = list(names)
    for n in names:
        for pid in netns_pids(n):
            if pid != os.getpid():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    present = set(netns_list())
    gone = sorted(n for n in names if n in present)
    if gone:
        run(
            ["ip", "-force", "-batch", "-"],
            stdin="".join(f"netns del {n}\n" for n in gone),
            check=False,
        )
    return gone


# ---------------------------------------------------------------------------------- scripts


def apply_script(s: NetnsScript) -> None:
    """Run one namespace's script: ip lines, bridge lines, sysctls, nfacct objects, ipsets,
    iptables."""
    if s.ip:
        run(["ip", "-n", s.netns, "-batch", "-"], stdin="\n".join(s.ip) + "\n")
    if s.bridge:
        run(["bridge", "-n", s.netns, "-batch", "-"], stdin="\n".join(s.bridge) + "\n")
    if s.sysctls:
        sysctl_set(s.netns, s.sysctls)
    for obj in s.nfacct:
        run(["ip", "netns", "exec", s.netns, "nfacct", "add", obj])
    if s.ipset:
        run(["ip", "netns", "exec", s.netns, "ipset", "restore", "-exist"], stdin=s.ipset)
    if s.iptables:
        run(["ip", "netns", "exec", s.netns, "iptables-restore"], stdin=s.iptables)


def sysctl_set(netns: str, values: Iterable[tuple[str, str]]) -> None:
    """``sysctl -w`` inside ``netns``; a key this kernel lacks (bridge-nf-call-iptables without
    br_netfilter) raises RealizeError naming it."""
    values = list(values)
    if (
        any(k.startswith("net.bridge.") for k, _ in values)
        and not Path("/proc/sys/net/bridge").is_dir()
    ):
        raise _problem(
            "net.bridge.bridge-nf-call-iptables does not exist: the br_netfilter module is not loaded",
            hint="modprobe br_netfilter (bridged Pod traffic then goes through iptables, as kubeadm requires)",
        )
    args = [f"{k}={v}" for k, v in values]
    run(["ip", "netns", "exec", netns, "sysctl", "-q", "-w", *args])


# ---------------------------------------------------------------------------------- state files


@dataclass(frozen=True, slots=True)
class State:
    """What a run made, saved in ``/run/podnet/<name>.json``."""

    name: str
    prefix: str
    namespaces: tuple[str, ...]
    mapping: dict

    def to_json(self) -> str:
        return (
            json.dumps(
                {
                    "name": self.name,
                    "prefix": self.prefix,
                    "namespaces": list(self.namespaces),
                    "mapping": self.mapping,
                },
                indent=2,
                sort_keys=True,
            )
            + "\n"
        )


def state_path(name: str) -> Path:
    return STATE_DIR / f"{name}.json"


def save_state(state: State) -> Path:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    p = state_path(state.name)
    p.write_text(state.to_json())
    return p


def load_state(name: str) -> State | None:
    p = state_path(name)
    try:
        d = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    return State(d["name"], d["prefix"], tuple(d["namespaces"]), d.get("mapping", {}))


def all_states() -> list[State]:
    """Every saved run state."""
    out = []
    if STATE_DIR.is_dir():
        for p in sorted(STATE_DIR.glob("*.json")):
            s = load_state(p.stem)
            if s is not None:
                out.append(s)
    return out


def drop_state(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        state_path(name).unlink()
