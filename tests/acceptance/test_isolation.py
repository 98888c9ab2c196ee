"""Account isolation, action by action: for every action of the EC2 and
metal APIs, a second account can neither see nor touch the first
account's resources through it. Until IAM exists this is the whole of
authorisation; `crates/api/tests/action_coverage.rs` fails when a declared
action has no entry in EC2_CHECKS or METAL_CHECKS below.

One cloud for the module (metalutil's `machineless_cloud`: the node agent,
and bare-metal provisioning with manual-power systems and no machines).
Account A, an ordinary account, owns one of everything: a running
instance (a 1 MiB raw disk registered as an hvm image: nothing boots, the
VM just runs) with its key pair, security group, elastic address and an
attached volume; a second volume; private images and snapshots shared
with the administrator account only; an image and an imported snapshot
shared with B; a private bucket object; a reserved system and a system
being installed. Account B, another ordinary account, then tries each
action on them:

- Describe* of A's ids is not found, and B's unfiltered lists hold none
  of A's resources; what A shared with B is visible to B, and only that.
- B's changes to A's resources are refused (NotFound, or AuthFailure for
  what B sees because A shared it), and A's resource is unchanged.
- B's Create* naming A's resources (RunInstances with A's image, key
  pair, group, subnet or snapshot; CreateVolume from A's snapshot;
  RegisterImage and ImportSnapshot of A's object …) are refused and create
  nothing.
- Where there is nothing of A's to touch, each entry checks what isolation
  means for that action: the same key pair or group name in both
  accounts, B's own default VPC, A's elastic IP limit not spent by B, no
  capacity table for B, the cloud's regions and types the same for both.
- Metal: inventory changes are for administrators (A and B are refused);
  B sees A's systems as taken but not by whom or with what, and can
  neither change, reboot, reserve, install nor release them.

At the end, everything A owns is as it was after the setup.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import pytest
from botocore.exceptions import ClientError

from conftest import REGION, ZONE, ssh_keygen
from metalutil import Metaleuca, machineless_cloud

NET = "10.254.11"
TIMEOUT = 60.0


# ---------------------------------------------------------------- helpers


def clean(resp):
    """A response without its per-request metadata."""
    if isinstance(resp, dict):
        return {k: v for k, v in resp.items() if k != "ResponseMetadata"}
    return resp


def refused(call, code: str, **kwargs):
    """`call(**kwargs)` fails with EC2 error `code`."""
    with pytest.raises(ClientError) as e:
        call(**kwargs)
    error = e.value.response["Error"]
    assert error["Code"] == code, f"{call.__name__}({kwargs}): {error['Code']} ({error['Message']}), want {code}"


@contextlib.contextmanager
def unchanged(*reads):
    """Asserts that each read answers the same after the block as before."""
    before = [clean(read()) for read in reads]
    yield
    after = [clean(read()) for read in reads]
    assert after == before


def wait(what: str, probe, timeout: float = TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        assert time.monotonic() < deadline, f"{what} after {timeout}s"
        time.sleep(0.2)


def metal_refused(ml: Metaleuca, code: str, *args) -> str:
    """`metaleuca-ARGS…` fails with metal API error `code`."""
    proc = ml.run(*args, check=False)
    assert proc.returncode != 0 and f": {code}: " in proc.stderr, (args, proc.stdout, proc.stderr)
    return proc.stderr


# ---------------------------------------------------------------- the world


class World(SimpleNamespace):
    """The module's cloud, its accounts and their clients, and the ids of
    what the setup made."""


def setup_ec2(w: World):
    a, b = w.a, w.b
    suffix = uuid.uuid4().hex[:8]
    # Objects: A's private bucket with two tiny raw disks, B's own.
    w.bucket = f"iso-a-{suffix}"
    w.s3a.create_bucket(Bucket=w.bucket)
    for key in ("disk.raw", "disk2.raw"):
        w.s3a.put_object(Bucket=w.bucket, Key=key, Body=b"\0" * (1 << 20))
    bbucket = f"iso-b-{suffix}"
    w.s3b.create_bucket(Bucket=bbucket)
    w.s3b.put_object(Bucket=bbucket, Key="disk.raw", Body=b"\0" * (1 << 20))

    def register(client, bucket, key, name):
        return client.register_image(
            Name=name, ImageLocation=f"{bucket}/{key}", VirtualizationType="hvm", Architecture="x86_64"
        )["ImageId"]

    w.img = register(a, w.bucket, "disk.raw", f"a-private-{suffix}")
    a.modify_image_attribute(ImageId=w.img, LaunchPermission={"Add": [{"UserId": w.admin_id}]})
    w.img_shared = register(a, w.bucket, "disk2.raw", f"a-shared-{suffix}")
    a.modify_image_attribute(ImageId=w.img_shared, LaunchPermission={"Add": [{"UserId": w.B["account_id"]}]})
    w.bimg = register(b, bbucket, "disk.raw", f"b-own-{suffix}")

    w.key_name = f"iso-key-{suffix}"
    w.key_id = a.create_key_pair(KeyName=w.key_name)["KeyPairId"]
    w.vpc = a.describe_vpcs()["Vpcs"][0]["VpcId"]
    w.subnet = a.describe_subnets()["Subnets"][0]["SubnetId"]
    # A's custom VPC with a subnet and a DHCP options set it uses.
    w.cvpc = a.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    w.csubnet = a.create_subnet(VpcId=w.cvpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    w.dopt = a.create_dhcp_options(
        DhcpConfigurations=[{"Key": "domain-name", "Values": ["a.example"]}]
    )["DhcpOptions"]["DhcpOptionsId"]
    a.associate_dhcp_options(DhcpOptionsId=w.dopt, VpcId=w.cvpc)
    w.acl = a.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [w.cvpc]}])["NetworkAcls"][0]["NetworkAclId"]
    w.group_name = f"iso-group-{suffix}"
    w.sg = a.create_security_group(GroupName=w.group_name, Description="account A")["GroupId"]
    a.authorize_security_group_ingress(GroupId=w.sg, IpPermissions=[ssh_from_ten()])
    rules = a.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [w.sg]}])["SecurityGroupRules"]
    w.sgr_in = next(r["SecurityGroupRuleId"] for r in rules if not r["IsEgress"])
    w.sgr_out = next(r["SecurityGroupRuleId"] for r in rules if r["IsEgress"])
    w.bsg = b.create_security_group(GroupName=f"iso-b-{suffix}", Description="account B")["GroupId"]

    iid = a.run_instances(
        ImageId=w.img, MinCount=1, MaxCount=1, InstanceType="t1.micro", KeyName=w.key_name,
        SecurityGroupIds=[w.sg],
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "owner", "Value": "a"}]}],
    )["Instances"][0]["InstanceId"]
    w.iid = iid
    w.eni = instance(a, iid)["NetworkInterfaces"][0]["NetworkInterfaceId"]
    # A's instance carries A's instance profile.
    iam_a = w.srv.client("iam", creds=w.A)
    role = f"iso-role-{suffix}"
    iam_a.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                       "Action": "sts:AssumeRole"}]}))
    w.profile = f"iso-profile-{suffix}"
    w.profile_arn = iam_a.create_instance_profile(InstanceProfileName=w.profile)["InstanceProfile"]["Arn"]
    iam_a.add_role_to_instance_profile(InstanceProfileName=w.profile, RoleName=role)
    w.iip_assoc = a.associate_iam_instance_profile(
        InstanceId=iid, IamInstanceProfile={"Name": w.profile})["IamInstanceProfileAssociation"]["AssociationId"]

    w.vol = a.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    w.vol2 = a.create_volume(
        Size=1, AvailabilityZone=ZONE,
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "owner", "Value": "a"}]}],
    )["VolumeId"]
    w.bvol = b.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    for client, vid in ((a, w.vol), (a, w.vol2), (b, w.bvol)):
        wait(f"{vid} available", lambda: client.describe_volumes(VolumeIds=[vid])["Volumes"][0]["State"] == "available")

    w.snap = a.create_snapshot(VolumeId=w.vol2, Description="A's private")["SnapshotId"]
    task = a.import_snapshot(
        DiskContainer={"Format": "RAW", "UserBucket": {"S3Bucket": w.bucket, "S3Key": "disk.raw"}}
    )["ImportTaskId"]
    w.task = task

    def imported():
        detail = a.describe_import_snapshot_tasks(ImportTaskIds=[task])["ImportSnapshotTasks"][0]["SnapshotTaskDetail"]
        return detail.get("SnapshotId") if detail["Status"] == "completed" else None

    w.snap_shared = wait("import completed", imported)
    wait(
        "snapshot completed",
        lambda: a.describe_snapshots(SnapshotIds=[w.snap])["Snapshots"][0]["State"] == "completed",
    )
    a.create_tags(Resources=[w.img, w.snap], Tags=[{"Key": "owner", "Value": "a"}])
    a.modify_snapshot_attribute(
        SnapshotId=w.snap, Attribute="createVolumePermission", OperationType="add", UserIds=[w.admin_id]
    )
    a.modify_snapshot_attribute(
        SnapshotId=w.snap_shared, Attribute="createVolumePermission", OperationType="add",
        UserIds=[w.B["account_id"]],
    )

    wait("instance running", lambda: instance(a, iid)["State"]["Name"] == "running")
    a.attach_volume(VolumeId=w.vol, InstanceId=iid, Device="/dev/sdf")
    wait(
        "volume attached",
        lambda: a.describe_volumes(VolumeIds=[w.vol])["Volumes"][0]["Attachments"][0]["State"] == "attached",
    )
    address = a.allocate_address(Domain="vpc")
    w.alloc = address["AllocationId"]
    w.public_ip = address["PublicIp"]
    w.assoc = a.associate_address(AllocationId=w.alloc, InstanceId=iid)["AssociationId"]


def setup_metal(w: World):
    image = w.tmp / "tiny.raw"
    image.write_bytes(b"\0" * 4096)
    template = w.tmp / "answers.tmpl"
    template.write_text("hostname={{ hostname }}\n")
    rack = {
        "groups": [{"name": "iso", "description": "the isolation rack"}, {"name": "spare"}],
        "distros": [{"name": "isodistro", "kernel": "/srv/k", "initrd": "/srv/i", "kernel_args": ""}],
        "profiles": [
            {"name": "tiny", "location": str(image)},
            {"name": "answers", "distro": "isodistro", "template": template.read_text()},
        ],
        "systems": [
            {"name": f"s{i}", "mac": f"52:54:00:4d:0b:0{i}", "ip": f"{NET}.1{i}", "group": "iso"}
            for i in range(1, 5)
        ],
    }
    (w.tmp / "rack.json").write_text(json.dumps(rack))
    w.ml_admin.mallee("import", w.tmp / "rack.json")
    # A holds s1 (reserved, with a profile chosen) and s2 (being
    # installed: the engine waits for the operator to power it on).
    w.ml_a.run("reserve-systems", "-i", f"{NET}.11", "-u", "demo")
    w.ml_a.run("set-profile", "-n", "s1", "-p", "tiny")
    w.ml_a.run("run-instances", "-i", f"{NET}.12", "-p", "tiny", "-u", "demo")
    w.a_owner = f"{w.A['account_name']}:demo"


def instance(client, iid: str) -> dict:
    return client.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]


def ssh_from_ten() -> dict:
    return {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}


def a_view(w: World) -> dict:
    """Everything of A's that the checks must leave alone, as A sees it."""
    a = w.a
    return {
        "instance": instance(a, w.iid),
        "instance attributes": [
            clean(a.describe_instance_attribute(InstanceId=w.iid, Attribute=attr))
            for attr in ("disableApiTermination", "instanceType", "userData")
        ],
        "images": clean(a.describe_images(ImageIds=[w.img, w.img_shared])),
        "launch permissions": [
            clean(a.describe_image_attribute(ImageId=i, Attribute="launchPermission"))
            for i in (w.img, w.img_shared)
        ],
        "volumes": clean(a.describe_volumes(VolumeIds=[w.vol, w.vol2])),
        "volume attributes": [
            clean(a.describe_volume_attribute(VolumeId=v, Attribute="autoEnableIO")) for v in (w.vol, w.vol2)
        ],
        "snapshots": clean(a.describe_snapshots(SnapshotIds=[w.snap, w.snap_shared])),
        "volume permissions": [
            clean(a.describe_snapshot_attribute(SnapshotId=s, Attribute="createVolumePermission"))
            for s in (w.snap, w.snap_shared)
        ],
        "key pair": clean(a.describe_key_pairs(KeyPairIds=[w.key_id])),
        "group": clean(a.describe_security_groups(GroupIds=[w.sg])),
        "custom vpc": clean(a.describe_vpcs(VpcIds=[w.cvpc])),
        "custom subnet": clean(a.describe_subnets(SubnetIds=[w.csubnet])),
        "dhcp options": clean(a.describe_dhcp_options(DhcpOptionsIds=[w.dopt])),
        "network acl": clean(a.describe_network_acls(NetworkAclIds=[w.acl])),
        "interface": clean(a.describe_network_interfaces(NetworkInterfaceIds=[w.eni])),
        "address": clean(a.describe_addresses(AllocationIds=[w.alloc])),
        "tags": clean(a.describe_tags()),
        "imports": clean(a.describe_import_snapshot_tasks()),
        "objects": [o["Key"] for o in w.s3a.list_objects_v2(Bucket=w.bucket)["Contents"]],
    }


