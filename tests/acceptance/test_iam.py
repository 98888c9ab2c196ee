"""IAM and STS with boto3 and awscli against the session server: users,
groups, access keys and inline policies as AWS answers them, and every
request decided by the caller's policies (a user allowed only
`ec2:Describe*` can describe, cannot launch, cannot read a bucket of its
own account; an explicit Deny beats an Allow; leaving a group takes its
grant away at once)."""

import base64
import json
import uuid

import pytest
from botocore.exceptions import ClientError

DESCRIBE_ONLY = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "Look", "Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}],
}


def code_of(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def status_of(excinfo) -> int:
    return excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture
def iam(server):
    return server.client("iam")


def new_user(iam, policy: dict | None = None, **kw) -> tuple[str, dict]:
    """A user with one access key (and `policy` inline); returns its name
    and the key as the server fixture's clients take it."""
    name = f"u-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=name, **kw)
    if policy is not None:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return name, {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}


def test_users_keys_and_errors_as_iam_answers(server, iam):
    account = server.admin["account_id"]
    name = f"ci-{uuid.uuid4().hex[:6]}"
    made = iam.create_user(UserName=name, Path="/qa/", Tags=[{"Key": "team", "Value": "qa"}])["User"]
    assert made["Arn"] == f"arn:aws:iam::{account}:user/qa/{name}"
    assert made["UserId"].startswith("AIDA") and made["Path"] == "/qa/"
    with pytest.raises(ClientError) as e:
        iam.create_user(UserName=name)
    assert (code_of(e), status_of(e)) == ("EntityAlreadyExists", 409)
    with pytest.raises(ClientError) as e:
        iam.create_user(UserName="bad name")
    assert code_of(e) == "ValidationError"
    assert name in [u["UserName"] for u in iam.list_users(PathPrefix="/qa/")["Users"]]
    assert name not in [u["UserName"] for u in iam.list_users(PathPrefix="/ops/")["Users"]]
    assert iam.list_user_tags(UserName=name)["Tags"] == [{"Key": "team", "Value": "qa"}]

    k1 = iam.create_access_key(UserName=name)["AccessKey"]
    k2 = iam.create_access_key(UserName=name)["AccessKey"]
    assert k1["AccessKeyId"].startswith("AKIA") and len(k1["SecretAccessKey"]) == 40
    with pytest.raises(ClientError) as e:
        iam.create_access_key(UserName=name)
    assert (code_of(e), status_of(e)) == ("LimitExceeded", 409)
    listed = iam.list_access_keys(UserName=name)["AccessKeyMetadata"]
    assert sorted(k["AccessKeyId"] for k in listed) == sorted([k1["AccessKeyId"], k2["AccessKeyId"]])
    assert all("SecretAccessKey" not in k for k in listed)

    # The user's own key works (GetCallerIdentity needs no permission),
    # then stops at once when made inactive.
    creds = {"access_key_id": k1["AccessKeyId"], "secret_access_key": k1["SecretAccessKey"]}
    who = server.client("sts", creds=creds).get_caller_identity()
    assert (who["Arn"], who["Account"]) == (made["Arn"], account)
    used = iam.get_access_key_last_used(AccessKeyId=k1["AccessKeyId"])
    assert used["UserName"] == name and used["AccessKeyLastUsed"]["ServiceName"] == "sts"
    iam.update_access_key(UserName=name, AccessKeyId=k1["AccessKeyId"], Status="Inactive")
    with pytest.raises(ClientError) as e:
        server.client("sts", creds=creds).get_caller_identity()
    assert code_of(e) == "InvalidClientTokenId"

    # Rename: the keys follow the user.
    iam.update_user(UserName=name, NewUserName=name + "-x")
    with pytest.raises(ClientError) as e:
        iam.get_user(UserName=name)
    assert (code_of(e), status_of(e)) == ("NoSuchEntity", 404)
    name += "-x"
    assert len(iam.list_access_keys(UserName=name)["AccessKeyMetadata"]) == 2

    with pytest.raises(ClientError) as e:
        iam.delete_user(UserName=name)
    assert (code_of(e), status_of(e)) == ("DeleteConflict", 409)
    for k in (k1, k2):
        iam.delete_access_key(UserName=name, AccessKeyId=k["AccessKeyId"])
    with pytest.raises(ClientError) as e:
        iam.delete_access_key(UserName=name, AccessKeyId=k1["AccessKeyId"])
    assert code_of(e) == "NoSuchEntity"
    iam.delete_user(UserName=name)
    assert name not in [u["UserName"] for u in iam.list_users()["Users"]]


def test_groups_and_inline_policies(server, iam):
    user, _ = new_user(iam)
    group = f"g-{uuid.uuid4().hex[:6]}"
    g = iam.create_group(GroupName=group)["Group"]
    assert g["GroupId"].startswith("AGPA") and g["Arn"].endswith(f":group/{group}")
    iam.add_user_to_group(GroupName=group, UserName=user)
    assert [x["GroupName"] for x in iam.list_groups_for_user(UserName=user)["Groups"]] == [group]
    assert [u["UserName"] for u in iam.get_group(GroupName=group)["Users"]] == [user]
    with pytest.raises(ClientError) as e:
        iam.delete_group(GroupName=group)
    assert code_of(e) == "DeleteConflict"

    doc = json.dumps(DESCRIBE_ONLY)
    iam.put_group_policy(GroupName=group, PolicyName="look", PolicyDocument=doc)
    assert iam.list_group_policies(GroupName=group)["PolicyNames"] == ["look"]
    assert iam.get_group_policy(GroupName=group, PolicyName="look")["PolicyDocument"] == DESCRIBE_ONLY
    # A malformed document is refused with IAM's reason and stores nothing.
    for bad, reason in [
        ("{not json", "Syntax errors in policy."),
        (json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:*"}]}), ""),
        (json.dumps({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*",
                                    "Principal": "*"}]}), "principal"),
    ]:
        with pytest.raises(ClientError) as e:
            iam.put_user_policy(UserName=user, PolicyName="bad", PolicyDocument=bad)
        assert (code_of(e), status_of(e)) == ("MalformedPolicyDocument", 400)
        assert reason.lower() in e.value.response["Error"]["Message"].lower()
    assert iam.list_user_policies(UserName=user)["PolicyNames"] == []
    with pytest.raises(ClientError) as e:
        iam.get_user_policy(UserName=user, PolicyName="bad")
    assert code_of(e) == "NoSuchEntity"

    iam.remove_user_from_group(GroupName=group, UserName=user)
    iam.delete_group_policy(GroupName=group, PolicyName="look")
    iam.delete_group(GroupName=group)
    assert group not in [x["GroupName"] for x in iam.list_groups()["Groups"]]


