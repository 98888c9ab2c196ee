"""S3 objects: Put/Get/Head/Delete/DeleteObjects/Copy, metadata, ranges, conditionals, digests."""

import base64
import datetime as dt
import hashlib
import os
from email.utils import format_datetime, parsedate_to_datetime

import pytest
import requests

from conftest import (
    assert_s3_error,
    client_error,
    etag_of,
    list_keys,
    md5hex,
    qkey,
)


def http_date(d: dt.datetime) -> str:
    return format_datetime(d.astimezone(dt.timezone.utc), usegmt=True)


# ---------------------------------------------------------------- put / get / head


def test_put_get_roundtrip_and_etag(s3, bucket):
    body = os.urandom(100_000)
    put = s3.put_object(Bucket=bucket, Key="dir/obj.bin", Body=body)
    assert put["ETag"] == etag_of(body)
    got = s3.get_object(Bucket=bucket, Key="dir/obj.bin")
    assert got["Body"].read() == body
    assert got["ETag"] == etag_of(body)
    assert got["ContentLength"] == len(body)
    assert isinstance(got["LastModified"], dt.datetime)
    age = abs((dt.datetime.now(dt.timezone.utc) - got["LastModified"]).total_seconds())
    assert age < 120, got["LastModified"]
    head = s3.head_object(Bucket=bucket, Key="dir/obj.bin")
    assert head["ETag"] == etag_of(body)
    assert head["ContentLength"] == len(body)
    assert head["LastModified"] == got["LastModified"]


