"""Security groups: Create/Delete/Describe, DescribeSecurityGroupRules,
Authorize/Revoke Ingress/Egress (IpPermissions and the flat euca2ools form)."""

import re

import pytest
from botocore.exceptions import ClientError

from conftest import assert_aws_error, unique

SG_ID = re.compile(r"^sg-[0-9a-f]{17}$")
SGR_ID = re.compile(r"^sgr-[0-9a-f]{17}$")


def code(exc_info):
    return exc_info.value.response["Error"]["Code"]


def default_vpc_id(ec2):
    return ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]


def group(ec2, group_id):
    return ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]


def flows(permissions):
    """IpPermissions as a comparable set of (protocol, from, to, peer)."""
    out = set()
    for p in permissions:
        for r in p.get("IpRanges", []):
            out.add((p["IpProtocol"], p.get("FromPort"), p.get("ToPort"), r["CidrIp"]))
        for g in p.get("UserIdGroupPairs", []):
            out.add((p["IpProtocol"], p.get("FromPort"), p.get("ToPort"), g["GroupId"]))
    return out


def rules_of(ec2, group_id):
    return ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])["SecurityGroupRules"]


@pytest.fixture
def sg(ec2):
    return ec2.create_security_group(GroupName=unique("grp"), Description="test group")["GroupId"]


# ---------------------------------------------------------------- default group


def test_default_group(ec2, server):
    vpc = default_vpc_id(ec2)
    groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["default"]}])["SecurityGroups"]
    assert len(groups) == 1
    d = groups[0]
    assert SG_ID.match(d["GroupId"])
    assert d["VpcId"] == vpc
    assert d["OwnerId"] == server.admin["account_id"]
    assert flows(d["IpPermissions"]) == {("-1", None, None, d["GroupId"])}
    assert d["IpPermissions"][0]["UserIdGroupPairs"][0]["UserId"] == server.admin["account_id"]
    assert flows(d["IpPermissionsEgress"]) == {("-1", None, None, "0.0.0.0/0")}
    # by name (default VPC)
    assert ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"] == d["GroupId"]
    with pytest.raises(ClientError) as e:
        ec2.delete_security_group(GroupId=d["GroupId"])
    assert code(e) == "CannotDelete"
    with pytest.raises(ClientError) as e:
        ec2.delete_security_group(GroupName="default")
    assert code(e) == "CannotDelete"
    with pytest.raises(ClientError) as e:
        ec2.create_security_group(GroupName="default", Description="no")
    assert code(e) == "InvalidGroup.Reserved"


# ---------------------------------------------------------------- create


