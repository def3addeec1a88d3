"""``podnet dns NAME --from POD``: what the Pod's resolver asks the cluster DNS, and the answers."""

from __future__ import annotations

import contextlib
from ipaddress import IPv4Address

from podnet.commands import RAW, add_files, load, warn

EXAMPLES = """examples:
  podnet dns backend --from frontend                   the search list in order, dig-like answers
  podnet dns backend.default.svc.cluster.local --from frontend
  podnet dns _http._tcp.backend.default.svc.cluster.local --from frontend --type SRV
  podnet dns 10.96.0.10 --from frontend --type PTR     the reverse name of an address (dig -x)
  podnet dns 10-244-1-3.default.pod --from frontend    a Pod's A record
  podnet dns backend --from frontend --resolv-conf     the Pod's /etc/resolv.conf
"""


def add(sub) -> None:
    p = sub.add_parser(
        "dns",
        help="resolve a name as a Pod's resolver does (dig-like answers)",
        description="Ask the cluster DNS (CoreDNS behind kube-dns) for NAME the way POD's resolver does: its resolv.conf's search list and ndots, each query answered as dig would show it.",
        epilog=EXAMPLES,
        formatter_class=RAW,
    )
    p.add_argument(
        "name",
        metavar="NAME",
        help="a name (searched as the Pod's resolver does), or an IPv4 address with --type PTR",
    )
    p.add_argument(
        "--from",
        dest="src",
        required=True,
        metavar="POD",
        help="[NS/]POD or deploy/[NS/]NAME whose resolver asks",
    )
    p.add_argument(
        "--type",
        "-t",
        dest="qtype",
        default="A",
        type=str.upper,
        choices=["A", "SRV", "PTR", "CNAME", "TXT"],
        help="record type (default A)",
    )
    p.add_argument(
        "--resolv-conf", action="store_true", help="print the Pod's /etc/resolv.conf instead"
    )
    p.add_argument("-n", "--namespace", default="default", help="namespace of POD when it has none")
    add_files(p)


def run(args, out, err) -> int:
    from podnet.dns.records import reverse_name
    from podnet.dns.resolver import NoClusterDns, resolv_conf, resolve
    from podnet.errors import Problem, UsageError
    from podnet.render.dig import render_dig
    from podnet.trace.endpoints import parse_src

    loaded = load(args, err)
    warn(loaded.warnings, err)
    resolver = loaded.resolver()
    origin = resolver.origin(parse_src(args.src, args.namespace))
    if origin.pod is None:
        raise UsageError(
            Problem("--from needs a Pod: a node's resolver is not modelled", path="--from")
        )
    try:
        conf = resolv_conf(loaded.cluster, origin.pod)
    except NoClusterDns as e:
        raise UsageError(Problem(e.message, path="--from")) from None
    if args.resolv_conf:
        out.write(conf.text())
        return 0
    name = args.name
    if args.qtype == "PTR":
        with contextlib.suppress(ValueError):  # a name, not an address: asked as it is
            name = reverse_name(IPv4Address(name))
    res = resolve(resolver.zone(), name, conf, args.qtype)
    out.write(render_dig(res, origin.pod.key))
    return 0 if res.ok else 1
