"""Volumes end to end: boto3 against `mallee up` creates a 1 GiB volume,
attaches it to a running guest (a hot-plugged virtio disk the guest sees),
the guest writes data and prints its checksum, the volume is detached and
attached to a second guest, which reads the same checksum. Every refused
request (volume in use, device taken, deleting an in-use volume, another
account's volume, bad sizes and zones) answers EC2's error code and changes
nothing; DescribeInstances lists attached volumes in blockDeviceMapping; a
terminated instance leaves its volumes available with their data; and a
kill -9 of `mallee up` (controller and node agent) at any moment of an
attach or detach leaves each volume attached or not, never both, within a
minute of the restart."""

from __future__ import annotations

import hashlib
import os
import random
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conftest import MalleeServer
from computeutil import (
    console,
    guest_cloud,
    instances_of,
    qemu_pids,
    register_guest,
    user_data,
    wait_console,
    wait_states,
)

ZONE = "mallee-1a"
VOLUME_TIMEOUT = 120.0
# Bytes the first guest writes and both guests checksum.
DATA_MIB = 4

WRITER = user_data(
    f"""
while ! [ -b /dev/vdb ]; do sleep 1; done
dd if=/dev/urandom of=/dev/vdb bs=1M count={DATA_MIB} 2>/dev/null
sync
echo "VOLSUM-W $(dd if=/dev/vdb bs=1M count={DATA_MIB} 2>/dev/null | sha256sum | cut -d' ' -f1)"
"""
)
READER = user_data(
    f"""
while ! [ -b /dev/vdb ]; do sleep 1; done
echo "VOLSUM-R $(dd if=/dev/vdb bs=1M count={DATA_MIB} 2>/dev/null | sha256sum | cut -d' ' -f1)"
"""
)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    """A cloud with the test guest registered, shared by this module."""
    with guest_cloud(tmp_path_factory, "volumes") as srv:
        yield srv


@pytest.fixture
def ec2c(cloud):
    return cloud.client("ec2")


def code_of(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def volume(ec2, vid: str) -> dict:
    return ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]


def wait_volume(ec2, vid: str, state: str, attachment: str | None = None, timeout: float = VOLUME_TIMEOUT) -> dict:
    """Waits until the volume is in `state` (and its attachment in
    `attachment`, when given)."""
    deadline = time.monotonic() + timeout
    v = {}
    while time.monotonic() < deadline:
        v = volume(ec2, vid)
        attached = [a["State"] for a in v["Attachments"]]
        if v["State"] == state and (attachment is None or attached == [attachment]):
            return v
        assert v["State"] != "error", f"volume {vid} failed: {v}"
        time.sleep(0.5)
    raise AssertionError(f"volume {vid} not {state}/{attachment} after {timeout}s: {v}")


