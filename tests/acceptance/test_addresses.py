"""Elastic IPs through the EC2 API with boto3: AllocateAddress,
AssociateAddress (with and without AllowReassociation), DisassociateAddress,
ReleaseAddress and DescribeAddresses, in their VPC (allocation and
association ids) and EC2-Classic (PublicIp) forms; errors leave nothing
changed; another account's addresses and instances are out of reach; the
pool runs out; associations survive a restart. Instances are launched but
never waited for: the API does not need them booted."""

from __future__ import annotations

import ipaddress
import threading

import pytest
from botocore.exceptions import ClientError

from conftest import MalleeServer, free_port, run_mallee
from computeutil import instances_of, register_guest
from netutil import public_range_for


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    d = tmp_path_factory.mktemp("addresses")
    port = free_port()
    public = public_range_for(port).replace("/24", "/28")
    s = MalleeServer(d / "data", d / "server.log", port=port, extra_args=["--public-range", public])
    try:
        s.start()
        s.images = register_guest(s)
        s.public = ipaddress.ip_network(public)
        yield s
    finally:
        s.stop()
        s.kill()
        s.purge()


def error_code(call, *args, **kwargs) -> str:
    with pytest.raises(ClientError) as e:
        call(*args, **kwargs)
    return e.value.response["Error"]["Code"]


def launch(srv, ec2, count=1) -> list[str]:
    out = ec2.run_instances(ImageId=srv.images["pv"], MinCount=count, MaxCount=count, InstanceType="t1.micro")
    return [i["InstanceId"] for i in out["Instances"]]


def addresses(ec2, **kw) -> dict:
    return {a["AllocationId"]: a for a in ec2.describe_addresses(**kw)["Addresses"]}


def allocatable(network) -> set[str]:
    hosts = [str(h) for h in network.hosts()]
    return set(hosts[1:])  # the first host is the nodes' public bridge


def test_allocate_describe_tag_release(srv):
    ec2 = srv.client()
    zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    a = ec2.allocate_address(
        Domain="vpc",
        TagSpecifications=[{"ResourceType": "elastic-ip", "Tags": [{"Key": "Name", "Value": "web"}]}],
    )
    ip, alloc = a["PublicIp"], a["AllocationId"]
    assert alloc.startswith("eipalloc-") and len(alloc) == len("eipalloc-") + 17
    assert a["Domain"] == "vpc"
    assert a["NetworkBorderGroup"] == zone
    assert a["PublicIpv4Pool"] == "amazon"
    assert ip in allocatable(srv.public)

    listed = addresses(ec2, AllocationIds=[alloc])[alloc]
    assert listed["PublicIp"] == ip
    assert listed["Domain"] == "vpc"
    assert listed["Tags"] == [{"Key": "Name", "Value": "web"}]
    assert "InstanceId" not in listed and "AssociationId" not in listed
    assert list(addresses(ec2, PublicIps=[ip])) == [alloc]
    for name, value in [("public-ip", ip), ("allocation-id", alloc), ("tag:Name", "web"),
                        ("domain", "vpc"), ("network-border-group", zone)]:
        assert alloc in addresses(ec2, Filters=[{"Name": name, "Values": [value]}]), name
    assert alloc not in addresses(ec2, Filters=[{"Name": "domain", "Values": ["standard"]}])
    assert alloc not in addresses(ec2, Filters=[{"Name": "tag:Name", "Values": ["db"]}])
    assert error_code(ec2.describe_addresses, Filters=[{"Name": "bogus", "Values": ["x"]}]) == "InvalidParameterValue"

    # Tags through CreateTags and DescribeTags, as for any resource.
    ec2.create_tags(Resources=[alloc], Tags=[{"Key": "env", "Value": "test"}])
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [alloc]}])["Tags"]
    assert {(t["Key"], t["ResourceType"]) for t in tags} == {("Name", "elastic-ip"), ("env", "elastic-ip")}

    # EC2-Classic form: a standard address, released by its public IP.
    std = ec2.allocate_address(Domain="standard")
    assert std["Domain"] == "standard" and std["PublicIp"] != ip
    assert std["PublicIp"] in allocatable(srv.public)
    ec2.release_address(PublicIp=std["PublicIp"])
    assert std["AllocationId"] not in addresses(ec2)

    assert error_code(ec2.describe_addresses, AllocationIds=["eipalloc-0123456789abcdef0"]) == "InvalidAllocationID.NotFound"
    assert error_code(ec2.describe_addresses, AllocationIds=["bogus"]) == "InvalidAllocationID.Malformed"
    assert error_code(ec2.describe_addresses, PublicIps=["203.0.113.9"]) == "InvalidAddress.NotFound"
    assert error_code(ec2.allocate_address, Domain="classic") == "InvalidParameterValue"

    ec2.release_address(AllocationId=alloc)
    assert alloc not in addresses(ec2)
    assert ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [alloc]}])["Tags"] == []
    assert error_code(ec2.release_address, AllocationId=alloc) == "InvalidAllocationID.NotFound"
    assert error_code(ec2.release_address, PublicIp=ip) == "InvalidAddress.NotFound"


