"""The pytest plugin (entry point ``pytest11``): a ``podnet_cluster`` fixture and trace
assertions that print the rendered trace when they fail.

The fixture loads the cluster named by the test's ``@pytest.mark.podnet_cluster("path", ...)``
marker, else by the ini option ``podnet_cluster`` (paths relative to the ini file), else the
bundled demo; each set of files is loaded once per session. Marker paths are relative to the
test file's directory, or to the directory pytest runs in.

A complete test file::

    from podnet.testing import assert_delivered, assert_endpoints

    def test_frontend_reaches_backends(podnet_cluster):
        t = podnet_cluster.trace("frontend", "svc/backend:80")
        assert_delivered(t)
        assert_endpoints(t, {"default/backend-*"})
"""

from __future__ import annotations

from pathlib import Path

import pytest

from podnet.testing import assert_delivered, assert_dropped, assert_endpoints

__all__ = ["assert_delivered", "assert_dropped", "assert_endpoints", "podnet_cluster"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "podnet_cluster",
        "podnet: cluster files or directories the podnet_cluster fixture loads (default: the bundled demo)",
        type="args",
        default=[],
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "podnet_cluster(*paths): the cluster files or directories the podnet_cluster fixture loads for this test",
    )


@pytest.fixture(scope="session")
def _podnet_clusters() -> dict:
    """Clusters loaded in this session, by their files."""
    return {}


def _marker_paths(request: pytest.FixtureRequest) -> tuple[str, ...] | None:
    marker = request.node.get_closest_marker("podnet_cluster")
    if marker is None:
        return None
    here = Path(str(request.node.path)).parent
    out = []
    for arg in marker.args:
        p = Path(arg)
        if not p.is_absolute() and (here / p).exists():
            p = here / p
        out.append(str(p))
    return tuple(out)


def _ini_paths(config: pytest.Config) -> tuple[str, ...]:
    base = Path(config.inipath).parent if config.inipath else Path(config.rootpath)
    return tuple(
        str(p if Path(p).is_absolute() else base / p) for p in config.getini("podnet_cluster")
    )


@pytest.fixture
def podnet_cluster(request: pytest.FixtureRequest, _podnet_clusters: dict):
    """The cluster under test: a podnet.api.LoadedCluster (``.trace``, ``.check``, ``.show``)."""
    import podnet

    paths = _marker_paths(request)
    if paths is None:
        paths = _ini_paths(request.config)
    if paths not in _podnet_clusters:
        _podnet_clusters[paths] = podnet.load(*paths)
    return _podnet_clusters[paths]
