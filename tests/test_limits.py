"""Loops, limits and safety: what podnet does with inputs built to make it loop, blow up, run
code, read other files or reach the network.

- A routing loop ends as LOOP with the hops that repeat named; a low TTL as TTL_EXCEEDED.
- An iptables jump cycle is refused when the rules are loaded: exit 2 with the chains named.
- Alias bombs, deep nesting and huge files are refused with a clear message, in bounded memory
  (files over podnet.load.reader.MAX_FILE_BYTES = 512 MiB are refused before being read).
- Only podnet's own safe YAML tree builder reads input: ``!!python/...`` tags are refused and
  run nothing; loading reads only the named files (YAML has no includes, directory symlinks are
  not followed) and opens no socket.
"""

from __future__ import annotations

import dataclasses
import io
import socket
import sys
import tracemalloc
from ipaddress import IPv4Address
from pathlib import Path

import pytest

import podnet
from podnet.api import demo_path, topologies_dir
from podnet.cli import run
from podnet.dataplane.network import NetnsMap
from podnet.dataplane.ruleset import Ruleset
from podnet.dataplane.rulevalues import RuleError
from podnet.errors import InputError
from podnet.load import load_inputs
from podnet.model.dataplane import Chain, Route, Table
from podnet.model.trace import Packet
from podnet.trace.engine import Engine
from podnet.trace.flight import Flight
from podnet.trace.run import run_trace
from podnet.trace.view import view_of


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run(argv, out, err)
    return status, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------------------- routing loops


@pytest.fixture(scope="module")
def looped():
    """The host-gw demo with node-2 sending its own podCIDR back to node-1 (a stale route a
    hand-run `ip route replace` could leave): node-1 routes the subnet to node-2 and back."""
    net = podnet.load(str(topologies_dir() / "demo-host-gw.yaml")).network
    nodes = {n.name: n for n in net.cluster.nodes}
    orig = net.netns

    def build(name):
        ns = orig[name]
        if name != "node:node-2":
            return ns
        bad = Route(nodes["node-2"].pod_cidr, "eth0", gateway=nodes["node-1"].ip)
        return dataclasses.replace(
            ns,
            routes=tuple(bad if r.dst == bad.dst and r.table == "main" else r for r in ns.routes),
        )

    looped = dataclasses.replace(net, netns=NetnsMap(orig.names(), build), _memo={})
    target = next(p for p in net.cluster.pods if p.node == "node-2" and not p.host_network)
    return looped, target


def test_routing_loop_ends_as_loop_naming_the_hops(looped):
    net, target = looped
    t = run_trace(net, "frontend", f"{target.ip}:80")
    assert [p.forward.disposition for p in t.paths] == ["LOOP"]
    assert t.paths[0].forward.reason == (
        "the packet comes back to eth0 of node:node-2 unchanged: a forwarding loop through "
        "node:node-2 eth0 in -> node:node-2 eth0 out -> node:node-1 eth0 in -> "
        "node:node-1 eth0 out -> node:node-2 eth0 in again"
    )
    assert sum(p.probability for p in t.paths) == 1


def test_routing_loop_with_a_low_ttl_ends_as_ttl_exceeded(looped):
    net, target = looped
    src = next(p for p in net.cluster.pods if p.key.startswith("default/frontend-"))
    engine = Engine(view_of(net))
    ends = engine.send(Flight(Packet(src.ip, target.ip, "tcp", 40000, 80, ttl=3)), f"pod:{src.key}")
    assert [(e.disposition, e.reason) for e in ends] == [
        ("TTL_EXCEEDED", "TTL expired in node:node-1: the kernel answers ICMP time exceeded")
    ]


# ---------------------------------------------------------------------------- iptables cycles


def test_ruleset_refuses_a_jump_cycle():
    t = Table(
        "filter",
        (Chain("FORWARD", ("-j A",), "ACCEPT"), Chain("A", ("-j B",)), Chain("B", ("-j A",))),
    )
    with pytest.raises(RuleError) as info:
        Ruleset.from_tables([t])
    assert isinstance(info.value, InputError)
    assert [p.render() for p in info.value.problems] == [
        "error: filter: jump loop A -> B -> A (the kernel refuses it as a loop)"
    ]


def test_a_jump_cycle_in_a_nodes_rules_is_exit_2(monkeypatch):
    from podnet.dataplane import build

    real = build._node_tables

    def with_cycle(cluster, node):
        tables = real(cluster, node)
        if node != "node-1":
            return tables
        out = []
        for t in tables:
            if t.name == "filter":
                chains = tuple(
                    Chain(c.name, ("-j LOOP-A", *c.rules), c.policy) if c.name == "FORWARD" else c
                    for c in t.chains
                )
                t = Table(
                    t.name,
                    (*chains, Chain("LOOP-A", ("-j LOOP-B",)), Chain("LOOP-B", ("-j LOOP-A",))),
                )
            out.append(t)
        return tuple(out)

    monkeypatch.setattr(build, "_node_tables", with_cycle)
    assert _cli(["trace", "frontend", "svc/backend:80"]) == (
        2,
        "",
        "error: node:node-1 filter: jump loop LOOP-A -> LOOP-B -> LOOP-A (the kernel refuses it as a loop)\n"
        "  hint: iptables-restore would refuse the rules of node:node-1 too: nothing was traced\n",
    )


# ---------------------------------------------------------------------------- size limits


def _load_errors(path: Path) -> list[str]:
    with pytest.raises(InputError) as info:
        load_inputs([str(path)])
    return [p.render() for p in info.value.problems]