def test_associate_reassociate_disassociate(srv):
    ec2 = srv.client()
    ids = launch(srv, ec2, 2)
    try:
        insts = instances_of(ec2, ids)
        a = ec2.allocate_address(Domain="vpc")
        ip, alloc = a["PublicIp"], a["AllocationId"]

        first = ec2.associate_address(AllocationId=alloc, InstanceId=ids[0])["AssociationId"]
        assert first.startswith("eipassoc-")
        listed = addresses(ec2)[alloc]
        assert listed["InstanceId"] == ids[0]
        assert listed["AssociationId"] == first
        assert listed["PrivateIpAddress"] == insts[ids[0]]["PrivateIpAddress"]
        assert alloc in addresses(ec2, Filters=[{"Name": "instance-id", "Values": [ids[0]]}])
        assert alloc in addresses(ec2, Filters=[{"Name": "association-id", "Values": [first]}])
        assert alloc in addresses(
            ec2, Filters=[{"Name": "private-ip-address", "Values": [insts[ids[0]]["PrivateIpAddress"]]}])
        # Associating again with the same instance changes nothing.
        assert ec2.associate_address(AllocationId=alloc, InstanceId=ids[0])["AssociationId"] == first

        # Moving needs AllowReassociation; a refusal changes nothing.
        assert error_code(ec2.associate_address, AllocationId=alloc, InstanceId=ids[1]) == "Resource.AlreadyAssociated"
        assert error_code(ec2.associate_address, AllocationId=alloc, InstanceId=ids[1],
                          AllowReassociation=False) == "Resource.AlreadyAssociated"
        assert addresses(ec2)[alloc]["InstanceId"] == ids[0]
        assert addresses(ec2)[alloc]["AssociationId"] == first
        second = ec2.associate_address(AllocationId=alloc, InstanceId=ids[1], AllowReassociation=True)["AssociationId"]
        assert second != first
        listed = addresses(ec2)[alloc]
        assert (listed["InstanceId"], listed["AssociationId"]) == (ids[1], second)
        assert listed["PrivateIpAddress"] == insts[ids[1]]["PrivateIpAddress"]

        # An associated VPC address cannot be released.
        assert error_code(ec2.release_address, AllocationId=alloc) == "InvalidIPAddress.InUse"
        assert addresses(ec2)[alloc]["AssociationId"] == second

        # A second address on the same instance replaces the first, which
        # stays allocated (euca2ools' PublicIp form).
        b = ec2.allocate_address(Domain="standard")
        ec2.associate_address(PublicIp=b["PublicIp"], InstanceId=ids[1])
        now = addresses(ec2)
        assert now[b["AllocationId"]]["InstanceId"] == ids[1]
        assert "InstanceId" not in now[alloc] and "AssociationId" not in now[alloc]
        ec2.disassociate_address(PublicIp=b["PublicIp"])
        assert "InstanceId" not in addresses(ec2)[b["AllocationId"]]
        ec2.release_address(AllocationId=b["AllocationId"])

        # Parameter errors change nothing.
        third = ec2.associate_address(AllocationId=alloc, InstanceId=ids[0])["AssociationId"]
        assert error_code(ec2.associate_address, AllocationId=alloc,
                          InstanceId="i-0123456789abcdef0", AllowReassociation=True) == "InvalidInstanceID.NotFound"
        assert error_code(ec2.associate_address, AllocationId=alloc,
                          NetworkInterfaceId="eni-0123456789abcdef0") == "InvalidNetworkInterfaceID.NotFound"
        assert error_code(ec2.associate_address, AllocationId=alloc, InstanceId=ids[1],
                          PrivateIpAddress="10.9.9.9", AllowReassociation=True) == "InvalidParameterValue"
        assert error_code(ec2.associate_address, AllocationId="eipalloc-0123456789abcdef0",
                          InstanceId=ids[1]) == "InvalidAllocationID.NotFound"
        assert error_code(ec2.associate_address, InstanceId=ids[1]) == "MissingParameter"
        assert addresses(ec2)[alloc]["AssociationId"] == third

        ec2.disassociate_address(AssociationId=third)
        listed = addresses(ec2)[alloc]
        assert "InstanceId" not in listed and "AssociationId" not in listed and "PrivateIpAddress" not in listed
        assert error_code(ec2.disassociate_address, AssociationId=third) == "InvalidAssociationID.NotFound"
        assert error_code(ec2.disassociate_address, AssociationId="bogus") == "InvalidAssociationID.Malformed"

        # Auto-assigned public IPs are never listed: only our elastic IP is.
        assert set(addresses(ec2)) == {alloc}

        # A terminating instance cannot get an address.
        ec2.terminate_instances(InstanceIds=[ids[0]])
        assert error_code(ec2.associate_address, AllocationId=alloc, InstanceId=ids[0]) == "IncorrectInstanceState"
        assert "InstanceId" not in addresses(ec2)[alloc]
        ec2.release_address(AllocationId=alloc)
    finally:
        ec2.terminate_instances(InstanceIds=ids)