def wait_gone(ec2, vid: str, timeout: float = VOLUME_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            volume(ec2, vid)
        except ClientError as e:
            assert e.response["Error"]["Code"] == "InvalidVolume.NotFound"
            return
        time.sleep(0.5)
    raise AssertionError(f"volume {vid} still listed after {timeout}s")


def all_volumes(ec2) -> list:
    """Every volume of the caller with its state and attachments, for
    comparing before and after refused requests."""
    return sorted(
        (
            v["VolumeId"],
            v["State"],
            v["Size"],
            tuple((a["InstanceId"], a["Device"], a["State"]) for a in v["Attachments"]),
            tuple(sorted((t["Key"], t["Value"]) for t in v.get("Tags", []))),
        )
        for v in ec2.describe_volumes()["Volumes"]
    )


def checksum(ec2, iid: str, marker: str) -> str:
    out = wait_console(ec2, iid, marker)
    found = re.search(marker + r" ([0-9a-f]{64})", out)
    assert found, out[-2000:]
    return found.group(1)


def test_create_describe_delete_and_parameter_errors(ec2c, cloud):
    before = all_volumes(ec2c)
    for kwargs, code in [
        ({"Size": 0, "AvailabilityZone": ZONE}, "InvalidParameterValue"),
        ({"Size": 16385, "AvailabilityZone": ZONE}, "InvalidParameterValue"),
        ({"Size": 2000, "AvailabilityZone": ZONE, "VolumeType": "standard"}, "InvalidParameterValue"),
        ({"Size": 1, "AvailabilityZone": "mallee-1z"}, "InvalidParameterValue"),
        ({"Size": 1, "AvailabilityZone": ZONE, "VolumeType": "floppy"}, "InvalidParameterValue"),
        ({"AvailabilityZone": ZONE}, "MissingParameter"),
        ({"SnapshotId": "snap-0123456789abcdef0", "AvailabilityZone": ZONE}, "InvalidSnapshot.NotFound"),
        ({"Size": 10, "AvailabilityZone": ZONE, "VolumeType": "gp2", "Iops": 500}, "InvalidParameterCombination"),
        ({"Size": 1, "AvailabilityZone": ZONE, "Encrypted": True}, "UnsupportedOperation"),
    ]:
        with pytest.raises(ClientError) as e:
            ec2c.create_volume(**kwargs)
        assert code_of(e) == code, (kwargs, e.value.response)
    assert all_volumes(ec2c) == before

    created = ec2c.create_volume(
        Size=2,
        AvailabilityZone=ZONE,
        VolumeType="gp3",
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "scratch"}]}],
    )
    vid = created["VolumeId"]
    assert re.fullmatch(r"vol-[0-9a-f]{17}", vid)
    assert created["State"] == "creating"
    assert (created["Size"], created["AvailabilityZone"], created["VolumeType"]) == (2, ZONE, "gp3")
    assert (created["Iops"], created["Throughput"], created["Encrypted"]) == (3000, 125, False)
    v = wait_volume(ec2c, vid, "available")
    assert v["Attachments"] == []
    assert {"Key": "Name", "Value": "scratch"} in v["Tags"]
    assert v["CreateTime"].year >= 2024

    by_tag = ec2c.describe_volumes(Filters=[{"Name": "tag:Name", "Values": ["scratch"]}])["Volumes"]
    assert [x["VolumeId"] for x in by_tag] == [vid]
    by_size = ec2c.describe_volumes(Filters=[{"Name": "size", "Values": ["2"]}, {"Name": "status", "Values": ["available"]}])
    assert vid in [x["VolumeId"] for x in by_size["Volumes"]]
    assert ec2c.describe_volumes(Filters=[{"Name": "volume-type", "Values": ["io1"]}])["Volumes"] == []
    status = ec2c.describe_volume_status(VolumeIds=[vid])["VolumeStatuses"][0]
    assert status["VolumeStatus"]["Status"] == "ok"
    assert {"Name": "io-enabled", "Status": "passed"} in status["VolumeStatus"]["Details"]

    assert ec2c.describe_volume_attribute(VolumeId=vid, Attribute="autoEnableIO")["AutoEnableIO"]["Value"] is False
    ec2c.modify_volume_attribute(VolumeId=vid, AutoEnableIO={"Value": True})
    assert ec2c.describe_volume_attribute(VolumeId=vid, Attribute="autoEnableIO")["AutoEnableIO"]["Value"] is True

    with pytest.raises(ClientError) as e:
        ec2c.describe_volumes(VolumeIds=["vol-0000000000000dead"])
    assert code_of(e) == "InvalidVolume.NotFound"
    with pytest.raises(ClientError) as e:
        ec2c.describe_volumes(VolumeIds=["vol-nothex"])
    assert code_of(e) == "InvalidVolumeID.Malformed"
    with pytest.raises(ClientError) as e:
        ec2c.detach_volume(VolumeId=vid)
    assert code_of(e) == "IncorrectState"

    # Another account sees nothing and can change nothing.
    other = cloud.client("ec2", creds=cloud.create_account())
    assert other.describe_volumes()["Volumes"] == []
    for call in (
        lambda: other.describe_volumes(VolumeIds=[vid]),
        lambda: other.delete_volume(VolumeId=vid),
        lambda: other.modify_volume_attribute(VolumeId=vid, AutoEnableIO={"Value": False}),
        lambda: other.create_tags(Resources=[vid], Tags=[{"Key": "x", "Value": "y"}]),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert code_of(e) == "InvalidVolume.NotFound"
    assert ec2c.describe_volume_attribute(VolumeId=vid, Attribute="autoEnableIO")["AutoEnableIO"]["Value"] is True
    assert {"Key": "x", "Value": "y"} not in volume(ec2c, vid)["Tags"]

    ec2c.delete_volume(VolumeId=vid)
    wait_gone(ec2c, vid)
    assert all_volumes(ec2c) == before


def test_data_survives_detach_and_reattach_to_another_instance(ec2c, cloud):
    vid = ec2c.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    spare = ec2c.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    writer = ec2c.run_instances(
        ImageId=cloud.images["pv"], MinCount=1, MaxCount=1, InstanceType="m1.small", UserData=WRITER
    )["Instances"][0]["InstanceId"]
    reader = ec2c.run_instances(
        ImageId=cloud.images["pv"], MinCount=1, MaxCount=1, InstanceType="m1.small", UserData=READER
    )["Instances"][0]["InstanceId"]
    try:
        wait_volume(ec2c, vid, "available")
        wait_volume(ec2c, spare, "available")
        wait_states(ec2c, [writer, reader], "running")

        attached = ec2c.attach_volume(VolumeId=vid, InstanceId=writer, Device="/dev/sdf")
        assert (attached["State"], attached["Device"], attached["InstanceId"]) == ("attaching", "/dev/sdf", writer)
        v = wait_volume(ec2c, vid, "in-use", "attached")
        assert v["Attachments"][0]["InstanceId"] == writer
        assert v["Attachments"][0]["DeleteOnTermination"] is False
        written = checksum(ec2c, writer, "VOLSUM-W")
        # Random data, not the zeros of a fresh volume.
        assert written != hashlib.sha256(bytes(DATA_MIB << 20)).hexdigest()

        # Refused while attached, and nothing changes.
        before = all_volumes(ec2c)
        for call, code in [
            (lambda: ec2c.attach_volume(VolumeId=vid, InstanceId=reader, Device="/dev/sdf"), "VolumeInUse"),
            (lambda: ec2c.attach_volume(VolumeId=spare, InstanceId=writer, Device="/dev/sdf"), "InvalidParameterValue"),
            (lambda: ec2c.attach_volume(VolumeId=spare, InstanceId=writer, Device="/dev/xvdf"), "InvalidParameterValue"),
            (lambda: ec2c.attach_volume(VolumeId=spare, InstanceId=writer, Device="/dev/sda1"), "InvalidParameterValue"),
            (lambda: ec2c.delete_volume(VolumeId=vid), "VolumeInUse"),
            (lambda: ec2c.detach_volume(VolumeId=vid, InstanceId=reader), "InvalidAttachment.NotFound"),
            (lambda: ec2c.attach_volume(VolumeId=spare, InstanceId="i-0000000000000dead", Device="/dev/sdg"), "InvalidInstanceID.NotFound"),
        ]:
            with pytest.raises(ClientError) as e:
                call()
            assert code_of(e) == code, e.value.response
        other = cloud.client("ec2", creds=cloud.create_account())
        for call in (
            lambda: other.detach_volume(VolumeId=vid),
            lambda: other.attach_volume(VolumeId=spare, InstanceId=writer, Device="/dev/sdg"),
        ):
            with pytest.raises(ClientError) as e:
                call()
            assert code_of(e) in ("InvalidVolume.NotFound", "InvalidInstanceID.NotFound")
        assert all_volumes(ec2c) == before

        by_instance = ec2c.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [writer]}])
        assert [x["VolumeId"] for x in by_instance["Volumes"]] == [vid]

        detached = ec2c.detach_volume(VolumeId=vid, InstanceId=writer)
        assert detached["State"] == "detaching"
        v = wait_volume(ec2c, vid, "available")
        assert v["Attachments"] == []

        ec2c.attach_volume(VolumeId=vid, InstanceId=reader, Device="/dev/sdg")
        wait_volume(ec2c, vid, "in-use", "attached")
        assert checksum(ec2c, reader, "VOLSUM-R") == written

        # Terminating an instance leaves its volume available, data kept.
        ec2c.terminate_instances(InstanceIds=[reader])
        wait_states(ec2c, [reader], "terminated", timeout=60)
        v = wait_volume(ec2c, vid, "available")
        assert v["Attachments"] == []

        ec2c.delete_volume(VolumeId=vid)
        ec2c.delete_volume(VolumeId=spare)
        wait_gone(ec2c, vid)
        wait_gone(ec2c, spare)
    finally:
        ec2c.terminate_instances(InstanceIds=[writer, reader])


