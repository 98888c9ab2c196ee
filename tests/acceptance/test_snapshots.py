"""Snapshots end to end: boto3 against `mallee up`. A snapshot of a volume
attached to a running guest that keeps writing holds one consistent point
in time (a sequence block the guest rewrites every second, plus a region it
wrote before), and a volume created from it (larger than the original) has
that content; DescribeSnapshots shows progress and state; sharing with
createVolumePermission lets another account create volumes from it and
nothing else; DeleteSnapshot is refused while an image uses it; every
refused request answers EC2's error code and changes nothing; and a kill -9
of `mallee up` while snapshots are being captured never leaves a snapshot
`completed` unless its data is whole."""

from __future__ import annotations

import random
import re
import time

import pytest
from botocore.exceptions import ClientError

from conftest import MalleeServer
from computeutil import guest_cloud, guest_images, register_guest, user_data, wait_console, wait_states

# Each test boots guests under TCG and waits on several of them.
pytestmark = pytest.mark.timeout(600)

ZONE = "mallee-1a"
TIMEOUT = 180.0

# The writer fills MiB 1-4 of its volume once (region A, printed as
# VOLSUM-A), then rewrites sector 0 with "SEQ n" every second, printing
# WROTE n once it is on the disk.
WRITER = user_data(
    """
while ! [ -b /dev/vdb ]; do sleep 1; done
dd if=/dev/urandom of=/dev/vdb bs=1M seek=1 count=4 2>/dev/null
sync
echo "VOLSUM-A $(dd if=/dev/vdb bs=1M skip=1 count=4 2>/dev/null | sha256sum | cut -d' ' -f1)"
n=0
while true; do
  n=$((n+1))
  printf 'SEQ %08d\\n' $n | dd of=/dev/vdb bs=512 count=1 conv=notrunc,sync 2>/dev/null
  sync
  echo "WROTE $n"
  sleep 1
done
"""
)

# The reader prints, for each extra disk, its sequence block, the checksum
# of region A and its size in 512-byte sectors.
READER = user_data(
    """
for d in vdb vdc; do
  while ! [ -b /dev/$d ]; do sleep 1; done
  echo "RESTORED $d $(dd if=/dev/$d bs=512 count=1 2>/dev/null | head -c 12 | tr ' ' _) $(dd if=/dev/$d bs=1M skip=1 count=4 2>/dev/null | sha256sum | cut -d' ' -f1) $(cat /sys/block/$d/size)"
done
"""
)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    """A cloud with the test guest registered, shared by this module."""
    with guest_cloud(tmp_path_factory, "snapshots") as srv:
        yield srv


@pytest.fixture
def ec2c(cloud):
    return cloud.client("ec2")


def code_of(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def wait_volume(ec2, vid: str, state: str, attachment: str | None = None) -> dict:
    deadline = time.monotonic() + TIMEOUT
    v = {}
    while time.monotonic() < deadline:
        v = ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]
        if v["State"] == state and (attachment is None or [a["State"] for a in v["Attachments"]] == [attachment]):
            return v
        assert v["State"] != "error", v
        time.sleep(0.5)
    raise AssertionError(f"volume {vid} not {state}/{attachment}: {v}")


def snapshot_of(ec2, sid: str) -> dict:
    return ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]


def wait_snapshot(ec2, sid: str, states=("completed",), timeout: float = TIMEOUT) -> dict:
    deadline = time.monotonic() + timeout
    s = {}
    seen_progress = set()
    while time.monotonic() < deadline:
        s = snapshot_of(ec2, sid)
        seen_progress.add(s["Progress"])
        if s["State"] in states:
            s["seen_progress"] = seen_progress
            return s
        assert s["State"] != "error", s
        time.sleep(0.3)
    raise AssertionError(f"snapshot {sid} not {states} after {timeout}s: {s}")


def wait_snapshot_gone(ec2, sid: str):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            snapshot_of(ec2, sid)
        except ClientError as e:
            assert code_of_error(e) == "InvalidSnapshot.NotFound"
            return
        time.sleep(0.5)
    raise AssertionError(f"snapshot {sid} still listed")


def code_of_error(e: ClientError) -> str:
    return e.response["Error"]["Code"]


def all_snapshots(ec2) -> list:
    return sorted(
        (s["SnapshotId"], s["State"], s["VolumeId"], tuple(sorted((t["Key"], t["Value"]) for t in s.get("Tags", []))))
        for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
    )


