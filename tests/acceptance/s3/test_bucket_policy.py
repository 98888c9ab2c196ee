"""S3 bucket policies with boto3, awscli and plain urllib against the session
server: Put/Get/DeleteBucketPolicy and GetBucketPolicyStatus as S3 answers
them, and every request decided by S3's rule: (ACL allows OR the caller's
account owns the bucket OR the bucket policy allows) AND no policy denies,
a grant to another account also needing that account's own allow.

Another account is granted writes under a prefix and nothing else; an
explicit Deny in the bucket policy beats the owner account's IAM user's
Allow; `"Principal":"*"` opens objects to unsigned requests; condition
keys (`aws:SourceIp`, `s3:prefix`) confine grants; refused policies change
nothing; only the bucket's account manages its policy."""

import json
import urllib.error
import urllib.request
import uuid

import pytest
from conftest import bucket_name, client_error, delete_bucket_quietly, s3_client


def policy_doc(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(principal, action, resource, **extra) -> dict:
    return {"Effect": "Allow", "Principal": principal, "Action": action, "Resource": resource, **extra}


def deny(principal, action, resource, **extra) -> dict:
    return {"Effect": "Deny", "Principal": principal, "Action": action, "Resource": resource, **extra}


def code(err) -> tuple[str, int]:
    return err.response["Error"]["Code"], err.response["ResponseMetadata"]["HTTPStatusCode"]


def anonymous_get(server, path: str) -> tuple[int, bytes]:
    """An unsigned GET, as curl or a browser makes it."""
    try:
        with urllib.request.urlopen(f"{server.endpoint}{path}", timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def anonymous_put(server, path: str, body: bytes) -> int:
    req = urllib.request.Request(f"{server.endpoint}{path}", data=body, method="PUT")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def new_user(iam, policy: dict | None = None) -> tuple[str, dict]:
    """An IAM user (with `policy` inline) and its access key."""
    name = f"bp-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=name)
    if policy is not None:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return name, {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}


S3_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}


@pytest.fixture
def policy_bucket(s3):
    """A fresh bucket of the admin account whose policy is removed before it
    is emptied and deleted (a Deny must not outlive its test)."""
    name = bucket_name("bp")
    s3.create_bucket(Bucket=name)
    yield name
    try:
        s3.delete_bucket_policy(Bucket=name)
    except Exception:
        pass
    delete_bucket_quietly(s3, name)


def test_another_account_writes_under_its_prefix_and_nowhere_else(server, s3, s3_other, other_account, policy_bucket):
    b = policy_bucket
    s3.put_object(Bucket=b, Key="drop/owners.txt", Body=b"owner's")
    s3.put_object(Bucket=b, Key="private.txt", Body=b"secret")
    # Before any policy: nothing.
    assert code(client_error(s3_other.put_object, Bucket=b, Key="drop/x", Body=b"x")) == ("AccessDenied", 403)

    s3.put_bucket_policy(
        Bucket=b,
        Policy=policy_doc(
            allow({"AWS": other_account["account_id"]}, "s3:PutObject", f"arn:aws:s3:::{b}/drop/*"),
        ),
    )
    s3_other.put_object(Bucket=b, Key="drop/theirs.txt", Body=b"from the other account")
    # The writer owns what it wrote (ACLs as S3 keeps them): the bucket
    # owner sees it listed, and reads it once the writer's ACL says so.
    assert "drop/theirs.txt" in [o["Key"] for o in s3.list_objects_v2(Bucket=b, Prefix="drop/")["Contents"]]
    assert code(client_error(s3.get_object, Bucket=b, Key="drop/theirs.txt")) == ("AccessDenied", 403)
    # Multipart writes under the prefix are writes too.
    up = s3_other.create_multipart_upload(Bucket=b, Key="drop/mp.bin")["UploadId"]
    etag = s3_other.upload_part(Bucket=b, Key="drop/mp.bin", UploadId=up, PartNumber=1, Body=b"part")["ETag"]
    s3_other.complete_multipart_upload(
        Bucket=b, Key="drop/mp.bin", UploadId=up, MultipartUpload={"Parts": [{"ETag": etag, "PartNumber": 1}]}
    )

    # Nowhere else, and no other action.
    for key in ("elsewhere.txt", "dropx/y", "private.txt"):
        assert code(client_error(s3_other.put_object, Bucket=b, Key=key, Body=b"x")) == ("AccessDenied", 403)
    assert s3.get_object(Bucket=b, Key="private.txt")["Body"].read() == b"secret"
    assert code(client_error(s3_other.get_object, Bucket=b, Key="drop/owners.txt")) == ("AccessDenied", 403)
    assert code(client_error(s3_other.get_object, Bucket=b, Key="private.txt")) == ("AccessDenied", 403)
    assert code(client_error(s3_other.list_objects_v2, Bucket=b)) == ("AccessDenied", 403)
    assert code(client_error(s3_other.delete_object, Bucket=b, Key="drop/owners.txt")) == ("AccessDenied", 403)
    assert code(client_error(s3_other.get_bucket_acl, Bucket=b)) == ("AccessDenied", 403)
    assert s3.get_object(Bucket=b, Key="drop/owners.txt")["Body"].read() == b"owner's"

    # A third account is not named.
    third = s3_client(server, server.create_account())
    assert code(client_error(third.put_object, Bucket=b, Key="drop/z", Body=b"z")) == ("AccessDenied", 403)

    # Reads can be granted too, and the grant covers a copy's source.
    s3.put_bucket_policy(
        Bucket=b,
        Policy=policy_doc(
            allow({"AWS": other_account["account_id"]}, "s3:PutObject", f"arn:aws:s3:::{b}/drop/*"),
            allow({"AWS": f"arn:aws:iam::{other_account['account_id']}:root"}, "s3:GetObject", f"arn:aws:s3:::{b}/drop/*"),
        ),
    )
    assert s3_other.get_object(Bucket=b, Key="drop/owners.txt")["Body"].read() == b"owner's"
    s3_other.copy_object(Bucket=b, Key="drop/copy.txt", CopySource={"Bucket": b, "Key": "drop/owners.txt"})
    assert code(
        client_error(s3_other.copy_object, Bucket=b, Key="drop/copy2.txt", CopySource={"Bucket": b, "Key": "private.txt"})
    ) == ("AccessDenied", 403)


def test_grants_to_users_need_their_own_allow_and_name_them_exactly(server, s3, other_account, policy_bucket):
    b = policy_bucket
    iam = server.client("iam", creds=other_account)
    named, named_key = new_user(iam, S3_ALL)
    unnamed, unnamed_key = new_user(iam, S3_ALL)
    no_policy, no_policy_key = new_user(iam)
    acct = other_account["account_id"]
    s3.put_bucket_policy(
        Bucket=b,
        Policy=policy_doc(
            allow(
                {"AWS": [f"arn:aws:iam::{acct}:user/{named}", f"arn:aws:iam::{acct}:user/{no_policy}"]},
                ["s3:PutObject", "s3:GetObject"],
                f"arn:aws:s3:::{b}/*",
            )
        ),
    )
    s3_client(server, named_key).put_object(Bucket=b, Key="by-user", Body=b"u")
    assert s3_client(server, named_key).get_object(Bucket=b, Key="by-user")["Body"].read() == b"u"
    assert code(client_error(s3_client(server, unnamed_key).put_object, Bucket=b, Key="k", Body=b"x")) == (
        "AccessDenied",
        403,
    )
    # Across accounts the caller's own account must let it out too.
    assert code(client_error(s3_client(server, no_policy_key).put_object, Bucket=b, Key="k", Body=b"x")) == (
        "AccessDenied",
        403,
    )


def test_explicit_deny_in_bucket_policy_beats_iam_allow(server, s3, aws_cli, policy_bucket):
    b = policy_bucket
    iam = server.client("iam")
    user, key = new_user(iam, S3_ALL)
    arn = iam.get_user(UserName=user)["User"]["Arn"]
    s3.put_object(Bucket=b, Key="a/doc.txt", Body=b"doc")
    s3.put_object(Bucket=b, Key="b/doc.txt", Body=b"doc")
    mine = s3_client(server, key)
    assert mine.get_object(Bucket=b, Key="a/doc.txt")["Body"].read() == b"doc"

    # Once with awscli: the document goes in as the CLI sends it.
    doc = policy_doc(
        {**deny({"AWS": arn}, "s3:GetObject", f"arn:aws:s3:::{b}/a/*"), "Sid": "NoA"},
    )
    aws_cli.run("s3api", "put-bucket-policy", "--bucket", b, "--policy", doc)
    shown = json.loads(aws_cli.run("s3api", "get-bucket-policy", "--bucket", b).stdout)
    assert json.loads(shown["Policy"]) == json.loads(doc)

    assert code(client_error(mine.get_object, Bucket=b, Key="a/doc.txt")) == ("AccessDenied", 403)
    assert mine.get_object(Bucket=b, Key="b/doc.txt")["Body"].read() == b"doc"
    mine.put_object(Bucket=b, Key="a/new.txt", Body=b"writes are not denied")
    # The account admin is not named, so still reads.
    assert s3.get_object(Bucket=b, Key="a/doc.txt")["Body"].read() == b"doc"

    # A Deny for everyone stops the owner too, except managing the policy.
    s3.put_bucket_policy(Bucket=b, Policy=policy_doc(deny("*", "s3:*", [f"arn:aws:s3:::{b}", f"arn:aws:s3:::{b}/*"])))
    assert code(client_error(s3.get_object, Bucket=b, Key="b/doc.txt")) == ("AccessDenied", 403)
    assert code(client_error(s3.list_objects_v2, Bucket=b)) == ("AccessDenied", 403)
    assert code(client_error(mine.get_bucket_policy, Bucket=b)) == ("AccessDenied", 403)
    s3.get_bucket_policy(Bucket=b)
    s3.delete_bucket_policy(Bucket=b)
    assert s3.get_object(Bucket=b, Key="b/doc.txt")["Body"].read() == b"doc"


def test_public_read_through_principal_star_for_unsigned_requests(server, s3, s3_other, policy_bucket):
    b = policy_bucket
    s3.put_object(Bucket=b, Key="public/page.html", Body=b"<h1>hello</h1>")
    s3.put_object(Bucket=b, Key="private/notes.txt", Body=b"notes")
    assert anonymous_get(server, f"/{b}/public/page.html")[0] == 403

    s3.put_bucket_policy(
        Bucket=b,
        Policy=policy_doc({**allow("*", "s3:GetObject", f"arn:aws:s3:::{b}/public/*"), "Sid": "PublicRead"}),
    )
    assert anonymous_get(server, f"/{b}/public/page.html") == (200, b"<h1>hello</h1>")
    # Signed callers of any account are "*" too.
    assert s3_other.get_object(Bucket=b, Key="public/page.html")["Body"].read() == b"<h1>hello</h1>"
    status, body = anonymous_get(server, f"/{b}/private/notes.txt")
    assert status == 403 and b"AccessDenied" in body
    # A missing key under the public prefix does not tell it is missing:
    # the policy does not allow listing.
    assert anonymous_get(server, f"/{b}/public/missing.html")[0] == 403
    assert anonymous_get(server, f"/{b}")[0] == 403
    assert anonymous_put(server, f"/{b}/public/new.html", b"defaced") == 403
    assert s3.get_bucket_policy_status(Bucket=b)["PolicyStatus"]["IsPublic"] is True

    # Listing granted too: then a missing key is NoSuchKey.
    s3.put_bucket_policy(
        Bucket=b,
        Policy=policy_doc(
            allow("*", "s3:GetObject", f"arn:aws:s3:::{b}/public/*"),
            allow("*", "s3:ListBucket", f"arn:aws:s3:::{b}"),
        ),
    )
    status, body = anonymous_get(server, f"/{b}/public/missing.html")
    assert status == 404 and b"NoSuchKey" in body
    status, body = anonymous_get(server, f"/{b}?list-type=2")
    assert status == 200 and b"public/page.html" in body


def test_condition_keys_confine_grants(server, s3, s3_other, other_account, policy_bucket):
    b = policy_bucket
    s3.put_object(Bucket=b, Key="page", Body=b"p")
    s3.put_object(Bucket=b, Key="drop/one", Body=b"1")
    s3.put_object(Bucket=b, Key="other/two", Body=b"2")

    def public_from(cidr):
        s3.put_bucket_policy(
            Bucket=b,
            Policy=policy_doc(
                allow("*", "s3:GetObject", f"arn:aws:s3:::{b}/*", Condition={"IpAddress": {"aws:SourceIp": cidr}})
            ),
        )

    public_from("127.0.0.0/8")
    assert anonymous_get(server, f"/{b}/page") == (200, b"p")
    # Confined to a network: not public.
    assert s3.get_bucket_policy_status(Bucket=b)["PolicyStatus"]["IsPublic"] is False
    public_from("10.0.0.0/8")
    assert anonymous_get(server, f"/{b}/page")[0] == 403

    def grant_other(action, resource, condition):
        other = {"AWS": other_account["account_id"]}
        s3.put_bucket_policy(Bucket=b, Policy=policy_doc(allow(other, action, resource, Condition=condition)))

    grant_other("s3:ListBucket", f"arn:aws:s3:::{b}", {"StringLike": {"s3:prefix": "drop/*"}})
    listed = s3_other.list_objects_v2(Bucket=b, Prefix="drop/")
    assert [o["Key"] for o in listed["Contents"]] == ["drop/one"]
    assert code(client_error(s3_other.list_objects_v2, Bucket=b)) == ("AccessDenied", 403)
    assert code(client_error(s3_other.list_objects_v2, Bucket=b, Prefix="other/")) == ("AccessDenied", 403)
    assert s3.get_bucket_policy_status(Bucket=b)["PolicyStatus"]["IsPublic"] is False

    # s3:x-amz-acl: the other account may write only objects it hands to
    # the bucket owner.
    grant_other("s3:PutObject", f"arn:aws:s3:::{b}/*", {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control"}})
    assert code(client_error(s3_other.put_object, Bucket=b, Key="in", Body=b"x")) == ("AccessDenied", 403)
    s3_other.put_object(Bucket=b, Key="in", Body=b"x", ACL="bucket-owner-full-control")
    assert s3.get_object(Bucket=b, Key="in")["Body"].read() == b"x"


def test_get_delete_and_status_as_s3_answers_them(s3, policy_bucket):
    b = policy_bucket
    assert code(client_error(s3.get_bucket_policy, Bucket=b)) == ("NoSuchBucketPolicy", 404)
    assert code(client_error(s3.get_bucket_policy_status, Bucket=b)) == ("NoSuchBucketPolicy", 404)
    # Returned exactly as put, white space and key order included.
    text = (
        '{\n  "Version": "2012-10-17",\n  "Statement": [\n    {"Sid": "Mine", "Resource": "arn:aws:s3:::%s/*",'
        ' "Effect": "Allow", "Principal": {"AWS": "123456789012"}, "Action": ["s3:GetObject"]}\n  ]\n}' % b
    )
    s3.put_bucket_policy(Bucket=b, Policy=text)
    assert s3.get_bucket_policy(Bucket=b)["Policy"] == text
    assert s3.get_bucket_policy_status(Bucket=b)["PolicyStatus"]["IsPublic"] is False
    s3.delete_bucket_policy(Bucket=b)
    assert code(client_error(s3.get_bucket_policy, Bucket=b)) == ("NoSuchBucketPolicy", 404)
    s3.delete_bucket_policy(Bucket=b)  # none: still no error, as in S3
    missing = bucket_name("nope")
    assert code(client_error(s3.get_bucket_policy, Bucket=missing)) == ("NoSuchBucket", 404)
    assert code(client_error(s3.put_bucket_policy, Bucket=missing, Policy=policy_doc())) == ("NoSuchBucket", 404)


def test_malformed_policies_are_refused_and_change_nothing(s3, policy_bucket):
    b = policy_bucket
    good = policy_doc(allow("*", "s3:GetObject", f"arn:aws:s3:::{b}/*"))
    refused = {
        "not json": "{ this is not json",
        "no principal": policy_doc({"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{b}/*"}),
        "another bucket": policy_doc(allow("*", "s3:GetObject", "arn:aws:s3:::someone-elses/*")),
        "another service": policy_doc(allow("*", "ec2:RunInstances", f"arn:aws:s3:::{b}/*")),
        "bad effect": policy_doc({**allow("*", "s3:GetObject", f"arn:aws:s3:::{b}/*"), "Effect": "Perhaps"}),
    }
    for why, text in refused.items():
        err = client_error(s3.put_bucket_policy, Bucket=b, Policy=text)
        assert code(err) == ("MalformedPolicy", 400), why
        assert err.response["Error"]["Message"], why
        assert code(client_error(s3.get_bucket_policy, Bucket=b)) == ("NoSuchBucketPolicy", 404), why
    s3.put_bucket_policy(Bucket=b, Policy=good)
    err = client_error(s3.put_bucket_policy, Bucket=b, Policy=refused["another bucket"])
    assert code(err) == ("MalformedPolicy", 400)
    assert "resource" in err.response["Error"]["Message"].lower()
    assert s3.get_bucket_policy(Bucket=b)["Policy"] == good


def test_only_the_owner_account_manages_the_policy(server, s3, s3_other, other_account, policy_bucket):
    b = policy_bucket
    # Even a policy that names the other account for these actions does
    # not let it manage the policy.
    text = policy_doc(
        allow(
            {"AWS": other_account["account_id"]},
            ["s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"],
            f"arn:aws:s3:::{b}",
        )
    )
    s3.put_bucket_policy(Bucket=b, Policy=text)
    assert code(client_error(s3_other.get_bucket_policy, Bucket=b)) == ("AccessDenied", 403)
    assert code(client_error(s3_other.get_bucket_policy_status, Bucket=b)) == ("AccessDenied", 403)
    assert code(client_error(s3_other.put_bucket_policy, Bucket=b, Policy=policy_doc())) == ("AccessDenied", 403)
    assert code(client_error(s3_other.delete_bucket_policy, Bucket=b)) == ("AccessDenied", 403)
    # IAM users of the owner account need the actions allowed.
    iam = server.client("iam")
    _, nothing = new_user(iam)
    _, reader = new_user(
        iam,
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetBucketPolicy", "Resource": "*"}]},
    )
    assert code(client_error(s3_client(server, nothing).get_bucket_policy, Bucket=b)) == ("AccessDenied", 403)
    assert s3_client(server, reader).get_bucket_policy(Bucket=b)["Policy"] == text
    assert code(client_error(s3_client(server, reader).delete_bucket_policy, Bucket=b)) == ("AccessDenied", 403)
    assert s3.get_bucket_policy(Bucket=b)["Policy"] == text


def test_deleting_a_bucket_deletes_its_policy(s3):
    b = bucket_name("bp")
    s3.create_bucket(Bucket=b)
    s3.put_bucket_policy(Bucket=b, Policy=policy_doc(allow("*", "s3:GetObject", f"arn:aws:s3:::{b}/*")))
    s3.delete_bucket(Bucket=b)
    s3.create_bucket(Bucket=b)
    try:
        assert code(client_error(s3.get_bucket_policy, Bucket=b)) == ("NoSuchBucketPolicy", 404)
    finally:
        delete_bucket_quietly(s3, b)