def block_devices(ec2, iid: str) -> list:
    """The instance's blockDeviceMapping as (device, volume id, status)."""
    inst = instances_of(ec2, [iid])[iid]
    return sorted(
        (m.get("DeviceName"), m["Ebs"]["VolumeId"], m["Ebs"]["Status"]) for m in inst.get("BlockDeviceMappings", [])
    )


def test_describe_instances_lists_attached_volumes(ec2c, cloud):
    vid = ec2c.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    iid = ec2c.run_instances(ImageId=cloud.images["pv"], MinCount=1, MaxCount=1, InstanceType="t1.micro")[
        "Instances"
    ][0]["InstanceId"]
    try:
        wait_volume(ec2c, vid, "available")
        wait_states(ec2c, [iid], "running")
        assert block_devices(ec2c, iid) == []

        ec2c.attach_volume(VolumeId=vid, InstanceId=iid, Device="/dev/sdf")
        wait_volume(ec2c, vid, "in-use", "attached")
        assert block_devices(ec2c, iid) == [("/dev/sdf", vid, "attached")]
        mapping = instances_of(ec2c, [iid])[iid]["BlockDeviceMappings"]
        assert mapping[0]["Ebs"]["DeleteOnTermination"] is False
        assert mapping[0]["Ebs"]["AttachTime"].year >= 2024

        ec2c.detach_volume(VolumeId=vid, InstanceId=iid)
        wait_volume(ec2c, vid, "available")
        assert block_devices(ec2c, iid) == []
        ec2c.delete_volume(VolumeId=vid)
        wait_gone(ec2c, vid)
    finally:
        ec2c.terminate_instances(InstanceIds=[iid])


