"""Probe files (SPEC section 4): a YAML list of connections, each with what should happen.

Every key is checked where it stands: an unknown key, a wrong type or a missing end is reported
with file, line and column, all problems of the file at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from podnet.errors import InputError, Problem, did_you_mean
from podnet.load.yamlpos import YMap, YScalar, YSeq, parse_yaml, plain
from podnet.model.base import Pos

KEYS = (
    "from", "from_node", "from_ip", "at_node", "to", "service", "to_ip", "via", "port",
    "protocol", "target_port", "expect", "deny_kind", "endpoints", "masq", "note",
)  # fmt: skip
EXPECT_KEYS = ("expect", "deny_kind", "endpoints", "masq")


@dataclass(frozen=True, slots=True)
class Probe:
    """One connection to try, as the probe file states it (``raw``: the mapping as written)."""

    index: int
    pos: Pos
    raw: tuple  # ((key, value), ...) in file order, plain data
    src: str | None = None  # NS/POD
    from_node: str | None = None
    from_ip: IPv4Address | None = None
    at_node: str | None = None
    to: str | None = None
    service: str | None = None
    to_ip: IPv4Address | None = None
    port: int | None = None
    protocol: str = "TCP"
    expect: str | None = None
    deny_kind: str | None = None
    endpoints: tuple[str, ...] | None = None
    masq: bool | None = None

    def as_dict(self) -> dict:
        return dict(self.raw)


def _scalar(node, types, what, problems, key_pos, path):
    if (
        not isinstance(node, YScalar)
        or not isinstance(node.value, types)
        or isinstance(node.value, bool)
        and bool not in types
    ):
        found = type(plain(node)).__name__
        problems.append(
            Problem(
                f"{key_pos[1]} must be {what} (found {found} {plain(node)!r})",
                node.pos if node is not None else key_pos[0],
                path,
            )
        )
        return None
    return node.value


def load_probes(path: str) -> tuple[Probe, ...]:
    """Read and validate a probe file. Raises InputError with every problem found."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise InputError(
            Problem(
                f"cannot read probe file: {e.strerror}",
                path=path,
                hint="give the path of a YAML list of probes",
            )
        ) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise InputError(
            Problem(
                f"not UTF-8 text (byte 0x{data[e.start]:02x})",
                Pos(path, line, col),
                hint="save the file as UTF-8",
            )
        ) from None
    docs, problems = parse_yaml(text, path)
    if problems:
        raise InputError(problems)
    roots = [d.root for d in docs if d.root is not None]
    if len(roots) != 1 or not isinstance(roots[0], YSeq):
        pos = roots[0].pos if roots else Pos(path, 1, 1)
        raise InputError(
            Problem(
                "a probe file is one YAML list of probes",
                pos,
                hint="- {from: default/a, to: default/b, port: 80, expect: allow}",
            )
        )
    probes = []
    for i, item in enumerate(roots[0].items):
        p = _probe(i, item, problems)
        if p is not None:
            probes.append(p)
    if problems:
        raise InputError(problems)
    return tuple(probes)


def _probe(i: int, node, problems: list[Problem]) -> Probe | None:
    path = f"[{i}]"
    if not isinstance(node, YMap):
        problems.append(
            Problem(
                "a probe is a mapping", node.pos, path, hint="{from: NS/POD, to: NS/POD, port: 80}"
            )
        )
        return None
    before = len(problems)
    fields: dict = {}
    for key, (kpos, value) in node.entries.items():
        kpath = f"{path}.{key}"
        if key not in KEYS:
            problems.append(
                Problem(
                    f"unknown probe key '{key}'",
                    kpos,
                    kpath,
                    hint=did_you_mean(key, KEYS) or "keys: " + ", ".join(KEYS),
                )
            )
            continue
        kp = (kpos, key)
        if key in ("from", "to", "service", "from_node", "at_node", "via", "note", "target_port"):
            v = _scalar(value, (str, int), "a string", problems, kp, kpath)
            fields[key] = None if v is None else str(v)
        elif key in ("from_ip", "to_ip"):
            v = _scalar(value, (str,), "an IPv4 address", problems, kp, kpath)
            if v is not None:
                try:
                    fields[key] = IPv4Address(v)
                except ValueError:
                    problems.append(Problem(f"'{v}' is not an IPv4 address", value.pos, kpath))
        elif key == "port":
            v = _scalar(value, (int,), "a port number", problems, kp, kpath)
            if v is not None and not 0 < v < 65536:
                problems.append(Problem(f"port {v} is outside 1-65535", value.pos, kpath))
            fields[key] = v
        elif key == "protocol":
            v = _scalar(value, (str,), "TCP, UDP or SCTP", problems, kp, kpath)
            if v is not None and v.upper() not in ("TCP", "UDP", "SCTP"):
                problems.append(
                    Problem(f"unknown protocol '{v}' (expected TCP, UDP or SCTP)", value.pos, kpath)
                )
            fields[key] = (v or "TCP").upper()
        elif key == "expect":
            v = _scalar(value, (str,), "allow or deny", problems, kp, kpath)
            if v is not None and v not in ("allow", "deny"):
                problems.append(
                    Problem(f"expect must be allow or deny (found '{v}')", value.pos, kpath)
                )
            fields[key] = v
        elif key == "deny_kind":
            v = _scalar(value, (str,), "reject or drop", problems, kp, kpath)
            if v is not None and v not in ("reject", "drop"):
                problems.append(
                    Problem(f"deny_kind must be reject or drop (found '{v}')", value.pos, kpath)
                )
            fields[key] = v
        elif key == "masq":
            fields[key] = _scalar(value, (bool,), "true or false", problems, kp, kpath)
        elif key == "endpoints":
            if not isinstance(value, YSeq) or not all(
                isinstance(x, YScalar) and isinstance(x.value, str) for x in value.items
            ):
                problems.append(
                    Problem("endpoints must be a list of NS/POD names", value.pos, kpath)
                )
            else:
                fields[key] = tuple(x.value for x in value.items)
    sources = [k for k in ("from", "from_node", "from_ip") if k in node.entries]
    if len(sources) != 1:
        problems.append(
            Problem(
                "a probe needs exactly one of from, from_node, from_ip"
                + (f" (found {', '.join(sources)})" if sources else ""),
                node.pos,
                path,
            )
        )
    if "from_ip" in node.entries and "at_node" not in node.entries:
        problems.append(
            Problem(
                "from_ip needs at_node: the node where the outside client's packet enters",
                node.pos,
                path,
            )
        )
    if not any(k in node.entries for k in ("to", "service", "to_ip")):
        problems.append(
            Problem("a probe needs a destination: to, service or to_ip", node.pos, path)
        )
    if len(problems) > before:
        return None
    raw = tuple((k, plain(v)) for k, (_, v) in node.entries.items())
    return Probe(
        index=i, pos=node.pos, raw=raw, src=fields.get("from"), from_node=fields.get("from_node"),
        from_ip=fields.get("from_ip"), at_node=fields.get("at_node"), to=fields.get("to"),
        service=fields.get("service"), to_ip=fields.get("to_ip"), port=fields.get("port"),
        protocol=fields.get("protocol", "TCP"), expect=fields.get("expect"),
        deny_kind=fields.get("deny_kind"), endpoints=fields.get("endpoints"), masq=fields.get("masq"),
    )  # fmt: skip
