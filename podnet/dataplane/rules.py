"""Compile one iptables rule, as ``iptables-save`` prints it after ``-A CHAIN``, into a :class:`Rule`.

A compiled rule holds its deterministic matches in the order the kernel tests them (the IP header
part of ``struct ipt_entry`` first, then each ``-m`` match in the order written: see
net/ipv4/netfilter/ip_tables.c ``ipt_do_table``), the random part of a ``statistic`` match as an
exact probability, and its target. Matches read a small state object (``src``/``dst`` as ints,
``proto``, ``sport``, ``dport``, ``mark``, ``ctstate``, ``ctstatus``) and the hook context (see
:mod:`podnet.dataplane.netfilter`).

>>> r = compile_rule('-m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp '
...                  '-d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O')
>>> r.target.kind, r.target.chain, r.comment, r.key
('JUMP', 'KUBE-SVC-XPGD46QRK7WJZT7O', 'ns1/svc1:p80 cluster IP', (2887647273, 'tcp', 80))
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from ipaddress import IPv4Address
from typing import Any

from podnet.dataplane.matches import (
    ADDR_TYPES,
    CT_STATES,
    CT_STATUSES,
    PROTO_NUMBERS,
    AddrMatch,
    AddrTypeMatch,
    CtStateMatch,
    CtStatusMatch,
    FragMatch,
    IfaceMatch,
    MarkMatch,
    Match,
    MultiportMatch,
    PhysdevMatch,
    PktTypeMatch,
    PortMatch,
    ProtoMatch,
    RecentMatch,
    SetMatch,
)
from podnet.dataplane.rulevalues import (
    MASK32,
    RuleError,
    _fail,
    _parse_iface,
    _parse_int,
    _parse_mark,
    _parse_net,
    _parse_range,
    parse_probability,
    split_words,
)
from podnet.dataplane.targets import _TARGET_OPTS, UNSUPPORTED_TARGETS, Target, _target
from podnet.model.trace import fast_constructor

__all__ = ["Rule", "RuleError", "Target", "compile_rule", "parse_probability", "split_words"]

_PROTO_BY_NUMBER = {"0": "all", "6": "tcp", "17": "udp", "132": "sctp", "1": "icmp"}

# --------------------------------------------------------------------------------------------
# The compiled rule


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule ready to evaluate.

    ``matches`` are the deterministic conditions in kernel order; ``probability`` is the chance
    the ``statistic`` match (if any) lets the packet through; ``recent_set`` lists the
    ``(list, field, mask)`` an ``-m recent --set/--update`` records when the rule matches;
    ``key``/``port_key`` are conditions every matching packet must meet, used to index big chains:
    ``(dst as int, proto, dport)`` or ``(proto, dport)``; ``unconditional`` is the kernel's notion
    (no IP header condition, no match extension) used for TRACE's ``return``/``policy`` labels.
    """

    text: str
    matches: tuple[Match, ...]
    target: Target | None
    probability: Fraction | None = None
    comment: str | None = None
    recent_set: tuple[tuple[str, str, int], ...] = ()
    key: tuple[int, str, int] | None = None
    port_key: tuple[str, int] | None = None
    unconditional: bool = False
    checks: tuple[Callable[[Any, Any], bool], ...] = field(default=(), compare=False, repr=False)


# --------------------------------------------------------------------------------------------
# The parser

