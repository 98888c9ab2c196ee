"""Internet gateways, route tables and NAT gateways through boto3: the
default VPC's gateway and main table, every action with AWS's errors,
filters, and the exact call sequences Terraform's AWS provider makes for
`aws_internet_gateway`, `aws_route_table` and `aws_route_table_association`
(create → refresh → destroy). Each test uses an account of its own, so the
session cloud's other tests never see a route change. Traffic is checked
in test_routing_vm.py and crates/node/tests/routing.rs."""

import re

import pytest
from botocore.exceptions import ClientError

from conftest import REGION

IGW_ID = re.compile(r"^igw-[0-9a-f]{17}$")
RTB_ID = re.compile(r"^rtb-[0-9a-f]{17}$")
ASSOC_ID = re.compile(r"^rtbassoc-[0-9a-f]{17}$")
NAT_ID = re.compile(r"^nat-[0-9a-f]{17}$")


@pytest.fixture
def acct(server):
    """A fresh account's EC2 client and id."""
    creds = server.create_account()
    return server.client("ec2", creds=creds), creds["account_id"]


def refused(code: str, call, **kwargs):
    with pytest.raises(ClientError) as e:
        call(**kwargs)
    error = e.value.response["Error"]
    assert error["Code"] == code, (error, kwargs)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert e.value.response["ResponseMetadata"]["RequestId"]
    return error["Message"]


def default_vpc(ec2):
    (vpc,) = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    return vpc


def main_table(ec2, vpc_id):
    (table,) = ec2.describe_route_tables(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "association.main", "Values": ["true"]}]
    )["RouteTables"]
    return table


def test_the_default_vpc_has_a_gateway_and_a_main_table_routing_to_it(acct):
    ec2, account = acct
    vpc = default_vpc(ec2)
    (igw,) = ec2.describe_internet_gateways()["InternetGateways"]
    assert IGW_ID.match(igw["InternetGatewayId"])
    assert igw["OwnerId"] == account
    assert igw["Attachments"] == [{"State": "available", "VpcId": vpc["VpcId"]}]
    table = main_table(ec2, vpc["VpcId"])
    assert RTB_ID.match(table["RouteTableId"])
    assert table["OwnerId"] == account
    assert table["Routes"] == [
        {"DestinationCidrBlock": "172.31.0.0/16", "GatewayId": "local", "Origin": "CreateRouteTable",
         "State": "active"},
        {"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": igw["InternetGatewayId"], "Origin": "CreateRoute",
         "State": "active"},
    ]
    (association,) = table["Associations"]
    assert association["Main"] is True
    assert ASSOC_ID.match(association["RouteTableAssociationId"])
    assert association["AssociationState"] == {"State": "associated"}
    assert "SubnetId" not in association
    # Asking again makes nothing new.
    assert ec2.describe_route_tables()["RouteTables"] == [table]
    assert ec2.describe_internet_gateways()["InternetGateways"] == [igw]
    # Filters.
    by = lambda name, value: ec2.describe_internet_gateways(  # noqa: E731
        Filters=[{"Name": name, "Values": [value]}])["InternetGateways"]
    assert by("attachment.vpc-id", vpc["VpcId"]) == [igw]
    assert by("attachment.state", "available") == [igw]
    assert by("internet-gateway-id", igw["InternetGatewayId"]) == [igw]
    assert by("owner-id", account) == [igw]
    assert by("attachment.vpc-id", "vpc-0123456789abcdef0") == []
    tables = lambda name, value: ec2.describe_route_tables(  # noqa: E731
        Filters=[{"Name": name, "Values": [value]}])["RouteTables"]
    assert tables("route.gateway-id", igw["InternetGatewayId"]) == [table]
    assert tables("route.destination-cidr-block", "0.0.0.0/0") == [table]
    assert tables("route-table-id", table["RouteTableId"]) == [table]
    assert tables("association.main", "false") == []
    refused("InvalidParameterValue", ec2.describe_route_tables, Filters=[{"Name": "nope", "Values": ["x"]}])


