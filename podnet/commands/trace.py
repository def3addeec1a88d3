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
"""


def add(sub) -> None:
    t = sub.add_parser("trace", help="trace a connection from SRC to DST hop by hop", description="Trace the first packet of a connection from SRC to DST, and its reply, through every device, route, rule and NAT.", epilog=EXAMPLES, formatter_class=RAW)
    t.add_argument("src", metavar="SRC", help="[NS/]POD, pod/[NS/]POD, deploy/[NS/]NAME, node/NODE, ext/IP@NODE")
    t.add_argument("dst", metavar="DST", help="[NS/]POD[:PORT], svc/[NS/]NAME[:PORT], node/NODE:PORT, IP:PORT, localhost:PORT, NAME.NS:PORT")
    add_files(t)
    t.add_argument("-n", "--namespace", default="default", help="namespace for names without one (default: default)")
    t.add_argument("-p", "--port", type=int, help="destination port when DST has none")
    t.add_argument("--protocol", choices=["tcp", "udp", "sctp"], type=str.lower, help="protocol (default: the Service port's, else tcp)")
    t.add_argument("--sport", type=int, default=40000, help="client source port (default 40000)")
    t.add_argument("--seed", type=int, help="follow one of kube-proxy's random choices, drawn with this seed, instead of all")
    t.add_argument("-o", "--output", choices=["text", "json"], default="text")


def run(args, out, err) -> int:
    loaded = load(args)
    warn(loaded.warnings, err)
    trace = loaded.trace(args.src, args.dst, namespace=args.namespace, port=args.port, protocol=args.protocol, sport=args.sport, seed=args.seed)
    if args.output == "json":
        from podnet.render.trace_json import render_trace_json

        out.write(render_trace_json(trace))
    else:
        from podnet.render.trace_text import render_trace

        out.write(render_trace(trace))
    return 0 if trace.verdict == "delivered" else 1
