"""Many hosts, one cloud, with real QEMU guests: a controller and three node
hosts, each its own network namespace running its own `mallee node join`
(enrolled with a one-time token, mutual TLS), on a datacenter bridge that
carries the node API and VXLAN, and a client on the zone's public LAN
(labutil.Datacenter). One lab for the module; the tests share its guests.

The fleet: three instances of the administrator's account, one per node
(spread placement), serving their instance id over HTTP, in a security
group that admits its own members and the client; one instance of another
account (in its own default VPC, whose addresses overlap the first's) on
one of the nodes. The node of that instance is "node 2" below, the other
two nodes "node 1" and "node 3".

Covered (issue 13's acceptance): traffic between instances of one group on
different nodes (TCP, ICMP), another account's instance reaching neither,
a revoke blocking cross-node traffic within a second; an elastic IP moving
from node 2 to node 3 within about a second; kill -9 of node 2's agent
(its instances impaired after the timeout, new launches on nodes 1 and 3,
no failed request to nodes 1 and 3, the same QEMU processes adopted when
it returns); the controller restarted from a copy of its binary while a
client streams requests to all nodes (no VM restarted, no failed
request).

Block storage over the network (issue 14's acceptance), with the lab's
storage host (`mallee storage join`, its own namespace): a volume written
on node 1 and read back byte-identical on node 3, its export refused to
another node's certificate and to a client without one; an EBS-backed
instance stopped, its node disabled, started on another node with its
root file system intact, then moved again by `node disable --evacuate`;
the storage host killed (agent and export daemons) while a guest writes,
the volume impaired meanwhile, the guest's write completing once it is
back; twenty volumes from one 256 MiB snapshot costing the storage host
the snapshot's data once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from computeutil import (
    console, guest_images, instance_role, instances_of, qemu_pids, register_guest, user_data, wait_console, wait_states,
)
from conftest import _ACTIVE_SERVERS, MALLEE_BIN
from labutil import ZONE, Datacenter, Node
from netutil import sh, wait_until

# Nodes heartbeat every 10 s; a timeout much closer to that makes healthy
# nodes under load flap.
NODE_TIMEOUT = 15
SSH_READY = "MALLEE-GUEST: sshd started"
WEB_READY = "WEB-UP"
RULE_DEADLINE = 1.0
# The "within one second", measured by a client that opens a new
# connection to the address again and again, giving up on each after
# EIP_POLL_TIMEOUT: the first good answer begins up to one timeout (and the
# poller's pause) after the address has moved.
EIP_POLL_TIMEOUT = 0.3
EIP_DEADLINE = 1.0 + EIP_POLL_TIMEOUT + 0.05
# The bucket the fleet's instances write into through their node's API
# relay, with their instance profile's credentials.
FLEET_BUCKET = "fleet-results"
WEB = user_data(
    f"""
mkdir -p /www
wget -q -O /www/index.html http://169.254.169.254/latest/meta-data/instance-id
busybox httpd -p 80 -h /www
echo "S3PUT $(imds meta-data/instance-id | s3put {FLEET_BUCKET} $(imds meta-data/instance-id)/up 2>&1 | tr '\\n' ' ')"
echo WEB-UP
"""
)

# Runs in the client namespace: requests every target over and over (a new
# connection each time), one line per request: START_TIME ok|fail TARGET DETAIL.
POLLER = r"""
import sys, time, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
targets = [t.split("=", 1) for t in sys.argv[2:]]
timeout = float(sys.argv[1])
while True:
    for ip, want in targets:
        start = time.time()
        try:
            body = opener.open(f"http://{ip}/", timeout=timeout).read().decode().strip()
            ok = body == want or want == "*"
            print(f"{start:.3f} {'ok' if ok else 'fail'} {ip} {body}", flush=True)
        except Exception as e:
            print(f"{start:.3f} fail {ip} {e!r}", flush=True)
    time.sleep(0.05)
"""


class Poller:
    """The client polling web servers through their public addresses, from
    start() to stop(), every result kept with the time its request began."""

    def __init__(self, lab: Datacenter, targets: dict[str, str], timeout: float = 3.0):
        self.lab = lab
        self.targets = dict(targets)
        self.timeout = timeout
        self.results: list[tuple[float, bool, str, str]] = []
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "Poller":
        args = [f"{ip}={want}" for ip, want in self.targets.items()]
        self._proc = subprocess.Popen(
            ["ip", "netns", "exec", self.lab.client_ns, sys.executable, "-u", "-c", POLLER, str(self.timeout), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        for line in self._proc.stdout:
            parts = line.strip().split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("ok", "fail"):
                self.results.append((float(parts[0]), parts[1] == "ok", parts[2], parts[3] if len(parts) > 3 else ""))

    def wait_ok(self, ip: str, since: float, timeout: float) -> float | None:
        """Seconds from `since` (time.time()) to the start of the first
        good answer of `ip` begun after it, or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for start, ok, target, _ in list(self.results):
                if target == ip and ok and start >= since:
                    return start - since
            time.sleep(0.05)
        return None

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def failures(self) -> list:
        return [r for r in self.results if not r[1]]

    def count(self, ip: str, start: float = 0.0, end: float = float("inf")) -> int:
        return sum(1 for s, ok, t, _ in self.results if t == ip and ok and start <= s <= end)


