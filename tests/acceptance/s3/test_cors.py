"""S3 CORS with boto3 and plain HTTP: Put/Get/DeleteBucketCors (rules kept
as put, checked as S3 checks them, the bucket's account only), preflights
(`OPTIONS` with Origin and Access-Control-Request-*: the first matching
rule's Access-Control-* headers, or 403 AccessForbidden), and actual
requests from an allowed origin getting Access-Control-Allow-Origin while
others get none."""

import requests
from conftest import assert_s3_error, bucket_name, client_error

RULES = [
    {
        "ID": "app",
        "AllowedOrigins": ["https://app.example.com"],
        "AllowedMethods": ["GET", "PUT"],
        "AllowedHeaders": ["Content-*", "x-amz-*"],
        "ExposeHeaders": ["ETag", "x-amz-version-id"],
        "MaxAgeSeconds": 600,
    },
    {"AllowedOrigins": ["https://*.partner.example"], "AllowedMethods": ["GET"]},
]


def preflight(server, path, origin, method, headers=None):
    sent = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        sent["Access-Control-Request-Headers"] = headers
    return requests.options(server.endpoint + path, headers=sent, timeout=30)


def test_cors_configuration_round_trip(s3, s3_other, bucket):
    err = client_error(s3.get_bucket_cors, Bucket=bucket)
    assert_s3_error(err, 404, "NoSuchCORSConfiguration")
    assert err.response["Error"]["Message"] == "The CORS configuration does not exist"
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    got = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert got == RULES
    # Refused configurations change nothing.
    bad = [{"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}]
    err = client_error(s3.put_bucket_cors, Bucket=bucket, CORSConfiguration={"CORSRules": bad})
    assert_s3_error(err, 400, "InvalidRequest")
    assert err.response["Error"]["Message"] == "Found unsupported HTTP method in CORS config. Unsupported method is PATCH"
    two_wildcards = [{"AllowedOrigins": ["https://*.*.example"], "AllowedMethods": ["GET"]}]
    err = client_error(s3.put_bucket_cors, Bucket=bucket, CORSConfiguration={"CORSRules": two_wildcards})
    assert_s3_error(err, 400, "InvalidRequest")
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == RULES
    # Another account neither reads nor changes it.
    for fn, kw in [
        (s3_other.get_bucket_cors, {}),
        (s3_other.put_bucket_cors, {"CORSConfiguration": {"CORSRules": RULES[1:]}}),
        (s3_other.delete_bucket_cors, {}),
    ]:
        assert_s3_error(client_error(fn, Bucket=bucket, **kw), 403, "AccessDenied")
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == RULES
    resp = s3.delete_bucket_cors(Bucket=bucket)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert_s3_error(client_error(s3.get_bucket_cors, Bucket=bucket), 404, "NoSuchCORSConfiguration")
    assert_s3_error(client_error(s3.get_bucket_cors, Bucket=bucket_name()), 404, "NoSuchBucket")


def test_preflight_from_an_allowed_origin_passes_and_another_fails(server, s3, bucket):
    # No rules: every preflight is refused.
    resp = preflight(server, f"/{bucket}/k", "https://app.example.com", "GET")
    assert resp.status_code == 403
    assert "<Code>AccessForbidden</Code>" in resp.text
    assert "CORS is not enabled for this bucket" in resp.text

    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    resp = preflight(server, f"/{bucket}/k", "https://app.example.com", "PUT", "content-type, x-amz-date")
    assert resp.status_code == 200, resp.text
    h = resp.headers
    assert h["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert h["Access-Control-Allow-Methods"] == "GET, PUT"
    assert h["Access-Control-Allow-Headers"] == "content-type, x-amz-date"
    assert h["Access-Control-Expose-Headers"] == "ETag, x-amz-version-id"
    assert h["Access-Control-Max-Age"] == "600"
    assert h["Access-Control-Allow-Credentials"] == "true"
    # The second rule, by its wildcard origin.
    resp = preflight(server, f"/{bucket}/k", "https://shop.partner.example", "GET")
    assert resp.status_code == 200
    assert resp.headers["Access-Control-Allow-Origin"] == "https://shop.partner.example"

    refused = [
        ("https://evil.example", "GET", None),
        ("https://shop.partner.example", "PUT", None),
        ("https://app.example.com", "DELETE", None),
        ("https://app.example.com", "PUT", "x-secret"),
    ]
    for origin, method, headers in refused:
        resp = preflight(server, f"/{bucket}/k", origin, method, headers)
        assert resp.status_code == 403, (origin, method, headers)
        assert "<Code>AccessForbidden</Code>" in resp.text
        assert "CORSResponse: This CORS request is not allowed." in resp.text
        assert "<RequestId>" in resp.text
        assert "Access-Control-Allow-Origin" not in resp.headers
    # Without an Origin, a preflight is a bad request.
    resp = requests.options(f"{server.endpoint}/{bucket}/k", headers={"Access-Control-Request-Method": "GET"}, timeout=30)
    assert resp.status_code == 400


def test_actual_requests_carry_the_rules_headers(server, s3, bucket):
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    s3.put_object(Bucket=bucket, Key="pub", Body=b"hello", ACL="public-read")
    url = f"{server.endpoint}/{bucket}/pub"
    allowed = requests.get(url, headers={"Origin": "https://app.example.com"}, timeout=30)
    assert allowed.status_code == 200 and allowed.content == b"hello"
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert allowed.headers["Access-Control-Expose-Headers"] == "ETag, x-amz-version-id"
    assert "Origin" in allowed.headers["Vary"]
    other = requests.get(url, headers={"Origin": "https://evil.example"}, timeout=30)
    assert other.status_code == 200
    assert "Access-Control-Allow-Origin" not in other.headers
    # A signed request from the allowed origin gets the headers too.
    got = s3.get_object(Bucket=bucket, Key="pub", ResponseContentType="text/plain")
    assert "access-control-allow-origin" not in got["ResponseMetadata"]["HTTPHeaders"]
    s3.meta.events.register("before-sign.s3.GetObject", _add_origin)
    try:
        got = s3.get_object(Bucket=bucket, Key="pub")
    finally:
        s3.meta.events.unregister("before-sign.s3.GetObject", _add_origin)
    assert got["ResponseMetadata"]["HTTPHeaders"]["access-control-allow-origin"] == "https://app.example.com"


def _add_origin(request, **_):
    request.headers["Origin"] = "https://app.example.com"
