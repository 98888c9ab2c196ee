"""S3 fixtures and helpers for the black-box S3 acceptance suite.

Layout note: tests/acceptance has no __init__.py and pytest runs in the
default "prepend" import mode, so every conftest.py is imported as the module
``conftest``.  Loading this file replaces ``sys.modules["conftest"]`` and the
top-level test modules (``from conftest import unique``) would then get this
module instead of the parent one.  To keep them working, this module first
re-exports every plain helper of the parent conftest (not its fixtures or
hooks, which pytest already registered), then adds the S3 helpers.  S3 test
modules import everything from ``conftest`` as well.
"""

from __future__ import annotations

import gc
import hashlib
import hmac
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import types
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

# ---------------------------------------------------------------- parent re-export

_PARENT_PATH = Path(__file__).resolve().parents[1] / "conftest.py"


def _find_parent_module():
    for obj in gc.get_objects():
        if isinstance(obj, types.ModuleType):
            f = getattr(obj, "__file__", None)
            if f and Path(f).resolve() == _PARENT_PATH and obj is not sys.modules.get(__name__):
                return obj
    # Not loaded (should not happen under pytest): load a private copy.
    spec = importlib.util.spec_from_file_location("_mallee_acceptance_conftest", _PARENT_PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _is_fixture(v) -> bool:
    return type(v).__name__ in ("FixtureFunctionDefinition", "FixtureFunctionMarker") or hasattr(
        v, "_pytestfixturefunction"
    )


_parent = _find_parent_module()
for _k, _v in list(vars(_parent).items()):
    if _k.startswith("__") or _k.startswith("pytest_") or _is_fixture(_v):
        continue
    globals().setdefault(_k, _v)

# Names used below (they come from the parent).
REGION = _parent.REGION
MalleeServer = _parent.MalleeServer
unique = _parent.unique
run_mallee = _parent.run_mallee

import boto3  # noqa: E402
import requests  # noqa: E402
from botocore.auth import HmacV1Auth, HmacV1QueryAuth, S3SigV4Auth, S3SigV4QueryAuth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
MiB = 1024 * 1024
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTH_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"


def md5hex(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def etag_of(b: bytes) -> str:
    return f'"{md5hex(b)}"'


def multipart_etag(parts: list[bytes]) -> str:
    digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    return f'"{digest}-{len(parts)}"'


def bucket_name(prefix: str = "mt") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


def qkey(key: str) -> str:
    """URL-path-encode an object key (slashes kept)."""
    return quote(key, safe="/-_.~")


# ---------------------------------------------------------------- boto3 clients


def s3_client(
    server,
    creds: dict | None = None,
    *,
    sig: str = "s3v4",
    addressing: str = "path",
    endpoint: str | None = None,
    region: str = REGION,
    payload_signing: bool | None = None,
    **cfg,
):
    creds = creds or server.admin
    s3cfg = {"addressing_style": addressing}
    if payload_signing is not None:
        s3cfg["payload_signing_enabled"] = payload_signing
    return boto3.client(
        "s3",
        region_name=region,
        endpoint_url=endpoint or server.endpoint,
        aws_access_key_id=creds["access_key_id"],
        aws_secret_access_key=creds["secret_access_key"],
        config=Config(
            signature_version=sig,
            s3=s3cfg,
            retries={"total_max_attempts": 1},
            connect_timeout=5,
            read_timeout=cfg.pop("read_timeout", 60),
            **cfg,
        ),
    )


def virtual_host_client(server, creds=None, domain="s3.localhost", **kw):
    """boto3 client that builds BUCKET.<domain>:PORT URLs but connects to 127.0.0.1.

    The request is signed for the virtual host; a before-send hook rewrites the
    URL to 127.0.0.1 and keeps the Host header.
    """
    c = s3_client(server, creds, addressing="virtual", endpoint=f"http://{domain}:{server.port}", **kw)

    def before_send(request, **_):
        parts = urlsplit(request.url)
        request.headers["Host"] = parts.netloc
        request.url = request.url.replace(f"//{parts.netloc}", f"//127.0.0.1:{server.port}", 1)

    c.meta.events.register("before-send.s3", before_send)
    return c


def empty_bucket(client, name: str):
    try:
        while True:
            resp = client.list_objects_v2(Bucket=name, MaxKeys=1000)
            objs = [{"Key": o["Key"]} for o in resp.get("Contents", [])]
            if not objs:
                break
            client.delete_objects(Bucket=name, Delete={"Objects": objs, "Quiet": True})
    except Exception:
        pass
    # Versions and delete markers keep a bucket too.
    try:
        while True:
            resp = client.list_object_versions(Bucket=name, MaxKeys=1000)
            objs = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in resp.get("Versions", []) + resp.get("DeleteMarkers", [])
            ]
            if not objs:
                break
            client.delete_objects(Bucket=name, Delete={"Objects": objs, "Quiet": True})
    except Exception:
        pass
    try:
        ups = client.list_multipart_uploads(Bucket=name).get("Uploads", [])
        for u in ups:
            client.abort_multipart_upload(Bucket=name, Key=u["Key"], UploadId=u["UploadId"])
    except Exception:
        pass


def delete_bucket_quietly(client, name: str):
    empty_bucket(client, name)
    try:
        client.delete_bucket(Bucket=name)
    except Exception:
        pass


# ---------------------------------------------------------------- raw S3 requests


@dataclass
class S3Response:
    status: int
    headers: requests.structures.CaseInsensitiveDict
    body: bytes
    elapsed: float = 0.0
    _xml: object = field(default=None, repr=False)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def xml(self):
        if self._xml is None:
            self._xml = ET.fromstring(self.body)
        return self._xml

    def _root_child(self, name):
        try:
            root = self.xml
        except ET.ParseError:
            return None
        if local(root.tag) != "Error":
            return None
        for c in root:
            if local(c.tag) == name:
                return c.text
        return None

    @property
    def error_code(self):
        return self._root_child("Code")

    @property
    def error_message(self):
        return self._root_child("Message")

    @property
    def body_request_id(self):
        return self._root_child("RequestId")

    def findall(self, name):
        return [e for e in self.xml.iter() if local(e.tag) == name]

    def findtext(self, name, default=None):
        for e in self.xml.iter():
            if local(e.tag) == name:
                return e.text or ""
        return default

    def describe(self) -> str:
        hdrs = "\n".join(f"{k}: {v}" for k, v in self.headers.items())
        return f"HTTP {self.status}\n{hdrs}\n\n{self.text[:2000]}"


def local(tag: str) -> str:
    return tag.split("}")[-1]


class _FixedPayloadS3SigV4(S3SigV4Auth):
    """S3SigV4Auth with a caller-chosen x-amz-content-sha256 value."""

    def __init__(self, credentials, service, region, payload_value=None, timestamp=None):
        super().__init__(credentials, service, region)
        self._payload_value = payload_value
        self._timestamp = timestamp

    def payload(self, request):
        if self._payload_value is not None:
            return self._payload_value
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        return hashlib.sha256(body).hexdigest()

    def add_auth(self, request):
        if self._timestamp is None:
            return super().add_auth(request)
        request.context["timestamp"] = self._timestamp
        self._modify_request_before_signing(request)
        canonical_request = self.canonical_request(request)
        string_to_sign = self.string_to_sign(request, canonical_request)
        signature = self.signature(string_to_sign, request)
        self._inject_signature_to_request(request, signature)
        return signature


def encode_query(params) -> str:
    if not params:
        return ""
    items = list(params.items()) if isinstance(params, dict) else list(params)
    out = []
    for k, v in items:
        if v is None:
            out.append(quote(str(k), safe="-_.~"))
        else:
            out.append(f"{quote(str(k), safe='-_.~')}={quote(str(v), safe='-_.~')}")
    return "&".join(out)


def s3_raw(
    server,
    method: str = "GET",
    path: str = "/",
    *,
    params=None,
    headers: dict | None = None,
    body: bytes = b"",
    creds: dict | None = None,
    auth: str | None = "v4",
    host: str | None = None,
    region: str = REGION,
    payload_hash: str | None = None,
    timeout: float = 60,
    endpoint: str | None = None,
) -> S3Response:
    """One S3 REST request.

    path: already-encoded path ('/bucket/key'); params: dict/list ((k, None) for
    bare subresources like ('acl', None)); auth: 'v4', 'v2' or None (anonymous);
    host: Host header to send (and sign) while connecting to 127.0.0.1.
    """
    endpoint = endpoint or server.endpoint
    url = endpoint.rstrip("/") + path
    qs = encode_query(params)
    if qs:
        url += "?" + qs
    hdrs = dict(headers or {})
    if host:
        hdrs["Host"] = host
    req = AWSRequest(method=method, url=url, data=body, headers=hdrs)
    if auth:
        c = creds or server.admin
        cr = Credentials(c["access_key_id"], c["secret_access_key"])
        if auth == "v4":
            _FixedPayloadS3SigV4(cr, "s3", region, payload_hash).add_auth(req)
        elif auth == "v2":
            if host:
                # HmacV1 signs /bucket/key; for virtual-host requests the
                # bucket comes from the Host header.
                req.auth_path = "/" + host.split(".")[0] + path
            HmacV1Auth(cr).add_auth(req)
        else:
            raise ValueError(auth)
    prepared = req.prepare()
    t0 = time.monotonic()
    r = requests.request(
        prepared.method,
        prepared.url,
        headers=dict(prepared.headers),
        data=prepared.body,
        timeout=timeout,
        allow_redirects=False,
    )
    return S3Response(r.status_code, r.headers, r.content, time.monotonic() - t0)


def presign_v4(server, method, path, *, creds=None, expires=3600, params=None, region=REGION) -> str:
    c = creds or server.admin
    url = server.endpoint + path
    qs = encode_query(params)
    if qs:
        url += "?" + qs
    req = AWSRequest(method=method, url=url)
    S3SigV4QueryAuth(Credentials(c["access_key_id"], c["secret_access_key"]), "s3", region, expires=expires).add_auth(
        req
    )
    return req.url


def presign_v2(server, method, path, *, creds=None, expires=3600) -> str:
    c = creds or server.admin
    req = AWSRequest(method=method, url=server.endpoint + path)
    HmacV1QueryAuth(Credentials(c["access_key_id"], c["secret_access_key"]), expires=expires).add_auth(req)
    return req.url


# ---------------------------------------------------------------- aws-chunked


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _signing_key(secret: str, date: str, region: str, service: str = "s3") -> bytes:
    k = _hmac(("AWS4" + secret).encode(), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def crc32_b64(data: bytes) -> str:
    import base64
    import zlib

    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def chunked_put(
    server,
    path: str,
    data: bytes,
    *,
    mode: str = "signed",
    chunk_size: int = 64 * 1024,
    creds: dict | None = None,
    region: str = REGION,
    extra_headers: dict | None = None,
    tamper_chunk: int | None = None,
    trailer_checksum: str | None = None,
) -> S3Response:
    """PUT with Content-Encoding aws-chunked.

    mode: 'signed'          STREAMING-AWS4-HMAC-SHA256-PAYLOAD
          'signed-trailer'  STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER (x-amz-checksum-crc32)
          'unsigned-trailer' STREAMING-UNSIGNED-PAYLOAD-TRAILER (x-amz-checksum-crc32)
    tamper_chunk: index of a chunk whose data is altered after signing.
    trailer_checksum: override the trailer checksum value (to send a wrong one).
    """
    c = creds or server.admin
    now = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    date = now[:8]
    scope = f"{date}/{region}/s3/aws4_request"
    chunks = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)] or []
    trailer = mode.endswith("trailer")
    content_sha = {
        "signed": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "signed-trailer": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        "unsigned-trailer": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    }[mode]
    checksum_value = trailer_checksum or crc32_b64(data)

    # Compute the encoded body length first (needed for Content-Length in the seed signature).
    def build_body(seed_sig: str | None) -> bytes:
        out = bytearray()
        prev = seed_sig
        key = _signing_key(c["secret_access_key"], date, region)
        all_chunks = chunks + [b""]
        for i, ch in enumerate(all_chunks):
            sent = ch
            if tamper_chunk is not None and i == tamper_chunk and ch:
                sent = bytes([ch[0] ^ 0xFF]) + ch[1:]
            if mode == "unsigned-trailer":
                out += f"{len(ch):x}\r\n".encode()
            else:
                sts = "\n".join(
                    [
                        "AWS4-HMAC-SHA256-PAYLOAD",
                        now,
                        scope,
                        prev,
                        EMPTY_SHA256,
                        hashlib.sha256(ch).hexdigest(),
                    ]
                )
                sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
                prev = sig
                out += f"{len(ch):x};chunk-signature={sig}\r\n".encode()
            if ch:
                out += sent + b"\r\n"
        if trailer:
            trailer_line = f"x-amz-checksum-crc32:{checksum_value}"
            out += trailer_line.encode() + b"\r\n"
            if mode == "signed-trailer":
                sts = "\n".join(
                    [
                        "AWS4-HMAC-SHA256-TRAILER",
                        now,
                        scope,
                        prev,
                        hashlib.sha256((trailer_line + "\n").encode()).hexdigest(),
                    ]
                )
                tsig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
                out += f"x-amz-trailer-signature:{tsig}\r\n".encode()
            out += b"\r\n"
        else:
            # final zero chunk already ended with its header line; AWS format
            # ends the zero-length chunk with an extra CRLF
            out += b"\r\n"
        return bytes(out)

    body_len = len(build_body("0" * 64))
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data)),
        "Content-Length": str(body_len),
        "x-amz-date": now,
        "x-amz-content-sha256": content_sha,
    }
    if trailer:
        headers["x-amz-trailer"] = "x-amz-checksum-crc32"
    if extra_headers:
        headers.update(extra_headers)
    url = server.endpoint + path
    req = AWSRequest(method="PUT", url=url, data=b"", headers=headers)
    signer = _FixedPayloadS3SigV4(
        Credentials(c["access_key_id"], c["secret_access_key"]), "s3", region, content_sha, timestamp=now
    )
    seed = signer.add_auth(req)
    body = build_body(seed)
    assert len(body) == body_len
    prepared = req.prepare()
    hdrs = dict(prepared.headers)
    hdrs["Content-Length"] = str(body_len)
    r = requests.put(prepared.url, headers=hdrs, data=body, timeout=60)
    return S3Response(r.status_code, r.headers, r.content)


