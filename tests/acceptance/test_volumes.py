"""Volumes end to end: boto3 against `mallee up` creates a 1 GiB volume,
attaches it to a running guest (a hot-plugged virtio disk the guest sees),
the guest writes data and prints its checksum, the volume is detached and
attached to a second guest, which reads the same checksum. Every refused
request (volume in use, device taken, deleting an in-use volume, another
account's volume, bad sizes and zones) answers EC2's error code and changes
nothing; a terminated instance leaves its volumes available."""

from __future__ import annotations

import hashlib
import re
import time

import pytest
from botocore.exceptions import ClientError

from conftest import MalleeServer
from computeutil import guest_images, register_guest, user_data, wait_console, wait_states

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
    guest_images()
    d = tmp_path_factory.mktemp("volumes")
    srv = MalleeServer(d / "data", d / "server.log")
    try:
        srv.start()
        srv.images = register_guest(srv)
        yield srv
    finally:
        srv.stop()
        srv.kill()
        srv.purge()


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