_GENERAL = {
    "-s": "src",
    "--source": "src",
    "--src": "src",
    "-d": "dst",
    "--destination": "dst",
    "--dst": "dst",
    "-i": "in",
    "--in-interface": "in",
    "-o": "out",
    "--out-interface": "out",
    "-p": "proto",
    "--protocol": "proto",
    "-m": "match",
    "--match": "match",
    "-j": "jump",
    "--jump": "jump",
    "-g": "goto",
    "--goto": "goto",
    "-f": "frag",
    "--fragment": "frag",
}
_PORT_OPTS = {
    "--sport": 1,
    "--source-port": 1,
    "--dport": 1,
    "--destination-port": 1,
}
_MODULE_OPTS: dict[str, dict[str, int]] = {
    "tcp": _PORT_OPTS,
    "udp": _PORT_OPTS,
    "sctp": _PORT_OPTS,
    "multiport": {
        "--dports": 1,
        "--destination-ports": 1,
        "--sports": 1,
        "--source-ports": 1,
        "--ports": 1,
    },
    "comment": {"--comment": 1},
    "mark": {"--mark": 1},
    "conntrack": {"--ctstate": 1, "--ctstatus": 1},
    "state": {"--state": 1},
    "addrtype": {"--src-type": 1, "--dst-type": 1, "--limit-iface-in": 0, "--limit-iface-out": 0},
    "statistic": {"--mode": 1, "--probability": 1, "--every": 1, "--packet": 1},
    "recent": {
        "--name": 1,
        "--set": 0,
        "--rcheck": 0,
        "--update": 0,
        "--seconds": 1,
        "--reap": 0,
        "--rttl": 0,
        "--mask": 1,
        "--rsource": 0,
        "--rdest": 0,
    },
    "physdev": {
        "--physdev-in": 1,
        "--physdev-out": 1,
        "--physdev-is-bridged": 0,
        "--physdev-is-in": 0,
        "--physdev-is-out": 0,
    },
    "set": {"--match-set": 2, "--set": 2},
    "nfacct": {"--nfacct-name": 1},
    "limit": {"--limit": 1, "--limit-burst": 1},
    "pkttype": {"--pkt-type": 1},
    # ICMP type match: podnet traces TCP, UDP and SCTP, which "-p icmp" already excludes.
    "icmp": {"--icmp-type": 1},
}


@dataclass(slots=True)
class _Module:
    name: str
    opts: list[tuple[str, tuple[str, ...], bool]] = field(default_factory=list)


@functools.cache
def compile_rule(text: str) -> Rule:
    """Compile a rule spec (``iptables-save`` text after ``-A CHAIN``); raise RuleError if the
    kernel would refuse it or podnet cannot model it. Cached: the same text recurs on every node.

    >>> compile_rule("-m frob --x 1")
    Traceback (most recent call last):
    ...
    podnet.dataplane.rulevalues.RuleError: error: unknown match module 'frob' in rule '-m frob --x 1'
    """
    shape = _shape(text)
    if shape is None:
        return _compile(text)
    key, addrs, comment, target, dport = shape
    proto = _SHAPES.get(key)
    if proto is None:
        rule = _compile(text)
        if len(_SHAPES) >= _SHAPES_MAX:
            _SHAPES.clear()
        _SHAPES[key] = rule
        return rule
    return _reshaped(proto, text, addrs, comment, target, dport)


# ---------------------------------------------------------------------------------- shapes
#
# Rules written per Pod, per endpoint or per node differ from one another only in the addresses
# of their -s/-d options ("-d 10.244.3.7/32 ..."), in comments naming the Pod or Service, and in
# the user chain or DNAT destination they end with (the policy agent's KUBE-ROUTER-* and
# KUBE-POD-FW-* chains, kube-proxy's KUBE-SEP-*, flannel's FLANNEL-POSTRTG). A comment is no
# condition, an address is one AddrMatch, a target one Target: a rule whose text has the shape
# of one compiled before is that rule with those values put in, each parsed by the parser's
# own functions, so it is what compiling the text gives (tests/test_rule_shapes.py checks it).

_SHAPES: dict[str, Rule] = {}
_SHAPES_MAX = 1 << 16
_IP = r"(?:0|[1-9][0-9]{0,2})(?:\.(?:0|[1-9][0-9]{0,2})){3}"
_HEAD = re.compile(
    rf"((?:! )?-s )({_IP}(?:/[0-9]{{1,2}})?) |((?:! )?-d )({_IP}(?:/[0-9]{{1,2}})?) "
)
_COMMENT = re.compile(r"""-m comment --comment ("[^"]*"|[^\s"']+)(?=\s|$)""")
_TAIL = re.compile(r" -j ([A-Za-z0-9_-]+)$| -j DNAT --to-destination ([0-9.:]+)$")
_MID = {opt: re.compile(rf" ((?:! )?{opt} )({_IP}(?:/[0-9]{{1,2}})?)(?= )") for opt in ("-s", "-d")}
_DPORT = re.compile(r"(?<!!) --dport ([0-9]{1,5})(?= |$)")