# ---------------------------------------------------------------- assertions


def assert_s3_error(resp, status: int | tuple, code: str | None):
    """Assert an S3 error: HTTP status, <Error><Code>, and a RequestId.

    resp: S3Response, or a botocore ClientError (or pytest ExceptionInfo of one).
    code=None for HEAD requests (no body).
    """
    if hasattr(resp, "value") and isinstance(resp.value, ClientError):
        resp = resp.value
    allowed = status if isinstance(status, tuple) else (status,)
    if isinstance(resp, ClientError):
        r = resp.response
        got_status = r.get("ResponseMetadata", {}).get("HTTPStatusCode")
        got_code = r.get("Error", {}).get("Code")
        ctx = json.dumps({k: v for k, v in r.items()}, default=str)[:2000]
        assert got_status in allowed, f"expected HTTP {status}, got {got_status}\n{ctx}"
        if code is not None:
            assert got_code == code, f"expected error code {code}, got {got_code!r}\n{ctx}"
        rid = r.get("ResponseMetadata", {}).get("RequestId") or r.get("Error", {}).get("RequestId")
        assert rid, f"no RequestId (body <RequestId> or x-amz-request-id header)\n{ctx}"
        return
    ctx = resp.describe()
    assert resp.status in allowed, f"expected HTTP {status}, got {resp.status}\n{ctx}"
    if code is None:
        return
    try:
        root = resp.xml
    except ET.ParseError:
        raise AssertionError(f"error body is not XML\n{ctx}")
    assert local(root.tag) == "Error", f"error root element must be <Error>\n{ctx}"
    assert resp.error_code == code, f"expected error code {code}, got {resp.error_code!r}\n{ctx}"
    assert resp.error_message is not None, f"error without <Message>\n{ctx}"
    assert (resp.body_request_id or "").strip(), f"error without <RequestId>\n{ctx}"


