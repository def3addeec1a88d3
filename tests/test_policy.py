"""NetworkPolicy as kube-router's iptables agent enforces it: rules, ipsets, the set match, the
trace's DENIED_* endings and policy steps, ipset-save, loader errors."""

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

import podnet
from podnet.control.policy import (
    agent_chains,
    build_agent,
    node_ipsets,
    pod_chain_name,
    policy_chain_name,
)
from podnet.control.policy_select import actionable
from podnet.dataplane.netfilter import HookContext, traverse
from podnet.dataplane.ruleset import Ruleset
from podnet.errors import InputError
from podnet.model.dataplane import Chain, IpSet, Table
from podnet.model.trace import Packet
from podnet.render.ipset_save import render_ipsets
from podnet.render.iptables_save import kernel_form

CLUSTER = """
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: prod, labels: {app: web}}
spec:
  nodeName: node-1
  containers: [{name: c, ports: [{name: http, containerPort: 80}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: web2, namespace: prod, labels: {app: web}}
spec:
  nodeName: node-2
  containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: prod, labels: {role: client}}
spec:
  nodeName: node-1
  containers: [{name: c}]
---
apiVersion: v1
kind: Pod
metadata: {name: other, namespace: dev, labels: {role: client}}
spec:
  nodeName: node-2
  containers: [{name: c}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-allow, namespace: prod}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {role: client}}}]
    ports: [{port: http}]
  - from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.244.2.0/24]}}]
    ports: [{port: 9000, endPort: 9010, protocol: UDP}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-egress, namespace: prod}
spec:
  podSelector: {matchLabels: {role: client}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {app: web}}}]
"""


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    path = tmp_path_factory.mktemp("pol") / "c.yaml"
    path.write_text(CLUSTER)
    return podnet.load(str(path))


def _pod(loaded, key):
    return next(p for p in loaded.cluster.pods if p.key == key)


def _chain(loaded, node, name):
    return next(c for c in agent_chains(loaded.cluster, node)[1] if c.name == name)


def test_policy_chain_rules_exact(loaded):
    name = policy_chain_name("prod", "web-allow")
    rules = _chain(loaded, "node-1", name).rules
    c = '-m comment --comment "rule to ACCEPT traffic from source pods to dest pods selected by policy name web-allow namespace prod"'
    src = rules[0].split("--match-set ")[1].split()[0]
    assert src.startswith("KUBE-SRC-")
    sets = {s.name: s for s in node_ipsets(loaded.cluster, "node-1")}
    # named port "http": 80 on web, 8080 on web2: one rule pair and one set per number
    assert len(rules) == 6
    assert rules[0].startswith(
        f"-p tcp {c} -m set --match-set {src} src -m set --match-set KUBE-DST-"
    )
    assert rules[0].endswith("-m tcp --dport 80 -j MARK --set-xmark 0x10000/0x10000")
    assert rules[1].endswith("-m tcp --dport 80 -m mark --mark 0x10000/0x10000 -j RETURN")
    assert rules[2].endswith("-m tcp --dport 8080 -j MARK --set-xmark 0x10000/0x10000")
    d80 = rules[0].split("--match-set ")[2].split()[0]
    d8080 = rules[2].split("--match-set ")[2].split()[0]
    assert sets[d80].entries() == (str(_pod(loaded, "prod/web").ip),)
    assert sets[d8080].entries() == (str(_pod(loaded, "prod/web2").ip),)
    assert sets[src].entries() == (str(_pod(loaded, "prod/client").ip),)  # podSelector: own ns
    blk = '-m comment --comment "rule to ACCEPT traffic from specified ipBlocks to dest pods selected by policy name: web-allow namespace prod"'
    assert rules[4].startswith(f"-p udp {blk} -m set --match-set KUBE-SRC-")
    assert rules[4].endswith("-m udp --dport 9000:9010 -j MARK --set-xmark 0x10000/0x10000")
    bset = sets[rules[4].split("--match-set ")[1].split()[0]]
    assert bset.type == "hash:net" and bset.entries() == ("10.0.0.0/8", "10.244.2.0/24 nomatch")
    for r in rules:  # as iptables-save prints them back
        assert kernel_form(r) == r


