"""Compute end to end: real QEMU guests (TCG) started through boto3 and
awscli against `mallee up`, their user-data run from the metadata service,
their console output, reboot, stop/start, guest poweroff, launch
permissions, hooks, capacity, and kill -9 of the controller and node
agent."""

from __future__ import annotations

import base64
import os
import random
import re
import threading
import json
import time
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from conftest import snapshot
from computeutil import (
    BOOT_TIMEOUT,
    console,
    guest_cloud,
    guest_images,
    instance_role,
    instances_of,
    qemu_pids,
    register_guest,
    user_data,
    wait_console,
    wait_states,
)


def full_snapshot(ec2) -> dict:
    """Key pairs, tags and every instance with its state."""
    snap = snapshot(ec2)
    snap["instances"] = sorted(
        (i["InstanceId"], i["State"]["Name"])
        for r in ec2.describe_instances()["Reservations"]
        for i in r["Instances"]
    )
    return snap


def ids_of(resp) -> list[str]:
    return [i["InstanceId"] for i in resp["Instances"]]


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    """A cloud with the test guest registered, shared by this module."""
    with guest_cloud(tmp_path_factory, "compute") as srv:
        yield srv


@pytest.fixture
def ec2c(cloud):
    return cloud.client("ec2")


def terminate(ec2, ids):
    if ids:
        ec2.terminate_instances(InstanceIds=list(ids))


def test_run_instance_user_data_imdsv2_console_and_terminate(cloud, ec2c):
    """One instance, launched with an instance profile: user data, IMDSv2,
    the console, the role's credentials from the metadata service (used to
    write into the account's bucket without any key in the user data),
    reboot and terminate."""
    key = ec2c.create_key_pair(KeyName=f"k-{uuid.uuid4().hex[:8]}")
    bucket = f"results-{uuid.uuid4().hex[:8]}"
    cloud.client("s3").create_bucket(Bucket=bucket)
    profile, role = instance_role(cloud, bucket)
    script = user_data(
        'echo "MARKER-7f3a $(imds meta-data/instance-id) $(imds meta-data/local-ipv4)"\n'
        'echo "IAM-INFO $(imds meta-data/iam/info | tr -d \'\\n\')"\n'
        'echo "IAM-ROLE $(imds meta-data/iam/security-credentials/)"\n'
        'echo "IAM-CREDS $(imds meta-data/iam/security-credentials/$(imds meta-data/iam/security-credentials/)'
        ' | tr -d \'\\n\')"\n'
        'echo "API $(imds meta-data/services/endpoints/s3)"\n'
        f'echo "S3PUT $(echo done-in-guest | s3put {bucket} $(imds meta-data/instance-id)/result.txt 2>&1'
        ' | tr \'\\n\' \' \')"'
    )
    resp = ec2c.run_instances(
        ImageId=cloud.images["pv"],
        MinCount=1,
        MaxCount=1,
        InstanceType="m1.small",
        KeyName=key["KeyName"],
        UserData=script,
        IamInstanceProfile={"Name": profile},
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "first"}]}],
    )
    (iid,) = ids_of(resp)
    assert resp["Instances"][0]["State"]["Name"] == "pending"
    assert resp["ReservationId"].startswith("r-")
    try:
        inst = wait_states(ec2c, [iid], "running")[iid]
        ip = inst["PrivateIpAddress"]
        assert ip.startswith("172.31.")
        assert inst["PrivateDnsName"] == f"ip-{ip.replace('.', '-')}.mallee-1.compute.internal"
        assert inst["Placement"]["AvailabilityZone"] == "mallee-1a"
        assert inst["KeyName"] == key["KeyName"]
        assert inst["KernelId"] == cloud.images["kernel"]
        assert inst["RamdiskId"] == cloud.images["ramdisk"]
        assert inst["ImageId"] == cloud.images["pv"]
        assert inst["VirtualizationType"] == "paravirtual"
        assert {"Key": "Name", "Value": "first"} in inst["Tags"]
        out = wait_console(ec2c, iid, f"MARKER-7f3a {iid} {ip}", "S3PUT ")
        assert "MALLEE-GUEST: metadata v2" in out
        check_instance_profile(cloud, ec2c, iid, out, profile, role, bucket)
        assert "MALLEE-GUEST: ssh-key installed" in out
        assert f"MALLEE-GUEST: network up eth0 {ip}/20" in out
        status = ec2c.describe_instance_status(InstanceIds=[iid])["InstanceStatuses"]
        assert status[0]["InstanceState"]["Name"] == "running"
        pid = qemu_pids()[iid]
        # A reboot resets the same VM: the guest boots again and runs its
        # user data a second time.
        ec2c.reboot_instances(InstanceIds=[iid])
        marker = f"MARKER-7f3a {iid} {ip}"
        deadline = time.monotonic() + BOOT_TIMEOUT
        while console(ec2c, iid).count(marker) < 2:
            assert time.monotonic() < deadline, f"{iid} did not boot again:\n{console(ec2c, iid)[-3000:]}"
            time.sleep(1)
        assert qemu_pids()[iid] == pid, "a reboot is not a new VM"
        assert instances_of(ec2c, [iid])[iid]["State"]["Name"] == "running"
    finally:
        terminate(ec2c, [iid])
    done = wait_states(ec2c, [iid], "terminated", timeout=60)[iid]
    assert done["StateReason"]["Code"] == "Client.UserInitiatedShutdown"
    deadline = time.monotonic() + 10
    while iid in qemu_pids() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert iid not in qemu_pids()
    # Terminated instances stay visible (for an hour) and keep no address.
    assert "PrivateIpAddress" not in instances_of(ec2c, [iid])[iid]


