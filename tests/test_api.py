"""The Python API (podnet.api): its documented examples run, and check/reach/show work."""

import doctest

import pytest

import podnet
import podnet.api
import podnet.render.graph
import podnet.render.iptables_trace
import podnet.render.linux_views
import podnet.render.pcap
import podnet.render.term
import podnet.render.wire
import podnet.testing
from podnet.errors import InputError, UsageError

DOCUMENTED = [
    podnet.api,
    podnet.testing,
    podnet.render.pcap,
    podnet.render.wire,
    podnet.render.linux_views,
    podnet.render.iptables_trace,
    podnet.render.term,
    podnet.render.graph,
]


@pytest.mark.parametrize("module", DOCUMENTED, ids=lambda m: m.__name__)
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


@pytest.fixture(scope="module")
def demo():
    return podnet.load()


def test_load_is_the_function_not_the_subpackage():
    assert callable(podnet.load) and podnet.load().cluster.nodes


def test_trace_surface(demo):
    t = demo.trace("frontend", "svc/backend:80", protocol="tcp")
    assert t.delivered and len(t.paths) == 3 and len(t.endpoints) == 3
    assert all(p.hops for p in t.paths)
    one = demo.trace("frontend", "svc/backend", port=80)
    assert one.endpoints == t.endpoints


def test_check_takes_dicts_or_a_file(demo, tmp_path):
    results = demo.check(
        [{"from": "default/web", "to": "default/web", "port": 9090, "expect": "allow"}]
    )
    assert [(r.verdict, r.ok) for r in results] == [("allow", True)]
    f = tmp_path / "probes.yaml"
    f.write_text("- {from: default/web, to: default/web, port: 9090, expect: deny}\n")
    (r,) = demo.check(str(f))
    assert r.ok is False and r.mismatches
    with pytest.raises(InputError) as e:
        demo.check([{"form": "default/web"}])
    assert "unknown probe key 'form'" in str(e.value.problems[0].message)


def test_reach_and_show(demo):
    r = demo.reach("app=frontend", "app=backend", port=8080)
    assert r.summary()["allowed"] == 3
    assert demo.show("routes", "node-1").startswith("default via ")
    with pytest.raises(UsageError):
        demo.show("rotues", "node-1")