def restored(ec2, iid: str) -> dict:
    """The reader's lines: disk → (sequence block, region A sum, sectors)."""
    out = wait_console(ec2, iid, "RESTORED vdb", "RESTORED vdc")
    found = {}
    for disk, seq, total, sectors in re.findall(r"RESTORED (vd[bc]) (\S+) ([0-9a-f]{64}) (\d+)", out):
        found[disk] = (seq, total, int(sectors))
    assert set(found) == {"vdb", "vdc"}, out[-3000:]
    return found


def last_wrote(ec2, iid: str) -> int:
    out = ec2.get_console_output(InstanceId=iid, Latest=True).get("Output", "")
    numbers = [int(n) for n in re.findall(r"WROTE (\d+)", out)]
    return max(numbers) if numbers else 0


def run_one(ec2, cloud, data: str) -> str:
    return ec2.run_instances(
        ImageId=cloud.images["pv"], MinCount=1, MaxCount=1, InstanceType="m1.small", UserData=data
    )["Instances"][0]["InstanceId"]


def test_snapshot_of_a_volume_being_written_is_one_point_in_time(ec2c, cloud):
    vid = ec2c.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    writer = run_one(ec2c, cloud, WRITER)
    reader = None
    try:
        wait_volume(ec2c, vid, "available")
        wait_states(ec2c, [writer], "running")
        ec2c.attach_volume(VolumeId=vid, InstanceId=writer, Device="/dev/sdf")
        wait_volume(ec2c, vid, "in-use", "attached")
        out = wait_console(ec2c, writer, "WROTE 3")
        region_a = re.search(r"VOLSUM-A ([0-9a-f]{64})", out).group(1)

        before = last_wrote(ec2c, writer)
        snap = ec2c.create_snapshot(
            VolumeId=vid,
            Description="while writing",
            TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "Name", "Value": "live"}]}],
        )
        sid = snap["SnapshotId"]
        assert re.fullmatch(r"snap-[0-9a-f]{17}", sid)
        assert (snap["State"], snap["VolumeId"], snap["VolumeSize"], snap["Description"]) == (
            "pending",
            vid,
            1,
            "while writing",
        )
        s = wait_snapshot(ec2c, sid)
        assert s["Progress"] == "100%"
        assert {"Key": "Name", "Value": "live"} in s["Tags"]
        owner = ec2c.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["OwnerId"]
        assert s["OwnerId"] == owner
        # The guest kept writing all along.
        time.sleep(6)
        after = last_wrote(ec2c, writer)
        assert after > before + 1, (before, after)

        # Two volumes from it: same size, and larger.
        same = ec2c.create_volume(SnapshotId=sid, AvailabilityZone=ZONE)
        assert (same["Size"], same["SnapshotId"]) == (1, sid)
        larger = ec2c.create_volume(SnapshotId=sid, AvailabilityZone=ZONE, Size=2)["VolumeId"]
        wait_volume(ec2c, same["VolumeId"], "available")
        wait_volume(ec2c, larger, "available")
        by_snapshot = ec2c.describe_volumes(Filters=[{"Name": "snapshot-id", "Values": [sid]}])["Volumes"]
        assert sorted(v["VolumeId"] for v in by_snapshot) == sorted([same["VolumeId"], larger])

        reader = run_one(ec2c, cloud, READER)
        wait_states(ec2c, [reader], "running")
        ec2c.attach_volume(VolumeId=same["VolumeId"], InstanceId=reader, Device="/dev/sdf")
        wait_volume(ec2c, same["VolumeId"], "in-use", "attached")
        ec2c.attach_volume(VolumeId=larger, InstanceId=reader, Device="/dev/sdg")
        found = restored(ec2c, reader)
        for disk, sectors in (("vdb", 2 << 20), ("vdc", 4 << 20)):
            seq, total, size = found[disk]
            assert total == region_a, (disk, found)
            assert size == sectors, (disk, found)
            n = int(seq.removeprefix("SEQ_"))
            # A value the guest wrote once the snapshot was asked for, not
            # what it wrote after the snapshot completed.
            assert before <= n < after, (before, n, after)
        assert found["vdb"][0] == found["vdc"][0]
    finally:
        ec2c.terminate_instances(InstanceIds=[i for i in (writer, reader) if i])