def rack_view(w: World) -> dict:
    """The bare-metal inventory as the administrator sees it."""
    ml = w.ml_admin
    return {what: ml.json(what) for what in ("describe-systems", "describe-profiles", "describe-distros")} | {
        "groups": ml.lines("describe-system-groups")
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("isolation")
    with machineless_cloud(tmp, "iso", NET) as (srv, _lab):
        A, B = srv.create_account(), srv.create_account()
        w = World(
            srv=srv, tmp=tmp, A=A, B=B, admin_id=srv.admin["account_id"],
            a=srv.client("ec2", creds=A), b=srv.client("ec2", creds=B), admin=srv.client("ec2"),
            s3a=srv.client("s3", creds=A), s3b=srv.client("s3", creds=B),
            ml_admin=Metaleuca(srv, tmp / "bin"),
            ml_a=Metaleuca(srv, tmp / "bin", creds=A),
            ml_b=Metaleuca(srv, tmp / "bin", creds=B),
        )
        setup_ec2(w)
        setup_metal(w)
        w.baseline = (a_view(w), rack_view(w))
        yield w


# ---------------------------------------------------------------- EC2: the cloud's, not an account's


def describe_regions(w):
    regions = [clean(c.describe_regions()) for c in (w.a, w.b, w.admin)]
    assert regions[0] == regions[1] == regions[2], "the region is the cloud's"
    assert [r["RegionName"] for r in regions[1]["Regions"]] == [REGION]


def describe_availability_zones(w):
    # `verbose` adds Eucalyptus' capacity table, for administrators only.
    verbose = w.admin.describe_availability_zones(ZoneNames=["verbose"])["AvailabilityZones"]
    admin_rows = [z["ZoneName"] for z in verbose]
    assert any(r.startswith("|- ") for r in admin_rows), admin_rows
    for client in (w.a, w.b):
        verbose = clean(client.describe_availability_zones(ZoneNames=["verbose"]))
        assert verbose == clean(client.describe_availability_zones()), "no capacity table for accounts"
        assert ZONE in [z["ZoneName"] for z in verbose["AvailabilityZones"]]


def describe_nodes(w):
    # The nodes are the cloud's administrators' to see: the node running
    # A's instance lists it for the administrator, and for nobody else.
    admin = w.srv.raw({"Action": "DescribeNodes"})
    assert admin.status == 200, admin.describe()
    assert w.iid in [e.text for e in admin.find_all("instanceId")], admin.text
    for creds in (w.A, w.B):
        refused = w.srv.raw({"Action": "DescribeNodes"}, creds=creds)
        assert refused.status == 403 and refused.error_code == "UnauthorizedOperation", refused.describe()
        assert w.iid not in refused.text


def describe_account_attributes(w):
    def attributes(client):
        got = client.describe_account_attributes()["AccountAttributes"]
        return {a["AttributeName"]: [v["AttributeValue"] for v in a["AttributeValues"]] for a in got}

    mine, theirs = attributes(w.a), attributes(w.b)
    assert mine["default-vpc"] == [w.vpc]
    assert theirs["default-vpc"] != mine["default-vpc"], "each account has its own default VPC"
    assert theirs["default-vpc"][0] in [v["VpcId"] for v in w.b.describe_vpcs()["Vpcs"]]
    assert {k: v for k, v in theirs.items() if k != "default-vpc"} == {
        k: v for k, v in mine.items() if k != "default-vpc"
    }, "the limits are per account, the same for both"


def describe_instance_types(w):
    types = [clean(c.describe_instance_types()) for c in (w.a, w.b)]
    assert types[0] == types[1] and types[0]["InstanceTypes"], "the types are the cloud's"


# ---------------------------------------------------------------- EC2: key pairs and tags


def create_key_pair(w):
    name = f"both-{uuid.uuid4().hex[:8]}"
    mine = w.a.create_key_pair(KeyName=name)
    theirs = w.b.create_key_pair(KeyName=name)
    try:
        assert theirs["KeyPairId"] != mine["KeyPairId"]
        assert theirs["KeyFingerprint"] != mine["KeyFingerprint"]
        (still,) = w.a.describe_key_pairs(KeyNames=[name])["KeyPairs"]
        assert (still["KeyPairId"], still["KeyFingerprint"]) == (mine["KeyPairId"], mine["KeyFingerprint"])
    finally:
        w.a.delete_key_pair(KeyPairId=mine["KeyPairId"])
        w.b.delete_key_pair(KeyPairId=theirs["KeyPairId"])


def import_key_pair(w):
    _, public = ssh_keygen(w.tmp / "keys", "ed25519")
    with unchanged(lambda: w.a.describe_key_pairs(KeyNames=[w.key_name])):
        theirs = w.b.import_key_pair(KeyName=w.key_name, PublicKeyMaterial=public.encode())
        try:
            assert theirs["KeyPairId"] != w.key_id
            assert [k["KeyPairId"] for k in w.b.describe_key_pairs(KeyNames=[w.key_name])["KeyPairs"]] == [
                theirs["KeyPairId"]
            ]
        finally:
            w.b.delete_key_pair(KeyPairId=theirs["KeyPairId"])


def describe_key_pairs(w):
    refused(w.b.describe_key_pairs, "InvalidKeyPair.NotFound", KeyNames=[w.key_name])
    refused(w.b.describe_key_pairs, "InvalidKeyPair.NotFound", KeyPairIds=[w.key_id])
    assert w.b.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [w.key_name]}])["KeyPairs"] == []
    assert w.key_id not in [k["KeyPairId"] for k in w.b.describe_key_pairs()["KeyPairs"]]


