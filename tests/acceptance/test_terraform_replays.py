"""The exact call sequences terraform-provider-aws makes for the resources
and data sources that need no running instance, replayed with boto3:
`aws_route`, `aws_nat_gateway`, `aws_key_pair`, `aws_eip`,
`aws_ebs_volume`, `aws_ebs_snapshot_copy`, and the `aws_ami` and `aws_availability_zones` data
sources (create → refresh → update where it has one → destroy). Each
test cites the provider source its sequence comes from and checks the
fields the provider dereferences. Each test uses an account of its own
on the session cloud. `aws_instance` and `aws_volume_attachment` need a
running instance: test_tools_instances.py."""

import datetime
import re
import time

import pytest
from botocore.exceptions import ClientError

from conftest import REGION, ZONE, ssh_keygen

NAT_ID = re.compile(r"^nat-[0-9a-f]{17}$")
EIPALLOC_ID = re.compile(r"^eipalloc-[0-9a-f]{17}$")
KEY_ID = re.compile(r"^key-[0-9a-f]{17}$")
VOL_ID = re.compile(r"^vol-[0-9a-f]{17}$")


@pytest.fixture
def acct(server):
    """A fresh account's EC2 client and id."""
    creds = server.create_account()
    return server.client("ec2", creds=creds), creds["account_id"]


def refused(code: str, call, **kwargs):
    with pytest.raises(ClientError) as e:
        call(**kwargs)
    error = e.value.response["Error"]
    assert error["Code"] == code, (error, kwargs)
    assert e.value.response["ResponseMetadata"]["RequestId"]
    return error["Message"]


def tf_tags(resource_type, name):
    return [{"ResourceType": resource_type, "Tags": [{"Key": "Name", "Value": name}]}]


