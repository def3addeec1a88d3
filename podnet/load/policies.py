"""NetworkPolicy (networking.k8s.io/v1).

Defaults follow kubernetes pkg/apis/networking/v1/defaults.go (protocol TCP; policyTypes
[Ingress] plus Egress when ``len(spec.egress) != 0``), checks follow
pkg/apis/networking/validation/validation.go (ValidateNetworkPolicySpec, ValidateIPBlock).
"""

from __future__ import annotations

from podnet.errors import did_you_mean
from podnet.load.fields import Cursor, parse_network
from podnet.load.meta import DNS1123_SUBDOMAIN, finish, port_name_error, read_meta, selector
from podnet.model.spec import (
    PROTOCOLS,
    IPBlock,
    LabelSelector,
    NetworkPolicySpec,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
)

POLICY_TYPES = ("Ingress", "Egress")


def read_network_policy(top: Cursor) -> NetworkPolicySpec | None:
    """A ``NetworkPolicy`` object, policyTypes defaulted."""
    top.known(("apiVersion", "kind", "metadata", "spec", "status"))
    meta = read_meta(top, DNS1123_SUBDOMAIN, namespaced=True)
    spec = top.map("spec", required=True)
    if spec is None:
        return None
    spec.known(("podSelector", "policyTypes", "ingress", "egress"))
    # podSelector is a struct, not a pointer: absent or null selects every Pod of the namespace.
    pod_selector = selector(spec, "podSelector") or LabelSelector()
    ingress = _rules(spec, "ingress", "from")
    egress = _rules(spec, "egress", "to")
    types: list[str] = []
    for value, pos, path in spec.strs("policyTypes"):
        if value not in POLICY_TYPES:
            spec.obj.error(
                f"invalid value {value!r} (expected one of Ingress, Egress)",
                pos,
                path,
                did_you_mean(value, POLICY_TYPES),
            )
        elif value in types:
            spec.obj.error(f"duplicate value {value!r}", pos, path)
        else:
            types.append(value)
    if not types:
        types = ["Ingress"]
        egress_node = spec.raw("egress")
        if egress_node is not None and getattr(egress_node, "items", None):
            types.append("Egress")
    if meta is None:
        return None
    return NetworkPolicySpec(
        finish(meta, top), pod_selector, tuple(types), tuple(ingress), tuple(egress)
    )


def _rules(spec: Cursor, key: str, peers_key: str) -> list[PolicyRule]:
    rules: list[PolicyRule] = []
    for rule in spec.maps(key):
        rule.known((peers_key, "ports"))
        ports = tuple(_port(p) for p in rule.maps("ports"))
        peers = []
        written = 0
        for peer in rule.maps(peers_key):
            written += 1
            found = _peer(peer)
            if found is not None:
                peers.append(found)
        if written and not peers:
            # Every peer was IPv6 (warned) or invalid (reported): the rule can match no IPv4
            # packet. Dropping it keeps the meaning (rules are ORed); kept peerless, it would
            # allow everything.
            continue
        rules.append(PolicyRule(tuple(peers), ports))
    return rules


def _port(p: Cursor) -> PolicyPort | None:
    p.known(("protocol", "port", "endPort"))
    protocol = p.str("protocol", default="TCP", choices=PROTOCOLS) or "TCP"
    port = p.int_or_str("port", lo=1, hi=65535)
    end = p.int("endPort", lo=1, hi=65535)
    if isinstance(port, str) and port_name_error(port):
        p.error(port_name_error(port) or "", "port")
    if end is not None:
        if not p.has("port"):
            p.error(
                "endPort needs a numeric port", "endPort", "add port: the first port of the range"
            )
        elif isinstance(port, str):
            p.error("may not be used when port is a named port", "endPort")
        elif isinstance(port, int) and end < port:
            p.error(f"endPort {end} is below port {port}", "endPort", "endPort must be >= port")
    return PolicyPort(protocol, port, end)


def _peer(peer: Cursor) -> PolicyPeer | None:
    """One peer; None when it is an IPv6 ipBlock (warned) or invalid."""
    peer.known(("podSelector", "namespaceSelector", "ipBlock"))
    pods = selector(peer, "podSelector")
    nss = selector(peer, "namespaceSelector")
    block = peer.map("ipBlock")
    if block is None and pods is None and nss is None:
        peer.error("empty peer: give podSelector, namespaceSelector or ipBlock")
        return None
    if block is not None and (pods is not None or nss is not None):
        other = "podSelector" if pods is not None else "namespaceSelector"
        peer.error(
            f"ipBlock may not be combined with {other} in one peer",
            "ipBlock",
            "write them as two peers (two list items): peers in a list are ORed",
        )
        return None
    if block is None:
        return PolicyPeer(pods, nss, None)
    return _ip_block(block)


def _ip_block(block: Cursor) -> PolicyPeer | None:
    block.known(("cidr", "except"))
    text = block.str("cidr", required=True)
    if text is None:
        return None
    if ":" in text:
        block.warn(f"IPv6 ipBlock {text!r} ignored (podnet emulates IPv4 only)", "cidr")
        return None
    # The API server accepts host bits here (net.ParseCIDR), e.g. "10.244.1.10/4".
    cidr = parse_network(text, block.obj, block.raw("cidr").pos, block.sub("cidr"), strict=False)
    excepts = []
    for etext, pos, path in block.strs("except"):
        if ":" in etext:
            block.obj.warn(f"IPv6 except {etext!r} ignored (podnet emulates IPv4 only)", pos, path)
            continue
        net = parse_network(etext, block.obj, pos, path, strict=False)
        if net is None or cidr is None:
            continue
        if not (net.subnet_of(cidr) and net.prefixlen > cidr.prefixlen):
            block.obj.error(
                f"except {etext} is not inside cidr {text}",
                pos,
                path,
                f"each except must be a strict subset of {cidr}",
            )
            continue
        excepts.append(net)
    if cidr is None:
        return None
    return PolicyPeer(ip_block=IPBlock(cidr, text, tuple(excepts)))