def delete_key_pair(w):
    with unchanged(lambda: w.a.describe_key_pairs(KeyPairIds=[w.key_id])):
        # EC2 answers true for a name the caller has no key of.
        w.b.delete_key_pair(KeyName=w.key_name)
        try:
            w.b.delete_key_pair(KeyPairId=w.key_id)
        except ClientError as e:
            assert e.response["Error"]["Code"] == "InvalidKeyPair.NotFound", e.response


# Each of A's resources, with the code of an id B cannot see.
NOT_FOUND = {
    "iid": "InvalidInstanceID.NotFound",
    "img": "InvalidAMIID.NotFound",
    "img_shared": "InvalidAMIID.NotFound",
    "vol": "InvalidVolume.NotFound",
    "vol2": "InvalidVolume.NotFound",
    "snap": "InvalidSnapshot.NotFound",
    "snap_shared": "InvalidSnapshot.NotFound",
    "sg": "InvalidGroup.NotFound",
    "sgr_in": "InvalidSecurityGroupRuleId.NotFound",
    "vpc": "InvalidVpcID.NotFound",
    "subnet": "InvalidSubnetID.NotFound",
    "key_id": "InvalidKeyPair.NotFound",
    "alloc": "InvalidAllocationID.NotFound",
}


def create_tags(w):
    with unchanged(lambda: w.a.describe_tags()):
        for name, code in NOT_FOUND.items():
            refused(w.b.create_tags, code, Resources=[getattr(w, name)], Tags=[{"Key": "owner", "Value": "b"}])
    assert w.b.describe_tags()["Tags"] == []


def delete_tags(w):
    with unchanged(lambda: w.a.describe_tags()):
        for name in ("iid", "img", "vol2", "snap"):
            refused(w.b.delete_tags, NOT_FOUND[name], Resources=[getattr(w, name)], Tags=[{"Key": "owner"}])


def describe_tags(w):
    mine = {t["ResourceId"] for t in w.a.describe_tags()["Tags"]}
    assert {w.iid, w.img, w.vol2, w.snap} <= mine
    theirs = {t["ResourceId"] for t in w.b.describe_tags()["Tags"]}
    assert not mine & theirs
    for rid in (w.iid, w.img):
        assert w.b.describe_tags(Filters=[{"Name": "resource-id", "Values": [rid]}])["Tags"] == []


# ---------------------------------------------------------------- EC2: images


def b_images(w):
    return w.b.describe_images(Owners=["self"])


def register_image(w):
    with unchanged(lambda: b_images(w)):
        refused(w.b.register_image, "InvalidManifest", Name="stolen-object",
                ImageLocation=f"{w.bucket}/disk.raw", VirtualizationType="hvm")
        refused(w.b.register_image, "InvalidSnapshot.NotFound", Name="stolen-snapshot",
                RootDeviceName="/dev/sda1",
                BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": w.snap}}])


def describe_images(w):
    refused(w.b.describe_images, "InvalidAMIID.NotFound", ImageIds=[w.img])
    owned_by_a = {i["ImageId"] for i in w.b.describe_images(Owners=[w.A["account_id"]])["Images"]}
    assert owned_by_a == {w.img_shared}, "B sees what A shared with it, and only that"
    executable = {i["ImageId"] for i in w.b.describe_images(ExecutableUsers=["self"])["Images"]}
    assert w.img_shared in executable and w.img not in executable
    assert w.img not in {i["ImageId"] for i in w.b.describe_images()["Images"]}


class Shareable(NamedTuple):
    """A kind of resource A may share with other accounts."""

    private: str  # A's, shared with the administrator account only
    shared: str  # A's, shared with B
    not_found: str  # B's code for the private one
    param: str  # the parameter naming one
    reads: tuple  # A's reads of both


SHAREABLE = {
    "image": lambda w: Shareable(
        w.img, w.img_shared, "InvalidAMIID.NotFound", "ImageId",
        (
            lambda: w.a.describe_images(ImageIds=[w.img, w.img_shared]),
            lambda: w.a.describe_image_attribute(ImageId=w.img, Attribute="launchPermission"),
            lambda: w.a.describe_image_attribute(ImageId=w.img_shared, Attribute="launchPermission"),
        ),
    ),
    "snapshot": lambda w: Shareable(
        w.snap, w.snap_shared, "InvalidSnapshot.NotFound", "SnapshotId",
        (
            lambda: w.a.describe_snapshots(SnapshotIds=[w.snap, w.snap_shared]),
            lambda: w.a.describe_snapshot_attribute(SnapshotId=w.snap, Attribute="createVolumePermission"),
            lambda: w.a.describe_snapshot_attribute(SnapshotId=w.snap_shared, Attribute="createVolumePermission"),
        ),
    ),
}


def owner_only(kind: str, action: str, **kwargs):
    """B's `action` on A's private `kind` is not found; on the one A shared
    with B (which B sees) it is AuthFailure: only the owner may. A's are
    unchanged."""

    def check(w):
        it = SHAREABLE[kind](w)
        call = getattr(w.b, action)
        with unchanged(*it.reads):
            refused(call, it.not_found, **{it.param: it.private}, **kwargs)
            refused(call, "AuthFailure", **{it.param: it.shared}, **kwargs)

    check.__name__ = action
    return check


# ---------------------------------------------------------------- EC2: instances


def a_instance(w):
    return lambda: w.a.describe_instances(InstanceIds=[w.iid])


def b_reservations(w):
    return w.b.describe_instances()["Reservations"]


def a_profile_associations(w):
    return lambda: w.a.describe_iam_instance_profile_associations()


def b_own_instance(w):
    """An instance of B's (an image of B's that boots nothing)."""
    return w.b.run_instances(ImageId=w.bimg, MinCount=1, MaxCount=1, InstanceType="t1.micro")["Instances"][0][
        "InstanceId"]


def associate_iam_instance_profile(w):
    with unchanged(a_profile_associations(w), a_instance(w)):
        refused(w.b.associate_iam_instance_profile, "InvalidInstanceID.NotFound", InstanceId=w.iid,
                IamInstanceProfile={"Name": w.profile})
        mine = b_own_instance(w)
        try:
            # A's profile, by name or ARN, is no profile of B's.
            refused(w.b.associate_iam_instance_profile, "InvalidParameterValue", InstanceId=mine,
                    IamInstanceProfile={"Arn": w.profile_arn})
            refused(w.b.associate_iam_instance_profile, "InvalidParameterValue", InstanceId=mine,
                    IamInstanceProfile={"Name": w.profile})
        finally:
            w.b.terminate_instances(InstanceIds=[mine])


def replace_iam_instance_profile_association(w):
    with unchanged(a_profile_associations(w)):
        refused(w.b.replace_iam_instance_profile_association, "InvalidAssociationID.NotFound",
                AssociationId=w.iip_assoc, IamInstanceProfile={"Arn": w.profile_arn})


def disassociate_iam_instance_profile(w):
    with unchanged(a_profile_associations(w)):
        refused(w.b.disassociate_iam_instance_profile, "InvalidAssociationID.NotFound", AssociationId=w.iip_assoc)


def describe_iam_instance_profile_associations(w):
    assert w.b.describe_iam_instance_profile_associations(AssociationIds=[w.iip_assoc])[
        "IamInstanceProfileAssociations"] == []
    assert w.b.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [w.iid]}])["IamInstanceProfileAssociations"] == []
    assert w.a.describe_iam_instance_profile_associations(AssociationIds=[w.iip_assoc])[
        "IamInstanceProfileAssociations"][0]["InstanceId"] == w.iid


def run_instances(w):
    launch = dict(MinCount=1, MaxCount=1, InstanceType="t1.micro")
    with unchanged(lambda: b_reservations(w)):
        refused(w.b.run_instances, "InvalidAMIID.NotFound", ImageId=w.img, **launch)
        refused(w.b.run_instances, "InvalidKeyPair.NotFound", ImageId=w.bimg, KeyName=w.key_name, **launch)
        refused(w.b.run_instances, "InvalidGroup.NotFound", ImageId=w.bimg, SecurityGroupIds=[w.sg], **launch)
        refused(w.b.run_instances, "InvalidGroup.NotFound", ImageId=w.bimg, SecurityGroups=[w.group_name], **launch)
        refused(w.b.run_instances, "InvalidSubnetID.NotFound", ImageId=w.bimg, SubnetId=w.subnet, **launch)
        refused(w.b.run_instances, "InvalidSnapshot.NotFound", ImageId=w.bimg, **launch,
                BlockDeviceMappings=[{"DeviceName": "/dev/sdf", "Ebs": {"SnapshotId": w.snap}}])
    assert b_reservations(w) == []


def describe_instances(w):
    refused(w.b.describe_instances, "InvalidInstanceID.NotFound", InstanceIds=[w.iid])
    assert w.b.describe_instances(Filters=[{"Name": "instance-id", "Values": [w.iid]}])["Reservations"] == []
    assert w.b.describe_instances(Filters=[{"Name": "tag:owner", "Values": ["a"]}])["Reservations"] == []
    assert b_reservations(w) == []


def describe_instance_status(w):
    refused(w.b.describe_instance_status, "InvalidInstanceID.NotFound", InstanceIds=[w.iid])
    assert w.b.describe_instance_status(IncludeAllInstances=True)["InstanceStatuses"] == []
    assert [s["InstanceId"] for s in w.a.describe_instance_status()["InstanceStatuses"]] == [w.iid]


def instance_refused(action: str):
    def check(w):
        with unchanged(a_instance(w)):
            refused(getattr(w.b, action), "InvalidInstanceID.NotFound", InstanceIds=[w.iid])
        assert instance(w.a, w.iid)["State"]["Name"] == "running"

    check.__name__ = action
    return check


def get_console_output(w):
    refused(w.b.get_console_output, "InvalidInstanceID.NotFound", InstanceId=w.iid)


