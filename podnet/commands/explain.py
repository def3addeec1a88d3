"""``podnet explain pod/NAME``: how one Pod came to be, where it runs and how it is found."""

from __future__ import annotations

from podnet.commands import RAW, add_files, load, warn

EXAMPLES = """examples:
  podnet explain pod/frontend                 a Deployment's first Pod (or a Pod by its name)
  podnet explain pod/kube-system/coredns      a CoreDNS Pod
"""


def add(sub) -> None:
    p = sub.add_parser(
        "explain",
        help="the story of one Pod, with the scheduler's table",
        description="The events that made one Pod (its owners, the scheduler's filters and scores on every node, the kubelet and the CNI plugin), the Services and kube-proxy chains it backs, and its DNS names.",
        epilog=EXAMPLES,
        formatter_class=RAW,
    )
    p.add_argument(
        "target", metavar="pod/[NS/]NAME", help="the Pod (a workload name picks its first Pod)"
    )
    p.add_argument("-n", "--namespace", default="default", help="namespace when the name has none")
    add_files(p)


def run(args, out, err) -> int:
    from podnet.errors import Problem, UsageError
    from podnet.trace.endpoints import parse_src

    text = args.target
    kind, slash, rest = text.partition("/")
    if slash and kind in ("pod", "po", "pods"):
        text = rest
    elif slash and ("/" in rest or kind in ("deploy", "deployment")):  # NS/NAME is fine
        raise UsageError(
            Problem(f"cannot explain '{args.target}'", path="TARGET", hint="write pod/[NS/]NAME")
        )
    loaded = load(args, err)
    warn(loaded.warnings, err)
    origin = loaded.resolver().origin(parse_src(text, args.namespace))
    assert origin.pod is not None
    out.write(explain_pod(loaded, origin.pod))
    return 0


def explain_pod(loaded, pod) -> str:
    """The story of ``pod`` as text (see podnet.control.story)."""
    from podnet.control.story import kube_proxy_events, pod_events
    from podnet.dns.records import dashed
    from podnet.render.events import render_events, render_schedule_table

    cluster = loaded.cluster
    decision = next((d for d in cluster.schedule if d.pod == pod.key), None)
    owners = _owner_events(cluster, pod)
    lines = [f"Pod {pod.key} on {pod.node}, IP {pod.ip}", ""]
    lines.append("created")
    lines.append(render_events(owners).rstrip("\n"))
    if decision is not None:
        lines += ["", "scheduler", render_schedule_table(decision, len(cluster.nodes)).rstrip("\n")]
    lines += [
        "",
        "started",
        render_events(pod_events(cluster, loaded.network, pod, decision)).rstrip("\n"),
    ]
    slices = [s for s in cluster.endpoint_slices if any(e.pod == pod.key for e in s.endpoints)]
    if slices:
        lines += ["", "endpoint of"]
        for s in slices:
            ep = next(e for e in s.endpoints if e.pod == pod.key)
            ports = ",".join(
                f"{p.name + ' ' if p.name else ''}{p.port}/{p.protocol}" for p in s.ports
            )
            lines.append(
                f"  Service {s.namespace}/{s.service}  EndpointSlice {s.name}  {ports}  {'ready' if ep.ready else 'not ready'}"
            )
        mine = [e for e in kube_proxy_events(cluster) if str(pod.ip) + ":" in e.detail]
        for e in mine:
            chains = [c for c in e.detail.split(", ") if str(pod.ip) + ":" in c]
            lines.append(
                f"  kube-proxy {e.object[len('Service/') :]}: {chains[0].split(' -> ')[-1]}"
            )
    domain = cluster.config.cluster_domain
    lines += ["", "dns", f"  {dashed(pod.ip)}.{pod.namespace}.pod.{domain}  A  {pod.ip}"]
    if pod.hostname and pod.subdomain:
        lines.append(
            f"  {pod.hostname}.{pod.subdomain}.{pod.namespace}.svc.{domain}  A  {pod.ip}  (if Service {pod.subdomain} is headless)"
        )
    return "\n".join(lines) + "\n"


def _owner_events(cluster, pod):
    """The API server and controller events that led to the Pod (its workload, ReplicaSet)."""
    objs = {f"Pod/{pod.key}"}
    if pod.owner is not None:
        kind, name = pod.owner
        objs.add(f"{kind}/{pod.namespace}/{name}")
        if kind == "ReplicaSet":
            objs.add(f"Deployment/{pod.namespace}/{name.rsplit('-', 1)[0]}")
    return [e for e in cluster.events if e.object in objs and e.action == "create"]
