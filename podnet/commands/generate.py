"""``podnet generate``: write a synthetic cluster of a given size (podnet.generate)."""

from __future__ import annotations

from podnet.commands import RAW
from podnet.errors import PodnetError, Problem

EXAMPLES = """examples:
  podnet generate --size M -o cluster-m.yaml
  podnet generate --nodes 50 --pods-per-node 20 --services 200 --policies 30 --seed 3 -o c.yaml
  podnet generate --size S | podnet trace ... -f /dev/stdin

sizes (issue 7; XL is Kubernetes' tested limit):
  S    3 nodes,     30 Pods,     10 Services,     3 NetworkPolicies
  M    100 nodes,   3,000 Pods,  1,000 Services,  150 NetworkPolicies
  L    1,000 nodes, 30,000 Pods, 5,000 Services,  750 NetworkPolicies
  XL   5,000 nodes, 150,000 Pods, 10,000 Services, 1,500 NetworkPolicies
"""


def add(sub) -> None:
    g = sub.add_parser(
        "generate",
        help="write a synthetic cluster of a given size as YAML",
        description="Write a synthetic cluster (Cluster document, Namespaces, Deployments, Services, NetworkPolicies) of the given size, the same for the same seed. --size picks a preset; the other options override its numbers.",
        epilog=EXAMPLES,
        formatter_class=RAW,
    )
    g.add_argument("--size", choices=["S", "M", "L", "XL"], default="S", help="preset (default S)")
    g.add_argument("--nodes", type=int, metavar="N")
    g.add_argument("--pods-per-node", type=int, metavar="P")
    g.add_argument("--services", type=int, metavar="S")
    g.add_argument(
        "--endpoints-per-service",
        type=int,
        metavar="E",
        help="most endpoints behind one Service (at most 250)",
    )
    g.add_argument("--policies", type=int, metavar="K", help="NetworkPolicies")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument(
        "-o",
        "--output",
        default="-",
        metavar="FILE",
        help="where to write (default: standard output)",
    )


def run(args, out, err) -> int:
    from dataclasses import replace

    from podnet.generate import MAX_ENDPOINTS, SIZES, generate, write_yaml

    size = SIZES[args.size]
    changes = {
        "nodes": args.nodes,
        "pods_per_node": args.pods_per_node,
        "services": args.services,
        "endpoints": args.endpoints_per_service,
        "policies": args.policies,
    }
    problems = []
    for (key, value), flag in zip(
        changes.items(),
        ("--nodes", "--pods-per-node", "--services", "--endpoints-per-service", "--policies"),
        strict=True,
    ):
        low = 1 if key in ("nodes", "endpoints") else 0
        if value is not None and value < low:
            problems.append(Problem(f"must be at least {low} (found {value})", path=flag))
    if args.endpoints_per_service is not None and args.endpoints_per_service > MAX_ENDPOINTS:
        problems.append(
            Problem(
                f"must be at most {MAX_ENDPOINTS} (found {args.endpoints_per_service})",
                path="--endpoints-per-service",
                hint="Kubernetes is tested up to 250 endpoints per Service",
            )
        )
    if problems:
        raise PodnetError(problems)
    size = replace(size, **{k: v for k, v in changes.items() if v is not None})
    docs = generate(size, args.seed)
    if args.output == "-":
        write_yaml(docs, out)
    else:
        with open(args.output, "w", encoding="utf-8") as f:
            write_yaml(docs, f)
    return 0