def describe_instance_attribute(w):
    for attr in ("instanceType", "userData", "disableApiTermination"):
        refused(w.b.describe_instance_attribute, "InvalidInstanceID.NotFound", InstanceId=w.iid, Attribute=attr)


def modify_instance_attribute(w):
    def protection():
        return w.a.describe_instance_attribute(InstanceId=w.iid, Attribute="disableApiTermination")

    with unchanged(a_instance(w), protection):
        refused(w.b.modify_instance_attribute, "InvalidInstanceID.NotFound", InstanceId=w.iid,
                DisableApiTermination={"Value": True})
        refused(w.b.modify_instance_attribute, "InvalidInstanceID.NotFound", InstanceId=w.iid,
                InstanceType={"Value": "m1.small"})
    with unchanged(a_instance(w), a_volumes(w)):
        refused(w.b.modify_instance_attribute, "InvalidInstanceID.NotFound", InstanceId=w.iid,
                BlockDeviceMappings=[{"DeviceName": "/dev/sdf", "Ebs": {"DeleteOnTermination": True}}])


def create_image(w):
    with unchanged(lambda: b_images(w), a_instance(w)):
        refused(w.b.create_image, "InvalidInstanceID.NotFound", InstanceId=w.iid, Name="stolen-instance")


# ---------------------------------------------------------------- EC2: VPCs and security groups


def describe_vpcs(w):
    refused(w.b.describe_vpcs, "InvalidVpcID.NotFound", VpcIds=[w.vpc])
    assert w.vpc not in [v["VpcId"] for v in w.b.describe_vpcs()["Vpcs"]]


def describe_vpc_attribute(w):
    for attribute in ("enableDnsSupport", "enableDnsHostnames", "enableNetworkAddressUsageMetrics"):
        refused(w.b.describe_vpc_attribute, "InvalidVpcID.NotFound", VpcId=w.vpc, Attribute=attribute)


def modify_vpc_attribute(w):
    def hostnames():
        return w.a.describe_vpc_attribute(VpcId=w.vpc, Attribute="enableDnsHostnames")

    with unchanged(hostnames, a_instance(w)):
        refused(w.b.modify_vpc_attribute, "InvalidVpcID.NotFound", VpcId=w.vpc,
                EnableDnsHostnames={"Value": False})


def describe_subnets(w):
    refused(w.b.describe_subnets, "InvalidSubnetID.NotFound", SubnetIds=[w.subnet])
    assert w.subnet not in [s["SubnetId"] for s in w.b.describe_subnets()["Subnets"]]
    assert w.b.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [w.vpc]}])["Subnets"] == []


def a_custom_vpc(w):
    return lambda: (
        w.a.describe_vpcs(VpcIds=[w.cvpc])["Vpcs"],
        w.a.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [w.cvpc]}])["Subnets"],
        w.a.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [w.cvpc]}])["SecurityGroups"],
    )


def create_vpc(w):
    with unchanged(a_custom_vpc(w), lambda: w.a.describe_vpcs()["Vpcs"]):
        theirs = w.b.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        try:
            assert theirs != w.cvpc
            refused(w.a.describe_vpcs, "InvalidVpcID.NotFound", VpcIds=[theirs])
            refused(w.a.delete_vpc, "InvalidVpcID.NotFound", VpcId=theirs)
        finally:
            w.b.delete_vpc(VpcId=theirs)


def delete_vpc(w):
    with unchanged(a_custom_vpc(w)):
        refused(w.b.delete_vpc, "InvalidVpcID.NotFound", VpcId=w.cvpc)
        refused(w.b.delete_vpc, "InvalidVpcID.NotFound", VpcId=w.vpc)


def create_subnet(w):
    with unchanged(a_custom_vpc(w)):
        refused(w.b.create_subnet, "InvalidVpcID.NotFound", VpcId=w.cvpc, CidrBlock="10.9.2.0/24")


def delete_subnet(w):
    with unchanged(a_custom_vpc(w)):
        refused(w.b.delete_subnet, "InvalidSubnetID.NotFound", SubnetId=w.csubnet)


def modify_subnet_attribute(w):
    with unchanged(a_custom_vpc(w)):
        refused(w.b.modify_subnet_attribute, "InvalidSubnetID.NotFound", SubnetId=w.csubnet,
                MapPublicIpOnLaunch={"Value": True})


def a_dhcp_options(w):
    return lambda: (w.a.describe_dhcp_options()["DhcpOptions"], w.a.describe_vpcs(VpcIds=[w.cvpc])["Vpcs"])


def create_dhcp_options(w):
    with unchanged(a_dhcp_options(w)):
        theirs = w.b.create_dhcp_options(
            DhcpConfigurations=[{"Key": "domain-name", "Values": ["b.example"]}]
        )["DhcpOptions"]["DhcpOptionsId"]
        try:
            refused(w.a.describe_dhcp_options, "InvalidDhcpOptionID.NotFound", DhcpOptionsIds=[theirs])
            refused(w.a.associate_dhcp_options, "InvalidDhcpOptionID.NotFound", DhcpOptionsId=theirs,
                    VpcId=w.cvpc)
        finally:
            w.b.delete_dhcp_options(DhcpOptionsId=theirs)


def delete_dhcp_options(w):
    with unchanged(a_dhcp_options(w)):
        refused(w.b.delete_dhcp_options, "InvalidDhcpOptionID.NotFound", DhcpOptionsId=w.dopt)


def describe_dhcp_options(w):
    refused(w.b.describe_dhcp_options, "InvalidDhcpOptionID.NotFound", DhcpOptionsIds=[w.dopt])
    assert w.dopt not in [o["DhcpOptionsId"] for o in w.b.describe_dhcp_options()["DhcpOptions"]]


def associate_dhcp_options(w):
    bvpc = w.b.describe_vpcs()["Vpcs"][0]["VpcId"]
    with unchanged(a_dhcp_options(w), lambda: w.b.describe_vpcs(VpcIds=[bvpc])):
        refused(w.b.associate_dhcp_options, "InvalidDhcpOptionID.NotFound", DhcpOptionsId=w.dopt, VpcId=bvpc)
        refused(w.b.associate_dhcp_options, "InvalidVpcID.NotFound", DhcpOptionsId="default", VpcId=w.cvpc)


def describe_network_acls(w):
    refused(w.b.describe_network_acls, "InvalidNetworkAclID.NotFound", NetworkAclIds=[w.acl])
    assert w.b.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [w.cvpc, w.vpc]}])["NetworkAcls"] == []
    assert w.b.describe_network_acls(
        Filters=[{"Name": "association.subnet-id", "Values": [w.csubnet]}]
    )["NetworkAcls"] == []


def describe_network_interfaces(w):
    refused(w.b.describe_network_interfaces, "InvalidNetworkInterfaceID.NotFound", NetworkInterfaceIds=[w.eni])
    for name, value in (("group-id", w.sg), ("attachment.instance-id", w.iid), ("vpc-id", w.vpc)):
        assert w.b.describe_network_interfaces(
            Filters=[{"Name": name, "Values": [value]}]
        )["NetworkInterfaces"] == [], name


def a_group(w):
    return lambda: w.a.describe_security_groups(GroupIds=[w.sg])


def b_group(w):
    return lambda: w.b.describe_security_groups(GroupIds=[w.bsg])


def create_security_group(w):
    with unchanged(a_group(w)):
        refused(w.b.create_security_group, "InvalidVpcID.NotFound", GroupName="in-their-vpc",
                Description="x", VpcId=w.vpc)
        theirs = w.b.create_security_group(GroupName=w.group_name, Description="the same name, account B")["GroupId"]
        try:
            assert theirs != w.sg
            (g,) = w.b.describe_security_groups(GroupNames=[w.group_name])["SecurityGroups"]
            assert g["GroupId"] == theirs and g["OwnerId"] == w.B["account_id"]
        finally:
            w.b.delete_security_group(GroupId=theirs)


def delete_security_group(w):
    with unchanged(a_group(w)):
        refused(w.b.delete_security_group, "InvalidGroup.NotFound", GroupId=w.sg)
        refused(w.b.delete_security_group, "InvalidGroup.NotFound", GroupName=w.group_name)


def describe_security_groups(w):
    refused(w.b.describe_security_groups, "InvalidGroup.NotFound", GroupIds=[w.sg])
    refused(w.b.describe_security_groups, "InvalidGroup.NotFound", GroupNames=[w.group_name])
    assert w.sg not in [g["GroupId"] for g in w.b.describe_security_groups()["SecurityGroups"]]


def describe_security_group_rules(w):
    for rule in (w.sgr_in, w.sgr_out):
        refused(w.b.describe_security_group_rules, "InvalidSecurityGroupRuleId.NotFound",
                SecurityGroupRuleIds=[rule])
    assert w.b.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [w.sg]}])[
        "SecurityGroupRules"
    ] == []
    theirs = {r["GroupId"] for r in w.b.describe_security_group_rules()["SecurityGroupRules"]}
    assert w.sg not in theirs


def from_a_group(w, with_account: bool) -> dict:
    pair = {"GroupId": w.sg} | ({"UserId": w.A["account_id"]} if with_account else {})
    return {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "UserIdGroupPairs": [pair]}


def authorize(action: str):
    def check(w):
        call = getattr(w.b, action)
        with unchanged(a_group(w), b_group(w)):
            refused(call, "InvalidGroup.NotFound", GroupId=w.sg, IpPermissions=[ssh_from_ten()])
            # B's own group may not name A's group as a peer.
            for with_account in (False, True):
                refused(call, "InvalidGroup.NotFound", GroupId=w.bsg,
                        IpPermissions=[from_a_group(w, with_account)])

    check.__name__ = action
    return check


