"""`mallee admin` account/access-key CLI and isolation between accounts."""

import json
import re

import pytest
from botocore.exceptions import ClientError

from conftest import REGION, unique


def test_account_create_json(server):
    name = unique("acct")
    proc = server.admin_cli("account", "create", name, "--json", check=True)
    acc = json.loads(proc.stdout)
    assert acc["account_name"] == name
    assert re.fullmatch(r"\d{12}", acc["account_id"]), acc
    assert acc["account_id"] != server.admin["account_id"]


def test_account_create_plain_output(server):
    name = unique("plain")
    proc = server.admin_cli("account", "create", name, check=True)
    assert name in proc.stdout
    assert re.search(r"\b\d{12}\b", proc.stdout), proc.stdout


def test_account_create_duplicate_fails(server):
    name = unique("dupacct")
    server.admin_cli("account", "create", name, check=True)
    proc = server.admin_cli("account", "create", name)
    assert proc.returncode != 0, proc.stdout
    assert proc.stderr.strip(), "a failing admin command should say why on stderr"
    proc = server.admin_cli("account", "create", "eucalyptus")
    assert proc.returncode != 0


def test_access_key_for_missing_account_fails(server):
    proc = server.admin_cli("access-key", "create", "--account", unique("nosuch"), "--json")
    assert proc.returncode != 0


def test_access_key_create_and_use(server):
    name = unique("keyacct")
    acc = json.loads(server.admin_cli("account", "create", name, "--json", check=True).stdout)
    key = json.loads(server.admin_cli("access-key", "create", "--account", name, "--json", check=True).stdout)
    assert key["account_id"] == acc["account_id"]
    assert key["account_name"] == name
    assert key["access_key_id"] != server.admin["access_key_id"]
    c = server.client(creds=key)
    assert c.describe_regions()["Regions"][0]["RegionName"] == REGION
    assert c.describe_key_pairs()["KeyPairs"] == []
    # a second key for the same account sees the same resources
    key2 = json.loads(server.admin_cli("access-key", "create", "--account", name, "--json", check=True).stdout)
    assert key2["access_key_id"] != key["access_key_id"]
    c.create_key_pair(KeyName="shared-by-keys")
    assert [k["KeyName"] for k in server.client(creds=key2).describe_key_pairs()["KeyPairs"]] == ["shared-by-keys"]


def test_isolation_between_accounts(server, ec2, other_account):
    b = server.client(creds=other_account)
    name = unique("iso")
    ka = ec2.create_key_pair(KeyName=name, TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": "owner", "Value": "a"}]}])

    # B sees nothing of A
    assert name not in {k["KeyName"] for k in b.describe_key_pairs()["KeyPairs"]}
    assert ka["KeyPairId"] not in {t["ResourceId"] for t in b.describe_tags()["Tags"]}
    assert b.describe_tags(Filters=[{"Name": "resource-id", "Values": [ka["KeyPairId"]]}])["Tags"] == []
    assert b.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [name]}])["KeyPairs"] == []
    for kw in ({"KeyNames": [name]}, {"KeyPairIds": [ka["KeyPairId"]]}):
        with pytest.raises(ClientError) as e:
            b.describe_key_pairs(**kw)
        assert e.value.response["Error"]["Code"] == "InvalidKeyPair.NotFound"

    # B cannot tag or untag A's key pair
    with pytest.raises(ClientError) as e:
        b.create_tags(Resources=[ka["KeyPairId"]], Tags=[{"Key": "owner", "Value": "b"}])
    assert e.value.response["Error"]["Code"] == "InvalidKeyPair.NotFound"
    try:
        b.delete_tags(Resources=[ka["KeyPairId"]], Tags=[{"Key": "owner"}])
    except ClientError as err:
        assert err.response["Error"]["Code"] == "InvalidKeyPair.NotFound"

    # B may use the same name; deleting "its" name does not touch A's key
    kb = b.create_key_pair(KeyName=name)
    assert kb["KeyPairId"] != ka["KeyPairId"]
    b.delete_key_pair(KeyName=name)
    try:
        b.delete_key_pair(KeyPairId=ka["KeyPairId"])
    except ClientError:
        pass

    got = ec2.describe_key_pairs(KeyNames=[name])["KeyPairs"]
    assert len(got) == 1 and got[0]["KeyPairId"] == ka["KeyPairId"]
    assert got[0]["Tags"] == [{"Key": "owner", "Value": "a"}]
    assert name not in {k["KeyName"] for k in b.describe_key_pairs()["KeyPairs"]}


def test_other_account_via_awscli(server, other_account, tmp_path):
    from conftest import AwsCli

    cli = AwsCli(server, creds=other_account, home=tmp_path)
    name = unique("cli-b")
    cli.run("ec2", "create-key-pair", "--key-name", name)
    out = cli.json("ec2", "describe-key-pairs")
    assert name in [k["KeyName"] for k in out["KeyPairs"]]
    admin_view = server.client().describe_key_pairs(Filters=[{"Name": "key-name", "Values": [name]}])["KeyPairs"]
    assert admin_view == []