def test_create_describe_delete(ec2):
    name = unique("web")
    resp = ec2.create_security_group(
        GroupName=name,
        Description="Web servers (public)",
        TagSpecifications=[{"ResourceType": "security-group", "Tags": [{"Key": "env", "Value": "test"}]}],
    )
    gid = resp["GroupId"]
    assert SG_ID.match(gid)
    assert resp["Tags"] == [{"Key": "env", "Value": "test"}]
    g = group(ec2, gid)
    assert g["GroupName"] == name
    assert g["Description"] == "Web servers (public)"
    assert g["VpcId"] == default_vpc_id(ec2)
    assert g["IpPermissions"] == []
    assert flows(g["IpPermissionsEgress"]) == {("-1", None, None, "0.0.0.0/0")}
    assert g["Tags"] == [{"Key": "env", "Value": "test"}]
    # lookups
    assert [x["GroupId"] for x in ec2.describe_security_groups(GroupNames=[name])["SecurityGroups"]] == [gid]
    for f in (
        {"Name": "group-name", "Values": [name]},
        {"Name": "group-id", "Values": [gid]},
        {"Name": "description", "Values": ["Web servers*"]},
        {"Name": "tag:env", "Values": ["test"]},
    ):
        got = [x["GroupId"] for x in ec2.describe_security_groups(Filters=[f])["SecurityGroups"]]
        assert gid in got, f
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [gid]}])["Tags"]
    assert [(t["ResourceType"], t["Key"]) for t in tags] == [("security-group", "env")]
    # duplicate name in the same VPC
    with pytest.raises(ClientError) as e:
        ec2.create_security_group(GroupName=name, Description="again")
    assert code(e) == "InvalidGroup.Duplicate"
    assert ec2.delete_security_group(GroupId=gid)
    with pytest.raises(ClientError) as e:
        ec2.describe_security_groups(GroupIds=[gid])
    assert code(e) == "InvalidGroup.NotFound"
    with pytest.raises(ClientError) as e:
        ec2.delete_security_group(GroupId=gid)
    assert code(e) == "InvalidGroup.NotFound"
    # the name is free again, and delete by name works
    ec2.create_security_group(GroupName=name, Description="again")
    ec2.delete_security_group(GroupName=name)
    with pytest.raises(ClientError) as e:
        ec2.describe_security_groups(GroupNames=[name])
    assert code(e) == "InvalidGroup.NotFound"


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"Action": "CreateSecurityGroup", "GroupName": "x"}, "MissingParameter"),
        ({"Action": "CreateSecurityGroup", "GroupDescription": "d"}, "MissingParameter"),
        ({"Action": "CreateSecurityGroup", "GroupName": "sg-123", "GroupDescription": "d"}, "InvalidParameterValue"),
        ({"Action": "CreateSecurityGroup", "GroupName": "n" * 256, "GroupDescription": "d"}, "InvalidParameterValue"),
        ({"Action": "CreateSecurityGroup", "GroupName": "bad\u00e9", "GroupDescription": "d"}, "InvalidParameterValue"),
        ({"Action": "CreateSecurityGroup", "GroupName": "ok", "GroupDescription": "d", "VpcId": "vpc-0123456789abcdef0"}, "InvalidVpcID.NotFound"),
        (
            {"Action": "CreateSecurityGroup", "GroupName": "ok", "GroupDescription": "d",
             "TagSpecification.1.ResourceType": "instance", "TagSpecification.1.Tag.1.Key": "k"},
            "InvalidParameterValue",
        ),
        ({"Action": "DeleteSecurityGroup"}, "MissingParameter"),
        ({"Action": "DeleteSecurityGroup", "GroupId": "sg-0123456789abcdef0"}, "InvalidGroup.NotFound"),
        ({"Action": "DeleteSecurityGroup", "GroupId": "web"}, "InvalidGroupId.Malformed"),
        ({"Action": "DescribeSecurityGroups", "GroupId.1": "sg-0123456789abcdef0"}, "InvalidGroup.NotFound"),
        ({"Action": "DescribeSecurityGroups", "GroupName.1": "no-such-group"}, "InvalidGroup.NotFound"),
        ({"Action": "DescribeSecurityGroups", "Filter.1.Name": "bogus", "Filter.1.Value.1": "x"}, "InvalidParameterValue"),
        ({"Action": "DescribeSecurityGroupRules", "SecurityGroupRuleId.1": "sgr-0123456789abcdef0"}, "InvalidSecurityGroupRuleId.NotFound"),
        ({"Action": "DescribeSecurityGroupRules", "Filter.1.Name": "bogus", "Filter.1.Value.1": "x"}, "InvalidParameterValue"),
    ],
)
def test_group_errors_change_nothing(raw, ec2, params, expected):
    before = ec2.describe_security_groups()["SecurityGroups"]
    resp = raw(params)
    assert_aws_error(resp, expected, 400)
    assert ec2.describe_security_groups()["SecurityGroups"] == before


