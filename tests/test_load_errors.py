"""podnet.load: every class of input error, with the exact message a user sees."""

from __future__ import annotations

import pytest

from podnet.errors import InputError
from podnet.load import load_inputs


@pytest.fixture
def errors(tmp_path, monkeypatch):
    """Load ``text`` as in.yaml (a relative name, so messages are stable); the rendered errors."""
    monkeypatch.chdir(tmp_path)

    def run(text: str) -> list[str]:
        (tmp_path / "in.yaml").write_text(text)
        with pytest.raises(InputError) as info:
            load_inputs(["in.yaml"])
        return [p.render() for p in info.value.problems]

    return run


POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n"

CASES = {
    "duplicate key": (
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  name: b\nspec: {containers: [{name: c}]}\n",
        ["in.yaml:5:3: error: metadata.name: duplicate key 'name' (first at in.yaml:4:3)"],
    ),
    "yaml syntax": (
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n labels: x\n",
        [
            "in.yaml:5:2: error: invalid YAML: expected <block end>, but found '<block mapping start>'\n"
            "  hint: check the indentation: this line does not line up with the lines above "
            "(while parsing a block mapping at in.yaml:1:1)"
        ],
    ),
    "unknown key": (
        POD + "spec:\n  nodname: node-1\n  containers: [{name: c}]\n",
        [
            "in.yaml:5:3: error: spec.nodname: unknown key 'nodname'\n"
            "  hint: did you mean 'nodeName' or 'hostname'?"
        ],
    ),
    "wrong type str for int": (
        POD + "spec:\n  containers:\n  - name: c\n    ports: [{containerPort: abc}]\n",
        [
            "in.yaml:7:29: error: spec.containers[0].ports[0].containerPort: "
            "wrong type (found str 'abc', expected integer)"
        ],
    ),
    "wrong type list for map": (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a, labels: [x]}\nspec: {containers: [{name: c}]}\n",
        ["in.yaml:3:29: error: metadata.labels: wrong type (found list, expected mapping)"],
    ),
    "unquoted number label": (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a, labels: {version: 1}}\n"
        "spec: {containers: [{name: c}]}\n",
        [
            "in.yaml:3:39: error: metadata.labels.version: wrong type (found int 1, expected string)\n"
            '  hint: quote it to make it a string: "1"'
        ],
    ),
    "bad cidrs": (
        "apiVersion: podnet/v1\nkind: Cluster\nspec:\n  clusterCIDR: 10.244.1.0/16\n"
        "  serviceCIDR: 10.96.0.0/33\n",
        [
            "in.yaml:4:16: error: spec.clusterCIDR: invalid CIDR '10.244.1.0/16': host bits are set\n"
            "  hint: did you mean '10.244.0.0/16'?",
            "in.yaml:5:16: error: spec.serviceCIDR: invalid CIDR '10.96.0.0/33'",
        ],
    ),
    "cluster values and keys": (
        "apiVersion: podnet/v1\nkind: Cluster\nspec:\n  network: {plugin: flannel, backend: vxlna}\n"
        "  kubeProxy: {mod: iptables}\n  serviceNodePortRange: 32767-30000\n",
        [
            "in.yaml:4:39: error: spec.network.backend: invalid value 'vxlna' "
            "(expected one of vxlan, host-gw)\n  hint: did you mean 'vxlan'?",
            "in.yaml:5:15: error: spec.kubeProxy.mod: unknown key 'mod'\n  hint: did you mean 'mode'?",
            "in.yaml:6:25: error: spec.serviceNodePortRange: invalid port range '32767-30000': "
            "the high port is below the low port\n  hint: did you mean '30000-32767'?",
        ],
    ),
    "second cluster": (
        "apiVersion: podnet/v1\nkind: Cluster\n---\napiVersion: podnet/v1\nkind: Cluster\n",
        [
            "in.yaml:5:7: error: kind: a second Cluster document (the first is at in.yaml:1:1)\n"
            "  hint: give at most one Cluster document"
        ],
    ),
    "document not a mapping": (
        "- a\n- b\n",
        ["in.yaml:1:1: error: a document must be a mapping with apiVersion and kind (found list)"],
    ),
    "missing kind": (
        "apiVersion: v1\nmetadata: {name: a}\n",
        ["in.yaml:1:1: error: kind: missing required value"],
    ),
    "wrong apiVersion": (
        "apiVersion: extensions/v1beta1\nkind: Deployment\nmetadata: {name: a}\n",
        [
            "in.yaml:1:13: error: apiVersion: unsupported apiVersion 'extensions/v1beta1' for kind "
            "Deployment\n  hint: use apiVersion: apps/v1"
        ],
    ),
    "duplicate object": (
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80}]}\n---\n"
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 81}]}\n",
        [
            "in.yaml:8:18: error: metadata.name: duplicate Service default/a (first at in.yaml:3:18)\n"
            "  hint: each object may be given once; remove or rename one"
        ],
    ),
    "service validation": (
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  type: Clusterip\n  ports:\n"
        "  - {port: 80, name: web}\n  - {port: 81}\n  - {port: 70000, name: web, protocol: ICMP}\n",
        [
            "in.yaml:5:9: error: spec.type: invalid value 'Clusterip' "
            "(expected one of ClusterIP, NodePort, LoadBalancer, ExternalName)\n"
            "  hint: did you mean 'ClusterIP'?",
            "in.yaml:8:5: error: spec.ports[1].name: missing required value\n"
            "  hint: a Service with more than one port must name every port",
            "in.yaml:9:12: error: spec.ports[2].port: 70000 is out of range (expected 1..65535)",
            "in.yaml:9:25: error: spec.ports[2].name: duplicate port name 'web' (also at spec.ports[0])",
            "in.yaml:9:40: error: spec.ports[2].protocol: invalid value 'ICMP' "
            "(expected one of TCP, UDP, SCTP)",
        ],
    ),
    "service fields": (
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n"
        "  ports: [{port: 80, nodePort: 30001}]\n  externalTrafficPolicy: Local\n"
        "  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 0}}\n"
        "  clusterIP: 10.96.0.300\n",
        [
            "in.yaml:5:32: error: spec.ports[0].nodePort: may not be used when type is 'ClusterIP'",
            "in.yaml:6:26: error: spec.externalTrafficPolicy: may only be set for "
            "externally-accessible services (type NodePort or LoadBalancer, or with externalIPs)",
            "in.yaml:8:54: error: spec.sessionAffinityConfig.clientIP.timeoutSeconds: "
            "0 is out of range (expected 1..86400)",
            "in.yaml:9:14: error: spec.clusterIP: invalid IPv4 address '10.96.0.300'",
        ],
    ),
    "invalid name": (
        "apiVersion: v1\nkind: Service\nmetadata: {name: My_Svc}\nspec: {ports: [{port: 80}]}\n",
        [
            "in.yaml:3:18: error: metadata.name: invalid name 'My_Svc' (expected a DNS-1035 label: "
            "lower case letters, digits and '-', starting with a letter, ending with a letter or "
            "digit)\n  hint: did you mean 'my-svc'?"
        ],
    ),
    "endpointslice without service label": (
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\n"
        "addressType: IPv4\nendpoints: []\n",
        [
            "in.yaml:3:11: error: metadata.labels: missing label kubernetes.io/service-name\n"
            "  hint: an EndpointSlice names its Service in this label"
        ],
    ),
    "network policy validation": (
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: n}\nspec:\n"
        "  podSelector: {}\n  ingress:\n  - from:\n"
        "    - ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}\n      podSelector: {}\n"
        "    - ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}\n    ports:\n"
        "    - {port: 100, endPort: 50}\n    - {port: http, endPort: 90}\n    - {protocol: ICMP}\n",
        [
            "in.yaml:8:16: error: spec.ingress[0].from[0].ipBlock: ipBlock may not be combined with "
            "podSelector in one peer\n"
            "  hint: write them as two peers (two list items): peers in a list are ORed",
            "in.yaml:10:45: error: spec.ingress[0].from[1].ipBlock.except[0]: except 10.1.0.0/24 is "
            "not inside cidr 10.0.0.0/16\n  hint: each except must be a strict subset of 10.0.0.0/16",
            "in.yaml:12:28: error: spec.ingress[0].ports[0].endPort: endPort 50 is below port 100\n"
            "  hint: endPort must be >= port",
            "in.yaml:13:29: error: spec.ingress[0].ports[1].endPort: may not be used when port is a "
            "named port",
            "in.yaml:14:18: error: spec.ingress[0].ports[2].protocol: invalid value 'ICMP' "
            "(expected one of TCP, UDP, SCTP)",
        ],
    ),
    "duplicate node": (
        "apiVersion: podnet/v1\nkind: Cluster\nspec:\n  nodes: [{name: n1}]\n---\n"
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n",
        [
            "in.yaml:8:18: error: duplicate node 'n1' (first at in.yaml:4:18)\n"
            "  hint: each node may be given once (Cluster spec.nodes or a Node object)"
        ],
    ),
    "workload selector": (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  replicas: '3'\n"
        "  selector: {matchLabels: {app: x}}\n  template:\n    metadata: {labels: {app: y}}\n"
        "    spec: {containers: [{name: c}]}\n",
        [
            "in.yaml:5:13: error: spec.replicas: wrong type (found str '3', expected integer)",
            "in.yaml:6:13: error: spec.selector: selector does not match template labels\n"
            "  hint: the Pod template's metadata.labels must satisfy spec.selector",
        ],
    ),
    "alias bomb": (
        "a: &a [x,x,x,x,x,x,x,x,x,x]\n"
        + "".join(
            f"{b}: &{b} [{', '.join(['*' + a] * 10)}]\n"
            for a, b in zip("abcdef", "bcdefg", strict=True)
        ),
        [
            "in.yaml:7:8: error: aliases expand this document to more than 2,000,000 nodes\n"
            "  hint: podnet refuses documents whose aliases expand this far (an alias bomb?)"
        ],
    ),
    "deep nesting": (
        "x: " + "[" * 150 + "]" * 150 + "\n",
        [
            "in.yaml:1:103: error: nesting deeper than 100 levels\n"
            "  hint: podnet refuses documents nested more than 100 levels deep"
        ],
    ),
    "python tag": (
        "apiVersion: v1\nkind: Pod\nmetadata: !!python/object:os.system {name: a}\n",
        [
            "in.yaml:3:11: error: metadata: unsupported YAML tag !!python/object:os.system\n"
            "  hint: podnet reads plain YAML only (strings, numbers, booleans, null, maps, lists)"
        ],
    ),
    "wrong protocol and taint effect": (
        "apiVersion: v1\nkind: Node\nmetadata: {name: n}\nspec:\n  taints: [{key: k, effect: NoSchedul}]\n",
        [
            "in.yaml:5:29: error: spec.taints[0].effect: invalid value 'NoSchedul' "
            "(expected one of NoSchedule, PreferNoSchedule, NoExecute)\n"
            "  hint: did you mean 'NoSchedule' or 'PreferNoSchedule'?"
        ],
    ),
    "bad quantity": (
        "apiVersion: v1\nkind: Node\nmetadata: {name: n}\nstatus: {allocatable: {memory: 8GB}}\n",
        [
            "in.yaml:4:32: error: status.allocatable.memory: invalid quantity '8GB' "
            "(expected e.g. 500m, 2, 512Mi, 8Gi, 1G)"
        ],
    ),
    "list item error path": (
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: a}\n"
        "  spec: {containers: [{name: c}], hostNetwork: 'yes'}\n",
        [
            "in.yaml:7:48: error: items[0].spec.hostNetwork: wrong type (found str 'yes', expected "
            "boolean)"
        ],
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=str)
def test_error_messages(case, errors):
    text, expected = CASES[case]
    assert errors(text) == expected


