"""The EC2 calls Terraform's AWS provider and Ansible's amazon.aws make on
the default VPC's resources, with boto3 and the AWS CLI: security group
rules by id (Authorize answers with `securityGroupRuleSet`,
ModifySecurityGroupRules, UpdateSecurityGroupRuleDescriptions*), elastic
IP domain names (Describe/Modify/ResetAddressAttribute), and instance
extras (RunInstances volume and network-interface tags, disableApiStop,
credit specifications, metadata options, GetPasswordData, instance type
offerings). Bad input gets AWS's error and changes nothing. One module
cloud; at most one instance is waited for."""

from __future__ import annotations

import ipaddress
import re
import subprocess
import time

import pytest
from botocore.exceptions import ClientError

from conftest import AwsCli, MalleeServer, free_port, unique
from computeutil import register_guest, wait_console, wait_states
from netutil import public_range_for

SGR_ID = re.compile(r"^sgr-[0-9a-f]{17}$")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    """A cloud with a public range and the test guest registered, shared by
    this module."""
    d = tmp_path_factory.mktemp("ec2tools")
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


@pytest.fixture
def ec2(cloud):
    return cloud.client("ec2")


def error(call, *args, **kwargs) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as e:
        call(*args, **kwargs)
    r = e.value.response
    return r["Error"]["Code"], r["Error"]["Message"], r["ResponseMetadata"]["HTTPStatusCode"]


def rule(ec2, rule_id) -> dict:
    return ec2.describe_security_group_rules(SecurityGroupRuleIds=[rule_id])["SecurityGroupRules"][0]


def group_rules(ec2, group_id) -> list[dict]:
    return ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])[
        "SecurityGroupRules"
    ]


# ------------------------------------------------------------ security groups


