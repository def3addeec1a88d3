"""The SRC and DST grammar of ``podnet trace`` (SPEC section 2), parsed into plain references.

Parsing knows nothing of the cluster; resolving a reference against it is the engine's job
(podnet.trace.resolve). Errors point at the bad part with a caret.

>>> parse_src("shop/frontend", "default")
SrcRef(kind='pod', namespace='shop', name='frontend', ip=None, node=None, text='shop/frontend')
>>> parse_dst("svc/backend:http", "default")
DstRef(kind='svc', namespace='default', name='backend', ip=None, port='http', text='svc/backend:http')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address

from podnet.errors import Problem, UsageError

_NAME = r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?"
_NAME_RE = re.compile(rf"^{_NAME}$")
_PORT_RE = re.compile(r"^([0-9]{1,5}|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$")


@dataclass(frozen=True, slots=True)
class SrcRef:
    """Where a packet starts: ``pod``, ``deploy``, ``node`` or ``ext`` (outside the cluster)."""

    kind: str
    namespace: str | None = None
    name: str | None = None
    ip: IPv4Address | None = None
    node: str | None = None
    text: str = ""


@dataclass(frozen=True, slots=True)
class DstRef:
    """Where a packet goes: ``pod``, ``svc``, ``node``, ``ip``, ``localhost`` or ``dns`` (a name)."""

    kind: str
    namespace: str | None = None
    name: str | None = None
    ip: IPv4Address | None = None
    port: str | None = None  # a number or a port name, as written
    text: str = ""


def caret_error(what: str, text: str, start: int, end: int, message: str, hint: str) -> UsageError:
    """A usage error that shows ``text`` with a caret line under ``text[start:end]``.

    >>> print(caret_error("DST", "svc/Bad:80", 4, 7, "not a valid name", "names are lower case"))
    error: DST: not a valid name
        svc/Bad:80
            ^^^
      hint: names are lower case
    """
    width = max(1, end - start)
    shown = f"{_printable(message)}\n    {_printable(text)}\n    {' ' * start}{'^' * width}"
    return UsageError(Problem(shown, path=what, hint=hint))


def _printable(text: str) -> str:
    """``text`` with every unprintable character (a newline, a tab, an escape) shown as '?',
    one for one, so the caret line still lines up and the message stays on its lines.

    >>> _printable("a\\tb\\n")
    'a?b?'
    """
    return "".join(c if c.isprintable() else "?" for c in text)


def _ns_name(what: str, text: str, offset: int, body: str, default_ns: str) -> tuple[str, str]:
    parts = body.split("/")
    if len(parts) > 2 or not all(parts):
        raise caret_error(
            what, text, offset, offset + len(body), f"cannot read '{body}'", "write NAME or NS/NAME"
        )
    ns, name = parts if len(parts) == 2 else [default_ns, parts[0]]
    pos = offset
    for part in parts:
        if not _NAME_RE.match(part):
            raise caret_error(
                what,
                text,
                pos,
                pos + len(part),
                f"'{part}' is not a valid Kubernetes name",
                "names are lower-case letters, digits, '-' and '.'",
            )
        pos += len(part) + 1
    return ns, name


def _ip(what: str, text: str, start: int, value: str) -> IPv4Address:
    try:
        return IPv4Address(value)
    except ValueError:
        raise caret_error(
            what,
            text,
            start,
            start + len(value),
            f"'{value}' is not an IPv4 address",
            "write it as four numbers, e.g. 203.0.113.7",
        ) from None


def parse_src(text: str, default_ns: str = "default") -> SrcRef:
    """Parse SRC: ``[NS/]POD``, ``pod/[NS/]POD``, ``deploy/[NS/]NAME``, ``node/NODE``,
    ``ext/IP@NODE``.

    >>> parse_src("ext/203.0.113.7@node-1").ip
    IPv4Address('203.0.113.7')
    """
    if not text:
        raise UsageError(Problem("SRC is empty", path="SRC", hint="e.g. default/frontend"))
    kind, _, rest = text.partition("/")
    if kind == "node" and rest:
        _, name = _ns_name("SRC", text, 5, rest, "")
        return SrcRef("node", name=name, node=name, text=text)
    if kind == "ext" and rest:
        ip_text, at, node = rest.partition("@")
        if not at or not node:
            raise caret_error(
                "SRC",
                text,
                4,
                len(text),
                "an outside client needs the node its packet enters at",
                "write ext/IP@NODE, e.g. ext/203.0.113.7@node-1",
            )
        ip = _ip("SRC", text, 4, ip_text)
        _ns_name("SRC", text, 5 + len(ip_text), node, "")
        return SrcRef("ext", ip=ip, node=node, text=text)
    if kind in ("deploy", "deployment") and rest:
        ns, name = _ns_name("SRC", text, len(kind) + 1, rest, default_ns)
        return SrcRef("deploy", namespace=ns, name=name, text=text)
    if kind in ("pod", "po") and rest:
        ns, name = _ns_name("SRC", text, len(kind) + 1, rest, default_ns)
        return SrcRef("pod", namespace=ns, name=name, text=text)
    ns, name = _ns_name("SRC", text, 0, text, default_ns)
    return SrcRef("pod", namespace=ns, name=name, text=text)


def _split_port(what: str, text: str, body: str, offset: int) -> tuple[str, str | None]:
    if ":" not in body:
        return body, None
    head, _, port = body.rpartition(":")
    start = offset + len(head) + 1
    if not _PORT_RE.match(port) or (port.isdigit() and not 0 < int(port) < 65536):
        raise caret_error(
            what,
            text,
            start,
            start + max(1, len(port)),
            f"'{port}' is not a port",
            "a port is a number from 1 to 65535 or a port name",
        )
    return head, port


def parse_dst(text: str, default_ns: str = "default") -> DstRef:
    """Parse DST: ``[NS/]POD[:PORT]``, ``svc/[NS/]NAME[:PORT]``, ``node/NODE:PORT``, ``IP:PORT``,
    ``localhost:PORT``, ``NAME[.NS[.svc.DOMAIN]]:PORT``.

    >>> parse_dst("10.96.0.10:53", "default").kind
    'ip'
    """
    if not text:
        raise UsageError(Problem("DST is empty", path="DST", hint="e.g. svc/backend:80"))
    kind, slash, rest = text.partition("/")
    if slash and kind in ("svc", "service", "node", "pod", "po"):
        body, port = _split_port("DST", text, rest, len(kind) + 1)
        if kind == "node":
            _, name = _ns_name("DST", text, 5, body, "")
            return DstRef("node", name=name, port=port, text=text)
        ns, name = _ns_name("DST", text, len(kind) + 1, body, default_ns)
        return DstRef(
            "svc" if kind in ("svc", "service") else "pod", ns, name, port=port, text=text
        )
    body, port = _split_port("DST", text, text, 0)
    if body == "localhost":
        return DstRef("localhost", port=port, text=text)
    if re.fullmatch(r"[0-9.]+", body):
        return DstRef("ip", ip=_ip("DST", text, 0, body), port=port, text=text)
    if "/" in body:
        ns, name = _ns_name("DST", text, 0, body, default_ns)
        return DstRef("pod", ns, name, port=port, text=text)
    if not _NAME_RE.match(body):
        raise caret_error(
            "DST",
            text,
            0,
            len(body),
            f"'{body}' is not a Pod, Service, address or DNS name",
            "write POD, NS/POD, svc/NAME, IP:PORT or NAME.NS:PORT",
        )
    if "." in body:
        return DstRef("dns", name=body, port=port, text=text)
    # A bare name is a Pod of the namespace (SPEC); the resolver falls back to a Service name.
    return DstRef("pod", default_ns, body, port=port, text=text)
