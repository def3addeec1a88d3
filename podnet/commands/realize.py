"""``podnet realize up|down``: build the emulated network in real Linux network namespaces."""

from __future__ import annotations

from ipaddress import IPv4Address

from podnet.commands import RAW, add_files, load, warn
from podnet.errors import Problem, UsageError

EXAMPLES = """examples:
  sudo podnet realize up                               the demo, run name "default"
  sudo podnet realize up -f cluster/ --name lab --external 203.0.113.2@node-1
  sudo ip netns exec pn37a8ee-node-node-1 iptables-save
  sudo podnet realize down --name lab
  sudo podnet realize down --all                       every podnet run's leftovers

Every namespace of a run starts with pn<6 hex digits of the run name>-; the mapping from podnet's
names to the kernel's is printed by `up` and saved in /run/podnet/NAME.json. Nothing is created
in the host's own network namespace.
"""


def add(sub) -> None:
    r = sub.add_parser(
        "realize",
        help="build the network for real in Linux namespaces (root)",
        description="Build the emulated network in real network namespaces (up) or remove it (down).",
        epilog=EXAMPLES,
        formatter_class=RAW,
    )
    rs = r.add_subparsers(dest="action", metavar="ACTION", required=True)
    u = rs.add_parser("up", help="create the namespaces, devices, routes and rules")
    add_files(u)
    u.add_argument("--name", default="default", help="run name (default: default)")
    u.add_argument(
        "--external",
        action="append",
        default=[],
        metavar="IP@NODE",
        help="add an outside client IP entering at NODE (repeatable)",
    )
    d = rs.add_parser("down", help="remove a run's namespaces (idempotent)")
    d.add_argument("--name", default="default", help="run name (default: default)")
    d.add_argument(
        "--all",
        action="store_true",
        help="remove the namespaces of every podnet run on this machine",
    )


def _externals(network, specs):
    from podnet.dataplane.build import with_external_client

    for spec in specs:
        ip_s, at, node = spec.partition("@")
        try:
            ip = IPv4Address(ip_s)
            if not at:
                raise ValueError
            network = with_external_client(network, ip, node)
        except KeyError:
            raise UsageError(Problem(f"no node '{node}'", path="--external")) from None
        except ValueError as e:
            raise UsageError(
                Problem(
                    f"'{spec}' is not IP@NODE outside the cluster ({e or 'bad form'})",
                    path="--external",
                    hint="--external 203.0.113.2@node-1",
                )
            ) from None
    return network


def run(args, out, err) -> int:
    from podnet.realize import lifecycle

    if args.action == "down":
        gone = lifecycle.down(None if args.all else args.name, every=args.all)
        out.write(f"removed {len(gone)} namespaces\n")
        for n in gone:
            out.write(f"  {n}\n")
        return 0
    loaded = load(args)
    warn(loaded.warnings, err)
    network = _externals(loaded.network, args.external)
    real = lifecycle.up(network, args.name)
    out.write(
        f"run '{args.name}' is up: {len(real.plan.scripts)} namespaces (state /run/podnet/{args.name}.json)\n"
    )
    for emulated, netns in real.plan.mapping.items():
        out.write(f"  {emulated:<48} {netns}\n")
    out.write(f"remove it with: podnet realize down --name {args.name}\n")
    return 0
