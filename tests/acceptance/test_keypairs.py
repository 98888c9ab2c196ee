"""CreateKeyPair / ImportKeyPair / DescribeKeyPairs / DeleteKeyPair."""

import re
import subprocess

import pytest
from botocore.exceptions import ClientError

import keyutil
from conftest import assert_aws_error, ssh_keygen, unique

KEY_ID = re.compile(r"^key-[0-9a-f]{17}$")
SHA1_COLON = re.compile(r"^([0-9a-f]{2}:){19}[0-9a-f]{2}$")
MD5_COLON = re.compile(r"^([0-9a-f]{2}:){15}[0-9a-f]{2}$")
B64_SHA256 = re.compile(r"^[A-Za-z0-9+/]{43}=$")


def describe_one(ec2, name, **kw):
    kps = ec2.describe_key_pairs(KeyNames=[name], **kw)["KeyPairs"]
    assert len(kps) == 1
    return kps[0]


# ---------------------------------------------------------------- create


def test_create_rsa_pem_default(ec2, tmp_path):
    name = unique("rsa-pem")
    kp = ec2.create_key_pair(KeyName=name)
    assert kp["KeyName"] == name
    assert KEY_ID.match(kp["KeyPairId"]), kp["KeyPairId"]
    mat = kp["KeyMaterial"]
    assert mat.startswith("-----BEGIN RSA PRIVATE KEY-----"), mat[:40]
    # openssl accepts it, 2048 bits
    out = subprocess.run(["openssl", "rsa", "-noout", "-text"], input=mat.encode(), capture_output=True, check=True).stdout
    assert b"2048 bit" in out
    fp = keyutil.created_rsa_fingerprint(mat)
    assert SHA1_COLON.match(kp["KeyFingerprint"]), kp["KeyFingerprint"]
    assert kp["KeyFingerprint"] == fp, "CreateKeyPair RSA fingerprint must be SHA-1 of the PKCS#8 DER private key"
    d = describe_one(ec2, name, IncludePublicKey=True)
    assert d["KeyFingerprint"] == fp
    assert d["KeyPairId"] == kp["KeyPairId"]
    assert d["KeyType"] == "rsa"
    assert "KeyMaterial" not in d
    assert d.get("CreateTime") is not None
    assert keyutil.same_pub(d["PublicKey"], keyutil.public_from_private(mat, tmp_path))


def test_create_ed25519_pem(ec2, tmp_path):
    name = unique("ed-pem")
    kp = ec2.create_key_pair(KeyName=name, KeyType="ed25519", KeyFormat="pem")
    mat = kp["KeyMaterial"]
    assert mat.startswith("-----BEGIN OPENSSH PRIVATE KEY-----"), mat[:40]
    pub = keyutil.public_from_private(mat, tmp_path)
    assert pub.startswith("ssh-ed25519 ")
    fp = keyutil.ed25519_fingerprint(pub)
    assert B64_SHA256.match(kp["KeyFingerprint"]), kp["KeyFingerprint"]
    assert kp["KeyFingerprint"] == fp
    d = describe_one(ec2, name, IncludePublicKey=True)
    assert d["KeyType"] == "ed25519"
    assert d["KeyFingerprint"] == fp
    assert keyutil.same_pub(d["PublicKey"], pub)


def test_create_rsa_ppk(ec2):
    name = unique("rsa-ppk")
    kp = ec2.create_key_pair(KeyName=name, KeyType="rsa", KeyFormat="ppk")
    ppk = keyutil.parse_ppk(kp["KeyMaterial"])
    assert ppk["algorithm"] == "ssh-rsa"
    assert kp["KeyFingerprint"] == keyutil.ppk_rsa_created_fingerprint(ppk)
    d = describe_one(ec2, name, IncludePublicKey=True)
    assert keyutil.same_pub(d["PublicKey"], keyutil.ppk_public_line(ppk))
    assert d["KeyFingerprint"] == kp["KeyFingerprint"]


def test_create_ed25519_ppk(ec2):
    name = unique("ed-ppk")
    kp = ec2.create_key_pair(KeyName=name, KeyType="ed25519", KeyFormat="ppk")
    ppk = keyutil.parse_ppk(kp["KeyMaterial"])
    assert ppk["algorithm"] == "ssh-ed25519"
    pub = keyutil.ppk_public_line(ppk)
    assert kp["KeyFingerprint"] == keyutil.ed25519_fingerprint(pub)
    d = describe_one(ec2, name, IncludePublicKey=True)
    assert keyutil.same_pub(d["PublicKey"], pub)