def check_instance_profile(cloud, ec2c, iid, console_out, profile, role, bucket):
    """The instance saw its profile and its role's credentials, which write
    into the bucket and nowhere else; the association can be replaced,
    removed and made again."""
    iam = cloud.client("iam")
    profile_arn = iam.get_instance_profile(InstanceProfileName=profile)["InstanceProfile"]["Arn"]
    lines = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in console_out.splitlines()
             if line.startswith(("IAM-INFO ", "IAM-ROLE ", "IAM-CREDS ", "API ", "S3PUT "))}
    info = json.loads(lines["IAM-INFO"])
    assert (info["Code"], info["InstanceProfileArn"]) == ("Success", profile_arn)
    assert lines["IAM-ROLE"].strip() == role
    creds = json.loads(lines["IAM-CREDS"])
    assert creds["Type"] == "AWS-HMAC" and creds["AccessKeyId"].startswith("ASIA")
    # The instance reached the API at the metadata address and wrote with
    # its role's credentials (a SigV4 request signed in the guest).
    assert lines["API"].strip() == "http://169.254.169.254:8773"
    assert lines["S3PUT"].strip() == "200", lines["S3PUT"]
    got = cloud.client("s3").get_object(Bucket=bucket, Key=f"{iid}/result.txt")["Body"].read()
    assert got == b"done-in-guest\n"
    s3 = boto3.client("s3", region_name="mallee-1", endpoint_url=cloud.endpoint,
                      aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                      aws_session_token=creds["Token"])
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=f"{bucket}-elsewhere", Key="x", Body=b"no")
    assert e.value.response["Error"]["Code"] in ("AccessDenied", "NoSuchBucket")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key=f"{iid}/result.txt")
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    who = boto3.client("sts", region_name="mallee-1", endpoint_url=cloud.endpoint,
                       aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                       aws_session_token=creds["Token"]).get_caller_identity()
    assert who["Arn"].endswith(f":assumed-role/{role}/{iid}")

    inst = instances_of(ec2c, [iid])[iid]
    assert inst["IamInstanceProfile"]["Arn"] == profile_arn
    (assoc,) = ec2c.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [iid]}])["IamInstanceProfileAssociations"]
    assert (assoc["InstanceId"], assoc["State"]) == (iid, "associated")
    with pytest.raises(ClientError) as e:
        ec2c.associate_iam_instance_profile(InstanceId=iid, IamInstanceProfile={"Name": profile})
    assert e.value.response["Error"]["Code"] == "IncorrectState"
    replaced = ec2c.replace_iam_instance_profile_association(
        AssociationId=assoc["AssociationId"], IamInstanceProfile={"Arn": profile_arn})["IamInstanceProfileAssociation"]
    gone = ec2c.disassociate_iam_instance_profile(AssociationId=replaced["AssociationId"])
    assert gone["IamInstanceProfileAssociation"]["InstanceId"] == iid
    assert ec2c.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [iid]}])["IamInstanceProfileAssociations"] == []
    assert "IamInstanceProfile" not in instances_of(ec2c, [iid])[iid]
    again = ec2c.associate_iam_instance_profile(InstanceId=iid, IamInstanceProfile={"Name": profile})
    assert again["IamInstanceProfileAssociation"]["IamInstanceProfile"]["Arn"] == profile_arn
    with pytest.raises(ClientError) as e:
        ec2c.associate_iam_instance_profile(InstanceId=iid, IamInstanceProfile={"Name": "no-such-profile"})
    assert e.value.response["Error"]["Code"] in ("InvalidParameterValue", "IncorrectState")


