"""Build the emulated network for real, in Linux network namespaces, and compare the kernel's
answers with the emulator's (``podnet realize``, ``podnet verify``).

Modules: ``names`` (per-run prefix and kernel names), ``script`` (the iproute2 batches, sysctls
and iptables-restore input for every namespace: pure, no side effects), ``system`` (running
the tools, requirements, state files, finding leftovers), ``lifecycle`` (up and down with
teardown on failure and signals), ``agent`` (listener and client run inside namespaces),
``verify`` (probes, emulator expectations, kernel observations, comparison) and ``report``.

Nothing here imports heavy modules at import time: ``python3 -m podnet.realize.agent`` starts
in a few tens of milliseconds inside each namespace.
"""