def test_terraform_security_group_and_ingress_rule_lifecycle(cloud, ec2):
    """The calls terraform-provider-aws makes for aws_security_group
    (internal/service/ec2/vpc_security_group.go: create, wait, revoke the
    default egress, read, delete) and aws_vpc_security_group_ingress_rule
    (internal/service/ec2/vpc_security_group_ingress_rule.go: Create reads
    SecurityGroupRules[0].SecurityGroupRuleId from Authorize; Read is
    DescribeSecurityGroupRules by id; Update is ModifySecurityGroupRules;
    Delete revokes by SecurityGroupRuleIds), in that order."""
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    name = unique("tf")
    # aws_security_group: create, wait for it, drop the default egress rule.
    created = ec2.create_security_group(
        GroupName=name,
        Description="Managed by Terraform",
        VpcId=vpc,
        TagSpecifications=[{"ResourceType": "security-group", "Tags": [{"Key": "Name", "Value": name}]}],
    )
    sg = created["GroupId"]
    assert ec2.describe_security_groups(GroupIds=[sg])["SecurityGroups"][0]["GroupName"] == name
    revoked = ec2.revoke_security_group_egress(
        GroupId=sg, IpPermissions=[{"IpProtocol": "-1", "FromPort": 0, "ToPort": 0, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    )
    assert revoked["Return"] is True
    assert group_rules(ec2, sg) == []

    # aws_vpc_security_group_ingress_rule: create.
    out = ec2.authorize_security_group_ingress(
        GroupId=sg,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "10.0.0.0/8", "Description": "web"}]}
        ],
        TagSpecifications=[{"ResourceType": "security-group-rule", "Tags": [{"Key": "Name", "Value": "web"}]}],
    )
    assert out["Return"] is True
    assert len(out["SecurityGroupRules"]) == 1
    added = out["SecurityGroupRules"][0]
    rule_id = added["SecurityGroupRuleId"]
    assert SGR_ID.match(rule_id)
    assert added["GroupId"] == sg
    assert added["GroupOwnerId"] == cloud.admin["account_id"]
    assert added["IsEgress"] is False
    assert (added["IpProtocol"], added["FromPort"], added["ToPort"]) == ("tcp", 80, 80)
    assert added["CidrIpv4"] == "10.0.0.0/8"
    assert added["Description"] == "web"
    assert added["Tags"] == [{"Key": "Name", "Value": "web"}]
    assert added["SecurityGroupRuleArn"].endswith(f":security-group-rule/{rule_id}")

    # refresh: the rule by id, as Read sets its state from it.
    read = rule(ec2, rule_id)
    assert {k: read[k] for k in ("SecurityGroupRuleId", "GroupId", "IsEgress", "IpProtocol", "FromPort", "ToPort",
                                 "CidrIpv4", "Description")} == {
        "SecurityGroupRuleId": rule_id, "GroupId": sg, "IsEgress": False, "IpProtocol": "tcp",
        "FromPort": 80, "ToPort": 80, "CidrIpv4": "10.0.0.0/8", "Description": "web",
    }

    # modify: the plan changed port, CIDR and description.
    modified = ec2.modify_security_group_rules(
        GroupId=sg,
        SecurityGroupRules=[{
            "SecurityGroupRuleId": rule_id,
            "SecurityGroupRule": {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8081,
                                  "CidrIpv4": "192.168.0.0/16", "Description": "app"},
        }],
    )
    assert modified["Return"] is True
    after = rule(ec2, rule_id)
    assert (after["FromPort"], after["ToPort"], after["CidrIpv4"], after["Description"]) == (
        8080, 8081, "192.168.0.0/16", "app")
    assert after["Tags"] == [{"Key": "Name", "Value": "web"}], "tags stay with the rule"
    perms = ec2.describe_security_groups(GroupIds=[sg])["SecurityGroups"][0]["IpPermissions"]
    assert [(p["FromPort"], p["ToPort"], [r["CidrIp"] for r in p["IpRanges"]]) for p in perms] == [
        (8080, 8081, ["192.168.0.0/16"])]

    # a referenced group instead of a CIDR (same VPC).
    default_sg = ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["default"]}, {"Name": "vpc-id", "Values": [vpc]}]
    )["SecurityGroups"][0]["GroupId"]
    ec2.modify_security_group_rules(
        GroupId=sg,
        SecurityGroupRules=[{"SecurityGroupRuleId": rule_id,
                             "SecurityGroupRule": {"IpProtocol": "-1", "ReferencedGroupId": default_sg}}],
    )
    by_group = rule(ec2, rule_id)
    assert by_group["IpProtocol"] == "-1" and "CidrIpv4" not in by_group
    assert by_group["ReferencedGroupInfo"]["GroupId"] == default_sg
    assert "Description" not in by_group

    # destroy: the rule by id, then the group.
    gone = ec2.revoke_security_group_ingress(GroupId=sg, SecurityGroupRuleIds=[rule_id])
    assert gone["Return"] is True
    assert error(ec2.describe_security_group_rules, SecurityGroupRuleIds=[rule_id])[0] == \
        "InvalidSecurityGroupRuleId.NotFound"
    ec2.delete_security_group(GroupId=sg)


