"""ListObjects v1/v2: order, prefix, delimiter, pagination, encoding-type=url."""

from urllib.parse import unquote_plus

import pytest

from conftest import assert_s3_error, bucket_name, delete_bucket_quietly, etag_of

ORDER_KEYS = ["a", "a/b", "aé", "b", "Z", "😀", "a/c", "0", "a-", "ab"]
TREE_KEYS = [
    "photos/2006/jan/sample.jpg",
    "photos/2006/feb/sample2.jpg",
    "photos/2006/feb/sample3.jpg",
    "photos/2007/x.jpg",
    "photos/top.jpg",
    "readme.txt",
    "videos/v.mp4",
]


def utf8_sorted(keys):
    return sorted(keys, key=lambda k: k.encode("utf-8"))


@pytest.fixture(scope="module")
def listing_bucket(s3):
    name = bucket_name("ls")
    s3.create_bucket(Bucket=name)
    for k in ORDER_KEYS + TREE_KEYS:
        s3.put_object(Bucket=name, Key=k, Body=k.encode())
    yield name
    delete_bucket_quietly(s3, name)


ALL = utf8_sorted(ORDER_KEYS + TREE_KEYS)


def test_v2_utf8_binary_order(s3, listing_bucket):
    resp = s3.list_objects_v2(Bucket=listing_bucket)
    keys = [o["Key"] for o in resp["Contents"]]
    assert keys == ALL
    assert resp["KeyCount"] == len(ALL)
    assert resp["IsTruncated"] is False
    first = resp["Contents"][0]
    assert first["ETag"] == etag_of(first["Key"].encode())
    assert first["Size"] == len(first["Key"].encode())
    assert first["LastModified"]
    assert first.get("StorageClass") == "STANDARD"
    assert "Owner" not in first  # v2 only with fetch-owner


def test_v2_fetch_owner(s3, listing_bucket):
    resp = s3.list_objects_v2(Bucket=listing_bucket, FetchOwner=True, MaxKeys=1)
    assert resp["Contents"][0]["Owner"]["ID"] == s3.list_buckets()["Owner"]["ID"]


def test_v1_utf8_binary_order(s3, listing_bucket):
    resp = s3.list_objects(Bucket=listing_bucket)
    assert [o["Key"] for o in resp["Contents"]] == ALL
    assert resp["IsTruncated"] is False
    assert resp["Contents"][0]["Owner"]["ID"]


def test_prefix(s3, listing_bucket):
    resp = s3.list_objects_v2(Bucket=listing_bucket, Prefix="a")
    assert [o["Key"] for o in resp["Contents"]] == utf8_sorted([k for k in ORDER_KEYS if k.startswith("a")])
    resp = s3.list_objects(Bucket=listing_bucket, Prefix="photos/2006/")
    assert [o["Key"] for o in resp["Contents"]] == utf8_sorted([k for k in TREE_KEYS if k.startswith("photos/2006/")])
    resp = s3.list_objects_v2(Bucket=listing_bucket, Prefix="nothing-here")
    assert resp.get("Contents", []) == []
    assert resp["KeyCount"] == 0


@pytest.mark.parametrize("version", [1, 2])
def test_delimiter_common_prefixes(s3, listing_bucket, version):
    fn = s3.list_objects if version == 1 else s3.list_objects_v2
    resp = fn(Bucket=listing_bucket, Prefix="photos/", Delimiter="/")
    assert [o["Key"] for o in resp.get("Contents", [])] == ["photos/top.jpg"]
    assert [p["Prefix"] for p in resp["CommonPrefixes"]] == ["photos/2006/", "photos/2007/"]
    assert resp["Delimiter"] == "/"
    resp = fn(Bucket=listing_bucket, Delimiter="/")
    prefixes = [p["Prefix"] for p in resp["CommonPrefixes"]]
    assert prefixes == ["a/", "photos/", "videos/"]
    keys = [o["Key"] for o in resp["Contents"]]
    assert keys == utf8_sorted([k for k in ORDER_KEYS + TREE_KEYS if "/" not in k])


def test_v2_pagination_continuation_token(s3, listing_bucket):
    seen = []
    token = None
    pages = 0
    while True:
        kw = {"Bucket": listing_bucket, "MaxKeys": 3}
        if token:
            kw["ContinuationToken"] = token
        resp = s3.list_objects_v2(**kw)
        pages += 1
        assert resp["KeyCount"] == len(resp.get("Contents", []))
        assert resp["KeyCount"] <= 3
        seen.extend(o["Key"] for o in resp.get("Contents", []))
        if not resp["IsTruncated"]:
            assert "NextContinuationToken" not in resp
            break
        token = resp["NextContinuationToken"]
        assert token
        assert pages < 50
    assert seen == ALL
    assert pages == -(-len(ALL) // 3)


def test_v2_pagination_with_delimiter(s3, listing_bucket):
    items = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=listing_bucket, Delimiter="/", PaginationConfig={"PageSize": 2}
    ):
        assert page["KeyCount"] == len(page.get("Contents", [])) + len(page.get("CommonPrefixes", []))
        assert page["KeyCount"] <= 2
        items.extend(o["Key"] for o in page.get("Contents", []))
        items.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
    expected = utf8_sorted([k for k in ORDER_KEYS + TREE_KEYS if "/" not in k] + ["a/", "photos/", "videos/"])
    assert sorted(items, key=lambda k: k.encode()) == expected
    assert len(items) == len(expected)  # no duplicates