def test_terminating_an_instance_keeps_its_volume_and_data(ec2c, cloud):
    vid = ec2c.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    writer = ec2c.run_instances(
        ImageId=cloud.images["pv"], MinCount=1, MaxCount=1, InstanceType="m1.small", UserData=WRITER
    )["Instances"][0]["InstanceId"]
    reader = ec2c.run_instances(
        ImageId=cloud.images["pv"], MinCount=1, MaxCount=1, InstanceType="m1.small", UserData=READER
    )["Instances"][0]["InstanceId"]
    try:
        wait_volume(ec2c, vid, "available")
        wait_states(ec2c, [writer, reader], "running")
        ec2c.attach_volume(VolumeId=vid, InstanceId=writer, Device="/dev/sdh")
        wait_volume(ec2c, vid, "in-use", "attached")
        written = checksum(ec2c, writer, "VOLSUM-W")
        assert written != hashlib.sha256(bytes(DATA_MIB << 20)).hexdigest()

        # Terminated while attached (no detach first).
        ec2c.terminate_instances(InstanceIds=[writer])
        wait_states(ec2c, [writer], "terminated", timeout=90)
        v = wait_volume(ec2c, vid, "available")
        assert v["Attachments"] == []
        assert volume_holders(cloud, vid) == set()

        ec2c.attach_volume(VolumeId=vid, InstanceId=reader, Device="/dev/sdf")
        wait_volume(ec2c, vid, "in-use", "attached")
        assert checksum(ec2c, reader, "VOLSUM-R") == written
        ec2c.detach_volume(VolumeId=vid, InstanceId=reader)
        wait_volume(ec2c, vid, "available")
        ec2c.delete_volume(VolumeId=vid)
        wait_gone(ec2c, vid)
    finally:
        ec2c.terminate_instances(InstanceIds=[writer, reader])


# --- kill -9 during attach and detach

# Prints the virtio disks the guest has (with their serials: the volume id
# without the dash) every 2 s, stamped with the guest's uptime.
DISK_LISTER = user_data(
    """
while true; do
  echo "DISKS $(cut -d' ' -f1 /proc/uptime) $(for d in /sys/block/vd*; do echo -n "$(basename $d)=$(cat $d/serial 2>/dev/null) "; done)END"
  sleep 2
done
"""
)
DISKS_LINE = re.compile(r"DISKS ([0-9.]+) (.*?)END")
# A restarted cloud must settle every volume within this.
SETTLE_TIMEOUT = 60.0


