"""Conflicts found, not suffered: a second cloud on the same host refuses
to start on a public range, data directory or port another cloud holds,
naming it; the leftovers of a data directory deleted without `mallee
purge` are named too, and `mallee purge --orphans` removes them (VM,
namespace, bridge); clouds on different ranges run side by side, an
instance of each answering on its public IP.

The ranges come from MALLEE_TEST_CONFLICT_RANGES (three /24s, default
198.18.250-252.0/24), so suites on one host stay apart."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

from computeutil import qemu_pids, register_guest, wait_console, wait_states
from conftest import MALLEE_BIN, free_port, run_mallee
from netutil import bridge_with_address, sh, wait_until

RANGES = os.environ.get(
    "MALLEE_TEST_CONFLICT_RANGES", "198.18.250.0/24,198.18.251.0/24,198.18.252.0/24"
).split(",")


def gateway(cidr: str) -> str:
    net = cidr.split("/")[0].rsplit(".", 1)[0]
    return f"{net}.1"


def up_refused(data_dir, *args, port=None) -> str:
    """Runs `mallee up` that must refuse to start; returns what it said."""
    proc = subprocess.run(
        [str(MALLEE_BIN), "up", "--data-dir", str(data_dir),
         "--listen", f"127.0.0.1:{port or free_port()}", *args],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode != 0, f"mallee up started:\n{proc.stdout}\n{proc.stderr}"
    return proc.stderr


def links_with_alias(text: str) -> list[str]:
    return [
        link["ifname"]
        for link in json.loads(sh("ip", "-j", "link", "show").stdout)
        if text in link.get("ifalias", "")
    ]


def routes_to(cidr: str) -> list[dict]:
    return [r for r in json.loads(sh("ip", "-j", "-4", "route", "show").stdout) if r.get("dst") == cidr]


def test_a_second_cloud_is_refused_what_the_first_holds(mallee_factory, tmp_path):
    first = mallee_factory("first", extra_args=["--public-range", RANGES[0]])
    bridge = bridge_with_address(gateway(RANGES[0]))
    first_dir = str(first.data_dir.resolve())

    # The same public range, another data directory.
    said = up_refused(tmp_path / "second-data", "--public-range", RANGES[0])
    assert RANGES[0] in said and bridge in said, said
    assert f"the cloud of data directory {first_dir}" in said, said
    assert f"pid {first.proc.pid}" in said, said
    # Nothing of the refused cloud was made: one route, no second bridge.
    assert len(routes_to(RANGES[0])) == 1, routes_to(RANGES[0])
    assert not links_with_alias(str((tmp_path / "second-data").resolve())), "the refused cloud made a bridge"

    # The same data directory twice.
    said = up_refused(first.data_dir, "--public-range", RANGES[1])
    assert f"another mallee (pid {first.proc.pid}) is running on {first.data_dir}" in said, said

    # The same port.
    said = up_refused(tmp_path / "third-data", "--public-range", RANGES[1], port=first.port)
    assert f"127.0.0.1:{first.port} (--listen) is in use by mallee up (pid {first.proc.pid})" in said, said
    assert first_dir in said, said

    # A node on this host, on the same range: refused before it enrols (no
    # controller is reached, no token spent).
    node = subprocess.run(
        [str(MALLEE_BIN), "node", "join", "https://127.0.0.1:9", "--token", "unused",
         "--data-dir", str(tmp_path / "node"), "--listen", f"127.0.0.1:{free_port()}",
         "--public-range", RANGES[0]],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert node.returncode != 0, node.stderr
    assert f"the cloud of data directory {first_dir}" in node.stderr and bridge in node.stderr, node.stderr

    # The first cloud is untouched.
    assert first.running()
    assert first.client("ec2").describe_availability_zones()["AvailabilityZones"]


def test_leftovers_of_a_deleted_data_directory_are_named_and_purged(mallee_factory, tmp_path):
    old = mallee_factory("old", extra_args=["--public-range", RANGES[1]])
    bridge = bridge_with_address(gateway(RANGES[1]))
    old_dir = old.data_dir.resolve()
    # An instance: its VM and VPC namespace outlive `mallee up`.
    ec2 = old.client("ec2")
    images = register_guest(old)
    iid = ec2.run_instances(ImageId=images["pv"], InstanceType="t1.micro", MinCount=1, MaxCount=1)[
        "Instances"][0]["InstanceId"]
    wait_states(ec2, [iid], "running")
    namespaces = [
        ns for ns in sh("ip", "netns", "list").stdout.split()
        if ns.startswith("mallee-") and str(old_dir) in sh(
            "ip", "-n", ns, "-j", "link", "show", "dev", "lo", check=False).stdout
    ]
    assert namespaces, "the instance's VPC namespace does not name its owner"
    assert old.stop() == 0
    # What a new user does: delete the data directory, start afresh.
    shutil.rmtree(old.data_dir)

    said = up_refused(tmp_path / "fresh-data", "--public-range", RANGES[1])
    assert bridge in said and "leftover" in said and str(old_dir) in said, said
    assert "mallee purge --orphans" in said, said

    purge = run_mallee("purge", "--orphans", "--under", str(tmp_path), timeout=120)
    assert purge.returncode == 0, purge.stderr
    removed = [line.split("\t") for line in purge.stdout.splitlines() if line.startswith("REMOVED")]
    kinds = {(r[1], r[2].split()[-1].strip("()") if r[1] == "vm" else r[2]) for r in removed}
    assert ("bridge", bridge) in kinds, purge.stdout
    assert ("vm", iid) in kinds, purge.stdout
    for ns in namespaces:
        assert ("namespace", ns) in kinds, purge.stdout
    assert all(str(old_dir) in r[3] for r in removed), purge.stdout
    # Gone from the host.
    assert not links_with_alias(str(old_dir))
    assert not set(namespaces) & set(sh("ip", "netns", "list").stdout.split())
    deadline = time.monotonic() + 10
    while iid in qemu_pids() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert iid not in qemu_pids(), "the orphan VM still runs"
    # A second purge finds nothing.
    again = run_mallee("purge", "--orphans", "--under", str(tmp_path), timeout=60)
    assert "no orphans found" in again.stdout, again.stdout

    fresh = mallee_factory("fresh", extra_args=["--public-range", RANGES[1]])
    assert fresh.client("ec2").describe_availability_zones()["AvailabilityZones"]
    assert len(routes_to(RANGES[1])) == 1


def test_clouds_on_different_ranges_run_side_by_side(mallee_factory):
    """Both start, each with its one route, and an instance of each answers
    on its public IP: the bug this check exists for made the second
    cloud's public IPs unreachable."""
    clouds = [
        mallee_factory("left", extra_args=["--public-range", RANGES[0]]),
        mallee_factory("right", extra_args=["--public-range", RANGES[2]]),
    ]
    bridges = {bridge_with_address(gateway(RANGES[0])), bridge_with_address(gateway(RANGES[2]))}
    assert len(bridges) == 2
    for cidr in (RANGES[0], RANGES[2]):
        assert len(routes_to(cidr)) == 1, routes_to(cidr)
    launched = []
    for srv, cidr in zip(clouds, (RANGES[0], RANGES[2])):
        ec2 = srv.client("ec2")
        images = register_guest(srv)
        sg = ec2.create_security_group(GroupName="ping", Description="ping from the host")["GroupId"]
        ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[{
            "IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "IpRanges": [{"CidrIp": cidr}]}])
        (iid,) = [i["InstanceId"] for i in ec2.run_instances(
            ImageId=images["pv"], InstanceType="t1.micro", MinCount=1, MaxCount=1,
            SecurityGroupIds=[sg])["Instances"]]
        launched.append((ec2, iid, cidr))
    for ec2, iid, cidr in launched:
        inst = wait_states(ec2, [iid], "running")[iid]
        wait_console(ec2, iid, "MALLEE-GUEST: sshd started")
        public_ip = inst["PublicIpAddress"]
        assert public_ip.startswith(cidr.rsplit(".", 1)[0] + "."), (public_ip, cidr)
        # From the host, through this cloud's own bridge.
        assert wait_until(
            lambda ip=public_ip: sh("busybox", "ping", "-c", "1", "-W", "1", ip, check=False).returncode == 0, timeout=20
        ) is not None, f"{public_ip} of {cidr} does not answer"
