"""Default VPC and subnets: DescribeVpcs, DescribeSubnets, DescribeAccountAttributes default-vpc."""

import ipaddress
import re
import threading

import pytest
from botocore.exceptions import ClientError

from conftest import REGION, ZONE, unique

VPC_ID = re.compile(r"^vpc-[0-9a-f]{17}$")
SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{17}$")
SG_ID = re.compile(r"^sg-[0-9a-f]{17}$")


def default_vpc(ec2):
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    assert len(vpcs) == 1, vpcs
    return vpcs[0]


def error_code(exc_info):
    return exc_info.value.response["Error"]["Code"]


def test_default_vpc_shape(ec2, server):
    vpc = default_vpc(ec2)
    assert VPC_ID.match(vpc["VpcId"]), vpc["VpcId"]
    assert vpc["CidrBlock"] == "172.31.0.0/16"
    assert vpc["IsDefault"] is True
    assert vpc["State"] == "available"
    assert vpc["OwnerId"] == server.admin["account_id"]
    assert vpc["InstanceTenancy"] == "default"
    assert vpc["DhcpOptionsId"] == "default"
    assoc = vpc["CidrBlockAssociationSet"]
    assert [a["CidrBlock"] for a in assoc] == ["172.31.0.0/16"]
    assert assoc[0]["CidrBlockState"]["State"] == "associated"
    # the other spelling of the filter, and the hyphenated one
    assert ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"] == [vpc]
    assert ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["false"]}])["Vpcs"] == []
    assert ec2.describe_vpcs(VpcIds=[vpc["VpcId"]])["Vpcs"] == [vpc]
    assert ec2.describe_vpcs(Filters=[{"Name": "cidr", "Values": ["172.31.*"]}])["Vpcs"] == [vpc]


def test_default_vpc_is_stable(ec2):
    ids = {default_vpc(ec2)["VpcId"] for _ in range(3)}
    assert len(ids) == 1


def test_account_attribute_names_default_vpc(ec2):
    attrs = ec2.describe_account_attributes(AttributeNames=["default-vpc"])["AccountAttributes"]
    assert [a["AttributeName"] for a in attrs] == ["default-vpc"]
    assert attrs[0]["AttributeValues"][0]["AttributeValue"] == default_vpc(ec2)["VpcId"]


def test_default_subnets(ec2, server):
    vpc = default_vpc(ec2)
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]]
    zone_ids = {z["ZoneName"]: z["ZoneId"] for z in ec2.describe_availability_zones()["AvailabilityZones"]}
    subnets = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    assert sorted(s["AvailabilityZone"] for s in subnets) == sorted(zones)
    for s in subnets:
        i = zones.index(s["AvailabilityZone"])
        assert SUBNET_ID.match(s["SubnetId"])
        assert s["VpcId"] == vpc["VpcId"]
        assert s["CidrBlock"] == f"172.31.{16 * i}.0/20"
        assert ipaddress.ip_network(s["CidrBlock"]).subnet_of(ipaddress.ip_network(vpc["CidrBlock"]))
        assert s["DefaultForAz"] is True
        assert s["MapPublicIpOnLaunch"] is True
        assert s["State"] == "available"
        assert s["AvailabilityZoneId"] == zone_ids[s["AvailabilityZone"]]
        assert s["OwnerId"] == server.admin["account_id"]
        assert s["SubnetArn"] == f"arn:aws:ec2:{REGION}:{server.admin['account_id']}:subnet/{s['SubnetId']}"
        assert s["AssignIpv6AddressOnCreation"] is False
        # 4096 addresses, 5 reserved, minus live instances of this account
        assert 0 < s["AvailableIpAddressCount"] <= 4091
    one = [s for s in subnets if s["AvailabilityZone"] == ZONE]
    assert len(one) == 1
    # AWS-style lookups scripts use
    for filters in (
        [{"Name": "availabilityZone", "Values": [ZONE]}, {"Name": "defaultForAz", "Values": ["true"]}],
        [{"Name": "availability-zone", "Values": [ZONE]}, {"Name": "vpc-id", "Values": [vpc["VpcId"]]}],
        [{"Name": "cidr-block", "Values": [one[0]["CidrBlock"]]}],
        [{"Name": "subnet-id", "Values": [one[0]["SubnetId"]]}],
    ):
        got = ec2.describe_subnets(Filters=filters)["Subnets"]
        assert [s["SubnetId"] for s in got] == [one[0]["SubnetId"]], filters
    assert ec2.describe_subnets(SubnetIds=[one[0]["SubnetId"]])["Subnets"][0]["SubnetId"] == one[0]["SubnetId"]