def test_internet_gateways_attach_detach_and_delete_as_on_aws(acct):
    ec2, account = acct
    vpc_id = default_vpc(ec2)["VpcId"]
    (default,) = ec2.describe_internet_gateways()["InternetGateways"]
    default_id = default["InternetGatewayId"]
    made = ec2.create_internet_gateway(
        TagSpecifications=[{"ResourceType": "internet-gateway", "Tags": [{"Key": "Name", "Value": "spare"}]}]
    )["InternetGateway"]
    igw = made["InternetGatewayId"]
    assert IGW_ID.match(igw)
    assert made["Attachments"] == []
    assert made["Tags"] == [{"Key": "Name", "Value": "spare"}]
    assert made["OwnerId"] == account
    assert ec2.describe_internet_gateways(
        Filters=[{"Name": "tag:Name", "Values": ["spare"]}])["InternetGateways"] == [made]
    # One gateway per VPC, one VPC per gateway.
    refused("Resource.AlreadyAssociated", ec2.attach_internet_gateway, InternetGatewayId=igw, VpcId=vpc_id)
    refused("Resource.AlreadyAssociated", ec2.attach_internet_gateway, InternetGatewayId=default_id,
            VpcId=vpc_id)
    refused("Gateway.NotAttached", ec2.detach_internet_gateway, InternetGatewayId=igw, VpcId=vpc_id)
    refused("DependencyViolation", ec2.delete_internet_gateway, InternetGatewayId=default_id)
    refused("InvalidInternetGatewayID.NotFound", ec2.attach_internet_gateway,
            InternetGatewayId="igw-0123456789abcdef0", VpcId=vpc_id)
    refused("InvalidVpcID.NotFound", ec2.attach_internet_gateway, InternetGatewayId=igw,
            VpcId="vpc-0123456789abcdef0")
    refused("InvalidInternetGatewayID.Malformed", ec2.delete_internet_gateway, InternetGatewayId="nope")
    refused("InvalidInternetGatewayID.NotFound", ec2.describe_internet_gateways,
            InternetGatewayIds=["igw-0123456789abcdef0"])
    refused("InvalidParameterValue", ec2.create_internet_gateway,
            TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "a", "Value": "b"}]}])
    # Swap the gateways: the main table's internet route turns blackhole
    # while its gateway is away, active again when it is back.
    ec2.detach_internet_gateway(InternetGatewayId=default_id, VpcId=vpc_id)
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
    internet = [r for r in main_table(ec2, vpc_id)["Routes"] if r["DestinationCidrBlock"] == "0.0.0.0/0"]
    assert internet[0]["GatewayId"] == default_id and internet[0]["State"] == "blackhole"
    assert ec2.describe_route_tables(Filters=[{"Name": "route.state", "Values": ["blackhole"]}])["RouteTables"]
    ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
    ec2.delete_internet_gateway(InternetGatewayId=igw)
    refused("InvalidInternetGatewayID.NotFound", ec2.delete_internet_gateway, InternetGatewayId=igw)
    ec2.attach_internet_gateway(InternetGatewayId=default_id, VpcId=vpc_id)
    internet = [r for r in main_table(ec2, vpc_id)["Routes"] if r["DestinationCidrBlock"] == "0.0.0.0/0"]
    assert internet[0]["State"] == "active"
    assert [g["InternetGatewayId"] for g in ec2.describe_internet_gateways()["InternetGateways"]] == [default_id]


