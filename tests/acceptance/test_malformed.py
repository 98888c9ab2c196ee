"""Malformed requests: exact AWS error code + HTTP status, and nothing changes.

Every case is sent raw (hand-signed with botocore's SigV4Auth unless the case
is about auth), so the client cannot "fix" the request, and the account's
observable state (DescribeKeyPairs incl. tags + DescribeTags) is compared
before and after.
"""

import datetime as dt
import socket
import time
from urllib.parse import urlsplit

import pytest

from conftest import API_VERSION, assert_aws_error, raw_request, snapshot, unique

EXISTING = "malformed-existing"
MISSING_KEY_ID = "key-0123456789abcdef0"


@pytest.fixture(scope="module")
def existing(server):
    ec2 = server.client()
    name = unique(EXISTING)
    kp = ec2.create_key_pair(
        KeyName=name, TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": "keep", "Value": "me"}]}]
    )
    # fill up to 49 tags so that two more exceed the 50-tag limit
    ec2.create_tags(Resources=[kp["KeyPairId"]], Tags=[{"Key": f"fill{i:02d}", "Value": "x"} for i in range(48)])
    return {"name": name, "id": kp["KeyPairId"]}


def _fresh():
    return unique("never-created")


# (case id, params builder(ctx) -> list of (k, v), expected code, expected status, raw() kwargs)
CASES = [
    ("unknown-action", lambda c: [("Action", "DescribeUnicorns")], "InvalidAction", 400, {}),
    ("missing-action", lambda c: [("KeyName", _fresh())], "MissingAction", 400, {}),
    ("create-keypair-no-name", lambda c: [("Action", "CreateKeyPair")], "MissingParameter", 400, {}),
    ("create-keypair-duplicate", lambda c: [("Action", "CreateKeyPair"), ("KeyName", c["name"])], "InvalidKeyPair.Duplicate", 400, {}),
    ("create-keypair-bad-type", lambda c: [("Action", "CreateKeyPair"), ("KeyName", _fresh()), ("KeyType", "dsa")], "InvalidParameterValue", 400, {}),
    ("create-keypair-bad-format", lambda c: [("Action", "CreateKeyPair"), ("KeyName", _fresh()), ("KeyFormat", "der")], "InvalidParameterValue", 400, {}),
    ("create-keypair-name-too-long", lambda c: [("Action", "CreateKeyPair"), ("KeyName", "k" * 256)], "InvalidParameterValue", 400, {}),
    (
        "create-keypair-tagspec-wrong-resource-type",
        lambda c: [("Action", "CreateKeyPair"), ("KeyName", _fresh()), ("TagSpecification.1.ResourceType", "instance"),
                   ("TagSpecification.1.Tag.1.Key", "a"), ("TagSpecification.1.Tag.1.Value", "b")],
        "InvalidParameterValue", 400, {},
    ),
    (
        "create-keypair-tagspec-reserved-key",
        lambda c: [("Action", "CreateKeyPair"), ("KeyName", _fresh()), ("TagSpecification.1.ResourceType", "key-pair"),
                   ("TagSpecification.1.Tag.1.Key", "aws:owner"), ("TagSpecification.1.Tag.1.Value", "b")],
        "InvalidParameterValue", 400, {},
    ),
    ("import-keypair-junk", lambda c: [("Action", "ImportKeyPair"), ("KeyName", _fresh()), ("PublicKeyMaterial", "c3NoLXJzYSBKVU5LIHRlc3RAaG9zdA==")], "InvalidKey.Format", 400, {}),
    ("import-keypair-empty-material", lambda c: [("Action", "ImportKeyPair"), ("KeyName", _fresh()), ("PublicKeyMaterial", "")], "MissingParameter", 400, {}),
    ("import-keypair-no-name", lambda c: [("Action", "ImportKeyPair"), ("PublicKeyMaterial", "c3NoLXJzYSBKVU5LIHRlc3RAaG9zdA==")], "MissingParameter", 400, {}),
    ("describe-keypairs-missing-name", lambda c: [("Action", "DescribeKeyPairs"), ("KeyName.1", _fresh())], "InvalidKeyPair.NotFound", 400, {}),
    ("describe-keypairs-missing-id", lambda c: [("Action", "DescribeKeyPairs"), ("KeyPairId.1", MISSING_KEY_ID)], "InvalidKeyPair.NotFound", 400, {}),
    ("describe-keypairs-bad-filter", lambda c: [("Action", "DescribeKeyPairs"), ("Filter.1.Name", "colour"), ("Filter.1.Value.1", "red")], "InvalidParameterValue", 400, {}),
    ("delete-keypair-no-name-no-id", lambda c: [("Action", "DeleteKeyPair")], "MissingParameter", 400, {}),
    ("create-tags-no-resource", lambda c: [("Action", "CreateTags"), ("Tag.1.Key", "a"), ("Tag.1.Value", "b")], "MissingParameter", 400, {}),
    ("create-tags-no-tags", lambda c: [("Action", "CreateTags"), ("ResourceId.1", c["id"])], "MissingParameter", 400, {}),
    ("create-tags-malformed-id", lambda c: [("Action", "CreateTags"), ("ResourceId.1", "foo-123"), ("Tag.1.Key", "a"), ("Tag.1.Value", "b")], "InvalidID", 400, {}),
    ("create-tags-missing-keypair", lambda c: [("Action", "CreateTags"), ("ResourceId.1", MISSING_KEY_ID), ("Tag.1.Key", "a"), ("Tag.1.Value", "b")], "InvalidKeyPair.NotFound", 400, {}),
    (
        "create-tags-one-missing-of-two",
        lambda c: [("Action", "CreateTags"), ("ResourceId.1", c["id"]), ("ResourceId.2", MISSING_KEY_ID), ("Tag.1.Key", "half"), ("Tag.1.Value", "b")],
        "InvalidKeyPair.NotFound", 400, {},
    ),
    ("create-tags-reserved-prefix", lambda c: [("Action", "CreateTags"), ("ResourceId.1", c["id"]), ("Tag.1.Key", "aws:x"), ("Tag.1.Value", "b")], "InvalidParameterValue", 400, {}),
    ("create-tags-key-too-long", lambda c: [("Action", "CreateTags"), ("ResourceId.1", c["id"]), ("Tag.1.Key", "k" * 129), ("Tag.1.Value", "b")], "InvalidParameterValue", 400, {}),
    ("create-tags-value-too-long", lambda c: [("Action", "CreateTags"), ("ResourceId.1", c["id"]), ("Tag.1.Key", "long"), ("Tag.1.Value", "v" * 257)], "InvalidParameterValue", 400, {}),
    (
        "create-tags-over-50",
        lambda c: [("Action", "CreateTags"), ("ResourceId.1", c["id"]), ("Tag.1.Key", "over1"), ("Tag.1.Value", "x"), ("Tag.2.Key", "over2"), ("Tag.2.Value", "x")],
        "TagLimitExceeded", 400, {},
    ),
    ("delete-tags-malformed-id", lambda c: [("Action", "DeleteTags"), ("ResourceId.1", "foo-bar"), ("Tag.1.Key", "keep")], "InvalidID", 400, {}),
    ("describe-tags-max-results-too-small", lambda c: [("Action", "DescribeTags"), ("MaxResults", "4")], "InvalidParameterValue", 400, {}),
    ("describe-tags-max-results-too-big", lambda c: [("Action", "DescribeTags"), ("MaxResults", "1001")], "InvalidParameterValue", 400, {}),
    ("describe-tags-max-results-not-int", lambda c: [("Action", "DescribeTags"), ("MaxResults", "ten")], "InvalidParameterValue", 400, {}),
    ("describe-tags-bad-next-token", lambda c: [("Action", "DescribeTags"), ("MaxResults", "5"), ("NextToken", "not-a-token!!")], "InvalidPaginationToken", 400, {}),
    ("describe-tags-bad-filter", lambda c: [("Action", "DescribeTags"), ("Filter.1.Name", "owner"), ("Filter.1.Value.1", "x")], "InvalidParameterValue", 400, {}),
    ("describe-instance-types-unknown", lambda c: [("Action", "DescribeInstanceTypes"), ("InstanceType.1", "m9.huge")], "InvalidInstanceType", 400, {}),
    ("describe-instance-types-max-results", lambda c: [("Action", "DescribeInstanceTypes"), ("MaxResults", "4")], "InvalidParameterValue", 400, {}),
    ("describe-zones-unknown", lambda c: [("Action", "DescribeAvailabilityZones"), ("ZoneName.1", "nowhere-1z")], "InvalidParameterValue", 400, {}),
    # authentication failures on a mutating call: nothing may be created
    ("create-keypair-unsigned", lambda c: [("Action", "CreateKeyPair"), ("KeyName", _fresh())], "MissingParameter", 400, {"sign": False}),
    ("create-keypair-unknown-key", lambda c: [("Action", "CreateKeyPair"), ("KeyName", _fresh())], "AuthFailure", 401,
     {"creds": {"access_key_id": "AKIAUNKNOWNUNKNOWN00", "secret_access_key": "s" * 40}}),
    ("create-keypair-bad-signature", lambda c: [("Action", "CreateKeyPair"), ("KeyName", _fresh())], "SignatureDoesNotMatch", 403, {"bad_secret": True}),
    ("create-keypair-expired", lambda c: [("Action", "CreateKeyPair"), ("KeyName", _fresh())], "RequestExpired", 400, {"skew_minutes": -30}),
]

