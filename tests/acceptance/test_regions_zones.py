"""DescribeRegions, DescribeAvailabilityZones (incl. Eucalyptus `verbose`), DescribeAccountAttributes."""

import re

import pytest
from botocore.exceptions import ClientError

import boto3
from botocore.config import Config

from conftest import EC2_NS, REGION, ZONE, assert_aws_error, run_mallee


def test_describe_regions_boto3(ec2, server):
    regions = ec2.describe_regions()["Regions"]
    assert len(regions) == 1
    r = regions[0]
    assert r["RegionName"] == REGION
    assert r["Endpoint"], r
    assert r.get("OptInStatus") in (None, "opt-in-not-required")


def test_describe_regions_all_and_filters(ec2):
    assert [r["RegionName"] for r in ec2.describe_regions(AllRegions=True)["Regions"]] == [REGION]
    assert [r["RegionName"] for r in ec2.describe_regions(RegionNames=[REGION])["Regions"]] == [REGION]
    got = ec2.describe_regions(Filters=[{"Name": "region-name", "Values": [REGION]}])["Regions"]
    assert [r["RegionName"] for r in got] == [REGION]
    got = ec2.describe_regions(Filters=[{"Name": "region-name", "Values": ["nowhere-1"]}])["Regions"]
    assert got == []


def test_describe_regions_awscli(aws_cli):
    out = aws_cli.json("ec2", "describe-regions")
    assert [r["RegionName"] for r in out["Regions"]] == [REGION]


def test_describe_regions_xml_namespace_and_request_id(raw):
    resp = raw({"Action": "DescribeRegions"})
    assert resp.status == 200, resp.describe()
    assert resp.xml.tag == f"{{{EC2_NS}}}DescribeRegionsResponse", resp.xml.tag
    assert resp.xml.findtext(f"{{{EC2_NS}}}requestId"), resp.describe()
    assert resp.request_id, "no x-amzn-RequestId header"
    assert resp.request_id == resp.xml.findtext(f"{{{EC2_NS}}}requestId")


def test_get_query_and_eucalyptus_path(raw):
    for path in ("/", "/services/compute", "/services/compute/"):
        for method in ("GET", "POST"):
            resp = raw({"Action": "DescribeRegions"}, method=method, path=path)
            assert resp.status == 200, f"{method} {path}: {resp.describe()}"
            names = [e.text for e in resp.find_all("regionName")]
            assert names == [REGION]


def test_boto3_on_services_compute_path(server):
    c = server.client(endpoint=server.endpoint + "/services/compute")
    assert c.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"] == ZONE


def test_describe_availability_zones(ec2):
    zones = ec2.describe_availability_zones()["AvailabilityZones"]
    assert len(zones) == 1
    z = zones[0]
    assert z["ZoneName"] == ZONE
    assert z["State"] == "available"
    assert z["RegionName"] == REGION
    assert z.get("ZoneId"), z
    assert z.get("ZoneType", "availability-zone") == "availability-zone"


def test_describe_availability_zones_all_and_filters(ec2):
    assert [z["ZoneName"] for z in ec2.describe_availability_zones(AllAvailabilityZones=True)["AvailabilityZones"]] == [ZONE]
    assert [z["ZoneName"] for z in ec2.describe_availability_zones(ZoneNames=[ZONE])["AvailabilityZones"]] == [ZONE]
    for name, values, expect in [
        ("zone-name", [ZONE], [ZONE]),
        ("zone-name", ["mallee-1*"], [ZONE]),
        ("zone-name", ["other-1a"], []),
        ("region-name", [REGION], [ZONE]),
        ("region-name", ["other-1"], []),
        ("state", ["available"], [ZONE]),
        ("state", ["impaired"], []),
    ]:
        got = ec2.describe_availability_zones(Filters=[{"Name": name, "Values": values}])["AvailabilityZones"]
        assert [z["ZoneName"] for z in got] == expect, (name, values)


def test_describe_availability_zones_unknown_zone(raw):
    resp = raw({"Action": "DescribeAvailabilityZones", "ZoneName.1": "nowhere-9z"})
    assert_aws_error(resp, "InvalidParameterValue", 400)


VERBOSE_STATE = re.compile(r"^(\d{4}) / (\d{4})\s+(\d+)\s+(\d+)\s+(\d+)$")


def verbose_types(ec2) -> dict:
    zones = ec2.describe_availability_zones(ZoneNames=["verbose"])["AvailabilityZones"]
    names = [z["ZoneName"] for z in zones]
    assert names[0] == ZONE, names
    assert "|- vm types" in names, names
    header = next(z for z in zones if z["ZoneName"] == "|- vm types")
    assert header["State"] == "free / max   cpu   ram  disk", header
    types = {z["ZoneName"][3:]: z["State"] for z in zones if z["ZoneName"].startswith("|- ") and z["ZoneName"] != "|- vm types"}
    for t in ("m1.small", "c1.medium", "m1.large", "m1.xlarge", "c1.xlarge", "cc2.8xlarge"):
        assert t in types, f"{t} missing from verbose listing: {sorted(types)}"
    parsed = {}
    for t, state in types.items():
        m = VERBOSE_STATE.match(state)
        assert m, f"{t}: {state!r}"
        parsed[t] = tuple(int(g) for g in m.groups())
    return parsed