def _shape(text: str) -> tuple[str, tuple, str | None, tuple | None, str | None] | None:
    """(shape key, the -s/-d addresses as (field, text), the first comment, the target as
    (name, options), the one exact ``--dport``'s text), or None when the text has nothing to
    vary or is written in ways only the full parser reads (backslashes, single quotes outside a
    comment)."""
    key = text
    addrs = []
    at = 0
    for fld, group in (("src", 1), ("dst", 3)):
        m = _HEAD.match(key, at)
        if m is None or m.group(group) is None:
            continue
        tok = m.group(group + 1)
        addrs.append((fld, tok))
        head = f"{m.group(group)}\x00{_mask_of(tok)} "
        key = key[:at] + head + key[m.end() :]
        at += len(head)
    target = None
    # (each pattern below is tried only where its fixed text occurs: a scan of the text by the
    # regex engine costs several times the substring search. _TAIL can only match from the
    # last " -j ": neither alternative holds another one after its start)
    j = key.rfind(" -j ")
    t = _TAIL.match(key, j) if j >= 0 else None
    if t is not None:
        if t.group(1) is not None:
            name = t.group(1)
            if name not in _TARGET_OPTS and name not in UNSUPPORTED_TARGETS:
                target = (name, {})
                key = key[: t.start()] + " -j \x02"
        else:
            target = ("DNAT", {"--to-destination": (t.group(2),)})
            key = key[: t.start()] + " -j DNAT --to-destination \x02"
    comments = _COMMENT.findall(key) if "-m comment --comment " in key else ()
    comment = None
    if comments:
        first = comments[0]
        comment = first[1:-1] if first.startswith('"') else first
        key = _COMMENT.sub("-m comment --comment \x01", key)
    # -s/-d after other options (kube-proxy writes "-m comment ... -d CLUSTER-IP --dport N",
    # "... -s ENDPOINT-IP -j KUBE-MARK-MASQ"), looked for once comments are out of the text
    for fld, opt in (("src", "-s"), ("dst", "-d")):
        if any(f == fld for f, _ in addrs):
            continue
        m = _MID[opt].search(key) if f" {opt} " in key else None
        if m is not None:
            tok = m.group(2)
            addrs.append((fld, tok))
            key = f"{key[: m.start()]} {m.group(1)}\x00{_mask_of(tok)}{key[m.end() :]}"
    dport = None
    ports = _DPORT.findall(key) if " --dport " in key else ()
    if len(ports) == 1 and key.count("--d") == 1:  # one exact --dport, no other port option
        dport = ports[0]
        key = _DPORT.sub(" --dport \x03", key)
    if not addrs and not comments and target is None and dport is None:
        return None
    if "\\" in key or "'" in key or '"' in key:
        return None  # quoting that the full parser reads (shell rules)
    return key, tuple(addrs), comment, target, dport


def _mask_of(tok: str) -> str:
    """The ``/N`` of an address token, or "": kept in a shape's key, since the prefix length
    is part of the compiled rule (its mask, and whether the index may key it)."""
    slash = tok.find("/")
    return tok[slash:] if slash >= 0 else ""


def _reshaped(proto: Rule, text: str, addrs: tuple, comment, target, dport) -> Rule:
    matches = proto.matches
    key = proto.key
    port_key = proto.port_key
    if dport is not None:
        lo, hi = _parse_range(dport, text)
        at = next(
            i for i, m in enumerate(matches) if isinstance(m, PortMatch) and m.field == "dport"
        )
        matches = (*matches[:at], PortMatch("dport", lo, hi, False), *matches[at + 1 :])
        # (an exact --dport: in the shape's keys if its protocol gave it one)
        if key is not None:
            key = (key[0], key[1], lo)
        if port_key is not None:
            port_key = (port_key[0], lo)
    for fld, tok in addrs:
        net, mask, _ = _parse_net(tok, text)
        at = next(
            (i for i, m in enumerate(matches) if isinstance(m, AddrMatch) and m.field == fld), None
        )
        if at is None:
            continue  # 0.0.0.0/0: no condition, in the shape's rule too
        old = matches[at]
        matches = (*matches[:at], _new_addr(fld, net, mask, old.neg), *matches[at + 1 :])
        if fld == "dst" and key is not None:
            key = (net, key[1], key[2])  # an exact destination in the shape's rule: here too
    new_target = proto.target
    if target is not None:
        new_target = _target(text, target[0], target[1], False)
    return _new_rule(
        text,
        matches,
        new_target,
        proto.probability,
        comment,
        proto.recent_set,
        key,
        port_key,
        proto.unconditional,
        tuple(m.test for m in matches) if matches is not proto.matches else proto.checks,
    )


