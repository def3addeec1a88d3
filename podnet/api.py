"""The Python API: load a cluster, build its network, ask it questions.

>>> import podnet
>>> net = podnet.load()                      # the bundled demo topology  # doctest: +SKIP
>>> t = net.trace("default/frontend", "svc/backend:80")                  # doctest: +SKIP
>>> t.verdict, len(t.paths)                                              # doctest: +SKIP
('delivered', 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from podnet.errors import Problem

DEMO_NAME = "demo.yaml"


def topologies_dir() -> Path:
    """The bundled topologies: inside the installed package, or beside it in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "topologies", here.parent / "topologies"):
        if (candidate / DEMO_NAME).is_file():
            return candidate
    return here.parent / "topologies"


def demo_path() -> str:
    return str(topologies_dir() / DEMO_NAME)


@dataclass(frozen=True)
class LoadedCluster:
    """A cluster loaded, planned and built: the value every command works on."""

    network: object  # podnet.dataplane.network.Network
    warnings: tuple[Problem, ...] = ()
    files: tuple[str, ...] = ()
    _resolver: list = field(default_factory=list, repr=False, compare=False)

    @property
    def cluster(self):
        return self.network.cluster

    def resolver(self):
        if not self._resolver:
            from podnet.trace.resolve import Resolver

            self._resolver.append(Resolver(self.cluster))
        return self._resolver[0]

    def trace(self, src: str, dst: str, *, namespace: str = "default", port: int | None = None, protocol: str | None = None, sport: int = 40000, seed: int | None = None):
        """Trace a connection from ``src`` to ``dst`` (SPEC section 2 grammar) -> Trace."""
        from podnet.trace.run import run_trace

        return run_trace(self.network, src, dst, namespace=namespace, port=port, protocol=protocol, sport=sport, seed=seed, resolver=self.resolver())

    def iptables_save(self, node: str) -> str:
        """The node's rules as ``iptables-save`` prints them."""
        from podnet.render.iptables_save import render_tables

        return render_tables(self.network.get(f"node:{node}").tables)


def load(*paths: str, recursive: bool = False) -> LoadedCluster:
    """Load files or directories (none: the bundled demo), run the control plane, build the
    network. Raises podnet.errors.InputError listing every problem of invalid input."""
    from podnet.control import plan
    from podnet.dataplane.build import build_network
    from podnet.load import load_inputs

    files: Sequence[str] = paths or (demo_path(),)
    inputs, warnings = load_inputs(list(files), recursive=recursive)
    cluster = plan(inputs)
    network = build_network(cluster)
    return LoadedCluster(network, tuple(warnings) + tuple(cluster.warnings), tuple(files))