def test_snapshot_api_sharing_and_errors(ec2c, cloud):
    vid = ec2c.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    wait_volume(ec2c, vid, "available")
    before = all_snapshots(ec2c)
    for call, code in [
        (lambda: ec2c.create_snapshot(VolumeId="vol-0000000000000dead"), "InvalidVolume.NotFound"),
        (lambda: ec2c.create_snapshot(VolumeId="vol-nothex"), "InvalidVolumeID.Malformed"),
        (lambda: ec2c.describe_snapshots(SnapshotIds=["snap-0000000000000dead"]), "InvalidSnapshot.NotFound"),
        (lambda: ec2c.describe_snapshots(SnapshotIds=["snap-zz"]), "InvalidSnapshotID.Malformed"),
        (lambda: ec2c.delete_snapshot(SnapshotId="snap-0000000000000dead"), "InvalidSnapshot.NotFound"),
        (lambda: ec2c.create_snapshot(VolumeId=vid, Description="x" * 256), "InvalidParameterValue"),
    ]:
        with pytest.raises(ClientError) as e:
            call()
        assert code_of(e) == code, e.value.response
    assert all_snapshots(ec2c) == before

    sid = ec2c.create_snapshot(VolumeId=vid, Description="detached")["SnapshotId"]
    # A volume cannot be made from a snapshot that is not complete yet,
    # unless it already is.
    try:
        ec2c.create_volume(SnapshotId=sid, AvailabilityZone=ZONE)
        early = True
    except ClientError as e:
        assert code_of_error(e) == "IncorrectState"
        early = False
    s = wait_snapshot(ec2c, sid)
    assert s["VolumeSize"] == 1 and s["Encrypted"] is False
    for filters in (
        [{"Name": "volume-id", "Values": [vid]}],
        [{"Name": "status", "Values": ["completed"]}, {"Name": "description", "Values": ["detached"]}],
    ):
        assert sid in [x["SnapshotId"] for x in ec2c.describe_snapshots(Filters=filters)["Snapshots"]]
    assert ec2c.describe_snapshots(Filters=[{"Name": "volume-size", "Values": ["7"]}], OwnerIds=["self"])["Snapshots"] == []
    with pytest.raises(ClientError) as e:
        ec2c.create_volume(SnapshotId=sid, AvailabilityZone=ZONE, Size=1, VolumeType="io1", Iops=100)
    assert code_of(e) == "InvalidParameterValue"  # io1 starts at 4 GiB

    other_creds = cloud.create_account()
    other = cloud.client("ec2", creds=other_creds)
    other_id = other_creds["account_id"]
    assert sid not in [x["SnapshotId"] for x in other.describe_snapshots()["Snapshots"]]
    for call, code in [
        (lambda: other.describe_snapshots(SnapshotIds=[sid]), "InvalidSnapshot.NotFound"),
        (lambda: other.create_volume(SnapshotId=sid, AvailabilityZone=ZONE), "InvalidSnapshot.NotFound"),
        (lambda: other.delete_snapshot(SnapshotId=sid), "InvalidSnapshot.NotFound"),
        (lambda: other.modify_snapshot_attribute(SnapshotId=sid, Attribute="createVolumePermission", OperationType="add", UserIds=[other_id]), "InvalidSnapshot.NotFound"),
    ]:
        with pytest.raises(ClientError) as e:
            call()
        assert code_of(e) == code, e.value.response

    ec2c.modify_snapshot_attribute(
        SnapshotId=sid, CreateVolumePermission={"Add": [{"UserId": other_id}]}
    )
    perms = ec2c.describe_snapshot_attribute(SnapshotId=sid, Attribute="createVolumePermission")
    assert perms["CreateVolumePermissions"] == [{"UserId": other_id}]
    shared = other.describe_snapshots(RestorableByUserIds=["self"])["Snapshots"]
    assert sid in [x["SnapshotId"] for x in shared]
    assert sid not in [x["SnapshotId"] for x in other.describe_snapshots(OwnerIds=["self"])["Snapshots"]]
    theirs = other.create_volume(SnapshotId=sid, AvailabilityZone=ZONE)["VolumeId"]
    wait_volume(other, theirs, "available")
    for call, code in [
        (lambda: other.delete_snapshot(SnapshotId=sid), "AuthFailure"),
        (lambda: other.modify_snapshot_attribute(SnapshotId=sid, CreateVolumePermission={"Add": [{"Group": "all"}]}), "AuthFailure"),
    ]:
        with pytest.raises(ClientError) as e:
            call()
        assert code_of(e) == code, e.value.response

    ec2c.reset_snapshot_attribute(SnapshotId=sid, Attribute="createVolumePermission")
    assert ec2c.describe_snapshot_attribute(SnapshotId=sid, Attribute="createVolumePermission")["CreateVolumePermissions"] == []
    with pytest.raises(ClientError) as e:
        other.describe_snapshots(SnapshotIds=[sid])
    assert code_of(e) == "InvalidSnapshot.NotFound"
    # Their volume stays theirs.
    assert other.describe_volumes(VolumeIds=[theirs])["Volumes"][0]["SnapshotId"] == sid

    ec2c.modify_snapshot_attribute(SnapshotId=sid, Attribute="createVolumePermission", OperationType="add", GroupNames=["all"])
    assert sid in [x["SnapshotId"] for x in other.describe_snapshots(RestorableByUserIds=["all"])["Snapshots"]]
    ec2c.reset_snapshot_attribute(SnapshotId=sid, Attribute="createVolumePermission")

    with pytest.raises(ClientError) as e:
        ec2c.create_volume(SnapshotId=sid, AvailabilityZone=ZONE, Size=0)
    assert code_of(e) == "InvalidParameterValue"

    ec2c.delete_snapshot(SnapshotId=sid)
    wait_snapshot_gone(ec2c, sid)
    with pytest.raises(ClientError) as e:
        ec2c.create_volume(SnapshotId=sid, AvailabilityZone=ZONE)
    assert code_of(e) == "InvalidSnapshot.NotFound"
    assert early in (True, False)


