"""Phase 5: Pod addresses, as the host-local IPAM plugin hands them out on each node.

host-local (containernetworking/plugins plugins/ipam/host-local/backend/allocator/range.go,
allocator.go) with flannel's ``ranges: [[{subnet: <podCIDR>}]]``: the gateway defaults to the
first address (.1, cni0's), RangeStart to .1 (skipped as the gateway), RangeEnd to the last
address minus one (the broadcast address is never given). Pods created on a node get .2, .3, ...
in creation order; addresses fixed by a Pod's ``status.podIP`` are kept and skipped.
hostNetwork Pods use the node's InternalIP and take nothing from the range.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address

from podnet.control.report import Report
from podnet.control.workloads import PodDraft
from podnet.model.cluster import Event


def _check_fixed(d: PodDraft, used: dict[int, str], report: Report) -> bool:
    node, ip = d.node, d.spec.pod_ip
    assert node is not None and ip is not None
    net = node.pod_cidr
    first, last = IPv4Address(int(net.network_address) + 2), net.broadcast_address - 1
    where = f"host-local range {first}-{last}"
    if ip not in net:
        report.error(
            f"Pod {d.key}: podIP {ip} is outside podCIDR {net} of its node {node.name}"
            f" (found {ip}, expected an address in {where})",
            d.src,
            "status.podIP",
            hint=f"Pods on {node.name} get their addresses from {net}",
        )
    elif ip == net.network_address or ip == net.broadcast_address:
        kind = "network" if ip == net.network_address else "broadcast"
        report.error(
            f"Pod {d.key}: podIP {ip} is the {kind} address of podCIDR {net}"
            f" (found {ip}, expected an address in {where})",
            d.src,
            "status.podIP",
        )
    elif ip == node.gateway:
        report.error(
            f"Pod {d.key}: podIP {ip} is the cni0 gateway of node {node.name}"
            f" (found {ip}, expected an address in {where})",
            d.src,
            "status.podIP",
        )
    elif int(ip) in used:
        report.error(
            f"Pod {d.key}: podIP {ip} is already the address of Pod {used[int(ip)]}"
            " (found a duplicate, expected one Pod per address)",
            d.src,
            "status.podIP",
        )
    else:
        used[int(ip)] = d.key
        return True
    return False


def allocate_ips(drafts: Sequence[PodDraft], report: Report) -> None:
    """Give every placed draft its ``ip`` (fixed, node's for hostNetwork, or allocated)."""
    used: dict[int, str] = {}
    for d in drafts:
        node = d.node
        if node is None:
            continue
        fixed = d.spec.pod_ip
        if d.spec.template.host_network:
            if fixed is not None and fixed != node.ip:
                report.error(
                    f"hostNetwork Pod {d.key}: podIP {fixed} is not the InternalIP of its node"
                    f" {node.name} (found {fixed}, expected {node.ip})",
                    d.src,
                    "status.podIP",
                )
            d.ip = node.ip
        elif fixed is not None and _check_fixed(d, used, report):
            d.ip = fixed

    cursor: dict[str, int] = {}
    ranges: dict[str, tuple[int, str]] = {}  # node -> (last usable address, podCIDR text)
    exhausted: set[str] = set()
    events = report.events
    for d in drafts:
        node = d.node
        if node is None or d.ip is not None or d.spec.pod_ip is not None:
            continue  # unplaced, already addressed, or a bad fixed address (reported above)
        name = node.name
        rng = ranges.get(name)
        if rng is None:
            net = node.pod_cidr
            rng = ranges[name] = (int(net.broadcast_address) - 1, str(net))
            cursor[name] = int(net.network_address) + 2
        end, net_text = rng
        cur = cursor[name]
        while cur <= end and cur in used:
            cur += 1
        cursor[name] = cur + 1
        if cur > end:
            if name not in exhausted:
                exhausted.add(name)
                first = IPv4Address(int(node.pod_cidr.network_address) + 2)
                report.error(
                    f"Pod {d.key}: no free address left on node {name}: host-local range"
                    f" {first}-{IPv4Address(end)} of podCIDR {net_text} is exhausted",
                    d.src,
                    "metadata.name",
                    hint="give the node a larger podCIDR or place fewer Pods on it",
                )
            continue
        used[cur] = d.key
        d.ip = IPv4Address(cur)
        detail = f"{ip_text(cur)} from {net_text} on {name}"
        events.append(Event("host-local", "allocate", f"Pod/{d.key}", detail))


def ip_text(value: int) -> str:
    """Dotted text of an IPv4 address given as an int (faster than str(IPv4Address)).

    >>> ip_text(0x0AF40102)
    '10.244.1.2'
    """
    return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"
