"""podnet.control.scheduler: filters, scores, FitError text, and fast == explicit."""

from __future__ import annotations

from collections import Counter
from functools import partial

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podnet.control import plan as _plan
from podnet.control.scheduler import Scheduler, Unschedulable, fit_error, pod_request
from podnet.errors import InputError
from podnet.model.base import FrozenDict
from podnet.model.cluster import Node
from podnet.model.spec import (
    Container,
    Inputs,
    LabelSelector,
    Meta,
    NodeSpec,
    PodSpec,
    PodTemplate,
    Resources,
    Taint,
    Toleration,
    Workload,
)

# These tests look at the user's objects alone: no kubeadm addons (podnet.control.addons).
plan = partial(_plan, cluster_dns=False)

APP = FrozenDict(app="web")


def deployment(name="web", replicas=3, cpu=None, **kw):
    c = Container("c", requests=Resources(cpu_m=cpu))
    t = PodTemplate(labels=FrozenDict(app=name), containers=(c,), **kw)
    return Workload("Deployment", Meta(name, "default"), t, replicas, LabelSelector(t.labels))


def test_three_replicas_spread_over_three_nodes():
    c = plan(Inputs(workloads=(deployment(),)))
    assert sorted(p.node for p in c.pods) == ["node-1", "node-2", "node-3"]
    first = c.schedule[0]
    assert first.via == "scheduler" and first.node == "node-1" and first.feasible == 3
    assert [v.score for v in first.verdicts] == [v.score for v in first.verdicts[:1]] * 3
    second = c.schedule[1]
    by_node = {v.node: v for v in second.verdicts}
    assert by_node["node-1"].spread == 0 and by_node["node-2"].spread == 100


def test_node_selector():
    nodes = (NodeSpec("a"), NodeSpec("b", labels=FrozenDict(disk="ssd")), NodeSpec("c"))
    w = deployment(node_selector=FrozenDict(disk="ssd"))
    c = plan(Inputs(nodes=nodes, nodes_given=True, workloads=(w,)))
    assert [p.node for p in c.pods] == ["b", "b", "b"]
    reasons = {v.node: v.reasons for v in c.schedule[0].verdicts}
    assert reasons["a"] == ("node(s) didn't match Pod's node affinity/selector",)


def test_untolerated_taint_message():
    nodes = (
        NodeSpec("a", taints=(Taint("dedicated", "db", "NoSchedule"),)),
        NodeSpec("b", labels=FrozenDict(zone="x")),
        NodeSpec("c", labels=FrozenDict(zone="x")),
    )
    w = deployment(replicas=1, node_selector=FrozenDict(zone="y"))
    with pytest.raises(InputError) as info:
        plan(Inputs(nodes=nodes, nodes_given=True, workloads=(w,)))
    (problem,) = info.value.problems
    assert problem.message.endswith(
        "cannot be scheduled: 0/3 nodes are available: 1 node(s) had untolerated taint"
        " {dedicated: db}, 2 node(s) didn't match Pod's node affinity/selector."
    )
    assert problem.path == "spec.template.spec"


def test_toleration_lets_pod_on_tainted_node_and_prefer_no_schedule_is_no_filter():
    nodes = (
        NodeSpec("a", taints=(Taint("dedicated", "db", "NoSchedule"),)),
        NodeSpec("b", taints=(Taint("soft", "", "PreferNoSchedule"),)),
    )
    w = deployment(replicas=2, tolerations=(Toleration("dedicated", "Equal", "db", "NoSchedule"),))
    c = plan(Inputs(nodes=nodes, nodes_given=True, workloads=(w,)))
    assert sorted(p.node for p in c.pods) == ["a", "b"]


def test_resources_exhausted():
    nodes = tuple(
        NodeSpec(n, allocatable=Resources(cpu_m=1000, memory=2**30, pods=3)) for n in "ab"
    )
    ok = plan(Inputs(nodes=nodes, nodes_given=True, workloads=(deployment(replicas=2, cpu=600),)))
    assert sorted(p.node for p in ok.pods) == ["a", "b"]
    with pytest.raises(InputError) as info:
        plan(Inputs(nodes=nodes, nodes_given=True, workloads=(deployment(replicas=3, cpu=600),)))
    (problem,) = info.value.problems
    assert "0/2 nodes are available: 2 Insufficient cpu." in problem.message
    many = deployment(replicas=7)
    with pytest.raises(InputError) as info:
        plan(Inputs(nodes=nodes, nodes_given=True, workloads=(many,)))
    assert "0/2 nodes are available: 2 Too many pods." in info.value.problems[0].message