def revoke_security_group_ingress(w):
    with unchanged(a_group(w)):
        refused(w.b.revoke_security_group_ingress, "InvalidGroup.NotFound", GroupId=w.sg,
                IpPermissions=[ssh_from_ten()])
        refused(w.b.revoke_security_group_ingress, "InvalidGroup.NotFound", GroupId=w.sg,
                SecurityGroupRuleIds=[w.sgr_in])


def revoke_security_group_egress(w):
    everything = {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
    with unchanged(a_group(w)):
        refused(w.b.revoke_security_group_egress, "InvalidGroup.NotFound", GroupId=w.sg,
                IpPermissions=[everything])
        refused(w.b.revoke_security_group_egress, "InvalidGroup.NotFound", GroupId=w.sg,
                SecurityGroupRuleIds=[w.sgr_out])


# ---------------------------------------------------------------- EC2: addresses


def a_address(w):
    return lambda: w.a.describe_addresses(AllocationIds=[w.alloc])


def allocate_address(w):
    # Each account's elastic IPs count against its own limit only.
    (limit,) = w.a.describe_account_attributes(AttributeNames=["vpc-max-elastic-ips"])["AccountAttributes"]
    limit = int(limit["AttributeValues"][0]["AttributeValue"])
    theirs = [w.b.allocate_address(Domain="vpc")["AllocationId"]]
    mine = []
    try:
        for _ in range(limit + 1):
            try:
                mine.append(w.a.allocate_address(Domain="vpc")["AllocationId"])
            except ClientError as e:
                assert e.response["Error"]["Code"] == "AddressLimitExceeded", e.response
                break
        held = [x["AllocationId"] for x in w.a.describe_addresses()["Addresses"]]
        assert len(held) == limit, f"A holds {held} with B's {theirs}: B's count against A's limit"
        theirs.append(w.b.allocate_address(Domain="vpc")["AllocationId"])
        assert not set(theirs) & set(held)
    finally:
        for alloc in mine:
            w.a.release_address(AllocationId=alloc)
        for alloc in theirs:
            w.b.release_address(AllocationId=alloc)


def associate_address(w):
    own = w.b.allocate_address(Domain="vpc")
    try:
        with unchanged(a_address(w), a_instance(w)):
            refused(w.b.associate_address, "InvalidAllocationID.NotFound", AllocationId=w.alloc, InstanceId=w.iid)
            refused(w.b.associate_address, "InvalidAddress.NotFound", PublicIp=w.public_ip, InstanceId=w.iid)
            refused(w.b.associate_address, "InvalidInstanceID.NotFound", AllocationId=own["AllocationId"],
                    InstanceId=w.iid)
    finally:
        w.b.release_address(AllocationId=own["AllocationId"])


def disassociate_address(w):
    with unchanged(a_address(w)):
        refused(w.b.disassociate_address, "InvalidAssociationID.NotFound", AssociationId=w.assoc)
        refused(w.b.disassociate_address, "InvalidAddress.NotFound", PublicIp=w.public_ip)


def release_address(w):
    with unchanged(a_address(w)):
        refused(w.b.release_address, "InvalidAllocationID.NotFound", AllocationId=w.alloc)
        refused(w.b.release_address, "InvalidAddress.NotFound", PublicIp=w.public_ip)


def describe_addresses(w):
    refused(w.b.describe_addresses, "InvalidAllocationID.NotFound", AllocationIds=[w.alloc])
    refused(w.b.describe_addresses, "InvalidAddress.NotFound", PublicIps=[w.public_ip])
    assert w.b.describe_addresses(Filters=[{"Name": "public-ip", "Values": [w.public_ip]}])["Addresses"] == []
    assert w.alloc not in [x["AllocationId"] for x in w.b.describe_addresses()["Addresses"]]


# ---------------------------------------------------------------- EC2: volumes


def a_volumes(w):
    return lambda: w.a.describe_volumes(VolumeIds=[w.vol, w.vol2])


def b_volumes(w):
    return lambda: w.b.describe_volumes()


def create_volume(w):
    with unchanged(b_volumes(w)):
        refused(w.b.create_volume, "InvalidSnapshot.NotFound", SnapshotId=w.snap, AvailabilityZone=ZONE)
    # What A shared is B's to restore.
    vid = w.b.create_volume(SnapshotId=w.snap_shared, AvailabilityZone=ZONE)["VolumeId"]
    wait(f"{vid} available", lambda: w.b.describe_volumes(VolumeIds=[vid])["Volumes"][0]["State"] == "available")
    w.b.delete_volume(VolumeId=vid)


def describe_volumes(w):
    refused(w.b.describe_volumes, "InvalidVolume.NotFound", VolumeIds=[w.vol])
    assert w.b.describe_volumes(Filters=[{"Name": "volume-id", "Values": [w.vol, w.vol2]}])["Volumes"] == []
    assert w.b.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [w.iid]}])["Volumes"] == []
    theirs = [v["VolumeId"] for v in w.b.describe_volumes()["Volumes"]]
    assert w.bvol in theirs and w.vol not in theirs and w.vol2 not in theirs


def delete_volume(w):
    with unchanged(a_volumes(w)):
        for vid in (w.vol, w.vol2):
            refused(w.b.delete_volume, "InvalidVolume.NotFound", VolumeId=vid)


def attach_volume(w):
    with unchanged(a_volumes(w), a_instance(w), b_volumes(w)):
        refused(w.b.attach_volume, "InvalidVolume.NotFound", VolumeId=w.vol2, InstanceId=w.iid, Device="/dev/sdg")
        refused(w.b.attach_volume, "InvalidInstanceID.NotFound", VolumeId=w.bvol, InstanceId=w.iid,
                Device="/dev/sdg")


def detach_volume(w):
    with unchanged(a_volumes(w), a_instance(w)):
        refused(w.b.detach_volume, "InvalidVolume.NotFound", VolumeId=w.vol)
        refused(w.b.detach_volume, "InvalidVolume.NotFound", VolumeId=w.vol, InstanceId=w.iid, Force=True)


def describe_volume_status(w):
    refused(w.b.describe_volume_status, "InvalidVolume.NotFound", VolumeIds=[w.vol])
    theirs = [s["VolumeId"] for s in w.b.describe_volume_status()["VolumeStatuses"]]
    assert w.bvol in theirs and w.vol not in theirs and w.vol2 not in theirs


def describe_volume_attribute(w):
    refused(w.b.describe_volume_attribute, "InvalidVolume.NotFound", VolumeId=w.vol2, Attribute="autoEnableIO")


def modify_volume_attribute(w):
    with unchanged(lambda: w.a.describe_volume_attribute(VolumeId=w.vol2, Attribute="autoEnableIO")):
        refused(w.b.modify_volume_attribute, "InvalidVolume.NotFound", VolumeId=w.vol2,
                AutoEnableIO={"Value": True})


def modify_volume(w):
    with unchanged(a_volumes(w)):
        for vid in (w.vol, w.vol2):
            refused(w.b.modify_volume, "InvalidVolume.NotFound", VolumeId=vid, Size=5)
    # A's volume is unchanged and has no modification to show.
    refused(w.a.describe_volumes_modifications, "InvalidVolumeModification.NotFound", VolumeIds=[w.vol2])


def describe_volumes_modifications(w):
    refused(w.b.describe_volumes_modifications, "InvalidVolume.NotFound", VolumeIds=[w.vol])
    assert w.b.describe_volumes_modifications()["VolumesModifications"] == []


def a_encryption_default(w):
    return lambda: w.a.get_ebs_encryption_by_default()["EbsEncryptionByDefault"]


def get_ebs_encryption_by_default(w):
    assert w.b.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is False


def enable_ebs_encryption_by_default(w):
    with unchanged(a_encryption_default(w)):
        refused(w.b.enable_ebs_encryption_by_default, "UnsupportedOperation")


def disable_ebs_encryption_by_default(w):
    with unchanged(a_encryption_default(w)):
        assert w.b.disable_ebs_encryption_by_default()["EbsEncryptionByDefault"] is False


# ---------------------------------------------------------------- EC2: snapshots


def b_snapshots(w):
    return lambda: w.b.describe_snapshots(OwnerIds=["self"])


def create_snapshot(w):
    with unchanged(b_snapshots(w), a_volumes(w)):
        for vid in (w.vol, w.vol2):
            refused(w.b.create_snapshot, "InvalidVolume.NotFound", VolumeId=vid)


def copy_snapshot(w):
    with unchanged(b_snapshots(w)):
        refused(w.b.copy_snapshot, "InvalidSnapshot.NotFound", SourceSnapshotId=w.snap, SourceRegion=REGION)
    # What A shared is B's to copy, into B's own snapshots.
    sid = w.b.copy_snapshot(SourceSnapshotId=w.snap_shared, SourceRegion=REGION)["SnapshotId"]
    wait(f"{sid} completed",
         lambda: w.b.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]["State"] == "completed")
    assert w.b.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]["OwnerId"] == w.B["account_id"]
    w.b.delete_snapshot(SnapshotId=sid)


def describe_snapshots(w):
    refused(w.b.describe_snapshots, "InvalidSnapshot.NotFound", SnapshotIds=[w.snap])
    by_a = {s["SnapshotId"] for s in w.b.describe_snapshots(OwnerIds=[w.A["account_id"]])["Snapshots"]}
    assert by_a == {w.snap_shared}, "B sees what A shared with it, and only that"
    restorable = {s["SnapshotId"] for s in w.b.describe_snapshots(RestorableByUserIds=["self"])["Snapshots"]}
    assert w.snap_shared in restorable and w.snap not in restorable