def test_modify_security_group_rules_refusals_change_nothing(ec2):
    sg = ec2.create_security_group(GroupName=unique("mod"), Description="refusals")["GroupId"]
    out = ec2.authorize_security_group_ingress(
        GroupId=sg,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                        "IpRanges": [{"CidrIp": "10.0.0.0/8"}, {"CidrIp": "172.16.0.0/12"}]}],
    )
    first, second = (r["SecurityGroupRuleId"] for r in out["SecurityGroupRules"])
    before = sorted(group_rules(ec2, sg), key=lambda r: r["SecurityGroupRuleId"])

    def modify(rule_id, **fields):
        return error(ec2.modify_security_group_rules, GroupId=sg,
                     SecurityGroupRules=[{"SecurityGroupRuleId": rule_id, "SecurityGroupRule": fields}])

    code, message, status = modify(first, IpProtocol="tcp", FromPort=22, ToPort=22, CidrIpv4="172.16.0.0/12")
    assert (code, status) == ("InvalidPermission.Duplicate", 400)
    assert "already exists" in message
    assert modify("sgr-0123456789abcdef0", IpProtocol="tcp", FromPort=1, ToPort=1, CidrIpv4="1.1.1.1/32")[:1] == (
        "InvalidSecurityGroupRuleId.NotFound",)
    assert modify(first, IpProtocol="tcp", FromPort=80, ToPort=22, CidrIpv4="1.1.1.1/32")[0] == "InvalidParameterValue"
    assert modify(first, IpProtocol="tcp", FromPort=1, ToPort=1, CidrIpv4="1.1.1.1")[0] == "InvalidParameterValue"
    assert modify(first, IpProtocol="tcp", FromPort=1, ToPort=1)[0] == "MissingParameter"
    assert modify(first, IpProtocol="tcp", FromPort=1, ToPort=1, ReferencedGroupId="sg-0123456789abcdef0")[0] == \
        "InvalidGroup.NotFound"
    assert error(ec2.modify_security_group_rules, GroupId="sg-0123456789abcdef0", SecurityGroupRules=[
        {"SecurityGroupRuleId": first, "SecurityGroupRule": {"IpProtocol": "-1", "CidrIpv4": "0.0.0.0/0"}}])[0] == \
        "InvalidGroup.NotFound"
    # the other group's rule id is not a rule of this group
    other = ec2.create_security_group(GroupName=unique("other"), Description="other")["GroupId"]
    other_rule = group_rules(ec2, other)[0]["SecurityGroupRuleId"]
    assert modify(other_rule, IpProtocol="-1", CidrIpv4="0.0.0.0/0")[0] == "InvalidSecurityGroupRuleId.NotFound"
    assert sorted(group_rules(ec2, sg), key=lambda r: r["SecurityGroupRuleId"]) == before
    # two rules at once, swapping nothing into a clash
    ec2.modify_security_group_rules(GroupId=sg, SecurityGroupRules=[
        {"SecurityGroupRuleId": first, "SecurityGroupRule": {"IpProtocol": "udp", "FromPort": 53, "ToPort": 53,
                                                             "CidrIpv4": "10.0.0.0/8"}},
        {"SecurityGroupRuleId": second, "SecurityGroupRule": {"IpProtocol": "icmp", "FromPort": 8, "ToPort": -1,
                                                              "CidrIpv4": "172.16.0.0/12"}},
    ])
    now = {r["SecurityGroupRuleId"]: r for r in group_rules(ec2, sg)}
    assert (now[first]["IpProtocol"], now[first]["FromPort"]) == ("udp", 53)
    assert (now[second]["IpProtocol"], now[second]["FromPort"], now[second]["ToPort"]) == ("icmp", 8, -1)
    ec2.delete_security_group(GroupId=sg)
    ec2.delete_security_group(GroupId=other)


def test_update_rule_descriptions_ingress_and_egress(cloud, ec2):
    """Ansible's ec2_security_group updates descriptions with
    UpdateSecurityGroupRuleDescriptionsIngress/Egress (IpPermissions); the
    AWS CLI's --security-group-rule-descriptions names rules by id."""
    sg = ec2.create_security_group(GroupName=unique("desc"), Description="descriptions")["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=sg, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                                    "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "old"}]}])
    out = ec2.update_security_group_rule_descriptions_ingress(
        GroupId=sg, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                                    "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "https"}]}])
    assert out["Return"] is True
    ingress = [r for r in group_rules(ec2, sg) if not r["IsEgress"]]
    assert [r["Description"] for r in ingress] == ["https"]
    perms = ec2.describe_security_groups(GroupIds=[sg])["SecurityGroups"][0]["IpPermissions"]
    assert perms[0]["IpRanges"] == [{"CidrIp": "0.0.0.0/0", "Description": "https"}]

    egress = [r for r in group_rules(ec2, sg) if r["IsEgress"]][0]
    cli = AwsCli(cloud)
    cli.json("ec2", "update-security-group-rule-descriptions-egress", "--group-id", sg,
             "--security-group-rule-descriptions",
             f"SecurityGroupRuleId={egress['SecurityGroupRuleId']},Description=anywhere")
    assert rule(ec2, egress["SecurityGroupRuleId"])["Description"] == "anywhere"

    before = group_rules(ec2, sg)
    code, message, status = error(
        ec2.update_security_group_rule_descriptions_ingress,
        GroupId=sg, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                                    "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "x"},
                                                 {"CidrIp": "10.0.0.0/8", "Description": "y"}]}])
    assert (code, status) == ("InvalidPermission.NotFound", 400)
    # an egress rule is not an ingress rule
    assert error(ec2.update_security_group_rule_descriptions_ingress, GroupId=sg,
                 SecurityGroupRuleDescriptions=[{"SecurityGroupRuleId": egress["SecurityGroupRuleId"],
                                                 "Description": "z"}])[0] == "InvalidSecurityGroupRuleId.NotFound"
    assert group_rules(ec2, sg) == before
    ec2.delete_security_group(GroupId=sg)


