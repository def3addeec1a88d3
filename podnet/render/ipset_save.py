"""``ipset save`` text of a namespace's ipsets; ``ipset restore`` loads it.

Format as ipset(8) prints it for the set types podnet holds (ipset 7.x, lib/print.c):
``create NAME hash:ip family inet hashsize 1024 maxelem 65536 timeout 0`` then one
``add NAME ENTRY timeout 0`` per entry (kube-router creates its sets with ``timeout 0``,
pkg/utils/ipset.go RefreshSet; a hash:net except carries ``nomatch``). Sets come sorted by name.

>>> from ipaddress import IPv4Network
>>> from podnet.model.dataplane import IpSet
>>> print(render_ipsets([IpSet("KUBE-DST-A", "hash:ip", ((IPv4Network("10.244.1.2/32"), False),))]), end="")
create KUBE-DST-A hash:ip family inet hashsize 1024 maxelem 65536 timeout 0
add KUBE-DST-A 10.244.1.2 timeout 0
"""

from __future__ import annotations

from collections.abc import Iterable

from podnet.model.dataplane import IpSet


def _hashsize(n: int) -> int:
    """ipset grows the hash as entries come; a restored set is created with the default 1024
    and grows by doubling (lib/ipset: hashsize is a power of two >= 64)."""
    size = 1024
    while size < n:
        size *= 2
    return size


def render_ipsets(sets: Iterable[IpSet]) -> str:
    """The sets in ``ipset save`` format."""
    out: list[str] = []
    for s in sorted(sets, key=lambda s: s.name):
        out.append(
            f"create {s.name} {s.type} family inet hashsize {_hashsize(len(s.members))} "
            "maxelem 65536 timeout 0"
        )
        for entry in s.entries():
            text, _, flag = entry.partition(" ")
            out.append(f"add {s.name} {text} timeout 0" + (f" {flag}" if flag else ""))
    return "\n".join(out) + ("\n" if out else "")
