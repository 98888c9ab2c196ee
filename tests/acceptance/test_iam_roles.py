"""Managed policies, roles and STS with boto3 against the session server:
policy versions decide what their holders may do, AssumeRole across
accounts is allowed by the role's trust policy alone and gives credentials
for that account's resources only, session credentials act as their user,
and a deleted role's sessions stop at once."""

import json
import uuid

import pytest
from botocore.exceptions import ClientError

from test_iam import code_of, new_user, status_of


@pytest.fixture
def iam(server):
    return server.client("iam")


def doc(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action, resource="*") -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource}


def session_creds(c: dict) -> dict:
    return {"access_key_id": c["AccessKeyId"], "secret_access_key": c["SecretAccessKey"],
            "session_token": c["SessionToken"]}


def client_with(server, service: str, creds: dict):
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        region_name="mallee-1",
        endpoint_url=server.endpoint,
        aws_access_key_id=creds["access_key_id"],
        aws_secret_access_key=creds["secret_access_key"],
        aws_session_token=creds.get("session_token"),
        config=Config(retries={"total_max_attempts": 1}),
    )


def test_managed_policy_versions_decide_for_their_holders(server, iam):
    account = server.admin["account_id"]
    name = f"p-{uuid.uuid4().hex[:6]}"
    policy = iam.create_policy(PolicyName=name, Path="/team/", PolicyDocument=doc(allow("ec2:DescribeRegions")),
                               Description="regions")["Policy"]
    arn = policy["Arn"]
    assert arn == f"arn:aws:iam::{account}:policy/team/{name}"
    assert (policy["DefaultVersionId"], policy["AttachmentCount"]) == ("v1", 0)
    user, creds = new_user(iam)
    ec2 = server.client("ec2", creds=creds)
    with pytest.raises(ClientError) as e:
        ec2.describe_regions()
    assert code_of(e) == "UnauthorizedOperation"

    group = f"g-{uuid.uuid4().hex[:6]}"
    iam.create_group(GroupName=group)
    iam.add_user_to_group(GroupName=group, UserName=user)
    iam.attach_group_policy(GroupName=group, PolicyArn=arn)
    ec2.describe_regions()
    assert [p["PolicyArn"] for p in iam.list_attached_group_policies(GroupName=group)["AttachedPolicies"]] == [arn]
    entities = iam.list_entities_for_policy(PolicyArn=arn)
    assert [g["GroupName"] for g in entities["PolicyGroups"]] == [group]
    assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == 1
    assert arn in [p["Arn"] for p in iam.list_policies(Scope="Local", OnlyAttached=True)["Policies"]]

    # A new default version takes the grant away; the old one brings it back.
    v2 = iam.create_policy_version(PolicyArn=arn, PolicyDocument=doc(allow("ec2:DescribeAvailabilityZones")),
                                   SetAsDefault=True)["PolicyVersion"]
    assert (v2["VersionId"], v2["IsDefaultVersion"]) == ("v2", True)
    with pytest.raises(ClientError) as e:
        ec2.describe_regions()
    assert code_of(e) == "UnauthorizedOperation"
    ec2.describe_availability_zones()
    got = iam.get_policy_version(PolicyArn=arn, VersionId="v1")["PolicyVersion"]
    assert json.loads(got["Document"]) if isinstance(got["Document"], str) else got["Document"]
    iam.set_default_policy_version(PolicyArn=arn, VersionId="v1")
    ec2.describe_regions()
    assert [(v["VersionId"], v["IsDefaultVersion"]) for v in iam.list_policy_versions(PolicyArn=arn)["Versions"]] \
        == [("v2", False), ("v1", True)]
    with pytest.raises(ClientError) as e:
        iam.delete_policy_version(PolicyArn=arn, VersionId="v1")
    assert code_of(e) == "DeleteConflict"
    for _ in range(3):
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=doc(allow("ec2:DescribeTags")))
    with pytest.raises(ClientError) as e:
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=doc(allow("ec2:DescribeTags")))
    assert (code_of(e), status_of(e)) == ("LimitExceeded", 409)
    with pytest.raises(ClientError) as e:
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(
            {"Version": "2008-10-17", "Statement": [allow("ec2:*")]}))
    assert code_of(e) == "MalformedPolicyDocument"

    with pytest.raises(ClientError) as e:
        iam.delete_policy(PolicyArn=arn)
    assert code_of(e) == "DeleteConflict"
    iam.detach_group_policy(GroupName=group, PolicyArn=arn)
    with pytest.raises(ClientError) as e:
        ec2.describe_regions()
    assert code_of(e) == "UnauthorizedOperation"
    with pytest.raises(ClientError) as e:
        iam.delete_policy(PolicyArn=arn)
    assert code_of(e) == "DeleteConflict", "versions other than the default remain"
    for v in iam.list_policy_versions(PolicyArn=arn)["Versions"]:
        if not v["IsDefaultVersion"]:
            iam.delete_policy_version(PolicyArn=arn, VersionId=v["VersionId"])
    iam.delete_policy(PolicyArn=arn)
    with pytest.raises(ClientError) as e:
        iam.get_policy(PolicyArn=arn)
    assert (code_of(e), status_of(e)) == ("NoSuchEntity", 404)
    # Another account's policy does not exist for this one.
    with pytest.raises(ClientError) as e:
        iam.attach_user_policy(UserName=user, PolicyArn="arn:aws:iam::123456789012:policy/theirs")
    assert code_of(e) == "NoSuchEntity"


