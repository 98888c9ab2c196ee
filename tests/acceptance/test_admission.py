"""Graceful degradation: a controller that is full refuses new requests at
once with each service's throttling error (EC2 `RequestLimitExceeded` and
S3 `SlowDown`, 503) instead of queueing them, and serves again as soon as
room frees up; with `--account-rate-limit` one account over its rate is
throttled (EC2, S3 and IAM alike) while others are not, and an SDK that
backs off and retries gets through. `--max-instances-per-account` sets the
instance quota."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlparse

import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

import boto3

from conftest import REGION


def stall(endpoint: str) -> socket.socket:
    """A Query request whose body never finishes: it holds its place in the
    controller while the server waits for the rest."""
    url = urlparse(endpoint)
    s = socket.create_connection((url.hostname, url.port), timeout=10)
    s.sendall(
        b"POST / HTTP/1.1\r\nHost: " + url.netloc.encode() + b"\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n"
        b"Action=DescribeRegions"
    )
    return s


def has_answer(s: socket.socket) -> bool:
    """Whether the server answered on `s` (within a moment)."""
    s.settimeout(0.3)
    try:
        return bool(s.recv(1, socket.MSG_PEEK))
    except TimeoutError:
        return False
    finally:
        s.settimeout(10)


def error_of(call) -> tuple[int, str, str, str]:
    with pytest.raises(ClientError) as e:
        call()
    r = e.value.response
    return (r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["Error"].get("Message", ""),
            r["ResponseMetadata"].get("RequestId", ""))


def test_a_full_controller_refuses_at_once_and_recovers(mallee_factory):
    cloud = mallee_factory("full", extra_args=["--no-node", "--max-concurrent-requests", "3"])
    ec2, s3 = cloud.client("ec2"), cloud.client("s3")
    ec2.describe_regions()
    held = [stall(cloud.endpoint) for _ in range(3)]
    try:
        # Until the server holds all three: nothing answers them (a stall
        # that raced another request and was refused is replaced).
        deadline = time.monotonic() + 10
        while answered := [s for s in held if has_answer(s)]:
            assert time.monotonic() < deadline, "three stalled requests never filled the controller"
            for s in answered:
                held.remove(s)
                s.close()
                held.append(stall(cloud.endpoint))
            time.sleep(0.2)
        started = time.monotonic()
        status, code, message, request_id = error_of(ec2.describe_regions)
        assert (status, code, message) == (503, "RequestLimitExceeded", "Request limit exceeded.")
        assert request_id and time.monotonic() - started < 2, "refused at once, not queued"
        status, code, message, request_id = error_of(s3.list_buckets)
        assert (status, code, message) == (503, "SlowDown", "Please reduce your request rate.")
        assert request_id
        # The console's sign-in (a password hash each) counts too.
        signin = requests.post(
            f"{cloud.endpoint}/console/signin",
            data={"account": "acme", "username": "alice", "password": "Correct-Horse9"},
            timeout=10,
        )
        assert signin.status_code == 400, signin.text
        assert "<Code>Throttling</Code>" in signin.text and "<RequestId>" in signin.text, signin.text
    finally:
        for s in held:
            s.close()
    # Room again once the stalled requests are gone.
    deadline = time.monotonic() + 10
    while True:
        try:
            ec2.describe_regions()
            break
        except ClientError as e:
            assert e.response["Error"]["Code"] == "RequestLimitExceeded", e.response
            assert time.monotonic() < deadline, "the controller stayed full"
            time.sleep(0.1)
    s3.list_buckets()


def test_an_account_over_its_rate_is_throttled_alone(mallee_factory):
    cloud = mallee_factory("rated", extra_args=["--no-node", "--account-rate-limit", "2:4",
                                                "--max-instances-per-account", "2500"])
    other = cloud.create_account()
    # The admin's instance quota (AWS raises it through Service Quotas).
    limit = cloud.client("ec2", creds=other).describe_account_attributes(AttributeNames=["max-instances"])
    assert limit["AccountAttributes"][0]["AttributeValues"] == [{"AttributeValue": "2500"}], limit
    ec2, s3, iam = cloud.client("ec2"), cloud.client("s3"), cloud.client("iam")
    answers = []
    for _ in range(10):
        try:
            ec2.describe_regions()
            answers.append("ok")
        except ClientError as e:
            r = e.response
            answers.append((r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"]))
    # The burst of 4 (maybe one more refilled meanwhile), then throttled.
    assert answers[:4] == ["ok"] * 4, answers
    assert answers[-1] == (503, "RequestLimitExceeded"), answers
    assert answers.count("ok") <= 6, answers
    # S3 and IAM of the same account are throttled in their own words.
    assert error_of(s3.list_buckets)[:3] == (503, "SlowDown", "Please reduce your request rate.")
    assert error_of(iam.list_users)[:3] == (400, "Throttling", "Rate exceeded")
    # Another account has its own rate.
    cloud.client("ec2", creds=other).describe_regions()
    cloud.client("s3", creds=other).list_buckets()

    # An SDK that backs off and retries (boto3's standard mode) gets
    # through once tokens come back (two a second).
    patient = boto3.client(
        "ec2", region_name=REGION, endpoint_url=cloud.endpoint,
        aws_access_key_id=cloud.admin["access_key_id"],
        aws_secret_access_key=cloud.admin["secret_access_key"],
        config=Config(retries={"mode": "standard", "max_attempts": 10}),
    )
    for _ in range(3):
        patient.describe_regions()
    time.sleep(2.1)
    ec2.describe_regions()
