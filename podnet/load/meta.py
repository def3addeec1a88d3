"""ObjectMeta, names, labels, label selectors and resource quantities of Kubernetes objects.

Name rules follow k8s.io/apimachinery pkg/util/validation/validation.go (IsDNS1123Subdomain,
IsDNS1123Label, IsDNS1035Label, IsQualifiedName, IsValidLabelValue, IsValidPortName).
"""

from __future__ import annotations

import re
from dataclasses import replace
from fractions import Fraction

from podnet.load.fields import Cursor
from podnet.load.quantity import ceil_int, parse_quantity
from podnet.model.base import FrozenDict
from podnet.model.spec import LabelSelector, LabelSelectorRequirement, Meta, Resources, Source

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL = re.compile(_LABEL)
_DNS1123_SUBDOMAIN = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_IANA_SVC_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")

DNS1123_SUBDOMAIN = "DNS-1123 subdomain"
DNS1123_LABEL = "DNS-1123 label"
DNS1035_LABEL = "DNS-1035 label"

_RULES = {
    DNS1123_SUBDOMAIN: (
        _DNS1123_SUBDOMAIN,
        253,
        "lower case letters, digits, '-' and '.', starting and ending with a letter or digit",
    ),
    DNS1123_LABEL: (
        _DNS1123_LABEL,
        63,
        "lower case letters, digits and '-', starting and ending with a letter or digit",
    ),
    DNS1035_LABEL: (
        _DNS1035_LABEL,
        63,
        "lower case letters, digits and '-', starting with a letter, ending with a letter or digit",
    ),
}

NAMESPACE_LABEL = "kubernetes.io/metadata.name"


def name_error(name: str, rule: str) -> str | None:
    """Why ``name`` breaks ``rule`` (None when it is valid).

    >>> name_error("web-1", DNS1123_LABEL) is None, name_error("1web", DNS1035_LABEL) is None
    (True, False)
    """
    regex, limit, words = _RULES[rule]
    if len(name) > limit:
        return f"invalid name {name!r}: longer than {limit} characters (expected a {rule})"
    if not regex.fullmatch(name):
        return f"invalid name {name!r} (expected a {rule}: {words})"
    return None


def suggest_name(name: str) -> str | None:
    """A nearby valid name: lower case, invalid characters as '-'.

    >>> suggest_name("Web_Server")
    "did you mean 'web-server'?"
    """
    fixed = re.sub(r"[^a-z0-9.-]", "-", name.lower()).strip("-.")
    return f"did you mean '{fixed}'?" if fixed and fixed != name else None


def port_name_error(name: str) -> str | None:
    """Why ``name`` is not an IANA_SVC_NAME (IsValidPortName), or None.

    >>> port_name_error("http"), port_name_error("http--x") is None
    (None, False)
    """
    if len(name) > 15:
        return f"invalid port name {name!r}: longer than 15 characters"
    if not _IANA_SVC_NAME.fullmatch(name) or "--" in name:
        return (
            f"invalid port name {name!r} (expected lower case letters, digits and '-', "
            "starting and ending with a letter or digit, no '--')"
        )
    if not re.search(r"[a-z]", name):
        return f"invalid port name {name!r}: must contain at least one letter"
    return None


def label_key_error(key: str) -> str | None:
    """Why ``key`` is not a qualified name (``prefix/name``), or None."""
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or name_error(prefix, DNS1123_SUBDOMAIN)):
        return f"invalid key {key!r}: the prefix must be a {DNS1123_SUBDOMAIN}"
    if not name or len(name) > 63 or not _QUALIFIED_NAME.fullmatch(name):
        return (
            f"invalid key {key!r} (expected at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit, after an optional DNS prefix and '/')"
        )
    return None


def label_value_error(value: str) -> str | None:
    """Why ``value`` is not a valid label value, or None."""
    if value and (len(value) > 63 or not _QUALIFIED_NAME.fullmatch(value)):
        return (
            f"invalid label value {value!r} (expected at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit)"
        )
    return None


def labels(cur: Cursor, key: str) -> FrozenDict:
    """A label map at ``key``, every key and value checked."""
    found = cur.str_map(key)
    node = cur.raw(key)
    if found and node is not None:
        sub = Cursor(node, cur.sub(key), cur.obj)  # type: ignore[arg-type]
        for k, v in found.items():
            why = label_key_error(k)
            if why:
                cur.obj.error(why, sub.keypos(k), sub.sub(k))
            why = label_value_error(v)
            if why:
                sub.error(why, k)
    return found


