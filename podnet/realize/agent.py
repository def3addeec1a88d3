"""The small program ``podnet verify`` runs inside a realized namespace (``ip netns exec NS
python3 -m podnet.realize.agent ...``). Standard library only, so it starts fast.

``serve --name POD --listen tcp:8080 --listen udp:53``: listen on every port (all addresses);
each TCP connection and each UDP datagram gets one JSON line back:
``{"pod": POD, "peer": [ip, port], "local": [ip, port]}`` — the backend that answered, the client
address it saw (after any SNAT) and the address it was reached on (after any DNAT). Prints
``READY`` (or ``FAILED <json>``) once every socket is bound; exits when its stdin closes, so it
never outlives the ``podnet verify`` that started it.

``probe``: reads ``{"jobs": [...]}`` on stdin, each job ``{"id", "proto", "ip", "port", "tries",
"min_tries", "timeout", "want": [outcome keys]}``; tries each job (jobs concurrently) until every
wanted outcome was seen (and at least ``min_tries`` times) or ``tries`` is spent, and prints ``{"results": {id: [attempt, ...]}}``. An
attempt is ``{"outcome": connected|refused|timeout|unreachable|error, "pod", "peer", "local",
"client", "detail"}``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH}


# ---------------------------------------------------------------------------------- listener


def _reply(name: str, peer, local) -> bytes:
    return (
        json.dumps({"pod": name, "peer": list(peer[:2]), "local": list(local[:2])}) + "\n"
    ).encode()


def _tcp_loop(sock: socket.socket, name: str) -> None:
    while True:
        conn, peer = sock.accept()
        try:
            conn.settimeout(2)
            conn.sendall(_reply(name, peer, conn.getsockname()))
        except OSError:
            pass
        finally:
            conn.close()


def _udp_loop(sock: socket.socket, name: str, port: int) -> None:
    while True:
        _, peer = sock.recvfrom(2048)
        # recvfrom does not say which local address was hit; the port is the bound one, the
        # address is reported as unknown ("") unless IP_PKTINFO were parsed (not needed: the
        # comparison uses the pod and the client address)
        with contextlib.suppress(OSError):
            sock.sendto(_reply(name, peer, ("", port)), peer)


def serve(name: str, listens: list[str]) -> int:
    failed = {}
    threads = []
    for spec in listens:
        proto, _, port_s = spec.partition(":")
        port = int(port_s)
        try:
            if proto == "tcp":
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("0.0.0.0", port))
                s.listen(128)
                t = threading.Thread(target=_tcp_loop, args=(s, name), daemon=True)
            elif proto == "udp":
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind(("0.0.0.0", port))
                t = threading.Thread(target=_udp_loop, args=(s, name, port), daemon=True)
            else:
                failed[spec] = f"protocol {proto} is not served"
                continue
        except OSError as e:
            failed[spec] = e.strerror or str(e)
            continue
        threads.append(t)
        t.start()
    sys.stdout.write(("FAILED " + json.dumps(failed) if failed else "READY") + "\n")
    sys.stdout.flush()
    sys.stdin.read()  # until the parent closes our stdin (or dies)
    return 0


# ---------------------------------------------------------------------------------- client


def attempt(proto: str, ip: str, port: int, timeout: float) -> dict:
    """One connection (TCP) or one request (UDP) and what came of it."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(socket.AF_INET, kind)
    s.settimeout(timeout)
    out: dict = {"outcome": "error"}
    try:
        s.connect((ip, port))
        out["client"] = list(s.getsockname())
        if proto == "udp":
            s.send(b"podnet verify\n")
            data = s.recv(4096)
        else:
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        try:
            got = json.loads(data.decode())
        except ValueError:
            out.update(outcome="error", detail=f"unexpected answer {data[:80]!r}")
            return out
        out.update(
            outcome="connected", pod=got.get("pod"), peer=got.get("peer"), local=got.get("local")
        )
    except TimeoutError:
        out["outcome"] = "timeout"
    except ConnectionRefusedError:
        out["outcome"] = "refused"
    except OSError as e:
        out.update(
            outcome="unreachable" if e.errno in UNREACHABLE else "error",
            detail=os.strerror(e.errno) if e.errno else str(e),
        )
    finally:
        s.close()
    return out


def outcome_key(a: dict) -> str:
    """``connected:<pod>`` or the outcome's name: what "every wanted outcome seen" counts."""
    return f"connected:{a.get('pod')}" if a["outcome"] == "connected" else a["outcome"]


def run_job(job: dict) -> list[dict]:
    want = set(job.get("want", ()))
    least = int(job.get("min_tries", 1))
    seen: set[str] = set()
    tries = []
    for _ in range(max(1, int(job.get("tries", 1)))):
        a = attempt(job["proto"], job["ip"], int(job["port"]), float(job.get("timeout", 1.5)))
        tries.append(a)
        seen.add(outcome_key(a))
        if want <= seen and len(tries) >= least:
            break
    return tries


def probe(workers: int) -> int:
    jobs = json.loads(sys.stdin.read() or "{}").get("jobs", [])
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs) or 1))) as pool:
        results = dict(zip([j["id"] for j in jobs], pool.map(run_job, jobs), strict=True))
    sys.stdout.write(json.dumps({"results": results}) + "\n")
    return 0


def sctp_support() -> str | None:
    """None when SCTP sockets can be made here, else why not."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP).close()
    except OSError as e:
        return f"the kernel has no SCTP ({e.strerror or e})"
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m podnet.realize.agent")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--name", required=True)
    s.add_argument("--listen", action="append", default=[])
    c = sub.add_parser("probe")
    c.add_argument("--workers", type=int, default=32)
    sub.add_parser("sctp")
    a = p.parse_args(argv)
    if a.cmd == "serve":
        return serve(a.name, a.listen)
    if a.cmd == "probe":
        return probe(a.workers)
    why = sctp_support()
    sys.stdout.write(json.dumps({"sctp": why is None, "reason": why}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