def test_describe_availability_zones_verbose(ec2):
    """The shared server runs `up`'s node agent: its capacity shows."""
    types = verbose_types(ec2)
    free, mx, cpu, ram, disk = types["m1.small"]
    assert (cpu, ram, disk) == (1, 256, 5)
    assert mx >= 1, types["m1.small"]
    for t, (free, mx, *_rest) in types.items():
        assert 0 <= free <= mx, (t, free, mx)


def test_describe_availability_zones_verbose_without_nodes(mallee_factory):
    srv = mallee_factory("nonode", extra_args=["--no-node"])
    types = verbose_types(srv.client("ec2"))
    assert types["m1.small"] == (0, 0, 1, 256, 5)
    for t, (free, mx, *_rest) in types.items():
        assert free == 0 and mx == 0, f"{t}: capacity must be 0 with no nodes"


def test_describe_availability_zones_verbose_awscli(aws_cli):
    out = aws_cli.json("ec2", "describe-availability-zones", "--zone-names", "verbose")
    names = [z["ZoneName"] for z in out["AvailabilityZones"]]
    assert "|- m1.small" in names


def test_describe_account_attributes(ec2):
    attrs = {a["AttributeName"]: [v["AttributeValue"] for v in a["AttributeValues"]] for a in ec2.describe_account_attributes()["AccountAttributes"]}
    for name in ("supported-platforms", "default-vpc", "max-instances"):
        assert name in attrs, f"{name} missing: {sorted(attrs)}"
    assert "VPC" in attrs["supported-platforms"]
    only = ec2.describe_account_attributes(AttributeNames=["max-instances"])["AccountAttributes"]
    assert [a["AttributeName"] for a in only] == ["max-instances"]
    assert int(only[0]["AttributeValues"][0]["AttributeValue"]) >= 0


def test_admin_names_the_region_and_zones_once(mallee_factory):
    """`--region us-east-1 --zones us-east-1a,us-east-1b`: clients that check
    region names against AWS's list work; a later start with other names
    keeps the first ones (renaming would orphan what lives in a zone)."""
    srv = mallee_factory(
        "named", extra_args=["--no-node", "--region", "us-east-1", "--zones", "us-east-1a,us-east-1b"]
    )
    def client():
        return boto3.client(
            "ec2",
            region_name="us-east-1",
            endpoint_url=srv.endpoint,
            aws_access_key_id=srv.admin["access_key_id"],
            aws_secret_access_key=srv.admin["secret_access_key"],
            config=Config(retries={"total_max_attempts": 1}),
        )

    ec2 = client()
    assert [r["RegionName"] for r in ec2.describe_regions()["Regions"]] == ["us-east-1"]
    zones = ec2.describe_availability_zones()["AvailabilityZones"]
    assert [z["ZoneName"] for z in zones] == ["us-east-1a", "us-east-1b"]
    assert {z["RegionName"] for z in zones} == {"us-east-1"}
    assert srv.admin["region"] == "us-east-1"
    # The default VPC has a default subnet in each zone.
    subnets = ec2.describe_subnets()["Subnets"]
    assert sorted(s["AvailabilityZone"] for s in subnets) == ["us-east-1a", "us-east-1b"]

    srv.stop()
    srv.extra_args = [a for a in srv.extra_args if a not in ("us-east-1", "us-east-1a,us-east-1b")]
    srv.extra_args = [a for a in srv.extra_args if a not in ("--region", "--zones")]
    srv.extra_args += ["--region", "eu-west-1", "--zones", "eu-west-1a"]
    srv.start()
    assert "fixed at the first start" in srv.log_text()
    ec2 = client()
    zones = ec2.describe_availability_zones()["AvailabilityZones"]
    assert [z["ZoneName"] for z in zones] == ["us-east-1a", "us-east-1b"]
    assert [r["RegionName"] for r in ec2.describe_regions()["Regions"]] == ["us-east-1"]


def test_bad_region_or_zone_names_are_refused_at_start(tmp_path):
    for args in (["--region", "US East"], ["--zones", "a,a"], ["--zones", "a_b"]):
        r = run_mallee("up", "--no-node", "--data-dir", tmp_path / "bad", "--listen", "127.0.0.1:0", *args, timeout=30)
        assert r.returncode != 0, args
        assert "region" in r.stderr or "zone" in r.stderr, (args, r.stderr)