def checked_name(cur: Cursor, key: str, rule: str | None, required: bool = True) -> str | None:
    """The name at ``key``, checked against ``rule``."""
    name = cur.str(key, required=required)
    if name is not None and rule is not None:
        why = name_error(name, rule)
        if why:
            cur.error(why, key, suggest_name(name))
    return name


_META_READ = ("name", "namespace", "labels", "annotations", "deletionTimestamp", "uid")
_META_IGNORED = (
    "generateName",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionGracePeriodSeconds",
    "ownerReferences",
    "finalizers",
    "managedFields",
    "selfLink",
)


def read_meta(top: Cursor, rule: str, namespaced: bool) -> Meta | None:
    """``metadata`` of an object; None when it has no usable name."""
    md = top.map("metadata", required=True)
    if md is None:
        return None
    md.known(_META_READ, _META_IGNORED)
    if not md.has("name") and md.has("generateName"):
        md.error(
            "missing required value",
            "name",
            hint="podnet needs a fixed metadata.name (generateName is not supported)",
        )
        return None
    name = checked_name(md, "name", rule)
    namespace = None
    if namespaced:
        namespace = checked_name(md, "namespace", DNS1123_LABEL, required=False) or "default"
    lab = labels(md, "labels")
    ann = md.str_map("annotations")
    deletion = md.str("deletionTimestamp")
    uid = md.str("uid")
    if name is None:
        return None
    return Meta(name, namespace, lab, ann, deletion, uid, Source(top.obj.pos))


def source(cur: Cursor) -> Source:
    """The Source of the object ``cur`` belongs to, with every position read so far."""
    return Source(cur.obj.pos, cur.obj.frozen_paths())


def selector(cur: Cursor, key: str) -> LabelSelector | None:
    """A metav1.LabelSelector at ``key`` (None when absent)."""
    sel = cur.map(key)
    if sel is None:
        return None if not cur.has(key) else LabelSelector()
    sel.known(("matchLabels", "matchExpressions"))
    match_labels = labels(sel, "matchLabels")
    reqs: list[LabelSelectorRequirement] = []
    for req in sel.maps("matchExpressions"):
        req.known(("key", "operator", "values"))
        k = req.str("key", required=True)
        op = req.str("operator", required=True, choices=("In", "NotIn", "Exists", "DoesNotExist"))
        values = tuple(v for v, _, _ in req.strs("values"))
        if k is not None:
            why = label_key_error(k)
            if why:
                req.error(why, "key")
        if op in ("In", "NotIn") and not values:
            req.error(
                f"operator {op} needs at least one value", "values" if req.has("values") else None
            )
        elif op in ("Exists", "DoesNotExist") and values:
            req.error(f"operator {op} takes no values", "values")
        if k is not None and op is not None:
            reqs.append(LabelSelectorRequirement(k, op, values))
    return LabelSelector(match_labels, tuple(reqs))


def quantity(cur: Cursor, key: str) -> Fraction | None:
    """A resource quantity at ``key`` (string or number), non-negative."""
    node = cur.scalar(key)
    if node is None:
        return None
    try:
        value = parse_quantity(node.value)  # type: ignore[arg-type]
    except (ValueError, TypeError, ZeroDivisionError):
        cur.error(
            f"invalid quantity {node.text!r} (expected e.g. 500m, 2, 512Mi, 8Gi, 1G)",
            key,
        )
        return None
    if value < 0:
        cur.error(f"invalid quantity {node.text!r}: must not be negative", key)
        return None
    return value


def resources(cur: Cursor, default: Resources | None = None) -> Resources:
    """cpu / memory / pods of a resource list (other resources are not emulated)."""
    cpu = quantity(cur, "cpu")
    mem = quantity(cur, "memory")
    pods = quantity(cur, "pods")
    base = default or Resources()
    return Resources(
        cpu_m=ceil_int(cpu * 1000) if cpu is not None else base.cpu_m,
        memory=ceil_int(mem) if mem is not None else base.memory,
        pods=ceil_int(pods) if pods is not None else base.pods,
    )


def finish(meta: Meta, cur: Cursor) -> Meta:
    """``meta`` with the Source of its object, once every value has been read."""
    return replace(meta, src=source(cur))