class GuestProbe:
    """(In the guest, `timeout N wget`: the guest's busybox 1.35 wget
    segfaults with `-T`.) A loop in a guest (over ssh from the client) connecting to a
    target's web server every 0.1 s; the start of each attempt and its
    outcome are timed here, on arrival of the guest's lines."""

    def __init__(self, lab: Datacenter, key_path: str, via: str, target: str):
        script = (
            "i=0; while [ $i -lt 600 ]; do echo S $i; "
            f"if timeout 1 wget -q -O /dev/null http://{target}/ 2>/dev/null; then echo R $i ok; else echo R $i fail; fi; "
            "i=$((i+1)); usleep 100000; done"
        )
        self.starts: dict[int, float] = {}
        self.outcomes: dict[int, bool] = {}
        self._proc = subprocess.Popen(
            ["ip", "netns", "exec", lab.client_ns, *ssh_args(key_path, via), script],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._proc.stdout:
            parts = line.split()
            if len(parts) == 2 and parts[0] == "S":
                self.starts[int(parts[1])] = time.monotonic()
            elif len(parts) == 3 and parts[0] == "R":
                self.outcomes[int(parts[1])] = parts[2] == "ok"

    def wait(self, predicate, timeout: float) -> bool:
        return wait_until(predicate, timeout=timeout) is not None

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
        self._thread.join(timeout=10)


def ssh_args(key_path: str, host: str) -> list[str]:
    return [
        "ssh", "-i", key_path,
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
        f"root@{host}",
    ]


def in_guest(lab: Datacenter, key_path: str, host: str, command: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return lab.client_run(*ssh_args(key_path, host), command, timeout=timeout)


def key_file(ec2, directory) -> tuple[str, str]:
    name = f"k-{uuid.uuid4().hex[:8]}"
    material = ec2.create_key_pair(KeyName=name)["KeyMaterial"]
    path = directory / f"{name}.pem"
    path.write_text(material)
    os.chmod(path, 0o600)
    return name, str(path)


def launch(ec2, image: str, count: int = 1, **kw) -> list[str]:
    args = dict(ImageId=image, MinCount=count, MaxCount=count, InstanceType="t1.micro")
    args.update(kw)
    return [i["InstanceId"] for i in ec2.run_instances(**args)["Instances"]]


def system_status(ec2, ids) -> dict[str, str]:
    out = {}
    for s in ec2.describe_instance_status(InstanceIds=list(ids), IncludeAllInstances=True)["InstanceStatuses"]:
        out[s["InstanceId"]] = s["SystemStatus"]["Status"]
    return out


def wait_system_status(ec2, ids, wanted: str, timeout: float) -> float:
    """Seconds until every instance's system status is `wanted`."""
    last = {}

    def done():
        nonlocal last
        last = system_status(ec2, ids)
        return all(last.get(i) == wanted for i in ids)

    took = wait_until(done, timeout=timeout, interval=0.5)
    assert took is not None, f"system status not {wanted!r} after {timeout}s: {last}"
    return took


def vm_pids(ids) -> dict[str, int | None]:
    found = qemu_pids()
    return {iid: found.get(iid) for iid in ids}


def public_ip(lab: Datacenter, ec2, iid: str) -> str:
    """The instance's public address; an elastic IP when it has none (an
    instance whose EIP moved away may be left without one)."""
    ip = instances_of(ec2, [iid])[iid].get("PublicIpAddress")
    if ip:
        return ip
    eip = ec2.allocate_address(Domain="vpc")
    ec2.associate_address(AllocationId=eip["AllocationId"], InstanceId=iid)
    return eip["PublicIp"]


def wait_serving(lab: Datacenter, ip: str, want: str, timeout: float = 60) -> None:
    """Waits until the client gets `want` from http://ip/."""
    last = None

    def served():
        nonlocal last
        last = lab.client_run("curl", "-sS", "--noproxy", "*", "-m", "2", f"http://{ip}/", timeout=10)
        return last.returncode == 0 and last.stdout.strip() == want

    assert wait_until(served, timeout=timeout, interval=0.5) is not None, f"http://{ip}/ did not serve {want}: {last}"


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    guest_images()
    dc = Datacenter(tmp_path_factory.mktemp("lab"), nodes=3, storage=True)
    try:
        dc.start_controller(node_timeout=NODE_TIMEOUT)
        for node in dc.nodes:
            node.join(dc.token())
        dc.storage.join(dc.token())
        for node in dc.nodes:
            node.wait_registered()
        dc.storage.wait_registered()
        dc.images = register_guest(dc)
        yield dc
    finally:
        dc.close()


@pytest.fixture(autouse=True)
def _lab_logs(request):
    """conftest attaches the logs of _ACTIVE_SERVERS to a failing test's
    report and clears the list before each test: put the lab's back."""
    if "lab" in request.fixturenames:
        dc = request.getfixturevalue("lab")
        for p in [dc.controller, *(n.process for n in dc.nodes), dc.storage.process]:
            if p is not None and p not in _ACTIVE_SERVERS:
                _ACTIVE_SERVERS.append(p)
    yield


@dataclass
class Fleet:
    ec2: object
    ec2_b: object
    key_path: str
    key_path_b: str
    sg: str
    # node index -> the administrator's instance there
    on: dict[int, str]
    b_iid: str
    # the lab's nodes in the roles of the "node 1, 2, 3"
    n1: Node
    n2: Node
    n3: Node

    @property
    def ids(self) -> list[str]:
        return [self.on[self.n1.index], self.on[self.n2.index], self.on[self.n3.index]]


@pytest.fixture(scope="module")
def fleet(lab, tmp_path_factory):
    keys = tmp_path_factory.mktemp("keys")
    ec2 = lab.client("ec2")
    key, key_path = key_file(ec2, keys)
    client_cidr = f"{lab.client_address}/32"
    sg = ec2.create_security_group(GroupName=f"app-{uuid.uuid4().hex[:6]}", Description="app")["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=sg,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": client_cidr}]},
            {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": client_cidr}]},
            {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": sg}]},
        ],
    )
    lab.client("s3").create_bucket(Bucket=FLEET_BUCKET)
    profile, _ = instance_role(lab, FLEET_BUCKET)
    ids = launch(ec2, lab.images["pv"], count=3, KeyName=key, SecurityGroupIds=[sg], UserData=WEB,
                 IamInstanceProfile={"Name": profile})

    # Another account, in its own default VPC (the same 172.31.0.0/16).
    creds_b = lab.create_account()
    ec2_b = lab.client("ec2", creds=creds_b)
    images_b = register_guest(lab, creds=creds_b)
    key_b, key_path_b = key_file(ec2_b, keys)
    sg_b = ec2_b.create_security_group(GroupName="b", Description="b")["GroupId"]
    ec2_b.authorize_security_group_ingress(
        GroupId=sg_b,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": client_cidr}]}],
    )
    (b_iid,) = launch(ec2_b, images_b["pv"], KeyName=key_b, SecurityGroupIds=[sg_b])
    try:
        wait_states(ec2, ids, "running")
        wait_states(ec2_b, [b_iid], "running")
        placed = lab.placement(ids)
        assert sorted(placed.values()) == [1, 2, 3], f"spread placement puts one instance on each node: {placed}"
        listed = lab.node_list()
        if listed is not None:  # binaries with `mallee admin node list`: it agrees with the nodes' disks
            by_id = {n["node_id"]: set(n["instances"]) for n in listed}
            assert all(set(ids) & by_id[n.node_id] == {i for i in ids if placed[i] == n.index} for n in lab.nodes), (
                listed
            )
        b_node = lab.node_of(b_iid)
        assert b_node is not None, f"{b_iid} is on no node"
        on = {node: iid for iid, node in placed.items()}
        others = [n for n in lab.nodes if n.index != b_node]
        fleet = Fleet(
            ec2=ec2, ec2_b=ec2_b, key_path=key_path, key_path_b=key_path_b, sg=sg, on=on, b_iid=b_iid,
            n1=others[0], n2=lab.nodes[b_node - 1], n3=others[1],
        )
        for iid in ids:
            wait_console(ec2, iid, SSH_READY, WEB_READY)
        wait_console(ec2_b, b_iid, SSH_READY)
        yield fleet
    finally:
        ec2.terminate_instances(InstanceIds=ids)
        ec2_b.terminate_instances(InstanceIds=[b_iid])