def test_a_describe_only_user_can_look_but_not_launch_or_read(server, iam):
    _, creds = new_user(iam, DESCRIBE_ONLY)
    admin_ec2 = server.client("ec2")
    before = len([i for r in admin_ec2.describe_instances()["Reservations"] for i in r["Instances"]])
    ec2 = server.client("ec2", creds=creds)
    ec2.describe_instances()
    ec2.describe_availability_zones()
    with pytest.raises(ClientError) as e:
        ec2.run_instances(ImageId="ami-00000000", MinCount=1, MaxCount=1, InstanceType="t1.micro")
    assert (code_of(e), status_of(e)) == ("UnauthorizedOperation", 403)
    message = e.value.response["Error"]["Message"]
    prefix = "You are not authorized to perform this operation. Encoded authorization failure message: "
    assert message.startswith(prefix)
    encoded = message[len(prefix):]
    # Sealed, as AWS's: the refused user reads nothing in it, and may not
    # have it decoded; the account's admin may.
    assert b"RunInstances" not in base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    with pytest.raises(ClientError) as e:
        server.client("sts", creds=creds).decode_authorization_message(EncodedMessage=encoded)
    assert code_of(e) == "AccessDenied"
    decoded = json.loads(server.client("sts").decode_authorization_message(EncodedMessage=encoded)["DecodedMessage"])
    assert decoded["allowed"] is False and decoded["explicitDeny"] is False
    assert decoded["context"]["action"] == "ec2:RunInstances"
    with pytest.raises(ClientError) as e:
        server.client("sts").decode_authorization_message(EncodedMessage=encoded[:-4] + "AAAA")
    assert (code_of(e), status_of(e)) == ("InvalidAuthorizationMessageException", 400)
    after = len([i for r in admin_ec2.describe_instances()["Reservations"] for i in r["Instances"]])
    assert after == before, "a refused launch launched something"
    # Dry runs are authorised too.
    with pytest.raises(ClientError) as e:
        ec2.create_key_pair(KeyName="x", DryRun=True)
    assert code_of(e) == "UnauthorizedOperation"
    with pytest.raises(ClientError) as e:
        ec2.describe_instances(DryRun=True)
    assert code_of(e) == "DryRunOperation"

    bucket = f"iam-{uuid.uuid4().hex[:8]}"
    admin_s3 = server.client("s3")
    admin_s3.create_bucket(Bucket=bucket)
    admin_s3.put_object(Bucket=bucket, Key="k", Body=b"secret")
    s3 = server.client("s3", creds=creds)
    for call in (lambda: s3.get_object(Bucket=bucket, Key="k"),
                 lambda: s3.put_object(Bucket=bucket, Key="k2", Body=b"x"),
                 lambda: s3.list_objects_v2(Bucket=bucket)):
        with pytest.raises(ClientError) as e:
            call()
        assert (code_of(e), status_of(e)) == ("AccessDenied", 403)
    assert [o["Key"] for o in admin_s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]
    # IAM itself is governed the same way.
    with pytest.raises(ClientError) as e:
        server.client("iam", creds=creds).list_users()
    assert (code_of(e), status_of(e)) == ("AccessDenied", 403)
    assert "is not authorized to perform: iam:ListUsers" in e.value.response["Error"]["Message"]