def test_duplicate_group_names_allowed_across_accounts(server, ec2, other_account):
    other = server.client("ec2", creds=other_account)
    name = unique("shared")
    mine = ec2.create_security_group(GroupName=name, Description="d")["GroupId"]
    theirs = other.create_security_group(GroupName=name, Description="d")["GroupId"]
    assert mine != theirs
    # each account sees only its own groups
    assert {g["OwnerId"] for g in other.describe_security_groups()["SecurityGroups"]} == {other_account["account_id"]}
    assert mine not in {g["GroupId"] for g in other.describe_security_groups()["SecurityGroups"]}
    for call in (
        lambda: other.describe_security_groups(GroupIds=[mine]),
        lambda: other.delete_security_group(GroupId=mine),
        lambda: other.authorize_security_group_ingress(GroupId=mine, IpProtocol="tcp", FromPort=1, ToPort=1, CidrIp="1.1.1.1/32"),
        lambda: other.revoke_security_group_egress(GroupId=mine, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]),
        # a rule naming another account's group
        lambda: other.authorize_security_group_ingress(
            GroupId=theirs, IpPermissions=[{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": mine}]}]
        ),
        lambda: other.authorize_security_group_ingress(
            GroupId=theirs,
            IpPermissions=[{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": mine, "UserId": ec2.describe_security_groups(GroupIds=[mine])["SecurityGroups"][0]["OwnerId"]}]}],
        ),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert code(e) == "InvalidGroup.NotFound"
    assert group(ec2, mine)["IpPermissions"] == []
    assert flows(group(ec2, mine)["IpPermissionsEgress"]) == {("-1", None, None, "0.0.0.0/0")}
    assert group(other, theirs)["IpPermissions"] == []


# ---------------------------------------------------------------- authorize / revoke


def test_authorize_ip_permissions(ec2, sg):
    resp = ec2.authorize_security_group_ingress(
        GroupId=sg,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
             "IpRanges": [{"CidrIp": "10.0.0.0/8", "Description": "office"}, {"CidrIp": "192.168.1.77/24"}]},
            {"IpProtocol": "udp", "FromPort": 5000, "ToPort": 5100, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
            {"IpProtocol": "icmp", "FromPort": 8, "ToPort": -1, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
            {"IpProtocol": "50", "IpRanges": [{"CidrIp": "172.16.0.0/12"}]},
        ],
    )
    assert resp["Return"] is True
    rules = resp["SecurityGroupRules"]
    assert len(rules) == 5
    assert all(SGR_ID.match(r["SecurityGroupRuleId"]) and r["GroupId"] == sg and r["IsEgress"] is False for r in rules)
    by_cidr = {r["CidrIpv4"]: r for r in rules}
    assert by_cidr["10.0.0.0/8"]["Description"] == "office"
    assert "192.168.1.0/24" in by_cidr, "CIDRs are canonicalized"
    g = group(ec2, sg)
    assert flows(g["IpPermissions"]) == {
        ("tcp", 22, 22, "10.0.0.0/8"),
        ("tcp", 22, 22, "192.168.1.0/24"),
        ("udp", 5000, 5100, "0.0.0.0/0"),
        ("icmp", 8, -1, "0.0.0.0/0"),
        ("50", None, None, "172.16.0.0/12"),
    }
    tcp = [p for p in g["IpPermissions"] if p["IpProtocol"] == "tcp"]
    assert len(tcp) == 1, "rules with the same protocol and ports fold into one permission"
    assert {"CidrIp": "10.0.0.0/8", "Description": "office"} in tcp[0]["IpRanges"]
    # rules are listed and filterable
    listed = rules_of(ec2, sg)
    assert {r["SecurityGroupRuleId"] for r in listed} >= {r["SecurityGroupRuleId"] for r in rules}
    one = rules[0]["SecurityGroupRuleId"]
    got = ec2.describe_security_group_rules(SecurityGroupRuleIds=[one])["SecurityGroupRules"]
    assert [r["SecurityGroupRuleId"] for r in got] == [one]
    # filters over permissions
    for f in (
        {"Name": "ip-permission.from-port", "Values": ["22"]},
        {"Name": "ip-permission.cidr", "Values": ["172.16.0.0/12"]},
        {"Name": "ip-permission.protocol", "Values": ["udp"]},
        {"Name": "egress.ip-permission.cidr", "Values": ["0.0.0.0/0"]},
    ):
        assert sg in [x["GroupId"] for x in ec2.describe_security_groups(Filters=[f])["SecurityGroups"]], f
    assert sg not in [
        x["GroupId"] for x in ec2.describe_security_groups(Filters=[{"Name": "ip-permission.to-port", "Values": ["23"]}])["SecurityGroups"]
    ]


def test_duplicates_refused_all_or_nothing(ec2, sg):
    ec2.authorize_security_group_ingress(GroupId=sg, IpProtocol="tcp", FromPort=80, ToPort=80, CidrIp="0.0.0.0/0")
    with pytest.raises(ClientError) as e:
        ec2.authorize_security_group_ingress(
            GroupId=sg,
            IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
                {"IpProtocol": "6", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "different text"}]},
            ],
        )
    assert code(e) == "InvalidPermission.Duplicate"
    assert flows(group(ec2, sg)["IpPermissions"]) == {("tcp", 80, 80, "0.0.0.0/0")}
    # host bits set: same canonical rule, still a duplicate
    with pytest.raises(ClientError) as e:
        ec2.authorize_security_group_egress(GroupId=sg, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    assert code(e) == "InvalidPermission.Duplicate"


def test_source_groups(ec2, sg):
    other_name = unique("src")
    other = ec2.create_security_group(GroupName=other_name, Description="source")["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=sg,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": other, "Description": "app"}]},
            {"IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6379, "UserIdGroupPairs": [{"GroupName": other_name}]},
        ],
    )
    g = group(ec2, sg)
    assert flows(g["IpPermissions"]) == {("tcp", 5432, 5432, other), ("tcp", 6379, 6379, other)}
    pair = [p for p in g["IpPermissions"] if p["FromPort"] == 5432][0]["UserIdGroupPairs"][0]
    assert pair["Description"] == "app"
    assert pair["UserId"] == g["OwnerId"]
    rule = [r for r in rules_of(ec2, sg) if r.get("ReferencedGroupInfo")][0]
    assert rule["ReferencedGroupInfo"]["GroupId"] == other
    assert sg in [
        x["GroupId"]
        for x in ec2.describe_security_groups(Filters=[{"Name": "ip-permission.group-id", "Values": [other]}])["SecurityGroups"]
    ]
    assert sg in [
        x["GroupId"]
        for x in ec2.describe_security_groups(Filters=[{"Name": "ip-permission.group-name", "Values": [other_name]}])["SecurityGroups"]
    ]
    # a referenced group cannot be deleted
    with pytest.raises(ClientError) as e:
        ec2.delete_security_group(GroupId=other)
    assert code(e) == "DependencyViolation"
    ec2.revoke_security_group_ingress(
        GroupId=sg, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": other}]}]
    )
    with pytest.raises(ClientError) as e:
        ec2.delete_security_group(GroupId=other)
    assert code(e) == "DependencyViolation"
    ec2.revoke_security_group_ingress(GroupId=sg, IpProtocol="tcp", FromPort=6379, ToPort=6379, SourceSecurityGroupName=other_name)
    assert group(ec2, sg)["IpPermissions"] == []
    ec2.delete_security_group(GroupId=other)
    # unknown source group
    with pytest.raises(ClientError) as e:
        ec2.authorize_security_group_ingress(
            GroupId=sg, IpPermissions=[{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": "sg-0123456789abcdef0"}]}]
        )
    assert code(e) == "InvalidGroup.NotFound"


def test_revoke(ec2, sg):
    ec2.authorize_security_group_ingress(
        GroupId=sg,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}, {"CidrIp": "10.1.0.0/16"}]}],
    )
    resp = ec2.revoke_security_group_ingress(
        GroupId=sg, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}]
    )
    assert resp["Return"] is True
    assert not resp.get("UnknownIpPermissions")
    assert flows(group(ec2, sg)["IpPermissions"]) == {("tcp", 22, 22, "10.1.0.0/16")}
    # a rule that does not exist: success with return false and the unknown permission (default VPC behaviour)
    resp = ec2.revoke_security_group_ingress(
        GroupId=sg,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 23, "ToPort": 23, "IpRanges": [{"CidrIp": "10.1.0.0/16"}]}],
    )
    assert resp["Return"] is False
    unknown = resp["UnknownIpPermissions"]
    assert unknown[0]["IpProtocol"] == "tcp" and unknown[0]["FromPort"] == 23
    assert unknown[0]["IpRanges"] == [{"CidrIp": "10.1.0.0/16"}]
    assert flows(group(ec2, sg)["IpPermissions"]) == {("tcp", 22, 22, "10.1.0.0/16")}
    # by rule id
    rule = [r for r in rules_of(ec2, sg) if not r["IsEgress"]][0]["SecurityGroupRuleId"]
    ec2.revoke_security_group_ingress(GroupId=sg, SecurityGroupRuleIds=[rule])
    assert group(ec2, sg)["IpPermissions"] == []
    with pytest.raises(ClientError) as e:
        ec2.revoke_security_group_ingress(GroupId=sg, SecurityGroupRuleIds=[rule])
    assert code(e) == "InvalidSecurityGroupRuleId.NotFound"
    # egress: remove the allow-all, then nothing goes out
    ec2.revoke_security_group_egress(GroupId=sg, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    assert group(ec2, sg)["IpPermissionsEgress"] == []
    ec2.authorize_security_group_egress(
        GroupId=sg, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    )
    assert flows(group(ec2, sg)["IpPermissionsEgress"]) == {("tcp", 443, 443, "0.0.0.0/0")}
    assert [r["IsEgress"] for r in rules_of(ec2, sg)] == [True]


def test_legacy_flat_params_by_group_name(raw, ec2):
    name = unique("legacy")
    gid = ec2.create_security_group(GroupName=name, Description="euca2ools style")["GroupId"]
    resp = raw({"Action": "AuthorizeSecurityGroupIngress", "GroupName": name, "IpProtocol": "tcp",
                "FromPort": "22", "ToPort": "22", "CidrIp": "0.0.0.0/0"})
    assert resp.status == 200, resp.describe()
    assert [e.text for e in resp.find_all("return")] == ["true"]
    resp = raw({"Action": "AuthorizeSecurityGroupIngress", "GroupName": name, "IpProtocol": "icmp",
                "FromPort": "-1", "ToPort": "-1", "CidrIp": "10.0.0.0/8"})
    assert resp.status == 200, resp.describe()
    resp = raw({"Action": "AuthorizeSecurityGroupIngress", "GroupName": name,
                "SourceSecurityGroupName": "default", "SourceSecurityGroupOwnerId": ec2.describe_security_groups(GroupIds=[gid])["SecurityGroups"][0]["OwnerId"]})
    assert resp.status == 200, resp.describe()
    default_id = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"]
    assert flows(group(ec2, gid)["IpPermissions"]) == {
        ("tcp", 22, 22, "0.0.0.0/0"),
        ("icmp", -1, -1, "10.0.0.0/8"),
        ("-1", None, None, default_id),
    }
    resp = raw({"Action": "RevokeSecurityGroupIngress", "GroupName": name, "IpProtocol": "tcp",
                "FromPort": "22", "ToPort": "22", "CidrIp": "0.0.0.0/0"})
    assert resp.status == 200, resp.describe()
    assert ("tcp", 22, 22, "0.0.0.0/0") not in flows(group(ec2, gid)["IpPermissions"])


MALFORMED = [
    ({"IpProtocol": "tcp", "FromPort": "22", "ToPort": "22", "CidrIp": "10.0.0.0/33"}, "InvalidParameterValue"),
    ({"IpProtocol": "tcp", "FromPort": "22", "ToPort": "22", "CidrIp": "10.0.0.300/8"}, "InvalidParameterValue"),
    ({"IpProtocol": "tcp", "FromPort": "22", "ToPort": "22", "CidrIp": "10.0.0.0"}, "InvalidParameterValue"),
    ({"IpProtocol": "tcp", "FromPort": "80", "ToPort": "22", "CidrIp": "0.0.0.0/0"}, "InvalidParameterValue"),
    ({"IpProtocol": "tcp", "FromPort": "0", "ToPort": "70000", "CidrIp": "0.0.0.0/0"}, "InvalidParameterValue"),
    ({"IpProtocol": "tcp", "FromPort": "22", "CidrIp": "0.0.0.0/0"}, "InvalidParameterValue"),
    ({"IpProtocol": "icmp", "FromPort": "-1", "ToPort": "3", "CidrIp": "0.0.0.0/0"}, "InvalidParameterValue"),
    ({"IpProtocol": "icmp", "FromPort": "300", "ToPort": "0", "CidrIp": "0.0.0.0/0"}, "InvalidParameterValue"),
    ({"IpProtocol": "bogus", "CidrIp": "0.0.0.0/0"}, "InvalidParameterValue"),
    ({"IpProtocol": "300", "CidrIp": "0.0.0.0/0"}, "InvalidParameterValue"),
    ({"IpProtocol": "tcp", "FromPort": "22", "ToPort": "22"}, "InvalidPermission.Malformed"),
    ({}, "MissingParameter"),
    ({"IpPermissions.1.IpProtocol": "tcp", "IpPermissions.1.FromPort": "1", "IpPermissions.1.ToPort": "1",
      "IpPermissions.1.Ipv6Ranges.1.CidrIpv6": "::/0"}, "InvalidParameterValue"),
    ({"IpPermissions.1.IpProtocol": "tcp", "IpPermissions.1.FromPort": "1", "IpPermissions.1.ToPort": "1",
      "IpPermissions.1.IpRanges.1.CidrIp": "1.2.3.4/32", "CidrIp": "1.2.3.4/32"}, "InvalidParameterCombination"),
    ({"IpPermissions.1.IpProtocol": "tcp", "IpPermissions.1.FromPort": "1", "IpPermissions.1.ToPort": "1",
      "IpPermissions.1.IpRanges.1.CidrIp": "1.2.3.4/32",
      "IpPermissions.2.IpProtocol": "tcp", "IpPermissions.2.FromPort": "1", "IpPermissions.2.ToPort": "1",
      "IpPermissions.2.IpRanges.1.CidrIp": "nope"}, "InvalidParameterValue"),
    ({"IpPermissions.1.IpProtocol": "-1", "IpPermissions.1.Groups.1.GroupId": "sg-0123456789abcdef0"}, "InvalidGroup.NotFound"),
    ({"IpPermissions.1.IpProtocol": "-1", "IpPermissions.1.Groups.1.GroupId": "web"}, "InvalidGroupId.Malformed"),
]


@pytest.mark.parametrize("action", ["AuthorizeSecurityGroupIngress", "AuthorizeSecurityGroupEgress"])
@pytest.mark.parametrize("params, expected", MALFORMED)
def test_malformed_rules_change_nothing(raw, ec2, sg, action, params, expected):
    before = (group(ec2, sg), rules_of(ec2, sg))
    resp = raw({"Action": action, "GroupId": sg, **params})
    assert_aws_error(resp, expected, 400)
    assert (group(ec2, sg), rules_of(ec2, sg)) == before


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"GroupId": "sg-0123456789abcdef0"}, "InvalidGroup.NotFound"),
        ({"GroupId": "nonsense"}, "InvalidGroupId.Malformed"),
        ({"GroupName": "no-such-group"}, "InvalidGroup.NotFound"),
        ({}, "MissingParameter"),
    ],
)
def test_unknown_target_group(raw, params, expected):
    resp = raw({"Action": "AuthorizeSecurityGroupIngress", "IpProtocol": "tcp", "FromPort": "1", "ToPort": "1",
                "CidrIp": "1.1.1.1/32", **params})
    assert_aws_error(resp, expected, 400)