def test_route_tables_routes_and_associations_as_on_aws(acct):
    ec2, account = acct
    vpc_id = default_vpc(ec2)["VpcId"]
    subnet_id = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    igw = ec2.describe_internet_gateways()["InternetGateways"][0]["InternetGatewayId"]
    main = main_table(ec2, vpc_id)
    made = ec2.create_route_table(
        VpcId=vpc_id, TagSpecifications=[{"ResourceType": "route-table", "Tags": [{"Key": "tier", "Value": "a"}]}]
    )["RouteTable"]
    rtb = made["RouteTableId"]
    assert RTB_ID.match(rtb)
    assert made["VpcId"] == vpc_id and made["OwnerId"] == account
    assert made["Associations"] == []
    assert made["Routes"] == [{"DestinationCidrBlock": "172.31.0.0/16", "GatewayId": "local",
                               "Origin": "CreateRouteTable", "State": "active"}]
    assert made["Tags"] == [{"Key": "tier", "Value": "a"}]
    refused("InvalidVpcID.NotFound", ec2.create_route_table, VpcId="vpc-0123456789abcdef0")

    # Routes.
    assert ec2.create_route(RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)["Return"]
    refused("RouteAlreadyExists", ec2.create_route, RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0",
            GatewayId=igw)
    refused("InvalidParameterValue", ec2.create_route, RouteTableId=rtb, DestinationCidrBlock="10.0.0.0/33",
            GatewayId=igw)
    refused("InvalidParameterValue", ec2.create_route, RouteTableId=rtb, DestinationCidrBlock="172.31.8.0/24",
            GatewayId=igw)
    refused("InvalidGatewayID.NotFound", ec2.create_route, RouteTableId=rtb, DestinationCidrBlock="10.1.0.0/16",
            GatewayId="igw-0123456789abcdef0")
    refused("NatGatewayNotFound", ec2.create_route, RouteTableId=rtb, DestinationCidrBlock="10.1.0.0/16",
            NatGatewayId="nat-0123456789abcdef0")
    refused("InvalidInstanceID.NotFound", ec2.create_route, RouteTableId=rtb,
            DestinationCidrBlock="10.1.0.0/16", InstanceId="i-0123456789abcdef0")
    refused("InvalidParameterCombination", ec2.create_route, RouteTableId=rtb,
            DestinationCidrBlock="10.1.0.0/16")
    refused("InvalidRouteTableID.NotFound", ec2.create_route, RouteTableId="rtb-0123456789abcdef0",
            DestinationCidrBlock="10.1.0.0/16", GatewayId=igw)
    ec2.create_route(RouteTableId=rtb, DestinationCidrBlock="10.1.0.0/16", GatewayId=igw)
    ec2.replace_route(RouteTableId=rtb, DestinationCidrBlock="10.1.0.0/16", GatewayId=igw)
    refused("InvalidParameterValue", ec2.replace_route, RouteTableId=rtb, DestinationCidrBlock="10.2.0.0/16",
            GatewayId=igw)
    refused("InvalidParameterValue", ec2.delete_route, RouteTableId=rtb, DestinationCidrBlock="172.31.0.0/16")
    ec2.delete_route(RouteTableId=rtb, DestinationCidrBlock="10.1.0.0/16")
    refused("InvalidRoute.NotFound", ec2.delete_route, RouteTableId=rtb, DestinationCidrBlock="10.1.0.0/16")
    routes = ec2.describe_route_tables(RouteTableIds=[rtb])["RouteTables"][0]["Routes"]
    assert [(r["DestinationCidrBlock"], r["Origin"]) for r in routes] == [
        ("172.31.0.0/16", "CreateRouteTable"), ("0.0.0.0/0", "CreateRoute")]

    # Associations.
    assoc = ec2.associate_route_table(RouteTableId=rtb, SubnetId=subnet_id)
    assert ASSOC_ID.match(assoc["AssociationId"])
    assert assoc["AssociationState"] == {"State": "associated"}
    refused("Resource.AlreadyAssociated", ec2.associate_route_table, RouteTableId=main["RouteTableId"],
            SubnetId=subnet_id)
    refused("InvalidSubnetID.NotFound", ec2.associate_route_table, RouteTableId=rtb,
            SubnetId="subnet-0123456789abcdef0")
    refused("DependencyViolation", ec2.delete_route_table, RouteTableId=rtb)
    refused("DependencyViolation", ec2.delete_route_table, RouteTableId=main["RouteTableId"])
    found = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}])
    assert [t["RouteTableId"] for t in found["RouteTables"]] == [rtb]
    found = ec2.describe_route_tables(
        Filters=[{"Name": "association.route-table-association-id", "Values": [assoc["AssociationId"]]}])
    assert found["RouteTables"][0]["Associations"] == [{
        "Main": False, "RouteTableAssociationId": assoc["AssociationId"], "RouteTableId": rtb,
        "SubnetId": subnet_id, "AssociationState": {"State": "associated"}}]
    # The subnet's association moves to the main table and back; the main
    # association moves too, and stays main.
    moved = ec2.replace_route_table_association(AssociationId=assoc["AssociationId"],
                                                RouteTableId=main["RouteTableId"])["NewAssociationId"]
    refused("InvalidAssociationID.NotFound", ec2.disassociate_route_table, AssociationId=assoc["AssociationId"])
    main_assoc = main["Associations"][0]["RouteTableAssociationId"]
    refused("InvalidParameterValue", ec2.disassociate_route_table, AssociationId=main_assoc)
    new_main = ec2.replace_route_table_association(AssociationId=main_assoc, RouteTableId=rtb)
    assert main_table(ec2, vpc_id)["RouteTableId"] == rtb
    ec2.disassociate_route_table(AssociationId=moved)
    ec2.replace_route_table_association(AssociationId=new_main["NewAssociationId"],
                                        RouteTableId=main["RouteTableId"])
    assert main_table(ec2, vpc_id)["RouteTableId"] == main["RouteTableId"]
    assert ec2.delete_route_table(RouteTableId=rtb)
    refused("InvalidRouteTableID.NotFound", ec2.describe_route_tables, RouteTableIds=[rtb])
    refused("InvalidRouteTableID.Malformed", ec2.delete_route_table, RouteTableId="igw-1")
    assert [t["RouteTableId"] for t in ec2.describe_route_tables()["RouteTables"]] == [main["RouteTableId"]]