# ------------------------------------------------------------------ tests


def test_one_group_spans_nodes_another_account_does_not_and_a_revoke_is_quick(lab, fleet):
    ec2 = fleet.ec2
    insts = instances_of(ec2, fleet.ids)
    first, _, third = (insts[i] for i in fleet.ids)
    src = first["PublicIpAddress"]
    target = third["PrivateIpAddress"]
    # Node 1's instance reaches node 3's, over ICMP and TCP.
    r = in_guest(lab, fleet.key_path, src, f"ping -c 1 -W 3 {target}")
    assert r.returncode == 0, f"ICMP from node 1's instance to node 3's: {r}"
    r = in_guest(lab, fleet.key_path, src, f"timeout 3 wget -q -O - http://{target}/")
    assert r.returncode == 0 and r.stdout.strip() == fleet.ids[2], f"TCP across nodes: {r}"

    # The other account's instance, on node 2, reaches neither: not on the
    # private addresses (another VPC: another segment over the same range),
    # not through their public addresses (the group admits only its members
    # and the client). Its default VPC numbers from the same first address
    # as the first's: an address that is its own too proves nothing.
    b = instances_of(fleet.ec2_b, [fleet.b_iid])[fleet.b_iid]
    addresses = [
        a
        for inst in (first, third)
        for a in (inst["PrivateIpAddress"], inst["PublicIpAddress"])
        if a != b["PrivateIpAddress"]
    ]
    assert len(addresses) >= 3, addresses
    r = in_guest(lab, fleet.key_path_b, b["PublicIpAddress"], f"ping -c 1 -W 3 {lab.client_address}")
    assert r.returncode == 0, f"the other account's instance cannot reach the client at all: {r}"
    for address in addresses:
        r = in_guest(
            lab, fleet.key_path_b, b["PublicIpAddress"],
            f"ping -c 1 -W 2 {address}; echo ping=$?; timeout 2 wget -q -O - http://{address}/; echo wget=$?",
        )
        assert "ping=1" in r.stdout and "wget=0" not in r.stdout, (
            f"another account's instance reached {address}: {r}"
        )

    # A revoke blocks cross-node traffic within a second of the call.
    probe = GuestProbe(lab, fleet.key_path, src, target)
    try:
        assert probe.wait(lambda: sum(probe.outcomes.values()) >= 3, timeout=30), (
            f"the probe in node 1's instance never reached node 3's: {probe.outcomes}"
        )
        fleet.ec2.revoke_security_group_ingress(
            GroupId=fleet.sg, IpPermissions=[{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": fleet.sg}]}]
        )
        revoked = time.monotonic()
        after = lambda: [i for i, t in probe.starts.items() if t > revoked + RULE_DEADLINE and i in probe.outcomes]
        assert probe.wait(lambda: len(after()) >= 3, timeout=30), "the probe stalled"
        late_ok = [i for i in after() if probe.outcomes[i]]
        assert not late_ok, (
            f"connections begun more than {RULE_DEADLINE}s after the revoke got through: "
            f"{[(i, round(probe.starts[i] - revoked, 2)) for i in late_ok]}"
        )
        first_fail = min((t for i, t in probe.starts.items() if i in probe.outcomes and not probe.outcomes[i]))
        print(f"revoke: first refused connection began {first_fail - revoked:.2f}s after the call returned")
    finally:
        probe.stop()
    r = in_guest(lab, fleet.key_path, src, f"ping -c 1 -W 2 {target}")
    assert r.returncode != 0, f"ICMP across nodes after the revoke: {r}"


def test_instances_on_every_node_reach_the_api_through_their_node(lab, fleet):
    """Each instance (one per node) wrote into the account's bucket at
    169.254.169.254:8773 with its instance profile's credentials: the node
    relays to the controller's API across the lab network."""
    s3 = lab.client("s3")
    for node, iid in fleet.on.items():
        out = console(fleet.ec2, iid)
        assert "S3PUT 200" in out, f"{iid} on node {node}:\n{out[-2000:]}"
        body = s3.get_object(Bucket=FLEET_BUCKET, Key=f"{iid}/up")["Body"].read()
        assert body == iid.encode(), body


def test_instances_resolve_each_other_by_name_across_nodes(lab, fleet):
    """The VPC's resolver (its base + 2, handed out by DHCP) answers every
    instance of the VPC wherever it runs: private and public names to the
    private address, PTR to the private name; another account's instance
    in its own VPC is not named, and unknown names are NXDOMAIN."""
    insts = instances_of(fleet.ec2, list(fleet.on.values()))
    me = insts[fleet.on[fleet.n1.index]]
    ask = lambda command: in_guest(lab, fleet.key_path, me["PublicIpAddress"], command)  # noqa: E731
    domain = me["PrivateDnsName"].split(".", 1)[1]
    conf = ask("cat /etc/resolv.conf").stdout
    assert "nameserver 172.31.0.2" in conf and f"search {domain}" in conf, conf
    for iid in (fleet.on[fleet.n2.index], fleet.on[fleet.n3.index]):
        peer = insts[iid]
        for name in (peer["PrivateDnsName"], peer["PublicDnsName"]):
            r = ask(f"nslookup {name}")
            assert r.returncode == 0 and f"Address: {peer['PrivateIpAddress']}" in r.stdout, (name, r.stdout, r.stderr)
        r = ask(f"nslookup {peer['PrivateIpAddress']}")
        assert peer["PrivateDnsName"] in r.stdout, r.stdout
    other = instances_of(fleet.ec2_b, [fleet.b_iid])[fleet.b_iid]
    if other["PrivateIpAddress"] not in {i["PrivateIpAddress"] for i in insts.values()}:
        r = ask(f"nslookup {other['PrivateDnsName']}")
        assert "NXDOMAIN" in r.stdout + r.stderr, r.stdout
    r = ask(f"nslookup nobody.{domain}")
    assert "NXDOMAIN" in r.stdout + r.stderr, r.stdout


def test_vpc_dns_attributes_turn_public_names_and_the_resolver_off_and_on(lab, fleet):
    """enableDnsHostnames false takes the VPC's public names away
    everywhere (DescribeInstances, the metadata service, the resolvers);
    enableDnsSupport false silences the resolver on every node; turning
    them on again brings both back. One attribute per request, and no
    public names without the resolver, as EC2 has it."""
    ec2 = fleet.ec2
    insts = instances_of(ec2, list(fleet.on.values()))
    me = insts[fleet.on[fleet.n1.index]]
    peer = insts[fleet.on[fleet.n2.index]]
    vpc = me["VpcId"]
    ask = lambda command: in_guest(lab, fleet.key_path, me["PublicIpAddress"], command)  # noqa: E731

    def attribute(name):
        key = name[0].upper() + name[1:]
        return ec2.describe_vpc_attribute(VpcId=vpc, Attribute=name)[key]["Value"]

    def until(what, probe, timeout=60):
        deadline = time.monotonic() + timeout
        while not probe():
            assert time.monotonic() < deadline, what
            time.sleep(1)

    def resolves(name):
        return f"Address: {peer['PrivateIpAddress']}" in ask(f"nslookup {name} 172.31.0.2").stdout

    assert (attribute("enableDnsSupport"), attribute("enableDnsHostnames")) == (True, True)
    with pytest.raises(ClientError) as e:
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsSupport={"Value": False})
    assert e.value.response["Error"]["Code"] == "InvalidParameterValue"
    try:
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": False})
        assert attribute("enableDnsHostnames") is False
        assert instances_of(ec2, [peer["InstanceId"]])[peer["InstanceId"]]["PublicDnsName"] == ""
        until("the public name still resolves", lambda: not resolves(peer["PublicDnsName"]))
        until("the metadata still names the instance publicly",
              lambda: ask("imds meta-data/public-hostname").returncode != 0)
        assert resolves(peer["PrivateDnsName"]), "private names stay"
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsSupport={"Value": False})
        until("the resolver still answers", lambda: not resolves(peer["PrivateDnsName"]))
    finally:
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsSupport={"Value": True})
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    until("the resolver is back", lambda: resolves(peer["PrivateDnsName"]))
    until("public names are back", lambda: resolves(peer["PublicDnsName"]))
    assert instances_of(ec2, [peer["InstanceId"]])[peer["InstanceId"]]["PublicDnsName"] == peer["PublicDnsName"]