def test_pod_chains_named_when_first_asked_for(loaded):
    """The agent names a Pod's firewall chain when a node's rules (or a trace) first ask for
    it; a chain of a Pod nobody named yet is still found, by naming every Pod then."""
    st = build_agent(loaded.cluster)
    assert st.pod_chains == {}
    assert st.pod_of_chain("KUBE-NWPLCY-DEFAULT") is None  # not a Pod's chain: nothing named
    assert st.pod_chains == {}
    web, client = _pod(loaded, "prod/web"), _pod(loaded, "prod/client")
    assert st.chain_name(web) == pod_chain_name("prod", "web")
    assert set(st.pod_chains.values()) == {web}
    assert st.pod_of_chain(pod_chain_name("prod", "client")) is client
    named = {p.key for p in st.pod_chains.values()}
    # every Pod the agent polices (the cluster's CoreDNS Pods too), none other
    assert named == {p.key for p in loaded.cluster.pods if actionable(p)}
    assert {"prod/web", "prod/web2", "prod/client", "dev/other"} <= named
    assert st.pod_of_chain("KUBE-POD-FW-AAAAAAAAAAAAAAAA") is None


def test_pod_chain_layout(loaded):
    web = _pod(loaded, "prod/web")
    chain = _chain(loaded, "node-1", pod_chain_name("prod", "web")).rules
    ip = f"{web.ip}/32"
    assert (
        chain[0]
        == '-m comment --comment "common bi-directional traffic policy rules" -j KUBE-NWPLCY-COMMON'
    )
    assert chain[1] == (
        f'-d {ip} -m comment --comment "rule to permit the traffic traffic to pods when source is the pod\'s local node" -m addrtype --src-type LOCAL -j ACCEPT'
    )
    assert (
        chain[2]
        == f'-s {ip} -m comment --comment "run through default egress network policy chain" -j KUBE-NWPLCY-DEFAULT'
    )
    assert (
        chain[3]
        == f'-d {ip} -m comment --comment "run through nw policy web-allow" -j {policy_chain_name("prod", "web-allow")}'
    )
    assert (
        chain[5]
        == '-m comment --comment "rule to REJECT traffic destined for POD name:web namespace: prod" -m mark ! --mark 0x10000/0x10000 -j REJECT --reject-with icmp-port-unreachable'
    )
    # only Pods of the node get a chain there; the jumps are rule 1 of the built-in chains
    names = {c.name for c in agent_chains(loaded.cluster, "node-1")[1]}
    assert pod_chain_name("prod", "web2") not in names and pod_chain_name("prod", "client") in names
    save = loaded.iptables_save("node-1")
    assert (
        '-A FORWARD -m comment --comment "kube-router netpol - TEMCG2JMHZYE7H7T" -j KUBE-ROUTER-FORWARD\n-A FORWARD -m conntrack'
        in save
    )
    for c in agent_chains(loaded.cluster, "node-1")[1]:
        for r in c.rules:
            assert kernel_form(r) == r, r


def test_ipsets_shared_between_nodes(loaded):
    a = loaded.network.get("node:node-1").ipsets
    b = loaded.network.get("node:node-2").ipsets
    assert a and a is b


def test_ipset_save_format(loaded):
    text = render_ipsets(loaded.network.get("node:node-1").ipsets)
    lines = text.splitlines()
    assert all(line.startswith(("create ", "add ")) for line in lines)
    assert any(
        line.endswith("hash:net family inet hashsize 1024 maxelem 65536 timeout 0")
        for line in lines
    )
    assert "add " in text and " 10.244.2.0/24 timeout 0 nomatch" in text


def test_set_match_in_walk():
    s = IpSet(
        "S", "hash:net", ((IPv4Network("10.0.0.0/8"), False), (IPv4Network("10.1.0.0/16"), True))
    )
    tables = (Table("filter", (Chain("INPUT", ("-m set --match-set S src -j DROP",), "ACCEPT"),)),)
    rs = Ruleset.from_tables(tables)
    ctx = HookContext(ipsets={"S": s})

    def verdict(src):
        p = Packet(IPv4Address(src), IPv4Address("10.9.9.9"), "tcp", 1, 80)
        return traverse(rs, "INPUT", ctx, p)[0].verdict

    assert verdict("10.2.0.1") == "DROP"  # in the cidr
    assert verdict("10.1.0.1") == "ACCEPT"  # in a nomatch except: the more specific entry wins
    assert verdict("11.0.0.1") == "ACCEPT"