def test_nat_gateways_hold_their_address_and_go_deleted(acct):
    ec2, account = acct
    vpc_id = default_vpc(ec2)["VpcId"]
    subnet = ec2.describe_subnets()["Subnets"][0]
    eip = ec2.allocate_address(Domain="vpc")
    made = ec2.create_nat_gateway(
        SubnetId=subnet["SubnetId"], AllocationId=eip["AllocationId"], ClientToken="nat-once",
        TagSpecifications=[{"ResourceType": "natgateway", "Tags": [{"Key": "Name", "Value": "out"}]}],
    )
    nat = made["NatGateway"]
    nat_id = nat["NatGatewayId"]
    assert NAT_ID.match(nat_id)
    assert made["ClientToken"] == "nat-once"
    assert nat["State"] == "pending"
    assert (nat["SubnetId"], nat["VpcId"], nat["ConnectivityType"]) == (subnet["SubnetId"], vpc_id, "public")
    (address,) = nat["NatGatewayAddresses"]
    assert address["AllocationId"] == eip["AllocationId"] and address["PublicIp"] == eip["PublicIp"]
    assert address["NetworkInterfaceId"].startswith("eni-")
    assert address["PrivateIp"] == "172.31.15.254"
    assert nat["Tags"] == [{"Key": "Name", "Value": "out"}]
    # The same client token gives the same gateway.
    again = ec2.create_nat_gateway(SubnetId=subnet["SubnetId"], AllocationId=eip["AllocationId"],
                                   ClientToken="nat-once")["NatGateway"]
    assert again["NatGatewayId"] == nat_id
    (seen,) = ec2.describe_nat_gateways(NatGatewayIds=[nat_id])["NatGateways"]
    assert seen["State"] == "available"
    assert seen["NatGatewayAddresses"][0]["Status"] == "succeeded"
    for name, value in (("state", "available"), ("subnet-id", subnet["SubnetId"]), ("vpc-id", vpc_id),
                        ("nat-gateway-id", nat_id), ("tag:Name", "out")):
        assert ec2.describe_nat_gateways(Filter=[{"Name": name, "Values": [value]}])["NatGateways"] == [seen]
    # The address is the gateway's: neither released, moved nor reused.
    (held,) = ec2.describe_addresses(AllocationIds=[eip["AllocationId"]])["Addresses"]
    assert held["PrivateIpAddress"] == "172.31.15.254" and held["AssociationId"].startswith("eipassoc-")
    refused("InvalidIPAddress.InUse", ec2.release_address, AllocationId=eip["AllocationId"])
    refused("Resource.AlreadyAssociated", ec2.create_nat_gateway, SubnetId=subnet["SubnetId"],
            AllocationId=eip["AllocationId"])
    refused("InvalidAllocationID.NotFound", ec2.create_nat_gateway, SubnetId=subnet["SubnetId"],
            AllocationId="eipalloc-0123456789abcdef0")
    refused("InvalidSubnetID.NotFound", ec2.create_nat_gateway, SubnetId="subnet-0123456789abcdef0",
            AllocationId=eip["AllocationId"])
    refused("UnsupportedOperation", ec2.create_nat_gateway, SubnetId=subnet["SubnetId"],
            ConnectivityType="private")
    refused("NatGatewayNotFound", ec2.describe_nat_gateways, NatGatewayIds=["nat-0123456789abcdef0"])
    refused("NatGatewayNotFound", ec2.delete_nat_gateway, NatGatewayId="nat-0123456789abcdef0")
    # A route through it is active until it is deleted.
    rtb = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat_id)
    route = ec2.describe_route_tables(RouteTableIds=[rtb])["RouteTables"][0]["Routes"][1]
    assert (route["NatGatewayId"], route["State"]) == (nat_id, "active")
    assert ec2.describe_route_tables(
        Filters=[{"Name": "route.nat-gateway-id", "Values": [nat_id]}])["RouteTables"][0]["RouteTableId"] == rtb
    assert ec2.delete_nat_gateway(NatGatewayId=nat_id)["NatGatewayId"] == nat_id
    (gone,) = ec2.describe_nat_gateways(NatGatewayIds=[nat_id])["NatGateways"]
    assert gone["State"] == "deleted" and "DeleteTime" in gone
    assert ec2.delete_nat_gateway(NatGatewayId=nat_id)["NatGatewayId"] == nat_id
    route = ec2.describe_route_tables(RouteTableIds=[rtb])["RouteTables"][0]["Routes"][1]
    assert route["State"] == "blackhole"
    refused("NatGatewayNotFound", ec2.replace_route, RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0",
            NatGatewayId=nat_id)
    ec2.delete_route_table(RouteTableId=rtb)
    (free,) = ec2.describe_addresses(AllocationIds=[eip["AllocationId"]])["Addresses"]
    assert "AssociationId" not in free
    ec2.release_address(AllocationId=eip["AllocationId"])


