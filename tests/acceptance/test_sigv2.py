"""Signature Version 2 (query API), as sent by euca2ools and boto 2.

boto 2 does not run on Python 3.11, so the signer is written here from the
SigV2 specification: StringToSign = METHOD \\n host(lowercase, with port) \\n
path \\n canonical query (params sorted by name, RFC 3986 percent-encoding),
HMAC with HmacSHA256 or HmacSHA1, base64.
"""

import base64
import datetime as dt
import hashlib
import hmac
from urllib.parse import quote, urlsplit

import pytest
import requests

from conftest import API_VERSION, REGION, unique

import keyutil


def _enc(s: str) -> str:
    return quote(s, safe="-_.~")


def sigv2_params(endpoint, creds, params, method="POST", path="/", algo="HmacSHA256", timestamp=None, expires=None):
    p = dict(params)
    p.setdefault("Version", API_VERSION)
    p["AWSAccessKeyId"] = creds["access_key_id"]
    p["SignatureVersion"] = "2"
    p["SignatureMethod"] = algo
    if expires is not None:
        p["Expires"] = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    else:
        p["Timestamp"] = (timestamp or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    host = urlsplit(endpoint).netloc.lower()
    canonical = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in sorted(p.items(), key=lambda kv: kv[0].encode()))
    sts = f"{method}\n{host}\n{path}\n{canonical}"
    digest = hashlib.sha256 if algo == "HmacSHA256" else hashlib.sha1
    p["Signature"] = base64.b64encode(hmac.new(creds["secret_access_key"].encode(), sts.encode(), digest).digest()).decode()
    return p


def send_v2(server, params, method="POST", path="/", creds=None, **kw):
    creds = creds or server.admin
    p = sigv2_params(server.endpoint, creds, params, method=method, path=path, **kw)
    body = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in p.items())
    url = server.endpoint + path
    if method == "GET":
        return requests.get(url + "?" + body, timeout=15)
    return requests.post(url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}, timeout=15)


@pytest.mark.parametrize("algo", ["HmacSHA256", "HmacSHA1"])
@pytest.mark.parametrize("method", ["POST", "GET"])
def test_describe_regions_sigv2(server, algo, method):
    r = send_v2(server, {"Action": "DescribeRegions"}, method=method, algo=algo)
    assert r.status_code == 200, r.text
    assert f"<regionName>{REGION}</regionName>" in r.text
    assert r.headers.get("x-amzn-RequestId")


@pytest.mark.parametrize("algo", ["HmacSHA256", "HmacSHA1"])
def test_sigv2_on_services_compute(server, algo):
    r = send_v2(server, {"Action": "DescribeAvailabilityZones"}, path="/services/compute", algo=algo)
    assert r.status_code == 200, r.text
    assert "mallee-1a" in r.text


@pytest.mark.parametrize("algo", ["HmacSHA256", "HmacSHA1"])
def test_create_key_pair_sigv2(server, ec2, algo):
    # a name that needs percent-encoding exercises the canonical query string
    name = unique("v2 key/+*=&%")
    r = send_v2(server, {"Action": "CreateKeyPair", "KeyName": name}, algo=algo)
    assert r.status_code == 200, r.text
    import xml.etree.ElementTree as ET

    root = ET.fromstring(r.content)
    ns = {"e": "http://ec2.amazonaws.com/doc/2016-11-15/"}
    assert root.findtext("e:keyName", namespaces=ns) == name
    mat = root.findtext("e:keyMaterial", namespaces=ns)
    fp = root.findtext("e:keyFingerprint", namespaces=ns)
    assert fp == keyutil.created_rsa_fingerprint(mat)
    got = ec2.describe_key_pairs(KeyNames=[name])["KeyPairs"]
    assert got[0]["KeyFingerprint"] == fp


def test_sigv2_bad_signature(server, ec2):
    admin = server.admin
    name = unique("v2bad")
    r = send_v2(server, {"Action": "CreateKeyPair", "KeyName": name}, creds={"access_key_id": admin["access_key_id"], "secret_access_key": "not-the-secret"})
    assert r.status_code == 403, r.text
    assert "<Code>SignatureDoesNotMatch</Code>" in r.text
    assert ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [name]}])["KeyPairs"] == []


def test_sigv2_tampered_param(server):
    p = sigv2_params(server.endpoint, server.admin, {"Action": "DescribeRegions"})
    p["RegionName.1"] = REGION  # added after signing
    r = requests.post(server.endpoint + "/", data=p, timeout=15)
    assert r.status_code == 403, r.text
    assert "<Code>SignatureDoesNotMatch</Code>" in r.text


def test_sigv2_unknown_key(server):
    r = send_v2(server, {"Action": "DescribeRegions"}, creds={"access_key_id": "AKIANOSUCHKEY0000000", "secret_access_key": "x"})
    assert r.status_code == 401, r.text
    assert "<Code>AuthFailure</Code>" in r.text


@pytest.mark.parametrize("minutes", [-20, 20])
def test_sigv2_expired_timestamp(server, minutes):
    r = send_v2(server, {"Action": "DescribeRegions"}, timestamp=dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=minutes))
    assert r.status_code == 400, r.text
    assert "<Code>RequestExpired</Code>" in r.text


def test_sigv2_expires_param(server):
    now = dt.datetime.now(dt.timezone.utc)
    ok = send_v2(server, {"Action": "DescribeRegions"}, expires=now + dt.timedelta(minutes=5))
    assert ok.status_code == 200, ok.text
    old = send_v2(server, {"Action": "DescribeRegions"}, expires=now - dt.timedelta(minutes=1))
    assert old.status_code == 400, old.text
    assert "<Code>RequestExpired</Code>" in old.text
