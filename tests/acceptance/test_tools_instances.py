"""The instance calls of the AWS tools against real instances, on one
cloud shared by the module and two instances in all:

- Terraform's `aws_instance` (create, the full refresh read set,
  destroy), with `aws_eip` associated to it, an `aws_ebs_volume` and its
  `aws_volume_attachment`, replayed with boto3 call by call;
- Ansible's `amazon.aws` `ec2_key`, `ec2_instance` (wait: true),
  `ec2_vol` attaching a volume, `ec2_snapshot` of it and `ec2_eip`
  associating an address, run twice (the second run changes nothing),
  then a run that grows the volume, then removed.

The attached volume is grown with ModifyVolume while its instance runs
(the data grows once it is detached).

Each replay cites the provider source it comes from."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import MalleeServer, ZONE, free_port, ssh_keygen
from computeutil import guest_images, register_guest, wait_states
from netutil import public_range_for
from test_ansible import PLAY, run_playbook


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    """A cloud with a public range and the test guest registered."""
    guest_images()
    d = tmp_path_factory.mktemp("toolsvm")
    port = free_port()
    public = public_range_for(port).replace("/24", "/28")
    s = MalleeServer(d / "data", d / "server.log", port=port, extra_args=["--public-range", public])
    try:
        s.start()
        s.images = register_guest(s)
        s.public = ipaddress.ip_network(public)
        yield s
    finally:
        s.stop()
        s.kill()
        s.purge()


def refused(code: str, call, **kwargs):
    with pytest.raises(ClientError) as e:
        call(**kwargs)
    assert e.value.response["Error"]["Code"] == code, e.value.response["Error"]
    return e.value.response["Error"]["Message"]


def wait_for(fetch, done, timeout=180, interval=1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        assert time.monotonic() < deadline, value
        time.sleep(interval)


def tags(resource_type, **kv):
    return {"ResourceType": resource_type, "Tags": [{"Key": k, "Value": v} for k, v in kv.items()]}


def test_terraform_aws_instance_eip_volume_and_attachment(cloud, tmp_path):
    """internal/service/ec2/ec2_instance.go (resourceInstanceCreate,
    resourceInstanceRead with readBlockDevices, readInstanceShutdownBehavior,
    flattenInstanceLaunchTemplate, the DescribeInstanceAttribute calls,
    resourceInstanceDelete with terminateInstance), ec2_eip.go (with
    `instance`: AssociateAddress then the read), ebs_volume.go and
    ebs_volume_attachment.go (findVolumeAttachment: DescribeVolumes by id
    filtered on attachment.device and attachment.instance-id;
    waitVolumeAttachmentInstanceReady; AttachVolume; the attachment
    "attached"; DetachVolume; until it is gone)."""
    ec2 = cloud.client("ec2")
    account = cloud.admin["account_id"]
    _, public_key = ssh_keygen(tmp_path, "ed25519")
    key_name = f"tf-{uuid.uuid4().hex[:6]}"
    ec2.import_key_pair(KeyName=key_name, PublicKeyMaterial=public_key.encode())
    user_data = "#!/bin/sh\necho terraform\n"

    # data "aws_ami": the newest image of the owner by name.
    images = ec2.describe_images(Owners=["self"], IncludeDeprecated=True,
                                 Filters=[{"Name": "name", "Values": ["guest-pv-*"]}])["Images"]
    ami = max(images, key=lambda i: i["CreationDate"])
    assert ami["ImageId"] == cloud.images["pv"]

    # aws_instance create: RunInstances with the provider's parameters
    # (its UserData is base64, which boto3 does for us), then
    # WaitInstanceCreated (DescribeInstances until "running").
    run = ec2.run_instances(
        ClientToken=f"terraform-{uuid.uuid4().hex}", ImageId=ami["ImageId"], InstanceType="t1.micro",
        KeyName=key_name, MinCount=1, MaxCount=1, UserData=user_data,
        MetadataOptions={"HttpEndpoint": "enabled", "HttpTokens": "optional", "HttpPutResponseHopLimit": 1},
        DisableApiTermination=False, EbsOptimized=False, Monitoring={"Enabled": False},
        TagSpecifications=[tags("instance", Name="tf-web"), tags("volume", Name="tf-web-disk")],
    )
    iid = run["Instances"][0]["InstanceId"]
    try:
        wait_states(ec2, [iid], "running")

        def read():
            """resourceInstanceRead, call by call; returns what it sets."""
            (inst,) = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"]
            assert inst["InstanceId"] == iid and inst["State"]["Name"] == "running"
            (itype,) = ec2.describe_instance_types(InstanceTypes=[inst["InstanceType"]])["InstanceTypes"]
            assert itype["BurstablePerformanceSupported"] is False  # no credit specification read
            state = {
                "availability_zone": inst["Placement"]["AvailabilityZone"],
                "tenancy": inst["Placement"]["Tenancy"],
                "cpu_core_count": inst["CpuOptions"]["CoreCount"],
                "metadata_options": inst["MetadataOptions"]["HttpTokens"],
                "ami": inst["ImageId"], "instance_type": inst["InstanceType"], "key_name": inst["KeyName"],
                "public_dns": inst.get("PublicDnsName"), "public_ip": inst.get("PublicIpAddress"),
                "private_dns": inst["PrivateDnsName"], "private_ip": inst["PrivateIpAddress"],
                "ebs_optimized": inst["EbsOptimized"], "source_dest_check": inst["SourceDestCheck"],
                "monitoring": inst["Monitoring"]["State"], "tags": inst["Tags"],
            }
            # flattenInstanceLaunchTemplate: no aws:ec2launchtemplate:id tag.
            assert ec2.describe_tags(Filters=[
                {"Name": "resource-id", "Values": [iid]},
                {"Name": "key", "Values": ["aws:ec2launchtemplate:id"]}])["Tags"] == []
            # the primary network interface (device index 0)
            (primary,) = [n for n in inst["NetworkInterfaces"] if n["Attachment"]["DeviceIndex"] == 0]
            state["subnet_id"] = primary["SubnetId"]
            state["primary_network_interface_id"] = primary["NetworkInterfaceId"]
            state["associate_public_ip_address"] = "Association" in primary
            state["secondary_private_ips"] = [a["PrivateIpAddress"] for a in primary["PrivateIpAddresses"]
                                              if not a["Primary"]]
            # readVolumeTags (volume_tags set): the instance's volumes.
            volumes = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [iid]}])["Volumes"]
            state["volume_tags"] = {v["VolumeId"]: v.get("Tags", []) for v in volumes}
            # readSecurityGroups: VPC instance, vpc_security_group_ids.
            state["vpc_security_group_ids"] = [g["GroupId"] for g in inst["SecurityGroups"]]
            # readInstanceShutdownBehavior
            state["instance_initiated_shutdown_behavior"] = ec2.describe_instance_attribute(
                InstanceId=iid, Attribute="instanceInitiatedShutdownBehavior")[
                "InstanceInitiatedShutdownBehavior"]["Value"]
            # readBlockDevices: DescribeVolumes of the EBS mappings, if any.
            ebs = {m["Ebs"]["VolumeId"]: m for m in inst.get("BlockDeviceMappings", []) if "Ebs" in m}
            if ebs:
                for v in ec2.describe_volumes(VolumeIds=list(ebs))["Volumes"]:
                    assert v["Size"] >= 1 and v["VolumeType"] and v["Encrypted"] in (True, False)
                    assert "DeleteOnTermination" in ebs[v["VolumeId"]]["Ebs"]
            state["root_device_name"] = inst.get("RootDeviceName")
            # the instance attributes
            state["disable_api_stop"] = ec2.describe_instance_attribute(
                InstanceId=iid, Attribute="disableApiStop")["DisableApiStop"]["Value"]
            state["disable_api_termination"] = ec2.describe_instance_attribute(
                InstanceId=iid, Attribute="disableApiTermination")["DisableApiTermination"]["Value"]
            data = ec2.describe_instance_attribute(InstanceId=iid, Attribute="userData")["UserData"]
            state["user_data"] = hashlib.sha1(base64.b64decode(data["Value"])).hexdigest()
            return state

        first = read()
        assert first["ami"] == ami["ImageId"] and first["instance_type"] == "t1.micro"
        assert first["key_name"] == key_name and first["availability_zone"] == ZONE
        assert first["tags"] == [{"Key": "Name", "Value": "tf-web"}]
        assert first["primary_network_interface_id"].startswith("eni-")
        assert first["secondary_private_ips"] == []
        assert first["instance_initiated_shutdown_behavior"] == "stop"
        assert first["disable_api_stop"] is False and first["disable_api_termination"] is False
        assert first["user_data"] == hashlib.sha1(user_data.encode()).hexdigest()
        assert first["monitoring"] == "disabled" and first["source_dest_check"] is True
        assert read() == first, "a refresh with nothing changed reads the same"

        # aws_eip with instance = the instance: AllocateAddress, then
        # AssociateAddress (AllocationId, InstanceId), then the read.
        eip = ec2.allocate_address(Domain="vpc", TagSpecifications=[tags("elastic-ip", Name="tf-web")])
        assoc = ec2.associate_address(AllocationId=eip["AllocationId"], InstanceId=iid)["AssociationId"]
        (address,) = ec2.describe_addresses(AllocationIds=[eip["AllocationId"]])["Addresses"]
        assert (address["AssociationId"], address["InstanceId"]) == (assoc, iid)
        assert address["PrivateIpAddress"] == first["private_ip"]
        assert address["NetworkInterfaceId"] == first["primary_network_interface_id"]
        assert address["NetworkInterfaceOwnerId"] == account
        assert read()["public_ip"] == eip["PublicIp"]

        # aws_ebs_volume + aws_volume_attachment
        vol = ec2.create_volume(AvailabilityZone=ZONE, Size=1, ClientToken=f"terraform-{uuid.uuid4().hex}",
                                TagSpecifications=[tags("volume", Name="tf-data")])["VolumeId"]
        wait_for(lambda: ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]["State"], lambda s: s == "available")

        def find_attachment():
            volumes = ec2.describe_volumes(VolumeIds=[vol], Filters=[
                {"Name": "attachment.device", "Values": ["/dev/sdh"]},
                {"Name": "attachment.instance-id", "Values": [iid]}])["Volumes"]
            if not volumes or volumes[0]["State"] in ("available", "deleted"):
                return None
            found = [a for a in volumes[0]["Attachments"] if a["State"] != "detached"
                     and a["Device"] == "/dev/sdh" and a["InstanceId"] == iid]
            return found[0] if found else None

        assert find_attachment() is None
        (inst,) = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"]
        assert inst["State"]["Name"] in ("running", "stopped")
        attached = ec2.attach_volume(Device="/dev/sdh", InstanceId=iid, VolumeId=vol)
        assert attached["State"] in ("attaching", "attached")
        wait_for(find_attachment, lambda a: a is not None and a["State"] == "attached")
        assert find_attachment()["VolumeId"] == vol
        # The instance's refresh now reads the attached volume too.
        after = read()
        (inst,) = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"]
        assert "/dev/sdh" in [m["DeviceName"] for m in inst["BlockDeviceMappings"]]
        assert vol in after["volume_tags"]
        # aws_ebs_volume update while attached: ModifyVolume, then
        # waitVolumeUpdated. The new size is the volume's at once; its data
        # grows once nothing has it open, so the modification stays
        # "modifying" until the volume is detached.
        ec2.modify_volume(VolumeId=vol, Size=2)
        (m,) = ec2.describe_volumes_modifications(VolumeIds=[vol])["VolumesModifications"]
        assert (m["ModificationState"], m["OriginalSize"], m["TargetSize"]) == ("modifying", 1, 2)
        assert ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]["Size"] == 2
        refused("IncorrectModificationState", ec2.modify_volume, VolumeId=vol, Size=3)

        # destroy, in the reverse order of the dependencies.
        ec2.detach_volume(Device="/dev/sdh", Force=False, InstanceId=iid, VolumeId=vol)
        wait_for(find_attachment, lambda a: a is None)
        done = wait_for(lambda: ec2.describe_volumes_modifications(VolumeIds=[vol])["VolumesModifications"][0],
                        lambda m: m["ModificationState"] != "modifying", timeout=60)
        assert done["ModificationState"] == "completed" and "EndTime" in done, done
        ec2.delete_volume(VolumeId=vol)
        ec2.disassociate_address(AssociationId=assoc)
        ec2.release_address(AllocationId=eip["AllocationId"])
        ec2.modify_instance_attribute(InstanceId=iid, DisableApiTermination={"Value": False})
    finally:
        ec2.terminate_instances(InstanceIds=[iid])
    wait_states(ec2, [iid], "terminated", timeout=120)
    # A terminated instance is "not found" to FindInstanceByID, and the
    # instance's own volumes with DeleteOnTermination are gone.
    (gone,) = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"]
    assert gone["State"]["Name"] == "terminated"
    ec2.delete_key_pair(KeyName=key_name)


INSTANCE = PLAY + """    - name: key
      amazon.aws.ec2_key:
        name: "{{ group }}"
        key_material: "{{ public_key }}"
        tags: {env: test}
    - name: instance
      amazon.aws.ec2_instance:
        name: "{{ group }}"
        image_id: "{{ image }}"
        instance_type: t1.micro
        key_name: "{{ group }}"
        wait: true
        wait_timeout: 300
        tags: {env: test}
        volumes:
          - device_name: /dev/sdf
            ebs: {volume_size: 1, delete_on_termination: true}
        state: running
      register: instance
    - name: data volume
      amazon.aws.ec2_vol:
        name: "{{ group }}-data"
        instance: "{{ instance.instance_ids[0] }}"
        device_name: /dev/sdg
        volume_size: "{{ size }}"
        volume_type: gp2
        modify_volume: true
        delete_on_termination: true
        tags: {env: test}
      register: vol
    - name: snapshot
      amazon.aws.ec2_snapshot:
        volume_id: "{{ vol.volume_id }}"
        description: made by ansible
        snapshot_tags: {env: test}
        last_snapshot_min_age: 60
        wait: true
        wait_timeout: 120
    - name: address
      amazon.aws.ec2_eip:
        device_id: "{{ instance.instance_ids[0] }}"
        in_vpc: true
        release_on_disassociation: true
        tags: {env: test}