def test_missing_path_has_hint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cluster.yaml").write_text("")
    with pytest.raises(InputError) as info:
        load_inputs(["clustr.yaml"])
    assert [p.render() for p in info.value.problems] == [
        "error: no such file or directory: 'clustr.yaml'\n  hint: did you mean 'cluster.yaml'?"
    ]


def test_all_problems_of_all_files_are_reported(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.yaml").write_text(
        POD.replace("name: a", "name: a2") + "spec: {containers: [{name: c, image: 5}]}\n"
    )
    (tmp_path / "b.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\n---\n" + POD + "spec: {nodeNme: x}\n"
    )
    with pytest.raises(InputError) as info:
        load_inputs(["b.yaml", "a.yaml"])
    rendered = [p.render().split("\n")[0] for p in info.value.problems]
    assert rendered == [
        "b.yaml:2:7: warning: kind: kind ConfigMap is not used by podnet: skipped",
        "b.yaml:7:7: error: spec.containers: missing required value",
        "b.yaml:7:8: error: spec.nodeNme: unknown key 'nodeNme'",
        "a.yaml:4:38: error: spec.containers[0].image: wrong type (found int 5, expected string)",
    ]


def test_not_utf8(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.yaml").write_bytes(b"kind: Pod\nname: \xff\n")
    with pytest.raises(InputError) as info:
        load_inputs(["x.yaml"])
    assert info.value.problems[0].render() == (
        "x.yaml:2:7: error: not UTF-8 text (byte 0xff)\n  hint: save the file as UTF-8"
    )