def test_empty_object(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    assert put["ETag"] == etag_of(b"")
    got = s3.get_object(Bucket=bucket, Key="empty")
    assert got["Body"].read() == b""
    assert got["ContentLength"] == 0


def test_overwrite_latest_wins(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"first version, longer")
    s3.put_object(Bucket=bucket, Key="k", Body=b"second")
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == b"second"
    assert got["ETag"] == etag_of(b"second")
    assert list_keys(s3, bucket) == ["k"]


@pytest.mark.parametrize(
    "key",
    [
        "with space.txt",
        "plus+sign",
        "percent%20literal",
        "question?mark",
        "hash#tag",
        "ünïcödé/文字/😀",
        "a//double/slash",
        "trailing/",
        "semi;colon=eq&amp",
        "tilde~star*quote'paren()",
    ],
)
def test_special_keys_roundtrip(s3, bucket, key):
    body = key.encode() * 3
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    assert key in list_keys(s3, bucket)
    s3.delete_object(Bucket=bucket, Key=key)
    assert key not in list_keys(s3, bucket)


def test_metadata_and_standard_headers(s3, bucket, s3req):
    expires = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    s3.put_object(
        Bucket=bucket,
        Key="meta",
        Body=b"<html/>",
        ContentType="text/html; charset=utf-8",
        ContentEncoding="identity",
        ContentDisposition='attachment; filename="x.html"',
        ContentLanguage="en-AU",
        CacheControl="max-age=60, public",
        Expires=expires,
        Metadata={"color": "blue", "Mixed-Case": "Value With Spaces", "num": "42"},
    )
    for resp in (s3.head_object(Bucket=bucket, Key="meta"), s3.get_object(Bucket=bucket, Key="meta")):
        assert resp["ContentType"] == "text/html; charset=utf-8"
        assert resp["ContentEncoding"] == "identity"
        assert resp["ContentDisposition"] == 'attachment; filename="x.html"'
        assert resp["ContentLanguage"] == "en-AU"
        assert resp["CacheControl"] == "max-age=60, public"
        assert resp["Metadata"] == {"color": "blue", "mixed-case": "Value With Spaces", "num": "42"}
    r = s3req("HEAD", f"/{bucket}/meta")
    assert r.status == 200
    assert parsedate_to_datetime(r.headers["Expires"]) == expires, r.headers.get("Expires")
    assert r.headers["x-amz-meta-color"] == "blue"


def test_default_content_type(s3, bucket, s3req):
    r = s3req("PUT", f"/{bucket}/noct", body=b"abc")
    assert r.status == 200, r.describe()
    head = s3.head_object(Bucket=bucket, Key="noct")
    assert head["ContentType"] in ("binary/octet-stream", "application/octet-stream")


def test_get_missing_key(s3, bucket, s3req):
    err = client_error(s3.get_object, Bucket=bucket, Key="nope")
    assert_s3_error(err, 404, "NoSuchKey")
    r = s3req("GET", f"/{bucket}/nope")
    assert_s3_error(r, 404, "NoSuchKey")
    assert r.headers.get("x-amz-request-id"), r.describe()


def test_head_missing_key_no_body(s3, bucket, s3req):
    r = s3req("HEAD", f"/{bucket}/nope")
    assert r.status == 404, r.describe()
    assert r.body == b""
    err = client_error(s3.head_object, Bucket=bucket, Key="nope")
    assert_s3_error(err, 404, None)


# ---------------------------------------------------------------- ranges


@pytest.fixture
def hundred(s3, bucket):
    body = bytes(range(100))
    s3.put_object(Bucket=bucket, Key="r", Body=body)
    return bucket, body


@pytest.mark.parametrize(
    "rng,start,end",
    [
        ("bytes=0-9", 0, 9),
        ("bytes=10-", 10, 99),
        ("bytes=-5", 95, 99),
        ("bytes=90-1000", 90, 99),
        ("bytes=50-50", 50, 50),
    ],
)
def test_range(s3req, hundred, rng, start, end):
    bucket, body = hundred
    r = s3req("GET", f"/{bucket}/r", headers={"Range": rng})
    assert r.status == 206, r.describe()
    assert r.body == body[start : end + 1]
    assert r.headers["Content-Range"] == f"bytes {start}-{end}/100"
    assert int(r.headers["Content-Length"]) == end - start + 1
    assert r.headers.get("ETag") == etag_of(body)


def test_range_boto3(s3, hundred):
    bucket, body = hundred
    got = s3.get_object(Bucket=bucket, Key="r", Range="bytes=20-29")
    assert got["Body"].read() == body[20:30]
    assert got["ContentRange"] == "bytes 20-29/100"
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206


@pytest.mark.parametrize("rng", ["bytes=100-", "bytes=200-300"])
def test_unsatisfiable_range(s3req, hundred, rng):
    bucket, _ = hundred
    r = s3req("GET", f"/{bucket}/r", headers={"Range": rng})
    assert_s3_error(r, 416, "InvalidRange")


def test_range_on_empty_object(s3, s3req, bucket):
    s3.put_object(Bucket=bucket, Key="e", Body=b"")
    r = s3req("GET", f"/{bucket}/e", headers={"Range": "bytes=0-0"})
    assert_s3_error(r, 416, "InvalidRange")


@pytest.mark.xfail(
    strict=True,
    reason="known gap: s3s rejects an unparsable Range before mallee sees it, and a Range header covered by "
    "the SigV4 signature cannot be dropped; unsigned requests are handled (test_malformed_range_ignored_unsigned)",
)
def test_malformed_range_ignored(s3req, hundred):
    # RFC 9110 / S3: a syntactically invalid Range header is ignored -> full 200
    bucket, body = hundred
    r = s3req("GET", f"/{bucket}/r", headers={"Range": "bytes=abc"})
    assert r.status == 200, r.describe()
    assert r.body == body


def test_malformed_range_ignored_unsigned(s3, hundred, server):
    # browsers and caches send unsigned requests: the bad Range is ignored
    bucket, body = hundred
    s3.put_object_acl(Bucket=bucket, Key="r", ACL="public-read")
    r = requests.get(f"{server.endpoint}/{bucket}/r", headers={"Range": "bytes=abc"}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.content == body


# ---------------------------------------------------------------- conditionals


def test_conditional_get(s3, s3req, hundred):
    bucket, body = hundred
    etag = etag_of(body)
    head = s3.head_object(Bucket=bucket, Key="r")
    lm = head["LastModified"]
    path = f"/{bucket}/r"

    assert s3req("GET", path, headers={"If-Match": etag}).status == 200

    r = s3req("GET", path, headers={"If-Match": '"0123456789abcdef0123456789abcdef"'})
    assert_s3_error(r, 412, "PreconditionFailed")

    r = s3req("GET", path, headers={"If-None-Match": etag})
    assert r.status == 304, r.describe()
    assert r.body == b""

    r = s3req("GET", path, headers={"If-None-Match": '"0123456789abcdef0123456789abcdef"'})
    assert r.status == 200 and r.body == body

    later = lm + dt.timedelta(hours=1)
    earlier = lm - dt.timedelta(days=1)
    r = s3req("GET", path, headers={"If-Modified-Since": http_date(later)})
    assert r.status == 304, r.describe()
    r = s3req("GET", path, headers={"If-Modified-Since": http_date(lm)})
    assert r.status == 304, r.describe()
    r = s3req("GET", path, headers={"If-Modified-Since": http_date(earlier)})
    assert r.status == 200, r.describe()

    r = s3req("GET", path, headers={"If-Unmodified-Since": http_date(dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc))})
    assert_s3_error(r, 412, "PreconditionFailed")
    r = s3req("GET", path, headers={"If-Unmodified-Since": http_date(later)})
    assert r.status == 200

    # AWS precedence: If-Match true + If-Unmodified-Since false -> 200
    r = s3req(
        "GET",
        path,
        headers={"If-Match": etag, "If-Unmodified-Since": http_date(dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc))},
    )
    assert r.status == 200, r.describe()
    # If-None-Match false + If-Modified-Since true -> 304
    r = s3req("GET", path, headers={"If-None-Match": etag, "If-Modified-Since": http_date(earlier)})
    assert r.status == 304, r.describe()