def volume_holders(srv: MalleeServer, vid: str) -> set:
    """Instance ids whose QEMU holds the volume: its file open (a volume
    kept on the node), or a connection to the volume's NBD relay socket
    (a volume of the storage host, `up`'s default)."""
    target = f"{vid}.qcow2"
    pids = {pid: iid for iid, pid in qemu_pids().items()}
    holders = set()
    for pid, iid in pids.items():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.endswith("/" + target) and link.startswith(str(srv.data_dir)):
                holders.add(iid)
    # `ss -xpn`: Netid State Recv-Q Send-Q Local Port Peer Port Process; a
    # relay's accepted socket has the relay's path as its local address, and
    # the QEMU end names it by inode as its peer.
    lines = subprocess.run(["ss", "-xpn"], capture_output=True, text=True, check=True).stdout.splitlines()
    relay_inodes = set()
    for line in lines:
        cols = line.split()
        if len(cols) >= 8 and cols[4].endswith(f"/nbd/{vid}.sock"):
            relay_inodes.add(cols[5])
    for line in lines:
        cols = line.split()
        if len(cols) >= 9 and cols[7] in relay_inodes:
            for pid_text in re.findall(r"pid=(\d+)", " ".join(cols[8:])):
                if int(pid_text) in pids:
                    holders.add(pids[int(pid_text)])
    return holders


def nbd_relays(vid: str) -> list:
    """The node relay sockets of volume `vid` (a storage host's volume
    recorded on the node)."""
    return list(Path("/run/mallee").glob(f"*/nbd/{vid}.sock"))


def guest_disks(ec2, iid: str) -> tuple[float, str]:
    """The guest's last complete disk listing: (uptime, listing)."""
    found = DISKS_LINE.findall(console(ec2, iid))
    if not found:
        return (-1.0, "")
    uptime, disks = found[-1]
    return (float(uptime), disks)


def settled(ec2, vid: str, iid: str, timeout: float = SETTLE_TIMEOUT) -> bool:
    """Waits until the volume is attached to `iid` or available, never in
    between for longer than `timeout`; `True` when attached."""
    deadline = time.monotonic() + timeout
    v = {}
    while time.monotonic() < deadline:
        v = volume(ec2, vid)
        assert v["State"] != "error", v
        atts = [(a["InstanceId"], a["Device"], a["State"]) for a in v["Attachments"]]
        if v["State"] == "available" and atts == []:
            return False
        if v["State"] == "in-use" and atts == [(iid, "/dev/sdf", "attached")]:
            return True
        assert all(a[0] == iid for a in atts), v
        time.sleep(0.25)
    raise AssertionError(f"volume {vid} stuck after the restart ({timeout}s): {v}")


def assert_consistent(ec2, srv: MalleeServer, vid: str, iid: str, attached: bool):
    """Everything agrees the volume is attached to `iid` (or to nothing):
    DescribeVolumes, DescribeInstances, QEMU's open files and the guest."""
    v = volume(ec2, vid)
    if attached:
        assert v["State"] == "in-use" and [(a["InstanceId"], a["State"]) for a in v["Attachments"]] == [
            (iid, "attached")
        ], v
        assert block_devices(ec2, iid) == [("/dev/sdf", vid, "attached")]
        # A volume on the node is an open file; a storage host's volume
        # an NBD connection through the node's relay socket, which QEMU
        # opens again lazily (at the guest's next I/O) after the agent
        # restarted: the relay must be there.
        holders = volume_holders(srv, vid)
        assert holders == {iid} or (not holders and nbd_relays(vid)), f"QEMU must hold the attached volume: {holders}"
    else:
        assert v["State"] == "available" and v["Attachments"] == [], v
        assert block_devices(ec2, iid) == []
        assert volume_holders(srv, vid) == set(), "QEMU must not hold a detached volume"
        # The node forgets a storage host's volume, and closes its relay,
        # when the controller next reconciles volumes after the detach (a
        # step after `available`, a second or more later under load).
        deadline = time.monotonic() + 30
        while nbd_relays(vid) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not nbd_relays(vid), "no relay to a detached volume"
    # The guest agrees, in a listing made after now.
    serial = vid.replace("-", "")
    since, _ = guest_disks(ec2, iid)
    deadline = time.monotonic() + 30
    disks = ""
    while time.monotonic() < deadline:
        uptime, disks = guest_disks(ec2, iid)
        if uptime > since and (serial in disks) == attached:
            return
        time.sleep(1)
    raise AssertionError(f"guest of {iid} {'lacks' if attached else 'still has'} {vid}: {disks!r}")