# ---------------------------------------------------------------- Terraform's calls, replayed


def tf_tags(resource_type, name):
    return [{"ResourceType": resource_type, "Tags": [{"Key": "Name", "Value": name}]}]


def test_terraform_aws_internet_gateway(acct):
    """internal/service/ec2/vpc_internet_gateway.go (resourceInternetGateway*
    with attachInternetGateway / detachInternetGateway and their waiters in
    wait.go / status.go, FindInternetGatewayByID in find.go). The default
    VPC has a gateway already, so the replay detaches it first, as a user
    moving to a Terraform-managed one would."""
    ec2, account = acct
    vpc_id = default_vpc(ec2)["VpcId"]
    (default,) = ec2.describe_internet_gateways()["InternetGateways"]
    ec2.detach_internet_gateway(InternetGatewayId=default["InternetGatewayId"], VpcId=vpc_id)

    # Create: CreateInternetGateway with TagSpecifications, then
    # attachInternetGateway: AttachInternetGateway, WaitInternetGatewayAttached
    # (FindInternetGatewayAttachment: DescribeInternetGateways by id, the
    # attachment of vpc_id in state "available").
    igw = ec2.create_internet_gateway(TagSpecifications=tf_tags("internet-gateway", "tf"))["InternetGateway"]
    igw_id = igw["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id)
    (found,) = ec2.describe_internet_gateways(InternetGatewayIds=[igw_id])["InternetGateways"]
    assert [a for a in found["Attachments"] if a["VpcId"] == vpc_id][0]["State"] == "available"

    # Read (and every refresh): FindInternetGatewayByID; the provider builds
    # the ARN from OwnerId and reads Attachments[0].VpcId and Tags.
    for _ in range(2):
        (read,) = ec2.describe_internet_gateways(InternetGatewayIds=[igw_id])["InternetGateways"]
        assert read["InternetGatewayId"] == igw_id
        assert read["OwnerId"] == account
        assert f"arn:aws:ec2:{REGION}:{read['OwnerId']}:internet-gateway/{igw_id}"
        assert read["Attachments"][0]["VpcId"] == vpc_id
        assert read["Tags"] == [{"Key": "Name", "Value": "tf"}]

    # Delete: detachInternetGateway (DetachInternetGateway, retried on
    # DependencyViolation; Gateway.NotAttached counts as done), then
    # WaitInternetGatewayDetached (until no attachment to vpc_id), then
    # DeleteInternetGateway (InvalidInternetGatewayID.NotFound counts as
    # done).
    ec2.detach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id)
    (detached,) = ec2.describe_internet_gateways(InternetGatewayIds=[igw_id])["InternetGateways"]
    assert [a for a in detached["Attachments"] if a["VpcId"] == vpc_id] == []
    refused("Gateway.NotAttached", ec2.detach_internet_gateway, InternetGatewayId=igw_id, VpcId=vpc_id)
    ec2.delete_internet_gateway(InternetGatewayId=igw_id)
    refused("InvalidInternetGatewayID.NotFound", ec2.delete_internet_gateway, InternetGatewayId=igw_id)
    refused("InvalidInternetGatewayID.NotFound", ec2.describe_internet_gateways, InternetGatewayIds=[igw_id])
    ec2.attach_internet_gateway(InternetGatewayId=default["InternetGatewayId"], VpcId=vpc_id)