def test_explicit_deny_wins_and_groups_grant_until_left(server, iam):
    bucket = f"iam-{uuid.uuid4().hex[:8]}"
    admin_s3 = server.client("s3")
    admin_s3.create_bucket(Bucket=bucket)
    user, creds = new_user(iam, {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Action": "s3:DeleteObject",
                       "Resource": f"arn:aws:s3:::{bucket}/keep/*"}],
    })
    group = f"g-{uuid.uuid4().hex[:6]}"
    iam.create_group(GroupName=group)
    iam.put_group_policy(GroupName=group, PolicyName="rw", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*",
                       "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}],
    }))
    s3 = server.client("s3", creds=creds)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="keep/a", Body=b"a")
    assert code_of(e) == "AccessDenied"
    iam.add_user_to_group(GroupName=group, UserName=user)
    s3.put_object(Bucket=bucket, Key="keep/a", Body=b"a")
    s3.put_object(Bucket=bucket, Key="tmp/b", Body=b"b")
    s3.delete_object(Bucket=bucket, Key="tmp/b")
    with pytest.raises(ClientError) as e:
        s3.delete_object(Bucket=bucket, Key="keep/a")
    assert code_of(e) == "AccessDenied"
    assert s3.get_object(Bucket=bucket, Key="keep/a")["Body"].read() == b"a"
    # Another bucket of the same account is not granted.
    other = f"iam-{uuid.uuid4().hex[:8]}"
    admin_s3.create_bucket(Bucket=other)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=other, Key="x", Body=b"x")
    assert code_of(e) == "AccessDenied"
    iam.remove_user_from_group(GroupName=group, UserName=user)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="keep/a")
    assert code_of(e) == "AccessDenied"


