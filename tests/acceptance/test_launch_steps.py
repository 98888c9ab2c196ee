"""RunInstances is a sequence of steps, each with its undo. The controller
is started with MALLEE_PAUSE_AT naming a step chosen at random, so a launch
stops exactly there; the controller is killed with SIGKILL at that moment
and started again. Afterwards nothing of the launch is left: no instance,
volume, tag or reservation, and every public address it had recorded is
free again (the /29 range has exactly five, and the account allocates all
five as elastic IPs)."""

from __future__ import annotations

import os
import random
import threading
import time

import pytest

STEPS = [
    "launch.quota",
    "launch.network",
    "launch.capacity",
    "launch.private-addresses",
    "launch.public-addresses",
    "launch.records",
]


def wait_log(srv, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in srv.log_text():
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not logged within {timeout}s\n{srv.log_tail()}")


def test_kill_at_a_random_launch_step_leaves_nothing(mallee_factory, tmp_path):
    step = os.environ.get("MALLEE_TEST_LAUNCH_STEP") or random.choice(STEPS)
    print(f"pausing at {step}")
    srv = mallee_factory(
        "steps",
        start=False,
        extra_args=["--public-range", "198.18.9.0/29"],
        env={"MALLEE_PAUSE_AT": step},
    )
    srv.start()
    s3 = srv.client("s3")
    ec2 = srv.client("ec2", read_timeout=120)
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"\0" * (1 << 20))
    s3.create_bucket(Bucket="steps")
    s3.upload_file(str(disk), "steps", "disk.img")
    image = ec2.register_image(
        Name="steps", ImageLocation="steps/disk.img", VirtualizationType="hvm", Architecture="x86_64"
    )["ImageId"]

    outcome: dict = {}

    def launch():
        try:
            outcome["response"] = ec2.run_instances(
                ImageId=image,
                MinCount=2,
                MaxCount=2,
                InstanceType="t1.micro",
                ClientToken="steps-1",
                NetworkInterfaces=[{"DeviceIndex": 0, "AssociatePublicIpAddress": True}],
                BlockDeviceMappings=[{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 1}}],
                TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "step", "Value": step}]}],
            )
        except Exception as e:  # the controller dies under it
            outcome["error"] = e

    t = threading.Thread(target=launch)
    t.start()
    wait_log(srv, f"paused at {step}")
    srv.kill()
    t.join(timeout=30)
    assert "response" not in outcome, f"the launch paused at {step} must not have been answered"

    srv.env = {}
    srv.start()
    ec2 = srv.client("ec2")
    assert ec2.describe_instances()["Reservations"] == [], step
    assert ec2.describe_volumes()["Volumes"] == [], step
    assert ec2.describe_tags(Filters=[{"Name": "key", "Values": ["step"]}])["Tags"] == [], step
    # Every address of the range is free again.
    allocations = [ec2.allocate_address(Domain="vpc") for _ in range(5)]
    assert len({a["PublicIp"] for a in allocations}) == 5, step
    for a in allocations:
        ec2.release_address(AllocationId=a["AllocationId"])