# ------------------------------------------------------------ addresses


def test_terraform_eip_refresh_and_domain_name(cloud, ec2):
    """aws_eip's Read (internal/service/ec2/ec2_eip.go: DescribeAddresses,
    then findEIPDomainNameAttributeByAllocationID, i.e.
    DescribeAddressesAttribute with AllocationIds=[id] and
    Attribute=domain-name, exactly one item whose AllocationId matches,
    PtrRecord with the trailing dot trimmed) and aws_eip_domain_name
    (ec2_eip_domain_name.go: ModifyAddressAttribute, wait until
    PtrRecordUpdate is absent, read PtrRecord; delete with
    ResetAddressAttribute)."""
    alloc = ec2.allocate_address(Domain="vpc")
    alloc_id, ip = alloc["AllocationId"], alloc["PublicIp"]
    # refresh
    assert ec2.describe_addresses(AllocationIds=[alloc_id])["Addresses"][0]["PublicIp"] == ip
    attrs = ec2.describe_addresses_attribute(AllocationIds=[alloc_id], Attribute="domain-name")["Addresses"]
    assert len(attrs) == 1
    assert attrs[0]["AllocationId"] == alloc_id and attrs[0]["PublicIp"] == ip
    default = attrs[0]["PtrRecord"]
    assert default == f"ec2-{ip.replace('.', '-')}.{cloud.client().meta.region_name}.compute.mallee."
    assert "PtrRecordUpdate" not in attrs[0]

    # aws_eip_domain_name create
    out = ec2.modify_address_attribute(AllocationId=alloc_id, DomainName="Mail.Example.com")["Address"]
    assert (out["AllocationId"], out["PublicIp"], out["PtrRecord"]) == (alloc_id, ip, "mail.example.com.")
    assert "PtrRecordUpdate" not in out
    read = ec2.describe_addresses_attribute(AllocationIds=[alloc_id], Attribute="domain-name")["Addresses"][0]
    assert read["PtrRecord"] == "mail.example.com."
    # every elastic IP of the caller without AllocationIds, AWS CLI too
    other = ec2.allocate_address(Domain="vpc")["AllocationId"]
    listed = AwsCli(cloud).json("ec2", "describe-addresses-attribute", "--attribute", "domain-name")["Addresses"]
    assert {a["AllocationId"]: a["PtrRecord"] for a in listed if a["AllocationId"] in (alloc_id, other)} == {
        alloc_id: "mail.example.com.",
        other: f"ec2-{ec2.describe_addresses(AllocationIds=[other])['Addresses'][0]['PublicIp'].replace('.', '-')}"
               f".{cloud.client().meta.region_name}.compute.mallee.",
    }
    page = ec2.describe_addresses_attribute(Attribute="domain-name", MaxResults=1)
    assert len(page["Addresses"]) == 1 and page["NextToken"]

    # refusals change nothing
    for bad in ["localhost", "-bad.example.com", "a..b", "x" * 64 + ".com", "under_score.example.com"]:
        code, _, status = error(ec2.modify_address_attribute, AllocationId=alloc_id, DomainName=bad)
        assert (code, status) == ("InvalidParameterValue", 400), bad
    assert error(ec2.modify_address_attribute, AllocationId="eipalloc-0123456789abcdef0",
                 DomainName="a.example.com")[0] == "InvalidAllocationID.NotFound"
    assert error(ec2.modify_address_attribute, AllocationId="bogus", DomainName="a.example.com")[0] == \
        "InvalidAllocationID.Malformed"
    assert error(ec2.describe_addresses_attribute, AllocationIds=["eipalloc-0123456789abcdef0"],
                 Attribute="domain-name")[0] == "InvalidAllocationID.NotFound"
    assert error(ec2.reset_address_attribute, AllocationId=alloc_id, Attribute="bogus")[0] == "InvalidParameterValue"
    assert ec2.describe_addresses_attribute(AllocationIds=[alloc_id])["Addresses"][0]["PtrRecord"] == \
        "mail.example.com."

    # another account's elastic IP is out of reach
    stranger = cloud.client("ec2", creds=cloud.create_account())
    assert error(stranger.modify_address_attribute, AllocationId=alloc_id, DomainName="x.example.com")[0] == \
        "InvalidAllocationID.NotFound"
    assert stranger.describe_addresses_attribute(Attribute="domain-name")["Addresses"] == []

    # aws_eip_domain_name delete
    reset = ec2.reset_address_attribute(AllocationId=alloc_id, Attribute="domain-name")["Address"]
    assert reset["PtrRecord"] == default
    assert ec2.describe_addresses_attribute(AllocationIds=[alloc_id])["Addresses"][0]["PtrRecord"] == default
    ec2.release_address(AllocationId=alloc_id)
    ec2.release_address(AllocationId=other)