def import_snapshot(w):
    with unchanged(lambda: w.b.describe_import_snapshot_tasks(), b_snapshots(w)):
        refused(w.b.import_snapshot, "InvalidParameter",
                DiskContainer={"Format": "RAW", "UserBucket": {"S3Bucket": w.bucket, "S3Key": "disk.raw"}})


def describe_import_snapshot_tasks(w):
    # A's task is answered as an id that names no task at all.
    nobody = "import-snap-" + uuid.uuid4().hex[:17]
    for task in (w.task, nobody):
        refused(w.b.describe_import_snapshot_tasks, "InvalidConversionTaskId.Malformed", ImportTaskIds=[task])
    assert w.b.describe_import_snapshot_tasks()["ImportSnapshotTasks"] == []


# ---------------------------------------------------------------- EC2: what Terraform and Ansible call


def describe_instance_type_offerings(w):
    # The cloud's offerings, the same for every account.
    for location in ("region", "availability-zone"):
        seen = [clean(c.describe_instance_type_offerings(LocationType=location)) for c in (w.a, w.b)]
        assert seen[0]["InstanceTypeOfferings"] and seen[0] == seen[1]


def modify_instance_metadata_options(w):
    with unchanged(a_instance(w)):
        refused(w.b.modify_instance_metadata_options, "InvalidInstanceID.NotFound", InstanceId=w.iid,
                HttpTokens="required")


def describe_instance_credit_specifications(w):
    refused(w.b.describe_instance_credit_specifications, "InvalidInstanceID.NotFound", InstanceIds=[w.iid])
    listed = w.b.describe_instance_credit_specifications()["InstanceCreditSpecifications"]
    assert w.iid not in [c["InstanceId"] for c in listed]


def get_password_data(w):
    refused(w.b.get_password_data, "InvalidInstanceID.NotFound", InstanceId=w.iid)


def modify_security_group_rules(w):
    rule = {"IpProtocol": "tcp", "FromPort": 2222, "ToPort": 2222, "CidrIpv4": "10.0.0.0/8"}
    with unchanged(a_group(w), b_group(w)):
        refused(w.b.modify_security_group_rules, "InvalidGroup.NotFound", GroupId=w.sg,
                SecurityGroupRules=[{"SecurityGroupRuleId": w.sgr_in, "SecurityGroupRule": rule}])
        # B's own group does not hold A's rule.
        refused(w.b.modify_security_group_rules, "InvalidSecurityGroupRuleId.NotFound", GroupId=w.bsg,
                SecurityGroupRules=[{"SecurityGroupRuleId": w.sgr_in, "SecurityGroupRule": rule}])


def update_rule_descriptions(action: str, rule_attr: str):
    def check(w):
        call = getattr(w.b, action)
        with unchanged(a_group(w)):
            refused(call, "InvalidGroup.NotFound", GroupId=w.sg, SecurityGroupRuleDescriptions=[
                {"SecurityGroupRuleId": getattr(w, rule_attr), "Description": "theirs"}])

    check.__name__ = action
    return check


def describe_addresses_attribute(w):
    refused(w.b.describe_addresses_attribute, "InvalidAllocationID.NotFound", AllocationIds=[w.alloc],
            Attribute="domain-name")
    listed = w.b.describe_addresses_attribute(Attribute="domain-name")["Addresses"]
    assert w.alloc not in [x["AllocationId"] for x in listed]


def modify_address_attribute(w):
    with unchanged(a_address(w), lambda: w.a.describe_addresses_attribute(AllocationIds=[w.alloc],
                                                                           Attribute="domain-name")):
        refused(w.b.modify_address_attribute, "InvalidAllocationID.NotFound", AllocationId=w.alloc,
                DomainName="theirs.example.com")


def reset_address_attribute(w):
    with unchanged(a_address(w)):
        refused(w.b.reset_address_attribute, "InvalidAllocationID.NotFound", AllocationId=w.alloc,
                Attribute="domain-name")


def a_template(w) -> tuple[str, str]:
    """A's launch template (id, name), made the first time a check needs it."""
    if not getattr(w, "lt_id", None):
        w.lt_name = f"iso-{uuid.uuid4().hex[:8]}"
        w.lt_id = w.a.create_launch_template(
            LaunchTemplateName=w.lt_name, LaunchTemplateData={"InstanceType": "m1.small"}
        )["LaunchTemplate"]["LaunchTemplateId"]
    return w.lt_id, w.lt_name


def a_template_versions(w):
    lt_id, _ = a_template(w)
    return lambda: w.a.describe_launch_template_versions(LaunchTemplateId=lt_id)


def create_launch_template(w):
    lt_id, name = a_template(w)
    with unchanged(a_template_versions(w)):
        theirs = w.b.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={"InstanceType": "m1.large"})
        try:
            assert theirs["LaunchTemplate"]["LaunchTemplateId"] != lt_id
            # B cannot launch from A's template either.
            refused(w.b.run_instances, "InvalidLaunchTemplateId.NotFound", MinCount=1, MaxCount=1,
                    LaunchTemplate={"LaunchTemplateId": lt_id})
        finally:
            w.b.delete_launch_template(LaunchTemplateId=theirs["LaunchTemplate"]["LaunchTemplateId"])


def create_launch_template_version(w):
    lt_id, name = a_template(w)
    with unchanged(a_template_versions(w)):
        refused(w.b.create_launch_template_version, "InvalidLaunchTemplateId.NotFound", LaunchTemplateId=lt_id,
                LaunchTemplateData={"InstanceType": "m1.large"})
        refused(w.b.create_launch_template_version, "InvalidLaunchTemplateName.NotFoundException",
                LaunchTemplateName=name, LaunchTemplateData={"InstanceType": "m1.large"})


def describe_launch_templates(w):
    lt_id, name = a_template(w)
    refused(w.b.describe_launch_templates, "InvalidLaunchTemplateId.NotFound", LaunchTemplateIds=[lt_id])
    refused(w.b.describe_launch_templates, "InvalidLaunchTemplateName.NotFoundException", LaunchTemplateNames=[name])
    assert lt_id not in [t["LaunchTemplateId"] for t in w.b.describe_launch_templates()["LaunchTemplates"]]


def describe_launch_template_versions(w):
    lt_id, _ = a_template(w)
    refused(w.b.describe_launch_template_versions, "InvalidLaunchTemplateId.NotFound", LaunchTemplateId=lt_id)
    latest = w.b.describe_launch_template_versions(Versions=["$Latest"])["LaunchTemplateVersions"]
    assert lt_id not in [v["LaunchTemplateId"] for v in latest]


def modify_launch_template(w):
    lt_id, _ = a_template(w)
    with unchanged(lambda: w.a.describe_launch_templates(LaunchTemplateIds=[lt_id])):
        refused(w.b.modify_launch_template, "InvalidLaunchTemplateId.NotFound", LaunchTemplateId=lt_id,
                DefaultVersion="1")


def delete_launch_template(w):
    lt_id, _ = a_template(w)
    with unchanged(a_template_versions(w)):
        refused(w.b.delete_launch_template, "InvalidLaunchTemplateId.NotFound", LaunchTemplateId=lt_id)


def delete_launch_template_versions(w):
    lt_id, _ = a_template(w)
    w.a.create_launch_template_version(LaunchTemplateId=lt_id, LaunchTemplateData={"InstanceType": "m1.large"})
    with unchanged(a_template_versions(w)):
        refused(w.b.delete_launch_template_versions, "InvalidLaunchTemplateId.NotFound", LaunchTemplateId=lt_id,
                Versions=["2"])


# ---------------------------------------------------------------- EC2: gateways and route tables


def a_routing(w):
    """A's default gateway, its main table, a second table routing
    0.0.0.0/0 to that gateway and associated with A's subnet, and a NAT
    gateway in that subnet: made once, by the first check that needs them.
    Also B's own VPC, subnet, table and elastic IP to name beside A's."""
    if not hasattr(w, "rtb"):
        a, b = w.a, w.b
        (igw,) = a.describe_internet_gateways(
            Filters=[{"Name": "attachment.vpc-id", "Values": [w.vpc]}])["InternetGateways"]
        w.igw = igw["InternetGatewayId"]
        w.rtb = a.create_route_table(VpcId=w.vpc)["RouteTable"]["RouteTableId"]
        a.create_route(RouteTableId=w.rtb, DestinationCidrBlock="0.0.0.0/0", GatewayId=w.igw)
        w.rtbassoc = a.associate_route_table(RouteTableId=w.rtb, SubnetId=w.subnet)["AssociationId"]
        nat_alloc = a.allocate_address(Domain="vpc")["AllocationId"]
        w.nat = a.create_nat_gateway(SubnetId=w.subnet, AllocationId=nat_alloc)["NatGateway"]["NatGatewayId"]
        w.bvpc = b.describe_vpcs()["Vpcs"][0]["VpcId"]
        w.bsubnet = b.describe_subnets()["Subnets"][0]["SubnetId"]
        w.brtb = b.create_route_table(VpcId=w.bvpc)["RouteTable"]["RouteTableId"]
        w.balloc = b.allocate_address(Domain="vpc")["AllocationId"]
    return w


def a_routes(w):
    a = a_routing(w).a
    return lambda: {
        "gateways": clean(a.describe_internet_gateways()),
        "tables": clean(a.describe_route_tables()),
        "nat gateways": clean(a.describe_nat_gateways()),
    }


def create_internet_gateway(w):
    with unchanged(a_routes(w)):
        mine = w.b.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        assert mine not in str(w.a.describe_internet_gateways())
        w.b.delete_internet_gateway(InternetGatewayId=mine)