# a chain entered for the first time reshapes most of its rules: without the frozen __init__
_new_rule = fast_constructor(Rule)
_new_addr = fast_constructor(AddrMatch)


def _compile(text: str) -> Rule:
    try:
        toks = split_words(text)
    except ValueError as exc:
        raise _fail(f"cannot split rule into words ({exc})", text) from None
    header: dict[str, tuple[str, bool]] = {}
    modules: list[_Module] = []
    target_name: str | None = None
    target_opts: dict[str, tuple[str, ...]] = {}
    goto = False
    i, n = 0, len(toks)
    while i < n:
        tok = toks[i]
        neg = False
        if tok == "!":
            neg = True
            i += 1
            if i >= n:
                raise _fail("'!' at the end", text)
            tok = toks[i]
        i += 1
        kind = _GENERAL.get(tok)
        if kind is not None:
            if kind == "frag":
                header["frag"] = ("", neg)
                continue
            if i < n and toks[i] == "!" and kind in ("src", "dst", "in", "out", "proto"):
                neg, i = True, i + 1  # old "intrapositioned" negation: -s ! addr
            if i >= n:
                raise _fail(f"option {tok!r} needs a value", text)
            val = toks[i]
            i += 1
            if kind == "match":
                if neg:
                    raise _fail("'!' cannot negate '-m'", text)
                if val not in _MODULE_OPTS:
                    raise _fail(f"unknown match module {val!r}", text)
                modules.append(_Module(val))
            elif kind in ("jump", "goto"):
                if neg:
                    raise _fail(f"'!' cannot negate {tok!r}", text)
                if target_name is not None:
                    raise _fail("more than one target", text)
                target_name, goto = val, kind == "goto"
            else:
                if kind in header:
                    raise _fail(f"option {tok!r} given twice", text)
                header[kind] = (val, neg)
            continue
        if not tok.startswith("--"):
            raise _fail(f"unexpected word {tok!r}", text)
        # A module's or the target's option: the target first, then the latest loaded module.
        tspec = _TARGET_OPTS.get(target_name or "", {}) if not goto else {}
        owner: _Module | None = None
        nargs: int | None = None
        if tok in tspec:
            nargs = tspec[tok]
        else:
            for mod in reversed(modules):
                if tok in _MODULE_OPTS[mod.name]:
                    owner, nargs = mod, _MODULE_OPTS[mod.name][tok]
                    break
            else:
                proto = header.get("proto", ("", False))[0]
                if tok in _PORT_OPTS and proto in ("tcp", "udp", "sctp"):
                    # iptables loads the protocol's match implicitly for "-p tcp --dport 80".
                    owner = _Module(proto)
                    modules.append(owner)
                    nargs = 1
        if nargs is None:
            raise _fail(f"unknown option {tok!r}", text)
        if i + nargs > n:
            raise _fail(f"option {tok!r} needs {nargs} value(s)", text)
        args = tuple(toks[i : i + nargs])
        i += nargs
        if owner is None:
            if neg:
                raise _fail(f"'!' cannot negate target option {tok!r}", text)
            target_opts[tok] = args
        else:
            owner.opts.append((tok, args, neg))
    return _build(text, header, modules, target_name, target_opts, goto)


