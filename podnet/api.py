"""The Python API: load a cluster, build its network, ask it questions.

>>> import podnet
>>> cluster = podnet.load()                      # the bundled demo topology
>>> t = cluster.trace("frontend", "svc/backend:80")
>>> t.verdict, len(t.paths), t.delivered
('delivered', 3, True)
>>> [e.split("/")[0] for e in t.endpoints]        # the three backends, one per node
['default', 'default', 'default']
>>> t.paths[0].hops[0].netns.startswith("pod:default/frontend-")
True
>>> [r.verdict for r in cluster.check([{"from": "default/web", "to": "default/web", "port": 9090}])]
['allow']
>>> print(cluster.show("routes", "node-1").splitlines()[0])
default via 192.168.0.1 dev eth0

A Trace has ``verdict`` (``delivered``, ``partial`` or ``dropped``), ``delivered`` (every path
delivered), ``paths`` (each with ``probability``, ``disposition``, ``endpoint``, ``hops`` and the
``reply`` leg) and ``endpoints`` (the Pods reached). See podnet.model.trace.
"""

from __future__ import annotations

import gc
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

    def trace(
        self,
        src: str,
        dst: str,
        *,
        namespace: str = "default",
        port: int | None = None,
        protocol: str | None = None,
        sport: int = 40000,
        seed: int | None = None,
    ):
        """Trace a connection from ``src`` to ``dst`` (SPEC section 2 grammar) -> Trace."""
        from podnet.trace.run import run_trace

        return run_trace(
            self.network,
            src,
            dst,
            namespace=namespace,
            port=port,
            protocol=protocol,
            sport=sport,
            seed=seed,
            resolver=self.resolver(),
        )

    def check(self, probes, *, method: str = "auto") -> tuple:
        """Run probes (SPEC section 4): a probe file's path, or a list of dicts with the keys a
        probe file uses (``from``, ``to``, ``service``, ``port``, ``expect``, ...).

        Returns one podnet.analysis.check.ProbeResult per probe, with ``verdict`` (``allow``,
        ``deny``, ``partial``), ``ok`` (None when the probe states no expectation), ``mismatches``
        and the ``trace``. Raises podnet.errors.InputError for an invalid probe. ``method``:
        ``trace`` traces every probe; ``model`` (and ``auto`` from 500 probes on) answers the
        probes it can from kube-proxy's endpoints and the policy rules, their ``trace`` made when
        first read (podnet.analysis.check).
        """
        from podnet.analysis.check import run_check

        return run_check(self, _probes(probes), method=method)

    def reach(
        self,
        src: str | None = None,
        dst: str | None = None,
        *,
        port: int | None = None,
        protocol: str | None = None,
        via_service: bool = False,
    ):
        """The reachability table from the Pods ``src`` selects to those ``dst`` selects
        (``[NS/]k=v,k!=v,k,!k`` or ``pod/[NS/]NAME``; None: every Pod), computed over classes
        of Pods by podnet.analysis.reach: a Reach with ``sources``, ``dests`` and
        ``summary()``; ``verdict(src, dst)`` gives a Pod pair's class-level answer,
        ``cell(src, dst)`` and ``trace(src, dst)`` trace the pair through the engine, and
        ``cells`` lists the Pod x Pod table of a small one.

        >>> r = load().reach("default/")
        >>> r.summary()["pairs"], r.verdict(r.sources[0], r.dests[1]).verdict
        (20, 'allow')
        """
        from podnet.analysis.reach import compute_reach, parse_selector

        return compute_reach(
            self,
            parse_selector(src),
            parse_selector(dst),
            port=port,
            protocol=protocol,
            via_service=via_service,
        )

    def show(
        self,
        view: str,
        target: str,
        *,
        namespace: str = "default",
        table: str = "main",
        after: object | None = None,
    ) -> str:
        """One Linux view of a node or Pod namespace, as the tool prints it: ``routes``
        (ip route), ``neigh`` (ip neigh), ``fdb`` (bridge fdb), ``addr`` (ip addr), ``links``
        (ip link), ``iptables`` (iptables-save), ``conntrack`` (conntrack -L; ``after`` a
        Trace whose first path left the connections)."""
        from podnet.render import linux_views as lv

        name = lv.resolve_netns(self.network, target, namespace, self.resolver())
        netns = self.network.get(name)
        paths = after.paths[:1] if after is not None else ()
        views = {
            "routes": lambda: lv.ip_route(netns, table),
            "neigh": lambda: lv.ip_neigh(netns, lv.learned_neighbors(name, paths)),
            "fdb": lambda: lv.bridge_fdb(netns),
            "addr": lambda: lv.ip_addr(netns, self.network),
            "links": lambda: lv.ip_link(netns, self.network),
            "iptables": lambda: lv.iptables_save(netns),
            "conntrack": lambda: lv.conntrack_list(paths[0].conntrack.get(name) if paths else None)[
                0
            ],
        }
        if view not in views:
            from podnet.errors import UsageError, did_you_mean

            raise UsageError(
                Problem(
                    f"no view '{view}'",
                    path="view",
                    hint=did_you_mean(view, views) or "views: " + ", ".join(views),
                )
            )
        return views[view]()

    def iptables_save(self, node: str, fmt: str = "restore") -> str:
        """The node's rules in ``iptables-save`` format.

        ``fmt``: ``restore`` (what kube-proxy and flannel hand to iptables-restore), ``kernel``
        (what iptables-save prints back after the kernel round trip) or ``kube-proxy`` (only
        what one kube-proxy sync writes, sorted as kube-proxy's golden tests compare rule sets).
        """
        from podnet.render.iptables_save import kube_proxy_sorted, render_tables

        if fmt == "kube-proxy":
            from podnet.control.iptables import proxy_options
            from podnet.control.kubeproxy_sync import restore_text

            options = proxy_options(self.cluster)
            return kube_proxy_sorted(restore_text(self.cluster, node, options))
        tables = self.network.get(f"node:{node}").tables
        return render_tables(tables, kernel=fmt == "kernel")