def kill_during(srv: MalleeServer, call, delay: float):
    """Starts `call` (an API request), kill -9s `mallee up` after `delay`
    seconds, and starts it again on the same data dir."""
    outcome = []

    def run():
        try:
            call()
            outcome.append("answered")
        except Exception as e:  # the server dies under it
            outcome.append(repr(e))

    t = threading.Thread(target=run)
    t.start()
    time.sleep(delay)
    srv.kill()
    t.join()
    srv.start()
    return outcome


def test_kill_during_attach_and_detach(mallee_factory):
    srv = mallee_factory("volcrash")
    images = register_guest(srv)
    ec2 = srv.client("ec2")
    vid = ec2.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    iid = ec2.run_instances(
        ImageId=images["pv"], MinCount=1, MaxCount=1, InstanceType="t1.micro", UserData=DISK_LISTER
    )["Instances"][0]["InstanceId"]
    wait_volume(ec2, vid, "available")
    wait_states(ec2, [iid], "running")
    wait_console(ec2, iid, "DISKS")
    pid = qemu_pids()[iid]
    assert_consistent(ec2, srv, vid, iid, attached=False)

    rng = random.Random(6)
    # Spread over the API call, the reconciler's next pass and the node's
    # hot-plug or unplug.
    delays = [0.0, 0.02, 0.1, 0.3, 0.6, 1.0, 1.5, 2.5]
    rng.shuffle(delays)
    outcomes = {"attach": [], "detach": []}
    for delay in delays:
        # Attach, killed after `delay`.
        kill_during(srv, lambda: ec2.attach_volume(VolumeId=vid, InstanceId=iid, Device="/dev/sdf"), delay)
        ec2 = srv.client("ec2")
        attached = settled(ec2, vid, iid)
        outcomes["attach"].append((delay, attached))
        assert_consistent(ec2, srv, vid, iid, attached)
        if not attached:
            ec2.attach_volume(VolumeId=vid, InstanceId=iid, Device="/dev/sdf")
            wait_volume(ec2, vid, "in-use", "attached", timeout=SETTLE_TIMEOUT)
            assert_consistent(ec2, srv, vid, iid, attached=True)

        # Detach, killed after a different delay.
        d2 = rng.choice(delays)
        kill_during(srv, lambda: ec2.detach_volume(VolumeId=vid, InstanceId=iid), d2)
        ec2 = srv.client("ec2")
        attached = settled(ec2, vid, iid)
        outcomes["detach"].append((d2, attached))
        assert_consistent(ec2, srv, vid, iid, attached)
        if attached:
            ec2.detach_volume(VolumeId=vid, InstanceId=iid)
            wait_volume(ec2, vid, "available", timeout=SETTLE_TIMEOUT)
            assert_consistent(ec2, srv, vid, iid, attached=False)
        # Still the same VM, running throughout.
        assert qemu_pids().get(iid) == pid, "the instance's VM must survive the restarts"
        assert instances_of(ec2, [iid])[iid]["State"]["Name"] == "running"
    print("kill outcomes (delay, ended attached):", outcomes)

    # Still usable: attach, detach, delete.
    ec2.attach_volume(VolumeId=vid, InstanceId=iid, Device="/dev/sdf")
    wait_volume(ec2, vid, "in-use", "attached")
    assert_consistent(ec2, srv, vid, iid, attached=True)
    ec2.detach_volume(VolumeId=vid, InstanceId=iid)
    wait_volume(ec2, vid, "available")
    ec2.delete_volume(VolumeId=vid)
    wait_gone(ec2, vid)
    ec2.terminate_instances(InstanceIds=[iid])
    wait_states(ec2, [iid], "terminated", timeout=90)