def test_create_with_tag_specifications(ec2):
    name = unique("tagged")
    kp = ec2.create_key_pair(
        KeyName=name,
        TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": "env", "Value": "test"}, {"Key": "empty", "Value": ""}]}],
    )
    assert sorted((t["Key"], t["Value"]) for t in kp.get("Tags", [])) == [("empty", ""), ("env", "test")]
    d = describe_one(ec2, name)
    assert sorted((t["Key"], t["Value"]) for t in d.get("Tags", [])) == [("empty", ""), ("env", "test")]
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [kp["KeyPairId"]]}])["Tags"]
    assert sorted((t["Key"], t["Value"], t["ResourceType"]) for t in tags) == [("empty", "", "key-pair"), ("env", "test", "key-pair")]


def test_create_duplicate(ec2):
    name = unique("dup")
    ec2.create_key_pair(KeyName=name)
    with pytest.raises(ClientError) as e:
        ec2.create_key_pair(KeyName=name)
    err = e.value.response
    assert err["Error"]["Code"] == "InvalidKeyPair.Duplicate"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert name in err["Error"]["Message"]


def test_key_names_are_case_sensitive_and_allow_spaces(ec2):
    base = unique("Case")
    ec2.create_key_pair(KeyName=base)
    ec2.create_key_pair(KeyName=base.lower())
    ec2.create_key_pair(KeyName=base + " with space")
    names = {k["KeyName"] for k in ec2.describe_key_pairs(KeyNames=[base, base.lower(), base + " with space"])["KeyPairs"]}
    assert names == {base, base.lower(), base + " with space"}


# ---------------------------------------------------------------- import


@pytest.mark.parametrize("bits", [2048, 4096])
def test_import_rsa_openssh(ec2, tmp_path, bits):
    _, pub = ssh_keygen(tmp_path, "rsa", bits)
    name = unique(f"imp-rsa{bits}")
    kp = ec2.import_key_pair(KeyName=name, PublicKeyMaterial=pub.encode())
    expect = keyutil.imported_rsa_fingerprint_from_openssh_pub(pub)
    assert MD5_COLON.match(kp["KeyFingerprint"]), kp["KeyFingerprint"]
    assert kp["KeyFingerprint"] == expect, "ImportKeyPair RSA fingerprint must be MD5 of the public DER (SPKI)"
    assert KEY_ID.match(kp["KeyPairId"])
    assert "KeyMaterial" not in kp
    d = describe_one(ec2, name, IncludePublicKey=True)
    assert d["KeyFingerprint"] == expect
    assert d["KeyType"] == "rsa"
    assert keyutil.same_pub(d["PublicKey"], pub)


def test_import_ed25519_openssh(ec2, tmp_path):
    _, pub = ssh_keygen(tmp_path, "ed25519")
    name = unique("imp-ed")
    kp = ec2.import_key_pair(KeyName=name, PublicKeyMaterial=pub.encode())
    assert kp["KeyFingerprint"] == keyutil.ed25519_fingerprint(pub)
    d = describe_one(ec2, name, IncludePublicKey=True)
    assert d["KeyType"] == "ed25519"
    assert keyutil.same_pub(d["PublicKey"], pub)


def test_import_rsa_rfc4716(ec2, tmp_path):
    path, pub = ssh_keygen(tmp_path, "rsa", 2048)
    rfc = subprocess.run(["ssh-keygen", "-e", "-f", str(path) + ".pub"], capture_output=True, check=True, text=True).stdout
    assert rfc.startswith("---- BEGIN SSH2 PUBLIC KEY ----")
    kp = ec2.import_key_pair(KeyName=unique("imp-rfc"), PublicKeyMaterial=rfc.encode())
    assert kp["KeyFingerprint"] == keyutil.imported_rsa_fingerprint_from_openssh_pub(pub)


def test_import_rsa_base64_der(ec2, tmp_path):
    import base64

    _, pub = ssh_keygen(tmp_path, "rsa", 2048)
    der = keyutil.rsa_spki_der_from_openssh_pub(pub)
    kp = ec2.import_key_pair(KeyName=unique("imp-der"), PublicKeyMaterial=base64.b64encode(der))
    assert kp["KeyFingerprint"] == keyutil.imported_rsa_fingerprint_from_openssh_pub(pub)