def test_terraform_aws_route_table_and_association(acct):
    """internal/service/ec2/vpc_route_table.go (resourceRouteTableCreate/
    Read/Delete, routeTableAddRoute with WaitRouteReady and
    FindRouteByIPv4Destination, flattenRoutes skipping the local route) and
    vpc_route_table_association.go (AssociateRouteTable, then
    WaitRouteTableAssociationCreated and the reads, both through
    FindRouteTableAssociationByID: DescribeRouteTables filtered on
    association.route-table-association-id)."""
    ec2, account = acct
    vpc_id = default_vpc(ec2)["VpcId"]
    subnet_id = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    igw_id = ec2.describe_internet_gateways()["InternetGateways"][0]["InternetGatewayId"]

    # aws_route_table create: CreateRouteTable with TagSpecifications,
    # WaitRouteTableReady (DescribeRouteTables by id), then per route
    # CreateRoute and WaitRouteReady (the route of that destination found).
    rtb_id = ec2.create_route_table(VpcId=vpc_id, TagSpecifications=tf_tags("route-table", "tf"))[
        "RouteTable"]["RouteTableId"]
    assert ec2.describe_route_tables(RouteTableIds=[rtb_id])["RouteTables"][0]["RouteTableId"] == rtb_id
    ec2.create_route(RouteTableId=rtb_id, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw_id)
    routes = ec2.describe_route_tables(RouteTableIds=[rtb_id])["RouteTables"][0]["Routes"]
    assert [r for r in routes if r.get("DestinationCidrBlock") == "0.0.0.0/0"][0]["GatewayId"] == igw_id

    # aws_route_table_association create: AssociateRouteTable, then wait
    # for the association's state "associated".
    assoc_id = ec2.associate_route_table(RouteTableId=rtb_id, SubnetId=subnet_id)["AssociationId"]

    def find_association():
        tables = ec2.describe_route_tables(
            Filters=[{"Name": "association.route-table-association-id", "Values": [assoc_id]}])["RouteTables"]
        return [a for t in tables for a in t["Associations"] if a["RouteTableAssociationId"] == assoc_id]

    (association,) = find_association()
    assert association["AssociationState"]["State"] == "associated"

    # Refresh, twice: FindRouteTableByID and the fields read (OwnerId for
    # the ARN, PropagatingVgws, Routes without the local one, VpcId, Tags);
    # the association's RouteTableId and SubnetId.
    for _ in range(2):
        (table,) = ec2.describe_route_tables(RouteTableIds=[rtb_id])["RouteTables"]
        assert table["OwnerId"] == account and table["VpcId"] == vpc_id
        assert table["PropagatingVgws"] == []
        flattened = [r for r in table["Routes"] if r.get("GatewayId") != "local"]
        assert flattened == [{"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": igw_id,
                              "Origin": "CreateRoute", "State": "active"}]
        assert table["Tags"] == [{"Key": "Name", "Value": "tf"}]
        (association,) = find_association()
        assert (association["RouteTableId"], association["SubnetId"]) == (rtb_id, subnet_id)

    # aws_route_table_association destroy: DisassociateRouteTable, then
    # wait until FindRouteTableAssociationByID finds nothing.
    ec2.disassociate_route_table(AssociationId=assoc_id)
    assert find_association() == []
    # aws_route_table destroy: FindRouteTableByID, disassociate what is
    # left (nothing), DeleteRouteTable, WaitRouteTableDeleted (until
    # InvalidRouteTableID.NotFound).
    (table,) = ec2.describe_route_tables(RouteTableIds=[rtb_id])["RouteTables"]
    assert table["Associations"] == []
    ec2.delete_route_table(RouteTableId=rtb_id)
    refused("InvalidRouteTableID.NotFound", ec2.describe_route_tables, RouteTableIds=[rtb_id])
    refused("InvalidRouteTableID.NotFound", ec2.delete_route_table, RouteTableId=rtb_id)


def test_a_custom_vpc_has_its_main_table_and_goes_with_it(acct):
    ec2, account = acct
    vpc_id = ec2.create_vpc(CidrBlock="10.44.0.0/16")["Vpc"]["VpcId"]
    main = main_table(ec2, vpc_id)
    assert main["Routes"] == [{"DestinationCidrBlock": "10.44.0.0/16", "GatewayId": "local",
                               "Origin": "CreateRouteTable", "State": "active"}]
    assert ec2.describe_internet_gateways(
        Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}])["InternetGateways"] == []
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
    refused("DependencyViolation", ec2.delete_vpc, VpcId=vpc_id)
    ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
    ec2.delete_internet_gateway(InternetGatewayId=igw)
    extra = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    refused("DependencyViolation", ec2.delete_vpc, VpcId=vpc_id)
    ec2.delete_route_table(RouteTableId=extra)
    ec2.delete_vpc(VpcId=vpc_id)
    refused("InvalidRouteTableID.NotFound", ec2.describe_route_tables, RouteTableIds=[main["RouteTableId"]])
    assert ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["RouteTables"] == []