GC_THRESHOLD = (100_000, 50, 100)
"""The collector's thresholds from the first load on. Loading and tracing allocate many small
objects that reference counting frees (they form no cycles); at the default threshold (700)
the collector runs every few hundred allocations for nothing: 20% of loading and 30% of a large
check's time (measured at size L). A collection every 100,000 net allocations still bounds
what garbage cycles can hold."""


def load(*paths: str, recursive: bool = False, progress=None) -> LoadedCluster:
    """Load files or directories (none: the bundled demo), run the control plane, build the
    network. Raises podnet.errors.InputError listing every problem of invalid input.
    ``progress(label, done, total)`` hears of each stage (podnet.render.progress)."""
    from podnet.control import plan
    from podnet.dataplane.build import build_network
    from podnet.load import load_inputs

    if gc.get_threshold()[0] < GC_THRESHOLD[0]:
        gc.set_threshold(*GC_THRESHOLD)
    files: Sequence[str] = paths or (demo_path(),)
    if progress is not None:
        progress("loading " + ", ".join(files), 0, 3)
    inputs, warnings = load_inputs(list(files), recursive=recursive)
    if progress is not None:
        progress(f"planning {len(inputs.pods) + len(inputs.workloads):,} Pods and workloads", 1, 3)
    cluster = plan(inputs)
    if progress is not None:
        progress(f"building {len(cluster.nodes):,} nodes, {len(cluster.pods):,} Pods", 2, 3)
    network = build_network(cluster)
    # The loaded cluster lives as long as the process and is never garbage: move it out of the
    # collector's generations so later collections (node builds, traces) do not rescan it.
    gc.freeze()
    return LoadedCluster(network, tuple(warnings) + tuple(cluster.warnings), tuple(files))


def _probes(probes) -> tuple:
    """Probes from a file path, or from a list of dicts (checked as a probe file is)."""
    from podnet.analysis import probes as pr

    if isinstance(probes, (str, Path)):
        return pr.load_probes(str(probes))
    import yaml

    from podnet.errors import InputError
    from podnet.load.yamlpos import parse_yaml

    text = yaml.safe_dump([dict(p) for p in probes], sort_keys=False)
    docs, problems = parse_yaml(text, "<probes>")
    problems = list(problems)
    found = []
    if not problems:
        items = docs[0].root.items if docs and docs[0].root is not None else []
        for i, item in enumerate(items):
            # the probe file's own checks, item by item (podnet.analysis.probes)
            p = pr._probe(i, item, problems)
            if p is not None:
                found.append(p)
    if problems:
        raise InputError(problems)
    return tuple(found)