def test_import_with_tags_and_awscli(aws_cli, ec2, tmp_path):
    path, pub = ssh_keygen(tmp_path, "ed25519")
    name = unique("cli-imp")
    out = aws_cli.json(
        "ec2", "import-key-pair", "--key-name", name,
        "--public-key-material", f"fileb://{path}.pub",
        "--tag-specifications", "ResourceType=key-pair,Tags=[{Key=via,Value=cli}]",
    )
    assert out["KeyFingerprint"] == keyutil.ed25519_fingerprint(pub)
    d = describe_one(ec2, name)
    assert d.get("Tags") == [{"Key": "via", "Value": "cli"}]


def test_import_duplicate_name(ec2, tmp_path):
    _, pub = ssh_keygen(tmp_path, "ed25519")
    name = unique("imp-dup")
    ec2.create_key_pair(KeyName=name)
    with pytest.raises(ClientError) as e:
        ec2.import_key_pair(KeyName=name, PublicKeyMaterial=pub.encode())
    assert e.value.response["Error"]["Code"] == "InvalidKeyPair.Duplicate"


def test_import_invalid_material(ec2):
    with pytest.raises(ClientError) as e:
        ec2.import_key_pair(KeyName=unique("junk"), PublicKeyMaterial=b"ssh-rsa JUNK test@host")
    assert e.value.response["Error"]["Code"] == "InvalidKey.Format"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


# ---------------------------------------------------------------- describe


@pytest.fixture
def three_keys(ec2, tmp_path):
    tag = unique("grp")
    names = [f"{tag}-alpha", f"{tag}-beta", f"{tag}-gamma"]
    kps = []
    for i, n in enumerate(names):
        kps.append(
            ec2.create_key_pair(
                KeyName=n,
                KeyType="ed25519" if i == 2 else "rsa",
                TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": "grp", "Value": tag}, {"Key": f"{tag}-only{i}", "Value": str(i)}]}],
            )
        )
    return tag, names, kps


def _names(resp):
    return sorted(k["KeyName"] for k in resp["KeyPairs"])


def test_describe_by_names_and_ids(ec2, three_keys):
    tag, names, kps = three_keys
    assert _names(ec2.describe_key_pairs(KeyNames=names[:2])) == names[:2]
    assert _names(ec2.describe_key_pairs(KeyPairIds=[kps[2]["KeyPairId"]])) == [names[2]]
    assert _names(ec2.describe_key_pairs(KeyPairIds=[k["KeyPairId"] for k in kps])) == names
    listed = {k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]}
    assert set(names) <= listed
    # no PublicKey unless asked
    assert all("PublicKey" not in k for k in ec2.describe_key_pairs(KeyNames=names)["KeyPairs"])
    assert all(k.get("PublicKey") for k in ec2.describe_key_pairs(KeyNames=names, IncludePublicKey=True)["KeyPairs"])


def test_describe_filters(ec2, three_keys):
    tag, names, kps = three_keys
    f = lambda n, *v: ec2.describe_key_pairs(Filters=[{"Name": n, "Values": list(v)}])
    assert _names(f("key-name", names[0])) == [names[0]]
    assert _names(f("key-name", f"{tag}-*")) == names
    assert _names(f("key-name", f"{tag}-?eta")) == [names[1]]
    assert _names(f("key-name", names[0], names[2])) == [names[0], names[2]]
    assert _names(f("fingerprint", kps[1]["KeyFingerprint"])) == [names[1]]
    assert _names(f("key-pair-id", kps[2]["KeyPairId"])) == [names[2]]
    assert _names(f("tag:grp", tag)) == names
    assert _names(f(f"tag:{tag}-only1", "1")) == [names[1]]
    assert _names(f(f"tag:{tag}-only1", "2")) == []
    assert _names(f("tag-key", f"{tag}-only2")) == [names[2]]
    assert _names(f("tag-key", f"{tag}-only?")) == names
    assert set(names) <= set(_names(f("tag-key", "grp")))
    # filters AND together, values OR
    both = ec2.describe_key_pairs(
        Filters=[{"Name": "tag:grp", "Values": [tag]}, {"Name": "key-name", "Values": [names[0], names[1]]}]
    )
    assert _names(both) == names[:2]
    # filter combined with KeyNames
    assert _names(ec2.describe_key_pairs(KeyNames=names, Filters=[{"Name": "key-pair-id", "Values": [kps[0]["KeyPairId"]]}])) == [names[0]]
    # the database answers these (issue 18): key type, tag values, GLOB's
    # own characters taken literally, and a named key pair that a filter
    # leaves out is no error
    ed25519 = _names(f("key-type", "ed25519"))
    assert names[2] in ed25519 and names[0] not in ed25519
    assert _names(ec2.describe_key_pairs(KeyNames=names, Filters=[{"Name": "tag-value", "Values": ["1", "2"]}])) == names[1:]
    assert _names(f("key-name", f"{tag}-[ab]*")) == []
    assert _names(ec2.describe_key_pairs(KeyNames=[names[0]], Filters=[{"Name": "key-type", "Values": ["ed25519"]}])) == []


