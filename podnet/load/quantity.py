"""Kubernetes resource quantities ("500m", "8Gi", "1.5", "1e3").

Grammar from k8s.io/apimachinery pkg/api/resource/quantity.go:
``<signedNumber><suffix>`` with suffix a binary SI one (Ki Mi Gi Ti Pi Ei), a decimal SI one
(n u m "" k M G T P E) or a decimal exponent (e3, E-2). Values are kept exact (Fraction); like
Quantity.Value() and MilliValue(), conversions to integers round up.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}
_RE = re.compile(
    r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+|[numkMGTPE]?)"
)


def parse_quantity(text: str | int | float) -> Fraction:
    """The exact value of a quantity; ValueError when it is not one.

    >>> parse_quantity("500m"), parse_quantity("8Gi") == 8 * 2**30, parse_quantity("1e3")
    (Fraction(1, 2), True, Fraction(1000, 1))
    >>> parse_quantity(4)
    Fraction(4, 1)
    """
    if isinstance(text, bool):
        raise ValueError("a boolean is not a quantity")
    if isinstance(text, int):
        return Fraction(text)
    if isinstance(text, float):
        if not math.isfinite(text):
            raise ValueError("not a finite number")
        return Fraction(str(text))
    m = _RE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a quantity")
    number, suffix = Fraction(m.group(1)), m.group(2)
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix[:1] in ("e", "E"):
        exp = int(suffix[1:])
        if abs(exp) > 60:
            raise ValueError(f"{text!r}: exponent out of range")
        return number * Fraction(10) ** exp
    return number * _DECIMAL[suffix]


def ceil_int(value: Fraction) -> int:
    """Round up to an integer, as Quantity.Value() does.

    >>> ceil_int(Fraction(1, 3)), ceil_int(Fraction(-1, 3))
    (1, 0)
    """
    return math.ceil(value)