def test_assume_role_across_accounts_reads_that_bucket_only(server, iam, other_account):
    """Account B trusts account A; A's admin assumes B's role and reads B's
    bucket, and nothing else of B's; a user of A without sts:AssumeRole,
    and a third account, are refused."""
    a = server.admin["account_id"]
    b_iam = server.client("iam", creds=other_account)
    b_s3 = server.client("s3", creds=other_account)
    shared, private = f"b-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}"
    for bucket in (shared, private):
        b_s3.create_bucket(Bucket=bucket)
        b_s3.put_object(Bucket=bucket, Key="report.txt", Body=bucket.encode())
    role = f"reader-{uuid.uuid4().hex[:6]}"
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{a}:root"}, "Action": "sts:AssumeRole"}]})
    made = b_iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust, MaxSessionDuration=7200)["Role"]
    assert made["Arn"] == f"arn:aws:iam::{other_account['account_id']}:role/{role}"
    assert made["RoleId"].startswith("AROA") and made["MaxSessionDuration"] == 7200
    b_iam.put_role_policy(RoleName=role, PolicyName="read", PolicyDocument=doc(
        allow(["s3:GetObject", "s3:ListBucket"], [f"arn:aws:s3:::{shared}", f"arn:aws:s3:::{shared}/*"])))

    sts = server.client("sts")
    assumed = sts.assume_role(RoleArn=made["Arn"], RoleSessionName="nightly", DurationSeconds=900)
    assert assumed["AssumedRoleUser"]["Arn"] == \
        f"arn:aws:sts::{other_account['account_id']}:assumed-role/{role}/nightly"
    assert assumed["AssumedRoleUser"]["AssumedRoleId"] == f"{made['RoleId']}:nightly"
    creds = session_creds(assumed["Credentials"])
    assert creds["access_key_id"].startswith("ASIA")
    who = client_with(server, "sts", creds).get_caller_identity()
    assert (who["Account"], who["Arn"]) == (other_account["account_id"], assumed["AssumedRoleUser"]["Arn"])
    s3 = client_with(server, "s3", creds)
    assert s3.get_object(Bucket=shared, Key="report.txt")["Body"].read() == shared.encode()
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=shared)["Contents"]] == ["report.txt"]
    for call in (lambda: s3.get_object(Bucket=private, Key="report.txt"),
                 lambda: s3.put_object(Bucket=shared, Key="x", Body=b"x")):
        with pytest.raises(ClientError) as e:
            call()
        assert code_of(e) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        client_with(server, "ec2", creds).describe_instances()
    assert code_of(e) == "UnauthorizedOperation"
    # A role session is no user.
    with pytest.raises(ClientError) as e:
        client_with(server, "iam", creds).get_user()
    assert code_of(e) in ("ValidationError", "AccessDenied")
    # The session token is required with the temporary key.
    bare = dict(creds)
    bare.pop("session_token")
    with pytest.raises(ClientError) as e:
        client_with(server, "sts", bare).get_caller_identity()
    assert code_of(e) == "InvalidClientTokenId"
    # Too long for the role.
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=made["Arn"], RoleSessionName="long", DurationSeconds=7201)
    assert code_of(e) == "ValidationError"

    # A user of A without sts:AssumeRole is refused; so is a third account.
    _, plain = new_user(iam)
    with pytest.raises(ClientError) as e:
        server.client("sts", creds=plain).assume_role(RoleArn=made["Arn"], RoleSessionName="x1")
    assert (code_of(e), status_of(e)) == ("AccessDenied", 403)
    third = server.create_account()
    with pytest.raises(ClientError) as e:
        server.client("sts", creds=third).assume_role(RoleArn=made["Arn"], RoleSessionName="x2")
    assert code_of(e) == "AccessDenied"

    # Deleting the role ends its sessions at once.
    with pytest.raises(ClientError) as e:
        b_iam.delete_role(RoleName=role)
    assert code_of(e) == "DeleteConflict"
    b_iam.delete_role_policy(RoleName=role, PolicyName="read")
    b_iam.delete_role(RoleName=role)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=shared, Key="report.txt")
    assert code_of(e) == "AccessDenied"