# ------------------------------------------------------------ instances


def test_instance_type_offerings_and_no_burstable_types(ec2, cloud):
    """Terraform's aws_ec2_instance_type_offerings data source and
    aws_instance (which asks DescribeInstanceCreditSpecifications only of
    burstable types)."""
    types = {t["InstanceType"] for t in ec2.describe_instance_types()["InstanceTypes"]}
    assert "t2.micro" in types
    t2 = ec2.describe_instance_types(InstanceTypes=["t2.micro"])["InstanceTypes"][0]
    assert t2["BurstablePerformanceSupported"] is False
    assert ec2.describe_instance_types(
        Filters=[{"Name": "burstable-performance-supported", "Values": ["true"]}])["InstanceTypes"] == []

    region = ec2.describe_instance_type_offerings()["InstanceTypeOfferings"]
    assert {o["InstanceType"] for o in region} == types
    assert {(o["LocationType"], o["Location"]) for o in region} == {("region", "mallee-1")}
    zones = ec2.describe_availability_zones()["AvailabilityZones"]
    by_zone = ec2.describe_instance_type_offerings(
        LocationType="availability-zone",
        Filters=[{"Name": "instance-type", "Values": ["t2.micro", "m1.*"]},
                 {"Name": "location", "Values": [zones[0]["ZoneName"]]}],
    )["InstanceTypeOfferings"]
    assert by_zone and all(o["Location"] == zones[0]["ZoneName"] and o["LocationType"] == "availability-zone"
                           for o in by_zone)
    assert {o["InstanceType"] for o in by_zone} == {t for t in types if t == "t2.micro" or t.startswith("m1.")}
    by_id = ec2.describe_instance_type_offerings(
        LocationType="availability-zone-id", Filters=[{"Name": "instance-type", "Values": ["t2.micro"]}]
    )["InstanceTypeOfferings"]
    assert {o["Location"] for o in by_id} == {z["ZoneId"] for z in zones}
    page = ec2.describe_instance_type_offerings(MaxResults=5)
    rest = ec2.describe_instance_type_offerings(MaxResults=1000, NextToken=page["NextToken"])
    assert len(page["InstanceTypeOfferings"]) + len(rest["InstanceTypeOfferings"]) == len(types)
    assert error(ec2.describe_instance_type_offerings, LocationType="outpost")[0] == "InvalidParameterValue"
    assert error(ec2.describe_instance_type_offerings, Filters=[{"Name": "bogus", "Values": ["x"]}])[0] == \
        "InvalidParameterValue"
    # awscli, as scripts use it
    out = AwsCli(cloud).json("ec2", "describe-instance-type-offerings", "--location-type", "availability-zone",
                             "--filters", "Name=instance-type,Values=t1.micro")
    assert {o["Location"] for o in out["InstanceTypeOfferings"]} == {z["ZoneName"] for z in zones}


def vpc_firewalls() -> str:
    """The bridge firewall of every VPC namespace on this machine, as nft
    lists it (what the node enforces on instances' taps)."""
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    out = []
    for line in names.splitlines():
        ns = line.split()[0] if line.split() else ""
        if not ns.startswith("mallee-v"):
            continue
        listed = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "table", "bridge", "mallee"],
                                capture_output=True, text=True)
        out.append(listed.stdout)
    return "\n".join(out)


