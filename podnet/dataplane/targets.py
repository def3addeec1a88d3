"""What a matching iptables rule does: the target extensions podnet models and their options."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address

from podnet.dataplane.rulevalues import MASK32, _dotted_net, _fail, _parse_mark, _parse_port

# --------------------------------------------------------------------------------------------
# Targets

STANDARD_TARGETS = frozenset({"ACCEPT", "DROP", "RETURN"})
TERMINAL_NAT = frozenset({"DNAT", "SNAT", "MASQUERADE"})
# Target extensions podnet does not model: refused with a clear message, never taken as chains.
UNSUPPORTED_TARGETS = frozenset(
    {
        "CONNMARK",
        "TCPMSS",
        "CHECKSUM",
        "QUEUE",
        "NFQUEUE",
        "SET",
        "CLASSIFY",
        "TEE",
        "REDIRECT",
        "TPROXY",
        "NETMAP",
        "DSCP",
        "TOS",
        "TTL",
        "ULOG",
        "AUDIT",
        "SECMARK",
        "CONNSECMARK",
        "HMARK",
        "IDLETIMER",
        "LED",
        "SYNPROXY",
        "CLUSTERIP",
        "ECN",
    }
)
_TARGET_OPTS: dict[str, dict[str, int]] = {
    "ACCEPT": {},
    "DROP": {},
    "RETURN": {},
    "TRACE": {},
    "NOTRACK": {},
    "REJECT": {"--reject-with": 1},
    "DNAT": {"--to-destination": 1, "--random": 0, "--random-fully": 0, "--persistent": 0},
    "SNAT": {"--to-source": 1, "--random": 0, "--random-fully": 0, "--persistent": 0},
    "MASQUERADE": {"--to-ports": 1, "--random": 0, "--random-fully": 0},
    "MARK": {
        "--set-xmark": 1,
        "--set-mark": 1,
        "--or-mark": 1,
        "--xor-mark": 1,
        "--and-mark": 1,
    },
    "LOG": {
        "--log-prefix": 1,
        "--log-level": 1,
        "--log-tcp-sequence": 0,
        "--log-tcp-options": 0,
        "--log-ip-options": 0,
        "--log-uid": 0,
        "--log-macdecode": 0,
    },
    "CT": {"--notrack": 0},
    # NFLOG hands a copy to userspace (xt_NFLOG.c) and lets the packet go on, like LOG.
    "NFLOG": {
        "--nflog-group": 1,
        "--nflog-prefix": 1,
        "--nflog-range": 1,
        "--nflog-size": 1,
        "--nflog-threshold": 1,
    },
}


@dataclass(frozen=True, slots=True)
class Target:
    """What a matching rule does.

    ``kind``: ACCEPT, DROP, RETURN, REJECT, DNAT, SNAT, MASQUERADE, MARK, LOG, TRACE, NOTRACK
    (also for ``CT --notrack``), JUMP or GOTO (``chain`` set). MARK is kept as the kernel's
    xt_mark_tginfo2 pair: ``mark = (mark & ~mark_mask) ^ mark_value``.
    """

    kind: str
    chain: str | None = None
    reject_with: str | None = None
    to_addr: IPv4Address | None = None
    to_port: int | None = None
    random_fully: bool = False
    mark_value: int = 0
    mark_mask: int = 0
    text: str = ""
    to_int: int = 0  # to_addr as an int, for the walk

    def apply_mark(self, mark: int) -> int:
        """The packet mark after this MARK target.

        >>> Target("MARK", mark_value=0x4000, mark_mask=0).apply_mark(0x4001)  # --xor-mark 0x4000
        1
        """
        return (mark & ~self.mark_mask & MASK32) ^ self.mark_value


def _nat_target(kind: str, opt: str, opts: dict, text: str, **extra) -> Target:
    """DNAT ``--to-destination`` / SNAT ``--to-source`` ``IP[:PORT]``: an address is required."""
    if opt not in opts:
        raise _fail(f"{kind} needs {opt}", text)
    ip, port = _addr_port(opts[opt][0], text, opt)
    if ip is None:
        raise _fail(f"{kind} {opt} needs an address", text)
    return Target(
        kind, to_addr=ip, to_port=port, text=f"{kind} {opts[opt][0]}", to_int=int(ip), **extra
    )


def _addr_port(val: str, text: str, opt: str) -> tuple[IPv4Address | None, int | None]:
    addr, _, port = val.partition(":")
    addr = addr.split("-")[0]  # a range: the first address (what a single connection gets)
    ip = None
    if addr:
        # the plain dotted form through the shared parser (cached); others as ipaddress reads them
        hit = _dotted_net(addr) if "/" not in addr else None
        try:
            ip = IPv4Address(hit[0] if hit is not None else addr)
        except ValueError:
            raise _fail(f"bad {opt} address {addr!r}", text) from None
    pt = _parse_port(port.split("-")[0], text) if port else None
    return ip, pt


def _target(
    text: str, name: str | None, opts: Mapping[str, tuple[str, ...]], goto: bool
) -> Target | None:
    if name is None:
        return None
    if goto:
        return Target("GOTO", chain=name, text=f"goto {name}")
    if name in UNSUPPORTED_TARGETS:
        raise _fail(f"target {name!r} is not modelled", text)
    if name not in _TARGET_OPTS:
        return Target("JUMP", chain=name, text=name)
    if name == "REJECT":
        rw = opts.get("--reject-with", ("icmp-port-unreachable",))[0]
        return Target("REJECT", reject_with=rw, text=f"REJECT --reject-with {rw}")
    if name == "DNAT":
        return _nat_target("DNAT", "--to-destination", opts, text)
    if name == "SNAT":
        return _nat_target("SNAT", "--to-source", opts, text, random_fully="--random-fully" in opts)
    if name == "MASQUERADE":
        port = None
        if "--to-ports" in opts:
            port = _parse_port(opts["--to-ports"][0].split("-")[0], text)
        return Target(
            "MASQUERADE", to_port=port, random_fully="--random-fully" in opts, text="MASQUERADE"
        )
    if name == "MARK":
        return _mark_target(text, opts)
    if name == "NFLOG":
        return Target("LOG", text="NFLOG")
    if name == "CT":
        if "--notrack" not in opts:
            raise _fail("CT is modelled only with --notrack", text)
        return Target("NOTRACK", text="CT --notrack")
    return Target(name, text=name)  # options were checked by the parser (LOG's are cosmetic)


def _mark_target(text: str, opts: Mapping[str, tuple[str, ...]]) -> Target:
    if len(opts) != 1:
        raise _fail("MARK needs exactly one of --set-xmark, --set-mark, --or-mark, ...", text)
    opt, (val,) = next(iter(opts.items()))
    v, m = _parse_mark(val, text)
    # libxt_MARK.c mark_tg_parse (revision 2): every form becomes (value, mask) of XMARK.
    if opt == "--set-xmark":
        value, mask = v, MASK32 if m is None else m
    elif opt == "--set-mark":
        value, mask = v, (MASK32 if m is None else m) | v
    elif m is not None:
        raise _fail(f"{opt} takes no mask", text)
    elif opt == "--or-mark":
        value, mask = v, v
    elif opt == "--xor-mark":
        value, mask = v, 0
    else:  # --and-mark
        value, mask = 0, ~v & MASK32
    return Target("MARK", mark_value=value, mark_mask=mask, text=f"MARK {opt} {val}")
