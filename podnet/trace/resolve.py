"""Resolving SRC and DST references against the built network: which namespace sends, from which
address, to which address and port. Unknown names get the closest matches as a hint."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from podnet.errors import Problem, UsageError, closest
from podnet.model.cluster import Pod, Service
from podnet.trace.endpoints import DstRef, SrcRef


@dataclass(frozen=True, slots=True)
class Origin:
    """The sender: its namespace, its address (None: chosen by the route), what it is."""

    netns: str
    ip: IPv4Address | None
    label: str
    pod: Pod | None = None
    node: str | None = None
    external: IPv4Address | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """Where the packet is addressed, and what the user named."""

    ip: IPv4Address
    port: int
    protocol: str
    label: str
    service: Service | None = None
    pod: Pod | None = None


@dataclass(frozen=True, slots=True)
class NameTarget:
    """A DNS name the source Pod resolves before it connects (podnet.trace.dnsflow)."""

    name: str
    port: str | None
    protocol: str | None
    text: str


def _unknown(what: str, name: str, choices: list[str], kind: str) -> UsageError:
    near = closest(name, choices, n=5)
    if not near:  # names made by controllers carry hashes: match on the part before them
        near = [c for c in choices if c.split("/")[-1].startswith(name.split("/")[-1])][:5]
    hint = ("did you mean " + ", ".join(near) + "?") if near else f"`podnet show` lists the {kind}s"
    return UsageError(Problem(f"no {kind} '{name}'", path=what, hint=hint))


class Resolver:
    """Name lookups over one cluster, built once."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.pods = {p.key: p for p in cluster.pods}
        self.services = {s.key: s for s in cluster.services}
        self.nodes = {n.name: n for n in cluster.nodes}
        self._zone = None

    def zone(self):
        """The cluster's DNS zone (podnet.dns.records.Zone), built on first use."""
        if self._zone is None:
            from podnet.dns.records import Zone

            self._zone = Zone(self.cluster)
        return self._zone

    # ------------------------------------------------------------------ pods and workloads

    def pod(self, ns: str, name: str, what: str) -> Pod:
        key = f"{ns}/{name}"
        pod = self.pods.get(key)
        if pod is not None:
            return pod
        owned = self.workload_pods(ns, name)
        if owned:
            return owned[0]
        raise _unknown(what, key, sorted(self.pods), "Pod")

    def workload_pods(self, ns: str, name: str, kinds: tuple[str, ...] = ()) -> list[Pod]:
        """Pods a workload made, by name: a Deployment's Pods are ``NAME-<hash>-<suffix>``."""
        found = []
        for p in self.cluster.pods:
            if p.namespace != ns or p.owner is None:
                continue
            kind, owner = p.owner
            if kinds and kind not in kinds and not (kind == "ReplicaSet" and "Deployment" in kinds):
                continue
            if owner == name or (kind == "ReplicaSet" and owner.rsplit("-", 1)[0] == name):
                found.append(p)
        return sorted(found, key=lambda p: p.name)

    # ------------------------------------------------------------------ SRC

    def origin(self, ref: SrcRef) -> Origin:
        if ref.kind == "node":
            if ref.name not in self.nodes:
                raise _unknown("SRC", ref.name, sorted(self.nodes), "node")
            return Origin(f"node:{ref.name}", None, f"node/{ref.name}", node=ref.name)
        if ref.kind == "ext":
            if ref.node not in self.nodes:
                raise _unknown("SRC", ref.node, sorted(self.nodes), "node")
            return Origin(
                f"external:{ref.ip}",
                ref.ip,
                f"ext/{ref.ip}@{ref.node}",
                node=ref.node,
                external=ref.ip,
            )
        if ref.kind == "deploy":
            pods = self.workload_pods(ref.namespace, ref.name, ("Deployment",))
            if not pods:
                names = sorted(
                    {
                        f"{p.namespace}/{p.owner[1].rsplit('-', 1)[0]}"
                        for p in self.cluster.pods
                        if p.owner and p.owner[0] == "ReplicaSet"
                    }
                )
                raise _unknown("SRC", f"{ref.namespace}/{ref.name}", names, "Deployment")
            pod = pods[0]
        else:
            pod = self.pod(ref.namespace, ref.name, "SRC")
        if pod.host_network:
            return Origin(f"node:{pod.node}", pod.ip, f"pod/{pod.key}", pod=pod, node=pod.node)
        return Origin(f"pod:{pod.key}", pod.ip, f"pod/{pod.key}", pod=pod, node=pod.node)

    # ------------------------------------------------------------------ DST

    def target(
        self, ref: DstRef, origin: Origin, port: int | None, protocol: str | None
    ) -> Target | NameTarget:
        """Where DST points. A DNS name (``NAME.NS[.svc.DOMAIN]``, or a bare name that is no Pod
        of the namespace) from a Pod is a NameTarget: the Pod's resolver looks it up first. From a
        node or an outside client (whose resolver podnet does not model) the name is read as the
        Service it names."""
        text_port = ref.port if ref.port is not None else (str(port) if port else None)
        if ref.kind == "svc":
            return self._service_target(ref.namespace, ref.name, text_port, protocol)
        if ref.kind == "dns":
            if origin.pod is not None:
                return NameTarget(ref.name, text_port, protocol, ref.text)
            return self._dns_target(ref, text_port, protocol)
        if ref.kind == "pod":
            key = f"{ref.namespace}/{ref.name}"
            bare = "/" not in ref.text.split(":", 1)[0]
            # A bare name is a Pod of the namespace (SPEC); else, from a Pod, the name its resolver
            # finds (a Service of the Pod's namespace, first of the search list); else a workload.
            if (
                bare
                and origin.pod is not None
                and key not in self.pods
                and f"{origin.pod.namespace}/{ref.name}" in self.services
            ):
                return NameTarget(ref.name, text_port, protocol, ref.text)
            if (
                key not in self.pods
                and key in self.services
                and not self.workload_pods(ref.namespace, ref.name)
            ):
                return self._service_target(ref.namespace, ref.name, text_port, protocol)
            pod = self.pod(ref.namespace, ref.name, "DST")
            num, proto = self._pod_port(pod, text_port, protocol)
            return Target(pod.ip, num, proto, f"pod/{pod.key}:{num}", pod=pod)
        if ref.kind == "node":
            node = self.nodes.get(ref.name)
            if node is None:
                raise _unknown("DST", ref.name, sorted(self.nodes), "node")
            num = _need_port(text_port, ref.text)
            return Target(node.ip, num, (protocol or "tcp").lower(), f"node/{node.name}:{num}")
        if ref.kind == "localhost":
            if origin.pod is None:
                raise UsageError(
                    Problem(
                        "localhost needs a Pod as SRC", path="DST", hint="trace POD localhost:PORT"
                    )
                )
            num = _need_port(text_port, ref.text)
            return Target(
                IPv4Address("127.0.0.1"), num, (protocol or "tcp").lower(), f"localhost:{num}"
            )
        num = _need_port(text_port, ref.text)
        return Target(ref.ip, num, (protocol or "tcp").lower(), f"{ref.ip}:{num}")

    def _service_target(self, ns: str, name: str, port: str | None, protocol: str | None) -> Target:
        svc = self.services.get(f"{ns}/{name}")
        if svc is None:
            raise _unknown("DST", f"{ns}/{name}", sorted(self.services), "Service")
        if svc.cluster_ip is None:
            kind = "ExternalName" if svc.spec.type == "ExternalName" else "headless"
            raise UsageError(
                Problem(
                    f"Service {svc.key} is {kind}: it has no ClusterIP",
                    path="DST",
                    hint="trace to one of its Pods instead",
                )
            )
        ports = svc.spec.ports
        want = protocol.upper() if protocol else None
        chosen = None
        for sp in ports:
            if want and sp.protocol != want:
                continue
            if port is None or str(sp.port) == port or sp.name == port:
                chosen = sp
                break
        if chosen is None:
            if port is None and not ports:
                raise UsageError(Problem(f"Service {svc.key} has no ports", path="DST"))
            if port is not None and port.isdigit() and not any(sp.name == port for sp in ports):
                num = int(port)  # a port the Service does not have: the trace shows what happens
                return Target(
                    svc.cluster_ip,
                    num,
                    (protocol or "tcp").lower(),
                    f"svc/{svc.key}:{num}",
                    service=svc,
                )
            have = ", ".join(
                f"{sp.name + ' ' if sp.name else ''}{sp.port}/{sp.protocol}" for sp in ports
            )
            raise UsageError(
                Problem(
                    f"Service {svc.key} has no port '{port}'", path="DST", hint=f"its ports: {have}"
                )
            )
        proto = (protocol or chosen.protocol).lower()
        return Target(
            svc.cluster_ip, chosen.port, proto, f"svc/{svc.key}:{chosen.port}", service=svc
        )

    def _dns_target(self, ref: DstRef, port: str | None, protocol: str | None) -> Target:
        domain = self.cluster.config.cluster_domain
        labels = ref.name.split(".")
        suffix = ["svc"] + domain.split(".")
        if len(labels) >= 2 and (len(labels) == 2 or labels[2:] == suffix[: len(labels) - 2]):
            return self._service_target(labels[1], labels[0], port, protocol)
        raise UsageError(
            Problem(
                f"'{ref.name}' is not a Service name of this cluster",
                path="DST",
                hint=f"write NAME.NAMESPACE or NAME.NAMESPACE.svc.{domain}",
            )
        )

    def _pod_port(self, pod: Pod, port: str | None, protocol: str | None) -> tuple[int, str]:
        if port is not None and port.isdigit():
            return int(port), (protocol or "tcp").lower()
        declared = [(p, c) for c in pod.containers for p in c.ports]
        if port is not None:
            for p, _ in declared:
                if p.name == port and (protocol is None or p.protocol == protocol.upper()):
                    return p.container_port, p.protocol.lower()
            names = sorted({p.name for p, _ in declared if p.name})
            raise UsageError(
                Problem(
                    f"Pod {pod.key} declares no port named '{port}'",
                    path="DST",
                    hint=("its named ports: " + ", ".join(names))
                    if names
                    else "give the port number",
                )
            )
        for p, _ in declared:
            if protocol is None or p.protocol == protocol.upper():
                return p.container_port, p.protocol.lower()
        raise UsageError(
            Problem(
                f"Pod {pod.key} declares no container port: which port?",
                path="DST",
                hint=f"write {pod.key}:PORT or use -p PORT",
            )
        )


def _need_port(port: str | None, text: str) -> int:
    if port is None or not port.isdigit():
        raise UsageError(
            Problem(
                f"'{text}' needs a port number",
                path="DST",
                hint=f"write {text}:PORT or use -p PORT",
            )
        )
    return int(port)