def test_an_elastic_ip_moves_to_another_node_within_a_second(lab, fleet):
    ec2 = fleet.ec2
    on2, on3 = fleet.ids[1], fleet.ids[2]
    eip = ec2.allocate_address(Domain="vpc")
    ec2.associate_address(AllocationId=eip["AllocationId"], InstanceId=on2)
    wait_serving(lab, eip["PublicIp"], on2, timeout=30)
    poller = Poller(lab, {eip["PublicIp"]: "*"}, timeout=EIP_POLL_TIMEOUT).start()
    try:
        assert poller.wait_ok(eip["PublicIp"], since=0, timeout=10) is not None
        ec2.associate_address(AllocationId=eip["AllocationId"], InstanceId=on3, AllowReassociation=True)
        moved = time.time()

        def first_from_3():
            hits = [s for s, ok, _, body in list(poller.results) if ok and body == on3 and s >= moved]
            return min(hits) - moved if hits else None

        assert wait_until(lambda: first_from_3() is not None, timeout=15) is not None, (
            f"the EIP never reached node 3's instance: {poller.results[-10:]}"
        )
        took = first_from_3()
        print(f"EIP: node 3's ({fleet.n3.ns}) server answered a request begun {took:.2f}s after the call")
        trace = [(round(st - moved, 2), body[:40]) for st, _, _, body in poller.results if moved - 0.5 <= st <= moved + took]
        assert took <= EIP_DEADLINE, f"the EIP moved after {took:.2f}s; the client saw {trace}"
        late = [r for r in poller.results if r[0] > moved + took and r[3] == on2]
        assert not late, f"node 2's instance still answered on the EIP after the move: {late}"
    finally:
        poller.stop()
    ec2.disassociate_address(AssociationId=ec2.describe_addresses(AllocationIds=[eip["AllocationId"]])["Addresses"][0]["AssociationId"])
    ec2.release_address(AllocationId=eip["AllocationId"])