def test_policy_variables_and_conditions(server, iam):
    """`${aws:username}` scopes a user to its own prefix; a SourceIp
    condition the client does not meet refuses, one it meets allows."""
    bucket = f"iam-{uuid.uuid4().hex[:8]}"
    server.client("s3").create_bucket(Bucket=bucket)
    user, creds = new_user(iam, {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"],
             "Resource": f"arn:aws:s3:::{bucket}/home/${{aws:username}}/*"},
            {"Effect": "Allow", "Action": "ec2:DescribeRegions", "Resource": "*",
             "Condition": {"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}}},
            {"Effect": "Allow", "Action": "ec2:DescribeAvailabilityZones", "Resource": "*",
             "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}},
        ],
    })
    s3 = server.client("s3", creds=creds)
    s3.put_object(Bucket=bucket, Key=f"home/{user}/notes", Body=b"mine")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="home/someone-else/notes", Body=b"theirs")
    assert code_of(e) == "AccessDenied"
    ec2 = server.client("ec2", creds=creds)
    ec2.describe_availability_zones()
    with pytest.raises(ClientError) as e:
        ec2.describe_regions()
    assert code_of(e) == "UnauthorizedOperation"


def test_bulk_deletes_are_decided_key_by_key(server, iam):
    """DeleteObjects asks `s3:DeleteObject` of each key, as AWS does: a user
    allowed to delete under its own prefix deletes there in bulk, and the
    keys outside it fail alone (AccessDenied) and stay."""
    bucket = f"iam-{uuid.uuid4().hex[:8]}"
    admin_s3 = server.client("s3")
    admin_s3.create_bucket(Bucket=bucket)
    user, creds = new_user(iam, {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:DeleteObject",
                       "Resource": f"arn:aws:s3:::{bucket}/home/${{aws:username}}/*"}],
    })
    keys = [f"home/{user}/a", f"home/{user}/b", "home/other/c"]
    for key in keys:
        admin_s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    out = server.client("s3", creds=creds).delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})
    assert sorted(d["Key"] for d in out["Deleted"]) == keys[:2]
    assert [(e["Key"], e["Code"]) for e in out["Errors"]] == [("home/other/c", "AccessDenied")]
    left = [o["Key"] for o in admin_s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert left == ["home/other/c"]
    # With no permission at all, every key is refused and nothing changes.
    _, nobody = new_user(iam)
    out = server.client("s3", creds=nobody).delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "home/other/c"}]})
    assert [e["Code"] for e in out["Errors"]] == ["AccessDenied"] and not out.get("Deleted")
    assert [o["Key"] for o in admin_s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["home/other/c"]


def test_sts_and_euare_paths_with_awscli(server, aws_cli, iam):
    """The Eucalyptus service paths answer like the SigV4 scopes."""
    out = aws_cli.json("sts", "get-caller-identity")
    assert out["Account"] == server.admin["account_id"]
    assert out["Arn"].endswith(":user/admin")
    user, creds = new_user(iam)
    # GetAccessKeyInfo needs sts:GetAccessKeyInfo (unlike GetCallerIdentity).
    with pytest.raises(ClientError) as e:
        server.client("sts", creds=creds).get_access_key_info(AccessKeyId=creds["access_key_id"])
    assert code_of(e) == "AccessDenied"
    info = server.client("sts").get_access_key_info(AccessKeyId=creds["access_key_id"])
    assert info["Account"] == server.admin["account_id"]
    euare = server.client("iam", endpoint=server.endpoint + "/services/Euare")
    assert user in [u["UserName"] for u in euare.list_users()["Users"]]
    tokens = server.client("sts", endpoint=server.endpoint + "/services/Tokens")
    assert tokens.get_caller_identity()["Account"] == server.admin["account_id"]


def test_accounts_see_only_their_own_users(server, iam, other_account):
    other = server.client("iam", creds=other_account)
    name = f"u-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=name)
    assert name not in [u["UserName"] for u in other.list_users()["Users"]]
    with pytest.raises(ClientError) as e:
        other.get_user(UserName=name)
    assert code_of(e) == "NoSuchEntity"
    # The same name in another account is another user.
    theirs = other.create_user(UserName=name)["User"]
    assert theirs["Arn"].split(":")[4] == other_account["account_id"]


def test_alias_summary_and_login_profiles(server, iam, other_account):
    alias = f"acme-{uuid.uuid4().hex[:6]}"
    iam.create_account_alias(AccountAlias=alias)
    assert iam.list_account_aliases()["AccountAliases"] == [alias]
    # Aliases are unique across the cloud.
    with pytest.raises(ClientError) as e:
        server.client("iam", creds=other_account).create_account_alias(AccountAlias=alias)
    assert code_of(e) == "EntityAlreadyExists"
    with pytest.raises(ClientError) as e:
        iam.create_account_alias(AccountAlias="Not_Valid")
    assert code_of(e) == "ValidationError"
    iam.delete_account_alias(AccountAlias=alias)
    assert iam.list_account_aliases()["AccountAliases"] == []

    before = iam.get_account_summary()["SummaryMap"]
    user, _ = new_user(iam)
    after = iam.get_account_summary()["SummaryMap"]
    assert after["Users"] == before["Users"] + 1
    assert after["AccessKeysPerUserQuota"] == 2

    with pytest.raises(ClientError) as e:
        iam.create_login_profile(UserName=user, Password="short")
    assert (code_of(e), status_of(e)) == ("PasswordPolicyViolation", 400)
    made = iam.create_login_profile(UserName=user, Password="Correct-Horse9", PasswordResetRequired=True)
    assert made["LoginProfile"]["PasswordResetRequired"] is True
    got = iam.get_login_profile(UserName=user)["LoginProfile"]
    assert got["UserName"] == user and "Password" not in got
    iam.update_login_profile(UserName=user, Password="Battery-Staple7", PasswordResetRequired=False)
    assert iam.get_login_profile(UserName=user)["LoginProfile"]["PasswordResetRequired"] is False
    iam.delete_login_profile(UserName=user)
    with pytest.raises(ClientError) as e:
        iam.get_login_profile(UserName=user)
    assert code_of(e) == "NoSuchEntity"


def euare(server, params: dict, creds: dict | None = None):
    """A signed IAM Query request (botocore has no Eucalyptus account
    actions)."""
    return server.raw({**params, "Version": "2010-05-08"}, service="iam", add_version=False,
                      **({"creds": creds} if creds else {}))


def test_cloud_administrators_manage_accounts_through_iam(server, iam, other_account):
    name = f"team{uuid.uuid4().hex[:8]}"
    made = euare(server, {"Action": "CreateAccount", "AccountName": name})
    assert made.status == 200, made.describe()
    account_id = made.find_all("AccountId")[0].text
    assert len(account_id) == 12 and made.find_all("AccountName")[0].text == name
    again = euare(server, {"Action": "CreateAccount", "AccountName": name})
    assert again.status == 409 and "EntityAlreadyExists" in again.text
    listed = euare(server, {"Action": "ListAccounts"})
    assert listed.status == 200 and name in [e.text for e in listed.find_all("AccountName")]
    # An ordinary account's admin may not.
    theirs = euare(server, {"Action": "ListAccounts"}, creds=other_account)
    assert theirs.status == 403 and "AccessDenied" in theirs.text
    # The new account works with a key the CLI makes, and is deleted with
    # its users once it owns nothing else.
    key = json.loads(server.admin_cli("access-key", "create", "--account", name, "--json", check=True).stdout)
    creds = {"access_key_id": key["access_key_id"], "secret_access_key": key["secret_access_key"]}
    server.client("iam", creds=creds).create_user(UserName="ops")
    pair = server.client("ec2", creds=creds).create_key_pair(KeyName="k")["KeyPairId"]
    busy = euare(server, {"Action": "DeleteAccount", "AccountName": name})
    assert busy.status == 409 and "DeleteConflict" in busy.text
    server.client("ec2", creds=creds).delete_key_pair(KeyPairId=pair)
    done = euare(server, {"Action": "DeleteAccount", "AccountName": name})
    assert done.status == 200, done.describe()
    assert name not in [e.text for e in euare(server, {"Action": "ListAccounts"}).find_all("AccountName")]
    with pytest.raises(ClientError) as e:
        server.client("sts", creds=creds).get_caller_identity()
    assert code_of(e) == "InvalidClientTokenId"
