"""Fuzzing the loader and the CLI with broken manifests (hypothesis).

Real manifests (the conformance cases' ``manifests.yaml`` and the bundled demo topologies) are
mutated, as text (truncated, garbage inserted, lines deleted or doubled, characters replaced)
and as trees (keys deleted or renamed, values of another type, two values swapped, a document
given twice), and fed to ``podnet.load`` and to ``podnet trace``. The properties:

- no traceback, ever: ``podnet.load`` returns or raises a PodnetError, the CLI returns 0, 1 or 2
  and says why when it returns 2;
- whatever loads traces: every trace ends, its paths' probabilities add up to exactly 1, a
  delivered connection's reply comes back from the address the client used (or says why not);
- the same input gives the same output, byte for byte.

In CI each test runs a fixed set of examples (derandomized; the whole fuzz suite takes well under
two minutes). A longer run by hand draws fresh random examples::

    PODNET_FUZZ_EXAMPLES=5000 PODNET_FUZZ_REPORT=/tmp/fuzz_numbers.md \\
        python3 -m pytest -q -p no:cacheprovider tests/test_fuzz_load.py tests/test_fuzz_trace.py
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import pytest
import yaml
from fuzz_support import COUNTS, budget, check_trace, cli, report
from hypothesis import given
from hypothesis import strategies as st

import podnet
from podnet.api import topologies_dir
from podnet.errors import PodnetError

HERE = Path(__file__).parent
SEEDS = sorted(str(p) for p in (HERE / "conformance").glob("*/manifests.yaml")) + [
    str(topologies_dir() / "demo.yaml"),
    str(topologies_dir() / "demo-host-gw.yaml"),
]
TEXTS = {p: Path(p).read_text() for p in SEEDS}
GARBAGE = [
    ":", ": ", "- ", "-", "{", "}", "[", "]", "&a ", "*a", "*b ", "!!python/object:os.system ",
    "!!binary ", "!Ref ", "\t", "\x00", "\ufeff", "\n---\n", "\n...\n", "'", '"', "#", "|", ">",
    "<<: *a\n", "? ", "%YAML 1.1\n", "\u2028", "é", "0x1F", "1e400", "-.inf", "~", "null",
    "yes", "10.244.0.0/33", "999999999999999999999", "apiVersion: v1\nkind: Pod\n",
]  # fmt: skip
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", "80", "http", "TCP", "10.244.1.5", "10.96.0.0/12", "node-1", "Pod", "v1"]),
    st.lists(st.integers(0, 70000), max_size=3),
    st.dictionaries(st.sampled_from(["name", "port", "app", "x"]), st.integers(0, 5), max_size=2),
)

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    report(__name__)


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


# ---------------------------------------------------------------------------- mutations


def _paths(node, out, depth=0):
    """Every (container, key) of a plain YAML tree."""
    if depth > 30:
        return out
    if isinstance(node, dict):
        for k in list(node):
            out.append((node, k))
            _paths(node[k], out, depth + 1)
    elif isinstance(node, list):
        for i in range(len(node)):
            out.append((node, i))
            _paths(node[i], out, depth + 1)
    return out


def mutate_tree(data, docs: list) -> list:
    """Apply one to three tree mutations to ``docs`` (plain data); returns the documents."""
    for _ in range(data.draw(st.integers(1, 3), label="tree mutations")):
        op = data.draw(
            st.sampled_from(["delete", "rename", "retype", "swap", "double"]), label="op"
        )
        if op == "double" and docs:
            i = data.draw(st.integers(0, len(docs) - 1), label="doc")
            docs.append(yaml.safe_load(yaml.safe_dump(docs[i])))
            continue
        paths = _paths(docs, [])
        if not paths:
            continue
        parent, key = data.draw(st.sampled_from(paths), label="where")
        if op == "delete":
            del parent[key]
        elif op == "rename" and isinstance(parent, dict):
            new = data.draw(
                st.one_of(
                    st.text(max_size=10),
                    st.sampled_from(
                        [str(key).lower(), str(key) + "s", str(key)[1:], str(key).upper()]
                    ),
                ),
                label="new key",
            )
            if new not in parent:
                parent[new] = parent.pop(key)
        elif op == "retype":
            parent[key] = data.draw(VALUES, label="value")
        elif op == "swap":
            p2, k2 = data.draw(st.sampled_from(paths), label="other")
            with contextlib.suppress(KeyError, IndexError):  # one moved away with the first
                parent[key], p2[k2] = p2[k2], parent[key]
    return docs


def mutate_text(data, text: str) -> str:
    """Apply one to three text mutations."""
    for _ in range(data.draw(st.integers(1, 3), label="text mutations")):
        op = data.draw(
            st.sampled_from(["truncate", "insert", "delete-line", "double-line", "replace"]),
            label="op",
        )
        at = data.draw(st.integers(0, max(0, len(text))), label="at")
        lines = text.split("\n")
        line = data.draw(st.integers(0, max(0, len(lines) - 1)), label="line")
        if op == "truncate":
            text = text[:at]
        elif op == "insert":
            text = (
                text[:at]
                + data.draw(
                    st.one_of(st.sampled_from(GARBAGE), st.text(max_size=5)), label="garbage"
                )
                + text[at:]
            )
        elif op == "delete-line":
            text = "\n".join(lines[:line] + lines[line + 1 :])
        elif op == "double-line":
            text = "\n".join(lines[: line + 1] + lines[line:])
        else:
            text = text[:at] + data.draw(st.characters(), label="char") + text[at + 1 :]
    return text


def draw_mutant(data) -> str:
    seed = data.draw(st.sampled_from(SEEDS), label="manifest")
    text = TEXTS[seed]
    if data.draw(st.booleans(), label="as text"):
        return mutate_text(data, text)
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    return yaml.safe_dump_all(mutate_tree(data, docs), sort_keys=False)


def _endpoints(data, cluster) -> tuple[str, str]:
    """A SRC and a DST of the loaded cluster (Pods, Services, nodes)."""
    pods = [p.key for p in cluster.pods] or ["default/none"]
    src = data.draw(st.sampled_from(pods), label="src")
    dsts = [f"{k}:80" for k in pods] + [
        f"svc/{s.key}:{s.spec.ports[0].port}"
        for s in cluster.services
        if s.spec.ports and s.cluster_ip
    ]
    return src, data.draw(st.sampled_from(dsts), label="dst")


# ---------------------------------------------------------------------------- properties


def load_or_refuse(path: str):
    """podnet.load: a LoadedCluster, or None after a PodnetError (anything else fails)."""
    try:
        return podnet.load(path)
    except PodnetError as e:
        assert e.problems and all(p.render() for p in e.problems)
        return None


@budget(150)
@given(st.data())
def test_mutated_manifests_load_or_fail_cleanly(workdir, data):
    text = draw_mutant(data)
    f = workdir / "m.yaml"
    f.write_text(text, encoding="utf-8", errors="surrogatepass")
    COUNTS[f"{__name__}.mutated_manifests"] += 1
    loaded = load_or_refuse(str(f))
    if loaded is None:
        status, out, err = cli(["trace", "a", "b:80", "-f", str(f)])
        assert status == 2 and out == ""
        return
    src, dst = _endpoints(data, loaded.cluster)
    try:
        t = loaded.trace(src, dst)
    except PodnetError:
        return
    check_trace(t)
    status, _, _ = cli(["trace", src, dst, "-f", str(f)])
    assert status == (0 if t.verdict == "delivered" else 1)


@budget(60)
@given(st.data())
def test_mutated_bytes_never_crash(workdir, data):
    """Raw bytes: invalid UTF-8, NUL bytes, byte order marks, cut in the middle of a character."""
    seed = data.draw(st.sampled_from(SEEDS), label="manifest")
    raw = TEXTS[seed].encode()
    at = data.draw(st.integers(0, len(raw)), label="at")
    junk = data.draw(st.binary(max_size=8), label="bytes")
    f = workdir / "b.yaml"
    f.write_bytes(raw[:at] + junk + raw[at + data.draw(st.integers(0, 4), label="cut") :])
    COUNTS[f"{__name__}.mutated_bytes"] += 1
    load_or_refuse(str(f))
    cli(["iptables-save", "--node", "node-1", "-f", str(f)])


@budget(25)
@given(st.data())
def test_same_input_same_output(workdir, data):
    """Two runs of one command on one (possibly broken) input print the same bytes."""
    text = draw_mutant(data)
    f = workdir / "d.yaml"
    f.write_text(text, encoding="utf-8", errors="surrogatepass")
    COUNTS[f"{__name__}.determinism"] += 1
    loaded = load_or_refuse(str(f))
    argv = ["trace", "a", "b:80", "-f", str(f)]
    if loaded is not None:
        src, dst = _endpoints(data, loaded.cluster)
        argv = [
            "trace",
            src,
            dst,
            "-f",
            str(f),
            "-o",
            data.draw(st.sampled_from(["text", "json"]), label="output"),
        ]
    assert cli(argv) == cli(argv)
