"""DescribeInstanceTypes: Eucalyptus defaults + t2/m5, filters, MaxResults/NextToken."""

import pytest
from botocore.exceptions import ClientError

from conftest import assert_aws_error

EUCA_DEFAULTS = [
    "m1.small", "t1.micro", "m1.medium", "c1.medium", "m1.large", "m1.xlarge", "c1.xlarge",
    "m2.xlarge", "m3.xlarge", "m2.2xlarge", "m3.2xlarge", "cc1.4xlarge", "m2.4xlarge",
    "hi1.4xlarge", "cc2.8xlarge",
]


def all_types(ec2, **kw):
    out = []
    for page in ec2.get_paginator("describe_instance_types").paginate(**kw):
        out.extend(page["InstanceTypes"])
    return out


def test_defaults_present(ec2):
    types = {t["InstanceType"]: t for t in all_types(ec2)}
    for name in EUCA_DEFAULTS:
        assert name in types, f"{name} missing; have {sorted(types)}"
    assert any(n.startswith("t2.") for n in types), sorted(types)
    assert any(n.startswith("m5.") for n in types), sorted(types)
    small = types["m1.small"]
    assert small["VCpuInfo"]["DefaultVCpus"] == 1
    assert small["MemoryInfo"]["SizeInMiB"] == 256
    for name, t in types.items():
        assert t["VCpuInfo"]["DefaultVCpus"] >= 1, name
        assert t["MemoryInfo"]["SizeInMiB"] >= 1, name


def test_pagination_max_results(ec2):
    full = [t["InstanceType"] for t in all_types(ec2)]
    assert len(full) == len(set(full)), "duplicates in the full listing"
    assert len(full) > 5
    seen = []
    token = None
    pages = 0
    while True:
        kw = {"MaxResults": 5}
        if token:
            kw["NextToken"] = token
        resp = ec2.describe_instance_types(**kw)
        assert len(resp["InstanceTypes"]) <= 5
        seen.extend(t["InstanceType"] for t in resp["InstanceTypes"])
        pages += 1
        token = resp.get("NextToken")
        if not token:
            break
        assert pages < 100, "pagination does not terminate"
    assert pages >= 2
    assert sorted(seen) == sorted(full), "paged listing differs from the full listing"
    assert len(seen) == len(set(seen)), "a type appeared on two pages"


def test_paginator_page_size(ec2):
    full = sorted(t["InstanceType"] for t in all_types(ec2))
    pages = list(ec2.get_paginator("describe_instance_types").paginate(PaginationConfig={"PageSize": 7}))
    assert all(len(p["InstanceTypes"]) <= 7 for p in pages)
    assert sorted(t["InstanceType"] for p in pages for t in p["InstanceTypes"]) == full


def test_instance_types_param(ec2):
    got = ec2.describe_instance_types(InstanceTypes=["m1.small", "c1.medium"])["InstanceTypes"]
    assert sorted(t["InstanceType"] for t in got) == ["c1.medium", "m1.small"]


def test_filters(ec2):
    got = [t["InstanceType"] for t in all_types(ec2, Filters=[{"Name": "instance-type", "Values": ["m1.*"]}])]
    assert got and all(n.startswith("m1.") for n in got), got
    assert "m1.small" in got
    got = [t["InstanceType"] for t in all_types(ec2, Filters=[{"Name": "instance-type", "Values": ["m1.smal?"]}])]
    assert got == ["m1.small"]
    two = all_types(ec2, Filters=[{"Name": "vcpu-info.default-vcpus", "Values": ["2"]}])
    assert two and all(t["VCpuInfo"]["DefaultVCpus"] == 2 for t in two)
    both = all_types(
        ec2,
        Filters=[
            {"Name": "vcpu-info.default-vcpus", "Values": ["2"]},
            {"Name": "instance-type", "Values": ["m1.*"]},
        ],
    )
    assert all(t["InstanceType"].startswith("m1.") and t["VCpuInfo"]["DefaultVCpus"] == 2 for t in both)
    mem = all_types(ec2, Filters=[{"Name": "memory-info.size-in-mib", "Values": ["256"]}])
    assert "m1.small" in [t["InstanceType"] for t in mem]
    assert all(t["MemoryInfo"]["SizeInMiB"] == 256 for t in mem)


def test_unknown_instance_type(raw):
    resp = raw({"Action": "DescribeInstanceTypes", "InstanceType.1": "m9.huge"})
    assert_aws_error(resp, "InvalidInstanceType", 400)


def test_awscli_describe_instance_types(aws_cli):
    out = aws_cli.json("ec2", "describe-instance-types", "--instance-types", "m1.small")
    assert [t["InstanceType"] for t in out["InstanceTypes"]] == ["m1.small"]
    # the CLI auto-paginates with a small page size
    out = aws_cli.json("ec2", "describe-instance-types", "--page-size", "5")
    names = [t["InstanceType"] for t in out["InstanceTypes"]]
    assert "cc2.8xlarge" in names and len(names) == len(set(names))
