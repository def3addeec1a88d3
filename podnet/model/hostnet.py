"""A host's /32 network, made without the stdlib's parsing constructor.

The policy agent puts every Pod in /32 members of its ipsets (150,000 of them at Kubernetes'
tested limit) and every namespace has /32 local routes. ``IPv4Network((ip, 32))`` splits and
checks its argument, builds the address twice and the mask once, in Python: 6 µs, most of a
second at 150,000 Pods. :func:`host_network` sets the attributes that constructor sets for a /32
(``network_address``, ``netmask``, ``_prefixlen`` and ``hosts``, Lib/ipaddress.py
``IPv4Network.__init__``), from an address already made. Whether the two agree is checked once,
on this interpreter, when the module loads: if any attribute, comparison, hash or text differs,
:func:`host_network` is the stdlib's constructor itself.

>>> from ipaddress import IPv4Address
>>> n = host_network(IPv4Address("10.244.1.2"))
>>> n == IPv4Network("10.244.1.2/32"), str(n), n.prefixlen, n.hosts()
(True, '10.244.1.2/32', 32, [IPv4Address('10.244.1.2')])
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network

_ALL_ONES = IPv4Network("0.0.0.0/32").netmask
_new = object.__new__


def _made(ip: IPv4Address) -> IPv4Network:
    net = _new(IPv4Network)
    net.network_address = ip
    net.netmask = _ALL_ONES
    net._prefixlen = 32
    # the stdlib sets a /32's hosts() to the address alone (its own iterator would skip it)
    net.hosts = lambda: [ip]
    return net


def _constructed(ip: IPv4Address) -> IPv4Network:
    return IPv4Network((int(ip), 32))


def _agree() -> bool:
    """Whether :func:`_made` gives what the constructor gives, on this interpreter."""
    for text in ("10.244.1.2", "0.0.0.0", "255.255.255.255"):
        ip = IPv4Address(text)
        a, b = _made(ip), _constructed(ip)
        if vars(a).keys() != vars(b).keys():
            return False
        if (a, hash(a), str(a), repr(a), a.hosts(), a.broadcast_address, a.hostmask) != (
            b, hash(b), str(b), repr(b), b.hosts(), b.broadcast_address, b.hostmask
        ):  # fmt: skip
            return False
        if not (a == b and b == a and a.subnet_of(b) and ip in a and list(a) == list(b)):
            return False
    return True


host_network: Callable[[IPv4Address], IPv4Network] = _made if _agree() else _constructed
"""``IPv4Network((ip, 32))`` for an IPv4Address ``ip``, equal in every respect, faster."""