def wait_firewall(present: str, absent: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    rules = ""
    while time.monotonic() < deadline:
        rules = vpc_firewalls()
        if present in rules and absent not in rules:
            return
        time.sleep(0.5)
    raise AssertionError(f"firewall lacks {present!r} or still has {absent!r}:\n{rules[-4000:]}")


IMDS_WATCH = """#!/bin/sh
(
last=""
while true; do
    if imds -1 meta-data/instance-id >/dev/null 2>&1; then now=OPEN; else now=CLOSED; fi
    if [ "$now" != "$last" ]; then echo "IMDS-V1-$now"; last=$now; fi
    sleep 2
done
) &
"""


def test_run_instances_tags_stop_protection_metadata_options(cloud, ec2):
    """The one instance of this module, launched as Ansible's ec2_instance
    launches (volume and network-interface TagSpecifications) and read as
    Terraform's aws_instance reads (disableApiStop, credit specification,
    GetPasswordData); ModifyInstanceMetadataOptions reaches its running
    metadata service: IMDSv1 answers the guest until HttpTokens=required;
    a rule of its security group changed by ModifySecurityGroupRules
    changes the firewall its node enforces."""
    def instance_count():
        return sum(len(r["Instances"]) for r in ec2.describe_instances()["Reservations"])

    before = instance_count()
    bad = [{"ResourceType": "bogus", "Tags": [{"Key": "a", "Value": "b"}]}]
    code, message, status = error(ec2.run_instances, ImageId=cloud.images["pv"], MinCount=1, MaxCount=1,
                                  InstanceType="t1.micro", TagSpecifications=bad)
    assert (code, status) == ("InvalidParameterValue", 400)
    assert message == "'bogus' is not a valid taggable resource type for this operation."
    assert instance_count() == before

    sg = ec2.create_security_group(GroupName=unique("enforced"), Description="enforced rule")["GroupId"]
    rule_id = ec2.authorize_security_group_ingress(
        GroupId=sg, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 47123, "ToPort": 47123,
                                    "IpRanges": [{"CidrIp": "10.9.0.0/16"}]}],
    )["SecurityGroupRules"][0]["SecurityGroupRuleId"]
    resp = ec2.run_instances(
        ImageId=cloud.images["pv"], MinCount=1, MaxCount=1, InstanceType="t1.micro", UserData=IMDS_WATCH,
        SecurityGroupIds=[sg],
        BlockDeviceMappings=[{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 1, "DeleteOnTermination": True}}],
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "tools"}]},
            {"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "tools-disk"},
                                                 {"Key": "backup", "Value": "daily"}]},
            {"ResourceType": "network-interface", "Tags": [{"Key": "Name", "Value": "tools-nic"}]},
        ],
    )
    iid = resp["Instances"][0]["InstanceId"]
    try:
        # tags on the volume and on the primary interface
        volumes = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [iid]}])["Volumes"]
        assert len(volumes) == 1
        assert sorted((t["Key"], t["Value"]) for t in volumes[0]["Tags"]) == [
            ("Name", "tools-disk"), ("backup", "daily")]
        assert ec2.describe_volumes(Filters=[{"Name": "tag:backup", "Values": ["daily"]}])["Volumes"][0][
            "VolumeId"] == volumes[0]["VolumeId"]
        inst = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
        assert inst["Tags"] == [{"Key": "Name", "Value": "tools"}]
        eni = inst["NetworkInterfaces"][0]["NetworkInterfaceId"]
        tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [eni]}])["Tags"]
        assert tags == [{"Key": "Name", "ResourceId": eni, "ResourceType": "network-interface",
                         "Value": "tools-nic"}]
        vol_tags = ec2.describe_tags(Filters=[{"Name": "resource-type", "Values": ["volume"]},
                                              {"Name": "resource-id", "Values": [volumes[0]["VolumeId"]]}])["Tags"]
        assert len(vol_tags) == 2
        ec2.create_tags(Resources=[eni], Tags=[{"Key": "team", "Value": "qa"}])
        assert len(ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [eni]}])["Tags"]) == 2

        # Terraform's aws_instance refresh reads these
        def stop_protected():
            return ec2.describe_instance_attribute(InstanceId=iid, Attribute="disableApiStop")["DisableApiStop"]

        assert stop_protected() == {"Value": False}
        credits = ec2.describe_instance_credit_specifications(InstanceIds=[iid])["InstanceCreditSpecifications"]
        assert credits == [{"InstanceId": iid, "CpuCredits": "standard"}]
        assert ec2.describe_instance_credit_specifications()["InstanceCreditSpecifications"] == []
        assert error(ec2.describe_instance_credit_specifications,
                     InstanceIds=["i-0123456789abcdef0"])[0] == "InvalidInstanceID.NotFound"
        password = ec2.get_password_data(InstanceId=iid)
        assert password["InstanceId"] == iid and password["PasswordData"] == ""
        assert password["Timestamp"]
        code, message, status = error(ec2.get_password_data, InstanceId="i-0123456789abcdef0")
        assert (code, status) == ("InvalidInstanceID.NotFound", 400)
        assert "i-0123456789abcdef0" in message
        assert error(ec2.get_password_data, InstanceId="bogus")[0] == "InvalidInstanceID.Malformed"

        wait_states(ec2, [iid], "running")
        wait_console(ec2, iid, "IMDS-V1-OPEN")

        # the node enforces the rule, then the rule as modified
        wait_firewall("tcp dport 47123", "tcp dport 47124")
        ec2.modify_security_group_rules(GroupId=sg, SecurityGroupRules=[{
            "SecurityGroupRuleId": rule_id,
            "SecurityGroupRule": {"IpProtocol": "tcp", "FromPort": 47124, "ToPort": 47124, "CidrIpv4": "10.8.0.0/16"},
        }])
        wait_firewall("tcp dport 47124", "tcp dport 47123")
        assert "10.8.0.0/16" in vpc_firewalls()

        # disableApiStop, honoured by StopInstances
        ec2.modify_instance_attribute(InstanceId=iid, DisableApiStop={"Value": True})
        assert stop_protected() == {"Value": True}
        code, message, status = error(ec2.stop_instances, InstanceIds=[iid])
        assert (code, status) == ("OperationNotPermitted", 400)
        assert message == (f"The instance '{iid}' may not be stopped. "
                           "Modify its 'disableApiStop' instance attribute and try again.")
        assert ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["State"]["Name"] == \
            "running"
        ec2.modify_instance_attribute(InstanceId=iid, Attribute="disableApiStop", Value="false")
        assert stop_protected() == {"Value": False}

        # metadata options: refusals change nothing, then IMDSv2 only
        assert error(ec2.modify_instance_metadata_options, InstanceId=iid, HttpPutResponseHopLimit=65)[0] == \
            "InvalidParameterValue"
        assert error(ec2.modify_instance_metadata_options, InstanceId=iid, HttpTokens="sometimes")[0] == \
            "InvalidParameterValue"
        assert error(ec2.modify_instance_metadata_options, InstanceId="i-0123456789abcdef0",
                     HttpTokens="required")[0] == "InvalidInstanceID.NotFound"
        options = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["MetadataOptions"]
        assert (options["HttpTokens"], options["HttpPutResponseHopLimit"]) == ("optional", 1)
        changed = ec2.modify_instance_metadata_options(InstanceId=iid, HttpTokens="required",
                                                       HttpPutResponseHopLimit=2)
        assert changed["InstanceId"] == iid
        assert changed["InstanceMetadataOptions"]["State"] == "pending"
        assert (changed["InstanceMetadataOptions"]["HttpTokens"],
                changed["InstanceMetadataOptions"]["HttpPutResponseHopLimit"],
                changed["InstanceMetadataOptions"]["HttpEndpoint"]) == ("required", 2, "enabled")
        options = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["MetadataOptions"]
        assert (options["HttpTokens"], options["HttpPutResponseHopLimit"]) == ("required", 2)
        wait_console(ec2, iid, "IMDS-V1-OPEN", "IMDS-V1-CLOSED", timeout=120)
    finally:
        ec2.terminate_instances(InstanceIds=[iid])
    wait_states(ec2, [iid], "terminated", timeout=120)
    deadline = time.monotonic() + 60
    while True:
        try:
            ec2.delete_security_group(GroupId=sg)
            break
        except ClientError as e:
            # the group is in use until the instance has gone
            assert e.response["Error"]["Code"] == "DependencyViolation"
            assert time.monotonic() < deadline
            time.sleep(1)