def _build(
    text: str,
    header: Mapping[str, tuple[str, bool]],
    modules: list[_Module],
    target_name: str | None,
    target_opts: Mapping[str, tuple[str, ...]],
    goto: bool,
) -> Rule:
    matches: list[Match] = []
    exact_dst: int | None = None
    proto: str | None = None
    for fld in ("src", "dst"):
        if fld in header:
            val, neg = header[fld]
            addr, mask, plen = _parse_net(val, text)
            if plen == 0 and not neg:
                continue  # 0.0.0.0/0 matches everything; iptables stores it as no condition
            matches.append(AddrMatch(fld, addr, mask, neg))
            if fld == "dst" and plen == 32 and not neg:
                exact_dst = addr
    for fld in ("in", "out"):
        if fld in header:
            val, neg = header[fld]
            name, prefix = _parse_iface(val)
            if len(val) > 15:
                raise _fail(f"interface name {val!r} longer than 15 characters", text)
            if prefix and not name:
                if neg:
                    matches.append(FragMatch(False))  # "! -i +" never matches
                continue
            matches.append(IfaceMatch(fld, name, prefix, neg))
    proto_neg = False
    if "proto" in header:
        val, proto_neg = header["proto"]
        val = _PROTO_BY_NUMBER.get(val, val.lower())
        if val not in PROTO_NUMBERS and val != "all":
            raise _fail(f"unknown protocol {val!r} (expected tcp, udp, sctp, icmp or all)", text)
        if val != "all":
            matches.append(ProtoMatch(val, proto_neg))
            proto = val
        elif proto_neg:
            matches.append(FragMatch(False))  # "! -p all" matches nothing
    if "frag" in header:
        matches.append(FragMatch(header["frag"][1]))
    header_count = len(matches)

    comment: str | None = None
    probability: Fraction | None = None
    recent_set: list[tuple[str, str, int]] = []
    exact_dport: int | None = None
    for mod in modules:
        opts = {o: (a, neg) for o, a, neg in mod.opts}
        name = mod.name
        if name in ("tcp", "udp", "sctp", "multiport"):
            allowed = (name,) if name != "multiport" else ("tcp", "udp", "sctp")
            if proto not in allowed or proto_neg:
                raise _fail(f"-m {name} needs -p {'|'.join(allowed)}", text)
        if name in ("tcp", "udp", "sctp"):
            for o, (a, neg) in opts.items():
                fld = "sport" if o in ("--sport", "--source-port") else "dport"
                lo, hi = _parse_range(a[0], text)
                matches.append(PortMatch(fld, lo, hi, neg))
                if fld == "dport" and lo == hi and not neg:
                    exact_dport = lo
        elif name == "multiport":
            if len(opts) != 1:
                raise _fail("-m multiport needs exactly one of --dports, --sports, --ports", text)
            (o, (a, neg)) = next(iter(opts.items()))
            fld = {"--ports": "any", "--sports": "sport", "--source-ports": "sport"}.get(o, "dport")
            ranges = tuple(_parse_range(p, text) for p in a[0].split(","))
            if len(ranges) > 15:
                raise _fail("-m multiport takes at most 15 ports", text)
            matches.append(MultiportMatch(fld, ranges, neg))
        elif name == "comment":
            if "--comment" not in opts:
                raise _fail("-m comment needs --comment", text)
            if comment is None:
                comment = opts["--comment"][0][0]
        elif name == "mark":
            if "--mark" not in opts:
                raise _fail("-m mark needs --mark", text)
            (a,), neg = opts["--mark"]
            v, m = _parse_mark(a, text)
            matches.append(MarkMatch(v, MASK32 if m is None else m, neg))
        elif name in ("conntrack", "state"):
            if not opts:
                raise _fail(f"-m {name} needs an option", text)
            for o, ((a,), neg) in opts.items():
                words = frozenset(a.split(","))
                known = CT_STATUSES if o == "--ctstatus" else CT_STATES
                if name == "state":
                    known = CT_STATES - {"SNAT", "DNAT"}
                bad = sorted(words - known)
                if bad:
                    raise _fail(f"unknown {o[2:]} {bad[0]!r}", text)
                if o == "--ctstatus":
                    matches.append(CtStatusMatch(words, neg))
                else:
                    matches.append(CtStateMatch(words, neg))
        elif name == "addrtype":
            for o in ("--src-type", "--dst-type"):
                if o in opts:
                    (a,), neg = opts[o]
                    words = frozenset(a.split(","))
                    bad = sorted(words - ADDR_TYPES)
                    if bad:
                        raise _fail(f"unknown address type {bad[0]!r}", text)
                    matches.append(AddrTypeMatch(o[2:5], words, neg))
            if "--src-type" not in opts and "--dst-type" not in opts:
                raise _fail("-m addrtype needs --src-type or --dst-type", text)
        elif name == "statistic":
            p = _statistic(opts, text)
            probability = p if probability is None else probability * p
        elif name == "recent":
            rec = _recent(opts, text)
            if rec.mode in ("set", "update") and not rec.neg:
                recent_set.append((rec.name, rec.field, rec.mask))
            matches.append(rec)
        elif name == "physdev":
            if not opts:
                raise _fail("-m physdev needs an option", text)
            for o, (a, neg) in opts.items():
                if o in ("--physdev-in", "--physdev-out"):
                    nm, prefix = _parse_iface(a[0])
                    matches.append(PhysdevMatch(o[10:], nm, prefix, neg))
                else:
                    matches.append(PhysdevMatch(o[10:], neg=neg))
        elif name == "set":
            for o, ((setname, flags), neg) in opts.items():
                fl = tuple(flags.split(","))
                if not 1 <= len(fl) <= 6 or any(f not in ("src", "dst") for f in fl):
                    raise _fail(f"bad {o} flags {flags!r} (expected src|dst[,src|dst...])", text)
                matches.append(SetMatch(setname, fl, neg))
        elif name == "pkttype":
            if "--pkt-type" not in opts:
                raise _fail("-m pkttype needs --pkt-type", text)
            (a,), neg = opts["--pkt-type"]
            if a.lower() not in ("unicast", "broadcast", "multicast", "host"):
                raise _fail(f"unknown packet type {a!r}", text)
            matches.append(PktTypeMatch("unicast" if a.lower() == "host" else a.lower(), neg))
        # nfacct and limit: accounting and rate limits always let a traced packet through.

    target = _target(text, target_name, target_opts, goto)
    key = port_key = None
    if proto in ("tcp", "udp", "sctp") and not proto_neg and exact_dport is not None:
        if exact_dst is not None:
            key = (exact_dst, proto, exact_dport)
        else:
            port_key = (proto, exact_dport)
    return Rule(
        text=text,
        matches=tuple(matches),
        target=target,
        probability=probability,
        comment=comment,
        recent_set=tuple(recent_set),
        key=key,
        port_key=port_key,
        unconditional=header_count == 0 and not modules,
        checks=tuple(m.test for m in matches),
    )