def test_instances_show_their_public_address(srv):
    """DescribeInstances shows the elastic IP of an instance (ipAddress,
    dnsName) while it is associated."""
    ec2 = srv.client()
    [iid] = launch(srv, ec2)
    a = ec2.allocate_address(Domain="vpc")
    try:
        ec2.associate_address(AllocationId=a["AllocationId"], InstanceId=iid)
        inst = instances_of(ec2, [iid])[iid]
        assert inst.get("PublicIpAddress") == a["PublicIp"]
        assert inst["PublicDnsName"].startswith("ec2-" + a["PublicIp"].replace(".", "-") + ".")
        ec2.disassociate_address(PublicIp=a["PublicIp"])
        assert instances_of(ec2, [iid])[iid].get("PublicIpAddress") != a["PublicIp"]
    finally:
        ec2.disassociate_address(PublicIp=a["PublicIp"])
        ec2.release_address(AllocationId=a["AllocationId"])
        ec2.terminate_instances(InstanceIds=[iid])


def test_other_accounts_are_out_of_reach(srv):
    ec2 = srv.client()
    other = srv.create_account()
    theirs = srv.client(creds=other)
    [mine_instance] = launch(srv, ec2)
    try:
        mine = ec2.allocate_address(Domain="vpc")
        assoc = ec2.associate_address(AllocationId=mine["AllocationId"], InstanceId=mine_instance)["AssociationId"]
        their_addr = theirs.allocate_address(Domain="vpc")

        assert mine["AllocationId"] not in addresses(theirs)
        assert list(addresses(theirs)) == [their_addr["AllocationId"]]
        assert error_code(theirs.describe_addresses, AllocationIds=[mine["AllocationId"]]) == "InvalidAllocationID.NotFound"
        assert error_code(theirs.describe_addresses, PublicIps=[mine["PublicIp"]]) == "InvalidAddress.NotFound"
        assert error_code(theirs.associate_address, AllocationId=mine["AllocationId"],
                          InstanceId=mine_instance, AllowReassociation=True) == "InvalidAllocationID.NotFound"
        assert error_code(theirs.associate_address, PublicIp=mine["PublicIp"],
                          InstanceId=mine_instance, AllowReassociation=True) == "InvalidAddress.NotFound"
        assert error_code(theirs.associate_address, AllocationId=their_addr["AllocationId"],
                          InstanceId=mine_instance) == "InvalidInstanceID.NotFound"
        assert error_code(theirs.disassociate_address, AssociationId=assoc) == "InvalidAssociationID.NotFound"
        assert error_code(theirs.disassociate_address, PublicIp=mine["PublicIp"]) == "InvalidAddress.NotFound"
        assert error_code(theirs.release_address, AllocationId=mine["AllocationId"]) == "InvalidAllocationID.NotFound"
        assert error_code(theirs.release_address, PublicIp=mine["PublicIp"]) == "InvalidAddress.NotFound"
        assert error_code(theirs.create_tags, Resources=[mine["AllocationId"]],
                          Tags=[{"Key": "k", "Value": "v"}]) == "InvalidAllocationID.NotFound"

        listed = addresses(ec2)[mine["AllocationId"]]
        assert (listed["InstanceId"], listed["AssociationId"]) == (mine_instance, assoc)
        assert "Tags" not in listed
        assert "InstanceId" not in addresses(theirs)[their_addr["AllocationId"]]

        ec2.disassociate_address(AssociationId=assoc)
        ec2.release_address(AllocationId=mine["AllocationId"])
        theirs.release_address(AllocationId=their_addr["AllocationId"])
    finally:
        ec2.terminate_instances(InstanceIds=[mine_instance])


