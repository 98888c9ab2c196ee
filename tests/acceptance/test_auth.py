"""SigV4 authentication: header and presigned query, failures with AWS's codes."""

import datetime as dt

import pytest
import requests
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import API_VERSION, REGION, assert_aws_error, raw_request, unique

NOW = lambda: dt.datetime.now(dt.timezone.utc)  # noqa: E731


def test_boto3_works_and_sends_request_id(ec2):
    resp = ec2.describe_regions()
    md = resp["ResponseMetadata"]
    assert md["HTTPStatusCode"] == 200
    assert md["RequestId"]
    assert md["HTTPHeaders"].get("x-amzn-requestid") == md["RequestId"]


def test_unknown_access_key(server):
    c = server.client(creds={"access_key_id": "AKIAUNKNOWNUNKNOWN00", "secret_access_key": "x" * 40})
    with pytest.raises(ClientError) as e:
        c.describe_regions()
    r = e.value.response
    assert r["Error"]["Code"] == "AuthFailure"
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 401


def test_bad_secret(server):
    admin = server.admin
    c = server.client(creds={"access_key_id": admin["access_key_id"], "secret_access_key": admin["secret_access_key"][:-2] + "zz"})
    with pytest.raises(ClientError) as e:
        c.describe_regions()
    r = e.value.response
    assert r["Error"]["Code"] == "SignatureDoesNotMatch"
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_bad_signature_does_not_create(server, ec2):
    admin = server.admin
    name = unique("badsig")
    c = server.client(creds={"access_key_id": admin["access_key_id"], "secret_access_key": "wrong" + admin["secret_access_key"][5:]})
    with pytest.raises(ClientError) as e:
        c.create_key_pair(KeyName=name)
    assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [name]}])["KeyPairs"] == []


@pytest.mark.parametrize("minutes", [-20, 20, -60 * 24])
def test_request_expired(raw, minutes):
    resp = raw({"Action": "DescribeRegions"}, when=NOW() + dt.timedelta(minutes=minutes))
    assert_aws_error(resp, "RequestExpired", 400)


@pytest.mark.parametrize("minutes", [-10, 10])
def test_small_clock_skew_accepted(raw, minutes):
    resp = raw({"Action": "DescribeRegions"}, when=NOW() + dt.timedelta(minutes=minutes))
    assert resp.status == 200, resp.describe()


def test_no_credentials(server):
    # Real EC2 answers an unsigned Query request with HTTP 400 MissingParameter
    # "The request must contain the parameter AWSAccessKeyId".
    for method in ("POST", "GET"):
        resp = raw_request(server.endpoint, {"Action": "DescribeRegions"}, sign=False, method=method)
        assert_aws_error(resp, "MissingParameter", 400)
        assert "AWSAccessKeyId" in (resp.error_message or ""), resp.describe()


def test_tampered_body(server):
    admin = server.admin
    body_signed = f"Action=DescribeKeyPairs&Version={API_VERSION}"
    from conftest import FixedTimeSigV4

    req = AWSRequest(
        method="POST",
        url=server.endpoint + "/",
        data=body_signed.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    FixedTimeSigV4(Credentials(admin["access_key_id"], admin["secret_access_key"]), "ec2", REGION, NOW()).add_auth(req)
    p = req.prepare()
    r = requests.post(p.url, headers=dict(p.headers), data=f"Action=DescribeRegions&Version={API_VERSION}".encode(), timeout=10)
    assert r.status_code == 403, r.text
    assert "<Code>SignatureDoesNotMatch</Code>" in r.text


@pytest.mark.parametrize(
    "header",
    [
        "AWS4-HMAC-SHA256 Credential=AKIAFOO",
        "AWS4-HMAC-SHA256 Signature=abc",
        "AWS4-HMAC-SHA256 Credential=AKIAFOO/20200101/mallee-1/ec2/aws4_request, SignedHeaders=host",
    ],
)
def test_incomplete_signature(server, header):
    r = requests.post(
        server.endpoint + "/",
        data=f"Action=DescribeRegions&Version={API_VERSION}",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": header,
            "X-Amz-Date": NOW().strftime("%Y%m%dT%H%M%SZ"),
        },
        timeout=10,
    )
    assert r.status_code == 400, r.text
    assert "<Code>IncompleteSignature</Code>" in r.text, r.text


class FixedTimeQueryAuth(SigV4QueryAuth):
    def __init__(self, creds, service, region, when, expires):
        super().__init__(creds, service, region, expires=expires)
        self._when = when

    def add_auth(self, request):
        request.context["timestamp"] = self._when.strftime("%Y%m%dT%H%M%SZ")
        self._modify_request_before_signing(request)
        cr = self.canonical_request(request)
        sts = self.string_to_sign(request, cr)
        self._inject_signature_to_request(request, self.signature(sts, request))


def _presigned(server, params, when=None, expires=300, path="/"):
    admin = server.admin
    from urllib.parse import urlencode

    req = AWSRequest(method="GET", url=server.endpoint + path + "?" + urlencode(params))
    FixedTimeQueryAuth(Credentials(admin["access_key_id"], admin["secret_access_key"]), "ec2", REGION, when or NOW(), expires).add_auth(req)
    return req.prepare().url


def test_presigned_query_describe_regions(server):
    url = _presigned(server, {"Action": "DescribeRegions", "Version": API_VERSION})
    assert "X-Amz-Signature=" in url and "X-Amz-Credential=" in url
    r = requests.get(url, timeout=10)
    assert r.status_code == 200, r.text
    assert f"<regionName>{REGION}</regionName>" in r.text
    assert r.headers.get("x-amzn-RequestId")


def test_presigned_query_on_services_compute(server):
    url = _presigned(server, {"Action": "DescribeAvailabilityZones", "Version": API_VERSION}, path="/services/compute")
    r = requests.get(url, timeout=10)
    assert r.status_code == 200, r.text


def test_presigned_query_tampered(server):
    url = _presigned(server, {"Action": "DescribeRegions", "Version": API_VERSION})
    r = requests.get(url.replace("DescribeRegions", "DescribeKeyPairs"), timeout=10)
    assert r.status_code == 403, r.text
    assert "<Code>SignatureDoesNotMatch</Code>" in r.text


def test_presigned_query_expired(server):
    url = _presigned(server, {"Action": "DescribeRegions", "Version": API_VERSION}, when=NOW() - dt.timedelta(minutes=30), expires=60)
    r = requests.get(url, timeout=10)
    assert r.status_code == 400, r.text
    assert "<Code>RequestExpired</Code>" in r.text


def test_error_has_request_id_header_and_body(raw):
    resp = raw({"Action": "NoSuchActionAtAll"})
    assert_aws_error(resp, "InvalidAction", 400)
    assert resp.request_id == resp.xml.findtext("RequestID")


def test_request_ids_are_unique(raw):
    ids = set()
    for i in range(10):
        resp = raw({"Action": "DescribeRegions"} if i % 2 else {"Action": "NoSuchAction"})
        assert resp.request_id
        ids.add(resp.request_id)
    assert len(ids) == 10