def test_least_allocated_prefers_emptier_node():
    nodes = (NodeSpec("a"), NodeSpec("b"))
    pinned = PodSpec(
        Meta("big", "default"),
        PodTemplate(containers=(Container("c", requests=Resources(cpu_m=2000)),), node_name="a"),
    )
    c = plan(
        Inputs(nodes=nodes, nodes_given=True, pods=(pinned,), workloads=(deployment(replicas=1),))
    )
    assert [p.node for p in c.pods if p.name != "big"] == ["b"]


def test_fit_error_and_non_zero_requests():
    assert fit_error(2, [["Insufficient cpu", "Insufficient memory"], ["Too many pods"]]) == (
        "0/2 nodes are available: 1 Insufficient cpu, 1 Insufficient memory, 1 Too many pods."
    )
    r = pod_request(
        PodTemplate(containers=(Container("a", requests=Resources(cpu_m=50)), Container("b")))
    )
    assert (r.cpu, r.memory, r.nz_cpu, r.nz_memory) == (50, 0, 150, 400 * 1024 * 1024)


# ------------------------------------------------------------------ fast == explicit


def _nodes(specs):
    return [
        Node(
            name,
            i + 1,
            ip=None,
            pod_cidr=None,
            labels=FrozenDict(labels),
            taints=taints,  # type: ignore[arg-type]
            allocatable=Resources(cpu_m=cpu, memory=mem, pods=pods),
        )  # fmt: skip
        for i, (name, labels, taints, cpu, mem, pods) in enumerate(specs)
    ]


node_st = st.tuples(
    st.sampled_from([{}, {"disk": "ssd"}]),
    st.sampled_from([(), (Taint("t", "", "NoSchedule"),)]),
    st.sampled_from([1000, 2000, 4000]),
    st.sampled_from([2**30, 4 * 2**30]),
    st.integers(2, 12),
)
pod_st = st.tuples(
    st.integers(0, 5),  # owner
    st.sampled_from([None, 0, 100, 300, 900]),  # cpu
    st.sampled_from([None, 2**27, 2**29]),  # memory
    st.booleans(),  # nodeSelector disk=ssd
    st.booleans(),  # tolerate t
)


@settings(max_examples=150, deadline=None)
@given(st.lists(node_st, min_size=1, max_size=40), st.lists(pod_st, min_size=1, max_size=120))
def test_fast_equals_explicit(node_specs, pod_specs):
    nodes = _nodes([(f"n{i}", *s) for i, s in enumerate(node_specs)])
    results = []
    for mode in ("explicit", "fast"):
        sched = Scheduler(nodes, mode)
        placed = []
        for i, (owner, cpu, mem, sel, tol) in enumerate(pod_specs):
            t = PodTemplate(
                containers=(Container("c", requests=Resources(cpu_m=cpu, memory=mem)),),
                node_selector=FrozenDict(disk="ssd") if sel else FrozenDict(),
                tolerations=(Toleration("t", "Exists"),) if tol else (),
            )
            spec = PodSpec(
                Meta(f"p{i}", "default"), t, owner=("ReplicaSet", f"o{owner}") if owner else None
            )
            try:
                d = sched.schedule(spec, f"default/p{i}")
                placed.append((d.node, d.score))
            except Unschedulable as e:
                placed.append(e.message)
        results.append(placed)
    assert results[0] == results[1]


def test_fast_equals_explicit_for_an_owner_on_many_nodes():
    nodes = _nodes([(f"n{i}", {}, (), 4000 + 1000 * (i % 3), 8 * 2**30, 110) for i in range(50)])
    out = []
    for mode in ("explicit", "fast"):
        sched = Scheduler(nodes, mode)
        placed = []
        for i in range(400):
            cpu = (None, 100, 250)[i % 3]
            t = PodTemplate(containers=(Container("c", requests=Resources(cpu_m=cpu)),))
            owner = ("ReplicaSet", "big") if i % 5 else ("ReplicaSet", f"s{i % 7}")
            placed.append(
                sched.schedule(PodSpec(Meta(f"p{i}", "x"), t, owner=owner), f"x/p{i}").node
            )
        out.append(placed)
    assert out[0] == out[1]
    counts = Counter(out[0])
    assert max(counts.values()) - min(counts.values()) <= 4