def test_elastic_ip_limit(srv):
    acct = srv.create_account()
    ec2 = srv.client(creds=acct)
    limit = next(
        int(a["AttributeValues"][0]["AttributeValue"])
        for a in ec2.describe_account_attributes()["AccountAttributes"]
        if a["AttributeName"] == "max-elastic-ips"
    )
    held = [ec2.allocate_address(Domain="vpc") for _ in range(limit)]
    assert len({a["PublicIp"] for a in held}) == limit
    assert error_code(ec2.allocate_address, Domain="vpc") == "AddressLimitExceeded"
    assert len(addresses(ec2)) == limit
    ec2.release_address(AllocationId=held[0]["AllocationId"])
    ec2.allocate_address(Domain="vpc")
    for a in addresses(ec2):
        ec2.release_address(AllocationId=a)


def test_associations_survive_a_restart(srv):
    ec2 = srv.client()
    [iid] = launch(srv, ec2)
    try:
        a = ec2.allocate_address(Domain="vpc")
        assoc = ec2.associate_address(AllocationId=a["AllocationId"], InstanceId=iid)["AssociationId"]
        before = addresses(ec2)[a["AllocationId"]]
        srv.restart()
        ec2 = srv.client()
        after = addresses(ec2)[a["AllocationId"]]
        assert after == before
        assert after["AssociationId"] == assoc and after["PublicIp"] == a["PublicIp"]
        ec2.disassociate_address(AssociationId=assoc)
        ec2.release_address(AllocationId=a["AllocationId"])
    finally:
        ec2.terminate_instances(InstanceIds=[iid])


def test_pool_exhaustion_and_racing_allocations(mallee_factory):
    port = free_port()
    cidr = public_range_for(port).replace("/24", "/29")
    srv = mallee_factory("tiny", port=port, extra_args=["--no-node", "--public-range", cidr])
    pool = allocatable(ipaddress.ip_network(cidr))
    assert len(pool) == 5
    ec2 = srv.client()
    theirs = srv.client(creds=srv.create_account())

    mine = [ec2.allocate_address(Domain="vpc") for _ in range(3)]
    their = [theirs.allocate_address(Domain="vpc") for _ in range(2)]
    ips = [a["PublicIp"] for a in mine + their]
    assert set(ips) == pool, "every allocatable address once, never the bridge's"

    with pytest.raises(ClientError) as e:
        ec2.allocate_address(Domain="vpc")
    assert e.value.response["Error"]["Code"] == "InsufficientAddressCapacity"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert len(addresses(ec2)) == 3 and len(addresses(theirs)) == 2

    # A released address goes back to the pool.
    theirs.release_address(AllocationId=their[0]["AllocationId"])
    again = ec2.allocate_address(Domain="vpc")
    assert again["PublicIp"] == their[0]["PublicIp"]

    for client in (ec2, theirs):
        for alloc in addresses(client):
            client.release_address(AllocationId=alloc)

    # Eight racing allocations from two accounts: five win, each a
    # different address; the rest find the pool empty.
    results, lock = [], threading.Lock()

    def allocate(client):
        try:
            out = client.allocate_address(Domain="vpc")["PublicIp"]
        except ClientError as err:
            out = err.response["Error"]["Code"]
        with lock:
            results.append(out)

    threads = [threading.Thread(target=allocate, args=(ec2 if n % 2 else theirs,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [r for r in results if r in pool]
    assert len(won) == 5 and set(won) == pool, results
    assert sorted(r for r in results if r not in pool) == ["InsufficientAddressCapacity"] * 3, results
    assert len(addresses(ec2)) + len(addresses(theirs)) == 5


def test_public_range_is_validated(tmp_path):
    for bad in ["198.18.0.1/24", "198.18.0.0/30", "not-a-range"]:
        r = run_mallee("up", "--data-dir", tmp_path / "d", "--listen", "127.0.0.1:1",
                       "--public-range", bad, timeout=30)
        assert r.returncode != 0
        assert "public-range" in (r.stderr + r.stdout)
