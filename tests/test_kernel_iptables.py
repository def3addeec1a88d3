"""The kernel round trip (SPEC section 5): a node's rules, as `podnet iptables-save` prints them,
load into a real kernel with iptables-restore, and iptables-save then prints exactly the kernel
form podnet predicts. Runs in a network namespace of its own, deleted afterwards. CI runs as root
with iptables and iproute2 installed and PODNET_KERNEL_TESTS=1 (.ci/run): there it cannot skip."""

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

import podnet
from podnet.render.iptables_save import render_tables

ROOT = Path(__file__).resolve().parent.parent


def _strip(text: str) -> list[str]:
    """iptables-save output without comments and counters' variable parts."""
    return [ln for ln in text.splitlines() if ln and not ln.startswith("#")]


@pytest.fixture
def netns():
    missing = [t for t in ("ip", "iptables-restore", "iptables-save") if shutil.which(t) is None]
    why = f"needs {missing} (installed by .ci/run)" if missing else None
    if why is None and os.geteuid() != 0:
        why = "needs root"
    if why is not None:
        # .ci/run sets PODNET_KERNEL_TESTS=1 on a machine that can: there this must run
        if os.environ.get("PODNET_KERNEL_TESTS") == "1":
            pytest.fail(f"the kernel round trip must run here but {why}", pytrace=False)
        pytest.skip(f"the kernel round trip {why}")
    name = f"pntest-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


@pytest.mark.parametrize("topology", ["demo.yaml", "services.yaml"])
def test_rules_round_trip_through_the_kernel(netns, topology):
    loaded = podnet.load(str(ROOT / "topologies" / topology))
    for node in ("node-1", "node-3"):
        tables = loaded.network.get(f"node:{node}").tables
        restore = subprocess.run(
            ["ip", "netns", "exec", netns, "iptables-restore"],
            input=render_tables(tables),
            text=True,
            capture_output=True,
        )
        assert restore.returncode == 0, restore.stderr
        saved = subprocess.run(
            ["ip", "netns", "exec", netns, "iptables-save"],
            text=True,
            capture_output=True,
            check=True,
        ).stdout
        assert _strip(saved) == _strip(render_tables(tables, kernel=True))