def test_denied_ingress_reason(loaded):
    t = loaded.trace("dev/other", "prod/web:80")
    assert [p.disposition for p in t.paths] == ["DENIED_INGRESS"]
    reason = t.paths[0].forward.reason
    assert "prod/web is isolated for ingress by prod/web-allow" in reason
    assert (
        "ingress rule 1 (from pods role=client in namespace prod on TCP http): peer does not match"
        in reason
    )
    assert "ingress rule 2" in reason and "KUBE-POD-FW-" in reason


def test_denied_egress_reason(loaded):
    t = loaded.trace("prod/client", "dev/other:80")
    assert [p.disposition for p in t.paths] == ["DENIED_EGRESS"]
    assert "prod/client is isolated for egress by prod/client-egress" in t.paths[0].forward.reason


def test_allowed_names_policy_and_rule(loaded):
    t = loaded.trace("prod/client", "prod/web2:8080")
    assert t.verdict == "delivered"
    texts = [s.text for h in t.paths[0].forward.hops for s in h.steps if s.type == "policy"]
    assert (
        "egress of prod/client: allowed by prod/client-egress egress rule 1 (to pods app=web in namespace prod on any port)"
        in texts
    )
    assert any(
        x.startswith("ingress of prod/web2: allowed by prod/web-allow ingress rule 1")
        for x in texts
    )
    # named port resolved per Pod: http is 8080 on web2 only
    assert loaded.trace("prod/client", "prod/web2:80").paths[0].disposition == "DENIED_INGRESS"
    assert loaded.trace("prod/client", "prod/web:80").verdict == "delivered"


def test_node_local_and_reply(loaded):
    # the Pod's own node reaches it under an isolating policy; another node does not
    assert loaded.trace("node/node-1", "prod/web:8081").verdict == "delivered"
    assert loaded.trace("node/node-2", "prod/web:8081").paths[0].disposition == "DENIED_INGRESS"
    t = loaded.trace("prod/client", "prod/web:80")
    assert t.paths[0].reply.disposition == "DELIVERED"


def test_no_policy_no_agent(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(CLUSTER.split("---\napiVersion: networking.k8s.io/v1")[0])
    loaded = podnet.load(str(path))
    assert "KUBE-ROUTER" not in loaded.iptables_save("node-1")
    assert loaded.network.get("node:node-1").ipsets == ()


def test_endport_without_port_is_an_error(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: n}\nspec:\n"
        "  podSelector: {}\n  ingress:\n  - ports: [{endPort: 90}]\n"
    )
    with pytest.raises(InputError) as e:
        podnet.load(str(path))
    text = "\n".join(p.render() for p in e.value.problems)
    assert f"{path}:7:" in text and "endPort needs a numeric port" in text


def test_ipset_save_command(loaded):
    import io

    from podnet.cli import run

    out, err = io.StringIO(), io.StringIO()
    code = run(["ipset-save", "--node", "node-1", "-f", str(Path(loaded.files[0]))], out, err)
    out = out.getvalue()
    assert code == 0 and out.startswith("create KUBE-")


def test_isolating_per_pod_equals_every_policy_scanned(tmp_path):
    """A Pod's isolating policies, found among its namespace's policies when asked for, are
    those every policy's targets name it in (input order, ingress and egress apart)."""
    import io

    from podnet.control.policy_select import Selection
    from podnet.generate import Size, generate, write_yaml

    out = io.StringIO()
    write_yaml(generate(Size(nodes=4, pods_per_node=15, services=30, policies=40), seed=5), out)
    path = tmp_path / "c.yaml"
    path.write_text(out.getvalue())
    cluster = podnet.load(str(path)).cluster
    sel = Selection(cluster)
    isolated = 0
    for pod in cluster.pods:
        want = tuple(
            tuple(
                pol
                for pol in cluster.policies
                if kind in pol.policy_types and pod.key in {p.key for p in sel.selected(pol)}
            )
            for kind in ("Ingress", "Egress")
        )
        assert sel.isolating(pod) == want, pod.key
        isolated += bool(want[0] or want[1])
    assert isolated > 10  # (the generated policies isolate many of the Pods)