def attach_internet_gateway(w):
    with unchanged(a_routes(w)):
        mine = w.b.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        refused(w.b.attach_internet_gateway, "InvalidVpcID.NotFound", InternetGatewayId=mine, VpcId=w.vpc)
        refused(w.b.attach_internet_gateway, "InvalidInternetGatewayID.NotFound",
                InternetGatewayId=w.igw, VpcId=w.bvpc)
        w.b.delete_internet_gateway(InternetGatewayId=mine)


def detach_internet_gateway(w):
    with unchanged(a_routes(w), a_instance(w)):
        refused(w.b.detach_internet_gateway, "InvalidInternetGatewayID.NotFound",
                InternetGatewayId=a_routing(w).igw, VpcId=w.vpc)


def delete_internet_gateway(w):
    with unchanged(a_routes(w)):
        refused(w.b.delete_internet_gateway, "InvalidInternetGatewayID.NotFound",
                InternetGatewayId=a_routing(w).igw)


def describe_internet_gateways(w):
    a_routing(w)
    refused(w.b.describe_internet_gateways, "InvalidInternetGatewayID.NotFound", InternetGatewayIds=[w.igw])
    assert w.igw not in str(w.b.describe_internet_gateways())
    assert w.b.describe_internet_gateways(
        Filters=[{"Name": "attachment.vpc-id", "Values": [w.vpc]}])["InternetGateways"] == []


def create_route_table(w):
    with unchanged(a_routes(w)):
        refused(w.b.create_route_table, "InvalidVpcID.NotFound", VpcId=w.vpc)


def delete_route_table(w):
    with unchanged(a_routes(w)):
        refused(w.b.delete_route_table, "InvalidRouteTableID.NotFound", RouteTableId=a_routing(w).rtb)


def describe_route_tables(w):
    a_routing(w)
    refused(w.b.describe_route_tables, "InvalidRouteTableID.NotFound", RouteTableIds=[w.rtb])
    assert w.rtb not in str(w.b.describe_route_tables())
    assert w.b.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [w.vpc]}])["RouteTables"] == []


def create_route(w):
    with unchanged(a_routes(w)):
        refused(w.b.create_route, "InvalidRouteTableID.NotFound", RouteTableId=a_routing(w).rtb,
                DestinationCidrBlock="10.9.0.0/16", GatewayId=w.igw)
        # A's gateway and NAT gateway are no targets for B's table.
        refused(w.b.create_route, "InvalidGatewayID.NotFound", RouteTableId=w.brtb,
                DestinationCidrBlock="10.9.0.0/16", GatewayId=w.igw)
        refused(w.b.create_route, "NatGatewayNotFound", RouteTableId=w.brtb,
                DestinationCidrBlock="10.9.0.0/16", NatGatewayId=w.nat)
        refused(w.b.create_route, "InvalidInstanceID.NotFound", RouteTableId=w.brtb,
                DestinationCidrBlock="10.9.0.0/16", InstanceId=w.iid)


def replace_route(w):
    with unchanged(a_routes(w), a_instance(w)):
        refused(w.b.replace_route, "InvalidRouteTableID.NotFound", RouteTableId=a_routing(w).rtb,
                DestinationCidrBlock="0.0.0.0/0", GatewayId=w.igw)


def delete_route(w):
    with unchanged(a_routes(w), a_instance(w)):
        refused(w.b.delete_route, "InvalidRouteTableID.NotFound", RouteTableId=a_routing(w).rtb,
                DestinationCidrBlock="0.0.0.0/0")


def associate_route_table(w):
    with unchanged(a_routes(w), a_instance(w)):
        refused(w.b.associate_route_table, "InvalidSubnetID.NotFound", RouteTableId=a_routing(w).brtb,
                SubnetId=w.subnet)
        refused(w.b.associate_route_table, "InvalidRouteTableID.NotFound", RouteTableId=w.rtb,
                SubnetId=w.bsubnet)


def disassociate_route_table(w):
    with unchanged(a_routes(w), a_instance(w)):
        refused(w.b.disassociate_route_table, "InvalidAssociationID.NotFound",
                AssociationId=a_routing(w).rtbassoc)


def replace_route_table_association(w):
    with unchanged(a_routes(w), a_instance(w)):
        refused(w.b.replace_route_table_association, "InvalidAssociationID.NotFound",
                AssociationId=a_routing(w).rtbassoc, RouteTableId=w.brtb)
        (b_main,) = w.b.describe_route_tables(
            Filters=[{"Name": "association.main", "Values": ["true"]}])["RouteTables"]
        refused(w.b.replace_route_table_association, "InvalidRouteTableID.NotFound",
                AssociationId=b_main["Associations"][0]["RouteTableAssociationId"], RouteTableId=w.rtb)


def create_nat_gateway(w):
    with unchanged(a_routes(w), lambda: w.a.describe_addresses()):
        refused(w.b.create_nat_gateway, "InvalidSubnetID.NotFound", SubnetId=a_routing(w).subnet,
                AllocationId=w.balloc)
        refused(w.b.create_nat_gateway, "InvalidAllocationID.NotFound", SubnetId=w.bsubnet,
                AllocationId=w.alloc)


def delete_nat_gateway(w):
    with unchanged(a_routes(w), lambda: w.a.describe_addresses()):
        refused(w.b.delete_nat_gateway, "NatGatewayNotFound", NatGatewayId=a_routing(w).nat)


def describe_nat_gateways(w):
    a_routing(w)
    refused(w.b.describe_nat_gateways, "NatGatewayNotFound", NatGatewayIds=[w.nat])
    assert w.nat not in str(w.b.describe_nat_gateways())


EC2_CHECKS = {
    "DescribeRegions": describe_regions,
    "DescribeAvailabilityZones": describe_availability_zones,
    "DescribeAccountAttributes": describe_account_attributes,
    "DescribeNodes": describe_nodes,
    "DescribeInstanceTypes": describe_instance_types,
    "CreateKeyPair": create_key_pair,
    "ImportKeyPair": import_key_pair,
    "DescribeKeyPairs": describe_key_pairs,
    "DeleteKeyPair": delete_key_pair,
    "CreateTags": create_tags,
    "DeleteTags": delete_tags,
    "DescribeTags": describe_tags,
    "RegisterImage": register_image,
    "DescribeImages": describe_images,
    "DeregisterImage": owner_only("image", "deregister_image"),
    "DescribeImageAttribute": owner_only("image", "describe_image_attribute", Attribute="launchPermission"),
    "ModifyImageAttribute": owner_only(
        "image", "modify_image_attribute", LaunchPermission={"Add": [{"Group": "all"}]}
    ),
    "ResetImageAttribute": owner_only("image", "reset_image_attribute", Attribute="launchPermission"),
    "RunInstances": run_instances,
    "DescribeInstances": describe_instances,
    "DescribeInstanceStatus": describe_instance_status,
    "TerminateInstances": instance_refused("terminate_instances"),
    "StopInstances": instance_refused("stop_instances"),
    "StartInstances": instance_refused("start_instances"),
    "RebootInstances": instance_refused("reboot_instances"),
    "GetConsoleOutput": get_console_output,
    "DescribeInstanceAttribute": describe_instance_attribute,
    "ModifyInstanceAttribute": modify_instance_attribute,
    "DescribeVpcs": describe_vpcs,
    "DescribeSubnets": describe_subnets,
    "CreateVpc": create_vpc,
    "DeleteVpc": delete_vpc,
    "CreateSubnet": create_subnet,
    "DeleteSubnet": delete_subnet,
    "ModifySubnetAttribute": modify_subnet_attribute,
    "CreateDhcpOptions": create_dhcp_options,
    "DeleteDhcpOptions": delete_dhcp_options,
    "DescribeDhcpOptions": describe_dhcp_options,
    "AssociateDhcpOptions": associate_dhcp_options,
    "DescribeNetworkAcls": describe_network_acls,
    "DescribeNetworkInterfaces": describe_network_interfaces,
    "DescribeVpcAttribute": describe_vpc_attribute,
    "ModifyVpcAttribute": modify_vpc_attribute,
    "CreateInternetGateway": create_internet_gateway,
    "AttachInternetGateway": attach_internet_gateway,
    "DetachInternetGateway": detach_internet_gateway,
    "DeleteInternetGateway": delete_internet_gateway,
    "DescribeInternetGateways": describe_internet_gateways,
    "CreateRouteTable": create_route_table,
    "DeleteRouteTable": delete_route_table,
    "DescribeRouteTables": describe_route_tables,
    "CreateRoute": create_route,
    "ReplaceRoute": replace_route,
    "DeleteRoute": delete_route,
    "AssociateRouteTable": associate_route_table,
    "DisassociateRouteTable": disassociate_route_table,
    "ReplaceRouteTableAssociation": replace_route_table_association,
    "CreateNatGateway": create_nat_gateway,
    "DeleteNatGateway": delete_nat_gateway,
    "DescribeNatGateways": describe_nat_gateways,
    "CreateSecurityGroup": create_security_group,
    "DeleteSecurityGroup": delete_security_group,
    "DescribeSecurityGroups": describe_security_groups,
    "DescribeSecurityGroupRules": describe_security_group_rules,
    "AuthorizeSecurityGroupIngress": authorize("authorize_security_group_ingress"),
    "AuthorizeSecurityGroupEgress": authorize("authorize_security_group_egress"),
    "RevokeSecurityGroupIngress": revoke_security_group_ingress,
    "RevokeSecurityGroupEgress": revoke_security_group_egress,
    "AllocateAddress": allocate_address,
    "AssociateIamInstanceProfile": associate_iam_instance_profile,
    "ReplaceIamInstanceProfileAssociation": replace_iam_instance_profile_association,
    "DisassociateIamInstanceProfile": disassociate_iam_instance_profile,
    "DescribeIamInstanceProfileAssociations": describe_iam_instance_profile_associations,
    "AssociateAddress": associate_address,
    "DisassociateAddress": disassociate_address,
    "ReleaseAddress": release_address,
    "DescribeAddresses": describe_addresses,
    "CreateVolume": create_volume,
    "DescribeVolumes": describe_volumes,
    "DeleteVolume": delete_volume,
    "AttachVolume": attach_volume,
    "DetachVolume": detach_volume,
    "DescribeVolumeStatus": describe_volume_status,
    "DescribeVolumeAttribute": describe_volume_attribute,
    "ModifyVolumeAttribute": modify_volume_attribute,
    "ModifyVolume": modify_volume,
    "DescribeVolumesModifications": describe_volumes_modifications,
    "GetEbsEncryptionByDefault": get_ebs_encryption_by_default,
    "EnableEbsEncryptionByDefault": enable_ebs_encryption_by_default,
    "DisableEbsEncryptionByDefault": disable_ebs_encryption_by_default,
    "CreateImage": create_image,
    "CreateSnapshot": create_snapshot,
    "CopySnapshot": copy_snapshot,
    "DescribeSnapshots": describe_snapshots,
    "DeleteSnapshot": owner_only("snapshot", "delete_snapshot"),
    "DescribeSnapshotAttribute": owner_only(
        "snapshot", "describe_snapshot_attribute", Attribute="createVolumePermission"
    ),
    "ModifySnapshotAttribute": owner_only(
        "snapshot", "modify_snapshot_attribute", Attribute="createVolumePermission", OperationType="add",
        GroupNames=["all"],
    ),
    "ResetSnapshotAttribute": owner_only(
        "snapshot", "reset_snapshot_attribute", Attribute="createVolumePermission"
    ),
    "ImportSnapshot": import_snapshot,
    "DescribeImportSnapshotTasks": describe_import_snapshot_tasks,
    "DescribeInstanceTypeOfferings": describe_instance_type_offerings,
    "ModifyInstanceMetadataOptions": modify_instance_metadata_options,
    "DescribeInstanceCreditSpecifications": describe_instance_credit_specifications,
    "GetPasswordData": get_password_data,
    "ModifySecurityGroupRules": modify_security_group_rules,
    "UpdateSecurityGroupRuleDescriptionsIngress": update_rule_descriptions(
        "update_security_group_rule_descriptions_ingress", "sgr_in"
    ),
    "UpdateSecurityGroupRuleDescriptionsEgress": update_rule_descriptions(
        "update_security_group_rule_descriptions_egress", "sgr_out"
    ),
    "DescribeAddressesAttribute": describe_addresses_attribute,
    "ModifyAddressAttribute": modify_address_attribute,
    "ResetAddressAttribute": reset_address_attribute,
    "CreateLaunchTemplate": create_launch_template,
    "CreateLaunchTemplateVersion": create_launch_template_version,
    "DescribeLaunchTemplates": describe_launch_templates,
    "DescribeLaunchTemplateVersions": describe_launch_template_versions,
    "ModifyLaunchTemplate": modify_launch_template,
    "DeleteLaunchTemplate": delete_launch_template,
    "DeleteLaunchTemplateVersions": delete_launch_template_versions,
}


