"""CreateTags / DeleteTags / DescribeTags on key pairs."""

import pytest
from botocore.exceptions import ClientError

from conftest import unique


def tagset(ec2, rid):
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [rid]}])["Tags"]
    for t in tags:
        assert t["ResourceId"] == rid
        assert t["ResourceType"] == "key-pair"
    return {t["Key"]: t["Value"] for t in tags}


@pytest.fixture
def key(ec2):
    return ec2.create_key_pair(KeyName=unique("tagkey"))["KeyPairId"]


def test_create_overwrite_delete(ec2, key):
    ec2.create_tags(Resources=[key], Tags=[{"Key": "Name", "Value": "one"}, {"Key": "env", "Value": "dev"}])
    assert tagset(ec2, key) == {"Name": "one", "env": "dev"}
    ec2.create_tags(Resources=[key], Tags=[{"Key": "Name", "Value": "two"}])
    assert tagset(ec2, key) == {"Name": "two", "env": "dev"}
    # DescribeKeyPairs shows the same tags
    kp = ec2.describe_key_pairs(KeyPairIds=[key])["KeyPairs"][0]
    assert {t["Key"]: t["Value"] for t in kp["Tags"]} == {"Name": "two", "env": "dev"}
    ec2.delete_tags(Resources=[key], Tags=[{"Key": "Name"}])
    assert tagset(ec2, key) == {"env": "dev"}


