"""Values inside iptables rule texts: words, numbers, marks, addresses, ports, probabilities,
and the error raised for a rule the kernel would refuse or podnet cannot model."""

from __future__ import annotations

import functools
import re
import shlex
from fractions import Fraction
from ipaddress import IPv4Address, IPv4Network

from podnet.errors import InputError, Problem

MASK32 = 0xFFFFFFFF


class RuleError(InputError):
    """A rule text the kernel would refuse (or that podnet cannot model), or an invalid ruleset."""


def _fail(message: str, text: str | None = None, hint: str | None = None) -> RuleError:
    if text is not None:
        message = f"{message} in rule '{text}'"
    return RuleError(Problem(message, hint=hint))


def _parse_int(tok: str, text: str, what: str) -> int:
    try:
        return int(tok, 0)
    except ValueError:
        raise _fail(f"bad {what} {tok!r}", text) from None


def _parse_mark(tok: str, text: str) -> tuple[int, int | None]:
    value, _, mask = tok.partition("/")
    v = _parse_int(value, text, "mark value")
    m = _parse_int(mask, text, "mark mask") if mask else None
    if v > MASK32 or (m is not None and m > MASK32) or v < 0:
        raise _fail(f"mark {tok!r} out of range", text)
    return v, m


# a dotted quad's octet, 0 to 255 without a leading zero (which ipaddress refuses too)
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_DOTTED = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}(?:/([0-9]{{1,2}}))?")


def _parse_net(tok: str, text: str) -> tuple[int, int, int]:
    """``(network, netmask, prefixlen)`` of an address or network, as ints."""
    hit = _dotted_net(tok)
    if hit is not None:
        return hit
    net = _parse_network(tok, text)
    return int(net.network_address), int(net.netmask), net.prefixlen


@functools.lru_cache(maxsize=1 << 16)
def _dotted_net(tok: str) -> tuple[int, int, int] | None:
    """:func:`_parse_net` of the plain dotted form, None for any other (cached: the same
    addresses recur in many rules)."""
    m = _DOTTED.fullmatch(tok)
    if m is not None:
        a, b, c, d, plen = m.groups()  # (the pattern admits only octets of 0 to 255)
        bits = 32 if plen is None else int(plen)
        if bits <= 32:
            ip = (int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d)
            mask = (MASK32 << (32 - bits)) & MASK32
            return ip & mask, mask, bits
    return None


def _parse_network(tok: str, text: str) -> IPv4Network:
    addr, slash, mask = tok.partition("/")
    try:
        if slash and "." in mask:
            ones = bin(int(IPv4Address(mask))).count("1")
            net = IPv4Network(f"{addr}/{ones}", strict=False)
            if int(net.netmask) != int(IPv4Address(mask)):
                raise ValueError(mask)
            return net
        return IPv4Network(tok, strict=False)
    except ValueError:
        raise _fail(f"bad address {tok!r} (expected an IPv4 address[/mask])", text) from None


def _parse_port(tok: str, text: str) -> int:
    if not tok.isdigit() or int(tok) > 65535:
        raise _fail(f"bad port {tok!r} (expected 0-65535)", text)
    return int(tok)


def _parse_range(tok: str, text: str) -> tuple[int, int]:
    lo, colon, hi = tok.partition(":")
    a = _parse_port(lo, text) if lo else 0
    b = (_parse_port(hi, text) if hi else 65535) if colon else a
    if a > b:
        raise _fail(f"bad port range {tok!r}", text)
    return a, b


def _parse_iface(tok: str) -> tuple[str, bool]:
    if tok.endswith("+"):
        return tok[:-1], True
    return tok, False


@functools.lru_cache(maxsize=4096)
def parse_probability(tok: str) -> Fraction:
    """The exact probability a printed ``--probability`` stands for.

    kube-proxy writes ``%0.10f`` of ``1/k`` (pkg/proxy/iptables/proxier.go ``probability``) and
    ``iptables-save`` prints the kernel's 31-bit threshold back as ``%.11f`` of ``n/2^31``
    (extensions/libxt_statistic.c), so the text is within 5e-11 of 1/k, or within
    2^-32 + 5e-12 of it. The kernel draws against that threshold, but the intent -- and what
    the traces must show exactly -- is 1/k; branches must sum to exactly 1.

    >>> parse_probability("0.3333333333"), parse_probability("0.33333333349")
    (Fraction(1, 3), Fraction(1, 3))
    >>> parse_probability("0.25"), parse_probability("0.1234567")
    (Fraction(1, 4), Fraction(1234567, 10000000))
    """
    exact = Fraction(tok)
    if not 0 <= exact <= 1:
        raise ValueError(tok)
    if exact in (0, 1):
        return exact
    k = round(1 / exact)
    if k > 0 and abs(exact - Fraction(1, k)) <= Fraction(1, 2**32) + Fraction(5, 10**12):
        return Fraction(1, k)
    near = exact.limit_denominator(10**6)
    if abs(exact - near) <= Fraction(5, 10**11) and near != exact and len(tok) >= 12:
        return near
    return exact


_QUOTED_WORD = re.compile(r'(?:[^\s"]+|"[^"]*")+')
# Words of plain characters and "..." or '...' parts (POSIX quoting without backslashes).
_WORD = re.compile(r"""(?:[^\s"']+|"[^"]*"|'[^']*')+""")
_QUOTED_LINE = re.compile(rf"\s*(?:{_WORD.pattern}(?:\s+{_WORD.pattern})*)?\s*")
_PART = re.compile(r"""([^\s"']+)|"([^"]*)"|'([^']*)'""")


def split_words(text: str) -> list[str]:
    """Split a rule into words with POSIX shell quoting, as iptables-restore reads it.

    >>> split_words('-m comment --comment "ns1/svc1:p80 cluster IP" -j ACCEPT')
    ['-m', 'comment', '--comment', 'ns1/svc1:p80 cluster IP', '-j', 'ACCEPT']
    """
    # Fast paths for the common shapes (shlex costs ~0.2 ms a rule, and a big cluster has
    # 100,000s of rule texts); backslashes, and quotes that do not pair, go to shlex.
    if "\\" in text:
        return shlex.split(text, posix=True)
    if "'" in text:
        if _QUOTED_LINE.fullmatch(text) is None:
            return shlex.split(text, posix=True)
        return ["".join(a or b or c for a, b, c in _PART.findall(w)) for w in _WORD.findall(text)]
    if '"' not in text:
        return text.split()
    if text.count('"') % 2:
        raise ValueError("No closing quotation")
    return [w.replace('"', "") for w in _QUOTED_WORD.findall(text)]