def test_describe_not_found(ec2, three_keys):
    tag, names, kps = three_keys
    with pytest.raises(ClientError) as e:
        ec2.describe_key_pairs(KeyNames=[names[0], unique("missing")])
    assert e.value.response["Error"]["Code"] == "InvalidKeyPair.NotFound"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as e:
        ec2.describe_key_pairs(KeyPairIds=["key-0123456789abcdef0"])
    assert e.value.response["Error"]["Code"] == "InvalidKeyPair.NotFound"


def test_describe_awscli(aws_cli, three_keys):
    tag, names, kps = three_keys
    out = aws_cli.json("ec2", "describe-key-pairs", "--filters", f"Name=tag:grp,Values={tag}")
    assert sorted(k["KeyName"] for k in out["KeyPairs"]) == names


# ---------------------------------------------------------------- delete


def test_delete_by_name_and_id(ec2):
    a, b = unique("del-a"), unique("del-b")
    ec2.create_key_pair(KeyName=a, TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": "d", "Value": "1"}]}])
    kb = ec2.create_key_pair(KeyName=b)
    r = ec2.delete_key_pair(KeyName=a)
    assert r.get("Return", True) is True
    r = ec2.delete_key_pair(KeyPairId=kb["KeyPairId"])
    assert r.get("Return", True) is True
    for n in (a, b):
        with pytest.raises(ClientError) as e:
            ec2.describe_key_pairs(KeyNames=[n])
        assert e.value.response["Error"]["Code"] == "InvalidKeyPair.NotFound"
    # tags of a deleted key pair are gone too
    assert ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [kb["KeyPairId"]]}])["Tags"] == []
    # name can be reused, with a fresh id
    again = ec2.create_key_pair(KeyName=b)
    assert again["KeyPairId"] != kb["KeyPairId"]


def test_delete_missing_succeeds(ec2):
    r = ec2.delete_key_pair(KeyName=unique("never-existed"))
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_delete_tags_removed(ec2):
    name = unique("del-tags")
    kp = ec2.create_key_pair(KeyName=name, TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": "a", "Value": "b"}]}])
    ec2.delete_key_pair(KeyName=name)
    assert ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [kp["KeyPairId"]]}])["Tags"] == []


def test_awscli_create_key_pair_workflow(aws_cli, tmp_path):
    name = unique("cli")
    mat = aws_cli.run("ec2", "create-key-pair", "--key-name", name, "--query", "KeyMaterial", "--output", "text").stdout
    fp = aws_cli.run(
        "ec2", "describe-key-pairs", "--key-names", name, "--query", "KeyPairs[0].KeyFingerprint", "--output", "text"
    ).stdout.strip()
    assert fp == keyutil.created_rsa_fingerprint(mat)
    aws_cli.run("ec2", "delete-key-pair", "--key-name", name)
    proc = aws_cli.run("ec2", "describe-key-pairs", "--key-names", name, check=False)
    assert proc.returncode != 0 and "InvalidKeyPair.NotFound" in proc.stderr


def test_concurrent_create_same_name_exactly_one_wins(server, ec2):
    import threading

    name = unique("race")
    clients = [server.client() for _ in range(6)]
    results = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(clients))

    def go(c):
        barrier.wait(timeout=30)
        try:
            kp = c.create_key_pair(KeyName=name, KeyType="ed25519")
            out = ("ok", kp["KeyPairId"])
        except ClientError as e:
            out = ("err", e.response["Error"]["Code"])
        with lock:
            results.append(out)

    threads = [threading.Thread(target=go, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    oks = [r for r in results if r[0] == "ok"]
    errs = [r[1] for r in results if r[0] == "err"]
    assert len(oks) == 1, results
    assert errs == ["InvalidKeyPair.Duplicate"] * (len(clients) - 1), results
    got = ec2.describe_key_pairs(KeyNames=[name])["KeyPairs"]
    assert len(got) == 1 and got[0]["KeyPairId"] == oks[0][1]