def test_roles_and_trust_policies_as_iam_answers(server, iam):
    role = f"r-{uuid.uuid4().hex[:6]}"
    ec2_trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=ec2_trust, Tags=[{"Key": "app", "Value": "web"}])
    got = iam.get_role(RoleName=role)["Role"]
    assert got["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    assert iam.list_role_tags(RoleName=role)["Tags"] == [{"Key": "app", "Value": "web"}]
    with pytest.raises(ClientError) as e:
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=ec2_trust)
    assert code_of(e) == "EntityAlreadyExists"
    for bad in ("{", json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "sts:AssumeRole"}]})):
        with pytest.raises(ClientError) as e:
            iam.update_assume_role_policy(RoleName=role, PolicyDocument=bad)
        assert code_of(e) == "MalformedPolicyDocument"
    iam.update_role(RoleName=role, Description="web servers", MaxSessionDuration=3600)
    assert iam.get_role(RoleName=role)["Role"]["Description"] == "web servers"
    # Only EC2 may assume it: the account's admin may not.
    with pytest.raises(ClientError) as e:
        server.client("sts").assume_role(RoleArn=got["Arn"], RoleSessionName="me")
    assert code_of(e) == "AccessDenied"

    profile = f"ip-{uuid.uuid4().hex[:6]}"
    made = iam.create_instance_profile(InstanceProfileName=profile)["InstanceProfile"]
    assert made["InstanceProfileId"].startswith("AIPA") and made["Roles"] == []
    iam.add_role_to_instance_profile(InstanceProfileName=profile, RoleName=role)
    with pytest.raises(ClientError) as e:
        iam.add_role_to_instance_profile(InstanceProfileName=profile, RoleName=role)
    assert code_of(e) == "LimitExceeded"
    assert [r["RoleName"] for r in iam.get_instance_profile(InstanceProfileName=profile)["InstanceProfile"]["Roles"]] \
        == [role]
    assert [p["InstanceProfileName"] for p in iam.list_instance_profiles_for_role(RoleName=role)["InstanceProfiles"]] \
        == [profile]
    with pytest.raises(ClientError) as e:
        iam.delete_role(RoleName=role)
    assert code_of(e) == "DeleteConflict"
    with pytest.raises(ClientError) as e:
        iam.delete_instance_profile(InstanceProfileName=profile)
    assert code_of(e) == "DeleteConflict"
    iam.remove_role_from_instance_profile(InstanceProfileName=profile, RoleName=role)
    iam.delete_instance_profile(InstanceProfileName=profile)
    iam.untag_role(RoleName=role, TagKeys=["app"])
    iam.delete_role(RoleName=role)
    assert role not in [r["RoleName"] for r in iam.list_roles()["Roles"]]