assert len({c[0] for c in CASES}) == len(CASES) >= 20


@pytest.mark.parametrize("case_id,build,code,status,kw", CASES, ids=[c[0] for c in CASES])
def test_malformed(server, ec2, existing, case_id, build, code, status, kw):
    kw = dict(kw)
    creds = dict(server.admin)
    if kw.pop("bad_secret", False):
        creds["secret_access_key"] = "Z" + creds["secret_access_key"][1:]
    kw.setdefault("creds", creds)
    skew = kw.pop("skew_minutes", None)
    if skew is not None:
        kw["when"] = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=skew)
    params = build(existing)
    before = snapshot(ec2)
    resp = raw_request(server.endpoint, params, **kw)
    assert_aws_error(resp, code, status)
    after = snapshot(ec2)
    assert after == before, f"{case_id}: store changed by a failed request"


def _read_response(sock, timeout):
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return data


def test_oversized_content_length_rejected_promptly(server, ec2):
    """A huge Content-Length with a trickle of data: 413 at once, no buffering."""
    before = snapshot(ec2)
    u = urlsplit(server.endpoint)
    body_start = f"Action=CreateKeyPair&Version={API_VERSION}&KeyName={unique('huge')}&Pad=".encode()
    head = (
        f"POST / HTTP/1.1\r\nHost: {u.netloc}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {64 * 1024 * 1024}\r\n\r\n"
    ).encode()
    t0 = time.monotonic()
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        s.sendall(head + body_start + b"x" * 1024)
        resp = _read_response(s, 5)
    elapsed = time.monotonic() - t0
    assert resp, "no response within 5 s: the server seems to wait for the whole 64 MiB body"
    status_line = resp.split(b"\r\n", 1)[0].decode()
    assert " 413 " in status_line + " ", status_line
    assert elapsed < 5
    assert snapshot(ec2) == before


def test_oversized_chunked_body_rejected(server, ec2):
    """A chunked body that grows past the limit is cut off with 413."""
    before = snapshot(ec2)
    u = urlsplit(server.endpoint)
    head = (
        f"POST / HTTP/1.1\r\nHost: {u.netloc}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    chunk = b"x" * (256 * 1024)
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    resp = b""
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        s.sendall(head + f"{len('Action=DescribeRegions&Pad='):x}\r\nAction=DescribeRegions&Pad=\r\n".encode())
        try:
            for _ in range(64):  # up to 16 MiB
                s.sendall(frame)
        except (BrokenPipeError, ConnectionResetError):
            pass
        resp = _read_response(s, 10)
    assert resp, "no response to a 16 MiB chunked body"
    status_line = resp.split(b"\r\n", 1)[0].decode()
    assert " 413 " in status_line + " ", status_line
    assert snapshot(ec2) == before