def test_rule_tags(ec2, sg):
    resp = ec2.authorize_security_group_ingress(
        GroupId=sg,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
        TagSpecifications=[{"ResourceType": "security-group-rule", "Tags": [{"Key": "why", "Value": "demo"}]}],
    )
    rid = resp["SecurityGroupRules"][0]["SecurityGroupRuleId"]
    assert resp["SecurityGroupRules"][0]["Tags"] == [{"Key": "why", "Value": "demo"}]
    got = ec2.describe_security_group_rules(Filters=[{"Name": "tag:why", "Values": ["demo"]}])["SecurityGroupRules"]
    assert rid in [r["SecurityGroupRuleId"] for r in got]
    ec2.create_tags(Resources=[rid], Tags=[{"Key": "more", "Value": "x"}])
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [rid]}])["Tags"]
    assert sorted((t["ResourceType"], t["Key"]) for t in tags) == [("security-group-rule", "more"), ("security-group-rule", "why")]


def test_describe_pagination(ec2):
    made = [ec2.create_security_group(GroupName=unique("page"), Description="p")["GroupId"] for _ in range(6)]
    seen = []
    for page in ec2.get_paginator("describe_security_groups").paginate(PaginationConfig={"PageSize": 5}):
        assert len(page["SecurityGroups"]) <= 5
        seen.extend(g["GroupId"] for g in page["SecurityGroups"])
    assert len(seen) == len(set(seen))
    assert set(made) <= set(seen)
    for gid in made:
        ec2.delete_security_group(GroupId=gid)


