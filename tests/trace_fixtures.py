"""Small clusters built straight from the model, for trace tests that need no YAML."""

from __future__ import annotations

from dataclasses import replace

from podnet.control import plan
from podnet.dataplane.build import build_network
from podnet.model.base import FrozenDict
from podnet.model.spec import (
    ClusterConfig,
    Container,
    ContainerPort,
    Inputs,
    Meta,
    PodSpec,
    PodTemplate,
    ServicePort,
    ServiceSpec,
)


def pod(
    name: str,
    node: str,
    labels: dict,
    ports=(),
    containers: int = 1,
    ns: str = "default",
    host_network: bool = False,
) -> PodSpec:
    cports = tuple(ContainerPort(p, "http") for p in ports)
    cs = tuple(Container(f"c{i}", ports=cports if i == 0 else ()) for i in range(containers))
    return PodSpec(
        Meta(name, ns, FrozenDict(labels)),
        PodTemplate(
            labels=FrozenDict(labels), node_name=node, containers=cs, host_network=host_network
        ),
    )


def service(
    name: str, selector: dict | None, port: int = 80, target="http", ns: str = "default", **kw
) -> ServiceSpec:
    return ServiceSpec(
        Meta(name, ns),
        selector=None if selector is None else FrozenDict(selector),
        ports=(ServicePort(port, name="http", target_port=target),),
        **kw,
    )


def three_node(backend: str = "vxlan"):
    """client on node-1; backends b1 (node-1), b2 (node-2), b3 (node-3) behind Service backend;
    a Service nothing selects; a two-container Pod."""
    inputs = Inputs(
        config=replace(ClusterConfig(), backend=backend),
        pods=(
            pod("client", "node-1", {"app": "client"}),
            pod("b1", "node-1", {"app": "b"}, [8080]),
            pod("b2", "node-2", {"app": "b"}, [8080]),
            pod("b3", "node-3", {"app": "b"}, [8080]),
            pod("duo", "node-2", {"app": "duo"}, [9090], containers=2),
        ),
        services=(
            service("backend", {"app": "b"}),
            service("empty", {"app": "nothing"}, target=8080),
        ),
    )
    return build_network(plan(inputs))
