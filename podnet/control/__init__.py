"""The control plane: what the API server, the controllers, the scheduler and the CNI's IPAM do
between ``kubectl apply`` and a running cluster, deterministically.

:func:`plan` runs the phases in order (SPEC 1.2); problems are collected and raised together as
one :class:`podnet.errors.InputError` at the checkpoints, so nothing half-built escapes.
"""

from __future__ import annotations

from podnet.control.addons import ADDON_FILE, add_cluster_addons
from podnet.control.endpointslices import plan_endpoint_slices
from podnet.control.ipam import allocate_ips
from podnet.control.namespaces import namespaces_named, plan_namespaces
from podnet.control.nodes import plan_nodes
from podnet.control.pods import SourceOrder, make_drafts, mentioned_nodes, place, to_pods
from podnet.control.report import Report
from podnet.control.services import plan_services
from podnet.errors import InputError
from podnet.model.cluster import Cluster
from podnet.model.spec import Inputs

__all__ = ["plan"]


def _checkpoint(report: Report) -> None:
    """Stop here when anything is wrong: later phases build on what came before."""
    if report.errors:
        raise InputError(report.errors)


def plan(inputs: Inputs, *, scheduler: str = "auto", cluster_dns: bool = True) -> Cluster:
    """Play the control plane over the loaded inputs and return the running cluster.

    ``scheduler`` picks how nodes are scored ("auto", "explicit", "fast"); the result is the
    same, "explicit" keeps every node's verdict in ``Cluster.schedule``. ``cluster_dns=False``
    leaves out what kubeadm adds (podnet.control.addons: the ``kubernetes`` Service, kube-dns).

    >>> from podnet.model.spec import Inputs
    >>> c = plan(Inputs())
    >>> [(n.name, str(n.ip), str(n.pod_cidr)) for n in c.nodes][0]
    ('node-1', '192.168.0.11', '10.244.1.0/24')
    """
    report = Report()
    order = SourceOrder((ADDON_FILE, *inputs.files))  # kubeadm's objects come first

    # 1-2: nodes, kubeadm's objects (kubernetes Service, cluster DNS) and namespaces; everything
    # after needs them whole.
    nodes = plan_nodes(inputs, mentioned_nodes(inputs, order), report)
    if cluster_dns:
        inputs = add_cluster_addons(inputs, nodes, report)
    namespaces = plan_namespaces(inputs, namespaces_named(inputs), report)
    _checkpoint(report)

    # 3-6: workloads -> Pods, scheduling, Pod IPs, Service IPs and node ports.
    drafts = make_drafts(inputs, nodes, order, report)
    schedule = place(drafts, nodes, report, scheduler)
    allocate_ips(drafts, report)
    services = plan_services(inputs.services, inputs.config, report)
    _checkpoint(report)

    # 7: EndpointSlices from the placed Pods.
    pods = to_pods(drafts)
    slices = plan_endpoint_slices(services, pods, nodes, inputs.endpoint_slices, report)
    _checkpoint(report)

    # 8: the cluster as it runs.
    return Cluster(
        config=inputs.config,
        nodes=nodes,
        namespaces=namespaces,
        pods=pods,
        services=services,
        endpoint_slices=slices,
        policies=inputs.policies,
        events=tuple(report.events),
        warnings=tuple(report.warnings),
        schedule=schedule,
    )
