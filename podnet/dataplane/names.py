"""Deterministic names and numbers for devices: MAC addresses, veth names, namespace names.

Linux and the CNI plugins pick several of these at random (a veth's name, a bridge's or VXLAN
device's MAC). podnet derives them from a hash of a seed string instead, so that the same cluster
gives the same names on every run and machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from ipaddress import IPv4Address

LOOPBACK_MAC = "00:00:00:00:00:00"

# Older containernetworking/plugins releases set a container's eth0 MAC from its IPv4 address
# (pkg/utils/hwaddr GenerateHardwareAddr4 with PrivateMACPrefix 0a:58); newer ones keep the
# kernel's random MAC. The old scheme is deterministic and readable, so podnet uses it.
POD_MAC_PREFIX = "0a:58"


def node_netns(node: str) -> str:
    """The name podnet gives a node's host network namespace.

    >>> node_netns("node-1")
    'node:node-1'
    """
    return f"node:{node}"


def pod_netns(pod_key: str) -> str:
    """The name of a Pod's network namespace (``pod_key`` is ``ns/name``).

    >>> pod_netns("default/web-0")
    'pod:default/web-0'
    """
    return f"pod:{pod_key}"


def external_netns(ip: IPv4Address | str) -> str:
    """The name of an external client's namespace.

    >>> external_netns(IPv4Address("203.0.113.2"))
    'external:203.0.113.2'
    """
    return f"external:{ip}"


def _digest(seed: str) -> bytes:
    return hashlib.sha256(seed.encode()).digest()


def mac_from_seed(seed: str) -> str:
    """A unicast, locally administered MAC derived from ``seed`` (what the kernel's
    eth_random_addr gives, made deterministic: first octet ``& 0xfe | 0x02``).

    >>> mac_from_seed("node:node-1|flannel.1") == mac_from_seed("node:node-1|flannel.1")
    True
    >>> int(mac_from_seed("x")[:2], 16) & 0x03
    2
    """
    b = bytearray(_digest(seed)[:6])
    b[0] = (b[0] & 0xFE) | 0x02
    return b.hex(":")


def pod_mac(ip: IPv4Address) -> str:
    """A Pod eth0's MAC: ``0a:58`` and the four bytes of its IPv4 address.

    >>> pod_mac(IPv4Address("10.244.1.2"))
    '0a:58:0a:f4:01:02'
    """
    return f"{POD_MAC_PREFIX}:{ip.packed.hex(':')}"


def veth_name(seed: str) -> str:
    """A host-side veth name: ``veth`` + 8 hex digits, as the bridge plugin's ``veth%x`` of four
    random bytes (containernetworking/plugins pkg/ip/link_linux.go RandomVethName).

    >>> n = veth_name("node-1|default/web-0")
    >>> n.startswith("veth") and len(n) == 12
    True
    """
    return "veth" + _digest(seed)[:4].hex()


def veth_names(node: str, pod_keys: Iterable[str]) -> dict[str, str]:
    """Host-side veth names for the Pods of one node, unique on that node.

    A name is derived from ``node|pod key``; on a clash (the plugin would just draw again) the
    seed gets ``#1``, ``#2``... appended, in the given Pod order, so the result stays deterministic.
    """
    used: set[str] = set()
    out: dict[str, str] = {}
    for key in pod_keys:
        seed = f"{node}|{key}"
        name = veth_name(seed)
        n = 0
        while name in used:
            n += 1
            name = veth_name(f"{seed}#{n}")
        used.add(name)
        out[key] = name
    return out
