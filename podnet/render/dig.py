"""A DNS answer as ``dig`` prints it: header, QUESTION and ANSWER sections, the server."""

from __future__ import annotations

import hashlib

from podnet.dns.records import Answer
from podnet.dns.resolver import Resolution


def _id(qname: str, qtype: str) -> int:
    """dig's random message id, made deterministic."""
    return int.from_bytes(hashlib.sha256(f"{qname} {qtype}".encode()).digest()[:2], "big")


def render_answer(ans: Answer, server: str) -> list[str]:
    """One question and its answer (dig's layout; CoreDNS answers authoritatively, no recursion)."""
    n = len(ans.records)
    out = [
        ";; Got answer:",
        f";; ->>HEADER<<- opcode: QUERY, status: {ans.rcode}, id: {_id(ans.qname, ans.qtype)}",
        f";; flags: qr aa rd; QUERY: 1, ANSWER: {n}, AUTHORITY: 0, ADDITIONAL: 0",
        ";; WARNING: recursion requested but not available",
        "",
        ";; QUESTION SECTION:",
        f";{ans.qname}\t\t\tIN\t{ans.qtype}",
    ]
    if n:
        out += ["", ";; ANSWER SECTION:", *(r.text() for r in ans.records)]
    if ans.note:
        out += ["", f";; {ans.note}"]
    out += ["", f";; SERVER: {server}#53({server}) (UDP)"]
    return out


def render_dig(res: Resolution, pod: str) -> str:
    """The whole lookup as the Pod's resolver makes it: every name of the search list tried, in
    order, each as dig shows one query; the last is the answer the application gets."""
    conf = res.conf
    server = str(conf.nameservers[0])
    lines = [
        f"; <<>> podnet dns <<>> {res.name} {res.qtype} (from {pod})",
        f";; resolv.conf: search {' '.join(conf.search)}; nameserver {server}; options ndots:{conf.ndots}",
        f";; names tried: {', '.join(a.qname for a in res.asked)}",
    ]
    for ans in res.asked:
        lines += ["", *render_answer(ans, server)]
    lines += [
        "",
        f";; {'answer: ' + res.answer.qname if res.answer else 'no name of the search list resolved'}",
    ]
    return "\n".join(lines) + "\n"
