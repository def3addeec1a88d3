"""``podnet events``: the creation of every object, in order, one line per event with its actor."""

from __future__ import annotations

from podnet.commands import RAW, add_files, load, warn

EXAMPLES = """examples:
  podnet events                       the demo's story, from the API server to kube-proxy
  podnet events -f cluster.yaml       your manifests' story
  podnet events --actor scheduler     only the scheduler's events
  podnet explain pod/frontend         one Pod's story with the scheduler's table
"""


def add(sub) -> None:
    p = sub.add_parser(
        "events",
        help="the story of the cluster's creation, event by event",
        description="What the API server, the controllers, the scheduler, the kubelet, the CNI plugin, the EndpointSlice controller and kube-proxy do, in order, to bring the input's objects to life.",
        epilog=EXAMPLES,
        formatter_class=RAW,
    )
    add_files(p)
    p.add_argument(
        "--actor",
        action="append",
        default=[],
        metavar="NAME",
        help="keep only this actor's events (repeatable)",
    )


def run(args, out, err) -> int:
    from podnet.control.story import story
    from podnet.render.events import render_events

    loaded = load(args, err)
    warn(loaded.warnings, err)
    events = story(loaded.cluster, loaded.network)
    if args.actor:
        events = (e for e in events if e.actor in args.actor)
    out.write(render_events(events))
    return 0
