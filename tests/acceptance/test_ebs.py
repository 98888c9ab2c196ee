"""EBS-backed images and instances end to end with boto3: the test guest's
root file system uploaded to S3 becomes a snapshot (ImportSnapshot), an
image whose root device is that snapshot (RegisterImage with a block
device mapping, kernel and ramdisk as Eucalyptus EBS EMIs have), instances
boot from their own root volume created from it; a file written on the
root disk survives stop/start; DeleteOnTermination decides per mapping
whether the root and extra volumes outlive their instance; and the
snapshot cannot be deleted while the image uses it."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from computeutil import guest_cloud, instances_of, user_data, wait_console, wait_states

# Each test boots guests under TCG and waits on several of them.
pytestmark = pytest.mark.timeout(600)

ZONE = "mallee-1a"
TIMEOUT = 180.0

MARKER_SCRIPT = user_data(
    """
if [ -f /root/marker ]; then
  echo "DISK-INTACT $(cat /root/marker)"
else
  echo ebs-first-boot-9f2 > /root/marker; sync; echo WROTE-MARKER; poweroff
fi
"""
)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    """A cloud with the test guest registered, shared by this module."""
    with guest_cloud(tmp_path_factory, "ebs") as srv:
        yield srv


@pytest.fixture
def ec2c(cloud):
    return cloud.client("ec2")


def code_of(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def import_root(ec2, bucket: str) -> str:
    """ImportSnapshot of the guest's root file system; returns the
    snapshot id once the import task completes."""
    task = ec2.import_snapshot(
        Description="guest root import",
        DiskContainer={"Format": "RAW", "Description": "guest root", "UserBucket": {"S3Bucket": bucket, "S3Key": "root.img"}},
    )
    task_id = task["ImportTaskId"]
    assert task["SnapshotTaskDetail"]["Status"] == "active"
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        detail = ec2.describe_import_snapshot_tasks(ImportTaskIds=[task_id])["ImportSnapshotTasks"][0][
            "SnapshotTaskDetail"
        ]
        if detail["Status"] == "completed":
            assert detail["UserBucket"] == {"S3Bucket": bucket, "S3Key": "root.img"}
            return detail["SnapshotId"]
        assert detail["Status"] == "active", detail
        time.sleep(0.5)
    raise AssertionError(f"import {task_id} did not complete")


def volume_states(ec2, ids) -> dict:
    return {v["VolumeId"]: v["State"] for v in ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": ids}])["Volumes"]}


def wait_volumes(ec2, wanted: dict):
    """Waits until each volume id is in its wanted state (None: gone)."""
    deadline = time.monotonic() + TIMEOUT
    states = {}
    while time.monotonic() < deadline:
        states = volume_states(ec2, list(wanted))
        if all(states.get(v) == s for v, s in wanted.items()):
            return
        time.sleep(0.5)
    raise AssertionError(f"volumes {states} not {wanted}")


def mappings(ec2, iid: str) -> dict:
    inst = instances_of(ec2, [iid])[iid]
    return {m["DeviceName"]: m["Ebs"] for m in inst.get("BlockDeviceMappings", [])}


def test_ebs_backed_instances(ec2c, cloud):
    images = cloud.images
    snapshot = import_root(ec2c, images["bucket"])
    snap = ec2c.describe_snapshots(SnapshotIds=[snapshot])["Snapshots"][0]
    assert (snap["State"], snap["VolumeId"], snap["VolumeSize"]) == ("completed", "vol-ffffffff", 1)

    with pytest.raises(ClientError) as e:
        ec2c.register_image(
            Name="ebs-bad",
            RootDeviceName="/dev/sda1",
            BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": "snap-0000000000000dead"}}],
        )
    assert code_of(e) == "InvalidSnapshot.NotFound"
    image = ec2c.register_image(
        Name="guest-ebs",
        Architecture="x86_64",
        VirtualizationType="paravirtual",
        KernelId=images["kernel"],
        RamdiskId=images["ramdisk"],
        RootDeviceName="/dev/sda1",
        BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": snapshot, "DeleteOnTermination": True}}],
    )["ImageId"]
    described = ec2c.describe_images(ImageIds=[image])["Images"][0]
    assert (described["RootDeviceType"], described["RootDeviceName"]) == ("ebs", "/dev/sda1")
    root_mapping = described["BlockDeviceMappings"][0]
    assert root_mapping["Ebs"]["SnapshotId"] == snapshot
    assert root_mapping["Ebs"]["VolumeSize"] == 1
    attribute = ec2c.describe_image_attribute(ImageId=image, Attribute="blockDeviceMapping")["BlockDeviceMappings"]
    assert attribute[0]["Ebs"]["SnapshotId"] == snapshot
    with pytest.raises(ClientError) as e:
        ec2c.delete_snapshot(SnapshotId=snapshot)
    assert code_of(e) == "InvalidSnapshot.InUse"

    keep = ec2c.run_instances(
        ImageId=image,
        MinCount=1,
        MaxCount=1,
        InstanceType="t1.micro",
        UserData=MARKER_SCRIPT,
        InstanceInitiatedShutdownBehavior="stop",
        BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"DeleteOnTermination": False}}],
    )["Instances"][0]
    assert keep["RootDeviceType"] == "ebs"
    keep = keep["InstanceId"]
    gone = ec2c.run_instances(
        ImageId=image,
        MinCount=1,
        MaxCount=1,
        InstanceType="t1.micro",
        UserData=user_data("echo EBS-UP"),
        BlockDeviceMappings=[{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 1}}],
    )["Instances"][0]["InstanceId"]
    try:
        # The first boot writes the marker on the root volume and powers
        # off: the instance stops, its root stays attached.
        wait_states(ec2c, [keep], "stopped", timeout=TIMEOUT)
        keep_root = mappings(ec2c, keep)["/dev/sda1"]
        assert keep_root["DeleteOnTermination"] is False
        ec2c.start_instances(InstanceIds=[keep])
        wait_states(ec2c, [keep], "running")
        wait_console(ec2c, keep, "DISK-INTACT ebs-first-boot-9f2")

        # CreateImage of the running instance: snapshots of its volumes and
        # an image whose instances start with the marker on their root.
        with pytest.raises(ClientError) as e:
            ec2c.create_image(InstanceId=keep, Name="guest-ebs")
        assert code_of(e) == "InvalidAMIName.Duplicate"
        copy = ec2c.create_image(InstanceId=keep, Name="guest-ebs-copy", Description="copy of keep")["ImageId"]
        deadline = time.monotonic() + TIMEOUT
        while ec2c.describe_images(ImageIds=[copy])["Images"][0]["State"] == "pending" and time.monotonic() < deadline:
            time.sleep(0.5)
        copied = ec2c.describe_images(ImageIds=[copy])["Images"][0]
        assert (copied["State"], copied["RootDeviceType"]) == ("available", "ebs"), copied
        copy_snapshot = copied["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
        assert copy_snapshot != snapshot
        assert "CreateImage" in ec2c.describe_snapshots(SnapshotIds=[copy_snapshot])["Snapshots"][0]["Description"]
        with pytest.raises(ClientError) as e:
            ec2c.create_image(InstanceId=gone, Name="bad*name")
        assert code_of(e) == "InvalidAMIName.Malformed"
        clone = ec2c.run_instances(ImageId=copy, MinCount=1, MaxCount=1, InstanceType="t1.micro", UserData=MARKER_SCRIPT)[
            "Instances"
        ][0]["InstanceId"]
        wait_states(ec2c, [clone], "running")
        wait_console(ec2c, clone, "DISK-INTACT ebs-first-boot-9f2")
        ec2c.terminate_instances(InstanceIds=[clone])

        wait_states(ec2c, [gone], "running")
        wait_console(ec2c, gone, "EBS-UP")
        deadline = time.monotonic() + TIMEOUT
        while set(mappings(ec2c, gone)) != {"/dev/sda1", "/dev/sdf"} and time.monotonic() < deadline:
            time.sleep(0.5)
        gone_volumes = mappings(ec2c, gone)
        assert set(gone_volumes) == {"/dev/sda1", "/dev/sdf"}, gone_volumes
        assert all(m["DeleteOnTermination"] for m in gone_volumes.values())
        assert instances_of(ec2c, [gone])[gone]["RootDeviceType"] == "ebs"
        by_snapshot = ec2c.describe_volumes(Filters=[{"Name": "snapshot-id", "Values": [snapshot]}])["Volumes"]
        assert {keep_root["VolumeId"], gone_volumes["/dev/sda1"]["VolumeId"]} <= {v["VolumeId"] for v in by_snapshot}
    finally:
        ec2c.terminate_instances(InstanceIds=[keep, gone])
    wait_states(ec2c, [keep, gone], "terminated", timeout=120)
    wait_volumes(
        ec2c,
        {
            keep_root["VolumeId"]: "available",
            gone_volumes["/dev/sda1"]["VolumeId"]: None,
            gone_volumes["/dev/sdf"]["VolumeId"]: None,
        },
    )
    ec2c.delete_volume(VolumeId=keep_root["VolumeId"])
    ec2c.deregister_image(ImageId=image)
    ec2c.delete_snapshot(SnapshotId=snapshot)
    ec2c.deregister_image(ImageId=copy)
    ec2c.delete_snapshot(SnapshotId=copy_snapshot)
