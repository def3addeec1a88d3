"""The pytest plugin: a user's test file runs green and red as it should, and a failing
assertion shows the rendered trace."""

import podnet.api

pytest_plugins = ["pytester"]

USER_TESTS = """
import pytest
from podnet.testing import assert_delivered, assert_dropped, assert_endpoints

def test_frontend_reaches_every_backend(podnet_cluster):
    t = podnet_cluster.trace("frontend", "svc/backend:80")
    assert_delivered(t)
    assert_endpoints(t, {"default/backend-*"})

def test_wrong_expectation_shows_the_trace(podnet_cluster):
    t = podnet_cluster.trace("frontend", "svc/backend:80")
    assert_dropped(t, by="KUBE-FIREWALL")

def test_endpoints_mismatch(podnet_cluster):
    t = podnet_cluster.trace("frontend", "svc/backend:80")
    assert_endpoints(t, {"default/web"})

@pytest.mark.podnet_cluster("host-gw.yaml")
def test_marker_loads_another_cluster(podnet_cluster):
    assert podnet_cluster.cluster.config.backend == "host-gw"
    assert_delivered(podnet_cluster.trace("default/web", "localhost:9090"))
"""


def test_user_file_green_and_red(pytester):
    (pytester.path / "host-gw.yaml").write_text(
        (podnet.api.topologies_dir() / "demo-host-gw.yaml").read_text()
    )
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=2)
    out = result.stdout.str()
    assert (
        "expected frontend -> svc/backend:80 to be dropped on every path, but its verdict is delivered"
        in out
    )
    assert "path 1/3  p=0.3333333333  DELIVERED" in out  # the rendered trace
    assert "missing default/web; unexpected default/backend-" in out


def test_ini_option_names_the_cluster(pytester):
    (pytester.path / "c.yaml").write_text(
        (podnet.api.topologies_dir() / "demo-host-gw.yaml").read_text()
    )
    pytester.makeini("[pytest]\npodnet_cluster = c.yaml\n")
    pytester.makepyfile(
        test_ini="def test_it(podnet_cluster):\n    assert podnet_cluster.cluster.config.backend == 'host-gw'\n"
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_entry_point_registers_the_plugin(pytestconfig):
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    assert '[project.entry-points.pytest11]\npodnet = "podnet.pytest_plugin"' in text
    # installed (pip install -e .), pytest loads it by the entry point's name
    assert pytestconfig.pluginmanager.get_plugin("podnet") is not None