def client_error(fn, *a, **kw) -> ClientError:
    with pytest.raises(ClientError) as ei:
        fn(*a, **kw)
    return ei.value


def canonical_id(client) -> str:
    return client.list_buckets()["Owner"]["ID"]


def list_keys(client, bucket: str, **kw) -> list[str]:
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, **kw):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    return keys


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def s3(server):
    """boto3 S3 client (admin account, path style, SigV4)."""
    return s3_client(server)


@pytest.fixture(scope="session")
def s3_other(server, other_account):
    """boto3 S3 client for a second account."""
    return s3_client(server, other_account)


@pytest.fixture
def bucket(s3):
    """A fresh bucket owned by the admin account; emptied and deleted afterwards."""
    name = bucket_name()
    s3.create_bucket(Bucket=name)
    yield name
    delete_bucket_quietly(s3, name)


@pytest.fixture
def bucket_factory(s3):
    made = []

    def make(client=None, acl=None, **kw):
        client = client or s3
        name = bucket_name()
        args = {"Bucket": name, **kw}
        if acl:
            args["ACL"] = acl
        client.create_bucket(**args)
        made.append((client, name))
        return name

    yield make
    for client, name in made:
        delete_bucket_quietly(client, name)


@pytest.fixture
def s3req(server):
    """s3req(method, path, **kw) -> S3Response (SigV4 by default)."""

    def call(method="GET", path="/", **kw):
        return s3_raw(server, method, path, **kw)

    return call


@pytest.fixture(scope="session")
def s3cmd_bin():
    import shutil

    path = shutil.which("s3cmd")
    if not path:
        pytest.fail("s3cmd not installed (apt-get install -y s3cmd)")
    return path
