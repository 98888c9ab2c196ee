"""Launch templates with boto3 against the session cloud: the calls
Terraform's aws_launch_template (internal/service/ec2/ec2_launch_template.go:
CreateLaunchTemplate, DescribeLaunchTemplates, DescribeLaunchTemplateVersions
of the default and latest versions, CreateLaunchTemplateVersion,
ModifyLaunchTemplate, DeleteLaunchTemplate) and Ansible's
ec2_launch_template make, versions and their numbering, AWS's errors, and
RunInstances from a template: the request's parameters win over the
template's, and the instances carry the aws:ec2launchtemplate:id and
:version tags Terraform's aws_instance reads back through DescribeTags.
The instances launched are terminated at once; none is waited for."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from conftest import unique
from computeutil import register_guest


@pytest.fixture(scope="module")
def images(server):
    return register_guest(server)


def error(call, **kwargs) -> tuple[str, int]:
    with pytest.raises(ClientError) as e:
        call(**kwargs)
    r = e.value.response
    assert r["ResponseMetadata"].get("RequestId"), r
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]


def default_group(ec2) -> str:
    return ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"]


def test_template_data_comes_back_exactly_as_given(ec2):
    """DescribeLaunchTemplateVersions answers the data CreateLaunchTemplate
    got, field for field and nothing more: Ansible's ec2_launch_template
    compares the two to decide whether a run changed anything."""
    group = default_group(ec2)
    data = {
        "ImageId": "ami-0123456789abcdef0",
        "InstanceType": "t2.micro",
        "KeyName": "some-key",
        "UserData": "IyEvYmluL3NoCmVjaG8gaGkK",
        "SecurityGroupIds": [group],
        "DisableApiTermination": True,
        "InstanceInitiatedShutdownBehavior": "terminate",
        "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 2},
        "BlockDeviceMappings": [
            {"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 2, "DeleteOnTermination": True, "VolumeType": "gp2"}},
        ],
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web"}]},
            {"ResourceType": "volume", "Tags": [{"Key": "team", "Value": "a"}]},
        ],
    }
    name = unique("lt")
    made = ec2.create_launch_template(
        LaunchTemplateName=name,
        VersionDescription="first",
        LaunchTemplateData=data,
        TagSpecifications=[{"ResourceType": "launch-template", "Tags": [{"Key": "owner", "Value": "me"}]}],
    )["LaunchTemplate"]
    assert made["LaunchTemplateId"].startswith("lt-")
    assert (made["LaunchTemplateName"], made["DefaultVersionNumber"], made["LatestVersionNumber"]) == (name, 1, 1)
    assert made["CreatedBy"].startswith("arn:aws:iam::")
    assert made["Tags"] == [{"Key": "owner", "Value": "me"}]
    version = ec2.describe_launch_template_versions(LaunchTemplateId=made["LaunchTemplateId"])[
        "LaunchTemplateVersions"]
    assert len(version) == 1
    v = version[0]
    assert (v["VersionNumber"], v["DefaultVersion"], v["VersionDescription"]) == (1, True, "first")
    assert v["LaunchTemplateData"] == data
    listed = ec2.describe_launch_templates(LaunchTemplateNames=[name])["LaunchTemplates"]
    assert [t["LaunchTemplateId"] for t in listed] == [made["LaunchTemplateId"]]
    assert listed[0]["Tags"] == [{"Key": "owner", "Value": "me"}]
    by_tag = ec2.describe_launch_templates(Filters=[{"Name": "tag:owner", "Values": ["me"]}])["LaunchTemplates"]
    assert made["LaunchTemplateId"] in [t["LaunchTemplateId"] for t in by_tag]
    # Tags work on templates as on any resource.
    ec2.create_tags(Resources=[made["LaunchTemplateId"]], Tags=[{"Key": "env", "Value": "test"}])
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [made["LaunchTemplateId"]]}])["Tags"]
    assert {(t["Key"], t["ResourceType"]) for t in tags} == {("owner", "launch-template"), ("env", "launch-template")}
    ec2.delete_launch_template(LaunchTemplateId=made["LaunchTemplateId"])


def test_versions_sources_defaults_and_deletion(ec2):
    """The sequence Terraform's aws_launch_template update makes: a new
    version from the latest, DescribeLaunchTemplateVersions of $Latest and
    $Default, ModifyLaunchTemplate to make it the default; then version
    deletion as Ansible does it."""
    name = unique("lt")
    tid = ec2.create_launch_template(
        LaunchTemplateName=name,
        LaunchTemplateData={"ImageId": "ami-0123456789abcdef0", "InstanceType": "t2.micro"},
    )["LaunchTemplate"]["LaunchTemplateId"]
    v2 = ec2.create_launch_template_version(
        LaunchTemplateId=tid, SourceVersion="1", LaunchTemplateData={"InstanceType": "m1.large"}
    )["LaunchTemplateVersion"]
    assert v2["VersionNumber"] == 2 and not v2["DefaultVersion"]
    assert v2["LaunchTemplateData"] == {"ImageId": "ami-0123456789abcdef0", "InstanceType": "m1.large"}
    v3 = ec2.create_launch_template_version(
        LaunchTemplateName=name, LaunchTemplateData={"KeyName": "k"}, VersionDescription="no source"
    )["LaunchTemplateVersion"]
    assert v3["VersionNumber"] == 3 and v3["LaunchTemplateData"] == {"KeyName": "k"}

    def numbers(**kw):
        return [v["VersionNumber"] for v in ec2.describe_launch_template_versions(LaunchTemplateId=tid, **kw)[
            "LaunchTemplateVersions"]]

    assert numbers() == [1, 2, 3]
    assert numbers(Versions=["$Latest"]) == [3]
    assert numbers(Versions=["$Default"]) == [1]
    assert numbers(MinVersion="2") == [2, 3]
    assert numbers(MaxVersion="2") == [1, 2]
    assert numbers(Filters=[{"Name": "instance-type", "Values": ["m1.large"]}]) == [2]
    # $Latest and $Default of every template, without naming one.
    everywhere = ec2.describe_launch_template_versions(Versions=["$Latest"])["LaunchTemplateVersions"]
    assert (tid, 3) in [(v["LaunchTemplateId"], v["VersionNumber"]) for v in everywhere]

    changed = ec2.modify_launch_template(LaunchTemplateId=tid, DefaultVersion="2")["LaunchTemplate"]
    assert (changed["DefaultVersionNumber"], changed["LatestVersionNumber"]) == (2, 3)
    assert numbers(Versions=["$Default"]) == [2]

    out = ec2.delete_launch_template_versions(LaunchTemplateId=tid, Versions=["2", "3", "7"])
    assert [v["VersionNumber"] for v in out["SuccessfullyDeletedLaunchTemplateVersions"]] == [3]
    failed = {v["VersionNumber"]: v["ResponseError"]["Code"] for v in out["UnsuccessfullyDeletedLaunchTemplateVersions"]}
    assert failed == {2: "launchTemplateVersionIsDefaultVersion", 7: "launchTemplateVersionDoesNotExist"}
    # A deleted version's number is not given again.
    v4 = ec2.create_launch_template_version(LaunchTemplateId=tid, LaunchTemplateData={"ImageId": "ami-1"})
    assert v4["LaunchTemplateVersion"]["VersionNumber"] == 4
    gone = ec2.delete_launch_template(LaunchTemplateName=name)["LaunchTemplate"]
    assert gone["LaunchTemplateId"] == tid
    assert error(ec2.describe_launch_templates, LaunchTemplateIds=[tid]) == ("InvalidLaunchTemplateId.NotFound", 400)


def test_refusals_change_nothing(ec2):
    name = unique("lt")
    tid = ec2.create_launch_template(
        LaunchTemplateName=name, LaunchTemplateData={"ImageId": "ami-0123456789abcdef0"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    assert error(ec2.create_launch_template, LaunchTemplateName=name, LaunchTemplateData={"ImageId": "ami-1"}) == (
        "InvalidLaunchTemplateName.AlreadyExistsException", 400)
    assert error(ec2.create_launch_template, LaunchTemplateName="bad name!", LaunchTemplateData={"ImageId": "ami-1"}) == (
        "InvalidLaunchTemplateName.MalformedException", 400)
    assert error(ec2.create_launch_template, LaunchTemplateName=unique("lt"),
                 LaunchTemplateData={"TagSpecifications": [{"ResourceType": "vpc", "Tags": [{"Key": "a", "Value": "b"}]}]}
                 )[0] == "InvalidParameterValue"
    assert error(ec2.create_launch_template, LaunchTemplateName=unique("lt"),
                 LaunchTemplateData={"UserData": "not base64!"})[0] == "InvalidParameterValue"
    assert error(ec2.describe_launch_templates, LaunchTemplateNames=["no-such-template"]) == (
        "InvalidLaunchTemplateName.NotFoundException", 400)
    assert error(ec2.describe_launch_templates, LaunchTemplateIds=["lt-nothex"]) == (
        "InvalidLaunchTemplateId.Malformed", 400)
    assert error(ec2.describe_launch_template_versions, LaunchTemplateId=tid, Versions=["9"]) == (
        "InvalidLaunchTemplateId.VersionNotFound", 400)
    assert error(ec2.modify_launch_template, LaunchTemplateId=tid, DefaultVersion="9") == (
        "InvalidLaunchTemplateId.VersionNotFound", 400)
    assert error(ec2.create_launch_template_version, LaunchTemplateId=tid, SourceVersion="5",
                 LaunchTemplateData={"ImageId": "ami-1"}) == ("InvalidLaunchTemplateId.VersionNotFound", 400)
    assert error(ec2.run_instances, MinCount=1, MaxCount=1,
                 LaunchTemplate={"LaunchTemplateName": "no-such-template"}) == (
        "InvalidLaunchTemplateName.NotFoundException", 400)
    after = ec2.describe_launch_templates(LaunchTemplateIds=[tid])["LaunchTemplates"][0]
    assert (after["DefaultVersionNumber"], after["LatestVersionNumber"]) == (1, 1)
    assert [t["LaunchTemplateName"] for t in ec2.describe_launch_templates()["LaunchTemplates"]].count(name) == 1
    ec2.delete_launch_template(LaunchTemplateId=tid)


def test_run_instances_from_a_template(ec2, images):
    """The request's parameters win over the template's; the template's
    fill in the rest; the instances carry the template's id and version as
    tags, found by DescribeTags' key filter as Terraform's aws_instance
    reads them."""
    key = unique("k")
    ec2.create_key_pair(KeyName=key)
    name = unique("lt")
    tid = ec2.create_launch_template(
        LaunchTemplateName=name,
        LaunchTemplateData={
            "ImageId": images["hvm"],
            "InstanceType": "t1.micro",
            "KeyName": key,
            "DisableApiStop": True,
            "TagSpecifications": [{"ResourceType": "instance", "Tags": [
                {"Key": "Name", "Value": "from-template"}, {"Key": "tier", "Value": "web"}]}],
        },
    )["LaunchTemplate"]["LaunchTemplateId"]
    ec2.create_launch_template_version(LaunchTemplateId=tid, SourceVersion="1",
                                       LaunchTemplateData={"InstanceType": "m1.small"})
    ids = []
    try:
        run = ec2.run_instances(
            MinCount=1, MaxCount=1,
            LaunchTemplate={"LaunchTemplateName": name, "Version": "$Latest"},
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "tier", "Value": "db"}]}],
        )
        ids = [i["InstanceId"] for i in run["Instances"]]
        i = run["Instances"][0]
        assert (i["ImageId"], i["InstanceType"], i["KeyName"]) == (images["hvm"], "m1.small", key)
        assert i["PrivateDnsNameOptions"] == {
            "HostnameType": "ip-name", "EnableResourceNameDnsARecord": False, "EnableResourceNameDnsAAAARecord": False}
        tags = {t["Key"]: t["Value"] for t in i["Tags"]}
        assert tags == {
            "Name": "from-template",
            "tier": "db",
            "aws:ec2launchtemplate:id": tid,
            "aws:ec2launchtemplate:version": "2",
        }
        found = ec2.describe_tags(Filters=[
            {"Name": "resource-id", "Values": ids},
            {"Name": "key", "Values": ["aws:ec2launchtemplate:id"]},
        ])["Tags"]
        assert [(t["ResourceId"], t["Value"]) for t in found] == [(ids[0], tid)]
        attr = ec2.describe_instance_attribute(InstanceId=ids[0], Attribute="disableApiStop")
        assert attr["DisableApiStop"]["Value"] is True
        # The default version (1) when none is named; a request's own
        # instance type wins.
        run = ec2.run_instances(MinCount=1, MaxCount=1, InstanceType="m1.medium",
                                LaunchTemplate={"LaunchTemplateId": tid})
        ids += [i["InstanceId"] for i in run["Instances"]]
        i = run["Instances"][0]
        assert i["InstanceType"] == "m1.medium"
        assert {t["Key"]: t["Value"] for t in i["Tags"]}["aws:ec2launchtemplate:version"] == "1"
        # Users may not remove the cloud's tags.
        assert error(ec2.delete_tags, Resources=[ids[0]], Tags=[{"Key": "aws:ec2launchtemplate:id"}])[0] in (
            "InvalidParameterValue", "InvalidTagKey.Malformed")
    finally:
        if ids:
            ec2.modify_instance_attribute(InstanceId=ids[0], DisableApiStop={"Value": False})
            ec2.terminate_instances(InstanceIds=ids)
        ec2.delete_launch_template(LaunchTemplateId=tid)
        ec2.delete_key_pair(KeyName=key)