def wait_for(fetch, done, timeout=60, interval=0.5):
    """Polls like the provider's StateChangeConf: returns the first value
    `done` accepts."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        assert time.monotonic() < deadline, value
        time.sleep(interval)


def test_terraform_aws_route(acct):
    """internal/service/ec2/vpc_route.go: Create is CreateRoute (retried
    while the table is not yet visible), then waitRouteReady, i.e.
    findRouteByIPv4Destination (DescribeRouteTables by id, the route whose
    DestinationCidrBlock matches) until found; Read is the same lookup and
    sets every target attribute (GatewayId, NatGatewayId, InstanceId,
    NetworkInterfaceId, …), Origin and State; Update is ReplaceRoute;
    Delete is DeleteRoute (InvalidRoute.NotFound counts as gone) and
    waitRouteDeleted until the lookup finds nothing."""
    ec2, account = acct
    vpc_id = ec2.create_vpc(CidrBlock="10.61.0.0/16")["Vpc"]["VpcId"]
    rtb = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
    other_igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]

    def find(destination):
        (table,) = ec2.describe_route_tables(RouteTableIds=[rtb])["RouteTables"]
        return [r for r in table["Routes"] if r.get("DestinationCidrBlock") == destination]

    # create
    assert ec2.create_route(RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)["Return"]
    (route,) = wait_for(lambda: find("0.0.0.0/0"), lambda r: len(r) == 1)
    # refresh, twice
    for _ in range(2):
        (route,) = find("0.0.0.0/0")
        assert route == {"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": igw, "Origin": "CreateRoute",
                         "State": "active"}
        for absent in ("NatGatewayId", "InstanceId", "NetworkInterfaceId", "InstanceOwnerId",
                       "VpcPeeringConnectionId", "TransitGatewayId", "EgressOnlyInternetGatewayId"):
            assert absent not in route
    # update: gateway_id changed → ReplaceRoute, then the read. A gateway
    # of another network is refused, as on AWS; the VPC's new one is taken.
    refused("InvalidParameterValue", ec2.replace_route, RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0",
            GatewayId=other_igw)
    ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
    ec2.attach_internet_gateway(InternetGatewayId=other_igw, VpcId=vpc_id)
    assert ec2.replace_route(RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0", GatewayId=other_igw)
    (route,) = find("0.0.0.0/0")
    assert route["GatewayId"] == other_igw and route["State"] == "active"
    # destroy
    ec2.delete_route(RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0")
    assert wait_for(lambda: find("0.0.0.0/0"), lambda r: r == []) == []
    refused("InvalidRoute.NotFound", ec2.delete_route, RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0")
    # A route table that is gone: the read's "not found" removes it from state.
    ec2.delete_route_table(RouteTableId=rtb)
    refused("InvalidRouteTableID.NotFound", ec2.describe_route_tables, RouteTableIds=[rtb])
    ec2.detach_internet_gateway(InternetGatewayId=other_igw, VpcId=vpc_id)
    for g in (igw, other_igw):
        ec2.delete_internet_gateway(InternetGatewayId=g)
    ec2.delete_vpc(VpcId=vpc_id)


def test_terraform_aws_nat_gateway(acct):
    """internal/service/ec2/vpc_nat_gateway.go: Create is CreateNatGateway
    (AllocationId, ClientToken, ConnectivityType "public", SubnetId,
    TagSpecifications "natgateway"), then waitNATGatewayCreated
    (DescribeNatGateways by id until "available"); Read is
    findNATGatewayByID ("deleted" counts as not found) and takes the
    address that IsPrimary (or the only one): AllocationId, AssociationId,
    NetworkInterfaceId, PrivateIp, PublicIp; then ConnectivityType,
    SubnetId and Tags. Delete is DeleteNatGateway (NatGatewayNotFound
    counts as gone) and waitNATGatewayDeleted (until "deleted")."""
    ec2, account = acct
    vpc_id = ec2.create_vpc(CidrBlock="10.62.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.62.1.0/24", AvailabilityZone=ZONE)["Subnet"]["SubnetId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
    eip = ec2.allocate_address(Domain="vpc", TagSpecifications=tf_tags("elastic-ip", "nat"))
    token = "terraform-20261207000000000000000001"

    made = ec2.create_nat_gateway(AllocationId=eip["AllocationId"], ClientToken=token, ConnectivityType="public",
                                  SubnetId=subnet, TagSpecifications=tf_tags("natgateway", "tf"))
    nat_id = made["NatGateway"]["NatGatewayId"]
    assert NAT_ID.match(nat_id)
    wait_for(lambda: ec2.describe_nat_gateways(NatGatewayIds=[nat_id])["NatGateways"][0]["State"],
             lambda s: s == "available")

    for _ in range(2):
        (ng,) = ec2.describe_nat_gateways(NatGatewayIds=[nat_id])["NatGateways"]
        assert ng["State"] == "available"
        primary = [a for a in ng["NatGatewayAddresses"] if a.get("IsPrimary")] or ng["NatGatewayAddresses"]
        assert len(primary) == 1
        (address,) = primary
        assert address["AllocationId"] == eip["AllocationId"]
        assert address["AssociationId"].startswith("eipassoc-")
        assert address["NetworkInterfaceId"].startswith("eni-")
        assert address["PublicIp"] == eip["PublicIp"]
        assert address["PrivateIp"].startswith("10.62.1.")
        assert ng["ConnectivityType"] == "public"
        assert ng["SubnetId"] == subnet and ng["VpcId"] == vpc_id
        assert ng["Tags"] == [{"Key": "Name", "Value": "tf"}]
    # The gateway's address shows its association, as aws_eip reads it.
    (held,) = ec2.describe_addresses(AllocationIds=[eip["AllocationId"]])["Addresses"]
    assert held["AssociationId"] == address["AssociationId"]
    assert held["NetworkInterfaceId"] == address["NetworkInterfaceId"]

    assert ec2.delete_nat_gateway(NatGatewayId=nat_id)["NatGatewayId"] == nat_id
    wait_for(lambda: ec2.describe_nat_gateways(NatGatewayIds=[nat_id])["NatGateways"][0]["State"],
             lambda s: s == "deleted")
    refused("NatGatewayNotFound", ec2.delete_nat_gateway, NatGatewayId="nat-0123456789abcdef0")
    # aws_eip destroy after it: the address is free again.
    (free,) = ec2.describe_addresses(AllocationIds=[eip["AllocationId"]])["Addresses"]
    assert "AssociationId" not in free
    ec2.release_address(AllocationId=eip["AllocationId"])
    ec2.delete_subnet(SubnetId=subnet)
    ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
    ec2.delete_internet_gateway(InternetGatewayId=igw)
    ec2.delete_vpc(VpcId=vpc_id)


def test_terraform_aws_key_pair(acct, tmp_path):
    """internal/service/ec2/ec2_key_pair.go: Create is ImportKeyPair
    (KeyName, PublicKeyMaterial, TagSpecifications "key-pair"), and the id
    is the key's name; Read is findKeyPairByName (DescribeKeyPairs with
    KeyNames=[name] and IncludePublicKey; InvalidKeyPair.NotFound removes
    it from state) and sets KeyFingerprint, KeyName, KeyPairId, KeyType and
    Tags; Delete is DeleteKeyPair by KeyName."""
    ec2, account = acct
    _, public = ssh_keygen(tmp_path, "ed25519")
    name = "tf-key"
    made = ec2.import_key_pair(KeyName=name, PublicKeyMaterial=public.encode(),
                               TagSpecifications=tf_tags("key-pair", "tf"))
    assert made["KeyName"] == name
    for _ in range(2):
        (key,) = ec2.describe_key_pairs(KeyNames=[name], IncludePublicKey=True)["KeyPairs"]
        assert key["KeyName"] == name
        assert KEY_ID.match(key["KeyPairId"]) and key["KeyPairId"] == made["KeyPairId"]
        assert key["KeyFingerprint"] == made["KeyFingerprint"]
        assert key["KeyType"] == "ed25519"
        assert key["PublicKey"].split()[:2] == public.split()[:2]
        assert key["Tags"] == [{"Key": "Name", "Value": "tf"}]
        assert isinstance(key["CreateTime"], datetime.datetime)
    ec2.delete_key_pair(KeyName=name)
    refused("InvalidKeyPair.NotFound", ec2.describe_key_pairs, KeyNames=[name], IncludePublicKey=True)


def test_terraform_aws_eip(acct):
    """internal/service/ec2/ec2_eip.go: Create is AllocateAddress (Domain
    "vpc", TagSpecifications "elastic-ip"), then the read, which
    findEIPByAllocationID makes (DescribeAddresses by AllocationIds,
    retried while eventual consistency hides it) and sets AllocationId,
    AssociationId, Domain, InstanceId, NetworkInterfaceId,
    NetworkInterfaceOwnerId, PrivateIpAddress, PublicIp, PublicIpv4Pool,
    Tags, and then the domain-name attribute
    (findEIPDomainNameAttributeByAllocationID: DescribeAddressesAttribute,
    covered in test_ec2_tools.py). Delete is ReleaseAddress by
    AllocationId (InvalidAllocationID.NotFound counts as gone). With an
    instance, association and disassociation go through the instance
    replay in test_tools_instances.py."""
    ec2, account = acct
    made = ec2.allocate_address(Domain="vpc", TagSpecifications=tf_tags("elastic-ip", "tf"))
    alloc = made["AllocationId"]
    assert EIPALLOC_ID.match(alloc) and made["Domain"] == "vpc"
    for _ in range(2):
        (address,) = ec2.describe_addresses(AllocationIds=[alloc])["Addresses"]
        assert address["AllocationId"] == alloc
        assert address["PublicIp"] == made["PublicIp"]
        assert address["Domain"] == "vpc"
        assert address["Tags"] == [{"Key": "Name", "Value": "tf"}]
        for absent in ("AssociationId", "InstanceId", "NetworkInterfaceId", "PrivateIpAddress"):
            assert absent not in address
        assert address.get("PublicIpv4Pool", "amazon")
        attrs = ec2.describe_addresses_attribute(AllocationIds=[alloc], Attribute="domain-name")["Addresses"]
        assert [a["AllocationId"] for a in attrs] == [alloc]
    # Filters the provider's aws_eip data source sends.
    assert [a["AllocationId"] for a in ec2.describe_addresses(
        Filters=[{"Name": "tag:Name", "Values": ["tf"]}])["Addresses"]] == [alloc]
    assert [a["AllocationId"] for a in ec2.describe_addresses(
        Filters=[{"Name": "public-ip", "Values": [made["PublicIp"]]}])["Addresses"]] == [alloc]
    ec2.release_address(AllocationId=alloc)
    refused("InvalidAllocationID.NotFound", ec2.release_address, AllocationId=alloc)
    refused("InvalidAllocationID.NotFound", ec2.describe_addresses, AllocationIds=[alloc])


def test_terraform_aws_ebs_volume(acct):
    """internal/service/ec2/ebs_volume.go: Create is CreateVolume
    (AvailabilityZone, ClientToken, Size, VolumeType, TagSpecifications
    "volume"), then waitVolumeCreated (DescribeVolumes by id until
    "available"); Read is findEBSVolumeByID and sets AvailabilityZone,
    CreateTime (formatted as RFC 3339, so it must be there), Encrypted,
    Iops, KmsKeyId, MultiAttachEnabled, OutpostArn, Size, SnapshotId,
    Throughput, VolumeType, Tags. Update (size) is ModifyVolume, then
    waitVolumeUpdated (DescribeVolumesModifications by VolumeIds until
    "completed" or "optimizing"). Delete is DeleteVolume (retried on
    VolumeInUse; InvalidVolume.NotFound counts as gone) and
    waitVolumeDeleted (until not found or "deleted")."""
    ec2, account = acct
    made = ec2.create_volume(AvailabilityZone=ZONE, ClientToken="terraform-vol-1", Size=1, VolumeType="gp2",
                             TagSpecifications=tf_tags("volume", "tf"))
    vol = made["VolumeId"]
    assert VOL_ID.match(vol)
    wait_for(lambda: ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]["State"], lambda s: s == "available")
    for _ in range(2):
        (v,) = ec2.describe_volumes(VolumeIds=[vol])["Volumes"]
        assert v["AvailabilityZone"] == ZONE
        assert isinstance(v["CreateTime"], datetime.datetime)
        assert v["Encrypted"] is False
        assert v["MultiAttachEnabled"] is False
        assert v["Size"] == 1 and v["VolumeType"] == "gp2"
        assert v["SnapshotId"] == ""
        assert v["Tags"] == [{"Key": "Name", "Value": "tf"}]
        assert "KmsKeyId" not in v and "OutpostArn" not in v
    # update: size 1 → 2
    modified = ec2.modify_volume(VolumeId=vol, Size=2)["VolumeModification"]
    assert modified["VolumeId"] == vol and modified["TargetSize"] == 2 and modified["OriginalSize"] == 1

    def modification():
        (m,) = ec2.describe_volumes_modifications(VolumeIds=[vol])["VolumesModifications"]
        return m

    done = wait_for(modification, lambda m: m["ModificationState"] in ("completed", "optimizing"))
    assert done["TargetSize"] == 2
    assert ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]["Size"] == 2
    # destroy
    ec2.delete_volume(VolumeId=vol)
    wait_for(lambda: ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": [vol]}])["Volumes"],
             lambda vs: vs == [] or vs[0]["State"] == "deleted")
    refused("InvalidVolume.NotFound", ec2.delete_volume, VolumeId=vol)


def test_terraform_aws_ebs_snapshot_and_copy(acct):
    """internal/service/ec2/ebs_snapshot.go (CreateSnapshot with
    TagSpecifications "snapshot", waitSnapshotCompleted: DescribeSnapshots
    by id until "completed"; Read sets Description, Encrypted, KmsKeyId,
    OwnerAlias, OwnerId, VolumeId, VolumeSize, StorageTier, Tags) and
    ebs_snapshot_copy.go (CopySnapshot with SourceRegion,
    SourceSnapshotId, Description, TagSpecifications; the same wait and
    read; Delete is DeleteSnapshot, retried while in use). The copy has
    data of its own: a volume made from it after the source is gone is
    available, with the source's size."""
    ec2, account = acct
    vol = ec2.create_volume(AvailabilityZone=ZONE, Size=1)["VolumeId"]
    wait_for(lambda: ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]["State"], lambda s: s == "available")
    source = ec2.create_snapshot(VolumeId=vol, Description="tf source",
                                 TagSpecifications=tf_tags("snapshot", "src"))["SnapshotId"]

    def snapshot(sid):
        return ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]

    wait_for(lambda: snapshot(source)["State"], lambda s: s in ("completed", "error"), timeout=120)
    assert snapshot(source)["State"] == "completed"

    refused("InvalidParameterValue", ec2.copy_snapshot, SourceRegion="us-east-1", SourceSnapshotId=source)
    refused("InvalidSnapshot.NotFound", ec2.copy_snapshot, SourceRegion=REGION,
            SourceSnapshotId="snap-0123456789abcdef0")
    refused("UnsupportedOperation", ec2.copy_snapshot, SourceRegion=REGION, SourceSnapshotId=source,
            Encrypted=True)
    copied = ec2.copy_snapshot(SourceRegion=REGION, SourceSnapshotId=source, Description="tf copy",
                               TagSpecifications=tf_tags("snapshot", "copy"))
    copy_id = copied["SnapshotId"]
    assert copy_id != source and copied["Tags"] == [{"Key": "Name", "Value": "copy"}]
    wait_for(lambda: snapshot(copy_id)["State"], lambda s: s in ("completed", "error"), timeout=120)
    for _ in range(2):
        read = snapshot(copy_id)
        assert read["State"] == "completed", read
        assert (read["Description"], read["Encrypted"], read["OwnerId"]) == ("tf copy", False, account)
        assert read["VolumeSize"] == 1 and read["VolumeId"] == "vol-ffffffff"
        assert read["Tags"] == [{"Key": "Name", "Value": "copy"}]
        assert "KmsKeyId" not in read
    # Without a description AWS names the source.
    default = ec2.copy_snapshot(SourceRegion=REGION, SourceSnapshotId=source)["SnapshotId"]
    assert snapshot(default)["Description"] == f"[Copied {source} from {REGION}]"

    # The copy outlives its source.
    ec2.delete_snapshot(SnapshotId=source)
    restored = ec2.create_volume(AvailabilityZone=ZONE, SnapshotId=copy_id)["VolumeId"]
    wait_for(lambda: ec2.describe_volumes(VolumeIds=[restored])["Volumes"][0]["State"],
             lambda s: s in ("available", "error"), timeout=120)
    (v,) = ec2.describe_volumes(VolumeIds=[restored])["Volumes"]
    assert (v["State"], v["Size"], v["SnapshotId"]) == ("available", 1, copy_id)
    wait_for(lambda: snapshot(default)["State"], lambda s: s != "pending", timeout=120)
    for sid in (copy_id, default):
        ec2.delete_snapshot(SnapshotId=sid)
    for v_id in (vol, restored):
        ec2.delete_volume(VolumeId=v_id)