def test_awscli_hvm_instance(cloud, tmp_path):
    from conftest import AwsCli

    cli = AwsCli(cloud, home=tmp_path)
    script = tmp_path / "script.sh"
    script.write_text(user_data('echo "HVM-OK $(imds meta-data/ami-id)"'))
    out = cli.json(
        "ec2", "run-instances", "--image-id", cloud.images["hvm"], "--instance-type", "m1.small",
        "--user-data", f"file://{script}", "--count", "1",
    )
    iid = out["Instances"][0]["InstanceId"]
    ec2 = cloud.client("ec2")
    try:
        wait_states(ec2, [iid], "running")
        wait_console(ec2, iid, f"HVM-OK {cloud.images['hvm']}")
        text = cli.run("ec2", "get-console-output", "--instance-id", iid, "--output", "text").stdout
        assert f"HVM-OK {cloud.images['hvm']}" in text
        desc = cli.json("ec2", "describe-instances", "--instance-ids", iid)
        assert desc["Reservations"][0]["Instances"][0]["VirtualizationType"] == "hvm"
    finally:
        cli.run("ec2", "terminate-instances", "--instance-ids", iid)
    wait_states(ec2, [iid], "terminated", timeout=60)


def dir_kib(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file() and not p.is_symlink():
                total += p.stat().st_blocks * 512 // 1024
        except OSError:
            pass
    return total


def test_five_instances_in_one_call_share_one_image_copy(cloud, ec2c):
    node_dir = cloud.data_dir / "node"
    root_kib = (guest_images() / "root.img").stat().st_size // 1024
    before = dir_kib(node_dir)
    resp = ec2c.run_instances(
        ImageId=cloud.images["pv"], MinCount=5, MaxCount=5, InstanceType="t1.micro",
        UserData=user_data('echo "WHOAMI $(imds meta-data/instance-id) $(imds meta-data/ami-launch-index)"'),
    )
    ids = ids_of(resp)
    assert len(ids) == 5
    assert sorted(i["AmiLaunchIndex"] for i in resp["Instances"]) == [0, 1, 2, 3, 4]
    try:
        wait_states(ec2c, ids, "running")
        for iid in ids:
            out = wait_console(ec2c, iid, f"WHOAMI {iid}")
            others = [o for o in ids if o != iid and f"WHOAMI {o}" in out]
            assert not others, f"{iid} saw another instance's id"
        grown = dir_kib(node_dir) - before
        # One cached copy at most (the first test may already have fetched
        # it) plus five small overlays: far less than five copies.
        assert grown < root_kib + 5 * 16 * 1024, f"node disk grew by {grown} KiB for 5 instances of a {root_kib} KiB image"
        copies = [
            p for p in node_dir.rglob("*")
            if p.is_file() and p.stat().st_size == (guest_images() / "root.img").stat().st_size
        ]
        assert len(copies) == 1, f"expected one cached copy of the root image, found {copies}"
        reservations = ec2c.describe_instances(InstanceIds=ids)["Reservations"]
        assert len(reservations) == 1 and len(reservations[0]["Instances"]) == 5
        ips = {i["PrivateIpAddress"] for i in reservations[0]["Instances"]}
        assert len(ips) == 5
    finally:
        terminate(ec2c, ids)
    wait_states(ec2c, ids, "terminated", timeout=90)


def test_guest_poweroff_follows_shutdown_behaviour_and_stop_keeps_the_disk(cloud, ec2c):
    term = ec2c.run_instances(
        ImageId=cloud.images["pv"], MinCount=1, MaxCount=1, InstanceType="t1.micro",
        InstanceInitiatedShutdownBehavior="terminate",
        UserData=user_data("echo WORK-DONE; poweroff"),
    )
    stop_script = user_data(
        """
if [ -f /root/marker ]; then
  echo "DISK-INTACT $(cat /root/marker)"
else
  echo first-boot-7c1 > /root/marker; sync; echo WROTE-MARKER; poweroff
fi
"""
    )
    stop = ec2c.run_instances(
        ImageId=cloud.images["pv"], MinCount=1, MaxCount=1, InstanceType="t1.micro",
        InstanceInitiatedShutdownBehavior="stop", UserData=stop_script,
    )
    (tid,), (sid,) = ids_of(term), ids_of(stop)
    try:
        ended = wait_states(ec2c, [tid], "terminated")[tid]
        assert ended["StateReason"]["Code"] == "Client.InstanceInitiatedShutdown"
        stopped = wait_states(ec2c, [sid], "stopped")[sid]
        assert stopped["StateReason"]["Code"] == "Client.InstanceInitiatedShutdown"
        assert sid not in qemu_pids()
        attr = ec2c.describe_instance_attribute(InstanceId=sid, Attribute="instanceInitiatedShutdownBehavior")
        assert attr["InstanceInitiatedShutdownBehavior"]["Value"] == "stop"
        # Changing the type is allowed while stopped, not while running.
        ec2c.modify_instance_attribute(InstanceId=sid, InstanceType={"Value": "m1.small"})
        assert instances_of(ec2c, [sid])[sid]["InstanceType"] == "m1.small"
        started = ec2c.start_instances(InstanceIds=[sid])["StartingInstances"][0]
        assert started["PreviousState"]["Name"] == "stopped"
        assert started["CurrentState"]["Name"] == "pending"
        wait_states(ec2c, [sid], "running")
        out = wait_console(ec2c, sid, "DISK-INTACT first-boot-7c1")
        with pytest.raises(ClientError) as e:
            ec2c.modify_instance_attribute(InstanceId=sid, InstanceType={"Value": "m1.large"})
        assert error_code(e) == "IncorrectInstanceState"
        # StopInstances through the API, then start again.
        ec2c.stop_instances(InstanceIds=[sid])
        wait_states(ec2c, [sid], "stopped", timeout=90)
        ec2c.start_instances(InstanceIds=[sid])
        wait_states(ec2c, [sid], "running")
        assert "DISK-INTACT" in out
    finally:
        terminate(ec2c, [tid, sid])
    wait_states(ec2c, [tid, sid], "terminated", timeout=90)


def test_disable_api_termination_and_attributes(cloud, ec2c):
    resp = ec2c.run_instances(
        ImageId=cloud.images["pv"], MinCount=1, MaxCount=1, InstanceType="t1.micro",
        DisableApiTermination=True, UserData=user_data("echo hi"),
    )
    (iid,) = ids_of(resp)
    try:
        with pytest.raises(ClientError) as e:
            ec2c.terminate_instances(InstanceIds=[iid])
        assert error_code(e) == "OperationNotPermitted"
        assert instances_of(ec2c, [iid])[iid]["State"]["Name"] in ("pending", "running")
        ud = ec2c.describe_instance_attribute(InstanceId=iid, Attribute="userData")["UserData"]["Value"]
        assert base64.b64decode(ud).decode() == user_data("echo hi")
        assert ec2c.describe_instance_attribute(InstanceId=iid, Attribute="disableApiTermination")[
            "DisableApiTermination"]["Value"] is True
    finally:
        ec2c.modify_instance_attribute(InstanceId=iid, DisableApiTermination={"Value": False})
        terminate(ec2c, [iid])
    wait_states(ec2c, [iid], "terminated", timeout=90)


def test_client_token_makes_run_instances_idempotent(cloud, ec2c):
    token = uuid.uuid4().hex
    args = dict(ImageId=cloud.images["pv"], MinCount=1, MaxCount=1, InstanceType="t1.micro", ClientToken=token)
    first = ec2c.run_instances(**args)
    again = ec2c.run_instances(**args)
    try:
        assert first["ReservationId"] == again["ReservationId"]
        assert ids_of(first) == ids_of(again)
        with pytest.raises(ClientError) as e:
            ec2c.run_instances(**{**args, "InstanceType": "m1.small"})
        assert error_code(e) == "IdempotentParameterMismatch"
        mine = [i for r in ec2c.describe_instances(
            Filters=[{"Name": "client-token", "Values": [token]}])["Reservations"] for i in r["Instances"]]
        assert [i["InstanceId"] for i in mine] == ids_of(first)
    finally:
        terminate(ec2c, ids_of(first))


def test_describe_filters(cloud, ec2c):
    key = ec2c.create_key_pair(KeyName=f"f-{uuid.uuid4().hex[:8]}")["KeyName"]
    tag = uuid.uuid4().hex[:8]
    resp = ec2c.run_instances(
        ImageId=cloud.images["pv"], MinCount=2, MaxCount=2, InstanceType="t1.micro", KeyName=key,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "suite", "Value": tag}]}],
    )
    ids = ids_of(resp)
    try:
        insts = wait_states(ec2c, ids, "running")
        ip = insts[ids[0]]["PrivateIpAddress"]

        def found(filters):
            return sorted(i["InstanceId"] for r in ec2c.describe_instances(Filters=filters)["Reservations"]
                          for i in r["Instances"])

        assert found([{"Name": "tag:suite", "Values": [tag]}]) == sorted(ids)
        assert found([{"Name": "tag:suite", "Values": [tag]}, {"Name": "private-ip-address", "Values": [ip]}]) == [ids[0]]
        assert found([{"Name": "key-name", "Values": [key]}]) == sorted(ids)
        assert found([{"Name": "tag:suite", "Values": [tag]}, {"Name": "instance-state-name", "Values": ["running"]}]) == sorted(ids)
        assert found([{"Name": "tag:suite", "Values": [tag]}, {"Name": "instance-state-name", "Values": ["stopped"]}]) == []
        assert found([{"Name": "tag:suite", "Values": [tag]}, {"Name": "image-id", "Values": [cloud.images["pv"]]},
                      {"Name": "instance-type", "Values": ["t1.micro"]},
                      {"Name": "availability-zone", "Values": ["mallee-1a"]}]) == sorted(ids)
        assert found([{"Name": "instance-id", "Values": [ids[1]]}]) == [ids[1]]
        assert found([{"Name": "tag:suite", "Values": [tag]}, {"Name": "ip-address", "Values": ["203.0.113.1"]}]) == []
        paged = ec2c.describe_instances(Filters=[{"Name": "tag:suite", "Values": [tag]}], MaxResults=5)
        assert sum(len(r["Instances"]) for r in paged["Reservations"]) == 2
        # Answered by the store's indexes (issue 18), with the same meaning.
        vpc, subnet = insts[ids[0]]["VpcId"], insts[ids[0]]["SubnetId"]
        assert found([{"Name": "tag:suite", "Values": [tag]}, {"Name": "vpc-id", "Values": [vpc, "vpc-0"]},
                      {"Name": "subnet-id", "Values": [subnet]}]) == sorted(ids)
        assert found([{"Name": "tag-value", "Values": [tag]}, {"Name": "instance-id", "Values": ["i-*"]}]) == sorted(ids)
        assert found([{"Name": "tag-key", "Values": ["suite"]}, {"Name": "tag:suite", "Values": [tag[:4] + "*"]},
                      {"Name": "key-name", "Values": [key[:-1] + "?"]}]) == sorted(ids)
        assert found([{"Name": "tag:suite", "Values": [tag]}, {"Name": "subnet-id", "Values": ["subnet-0"]}]) == []
        # A filter the store does not answer (architecture) with a page:
        # still one page at a time, in id order.
        seen, token = [], None
        while True:
            kw = {"NextToken": token} if token else {}
            page = ec2c.describe_instances(Filters=[{"Name": "tag:suite", "Values": [tag]},
                                                    {"Name": "architecture", "Values": ["x86_64", "i386"]}],
                                           MaxResults=5, **kw)
            seen += [i["InstanceId"] for r in page["Reservations"] for i in r["Instances"]]
            token = page.get("NextToken")
            if not token:
                break
        assert sorted(seen) == sorted(ids)
        with pytest.raises(ClientError) as e:
            ec2c.describe_instances(Filters=[{"Name": "no-such-filter", "Values": ["x"]}])
        assert error_code(e) == "InvalidParameterValue"
    finally:
        terminate(ec2c, ids)