def test_alias_bomb_is_refused_in_bounded_memory(tmp_path):
    # The billion laughs: 10**9 strings if expanded.
    text = "a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol,lol]\n" + "".join(
        f"{b}: &{b} [{', '.join(['*' + a] * 10)}]\n"
        for a, b in zip("abcdefgh", "bcdefghi", strict=True)
    )
    (tmp_path / "bomb.yaml").write_text(text)
    tracemalloc.start()
    try:
        errors = _load_errors(tmp_path / "bomb.yaml")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert errors[0].endswith(
        "error: aliases expand this document to more than 2,000,000 nodes\n"
        "  hint: podnet refuses documents whose aliases expand this far (an alias bomb?)"
    )
    assert peak < 20 * 2**20, peak


def test_very_deep_nesting_is_refused_without_recursion(tmp_path):
    (tmp_path / "deep.yaml").write_text("x: " + "[" * 100_000 + "]" * 100_000 + "\n")
    (tmp_path / "deepmap.yaml").write_text("".join("  " * i + f"k{i}:\n" for i in range(3000)))
    assert _load_errors(tmp_path / "deep.yaml") == [
        f"{tmp_path / 'deep.yaml'}:1:103: error: nesting deeper than 100 levels\n"
        "  hint: podnet refuses documents nested more than 100 levels deep"
    ]
    assert _load_errors(tmp_path / "deepmap.yaml")[0].endswith(
        "error: nesting deeper than 100 levels\n  hint: podnet refuses documents nested more than 100 levels deep"
    )


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path):
    from podnet.load import reader

    big = tmp_path / "big.yaml"
    with open(big, "wb") as fh:
        fh.truncate(reader.MAX_FILE_BYTES + 1)  # sparse: costs no disk and is never read
    assert _load_errors(big) == [
        f"error: file '{big}' is larger than 512 MiB\n"
        "  hint: podnet refuses files this large; split the manifests into several files"
    ]


def test_an_endless_file_is_read_only_up_to_the_limit(monkeypatch):
    from podnet.load import reader

    monkeypatch.setattr(reader, "MAX_FILE_BYTES", 2**20)
    status, out, err = _cli(["trace", "a", "b:80", "-f", "/dev/zero"])
    assert (status, out) == (2, "")
    assert err.startswith("error: file '/dev/zero' is larger than 1 MiB\n")


# ---------------------------------------------------------------------------- safety


@pytest.mark.parametrize(
    "tagged",
    [
        "metadata: !!python/object/apply:os.system ['touch {marker}']\n",
        "metadata: {name: !!python/object/apply:os.system ['touch {marker}']}\n",
        "metadata: !!python/object/new:os.system ['touch {marker}']\n",
        "metadata: {name: !!python/name:os.system }\n",
        "metadata: !!python/object:__main__.X {name: a}\n",
    ],
)
def test_python_tags_are_refused_and_run_nothing(tmp_path, tagged):
    marker = tmp_path / "ran"
    f = tmp_path / "in.yaml"
    f.write_text("apiVersion: v1\nkind: Pod\n" + tagged.replace("{marker}", str(marker)))
    (error,) = _load_errors(f)
    assert "error: " in error and "unsupported YAML tag !!python/" in error
    assert error.endswith(
        "hint: podnet reads plain YAML only (strings, numbers, booleans, null, maps, lists)"
    )
    assert not marker.exists()


def test_no_yaml_constructor_that_builds_objects_is_used():
    """podnet builds its trees from parser events; no full/unsafe loader appears anywhere."""
    root = Path(podnet.__file__).parent
    for src in root.rglob("*.py"):
        text = src.read_text()
        for word in (
            "yaml.load(",
            "yaml.load_all(",
            "unsafe_load",
            "full_load",
            "UnsafeLoader",
            "FullLoader",
            "yaml.Loader",
            "eval(",
            "pickle",
        ):
            assert word not in text, f"{src.relative_to(root)} uses {word}"


def test_loading_reads_only_the_named_files(tmp_path):
    """A manifest naming other files (an image path, an annotation) makes podnet open nothing
    else, and a directory symlink inside a directory given with -R is not followed."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: secret}\nspec: {containers: [{name: c}]}\n"
    )
    d = tmp_path / "cluster"
    d.mkdir()
    (d / "a.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  annotations: {include: /etc/passwd, file: ../outside/secret.yaml}\n"
        f"spec: {{containers: [{{name: c, image: 'file://{outside}/secret.yaml'}}]}}\n"
    )
    (d / "link").symlink_to(outside, target_is_directory=True)
    opened: list[str] = []
    active = [True]

    def hook(event, args):
        if active[0] and event == "open" and isinstance(args[0], str):
            opened.append(args[0])

    sys.addaudithook(hook)  # audit hooks stay for the process: the flag switches this one off
    try:
        inputs, _ = load_inputs([str(d)], recursive=True)
    finally:
        active[0] = False
    assert [p.meta.name for p in inputs.pods] == ["a"]
    data_files = [
        p for p in opened if not p.endswith((".py", ".pyc", ".so")) and "__pycache__" not in p
    ]
    assert data_files == [str(d / "a.yaml")]


def test_load_and_trace_never_touch_the_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("podnet tried to use the network")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "gethostbyname", refuse)
    loaded = podnet.load(demo_path())
    t = loaded.trace("frontend", "svc/backend:80")
    assert t.verdict == "delivered"
    for argv in (
        ["trace", "frontend", "svc/backend:80", "-o", "json"],
        ["iptables-save", "--node", "node-1"],
    ):
        status, out, err = _cli(argv)
        assert (status, err) == (0, "") and out
    assert IPv4Address("10.96.0.1") in loaded.cluster.config.service_cidr
