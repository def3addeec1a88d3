"""The SRC/DST grammar (SPEC section 2): what parses to what, and the caret under a bad part."""

from ipaddress import IPv4Address

import pytest

from podnet.errors import UsageError
from podnet.trace.endpoints import parse_dst, parse_src


@pytest.mark.parametrize(
    ("text", "kind", "ns", "name"),
    [
        ("frontend", "pod", "default", "frontend"),
        ("shop/frontend", "pod", "shop", "frontend"),
        ("pod/shop/frontend", "pod", "shop", "frontend"),
        ("pod/frontend", "pod", "default", "frontend"),
        ("deploy/frontend", "deploy", "default", "frontend"),
        ("deploy/shop/frontend", "deploy", "shop", "frontend"),
    ],
)
def test_src_pods_and_deployments(text, kind, ns, name):
    ref = parse_src(text, "default")
    assert (ref.kind, ref.namespace, ref.name) == (kind, ns, name)


def test_src_namespace_default_comes_from_flag():
    assert parse_src("web", "shop").namespace == "shop"


def test_src_node_and_external():
    assert parse_src("node/node-2").node == "node-2"
    ext = parse_src("ext/203.0.113.7@node-1")
    assert (ext.kind, ext.ip, ext.node) == ("ext", IPv4Address("203.0.113.7"), "node-1")


@pytest.mark.parametrize(
    ("text", "kind", "port"),
    [
        ("backend:80", "pod", "80"),
        ("svc/backend:http", "svc", "http"),
        ("svc/shop/backend", "svc", None),
        ("node/node-1:30080", "node", "30080"),
        ("10.96.0.10:53", "ip", "53"),
        ("localhost:9090", "localhost", "9090"),
        ("backend.shop:80", "dns", "80"),
        ("backend.shop.svc.cluster.local:80", "dns", "80"),
    ],
)
def test_dst_kinds(text, kind, port):
    ref = parse_dst(text, "default")
    assert (ref.kind, ref.port) == (kind, port)


def test_bad_ip_has_caret_under_it():
    with pytest.raises(UsageError) as e:
        parse_src("ext/203.0.113.999@node-1")
    text = e.value.problems[0].render()
    assert text.splitlines() == [
        "error: SRC: '203.0.113.999' is not an IPv4 address",
        "    ext/203.0.113.999@node-1",
        "        ^^^^^^^^^^^^^",
        "  hint: write it as four numbers, e.g. 203.0.113.7",
    ]


def test_bad_port_has_caret_under_it():
    with pytest.raises(UsageError) as e:
        parse_dst("svc/backend:99999")
    lines = e.value.problems[0].render().splitlines()
    assert lines[0] == "error: DST: '99999' is not a port"
    assert lines[2] == "    " + " " * len("svc/backend:") + "^^^^^"


def test_upper_case_name_is_refused_where_it_stands():
    with pytest.raises(UsageError) as e:
        parse_dst("svc/shop/Backend:80")
    lines = e.value.problems[0].render().splitlines()
    assert "'Backend' is not a valid Kubernetes name" in lines[0]
    assert lines[2] == "    " + " " * len("svc/shop/") + "^" * len("Backend")


def test_ext_without_node_is_explained():
    with pytest.raises(UsageError) as e:
        parse_src("ext/203.0.113.7")
    assert "needs the node" in e.value.problems[0].message


def test_empty_is_refused():
    with pytest.raises(UsageError):
        parse_src("")
    with pytest.raises(UsageError):
        parse_dst("")
