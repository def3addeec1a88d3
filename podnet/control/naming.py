"""Names the controllers give, made deterministic.

Kubernetes derives some names from hashes and draws others at random:

- ``pod-template-hash``: ``ComputeHash`` (kubernetes pkg/controller/controller_utils.go) feeds the
  pod template to an FNV-1a 32-bit hash and encodes the decimal digits of the sum with
  ``rand.SafeEncodeString`` (k8s.io/apimachinery pkg/util/rand/rand.go): each character ``b`` of
  the text becomes ``alphanums[b % 27]`` with ``alphanums = "bcdfghjklmnpqrstvwxz2456789"``.
  podnet hashes a canonical JSON text of the template instead of Go's spew dump, so the value
  differs from a real cluster's but has the same form.
- ``metadata.generateName`` suffixes: the API server appends ``rand.String(5)`` drawn from the same
  alphabet (apiserver pkg/storage/names/generate.go). podnet draws the 5 characters from a SHA-256
  of the owner's name and a counter, so names are stable from run to run.
"""

from __future__ import annotations

import hashlib
import json
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from podnet.model.base import FrozenDict
from podnet.model.spec import PodTemplate

ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"
"""k8s.io/apimachinery pkg/util/rand: vowels left out "to reduce the chances of bad words"."""

MAX_NAME = 63
GENERATED_SUFFIX = 5  # apiserver names.randomLength
MAX_GENERATED_BASE = MAX_NAME - GENERATED_SUFFIX  # names.maxGeneratedNameLength


_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # RFC 4648 base32 (Go's base32.StdEncoding)


def hash16(text: str) -> str:
    """The first 16 characters of base32(sha256(text)): kube-proxy's ``portProtoHash`` and
    ``servicePortEndpointChainName`` (pkg/proxy/iptables/proxier.go) and kube-router's chain
    names hash this way. 16 base32 characters are exactly the digest's first 80 bits, so only
    those 10 bytes are encoded (base64.b32encode of the whole digest, then cut, gives the same).

    >>> import base64, hashlib
    >>> text = "ns1/svc1:p80tcp"
    >>> hash16(text) == base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]
    True
    >>> hash16(text)
    'XPGD46QRK7WJZT7O'
    """
    n = int.from_bytes(hashlib.sha256(text.encode()).digest()[:10], "big")
    t = _B32_PAIRS  # ten bits, two characters, at a time (as CPython's base64 does)
    return (
        t[n >> 70]
        + t[(n >> 60) & 1023]
        + t[(n >> 50) & 1023]
        + t[(n >> 40) & 1023]
        + t[(n >> 30) & 1023]
        + t[(n >> 20) & 1023]
        + t[(n >> 10) & 1023]
        + t[n & 1023]
    )


_B32_PAIRS = tuple(a + b for a in _B32 for b in _B32)


def fnv32a(data: bytes) -> int:
    """FNV-1a, 32 bits (Go's hash/fnv New32a).

    >>> fnv32a(b"Hello world")
    1498229191
    """
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    """rand.SafeEncodeString: every character mapped into ALPHANUMS by its code point mod 27.

    >>> safe_encode("1498229191")
    '58fd66f5f5'
    """
    return "".join(ALPHANUMS[ord(c) % len(ALPHANUMS)] for c in text)


def _plain(value: Any) -> Any:
    """A JSON-ready copy of a model value: dataclasses as dicts, mappings as dicts."""
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, PodTemplate):
        return _plain_template(value)
    fields = getattr(type(value), "__dataclass_fields__", None)
    if fields is not None:
        return {name: _plain(getattr(value, name)) for name in fields}
    if isinstance(value, FrozenDict | dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, IPv4Address | IPv4Network):
        return str(value)
    return value


def _plain_template(t: PodTemplate) -> dict:
    """PodTemplate spelled out field by field: thousands of templates are hashed at scale."""
    return {
        "labels": dict(t.labels),
        "annotations": dict(t.annotations),
        "containers": [
            {
                "name": c.name,
                "image": c.image,
                "ports": [[p.container_port, p.name, p.protocol, p.host_port] for p in c.ports],
                "requests": [c.requests.cpu_m, c.requests.memory, c.requests.pods],
                "init": c.init,
            }
            for c in t.containers
        ],
        "nodeName": t.node_name,
        "nodeSelector": dict(t.node_selector),
        "tolerations": [[x.key, x.operator, x.value, x.effect] for x in t.tolerations],
        "hostNetwork": t.host_network,
        "hostname": t.hostname,
        "subdomain": t.subdomain,
        "dnsPolicy": t.dns_policy,
    }


def canonical_json(value: Any) -> str:
    """The canonical text hashed for template hashes: sorted keys, no blanks."""
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"))


def template_hash(template: Any, collision_count: int | None = None) -> str:
    """``pod-template-hash`` of a template, as ComputeHash forms it (FNV-1a -> decimal -> safe).

    >>> h = template_hash({"labels": {"app": "web"}})
    >>> h == template_hash({"labels": {"app": "web"}}), set(h) <= set("456789bcdf")
    (True, True)
    """
    data = canonical_json(template).encode()
    if collision_count is not None:
        # ComputeHash appends the collision count as 8 little-endian bytes (4 used).
        data += (collision_count & 0xFFFFFFFF).to_bytes(4, "little") + b"\0\0\0\0"
    return safe_encode(str(fnv32a(data)))


_TO_ALPHANUMS = bytes(ord(ALPHANUMS[b % len(ALPHANUMS)]) for b in range(256))


def suffix(seed: str, length: int = GENERATED_SUFFIX) -> str:
    """``length`` characters of ALPHANUMS derived from ``seed`` (a stand-in for rand.String).

    >>> suffix("default/web-6d4cf56db6#0") == suffix("default/web-6d4cf56db6#0")
    True
    """
    return hashlib.sha256(seed.encode()).digest()[:length].translate(_TO_ALPHANUMS).decode()


class NameGenerator:
    """generateName for one kind: ``base`` + 5 characters, never a name already taken.

    Deterministic: the n-th name asked for ``base`` with the same ``seed`` is always the same;
    a collision (two seeds giving one name) draws again with a counter, as the API server's
    create retry would.
    """

    __slots__ = ("_taken",)

    def __init__(self, taken: set[str] | None = None) -> None:
        self._taken: set[str] = taken if taken is not None else set()

    def reserve(self, namespace: str, name: str) -> bool:
        """Mark a name as taken; False when it already was."""
        key = f"{namespace}/{name}"
        if key in self._taken:
            return False
        self._taken.add(key)
        return True

    def generate(self, namespace: str, base: str, seed: str) -> str:
        base = base[:MAX_GENERATED_BASE]
        attempt = 0
        while True:
            name = base + suffix(
                f"{namespace}/{seed}" if not attempt else f"{namespace}/{seed}~{attempt}"
            )
            if self.reserve(namespace, name):
                return name
            attempt += 1