def test_a_killed_node_agent_isolates_its_instances_and_they_are_adopted_back(lab, fleet):
    ec2 = fleet.ec2
    on1, on2, on3 = fleet.ids
    n2 = fleet.n2
    targets = {public_ip(lab, ec2, on1): on1, public_ip(lab, ec2, on3): on3}
    for ip, iid in targets.items():
        wait_serving(lab, ip, iid)
    victims = [on2]
    wait_system_status(ec2, victims, "ok", timeout=60)
    wait_system_status(fleet.ec2_b, [fleet.b_iid], "ok", timeout=60)
    before = vm_pids([on2, fleet.b_iid])
    assert all(before.values()), f"node 2's VMs: {before}"
    poller = Poller(lab, targets).start()
    new = []
    try:
        killed = time.monotonic()
        n2.process.kill(signal.SIGKILL)
        # Heard from less than a heartbeat (10 s) ago: not down yet.
        assert system_status(ec2, victims) == {on2: "ok"}, "impaired before the node timeout"
        took = wait_system_status(ec2, victims, "impaired", timeout=NODE_TIMEOUT + 45)
        wait_system_status(fleet.ec2_b, [fleet.b_iid], "impaired", timeout=30)
        print(f"node 2 ({n2.ns}) killed: its instances impaired after {time.monotonic() - killed:.1f}s")
        assert took <= NODE_TIMEOUT + 5, f"impaired {took:.1f}s after the kill (timeout {NODE_TIMEOUT}s)"
        assert system_status(ec2, [on1, on3]) == {on1: "ok", on3: "ok"}
        listed = lab.node_list()
        if listed is not None:  # binaries with `mallee admin node list`
            states = {n["node_id"]: n["state"] for n in listed}
            want = {n.node_id: ("down" if n is n2 else "up") for n in lab.nodes}
            if lab.storage is not None:
                want[lab.storage.node_id] = "up"
            assert states == want, listed

        new = launch(ec2, lab.images["pv"], count=2)
        wait_states(ec2, new, "running")
        placed = lab.placement(new)
        assert sorted(placed.values()) == sorted([fleet.n1.index, fleet.n3.index]), (
            f"launches while node 2 (lab node {n2.index}) is down: {placed}"
        )
        ec2.terminate_instances(InstanceIds=new)

        restarted = time.monotonic()
        n2.restart()
        n2.wait_registered()
        wait_system_status(ec2, victims, "ok", timeout=60)
        wait_system_status(fleet.ec2_b, [fleet.b_iid], "ok", timeout=60)
        print(f"node 2 ({n2.ns}) back: its instances ok {time.monotonic() - restarted:.1f}s after the restart")
        assert vm_pids([on2, fleet.b_iid]) == before, "the restarted agent must adopt the same VMs"
        wait_states(ec2, new, "terminated", timeout=120)
        new = []
    finally:
        poller.stop()
        if new:
            ec2.terminate_instances(InstanceIds=new)
        if not n2.process.running():
            # A failure above must not leave the later tests a node short.
            n2.restart()
    assert not poller.failures(), f"requests to nodes 1 and 3 failed: {poller.failures()[:10]}"
    for ip in targets:
        assert poller.count(ip) >= 20, f"too few requests to {ip}: {poller.count(ip)}"