# ---------------------------------------------------------------- metal


def rack(w):
    return lambda: rack_view(w)


def same_for_everyone(command: str):
    def check(w):
        seen = [ml.json(command) for ml in (w.ml_admin, w.ml_a, w.ml_b)]
        assert seen[0] and seen[0] == seen[1] == seen[2], "the inventory's, not an account's"

    check.__name__ = command
    return check


def describe_systems(w):
    def holders(ml):
        return {
            s["name"]: (s["state"], s.get("owner"), s.get("profile"), "lastEvent" in s)
            for s in ml.json("describe-systems")
        }

    assert holders(w.ml_a)["s1"] == ("reserved", w.a_owner, "tiny", False)
    assert holders(w.ml_admin)["s2"] == ("provisioning", w.a_owner, "tiny", True)
    # B sees the whole rack, A's systems taken, but not by whom or with what.
    assert holders(w.ml_b) == {
        "s1": ("reserved", None, None, False),
        "s2": ("provisioning", None, None, False),
        "s3": ("free", None, None, False),
        "s4": ("free", None, None, False),
    }
    (s1,) = w.ml_b.json("describe-systems", "-n", "s1")
    assert "owner" not in s1 and "profile" not in s1, s1


def describe_system_groups(w):
    everything = w.ml_admin.lines("describe-system-groups", "-g", "iso")
    theirs = w.ml_b.lines("describe-system-groups", "-g", "iso")
    assert theirs[0] == everything[0] == ["GROUP", "iso", "4", "2", "the isolation rack", "none"]
    systems = {line[2]: line for line in theirs[1:]}
    assert systems["s1"][4:] in (["reserved", ""], ["reserved"]), systems
    assert w.a_owner not in "\n".join("\t".join(line) for line in theirs)
    free = w.ml_b.lines("describe-system-groups", "-f")
    assert [line[2] for line in free if line[0] == "SYSTEM"] == ["s3", "s4"]


def describe_system_users(w):
    assert sorted(s["name"] for s in w.ml_a.json("describe-system-users")) == ["s1", "s2"]
    assert w.ml_b.json("describe-system-users") == []
    assert w.ml_b.json("describe-system-users", "-u", "demo") == [], "B's demo is not A's"


def describe_metal_instances(w):
    assert sorted(s["name"] for s in w.ml_a.json("describe-instances", "-u", "demo")) == ["s1", "s2"]
    assert w.ml_b.json("describe-instances") == []
    assert w.ml_b.json("describe-instances", "-u", "demo") == [], "B's demo is not A's"


def not_yours(*args):
    def check(w):
        with unchanged(rack(w)):
            err = metal_refused(w.ml_b, "UnauthorizedOperation", *args)
            assert "is not yours" in err, err

    check.__name__ = args[0]
    return check


def taken(*args):
    """B cannot take a system A holds: it is not free."""

    def check(w):
        with unchanged(rack(w)):
            for ip in (f"{NET}.11", f"{NET}.12"):
                metal_refused(w.ml_b, "IncorrectState", *args, "-i", ip)

    check.__name__ = args[0]
    return check


def give_back(command: str):
    def check(w):
        with unchanged(rack(w)):
            for ip in (f"{NET}.11", f"{NET}.12"):
                err = metal_refused(w.ml_b, "UnauthorizedOperation", command, "-i", ip)
                assert "is not yours" in err, err
            # B's user demo holds nothing: nothing of A's demo is given back.
            assert w.ml_b.run(command, "-u", "demo").stdout == ""

    check.__name__ = command
    return check


def admin_only(*args):
    def check(w):
        with unchanged(rack(w)):
            for ml in (w.ml_a, w.ml_b):
                err = metal_refused(ml, "UnauthorizedOperation", *args)
                assert "inventory changes are for administrators" in err, err

    check.__name__ = args[0]
    return check


METAL_CHECKS = {
    "DescribeDistros": same_for_everyone("describe-distros"),
    "DescribeProfiles": same_for_everyone("describe-profiles"),
    "DescribeSystems": describe_systems,
    "DescribeSystemGroups": describe_system_groups,
    "DescribeSystemUsers": describe_system_users,
    "SetProfile": not_yours("set-profile", "-n", "s1", "-p", "answers"),
    "EnableNetboot": not_yours("enable-netboot", "-n", "s1"),
    "DisableNetboot": not_yours("disable-netboot", "-n", "s2"),
    "RebootSystem": not_yours("reboot-system", "-n", "s1"),
    "ReserveSystems": taken("reserve-systems", "-u", "demo"),
    "ReleaseSystems": give_back("release-systems"),
    "RunInstances": taken("run-instances", "-p", "tiny", "-u", "demo"),
    "DescribeInstances": describe_metal_instances,
    "TerminateInstances": give_back("terminate-instances"),
    "AddGroup": admin_only("add-group", "iso2"),
    "RemoveGroup": admin_only("remove-group", "spare"),
    "AddDistro": admin_only("add-distro", "d2", "--kernel", "/srv/k", "--initrd", "/srv/i"),
    "RemoveDistro": admin_only("remove-distro", "isodistro"),
    "AddProfile": admin_only("add-profile", "p2", "--location", "/etc/hostname"),
    "RenderAnswerFile": admin_only("render-answer-file", "-n", "s3", "-p", "answers"),
    "RemoveProfile": admin_only("remove-profile", "answers"),
    "AddSystem": admin_only("add-system", "--name", "s9", "--mac", "52:54:00:4d:0b:09", "--ip", f"{NET}.19",
                            "--group", "iso"),
    "EditSystem": admin_only("edit-system", "--name", "s3", "--hostname", "taken-over"),
    "RemoveSystem": admin_only("remove-system", "s4"),
    "ConfirmPoweredOff": admin_only("confirm-powered-off", "-n", "s2"),
}


# ---------------------------------------------------------------- the tests


@pytest.mark.parametrize("action", list(EC2_CHECKS))
def test_ec2(world, action):
    EC2_CHECKS[action](world)


@pytest.mark.parametrize("action", list(METAL_CHECKS))
def test_metal(world, action):
    METAL_CHECKS[action](world)


def test_the_first_account_is_as_it_was(world):
    ec2, metal = world.baseline
    assert a_view(world) == ec2
    assert rack_view(world) == metal
