"""Files and directories named on the command line, read into positioned YAML documents.

A directory stands for its ``*.yaml`` / ``*.yml`` files sorted by name; with ``recursive`` its
subdirectories too, visited in the same name order (as ``kubectl apply -R`` walks them, without
following symlinked directories). A file named twice is read once.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence

from podnet.errors import did_you_mean
from podnet.load.fields import Ctx
from podnet.load.yamlpos import Document, parse_yaml
from podnet.model.base import Pos

YAML_SUFFIXES = (".yaml", ".yml")
MAX_FILE_BYTES = 512 * 2**20
"""The largest file read (512 MiB, several times a 150,000-Pod cluster's manifests)."""


def expand_paths(paths: Sequence[str], recursive: bool, ctx: Ctx) -> list[str]:
    """The files ``paths`` stand for, in order, each once; missing paths are reported."""
    files: list[str] = []
    seen: set[str] = set()
    for path in paths:
        if os.path.isdir(path):
            found = list(_walk(path, recursive))
            if not found:
                ctx.warn(
                    f"directory {path!r} holds no *.yaml or *.yml files",
                    None,
                    hint=None if recursive else "use -R to read its subdirectories too",
                )
        elif os.path.exists(path):
            found = [path]
        else:
            ctx.error(f"no such file or directory: {path!r}", None, hint=_missing_hint(path))
            continue
        for f in found:
            key = os.path.realpath(f)
            if key not in seen:
                seen.add(key)
                files.append(f)
    return files


def _walk(directory: str, recursive: bool) -> Iterator[str]:
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if recursive:
                yield from _walk(entry.path, recursive)
        elif entry.name.endswith(YAML_SUFFIXES) and entry.is_file():
            yield entry.path


def _missing_hint(path: str) -> str:
    parent = os.path.dirname(path) or "."
    if os.path.isdir(parent):
        try:
            names = sorted(os.listdir(parent))
        except OSError:
            names = []
        close = did_you_mean(os.path.basename(path), names)
        if close:
            return close
        return f"check the path: {parent!r} has no entry {os.path.basename(path)!r}"
    return f"check the path: directory {parent!r} does not exist either"


def _read_bounded(fh) -> bytes:
    """At most MAX_FILE_BYTES + 1 bytes of a stream, in chunks (``read(n)`` would reserve n)."""
    chunks: list[bytes] = []
    total = 0
    while total <= MAX_FILE_BYTES:
        chunk = fh.read(min(1 << 20, MAX_FILE_BYTES + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def read_documents(file: str, ctx: Ctx) -> list[Document]:
    """The documents of one file; unreadable files and YAML problems are reported."""
    try:
        with open(file, "rb") as fh:
            # A regular file's size is known before reading; anything else (a pipe, /dev/zero)
            # is read at most one byte over the limit, so memory stays bounded either way.
            st = os.fstat(fh.fileno())
            size = st.st_size
            if size > MAX_FILE_BYTES:
                data = b""
            elif stat.S_ISREG(st.st_mode):
                data = fh.read()
            else:
                data = _read_bounded(fh)
    except OSError as exc:
        ctx.error(f"cannot read {file!r}: {exc.strerror or exc}", None)
        return []
    if len(data) > MAX_FILE_BYTES or size > MAX_FILE_BYTES:
        ctx.error(
            f"file {file!r} is larger than {MAX_FILE_BYTES // 2**20} MiB",
            None,
            hint="podnet refuses files this large; split the manifests into several files",
        )
        return []
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        ctx.error(
            f"not UTF-8 text (byte 0x{data[exc.start]:02x})",
            Pos(file, line, col),
            hint="save the file as UTF-8",
        )
        return []
    docs, problems = parse_yaml(text, file)
    for p in problems:
        ctx.add(p)
    return docs