def test_a_controller_restarted_from_a_new_binary_leaves_instances_and_traffic_alone(lab, fleet):
    ec2 = fleet.ec2
    targets = {public_ip(lab, ec2, iid): iid for iid in fleet.ids}
    for ip, iid in targets.items():
        wait_serving(lab, ip, iid)
    ids = [*fleet.ids, fleet.b_iid]
    before = vm_pids(ids)
    assert all(before.values()), before
    swapped = lab.root / "mallee-next"
    shutil.copy2(MALLEE_BIN, swapped)
    poller = Poller(lab, targets).start()
    try:
        assert wait_until(lambda: all(poller.count(ip) for ip in targets), timeout=20) is not None
        down = time.time()
        assert lab.controller.stop() == 0, lab.controller.log_tail()
        lab.start_controller(node_timeout=NODE_TIMEOUT, binary=swapped)
        up = time.time()
        assert os.path.realpath(f"/proc/{lab.controller.pid}/exe") == str(swapped)
        # Keep streaming until every node has registered with the new
        # controller (its heartbeat, at most 10 s later) and received what
        # the new controller pushes at its start (overlay, firewall).
        lab.wait_heartbeats_since(down, timeout=30)
        wait_system_status(ec2, fleet.ids, "ok", timeout=60)
        wait_system_status(fleet.ec2_b, [fleet.b_iid], "ok", timeout=30)
        settled = time.time()
        assert wait_until(lambda: all(poller.count(ip, start=settled) for ip in targets), timeout=20) is not None
    finally:
        poller.stop()
        # The running controller keeps its inode; the copy need not outlive it.
        swapped.unlink()
    print(
        f"controller swapped: API down {up - down:.1f}s, {len(poller.results)} requests "
        f"over {settled - down:.1f}s until every node had registered with it"
    )
    assert not poller.failures(), f"the client saw errors: {poller.failures()[:10]}"
    assert vm_pids(ids) == before, "no VM may restart"
    assert all(s == "running" for s in (d["State"]["Name"] for d in instances_of(ec2, fleet.ids).values()))



# ------------------------------------------------------------ block storage


def guest_find(vid: str) -> str:
    """Guest shell that sets $dev to the volume's virtio disk (by its
    serial, the volume id without '-'), waiting for the hot-plug."""
    serial = vid.replace("-", "")
    return (
        "dev=; for i in $(seq 60); do for d in /sys/block/vd*; do "
        f'[ "$(cat $d/serial 2>/dev/null)" = "{serial}" ] && dev=/dev/${{d##*/}}; done; '
        '[ -n "$dev" ] && break; sleep 1; done; [ -n "$dev" ] || { echo "no disk"; exit 9; }'
    )


def wait_volume_state(ec2, vid: str, state: str, attachment: str | None = None, timeout: float = 180) -> dict:
    last = {}

    def reached():
        nonlocal last
        last = ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]
        atts = [a["State"] for a in last["Attachments"]]
        return last["State"] == state and (attachment is None or atts == [attachment])

    assert wait_until(reached, timeout=timeout, interval=0.5) is not None, f"{vid} not {state}/{attachment}: {last}"
    return last


def attach(ec2, vid: str, iid: str) -> None:
    ec2.attach_volume(VolumeId=vid, InstanceId=iid, Device="/dev/sdf")
    wait_volume_state(ec2, vid, "in-use", "attached")


def detach(ec2, vid: str) -> None:
    ec2.detach_volume(VolumeId=vid)
    wait_volume_state(ec2, vid, "available")


def export_port(lab: Datacenter, vid: str) -> int:
    record = json.loads((lab.storage.data_dir / "exports" / f"{vid}.json").read_text())
    return int(record["port"])


def nbd_read(lab: Datacenter, node: Node, vid: str, tls_dir: Path | None) -> subprocess.CompletedProcess:
    """qemu-io reads the volume's export from `node`'s namespace, with the
    client credentials in `tls_dir` (None: plain NBD, no TLS)."""
    opts = f"driver=nbd,server.type=inet,server.host={lab.storage.address},server.port={export_port(lab, vid)},export={vid}"
    args = ["qemu-io", "-r"]
    if tls_dir is not None:
        args += ["--object", f"tls-creds-x509,id=t0,dir={tls_dir},endpoint=client"]
        opts += f",tls-creds=t0,tls-hostname={lab.storage.node_id}.node.mallee-cluster"
    return node.run(*args, "--image-opts", opts, "-c", "read 0 4k", timeout=60)