def _statistic(opts: Mapping[str, tuple[tuple[str, ...], bool]], text: str) -> Fraction:
    mode = opts.get("--mode", (("",), False))[0][0]
    if mode == "random":
        if "--probability" not in opts:
            raise _fail("-m statistic --mode random needs --probability", text)
        (a,), neg = opts["--probability"]
        try:
            p = parse_probability(a)
        except (ValueError, ZeroDivisionError):
            raise _fail(f"bad probability {a!r} (expected 0..1)", text) from None
        return 1 - p if neg else p
    if mode == "nth":
        if "--every" not in opts:
            raise _fail("-m statistic --mode nth needs --every", text)
        (a,), neg = opts["--every"]
        every = _parse_int(a, text, "--every")
        if every < 1:
            raise _fail(f"bad --every {a!r}", text)
        if "--packet" in opts:
            pk = _parse_int(opts["--packet"][0][0], text, "--packet")
            if not 0 <= pk < every:
                raise _fail("--packet must be below --every", text)
        # One connection in every N passes; over the connections a trace stands for that is a
        # 1/N share, which is how podnet enumerates it.
        p = Fraction(1, every)
        return 1 - p if neg else p
    raise _fail(f"unknown statistic mode {mode!r} (expected random or nth)", text)


def _recent(opts: Mapping[str, tuple[tuple[str, ...], bool]], text: str) -> RecentMatch:
    modes = [o[2:] for o in ("--set", "--rcheck", "--update") if o in opts]
    if len(modes) != 1:
        raise _fail("-m recent needs exactly one of --set, --rcheck, --update", text)
    mode = modes[0]
    neg = opts["--" + mode][1]
    name = opts["--name"][0][0] if "--name" in opts else "DEFAULT"
    mask = MASK32
    if "--mask" in opts:
        try:
            mask = int(IPv4Address(opts["--mask"][0][0]))
        except ValueError:
            raise _fail(f"bad --mask {opts['--mask'][0][0]!r}", text) from None
    seconds = None
    if "--seconds" in opts:
        seconds = _parse_int(opts["--seconds"][0][0], text, "--seconds")
    fld = "dst" if "--rdest" in opts else "src"
    return RecentMatch(name, mode, fld, mask, seconds, "--reap" in opts, neg)
