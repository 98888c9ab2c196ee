"""Limits: key length, 5 GiB single PUT, per-account quota."""

import socket
import time
import uuid
from urllib.parse import urlsplit

import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import (
    _FixedPayloadS3SigV4,
    S3Response,
    assert_s3_error,
    client_error,
    list_keys,
    s3_client,
)

FIVE_GIB = 5 * 1024**3


def test_key_length_limit(s3req, s3, bucket):
    ok = "k" * 1024
    r = s3req("PUT", f"/{bucket}/{ok}", body=b"x")
    assert r.status == 200, r.describe()
    r = s3req("PUT", f"/{bucket}/{'k' * 1025}", body=b"x")
    assert_s3_error(r, 400, "KeyTooLongError")
    assert list_keys(s3, bucket) == [ok]


def test_key_length_counts_utf8_bytes(s3req, s3, bucket):
    ok = "é" * 512  # 1024 bytes
    assert s3.put_object(Bucket=bucket, Key=ok, Body=b"x")["ResponseMetadata"]["HTTPStatusCode"] == 200
    long_key = "é" * 513  # 1026 bytes, 513 characters
    err = client_error(s3.put_object, Bucket=bucket, Key=long_key, Body=b"x")
    assert_s3_error(err, 400, "KeyTooLongError")
    err = client_error(s3.create_multipart_upload, Bucket=bucket, Key=long_key)
    assert_s3_error(err, 400, "KeyTooLongError")
    assert list_keys(s3, bucket) == [ok]


def _raw_put_declared_length(server, bucket, key, declared: int, sent: bytes, timeout=15.0):
    """PUT declaring Content-Length `declared` but sending only `sent`; read the answer."""
    c = server.admin
    url = f"{server.endpoint}/{bucket}/{key}"
    req = AWSRequest(method="PUT", url=url, data=b"", headers={})
    _FixedPayloadS3SigV4(Credentials(c["access_key_id"], c["secret_access_key"]), "s3", "mallee-1",
                         "UNSIGNED-PAYLOAD").add_auth(req)
    p = req.prepare()
    parts = urlsplit(url)
    lines = [f"PUT {parts.path} HTTP/1.1", f"Host: {parts.netloc}"]
    for k, v in p.headers.items():
        if k.lower() in ("host", "content-length"):
            continue
        lines.append(f"{k}: {v}")
    lines.append(f"Content-Length: {declared}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    s = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    t0 = time.monotonic()
    try:
        s.sendall(head)
        try:
            s.sendall(sent)
        except OSError:
            pass  # server may already have answered and closed
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        header_blob, _, rest = buf.partition(b"\r\n\r\n")
        status_line, *hdr_lines = header_blob.decode("latin-1").split("\r\n")
        hdrs = {}
        for line in hdr_lines:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        body = rest
        n = int(hdrs.get("content-length", "0") or 0)
        while len(body) < n:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
        import requests.structures

        return S3Response(int(status_line.split()[1]), requests.structures.CaseInsensitiveDict(hdrs), body,
                          time.monotonic() - t0)
    finally:
        s.close()


def test_entity_too_large_answers_early(server, s3, bucket):
    r = _raw_put_declared_length(server, bucket, "huge", FIVE_GIB + 1, b"x" * 1024)
    assert_s3_error(r, 400, "EntityTooLarge")
    assert r.elapsed < 10, f"server waited {r.elapsed:.1f}s for the body"
    assert list_keys(s3, bucket) == []


# ---------------------------------------------------------------- quota


@pytest.fixture
def quota_account(server):
    key = server.create_account(f"quota{uuid.uuid4().hex[:8]}")
    return key


def _set_quota(server, account, *args):
    return server.admin_cli("account", "quota", "--account", account, *args, check=True)


def test_quota_exceeded(server, quota_account):
    name = quota_account["account_name"]
    c = s3_client(server, quota_account)
    b = f"quota-{uuid.uuid4().hex[:16]}"
    c.create_bucket(Bucket=b)
    _set_quota(server, name, "--bytes", "1000")
    c.put_object(Bucket=b, Key="first", Body=b"a" * 600)

    err = client_error(c.put_object, Bucket=b, Key="second", Body=b"b" * 600)
    assert_s3_error(err, 403, "QuotaExceeded")
    assert list_keys(c, b) == ["first"]

    # copy that would exceed
    err = client_error(c.copy_object, Bucket=b, Key="copy", CopySource={"Bucket": b, "Key": "first"})
    assert_s3_error(err, 403, "QuotaExceeded")
    assert list_keys(c, b) == ["first"]

    # multipart beyond quota: refused at UploadPart or at Complete, never stored
    up = c.create_multipart_upload(Bucket=b, Key="mp")
    try:
        e = c.upload_part(Bucket=b, Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=b"m" * 700)["ETag"]
        err = client_error(
            c.complete_multipart_upload, Bucket=b, Key="mp", UploadId=up["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e}]},
        )
    except Exception as exc:  # refused at UploadPart
        err = exc
    assert_s3_error(err, 403, "QuotaExceeded")
    assert list_keys(c, b) == ["first"]
    try:
        c.abort_multipart_upload(Bucket=b, Key="mp", UploadId=up["UploadId"])
    except Exception:
        pass

    # fits exactly
    c.put_object(Bucket=b, Key="fits", Body=b"c" * 400)
    assert sorted(list_keys(c, b)) == ["first", "fits"]
    err = client_error(c.put_object, Bucket=b, Key="one-more", Body=b"d")
    assert_s3_error(err, 403, "QuotaExceeded")

    # deleting frees space
    c.delete_object(Bucket=b, Key="first")
    c.put_object(Bucket=b, Key="second", Body=b"b" * 600)

    # clear -> unlimited
    _set_quota(server, name, "--clear")
    c.put_object(Bucket=b, Key="big", Body=b"e" * 100_000)
    assert sorted(list_keys(c, b)) == ["big", "fits", "second"]


def test_quota_is_per_account(server, s3, bucket, quota_account):
    _set_quota(server, quota_account["account_name"], "--bytes", "10")
    s3.put_object(Bucket=bucket, Key="admin-unaffected", Body=b"z" * 10_000)
    c = s3_client(server, quota_account)
    b = f"quota-{uuid.uuid4().hex[:16]}"
    c.create_bucket(Bucket=b)
    err = client_error(c.put_object, Bucket=b, Key="k", Body=b"z" * 11)
    assert_s3_error(err, 403, "QuotaExceeded")
    assert list_keys(c, b) == []