"""

INSTANCE_GONE = PLAY + """    - name: address
      amazon.aws.ec2_eip:
        device_id: "{{ instance_id }}"
        in_vpc: true
        release_on_disassociation: true
        state: absent
    - name: snapshot
      amazon.aws.ec2_snapshot:
        snapshot_id: "{{ snapshot_id }}"
        state: absent
    - name: instance
      amazon.aws.ec2_instance:
        instance_ids: ["{{ instance_id }}"]
        wait: true
        state: absent
    - name: key
      amazon.aws.ec2_key:
        name: "{{ group }}"
        state: absent
"""


def test_ansible_ec2_instance_key_volume_snapshot_and_address(cloud, tmp_path):
    """ec2_key, ec2_instance (wait: true), ec2_vol attaching a data volume,
    ec2_snapshot of it and ec2_eip on the instance: run twice, the second
    run changes nothing; a third grows the data volume (`modify_volume`:
    ModifyVolume of an attached volume); a last one removes everything."""
    ec2 = cloud.client("ec2")
    name = f"ansible-{uuid.uuid4().hex[:8]}"
    _, public_key = ssh_keygen(tmp_path / "keys", "rsa")

    def run(tag, playbook, **extra):
        return run_playbook(tmp_path / tag, cloud.endpoint, cloud.admin, name, playbook,
                            {"image": cloud.images["pv"], "public_key": public_key, "size": 1, **extra})

    first = run("first", INSTANCE)
    for task in ("key", "instance", "data volume", "snapshot", "address"):
        assert first[task]["changed"], (task, first[task])
    (iid,) = first["instance"]["instance_ids"]
    snap_id = first["snapshot"]["snapshot_id"]
    try:
        (made_key,) = ec2.describe_key_pairs(KeyNames=[name])["KeyPairs"]
        assert made_key["KeyFingerprint"] == first["key"]["key"]["fingerprint"]
        # ec2_key imported the material once more under a temporary name
        # to learn its fingerprint; nothing of that is left.
        assert [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"] if k["KeyName"].startswith("ansible")] \
            == [name]
        (inst,) = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"]
        assert inst["State"]["Name"] == "running" and inst["KeyName"] == name
        assert {t["Key"]: t["Value"] for t in inst["Tags"]} == {"Name": name, "env": "test"}
        devices = {m["DeviceName"]: m["Ebs"] for m in inst["BlockDeviceMappings"] if "Ebs" in m}
        assert {"/dev/sdf", "/dev/sdg"} <= set(devices)
        data_vol = first["data volume"]["volume_id"]
        assert devices["/dev/sdg"]["VolumeId"] == data_vol
        assert devices["/dev/sdg"]["DeleteOnTermination"] is True
        (vol,) = ec2.describe_volumes(VolumeIds=[data_vol])["Volumes"]
        assert {t["Key"]: t["Value"] for t in vol["Tags"]} == {"Name": f"{name}-data", "env": "test"}
        (snap,) = ec2.describe_snapshots(SnapshotIds=[snap_id])["Snapshots"]
        assert (snap["VolumeId"], snap["State"], snap["Description"]) == (data_vol, "completed", "made by ansible")
        assert {t["Key"]: t["Value"] for t in snap["Tags"]} == {"Name": f"{name}-data", "env": "test"}
        assert inst["PublicIpAddress"] == first["address"]["public_ip"]

        second = run("second", INSTANCE)
        for task in ("key", "instance", "data volume", "snapshot", "address"):
            assert not second[task]["changed"], (task, second[task])
        assert second["instance"]["instance_ids"] == [iid]
        assert second["snapshot"]["snapshot_id"] == snap_id
        assert second["address"]["public_ip"] == first["address"]["public_ip"]

        grown = run("grown", INSTANCE, size=2)
        assert grown["data volume"]["changed"], grown["data volume"]
        assert not any(grown[t]["changed"] for t in ("key", "instance", "snapshot", "address"))
        assert ec2.describe_volumes(VolumeIds=[data_vol])["Volumes"][0]["Size"] == 2
        (m,) = ec2.describe_volumes_modifications(VolumeIds=[data_vol])["VolumesModifications"]
        assert (m["OriginalSize"], m["TargetSize"]) == (1, 2)
    finally:
        gone = run("gone", INSTANCE_GONE, instance_id=iid, snapshot_id=snap_id)
    for task in ("address", "snapshot", "instance", "key"):
        assert gone[task]["changed"], (task, gone[task])
    (inst,) = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"]
    assert inst["State"]["Name"] == "terminated"
    public_ip = first["address"]["public_ip"]
    assert public_ip not in [a["PublicIp"] for a in ec2.describe_addresses()["Addresses"]]
    assert name not in [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]]
    assert snap_id not in [s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]]