def test_v2_start_after(s3, listing_bucket):
    resp = s3.list_objects_v2(Bucket=listing_bucket, StartAfter="b")
    assert [o["Key"] for o in resp["Contents"]] == [k for k in ALL if k.encode() > b"b"]
    assert resp["StartAfter"] == "b"
    # start-after a key that does not exist
    resp = s3.list_objects_v2(Bucket=listing_bucket, StartAfter="photos/2006/g")
    assert [o["Key"] for o in resp["Contents"]] == [k for k in ALL if k.encode() > "photos/2006/g".encode()]


def test_v1_marker_pagination(s3, listing_bucket):
    seen = []
    marker = ""
    for _ in range(50):
        resp = s3.list_objects(Bucket=listing_bucket, MaxKeys=4, Marker=marker)
        keys = [o["Key"] for o in resp.get("Contents", [])]
        assert len(keys) <= 4
        seen.extend(keys)
        if not resp["IsTruncated"]:
            break
        marker = resp.get("NextMarker") or keys[-1]
    assert seen == ALL
    resp = s3.list_objects(Bucket=listing_bucket, Marker="a/b")
    assert resp["Marker"] == "a/b"
    assert [o["Key"] for o in resp["Contents"]] == [k for k in ALL if k.encode() > b"a/b"]


def test_v1_next_marker_with_delimiter(s3, listing_bucket):
    resp = s3.list_objects(Bucket=listing_bucket, Delimiter="/", MaxKeys=2)
    assert resp["IsTruncated"] is True
    assert resp.get("NextMarker"), resp


def test_max_keys_zero(s3, listing_bucket):
    resp = s3.list_objects_v2(Bucket=listing_bucket, MaxKeys=0)
    assert resp.get("Contents", []) == []
    assert resp["KeyCount"] == 0
    assert resp["MaxKeys"] == 0


def test_max_keys_caps_at_1000(s3req, listing_bucket):
    r = s3req("GET", f"/{listing_bucket}", params=[("list-type", "2"), ("max-keys", "5000")])
    assert r.status == 200, r.describe()
    assert int(r.findtext("MaxKeys")) in (1000, 5000)  # AWS echoes, caps the page at 1000
    assert len(r.findall("Contents")) == len(ALL)


def test_raw_xml_shape_v2(s3req, listing_bucket):
    r = s3req("GET", f"/{listing_bucket}", params=[("list-type", "2"), ("prefix", "photos/"), ("delimiter", "/")])
    assert r.status == 200, r.describe()
    assert r.xml.tag.split("}")[-1] == "ListBucketResult"
    assert r.findtext("Name") == listing_bucket
    assert r.findtext("Prefix") == "photos/"
    assert r.findtext("KeyCount") == "3"
    assert r.headers.get("Content-Type", "").startswith(("application/xml", "text/xml"))


def test_encoding_type_url(s3, s3req, bucket):
    weird = ["sp ace/é<&>.txt", "tab\tchar", "quote\"'"]
    for k in weird:
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    for params in (
        [("encoding-type", "url")],
        [("list-type", "2"), ("encoding-type", "url")],
    ):
        r = s3req("GET", f"/{bucket}", params=params)
        assert r.status == 200, r.describe()
        assert r.findtext("EncodingType") == "url", r.describe()
        raw_keys = [e.text for e in r.findall("Key")]
        assert all(" " not in k and "\t" not in k and "é" not in k for k in raw_keys), raw_keys
        assert sorted(unquote_plus(k) for k in raw_keys) == sorted(weird)
    # boto3 asks for encoding-type=url itself and decodes
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]) == sorted(weird)
    # delimiter + prefix are encoded too
    r = s3req("GET", f"/{bucket}", params=[("list-type", "2"), ("encoding-type", "url"), ("delimiter", "/")])
    assert [unquote_plus(p.text) for p in r.findall("Prefix") if p.text] == ["sp ace/"], r.describe()


def test_list_without_encoding_xml_escapes(s3, s3req, bucket):
    s3.put_object(Bucket=bucket, Key="a<b>&c\"d'", Body=b"x")
    r = s3req("GET", f"/{bucket}", params=[("list-type", "2")])
    assert r.status == 200, r.describe()
    assert [e.text for e in r.findall("Key")] == ["a<b>&c\"d'"]


@pytest.mark.parametrize("params,code", [
    ([("list-type", "2"), ("max-keys", "-1")], "InvalidArgument"),
    ([("list-type", "2"), ("max-keys", "abc")], "InvalidArgument"),
    ([("list-type", "2"), ("continuation-token", "not-a-token")], "InvalidArgument"),
    ([("encoding-type", "base64")], "InvalidArgument"),
])
def test_list_invalid_arguments(s3req, listing_bucket, params, code):
    r = s3req("GET", f"/{listing_bucket}", params=params)
    assert_s3_error(r, 400, code)


def test_more_than_1000_keys(s3, bucket, aws_cli):
    from concurrent.futures import ThreadPoolExecutor

    keys = [f"many/{i:05d}" for i in range(1105)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=b""), keys))
    first = s3.list_objects_v2(Bucket=bucket)
    assert first["KeyCount"] == 1000 and first["IsTruncated"] is True
    v1 = s3.list_objects(Bucket=bucket)
    assert len(v1["Contents"]) == 1000 and v1["IsTruncated"] is True
    pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=bucket))
    assert [o["Key"] for p in pages for o in p.get("Contents", [])] == keys
    pages = list(s3.get_paginator("list_objects").paginate(Bucket=bucket))
    assert [o["Key"] for p in pages for o in p.get("Contents", [])] == keys
    # awscli pages through and deletes in DeleteObjects batches of 1000
    aws_cli.run("s3", "rm", "--recursive", f"s3://{bucket}/many/")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
