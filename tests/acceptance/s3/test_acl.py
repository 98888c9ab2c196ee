"""ACLs: canned ACLs, explicit grants, anonymous access, cross-account isolation."""

import pytest
import requests

from conftest import (
    ALL_USERS,
    AUTH_USERS,
    assert_s3_error,
    canonical_id,
    client_error,
    etag_of,
    list_keys,
    s3_raw,
)


def grants_of(acl):
    out = set()
    for g in acl["Grants"]:
        gr = g["Grantee"]
        who = gr.get("ID") or gr.get("URI") or gr.get("EmailAddress")
        out.add((gr["Type"], who, g["Permission"]))
    return out


def anon_get(server, bucket, key="", method="GET", **kw):
    return s3_raw(server, method, f"/{bucket}/{key}" if key else f"/{bucket}", auth=None, **kw)


# ---------------------------------------------------------------- anonymous


def test_private_object_anonymous_denied(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="private", Body=b"secret")
    r = requests.get(f"{server.endpoint}/{bucket}/private", timeout=10)
    assert r.status_code == 403, r.text
    rr = anon_get(server, bucket, "private")
    assert_s3_error(rr, 403, "AccessDenied")
    assert b"secret" not in rr.body
    # anonymous listing of a private bucket
    assert_s3_error(anon_get(server, bucket), 403, "AccessDenied")


def test_public_read_object_anonymous_get(server, s3, bucket):
    body = b"hello world"
    s3.put_object(Bucket=bucket, Key="pub.txt", Body=body, ACL="public-read", ContentType="text/plain")
    r = requests.get(f"{server.endpoint}/{bucket}/pub.txt", timeout=10)
    assert r.status_code == 200, r.text
    assert r.content == body
    assert r.headers["ETag"] == etag_of(body)
    assert r.headers.get("Last-Modified")
    assert r.headers.get("Content-Type") == "text/plain"
    h = requests.head(f"{server.endpoint}/{bucket}/pub.txt", timeout=10)
    assert h.status_code == 200 and h.headers["ETag"] == etag_of(body)
    # range works anonymously too
    rr = requests.get(f"{server.endpoint}/{bucket}/pub.txt", headers={"Range": "bytes=0-4"}, timeout=10)
    assert rr.status_code == 206 and rr.content == b"hello"
    # but the bucket itself stays private (no listing) and anonymous cannot write
    assert_s3_error(anon_get(server, bucket), 403, "AccessDenied")
    w = s3_raw(server, "PUT", f"/{bucket}/pub.txt", auth=None, body=b"overwrite")
    assert_s3_error(w, 403, "AccessDenied")
    assert s3.get_object(Bucket=bucket, Key="pub.txt")["Body"].read() == body