def test_unknown_ids_and_filters(ec2):
    with pytest.raises(ClientError) as e:
        ec2.describe_vpcs(VpcIds=["vpc-0123456789abcdef0"])
    assert error_code(e) == "InvalidVpcID.NotFound"
    with pytest.raises(ClientError) as e:
        ec2.describe_subnets(SubnetIds=["subnet-0123456789abcdef0"])
    assert error_code(e) == "InvalidSubnetID.NotFound"
    with pytest.raises(ClientError) as e:
        ec2.describe_vpcs(Filters=[{"Name": "bogus", "Values": ["x"]}])
    assert error_code(e) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        ec2.describe_subnets(Filters=[{"Name": "bogus", "Values": ["x"]}])
    assert error_code(e) == "InvalidParameterValue"


def test_tags_on_vpc_and_subnet(ec2):
    vpc = default_vpc(ec2)
    subnet = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"][0]
    value = unique("v")
    ec2.create_tags(Resources=[vpc["VpcId"], subnet["SubnetId"]], Tags=[{"Key": "purpose", "Value": value}])
    try:
        got = ec2.describe_vpcs(Filters=[{"Name": "tag:purpose", "Values": [value]}])["Vpcs"]
        assert [v["VpcId"] for v in got] == [vpc["VpcId"]]
        assert {"Key": "purpose", "Value": value} in got[0]["Tags"]
        got = ec2.describe_subnets(Filters=[{"Name": "tag:purpose", "Values": [value]}])["Subnets"]
        assert [s["SubnetId"] for s in got] == [subnet["SubnetId"]]
        types = {
            t["ResourceId"]: t["ResourceType"]
            for t in ec2.describe_tags(Filters=[{"Name": "value", "Values": [value]}])["Tags"]
        }
        assert types == {vpc["VpcId"]: "vpc", subnet["SubnetId"]: "subnet"}
    finally:
        ec2.delete_tags(Resources=[vpc["VpcId"], subnet["SubnetId"]], Tags=[{"Key": "purpose"}])


def test_accounts_have_their_own_default_vpc(server, ec2, other_account):
    other = server.client("ec2", creds=other_account)
    mine = default_vpc(ec2)
    theirs = default_vpc(other)
    assert mine["VpcId"] != theirs["VpcId"]
    assert theirs["OwnerId"] == other_account["account_id"]
    assert theirs["CidrBlock"] == "172.31.0.0/16"
    # neither sees the other's
    with pytest.raises(ClientError) as e:
        other.describe_vpcs(VpcIds=[mine["VpcId"]])
    assert error_code(e) == "InvalidVpcID.NotFound"
    mine_subnets = {s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]}
    their_subnets = {s["SubnetId"] for s in other.describe_subnets()["Subnets"]}
    assert mine_subnets and their_subnets and not (mine_subnets & their_subnets)
    with pytest.raises(ClientError) as e:
        other.create_tags(Resources=[mine["VpcId"]], Tags=[{"Key": "k", "Value": "v"}])
    assert error_code(e) == "InvalidVpcID.NotFound"


def test_first_requests_race_to_one_default_vpc(server):
    creds = server.create_account()
    clients = [server.client("ec2", creds=creds) for _ in range(6)]
    seen, errors = [], []

    def call(c):
        try:
            seen.append(c.describe_account_attributes(AttributeNames=["default-vpc"])["AccountAttributes"][0]["AttributeValues"][0]["AttributeValue"])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(set(seen)) == 1, seen
    vpcs = clients[0].describe_vpcs()["Vpcs"]
    assert [v["VpcId"] for v in vpcs] == seen[:1]
    groups = clients[0].describe_security_groups(Filters=[{"Name": "group-name", "Values": ["default"]}])["SecurityGroups"]
    assert len(groups) == 1 and SG_ID.match(groups[0]["GroupId"])


def test_default_vpc_survives_restart(mallee_factory):
    srv = mallee_factory("vpcrestart")
    ec2 = srv.client("ec2")
    vpc = default_vpc(ec2)
    subnets = sorted(s["SubnetId"] for s in ec2.describe_subnets()["Subnets"])
    group = ec2.create_security_group(GroupName="kept", Description="kept across restart")["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group, IpProtocol="tcp", FromPort=22, ToPort=22, CidrIp="10.0.0.0/8")
    srv.restart()
    ec2 = srv.client("ec2")
    assert default_vpc(ec2)["VpcId"] == vpc["VpcId"]
    assert sorted(s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]) == subnets
    sg = ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"][0]
    assert [(p["IpProtocol"], p["FromPort"], [r["CidrIp"] for r in p["IpRanges"]]) for p in sg["IpPermissions"]] == [
        ("tcp", 22, ["10.0.0.0/8"])
    ]


def test_awscli_describe(aws_cli, ec2):
    vpc = default_vpc(ec2)
    out = aws_cli.json("ec2", "describe-vpcs", "--filters", "Name=isDefault,Values=true")
    assert [v["VpcId"] for v in out["Vpcs"]] == [vpc["VpcId"]]
    out = aws_cli.json("ec2", "describe-subnets", "--filters", f"Name=vpc-id,Values={vpc['VpcId']}", "Name=default-for-az,Values=true")
    assert out["Subnets"] and all(s["VpcId"] == vpc["VpcId"] for s in out["Subnets"])