def settled(ec2):
    """Waits until no instance of the account is between states, so a
    snapshot taken now is not changed by earlier tests' terminations."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        states = [i["State"]["Name"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
        if all(s in ("running", "stopped", "terminated") for s in states):
            return
        time.sleep(0.5)
    raise AssertionError("instances did not settle")


def test_bad_requests_change_nothing(cloud, ec2c):
    settled(ec2c)
    before = full_snapshot(ec2c)
    running_before = set(qemu_pids())
    pv = cloud.images["pv"]
    cases = [
        (dict(ImageId="ami-0000000000000000f", MinCount=1, MaxCount=1), "InvalidAMIID.NotFound"),
        (dict(ImageId="bogus", MinCount=1, MaxCount=1), "InvalidAMIID.Malformed"),
        (dict(ImageId=cloud.images["kernel"], MinCount=1, MaxCount=1), None),
        (dict(ImageId=pv, MinCount=1, MaxCount=1, InstanceType="z9.huge"), "InvalidParameterValue"),
        (dict(ImageId=pv, MinCount=1, MaxCount=1, KeyName="no-such-key-xyz"), "InvalidKeyPair.NotFound"),
        (dict(ImageId=pv, MinCount=3, MaxCount=2), "InvalidParameterValue"),
        (dict(ImageId=pv, MinCount=1, MaxCount=1, Placement={"AvailabilityZone": "mallee-1z"}), "InvalidParameterValue"),
        (dict(ImageId=pv, MinCount=1, MaxCount=1, InstanceInitiatedShutdownBehavior="explode"), "InvalidParameterValue"),
        (dict(ImageId=pv, MinCount=1, MaxCount=1, KernelId="aki-0000000000000000f"), None),
    ]
    for args, code in cases:
        with pytest.raises(ClientError) as e:
            ec2c.run_instances(**args)
        if code:
            assert error_code(e) == code, (args, e.value.response)
        assert e.value.response["ResponseMetadata"]["RequestId"]
    raw = cloud.raw({"Action": "RunInstances", "ImageId": pv, "MinCount": "1", "MaxCount": "1",
                     "UserData": "%%%not-base64%%%", "Version": "2016-11-15"})
    assert raw.status == 400 and raw.error_code == "InvalidParameterValue"
    for call, args, code in [
        (ec2c.terminate_instances, dict(InstanceIds=["i-0000000000000000f"]), "InvalidInstanceID.NotFound"),
        (ec2c.terminate_instances, dict(InstanceIds=["i-zzz"]), "InvalidInstanceID.Malformed"),
        (ec2c.stop_instances, dict(InstanceIds=["i-0000000000000000f"]), "InvalidInstanceID.NotFound"),
        (ec2c.describe_instances, dict(InstanceIds=["i-0000000000000000f"]), "InvalidInstanceID.NotFound"),
        (ec2c.get_console_output, dict(InstanceId="i-0000000000000000f"), "InvalidInstanceID.NotFound"),
    ]:
        with pytest.raises(ClientError) as e:
            call(**args)
        assert error_code(e) == code
    assert full_snapshot(ec2c) == before
    assert set(qemu_pids()) == running_before


def test_other_accounts_instances_are_invisible(cloud, ec2c):
    other = cloud.create_account()
    theirs = cloud.client("ec2", creds=other)
    resp = ec2c.run_instances(ImageId=cloud.images["pv"], MinCount=1, MaxCount=1, InstanceType="t1.micro")
    (iid,) = ids_of(resp)
    try:
        assert theirs.describe_instances()["Reservations"] == []
        for call, args in [
            (theirs.describe_instances, dict(InstanceIds=[iid])),
            (theirs.terminate_instances, dict(InstanceIds=[iid])),
            (theirs.stop_instances, dict(InstanceIds=[iid])),
            (theirs.get_console_output, dict(InstanceId=iid)),
        ]:
            with pytest.raises(ClientError) as e:
                call(**args)
            assert error_code(e) == "InvalidInstanceID.NotFound"
        assert instances_of(ec2c, [iid])[iid]["State"]["Name"] in ("pending", "running")
    finally:
        terminate(ec2c, [iid])


def test_launch_permission_across_accounts(cloud, ec2c):
    other = cloud.create_account()
    theirs = cloud.client("ec2", creds=other)
    image = cloud.images["pv"]
    # The kernel and ramdisk must be launchable by the other account too.
    for part in (cloud.images["kernel"], cloud.images["ramdisk"]):
        ec2c.modify_image_attribute(ImageId=part, LaunchPermission={"Add": [{"UserId": other["account_id"]}]})
    with pytest.raises(ClientError) as e:
        theirs.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t1.micro")
    assert error_code(e) == "InvalidAMIID.NotFound"
    ec2c.modify_image_attribute(ImageId=image, LaunchPermission={"Add": [{"UserId": other["account_id"]}]})
    resp = theirs.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t1.micro")
    (iid,) = ids_of(resp)
    theirs.terminate_instances(InstanceIds=[iid])
    ec2c.modify_image_attribute(ImageId=image, LaunchPermission={"Remove": [{"UserId": other["account_id"]}]})
    with pytest.raises(ClientError) as e:
        theirs.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t1.micro")
    assert error_code(e) == "InvalidAMIID.NotFound"
    wait_states(theirs, [iid], "terminated", timeout=90)


def test_pre_boot_hook_failure_fails_the_instance(mallee_factory, tmp_path):
    srv = mallee_factory("hooks", start=False)
    hooks = srv.data_dir / "node" / "hooks"
    hooks.mkdir(parents=True)
    hook = hooks / "10-deny-boot"
    hook.write_text('#!/bin/sh\n[ "$1" = pre-boot ] && { echo "boot denied by site policy" >&2; exit 1; }\nexit 0\n')
    hook.chmod(0o755)
    srv.start()
    images = register_guest(srv)
    ec2 = srv.client("ec2")
    (iid,) = ids_of(ec2.run_instances(ImageId=images["pv"], MinCount=1, MaxCount=1, InstanceType="t1.micro"))
    deadline = time.monotonic() + 120
    inst = {}
    while time.monotonic() < deadline:
        inst = instances_of(ec2, [iid])[iid]
        if inst["State"]["Name"] == "terminated":
            break
        assert inst["State"]["Name"] in ("pending", "shutting-down"), inst["State"]
        time.sleep(0.5)
    assert inst["State"]["Name"] == "terminated"
    assert inst["StateReason"]["Code"] == "Server.InternalError"
    assert "pre-boot" in inst["StateReason"]["Message"], inst["StateReason"]
    assert iid not in qemu_pids()


def test_insufficient_capacity(mallee_factory):
    srv = mallee_factory("small", extra_args=["--node-cores", "1"])
    images = register_guest(srv)
    ec2 = srv.client("ec2")
    before = full_snapshot(ec2)
    with pytest.raises(ClientError) as e:
        ec2.run_instances(ImageId=images["pv"], MinCount=2, MaxCount=2, InstanceType="t1.micro")
    assert error_code(e) == "InsufficientInstanceCapacity"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert full_snapshot(ec2) == before
    # MinCount 1 of MaxCount 3 gets the one slot there is.
    resp = ec2.run_instances(ImageId=images["pv"], MinCount=1, MaxCount=3, InstanceType="t1.micro")
    assert len(resp["Instances"]) == 1
    ec2.terminate_instances(InstanceIds=ids_of(resp))


def test_kill_node_agent_keeps_vms_running_and_adopts_them(mallee_factory):
    srv = mallee_factory("adopt")
    images = register_guest(srv)
    ec2 = srv.client("ec2")
    resp = ec2.run_instances(
        ImageId=images["pv"], MinCount=3, MaxCount=3, InstanceType="t1.micro",
        UserData=user_data("while true; do echo TICK $(cat /proc/uptime); sleep 2; done"),
    )
    ids = ids_of(resp)
    wait_states(ec2, ids, "running")
    for iid in ids:
        wait_console(ec2, iid, "TICK")
    pids = {iid: qemu_pids()[iid] for iid in ids}
    srv.kill()  # kill -9 of controller and node agent (one process in `up`)
    assert all(qemu_pids().get(i) == p for i, p in pids.items()), "VMs must outlive the agent"
    srv.start()
    ec2 = srv.client("ec2")
    insts = wait_states(ec2, ids, "running", timeout=30)
    assert len(insts) == 3
    time.sleep(3)  # a few reconciler passes
    assert {i: qemu_pids().get(i) for i in ids} == pids, "adopted, not restarted"
    assert all(instances_of(ec2, ids)[i]["State"]["Name"] == "running" for i in ids)
    before = console(ec2, ids[0]).count("TICK")
    deadline = time.monotonic() + 30
    while console(ec2, ids[0]).count("TICK") <= before and time.monotonic() < deadline:
        time.sleep(1)
    assert console(ec2, ids[0]).count("TICK") > before, "console keeps flowing after adoption"
    ec2.terminate_instances(InstanceIds=ids)
    wait_states(ec2, ids, "terminated", timeout=90)


def test_kill_controller_during_run_instances(mallee_factory):
    srv = mallee_factory("crashy", extra_args=["--node-cores", "64"])
    images = register_guest(srv)
    attempts = []
    rng = random.Random(4)
    for round_ in range(3):
        ec2 = srv.client("ec2")
        token = f"crash-{round_}-{uuid.uuid4().hex[:6]}"
        attempts.append(token)

        def launch():
            try:
                ec2.run_instances(ImageId=images["pv"], MinCount=3, MaxCount=3, InstanceType="t1.micro",
                                  ClientToken=token)
            except Exception:  # the server dies under it
                pass

        t = threading.Thread(target=launch)
        t.start()
        time.sleep(rng.uniform(0.0, 0.08))
        srv.kill()
        t.join()
        srv.start()
    ec2 = srv.client("ec2")
    reservations = ec2.describe_instances()["Reservations"]
    for r in reservations:
        assert len(r["Instances"]) == 3, f"partial reservation {r['ReservationId']}"
    by_token = {}
    for r in reservations:
        for i in r["Instances"]:
            by_token.setdefault(i["ClientToken"], set()).add(i["InstanceId"])
    assert set(by_token) <= set(attempts)
    ids = [i["InstanceId"] for r in reservations for i in r["Instances"]]
    if ids:
        wait_states(ec2, ids, "running")
    time.sleep(2)
    known = set(ids)
    node_vms = {iid for iid in qemu_pids() if iid in known or iid.startswith("i-")}
    orphans = {iid for iid in node_vms if iid not in known and (srv.data_dir / "node" / "instances" / iid).exists()}
    assert not orphans, f"VMs nobody knows about: {orphans}"
    # A retry with the same token after the crash returns the same
    # reservation, or makes the one that was lost.
    for token in attempts:
        resp = ec2.run_instances(ImageId=images["pv"], MinCount=3, MaxCount=3, InstanceType="t1.micro",
                                 ClientToken=token)
        if token in by_token:
            assert set(ids_of(resp)) == by_token[token]
        ids.extend(i for i in ids_of(resp) if i not in ids)
    ec2.terminate_instances(InstanceIds=ids)
    wait_states(ec2, ids, "terminated", timeout=120)


def test_auto_acceleration_picks_tcg_here_and_says_why(mallee_factory):
    srv = mallee_factory(
        "accel", extra_args=["--accel", "auto", "--probe-kernel", str(guest_images() / "vmlinuz")]
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and "acceleration selected" not in srv.log_text():
        time.sleep(0.5)
    lines = [l for l in srv.log_text().splitlines() if "acceleration selected" in l]
    assert lines, srv.log_tail()
    if os.path.exists("/dev/kvm"):
        # These machines' /dev/kvm is paravirtual: stock kernels hang on it.
        assert re.search(r'accel="?tcg"?', lines[-1]) and "reason=" in lines[-1], lines[-1]