def test_a_volume_written_on_one_node_reads_back_on_another(lab, fleet):
    ec2 = fleet.ec2
    a_iid, c_iid = fleet.on[fleet.n1.index], fleet.on[fleet.n3.index]
    vid = ec2.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    wait_volume_state(ec2, vid, "available")
    assert lab.storage.volume_file(vid).is_file(), "the storage host keeps the volume"
    assert not any((n.data_dir / "volumes" / f"{vid}.qcow2").exists() for n in lab.nodes)

    attach(ec2, vid, a_iid)
    r = in_guest(
        lab, fleet.key_path, public_ip(lab, ec2, a_iid),
        guest_find(vid) + "; dd if=/dev/urandom of=/tmp/p bs=1M count=8 2>/dev/null"
        " && dd if=/tmp/p of=$dev bs=1M conv=fsync 2>/dev/null && sha256sum /tmp/p | cut -d' ' -f1",
        timeout=180,
    )
    assert r.returncode == 0, f"write on node 1: {r}"
    written = r.stdout.split()[-1]

    # The export admits node 1 alone: node 3's certificate and a client
    # without one are refused; node 1's own credentials read it.
    n1_tls = fleet.n1.data_dir / "tls" / "nbd-client"
    n3_tls = fleet.n3.data_dir / "tls" / "nbd-client"
    assert nbd_read(lab, fleet.n1, vid, n1_tls).returncode == 0, "node 1 reads its export"
    other = nbd_read(lab, fleet.n3, vid, n3_tls)
    assert other.returncode != 0, f"node 3's certificate got into node 1's export: {other}"
    plain = nbd_read(lab, fleet.n3, vid, None)
    assert plain.returncode != 0, f"a client without TLS got in: {plain}"

    detach(ec2, vid)
    attach(ec2, vid, c_iid)
    r = in_guest(
        lab, fleet.key_path, public_ip(lab, ec2, c_iid),
        guest_find(vid) + "; dd if=$dev bs=1M count=8 2>/dev/null | sha256sum | cut -d' ' -f1",
        timeout=180,
    )
    assert r.returncode == 0 and r.stdout.split()[-1] == written, f"read on node 3: {r} (want {written})"
    detach(ec2, vid)
    ec2.delete_volume(VolumeId=vid)
    assert wait_until(lambda: not lab.storage.volume_file(vid).exists(), timeout=60) is not None


def import_raw_snapshot(lab: Datacenter, ec2, path: Path) -> str:
    """Uploads `path` to the lab's guest bucket and imports it as a RAW
    snapshot; returns the snapshot id once completed."""
    key = f"import-{uuid.uuid4().hex[:8]}.img"
    lab.client("s3").upload_file(str(path), lab.images["bucket"], key)
    task = ec2.import_snapshot(DiskContainer={"Format": "RAW", "UserBucket": {"S3Bucket": lab.images["bucket"], "S3Key": key}})
    found = {}

    def done():
        found.update(ec2.describe_import_snapshot_tasks(ImportTaskIds=[task["ImportTaskId"]])["ImportSnapshotTasks"][0]["SnapshotTaskDetail"])
        assert found["Status"] in ("active", "completed"), found
        return found["Status"] == "completed"

    assert wait_until(done, timeout=300, interval=0.5) is not None, found
    return found["SnapshotId"]


def test_an_ebs_instance_starts_on_another_node_and_evacuates(lab, fleet, tmp_path):
    ec2 = fleet.ec2
    root = guest_images() / "root.img"
    snapshot = import_raw_snapshot(lab, ec2, root)
    image = ec2.register_image(
        Name=f"ebs-{uuid.uuid4().hex[:6]}", Architecture="x86_64", VirtualizationType="paravirtual",
        KernelId=lab.images["kernel"], RamdiskId=lab.images["ramdisk"], RootDeviceName="/dev/sda1",
        BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": snapshot, "DeleteOnTermination": True}}],
    )["ImageId"]
    (iid,) = launch(ec2, image, KeyName=Path(fleet.key_path).stem, SecurityGroupIds=[fleet.sg])
    try:
        wait_states(ec2, [iid], "running")
        wait_console(ec2, iid, SSH_READY)
        first = lab.node_of(iid)
        assert first is not None
        r = in_guest(lab, fleet.key_path, public_ip(lab, ec2, iid), "echo moved-$(cat /proc/sys/kernel/random/uuid) > /root/marker; sync; cat /root/marker")
        assert r.returncode == 0, r
        marker = r.stdout.strip()

        ec2.stop_instances(InstanceIds=[iid])
        wait_states(ec2, [iid], "stopped")
        node = lab.nodes[first - 1]
        lab.admin("node", "disable", node.node_id)
        try:
            ec2.start_instances(InstanceIds=[iid])
            wait_states(ec2, [iid], "running")
            wait_console(ec2, iid, SSH_READY)
            assert wait_until(lambda: lab.node_of(iid) not in (None, first), timeout=60) is not None, lab.placement([iid])
            second = lab.node_of(iid)
            r = in_guest(lab, fleet.key_path, public_ip(lab, ec2, iid), "cat /root/marker")
            assert r.returncode == 0 and r.stdout.strip() == marker, f"root file system after the move: {r}"
        finally:
            lab.admin("node", "enable", node.node_id)

        # `--evacuate` moves it again, from the node it runs on now.
        out = lab.admin("node", "disable", lab.nodes[second - 1].node_id, "--evacuate", "--wait-seconds", "300").stdout
        try:
            assert f"EVACUATING\t{iid}" in out and f"MOVED\t{iid}" in out, out
            assert lab.node_of(iid) not in (None, second), lab.placement([iid])
            wait_console(ec2, iid, SSH_READY)
            r = in_guest(lab, fleet.key_path, public_ip(lab, ec2, iid), "cat /root/marker")
            assert r.returncode == 0 and r.stdout.strip() == marker, f"root file system after the evacuation: {r}"
            assert all(f"EVACUATING\t{i}" not in out for i in fleet.ids), f"instance-store instances stay: {out}"
        finally:
            lab.admin("node", "enable", lab.nodes[second - 1].node_id)
    finally:
        ec2.terminate_instances(InstanceIds=[iid])
        wait_states(ec2, [iid], "terminated")