def test_session_tokens_act_as_their_user(server, iam):
    user, creds = new_user(iam, {"Version": "2012-10-17", "Statement": [allow("ec2:DescribeRegions")]})
    sts = server.client("sts", creds=creds)
    token = sts.get_session_token(DurationSeconds=900)["Credentials"]
    session = session_creds(token)
    assert client_with(server, "sts", session).get_caller_identity()["Arn"].endswith(f":user/{user}")
    ec2 = client_with(server, "ec2", session)
    ec2.describe_regions()
    with pytest.raises(ClientError) as e:
        ec2.describe_availability_zones()
    assert code_of(e) == "UnauthorizedOperation"
    with pytest.raises(ClientError) as e:
        client_with(server, "sts", session).get_session_token()
    assert code_of(e) == "AccessDenied"
    # A wrong token with the right key is refused.
    forged = dict(session, session_token=session["session_token"][:-4] + "AAAA")
    with pytest.raises(ClientError) as e:
        client_with(server, "ec2", forged).describe_regions()
    assert code_of(e) == "AuthFailure"


def test_giving_instances_a_role_needs_pass_role(server, iam):
    """RunInstances and AssociateIamInstanceProfile with a profile need
    iam:PassRole on its role, on top of the EC2 action."""
    role = f"pr-{uuid.uuid4().hex[:6]}"
    arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))[
        "Role"]["Arn"]
    profile = f"pp-{uuid.uuid4().hex[:6]}"
    iam.create_instance_profile(InstanceProfileName=profile)
    iam.add_role_to_instance_profile(InstanceProfileName=profile, RoleName=role)
    user, creds = new_user(iam, {"Version": "2012-10-17", "Statement": [allow("ec2:*")]})
    ec2 = server.client("ec2", creds=creds)
    launch = dict(ImageId="ami-00000000", MinCount=1, MaxCount=1, InstanceType="t1.micro",
                  IamInstanceProfile={"Name": profile})
    with pytest.raises(ClientError) as e:
        ec2.run_instances(**launch)
    assert code_of(e) == "UnauthorizedOperation"
    with pytest.raises(ClientError) as e:
        ec2.associate_iam_instance_profile(InstanceId="i-00000000000000000", IamInstanceProfile={"Arn": profile})
    assert code_of(e) == "UnauthorizedOperation"
    # A launch template's profile is passed by whoever launches from it.
    template = server.client("ec2").create_launch_template(
        LaunchTemplateName=f"pt-{uuid.uuid4().hex[:6]}",
        LaunchTemplateData={"ImageId": "ami-00000000", "IamInstanceProfile": {"Name": profile}},
    )["LaunchTemplate"]["LaunchTemplateId"]
    from_template = dict(MinCount=1, MaxCount=1, LaunchTemplate={"LaunchTemplateId": template})
    with pytest.raises(ClientError) as e:
        ec2.run_instances(**from_template)
    assert code_of(e) == "UnauthorizedOperation"
    iam.put_user_policy(UserName=user, PolicyName="pass", PolicyDocument=doc(allow("iam:PassRole", arn)))
    # Let through: what is left is the image that does not exist.
    with pytest.raises(ClientError) as e:
        ec2.run_instances(**launch)
    assert code_of(e) == "InvalidAMIID.NotFound"
    with pytest.raises(ClientError) as e:
        ec2.run_instances(**from_template)
    assert code_of(e) == "InvalidAMIID.NotFound"
