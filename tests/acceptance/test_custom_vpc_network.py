"""Custom VPCs on the data path, with real guests: two VPCs with the same
CIDR (10.0.0.0/16, and the same subnet 10.0.1.0/24) on one node. Each
instance gets its address, gateway and resolver from its own VPC by DHCP,
resolves its own private DNS name at the VPC's base + 2 and at
169.254.169.253, reads its metadata, and reaches the instances of its VPC
but never those of the other one, even where the other VPC's groups let
everything in (issue 21's "two VPCs with the same CIDR"). One VPC uses a
DHCP options set whose `domain-name` its guests get as their search
domain; the other's keep the region's."""

import pytest

from computeutil import guest_cloud, instances_of, user_data, wait_console, wait_states

OPEN = [
    {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
]


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    with guest_cloud(tmp_path_factory, "custom-vpc-net") as srv:
        yield srv


def network_checks(tag: str) -> str:
    """What every guest reports: its address and gateway from DHCP, and
    its own name through both resolver addresses."""
    return f"""
md=http://169.254.169.254/latest/meta-data
ip=$(wget -qO- $md/local-ipv4)
name=$(wget -qO- $md/local-hostname)
echo "{tag}-META $ip $name"
ip -4 addr show eth0 | grep -q "inet $ip/24" && echo "{tag}-ADDR-OK" || echo "{tag}-ADDR-BAD"
ip route | grep -q "default via 10.0.1.1" && echo "{tag}-GW-OK" || echo "{tag}-GW-BAD"
grep -q "nameserver 10.0.0.2" /etc/resolv.conf && echo "{tag}-RESOLVCONF-OK" || echo "{tag}-RESOLVCONF-BAD"
grep "^search" /etc/resolv.conf | sed "s/^/{tag}-RESOLV-/"
for server in 10.0.0.2 169.254.169.253; do
  if nslookup $name $server | grep -q "Address:* *$ip\\b"; then echo "{tag}-DNS-OK-$server"; else echo "{tag}-DNS-BAD-$server"; fi
done
"""


def probe(tag: str, target: str, tries: int) -> str:
    """Pings `target` up to `tries` times: REACHED at the first answer,
    else ISOLATED."""
    return f"""
n=0; result=ISOLATED
while [ $n -lt {tries} ]; do
  if ping -c 1 -W 1 {target} >/dev/null 2>&1; then result=REACHED; break; fi
  n=$((n+1)); sleep 1
done
echo "{tag}-PROBE-{target}-$result"
"""


def make_vpc(ec2):
    vid = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    sid = ec2.create_subnet(VpcId=vid, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    default = ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vid]}, {"Name": "group-name", "Values": ["default"]}]
    )["SecurityGroups"][0]["GroupId"]
    open_group = ec2.create_security_group(GroupName="open", Description="all in", VpcId=vid)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=open_group, IpPermissions=OPEN)
    return vid, sid, [default, open_group]


def launch(ec2, cloud, subnet, groups, script):
    return ec2.run_instances(
        ImageId=cloud.images["pv"], MinCount=1, MaxCount=1, InstanceType="t1.micro",
        SubnetId=subnet, SecurityGroupIds=groups, UserData=user_data(script),
    )["Instances"][0]


def test_two_vpcs_with_the_same_cidr_are_separate_networks(cloud):
    ec2 = cloud.client("ec2")
    vpc_a, subnet_a, groups_a = make_vpc(ec2)
    vpc_b, subnet_b, groups_b = make_vpc(ec2)
    launched = []
    try:
        # A's first instance: a target that lets everything in.
        a2 = launch(ec2, cloud, subnet_a, groups_a, network_checks("A2") + "echo A2-READY")
        launched.append(a2["InstanceId"])
        assert a2["PrivateIpAddress"] == "10.0.1.4"
        wait_states(ec2, [a2["InstanceId"]], "running")
        wait_console(ec2, a2["InstanceId"], "A2-READY")
        # A's second instance reaches the first in their VPC.
        a1 = launch(ec2, cloud, subnet_a, groups_a, network_checks("A1") + probe("A1", "10.0.1.4", 60))
        launched.append(a1["InstanceId"])
        assert a1["PrivateIpAddress"] == "10.0.1.5"
        out_a1 = wait_console(ec2, a1["InstanceId"], "A1-PROBE-10.0.1.4-")
        assert "A1-PROBE-10.0.1.4-REACHED" in out_a1, out_a1[-3000:]
        # B's guests get the domain of B's DHCP options set.
        dopt = ec2.create_dhcp_options(
            DhcpConfigurations=[{"Key": "domain-name", "Values": ["corp.example"]}]
        )["DhcpOptions"]["DhcpOptionsId"]
        ec2.associate_dhcp_options(DhcpOptionsId=dopt, VpcId=vpc_b)
        # B's instance has A's first address in its own VPC, and probes
        # A's second one, which lets everything in: nothing answers.
        b1 = launch(ec2, cloud, subnet_b, groups_b, network_checks("B1") + probe("B1", "10.0.1.5", 10))
        launched.append(b1["InstanceId"])
        assert b1["PrivateIpAddress"] == "10.0.1.4"
        out_b1 = wait_console(ec2, b1["InstanceId"], "B1-PROBE-10.0.1.5-")
        assert "B1-PROBE-10.0.1.5-ISOLATED" in out_b1, out_b1[-3000:]
        out_a2 = wait_console(ec2, a2["InstanceId"], "A2-READY")
        described = instances_of(ec2, launched)
        for tag, iid, out, vpc in (
            ("A2", a2["InstanceId"], out_a2, vpc_a),
            ("A1", a1["InstanceId"], out_a1, vpc_a),
            ("B1", b1["InstanceId"], out_b1, vpc_b),
        ):
            inst = described[iid]
            assert inst["VpcId"] == vpc
            assert f"{tag}-META {inst['PrivateIpAddress']} {inst['PrivateDnsName']}" in out, out[-3000:]
            for check in ("ADDR-OK", "GW-OK", "RESOLVCONF-OK", "DNS-OK-10.0.0.2", "DNS-OK-169.254.169.253"):
                assert f"{tag}-{check}" in out, (check, out[-3000:])
            region_domain = inst["PrivateDnsName"].split(".", 1)[1]
            search = "corp.example" if vpc == vpc_b else region_domain
            assert f"{tag}-RESOLV-search {search}" in out, out[-3000:]
    finally:
        if launched:
            ec2.terminate_instances(InstanceIds=launched)
            wait_states(ec2, launched, "terminated")
        ec2.associate_dhcp_options(DhcpOptionsId="default", VpcId=vpc_b)
        for options in ec2.describe_dhcp_options()["DhcpOptions"]:
            ec2.delete_dhcp_options(DhcpOptionsId=options["DhcpOptionsId"])
        for vid, sid, groups in ((vpc_a, subnet_a, groups_a), (vpc_b, subnet_b, groups_b)):
            ec2.delete_security_group(GroupId=groups[1])
            ec2.delete_subnet(SubnetId=sid)
            ec2.delete_vpc(VpcId=vid)