def test_a_storage_host_restart_stalls_a_guest_write_which_then_completes(lab, fleet):
    ec2 = fleet.ec2
    iid = fleet.on[fleet.n1.index]
    ip = public_ip(lab, ec2, iid)
    vid = ec2.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    wait_volume_state(ec2, vid, "available")
    attach(ec2, vid, iid)
    r = in_guest(
        lab, fleet.key_path, ip,
        guest_find(vid) + "; rm -f /tmp/dd.rc; dd if=/dev/urandom of=/tmp/q bs=1M count=24 2>/dev/null;"
        " sha256sum /tmp/q | cut -d' ' -f1 > /tmp/q.sum;"
        " (dd if=/tmp/q of=$dev bs=64k conv=fsync 2>/tmp/dd.err; echo $? > /tmp/dd.rc) </dev/null >/dev/null 2>&1 &"
        " echo started",
        timeout=120,
    )
    assert r.returncode == 0 and "started" in r.stdout, r
    # The host goes away: its agent and every export daemon, kill -9.
    lab.storage.process.kill()
    sh("pkill", "-9", "-f", f"qemu-storage-daemon.*{lab.storage.data_dir}", check=False)
    r = in_guest(lab, fleet.key_path, ip, "cat /tmp/dd.rc 2>/dev/null || echo running")
    assert r.stdout.strip() == "running", f"the write ended before the storage host went away; make it longer: {r}"
    # The API answers meanwhile, and says the volume is impaired once the
    # host has been silent past the node timeout.
    status = {}

    def impaired():
        status.update(ec2.describe_volume_status(VolumeIds=[vid])["VolumeStatuses"][0]["VolumeStatus"])
        return status["Status"] == "impaired"

    assert wait_until(impaired, timeout=NODE_TIMEOUT + 20, interval=1) is not None, status
    lab.storage.restart()
    lab.storage.wait_registered()
    r = None

    def finished():
        nonlocal r
        r = in_guest(lab, fleet.key_path, ip, "cat /tmp/dd.rc 2>/dev/null || echo running; cat /tmp/dd.err")
        return r.returncode == 0 and not r.stdout.startswith("running")

    assert wait_until(finished, timeout=150, interval=2) is not None, f"the guest's write never finished: {r}"
    assert r.stdout.split()[0] == "0", f"the guest's write failed: {r}"
    r = in_guest(
        lab, fleet.key_path, ip,
        guest_find(vid) + "; echo 3 > /proc/sys/vm/drop_caches; dd if=$dev bs=1M count=24 2>/dev/null | sha256sum | cut -d' ' -f1; cat /tmp/q.sum",
        timeout=120,
    )
    got, want = r.stdout.split()[-2:]
    assert got == want, f"read back {got}, wrote {want}: {r}"
    assert wait_until(lambda: ec2.describe_volume_status(VolumeIds=[vid])["VolumeStatuses"][0]["VolumeStatus"]["Status"] == "ok", timeout=30) is not None
    detach(ec2, vid)
    ec2.delete_volume(VolumeId=vid)


def test_twenty_volumes_from_one_snapshot_share_its_data(lab, fleet, tmp_path):
    ec2 = fleet.ec2
    data = tmp_path / "snap.img"
    with open(data, "wb") as f:
        for _ in range(256):
            f.write(os.urandom(1 << 20))
    snapshot = import_raw_snapshot(lab, ec2, data)
    before = lab.storage.disk_used()
    vids = [ec2.create_volume(SnapshotId=snapshot, AvailabilityZone=ZONE)["VolumeId"] for _ in range(20)]
    for vid in vids:
        wait_volume_state(ec2, vid, "available", timeout=300)
    grown = lab.storage.disk_used() - before
    print(f"20 volumes from a 256 MiB snapshot: the storage host grew {grown / (1 << 20):.1f} MiB")
    assert grown < 0.1 * 20 * 256 * (1 << 20), f"grew {grown} bytes"
    for vid in vids:
        ec2.delete_volume(VolumeId=vid)
    assert wait_until(lambda: lab.storage.disk_used() - before < 16 << 20, timeout=120) is not None, (
        "the snapshot's data goes with its last volume"
    )