def test_not_modified_carries_etag(s3req, hundred):
    # RFC 9110 15.4.5: a 304 carries the ETag (and AWS sends it, with Last-Modified)
    bucket, body = hundred
    r = s3req("GET", f"/{bucket}/r", headers={"If-None-Match": etag_of(body)})
    assert r.status == 304, r.describe()
    assert r.headers.get("ETag") == etag_of(body), r.describe()


def test_conditional_head(s3req, hundred):
    bucket, body = hundred
    r = s3req("HEAD", f"/{bucket}/r", headers={"If-Match": '"0123456789abcdef0123456789abcdef"'})
    assert r.status == 412 and r.body == b"", r.describe()
    r = s3req("HEAD", f"/{bucket}/r", headers={"If-None-Match": etag_of(body)})
    assert r.status == 304, r.describe()


def test_conditional_boto3(s3, hundred):
    bucket, body = hundred
    err = client_error(s3.get_object, Bucket=bucket, Key="r", IfMatch='"ffffffffffffffffffffffffffffffff"')
    assert_s3_error(err, 412, "PreconditionFailed")


# ---------------------------------------------------------------- response overrides


def test_response_header_overrides(s3, s3req, hundred):
    bucket, body = hundred
    got = s3.get_object(
        Bucket=bucket,
        Key="r",
        ResponseContentType="application/x-test",
        ResponseContentDisposition='inline; filename="r.bin"',
        ResponseCacheControl="no-cache",
        ResponseContentLanguage="fr",
        ResponseContentEncoding="identity",
        ResponseExpires=dt.datetime(2031, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc),
    )
    assert got["Body"].read() == body
    assert got["ContentType"] == "application/x-test"
    assert got["ContentDisposition"] == 'inline; filename="r.bin"'
    assert got["CacheControl"] == "no-cache"
    assert got["ContentLanguage"] == "fr"
    assert got["ContentEncoding"] == "identity"
    # stored metadata unchanged
    assert s3.head_object(Bucket=bucket, Key="r").get("ContentType") != "application/x-test"


# ---------------------------------------------------------------- digests


def test_content_md5_ok(s3req, s3, bucket):
    body = b"digest me"
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    r = s3req("PUT", f"/{bucket}/d", body=body, headers={"Content-MD5": md5})
    assert r.status == 200, r.describe()
    assert r.headers["ETag"] == etag_of(body)


def test_content_md5_mismatch_bad_digest(s3req, s3, bucket):
    s3.put_object(Bucket=bucket, Key="d", Body=b"original")
    wrong = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    r = s3req("PUT", f"/{bucket}/d", body=b"replacement", headers={"Content-MD5": wrong})
    assert_s3_error(r, 400, "BadDigest")
    assert s3.get_object(Bucket=bucket, Key="d")["Body"].read() == b"original"
    r = s3req("PUT", f"/{bucket}/d2", body=b"replacement", headers={"Content-MD5": wrong})
    assert_s3_error(r, 400, "BadDigest")
    assert "d2" not in list_keys(s3, bucket)


@pytest.mark.parametrize("bad", ["not-base64!!", base64.b64encode(b"short").decode()])
def test_content_md5_malformed_invalid_digest(s3req, s3, bucket, bad):
    r = s3req("PUT", f"/{bucket}/bad", body=b"x", headers={"Content-MD5": bad})
    assert_s3_error(r, 400, "InvalidDigest")
    assert "bad" not in list_keys(s3, bucket)


