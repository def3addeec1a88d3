"""``podnet shell``: one load, then each line answered as ``podnet`` answers it, byte for byte."""

from __future__ import annotations

import builtins
import io
import json
from pathlib import Path

import pytest

import podnet.api
from podnet.cli import run

ROOT = Path(__file__).resolve().parent.parent
DEMO = str(ROOT / "topologies" / "demo.yaml")

PROBES = """\
- from: default/frontend
  service: default/backend
  port: 80
  expect: allow
- from: default/frontend
  to: default/web
  port: 9090
  expect: deny
"""

# commands of several kinds, each line as it would follow 'podnet' on a command line
LINES = [
    "trace frontend svc/backend:80",
    "trace frontend 10.96.255.254:80 -o json",
    "show routes node-1",
    "iptables-save --node node-2",
    "reach --from default/ --via-service",
    "check PROBES",
    "dns backend.default.svc.cluster.local --from frontend",
    "explain pod/frontend",
    "trace frontend svc/backend:80 --seed 3 -o iptables-trace",
]


def call(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def counted_loads(monkeypatch):
    """Every podnet.api.load call, by the files it was given."""
    calls: list[tuple] = []
    real = podnet.api.load

    def load(*paths, **kw):
        calls.append(paths)
        return real(*paths, **kw)

    monkeypatch.setattr(podnet.api, "load", load)
    return calls


def test_each_line_answers_as_the_command_does_and_the_cluster_loads_once(tmp_path, counted_loads):
    probes = tmp_path / "probes.yaml"
    probes.write_text(PROBES)
    lines = [line.replace("PROBES", str(probes)) for line in LINES]
    script = tmp_path / "questions.txt"
    script.write_text("# questions\n\n" + "\n".join(lines) + "\n")

    code, out, err = call("shell", "-f", DEMO, str(script))
    assert counted_loads == [(DEMO,)]  # once, for nine commands

    expected, codes = [], []
    for line in lines:
        c, o, _ = call(*line.split(), "-f", DEMO)
        expected.append(o)
        codes.append(c)
    assert out == "".join(expected)
    assert 0 in codes and 1 in codes  # the not-delivered trace exits 1 on its own
    assert code == max(codes) == 1
    assert err == ""
    assert json.loads(expected[1])["verdict"] != "delivered"


def test_echo_writes_each_command_after_the_prompt(tmp_path):
    script = tmp_path / "s.txt"
    script.write_text("show routes node-1\n  # nothing\nshow neigh 'node-2'\n")
    code, out, _ = call("shell", "-f", DEMO, "--echo", str(script))
    assert code == 0
    _, routes, _ = call("show", "routes", "node-1", "-f", DEMO)
    _, neigh, _ = call("show", "neigh", "node-2", "-f", DEMO)
    assert out == f"podnet> show routes node-1\n{routes}podnet> show neigh node-2\n{neigh}"


def test_a_line_naming_other_files_loads_them_once_too(tmp_path, counted_loads):
    script = tmp_path / "s.txt"
    script.write_text(
        f"show routes node-1 -f {DEMO}\nshow routes node-1\nshow routes node-1 -f {DEMO}\n"
    )
    code, out, _ = call("shell", str(script))  # the shell's own cluster: the bundled demo
    assert code == 0
    assert counted_loads == [(), (DEMO,)]
    assert out.count("default via ") == 3


def test_bad_lines_are_reported_with_their_place_and_the_rest_still_runs(tmp_path):
    script = tmp_path / "s.txt"
    script.write_text(
        "trace frontnd svc/backend:80\n"  # a Pod that is not there
        "trace 'frontend svc/backend:80\n"  # an unclosed quote
        "shell\n"  # no shell within the shell
        "tracee frontend web:9090\n"  # no such command
        "show routes node-1\n"
    )
    code, out, err = call("shell", "-f", DEMO, str(script))
    assert code == 2
    _, routes, _ = call("show", "routes", "node-1", "-f", DEMO)
    assert out == routes  # the good line still ran
    assert "no Pod 'default/frontnd'" in err and f"at {script}:1: trace frontnd" in err
    assert f"error: {script}:2: No closing quotation" in err
    assert f"error: {script}:3: already in a shell" in err
    assert "invalid choice: 'tracee'" in err and "did you mean 'trace'" in err
    assert f"at {script}:4: tracee frontend web:9090" in err
    assert "Traceback" not in err


def test_exit_ends_the_script_and_help_prints_a_commands_help(tmp_path):
    script = tmp_path / "s.txt"
    script.write_text("help show\nexit\nshow routes nowhere\n")
    code, out, err = call("shell", "-f", DEMO, str(script))
    assert code == 0 and err == ""
    assert out.startswith("usage: podnet show ")


def test_warnings_are_written_once_when_the_cluster_loads(tmp_path):
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(
        Path(DEMO).read_text()
        + "\n---\napiVersion: v1\nkind: Service\nmetadata: {name: nobody}\n"
        + "spec:\n  selector: {app: nothing}\n  ports: [{port: 80}]\n"
    )
    script = tmp_path / "s.txt"
    script.write_text("show routes node-1\nshow routes node-2\n")
    code, _, err = call("shell", "-f", str(cluster), str(script))
    assert code == 0
    _, _, alone = call("show", "routes", "node-1", "-f", str(cluster))
    assert "selects no Pod" in alone
    assert err == alone  # the same warnings, once for both commands


def test_a_missing_script_is_a_usage_error():
    code, out, err = call("shell", "-f", DEMO, "/nonexistent/questions.txt")
    assert code == 2 and out == ""
    assert "error: SCRIPT: cannot read /nonexistent/questions.txt" in err


def test_at_a_terminal_it_prompts_and_ends_at_end_of_input(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    typed = iter(["show routes node-1", KeyboardInterrupt, "", "quit", "show routes node-2"])
    prompts = []

    def fake_input(prompt):
        prompts.append(prompt)
        line = next(typed)
        if line is KeyboardInterrupt:  # Ctrl-C at the prompt: a new prompt, the shell goes on
            raise KeyboardInterrupt
        return line

    monkeypatch.setattr("sys.stdin", Tty())
    monkeypatch.setattr(builtins, "input", fake_input)
    code, out, err = call("shell", "-f", DEMO)
    assert code == 0
    assert prompts == ["podnet> "] * 4  # 'quit' ends before the fifth line
    assert "'help' lists them, 'exit' ends" in err
    _, routes, _ = call("show", "routes", "node-1", "-f", DEMO)
    assert out == routes

    monkeypatch.setattr(builtins, "input", lambda prompt: (_ for _ in ()).throw(EOFError))
    code, out, err = call("shell", "-f", DEMO)
    assert code == 0 and out == "" and err.endswith("\n")