def test_make_public_then_private_again(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    assert anon_get(server, bucket, "k").status == 403
    s3.put_object_acl(Bucket=bucket, Key="k", ACL="public-read")
    assert anon_get(server, bucket, "k").status == 200
    s3.put_object_acl(Bucket=bucket, Key="k", ACL="private")
    assert_s3_error(anon_get(server, bucket, "k"), 403, "AccessDenied")


def test_public_read_bucket_anonymous_list(server, s3, bucket_factory):
    b = bucket_factory(acl="public-read")
    s3.put_object(Bucket=b, Key="x", Body=b"x")  # object itself private
    r = anon_get(server, b)
    assert r.status == 200, r.describe()
    assert [e.text for e in r.findall("Key")] == ["x"]
    assert_s3_error(anon_get(server, b, "x"), 403, "AccessDenied")
    assert_s3_error(s3_raw(server, "PUT", f"/{b}/anon", auth=None, body=b"a"), 403, "AccessDenied")


def test_public_read_write_bucket_anonymous_put(server, s3, bucket_factory):
    b = bucket_factory(acl="public-read-write")
    r = s3_raw(server, "PUT", f"/{b}/anon-upload", auth=None, body=b"from anon")
    assert r.status == 200, r.describe()
    assert "anon-upload" in list_keys(s3, b)


# ---------------------------------------------------------------- canned ACL grants


@pytest.mark.parametrize(
    "canned,extra",
    [
        ("private", set()),
        ("public-read", {("Group", ALL_USERS, "READ")}),
        ("public-read-write", {("Group", ALL_USERS, "READ"), ("Group", ALL_USERS, "WRITE")}),
        ("authenticated-read", {("Group", AUTH_USERS, "READ")}),
    ],
)
def test_canned_bucket_acl_grants(s3, bucket_factory, canned, extra):
    b = bucket_factory(acl=canned)
    acl = s3.get_bucket_acl(Bucket=b)
    owner = canonical_id(s3)
    assert acl["Owner"]["ID"] == owner
    assert grants_of(acl) == {("CanonicalUser", owner, "FULL_CONTROL")} | extra


@pytest.mark.parametrize(
    "canned,extra",
    [
        ("private", set()),
        ("public-read", {("Group", ALL_USERS, "READ")}),
        ("public-read-write", {("Group", ALL_USERS, "READ"), ("Group", ALL_USERS, "WRITE")}),
        ("authenticated-read", {("Group", AUTH_USERS, "READ")}),
        ("bucket-owner-read", None),  # bucket owner == object owner here
        ("bucket-owner-full-control", None),
    ],
)
def test_canned_object_acl_grants(s3, bucket, canned, extra):
    s3.put_object(Bucket=bucket, Key="o", Body=b"x", ACL=canned)
    acl = s3.get_object_acl(Bucket=bucket, Key="o")
    owner = canonical_id(s3)
    assert acl["Owner"]["ID"] == owner
    assert ("CanonicalUser", owner, "FULL_CONTROL") in grants_of(acl)
    rest = grants_of(acl) - {("CanonicalUser", owner, "FULL_CONTROL")}
    if extra is None:  # only (possibly redundant) grants to the owner itself
        assert all(who == owner for _, who, _ in rest), rest
    else:
        assert rest == extra


def test_aws_exec_read(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="img", Body=b"x", ACL="aws-exec-read")
    acl = s3.get_object_acl(Bucket=bucket, Key="img")
    owner = canonical_id(s3)
    assert ("CanonicalUser", owner, "FULL_CONTROL") in grants_of(acl)
    assert not any(who == ALL_USERS for _, who, _ in grants_of(acl))
    assert anon_get(server, bucket, "img").status == 403


def test_default_acls_private(s3, bucket):
    owner = canonical_id(s3)
    assert grants_of(s3.get_bucket_acl(Bucket=bucket)) == {("CanonicalUser", owner, "FULL_CONTROL")}
    s3.put_object(Bucket=bucket, Key="o", Body=b"x")
    assert grants_of(s3.get_object_acl(Bucket=bucket, Key="o")) == {("CanonicalUser", owner, "FULL_CONTROL")}


def test_invalid_canned_acl(s3req, s3, bucket):
    r = s3req("PUT", f"/{bucket}/o", body=b"x", headers={"x-amz-acl": "bogus-acl"})
    assert_s3_error(r, 400, "InvalidArgument")
    assert list_keys(s3, bucket) == []


def test_canned_and_grant_headers_conflict(s3req, s3, bucket):
    r = s3req(
        "PUT", f"/{bucket}/o", body=b"x",
        headers={"x-amz-acl": "public-read", "x-amz-grant-read": f'uri="{ALL_USERS}"'},
    )
    assert_s3_error(r, 400, "InvalidRequest")


# ---------------------------------------------------------------- explicit grants


def test_grant_read_to_canonical_user(server, s3, s3_other, bucket):
    other_id = canonical_id(s3_other)
    s3.put_object(Bucket=bucket, Key="shared", Body=b"for B", GrantRead=f'id="{other_id}"')
    assert s3_other.get_object(Bucket=bucket, Key="shared")["Body"].read() == b"for B"
    assert anon_get(server, bucket, "shared").status == 403
    acl = s3.get_object_acl(Bucket=bucket, Key="shared")
    assert ("CanonicalUser", other_id, "READ") in grants_of(acl)
    # READ does not allow overwrite
    assert_s3_error(client_error(s3_other.put_object, Bucket=bucket, Key="shared", Body=b"x"), 403, "AccessDenied")


def test_grant_read_all_users_uri(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="g", Body=b"grant", GrantRead=f'uri="{ALL_USERS}"')
    r = requests.get(f"{server.endpoint}/{bucket}/g", timeout=10)
    assert r.status_code == 200 and r.content == b"grant"


def test_put_object_acl_xml_body(s3, s3_other, bucket):
    owner = canonical_id(s3)
    other_id = canonical_id(s3_other)
    s3.put_object(Bucket=bucket, Key="x", Body=b"xml acl")
    assert_s3_error(client_error(s3_other.get_object, Bucket=bucket, Key="x"), 403, "AccessDenied")
    s3.put_object_acl(
        Bucket=bucket, Key="x",
        AccessControlPolicy={
            "Owner": {"ID": owner},
            "Grants": [
                {"Grantee": {"Type": "CanonicalUser", "ID": owner}, "Permission": "FULL_CONTROL"},
                {"Grantee": {"Type": "CanonicalUser", "ID": other_id}, "Permission": "READ"},
            ],
        },
    )
    assert s3_other.get_object(Bucket=bucket, Key="x")["Body"].read() == b"xml acl"


def test_bucket_grant_write_to_other(s3, s3_other, bucket):
    owner = canonical_id(s3)
    other_id = canonical_id(s3_other)
    s3.put_bucket_acl(
        Bucket=bucket,
        AccessControlPolicy={
            "Owner": {"ID": owner},
            "Grants": [
                {"Grantee": {"Type": "CanonicalUser", "ID": owner}, "Permission": "FULL_CONTROL"},
                {"Grantee": {"Type": "CanonicalUser", "ID": other_id}, "Permission": "WRITE"},
            ],
        },
    )
    assert ("CanonicalUser", other_id, "WRITE") in grants_of(s3.get_bucket_acl(Bucket=bucket))
    s3_other.put_object(Bucket=bucket, Key="from-b", Body=b"b", ACL="bucket-owner-full-control")
    assert s3.get_object(Bucket=bucket, Key="from-b")["Body"].read() == b"b"
    # WRITE does not include listing
    assert_s3_error(client_error(s3_other.list_objects_v2, Bucket=bucket), 403, "AccessDenied")


def test_bucket_owner_read_cross_account(s3, s3_other, bucket_factory):
    b = bucket_factory(acl="public-read-write")
    s3_other.put_object(Bucket=b, Key="ownerread", Body=b"obr", ACL="bucket-owner-read")
    acl = s3_other.get_object_acl(Bucket=b, Key="ownerread")
    assert ("CanonicalUser", canonical_id(s3), "READ") in grants_of(acl)
    assert s3.get_object(Bucket=b, Key="ownerread")["Body"].read() == b"obr"


def test_put_bucket_acl_canned(server, s3, bucket):
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    assert ("Group", ALL_USERS, "READ") in grants_of(s3.get_bucket_acl(Bucket=bucket))
    assert anon_get(server, bucket).status == 200
    s3.put_bucket_acl(Bucket=bucket, ACL="private")
    assert anon_get(server, bucket).status == 403


# ---------------------------------------------------------------- cross-account


def test_cross_account_isolation(s3, s3_other, bucket):
    s3.put_object(Bucket=bucket, Key="mine", Body=b"A's data", Metadata={"m": "1"})
    before_acl = s3.get_object_acl(Bucket=bucket, Key="mine")
    checks = [
        (s3_other.get_object, dict(Bucket=bucket, Key="mine")),
        (s3_other.list_objects_v2, dict(Bucket=bucket)),
        (s3_other.list_objects, dict(Bucket=bucket)),
        (s3_other.put_object, dict(Bucket=bucket, Key="mine", Body=b"B overwrote")),
        (s3_other.put_object, dict(Bucket=bucket, Key="new-from-b", Body=b"B")),
        (s3_other.delete_object, dict(Bucket=bucket, Key="mine")),
        (s3_other.get_object_acl, dict(Bucket=bucket, Key="mine")),
        (s3_other.put_object_acl, dict(Bucket=bucket, Key="mine", ACL="public-read")),
        (s3_other.get_bucket_acl, dict(Bucket=bucket)),
        (s3_other.put_bucket_acl, dict(Bucket=bucket, ACL="public-read-write")),
        (s3_other.delete_bucket, dict(Bucket=bucket)),
        (s3_other.create_multipart_upload, dict(Bucket=bucket, Key="mp-from-b")),
        (s3_other.copy_object, dict(Bucket=bucket, Key="copy-by-b", CopySource={"Bucket": bucket, "Key": "mine"})),
    ]
    for fn, kw in checks:
        err = client_error(fn, **kw)
        assert_s3_error(err, 403, "AccessDenied")
    # DeleteObjects: either the whole request is denied, or each key reports AccessDenied
    try:
        resp = s3_other.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "mine"}]})
    except Exception as e:  # noqa: BLE001
        assert_s3_error(e, 403, "AccessDenied")
    else:
        assert not resp.get("Deleted"), resp
        assert [(x["Key"], x["Code"]) for x in resp.get("Errors", [])] == [("mine", "AccessDenied")], resp
    head = client_error(s3_other.head_object, Bucket=bucket, Key="mine")
    assert_s3_error(head, 403, None)
    # nothing changed
    got = s3.get_object(Bucket=bucket, Key="mine")
    assert got["Body"].read() == b"A's data"
    assert got["Metadata"] == {"m": "1"}
    assert list_keys(s3, bucket) == ["mine"]
    assert grants_of(s3.get_object_acl(Bucket=bucket, Key="mine")) == grants_of(before_acl)
    assert grants_of(s3.get_bucket_acl(Bucket=bucket)) == {("CanonicalUser", canonical_id(s3), "FULL_CONTROL")}
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_cross_account_copy_from_private_source(s3, s3_other, bucket, bucket_factory):
    s3.put_object(Bucket=bucket, Key="secret", Body=b"no")
    theirs = bucket_factory(client=s3_other)
    err = client_error(s3_other.copy_object, Bucket=theirs, Key="stolen", CopySource={"Bucket": bucket, "Key": "secret"})
    assert_s3_error(err, 403, "AccessDenied")
    assert list_keys(s3_other, theirs) == []


def test_cross_account_public_read(s3, s3_other, bucket):
    s3.put_object(Bucket=bucket, Key="pub", Body=b"public", ACL="public-read")
    assert s3_other.get_object(Bucket=bucket, Key="pub")["Body"].read() == b"public"
    assert s3_other.head_object(Bucket=bucket, Key="pub")["ContentLength"] == 6
    assert_s3_error(client_error(s3_other.delete_object, Bucket=bucket, Key="pub"), 403, "AccessDenied")


def test_authenticated_read(server, s3, s3_other, bucket):
    s3.put_object(Bucket=bucket, Key="auth", Body=b"members", ACL="authenticated-read")
    assert s3_other.get_object(Bucket=bucket, Key="auth")["Body"].read() == b"members"
    assert_s3_error(anon_get(server, bucket, "auth"), 403, "AccessDenied")