def test_checksum_header_from_boto3(s3, bucket):
    # boto3 sends x-amz-checksum-crc32 (flexible checksums) on PutObject
    s3.put_object(Bucket=bucket, Key="crc", Body=b"crc body", ChecksumAlgorithm="CRC32")
    assert s3.get_object(Bucket=bucket, Key="crc")["Body"].read() == b"crc body"


def test_checksum_header_mismatch_bad_digest(s3req, s3, bucket):
    # boto3/awscli send x-amz-checksum-crc32 on every PutObject/UploadPart; a wrong
    # value means the body was corrupted in transit: AWS answers 400 BadDigest
    s3.put_object(Bucket=bucket, Key="c", Body=b"original")
    r = s3req("PUT", f"/{bucket}/c", body=b"corrupted", headers={"x-amz-checksum-crc32": "AAAAAA=="})
    assert_s3_error(r, 400, "BadDigest")
    assert s3.get_object(Bucket=bucket, Key="c")["Body"].read() == b"original"


# ---------------------------------------------------------------- delete


def test_delete_object_and_missing(s3, s3req, bucket):
    s3.put_object(Bucket=bucket, Key="gone", Body=b"x")
    r = s3req("DELETE", f"/{bucket}/gone")
    assert r.status == 204, r.describe()
    assert_s3_error(client_error(s3.get_object, Bucket=bucket, Key="gone"), 404, "NoSuchKey")
    r = s3req("DELETE", f"/{bucket}/never-existed")
    assert r.status == 204, r.describe()


def test_delete_objects_verbose(s3, bucket):
    for k in ("a", "b", "c/d"):
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    resp = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "a"}, {"Key": "c/d"}, {"Key": "missing"}], "Quiet": False}
    )
    deleted = sorted(d["Key"] for d in resp.get("Deleted", []))
    assert deleted == ["a", "c/d", "missing"], resp
    assert not resp.get("Errors"), resp
    assert list_keys(s3, bucket) == ["b"]


def test_delete_objects_quiet(s3, bucket):
    for k in ("a", "b", "c"):
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a"}, {"Key": "b"}], "Quiet": True})
    assert not resp.get("Deleted"), resp
    assert not resp.get("Errors"), resp
    assert list_keys(s3, bucket) == ["c"]


def test_delete_objects_requires_md5_or_checksum(s3req, s3, bucket):
    s3.put_object(Bucket=bucket, Key="a", Body=b"a")
    body = b'<Delete><Object><Key>a</Key></Object></Delete>'
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    r = s3req("POST", f"/{bucket}", params=[("delete", None)], body=body, headers={"Content-MD5": md5})
    assert r.status == 200, r.describe()
    assert [e.text for e in r.findall("Key")] == ["a"], r.describe()
    assert list_keys(s3, bucket) == []


def test_delete_objects_malformed_xml(s3req, s3, bucket):
    s3.put_object(Bucket=bucket, Key="a", Body=b"a")
    body = b"<Delete><Object><Key>a</Key></Object>"  # truncated
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    r = s3req("POST", f"/{bucket}", params=[("delete", None)], body=body, headers={"Content-MD5": md5})
    assert_s3_error(r, 400, "MalformedXML")
    assert list_keys(s3, bucket) == ["a"]