def test_kill_during_snapshots_never_completes_partial_data(tmp_path):
    """kill -9 of `mallee up` (controller and node agent in one process)
    at random moments while snapshots of a volume with known content are
    captured: after restart every snapshot ends `completed` or `error`, and
    every completed one restores the exact content."""
    guest_images()
    srv = MalleeServer(tmp_path / "data", tmp_path / "server.log")
    try:
        srv.start()
        srv.images = register_guest(srv)
        ec2 = srv.client("ec2")
        vid = ec2.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
        writer = run_one(ec2, srv, WRITER)
        wait_volume(ec2, vid, "available")
        wait_states(ec2, [writer], "running")
        ec2.attach_volume(VolumeId=vid, InstanceId=writer, Device="/dev/sdf")
        wait_volume(ec2, vid, "in-use", "attached")
        out = wait_console(ec2, writer, "WROTE 2")
        region_a = re.search(r"VOLSUM-A ([0-9a-f]{64})", out).group(1)

        rng = random.Random(7)
        snapshots = []
        for _ in range(2):
            snapshots.append(ec2.create_snapshot(VolumeId=vid)["SnapshotId"])
            time.sleep(rng.uniform(0.0, 2.5))
            srv.kill()
            srv.start()
            ec2 = srv.client("ec2")
        wait_states(ec2, [writer], "running", timeout=60)

        completed = []
        for sid in snapshots:
            s = wait_snapshot(ec2, sid, states=("completed", "error"), timeout=TIMEOUT)
            assert s["State"] in ("completed", "error")
            if s["State"] == "completed":
                assert s["Progress"] == "100%"
                completed.append(sid)
            else:
                assert s.get("StateMessage"), s
        # Whatever completed restores whole data; at least one snapshot
        # taken after the kills must complete.
        completed.append(ec2.create_snapshot(VolumeId=vid)["SnapshotId"])
        wait_snapshot(ec2, completed[-1])
        volumes = []
        for sid in completed[:2]:
            volumes.append(ec2.create_volume(SnapshotId=sid, AvailabilityZone=ZONE)["VolumeId"])
        while len(volumes) < 2:
            volumes.append(ec2.create_volume(SnapshotId=completed[-1], AvailabilityZone=ZONE)["VolumeId"])
        reader = run_one(ec2, srv, READER)
        for v in volumes:
            wait_volume(ec2, v, "available")
        wait_states(ec2, [reader], "running")
        ec2.attach_volume(VolumeId=volumes[0], InstanceId=reader, Device="/dev/sdf")
        wait_volume(ec2, volumes[0], "in-use", "attached")
        ec2.attach_volume(VolumeId=volumes[1], InstanceId=reader, Device="/dev/sdg")
        found = restored(ec2, reader)
        for disk in ("vdb", "vdc"):
            seq, total, _ = found[disk]
            assert total == region_a, found
            assert re.fullmatch(r"SEQ_\d{8}", seq), found
        ec2.terminate_instances(InstanceIds=[writer, reader])
    finally:
        srv.stop()
        srv.kill()
        srv.purge()