def test_awscli_round_trip(aws_cli):
    name = unique("cli")
    gid = aws_cli.json("ec2", "create-security-group", "--group-name", name, "--description", "from the cli")["GroupId"]
    aws_cli.json("ec2", "authorize-security-group-ingress", "--group-id", gid, "--protocol", "tcp", "--port", "22", "--cidr", "203.0.113.0/24")
    out = aws_cli.json("ec2", "describe-security-groups", "--group-ids", gid)
    perms = out["SecurityGroups"][0]["IpPermissions"]
    assert flows(perms) == {("tcp", 22, 22, "203.0.113.0/24")}
    aws_cli.json("ec2", "revoke-security-group-ingress", "--group-id", gid, "--protocol", "tcp", "--port", "22", "--cidr", "203.0.113.0/24")
    out = aws_cli.json("ec2", "describe-security-groups", "--group-names", name)
    assert out["SecurityGroups"][0]["IpPermissions"] == []
    proc = aws_cli.run("ec2", "delete-security-group", "--group-id", "sg-0123456789abcdef0", check=False)
    assert proc.returncode != 0 and "InvalidGroup.NotFound" in proc.stderr
    aws_cli.run("ec2", "delete-security-group", "--group-id", gid)


def test_dry_run(ec2):
    with pytest.raises(ClientError) as e:
        ec2.create_security_group(GroupName=unique("dry"), Description="d", DryRun=True)
    assert code(e) == "DryRunOperation"