def test_delete_objects_over_1000_keys(s3req, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k0", Body=b"x")
    body = ("<Delete>" + "".join(f"<Object><Key>k{i}</Key></Object>" for i in range(1001)) + "</Delete>").encode()
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    r = s3req("POST", f"/{bucket}", params=[("delete", None)], body=body, headers={"Content-MD5": md5})
    assert_s3_error(r, 400, "MalformedXML")
    assert list_keys(s3, bucket) == ["k0"]


# ---------------------------------------------------------------- copy


def test_copy_metadata_copy(s3, bucket):
    body = b"copy source body"
    s3.put_object(Bucket=bucket, Key="src", Body=body, ContentType="text/plain", Metadata={"a": "1"})
    resp = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert resp["CopyObjectResult"]["ETag"] == etag_of(body)
    assert resp["CopyObjectResult"]["LastModified"]
    got = s3.get_object(Bucket=bucket, Key="dst")
    assert got["Body"].read() == body
    assert got["ContentType"] == "text/plain"
    assert got["Metadata"] == {"a": "1"}
    # source untouched
    assert s3.get_object(Bucket=bucket, Key="src")["Body"].read() == body


def test_copy_metadata_replace(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"x", ContentType="text/plain", Metadata={"a": "1"})
    s3.copy_object(
        Bucket=bucket,
        Key="dst",
        CopySource={"Bucket": bucket, "Key": "src"},
        MetadataDirective="REPLACE",
        ContentType="application/json",
        Metadata={"b": "2"},
    )
    head = s3.head_object(Bucket=bucket, Key="dst")
    assert head["ContentType"] == "application/json"
    assert head["Metadata"] == {"b": "2"}


def test_copy_onto_itself(s3, bucket):
    s3.put_object(Bucket=bucket, Key="self", Body=b"x", Metadata={"a": "1"})
    err = client_error(s3.copy_object, Bucket=bucket, Key="self", CopySource={"Bucket": bucket, "Key": "self"})
    assert_s3_error(err, 400, "InvalidRequest")
    # allowed with REPLACE (the usual way to change metadata)
    s3.copy_object(
        Bucket=bucket, Key="self", CopySource={"Bucket": bucket, "Key": "self"}, MetadataDirective="REPLACE",
        Metadata={"a": "2"},
    )
    got = s3.get_object(Bucket=bucket, Key="self")
    assert got["Metadata"] == {"a": "2"}
    assert got["Body"].read() == b"x"


def test_copy_across_buckets_and_special_key(s3, bucket, bucket_factory):
    other = bucket_factory()
    key = "dir/ü sp+ce?.txt"
    s3.put_object(Bucket=bucket, Key=key, Body=b"cross")
    s3.copy_object(Bucket=other, Key="copied", CopySource={"Bucket": bucket, "Key": key})
    assert s3.get_object(Bucket=other, Key="copied")["Body"].read() == b"cross"


def test_copy_conditionals(s3, bucket):
    body = b"cond"
    s3.put_object(Bucket=bucket, Key="src", Body=body)
    src = {"Bucket": bucket, "Key": "src"}
    s3.copy_object(Bucket=bucket, Key="ok", CopySource=src, CopySourceIfMatch=etag_of(body))
    err = client_error(
        s3.copy_object, Bucket=bucket, Key="no1", CopySource=src, CopySourceIfMatch='"ffffffffffffffffffffffffffffffff"'
    )
    assert_s3_error(err, 412, "PreconditionFailed")
    err = client_error(s3.copy_object, Bucket=bucket, Key="no2", CopySource=src, CopySourceIfNoneMatch=etag_of(body))
    assert_s3_error(err, 412, "PreconditionFailed")
    err = client_error(
        s3.copy_object, Bucket=bucket, Key="no3", CopySource=src,
        CopySourceIfUnmodifiedSince=dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc),
    )
    assert_s3_error(err, 412, "PreconditionFailed")
    err = client_error(
        s3.copy_object, Bucket=bucket, Key="no4", CopySource=src,
        CopySourceIfModifiedSince=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1),
    )
    assert_s3_error(err, 412, "PreconditionFailed")
    assert sorted(list_keys(s3, bucket)) == ["ok", "src"]


def test_copy_missing_source(s3, bucket):
    err = client_error(s3.copy_object, Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "missing"})
    assert_s3_error(err, 404, "NoSuchKey")
    assert list_keys(s3, bucket) == []


def test_copy_raw_header_forms(s3req, s3, bucket):
    s3.put_object(Bucket=bucket, Key="a b", Body=b"raw copy")
    # x-amz-copy-source with and without leading slash, URL-encoded
    for i, src in enumerate([f"/{bucket}/{qkey('a b')}", f"{bucket}/{qkey('a b')}"]):
        r = s3req("PUT", f"/{bucket}/c{i}", headers={"x-amz-copy-source": src})
        assert r.status == 200, r.describe()
        assert local_root(r) == "CopyObjectResult", r.describe()
        assert s3.get_object(Bucket=bucket, Key=f"c{i}")["Body"].read() == b"raw copy"


def local_root(r):
    return r.xml.tag.split("}")[-1]


def test_md5hex_helper_sane():
    assert md5hex(b"") == "d41d8cd98f00b204e9800998ecf8427e"
