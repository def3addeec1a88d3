"""``podnet trace SRC DST``: a connection's first packet and its reply, hop by hop."""

from __future__ import annotations

from podnet.commands import RAW, add_files, load, warn

EXAMPLES = """examples:
  podnet trace default/frontend svc/backend:80         Pod to a Service through kube-proxy's DNAT
  podnet trace frontend backend:80                      bare names: a Pod (or its Deployment) to a Service
  podnet trace deploy/frontend default/web:9090         a Deployment's first Pod to a Pod
  podnet trace node/node-1 svc/backend:http             from a node's host network namespace
  podnet trace ext/203.0.113.7@node-1 192.168.0.11:30080   an outside client hitting a node port
  podnet trace default/web localhost:9090               between two containers of one Pod, over lo
  podnet trace frontend svc/backend:80 -o json          SPEC section 3 JSON
  podnet trace frontend svc/backend:80 --pcap t.pcap    the frames, for Wireshark (VXLAN decoded with -d udp.port==8472,vxlan)
  podnet trace frontend svc/backend:80 -o iptables-trace   the kernel's TRACE log lines
  podnet trace x/a svc/y/s-y-b:80 --explain             which NetworkPolicy rule admits or denies it
"""


def add(sub) -> None:
    t = sub.add_parser(
        "trace",
        help="trace a connection from SRC to DST hop by hop",
        description="Trace the first packet of a connection from SRC to DST, and its reply, through every device, route, rule and NAT.",
        epilog=EXAMPLES,
        formatter_class=RAW,
    )
    t.add_argument(
        "src",
        metavar="SRC",
        help="[NS/]POD, pod/[NS/]POD, deploy/[NS/]NAME, node/NODE, ext/IP@NODE",
    )
    t.add_argument(
        "dst",
        metavar="DST",
        help="[NS/]POD[:PORT], svc/[NS/]NAME[:PORT], node/NODE:PORT, IP:PORT, localhost:PORT, NAME.NS:PORT",
    )
    add_files(t)
    t.add_argument(
        "-n",
        "--namespace",
        default="default",
        help="namespace for names without one (default: default)",
    )
    t.add_argument("-p", "--port", type=int, help="destination port when DST has none")
    t.add_argument(
        "--protocol",
        choices=["tcp", "udp", "sctp"],
        type=str.lower,
        help="protocol (default: the Service port's, else tcp)",
    )
    t.add_argument("--sport", type=int, default=40000, help="client source port (default 40000)")
    t.add_argument(
        "--seed",
        type=int,
        help="follow one of kube-proxy's random choices, drawn with this seed, instead of all",
    )
    t.add_argument(
        "-o",
        "--output",
        choices=["text", "json", "iptables-trace"],
        default="text",
        help="text (a tree in colour on a terminal), json (SPEC section 3), iptables-trace (the kernel's TRACE log lines)",
    )
    t.add_argument(
        "--pcap",
        metavar="FILE",
        help="also write every frame of every path, forward and reply, to FILE (pcap; pcapng if FILE ends in .pcapng)",
    )
    t.add_argument(
        "--color",
        "--colour",
        dest="color",
        choices=["auto", "always", "never"],
        default="auto",
        help="colour and tree layout: auto (a terminal without NO_COLOR), always, never",
    )
    t.add_argument(
        "--explain",
        action="store_true",
        help="also show how every NetworkPolicy selecting either end judges the connection, rule by rule",
    )


def run(args, out, err) -> int:
    loaded = load(args, err)
    warn(loaded.warnings, err)
    trace = loaded.trace(
        args.src,
        args.dst,
        namespace=args.namespace,
        port=args.port,
        protocol=args.protocol,
        sport=args.sport,
        seed=args.seed,
    )
    if args.pcap:
        from podnet.render.pcap import write_pcap

        write_pcap(trace, args.pcap, loaded.network)
    if args.output == "json":
        from podnet.render.trace_json import render_trace_json

        out.write(render_trace_json(trace))
    elif args.output == "iptables-trace":
        from podnet.render.iptables_trace import render_iptables_trace

        out.write(render_iptables_trace(trace, loaded.network))
    else:
        from podnet.render.term import render_trace_tty, use_colour

        if use_colour(args.color, out):
            out.write(render_trace_tty(trace))
        else:
            from podnet.render.trace_text import render_trace

            out.write(render_trace(trace))
    if args.explain:
        out.write(explain_text(loaded.cluster, trace))
    return 0 if trace.verdict == "delivered" else 1


def explain_text(cluster, trace) -> str:
    """The policy evaluation of each distinct connection the paths carry (after Service DNAT)."""
    from podnet.analysis.policy_explain import explain_lines

    seen, lines = set(), []
    for path in trace.paths:
        p = path.forward.packet or trace.packet
        key = (trace.packet.src, p.dst, p.proto, p.dport)
        if key in seen:
            continue
        seen.add(key)
        lines += ["", *explain_lines(cluster, *key)]
    return "\n".join(lines) + "\n"