def test_terraform_data_sources_aws_ami_and_availability_zones(server, acct):
    """internal/service/ec2/ec2_ami_data_source.go: DescribeImages with
    Owners and Filters (name, virtualization-type, …) and
    IncludeDeprecated; with most_recent the newest by CreationDate parsed
    as RFC 3339; then every field it sets (Architecture, BlockDevice-
    Mappings, CreationDate, Description, Hypervisor, ImageId,
    ImageLocation, ImageType, KernelId, Name, OwnerId, PlatformDetails,
    Public, RamdiskId, RootDeviceName, RootDeviceType, State,
    UsageOperation, VirtualizationType, Tags); GetInstanceUefiData's error
    is ignored. ec2_availability_zones_data_source.go:
    DescribeAvailabilityZones with AllAvailabilityZones and a "state"
    filter, sorted by ZoneName; reads ZoneName, ZoneId and GroupName."""
    ec2, account = acct
    s3 = server.client("s3", creds=None)
    owner_ec2 = server.client("ec2")
    bucket = f"tf-ami-{int(time.time() * 1000)}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="root.img", Body=b"\0" * 512)
    older = owner_ec2.register_image(Name=f"{bucket}-a", ImageLocation=f"{bucket}/root.img",
                                     VirtualizationType="hvm", Architecture="x86_64")["ImageId"]
    time.sleep(1.1)
    newer = owner_ec2.register_image(Name=f"{bucket}-b", ImageLocation=f"{bucket}/root.img",
                                     VirtualizationType="hvm", Architecture="x86_64",
                                     Description="newest")["ImageId"]
    owner = server.admin["account_id"]
    try:
        images = owner_ec2.describe_images(
            Owners=[owner], IncludeDeprecated=True,
            Filters=[{"Name": "name", "Values": [f"{bucket}-*"]},
                     {"Name": "virtualization-type", "Values": ["hvm"]}])["Images"]
        assert sorted(i["ImageId"] for i in images) == sorted([older, newer])
        image = max(images, key=lambda i: datetime.datetime.fromisoformat(i["CreationDate"].replace("Z", "+00:00")))
        assert image["ImageId"] == newer
        assert image["Architecture"] == "x86_64"
        assert image["CreationDate"].endswith("Z")
        assert image["Description"] == "newest"
        assert image["Hypervisor"] in ("xen", "kvm")
        assert image["ImageLocation"] == f"{bucket}/root.img"
        assert image["ImageType"] == "machine"
        assert image["Name"] == f"{bucket}-b"
        assert image["OwnerId"] == owner
        assert image["Public"] is False
        assert image["RootDeviceType"] in ("instance-store", "ebs")
        assert image["State"] == "available"
        assert image["VirtualizationType"] == "hvm"
        assert image["PlatformDetails"] == "Linux/UNIX"
        assert image["UsageOperation"] == "RunInstances"
        # The account without launch permission finds nothing, which the
        # data source reports as "no results".
        assert ec2.describe_images(Owners=[owner], Filters=[
            {"Name": "name", "Values": [f"{bucket}-*"]}])["Images"] == []
    finally:
        for i in (older, newer):
            owner_ec2.deregister_image(ImageId=i)

    zones = ec2.describe_availability_zones(
        AllAvailabilityZones=True, Filters=[{"Name": "state", "Values": ["available"]}])["AvailabilityZones"]
    names = sorted(z["ZoneName"] for z in zones)
    assert ZONE in names
    for z in zones:
        assert z["ZoneId"] and z["GroupName"] and z["RegionName"] == REGION
        assert z["State"] == "available"
    assert ec2.describe_availability_zones(
        Filters=[{"Name": "state", "Values": ["unavailable"]}])["AvailabilityZones"] == []


def test_terraform_ebs_encryption_by_default(acct):
    """internal/service/ec2/ebs_encryption_by_default.go and its data
    source: GetEbsEncryptionByDefault reads EbsEncryptionByDefault;
    enabling it calls EnableEbsEncryptionByDefault, which this cloud
    refuses (it stores volumes unencrypted and has no key service), and
    disabling it is DisableEbsEncryptionByDefault."""
    ec2, _ = acct
    assert ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is False
    with pytest.raises(ClientError) as e:
        ec2.enable_ebs_encryption_by_default()
    assert e.value.response["Error"]["Code"] == "UnsupportedOperation"
    assert "unencrypted" in e.value.response["Error"]["Message"]
    assert ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is False
    assert ec2.disable_ebs_encryption_by_default()["EbsEncryptionByDefault"] is False
    refused("UnsupportedOperation", ec2.create_volume, AvailabilityZone=ZONE, Size=1, Encrypted=True)