def test_delete_tags_value_semantics(ec2, key):
    ec2.create_tags(Resources=[key], Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": ""}, {"Key": "c", "Value": "3"}])
    # wrong value: nothing deleted
    ec2.delete_tags(Resources=[key], Tags=[{"Key": "a", "Value": "nope"}])
    assert tagset(ec2, key) == {"a": "1", "b": "", "c": "3"}
    # empty-string value deletes only tags whose value is empty
    ec2.delete_tags(Resources=[key], Tags=[{"Key": "c", "Value": ""}])
    assert tagset(ec2, key) == {"a": "1", "b": "", "c": "3"}
    ec2.delete_tags(Resources=[key], Tags=[{"Key": "b", "Value": ""}])
    assert tagset(ec2, key) == {"a": "1", "c": "3"}
    # matching value deletes
    ec2.delete_tags(Resources=[key], Tags=[{"Key": "a", "Value": "1"}])
    assert tagset(ec2, key) == {"c": "3"}
    # deleting an absent key is fine
    ec2.delete_tags(Resources=[key], Tags=[{"Key": "zzz"}])
    # no Tags at all: every tag of the resource is deleted
    ec2.create_tags(Resources=[key], Tags=[{"Key": "x", "Value": "y"}])
    ec2.delete_tags(Resources=[key])
    assert tagset(ec2, key) == {}


def test_multiple_resources(ec2):
    k1 = ec2.create_key_pair(KeyName=unique("m1"))["KeyPairId"]
    k2 = ec2.create_key_pair(KeyName=unique("m2"))["KeyPairId"]
    ec2.create_tags(Resources=[k1, k2], Tags=[{"Key": "shared", "Value": "yes"}])
    assert tagset(ec2, k1) == {"shared": "yes"} and tagset(ec2, k2) == {"shared": "yes"}
    ec2.delete_tags(Resources=[k1, k2], Tags=[{"Key": "shared"}])
    assert tagset(ec2, k1) == {} and tagset(ec2, k2) == {}


def test_unicode_and_max_lengths(ec2, key):
    k = "ключ-" + "k" * 123  # 128 characters
    v = "значение " + "v" * 247  # 256 characters
    assert len(k) == 128 and len(v) == 256
    ec2.create_tags(Resources=[key], Tags=[{"Key": k, "Value": v}, {"Key": "spaces + = . _ : / @", "Value": "ok"}])
    assert tagset(ec2, key) == {k: v, "spaces + = . _ : / @": "ok"}


def test_fifty_tags_allowed(ec2, key):
    ec2.create_tags(Resources=[key], Tags=[{"Key": f"k{i:02d}", "Value": str(i)} for i in range(50)])
    assert len(tagset(ec2, key)) == 50
    # overwriting existing keys does not count against the limit
    ec2.create_tags(Resources=[key], Tags=[{"Key": "k00", "Value": "new"}])
    assert tagset(ec2, key)["k00"] == "new"
    with pytest.raises(ClientError) as e:
        ec2.create_tags(Resources=[key], Tags=[{"Key": "k50", "Value": "x"}])
    assert e.value.response["Error"]["Code"] == "TagLimitExceeded"
    assert len(tagset(ec2, key)) == 50


@pytest.fixture
def tagged(ec2):
    grp = unique("g")
    ids = [ec2.create_key_pair(KeyName=f"{grp}-{i}")["KeyPairId"] for i in range(3)]
    ec2.create_tags(Resources=[ids[0]], Tags=[{"Key": "Name", "Value": "web-1"}, {"Key": grp, "Value": "a*b"}])
    ec2.create_tags(Resources=[ids[1]], Tags=[{"Key": "Name", "Value": "web-2"}, {"Key": grp, "Value": "axb"}])
    ec2.create_tags(Resources=[ids[2]], Tags=[{"Key": "Name", "Value": "db-10"}, {"Key": grp + "-other", "Value": "v"}])
    return grp, ids


def _desc(ec2, ids, *filters):
    flt = [{"Name": "resource-id", "Values": ids}] + [{"Name": n, "Values": v} for n, v in filters]
    return sorted((t["ResourceId"], t["Key"], t["Value"]) for t in ec2.describe_tags(Filters=flt)["Tags"])


def test_describe_tags_filters(ec2, tagged):
    grp, ids = tagged
    assert len(_desc(ec2, ids)) == 6
    assert _desc(ec2, ids, ("key", ["Name"])) == sorted([(ids[0], "Name", "web-1"), (ids[1], "Name", "web-2"), (ids[2], "Name", "db-10")])
    assert _desc(ec2, ids, ("value", ["web-1"])) == [(ids[0], "Name", "web-1")]
    assert _desc(ec2, ids, ("value", ["web-1", "db-10"])) == sorted([(ids[0], "Name", "web-1"), (ids[2], "Name", "db-10")])
    assert len(_desc(ec2, ids, ("resource-type", ["key-pair"]))) == 6
    assert _desc(ec2, ids, ("resource-type", ["instance"])) == []
    assert [r for r, _, _ in _desc(ec2, [ids[1]])] == [ids[1], ids[1]]
    # tag:K=V selects resources having that tag (whether rows of the resource's
    # other tags are listed too is not pinned down by the docs)
    got = _desc(ec2, ids, ("tag:Name", ["web-2"]))
    assert {r for r, _, _ in got} == {ids[1]} and (ids[1], "Name", "web-2") in got
    # AND across filters
    assert _desc(ec2, ids, ("key", ["Name"]), ("value", ["db-10"])) == [(ids[2], "Name", "db-10")]


def test_describe_tags_wildcards(ec2, tagged):
    grp, ids = tagged
    assert _desc(ec2, ids, ("value", ["web-*"])) == sorted([(ids[0], "Name", "web-1"), (ids[1], "Name", "web-2")])
    assert _desc(ec2, ids, ("value", ["web-?"])) == sorted([(ids[0], "Name", "web-1"), (ids[1], "Name", "web-2")])
    assert _desc(ec2, ids, ("value", ["db-?"])) == []
    assert _desc(ec2, ids, ("value", ["db-??"])) == [(ids[2], "Name", "db-10")]
    assert _desc(ec2, ids, ("key", [grp + "*"])) == sorted([(ids[0], grp, "a*b"), (ids[1], grp, "axb"), (ids[2], grp + "-other", "v")])
    assert _desc(ec2, ids, ("key", ["*"])) == _desc(ec2, ids)
    # literal * escaped with a backslash
    assert _desc(ec2, ids, ("key", [grp]), ("value", ["a\\*b"])) == [(ids[0], grp, "a*b")]
    assert _desc(ec2, ids, ("key", [grp]), ("value", ["a*b"])) == sorted([(ids[0], grp, "a*b"), (ids[1], grp, "axb")])
    # resource-id accepts wildcards too
    assert {r for r, _, _ in _desc(ec2, ids, ("resource-id", ["key-*"]))} == set(ids)


def test_describe_tags_pagination(ec2):
    grp = unique("page")
    ids = [ec2.create_key_pair(KeyName=f"{grp}-{i}")["KeyPairId"] for i in range(4)]
    expected = set()
    for i, rid in enumerate(ids):
        tags = [{"Key": f"{grp}-k{j}", "Value": f"{i}-{j}"} for j in range(6)]
        ec2.create_tags(Resources=[rid], Tags=tags)
        expected |= {(rid, t["Key"], t["Value"]) for t in tags}
    assert len(expected) == 24
    flt = [{"Name": "resource-id", "Values": ids}]
    # manual MaxResults / NextToken loop
    seen, token, pages = [], None, 0
    while True:
        kw = {"Filters": flt, "MaxResults": 5}
        if token:
            kw["NextToken"] = token
        resp = ec2.describe_tags(**kw)
        assert len(resp["Tags"]) <= 5
        seen += [(t["ResourceId"], t["Key"], t["Value"]) for t in resp["Tags"]]
        pages += 1
        token = resp.get("NextToken")
        if not token:
            break
        assert pages < 50
    assert pages >= 5
    assert len(seen) == len(set(seen)) == 24
    assert set(seen) == expected
    # boto3 paginator
    pages = list(ec2.get_paginator("describe_tags").paginate(Filters=flt, PaginationConfig={"PageSize": 7}))
    items = [(t["ResourceId"], t["Key"], t["Value"]) for p in pages for t in p["Tags"]]
    assert len(pages) >= 4 and all(len(p["Tags"]) <= 7 for p in pages)
    assert sorted(items) == sorted(expected)
    # MaxResults 1000 returns all in one page
    one = ec2.describe_tags(Filters=flt, MaxResults=1000)
    assert len(one["Tags"]) == 24 and not one.get("NextToken")


def test_describe_tags_without_filters_includes_mine(ec2, key):
    ec2.create_tags(Resources=[key], Tags=[{"Key": "visible", "Value": "yes"}])
    all_tags = []
    for p in ec2.get_paginator("describe_tags").paginate():
        all_tags += p["Tags"]
    assert {"ResourceId": key, "ResourceType": "key-pair", "Key": "visible", "Value": "yes"} in all_tags


def test_tags_awscli(aws_cli, ec2, key):
    aws_cli.run("ec2", "create-tags", "--resources", key, "--tags", "Key=cli,Value=on", "Key=Name,Value=from cli")
    out = aws_cli.json("ec2", "describe-tags", "--filters", f"Name=resource-id,Values={key}")
    assert sorted((t["Key"], t["Value"]) for t in out["Tags"]) == [("Name", "from cli"), ("cli", "on")]
    aws_cli.run("ec2", "delete-tags", "--resources", key, "--tags", "Key=cli")
    assert tagset(ec2, key) == {"Name": "from cli"}
    # the CLI paginates describe-tags itself with --page-size
    out = aws_cli.json("ec2", "describe-tags", "--page-size", "5", "--filters", "Name=resource-type,Values=key-pair")
    assert any(t["ResourceId"] == key for t in out["Tags"])


def test_create_tags_missing_resource_atomic(ec2, key):
    with pytest.raises(ClientError) as e:
        ec2.create_tags(Resources=[key, "key-0123456789abcdef0"], Tags=[{"Key": "half", "Value": "x"}])
    assert e.value.response["Error"]["Code"] == "InvalidKeyPair.NotFound"
    assert tagset(ec2, key) == {}, "a failed CreateTags must not tag any resource"
