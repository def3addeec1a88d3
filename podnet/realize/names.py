"""Kernel names for one realized run: namespace names carry a per-run prefix, device names fit
Linux's 15-character limit (IFNAMSIZ 16 with the NUL, include/uapi/linux/if.h).

Every name is derived from the run's name and the emulator's names with a hash, never drawn at
random, so ``podnet realize down --name N`` finds what ``up --name N`` made.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from podnet.errors import Problem, UsageError

PREFIX_RE = re.compile(r"^pn[0-9a-f]{6}-")
RUN_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SAFE = re.compile(r"^[a-z0-9][a-z0-9.-]{0,39}$")
IFNAMSIZ = 15  # longest interface name the kernel takes
UNDERLAY_BRIDGE = "br0"
GATEWAY_PORT = "ul-gw"


def _h(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def check_run_name(name: str) -> str:
    """The run name, or UsageError when it would not make a safe file name.

    >>> check_run_name("demo")
    'demo'
    """
    if not RUN_NAME_RE.match(name):
        raise UsageError(
            Problem(
                f"run name '{name}' is not usable",
                path="--name",
                hint="letters, digits, '_', '.', '-'; at most 64 characters",
            )
        )
    return name


def run_prefix(run: str) -> str:
    """``pn`` and six hex digits of the run name's hash: every namespace of the run starts with it.

    >>> run_prefix("default")
    'pn37a8ee'
    >>> bool(PREFIX_RE.match(run_prefix("x") + "-node-1"))
    True
    """
    return "pn" + _h(run, 6)


@dataclass(frozen=True, slots=True)
class RunNames:
    """The kernel names of one run (``prefix`` from :func:`run_prefix`)."""

    prefix: str

    @property
    def underlay(self) -> str:
        """The namespace holding the underlay bridge ``br0`` every node's ``eth0`` is plugged in."""
        return f"{self.prefix}-underlay"

    @property
    def gateway(self) -> str:
        """The namespace owning the underlay gateway address (the nodes' default route)."""
        return f"{self.prefix}-gw"

    def netns(self, emulated: str) -> str:
        """The kernel namespace for an emulator namespace name (``node:N``, ``pod:NS/P``,
        ``external:IP``).

        >>> r = RunNames("pn000000")
        >>> r.netns("node:node-1"), r.netns("external:203.0.113.2")
        ('pn000000-node-node-1', 'pn000000-x-203.0.113.2')
        >>> r.netns("pod:default/web")
        'pn000000-p-5c7eee7f'
        """
        kind, _, rest = emulated.partition(":")
        if kind == "node":
            tail = rest if _SAFE.match(rest) else _h(emulated)
            return f"{self.prefix}-node-{tail}"
        if kind == "external":
            return f"{self.prefix}-x-{rest}"
        return f"{self.prefix}-p-{_h(emulated)}"

    def underlay_port(self, emulated: str) -> str:
        """The name, in the underlay namespace, of the bridge port whose peer is ``eth0`` of
        ``emulated`` (a node, an external client or the gateway).

        >>> len(RunNames("pn000000").underlay_port("node:node-1")) <= IFNAMSIZ
        True
        """
        if emulated == "gateway":
            return GATEWAY_PORT
        return "ul" + _h(emulated)
