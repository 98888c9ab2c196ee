"""Routes on the data path, with a real guest: one instance with an elastic
IP in the default subnet, whose route table the test changes under it
while it runs. A client namespace on the cloud's public network plays the
internet: it connects to the instance's ssh port, and runs a server that
tells each connection its source address, which the guest probes every
second (its user-data prints each answer on the console).

- a table without a 0.0.0.0/0 route: the elastic IP is unreachable and the
  guest cannot get out;
- 0.0.0.0/0 → the VPC's internet gateway: reachable, and out under the
  elastic IP;
- the gateway detached: cut again;
- 0.0.0.0/0 → a NAT gateway: out under the NAT gateway's elastic IP, and
  nothing on the public network reaches the guest (its own elastic IP
  nor the NAT gateway's).

One cloud for the module, with a public range of its own."""

from __future__ import annotations

import re
import subprocess
import uuid

import pytest

from conftest import MalleeServer, free_port
from computeutil import guest_images, register_guest, user_data, wait_console, wait_states
from netutil import Client, public_range_for, wait_until

SSH_READY = "MALLEE-GUEST: sshd started"
PROBE_PORT = 9090
# Route changes reach a running instance's node at once; the probes run
# every second or two on a slow TCG guest.
APPLIED = 30

SERVER = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', int(sys.argv[1])))
s.listen(16)
while True:
    c, a = s.accept()
    c.sendall(('peer=' + a[0] + '\n').encode())
    c.close()
"""


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    guest_images()
    d = tmp_path_factory.mktemp("routing")
    port = free_port()
    public = public_range_for(port)
    srv = MalleeServer(d / "data", d / "server.log", port=port, extra_args=["--public-range", public])
    client = server = None
    try:
        srv.start()
        srv.images = register_guest(srv)
        srv.public = public
        client = Client(public)
        server = subprocess.Popen(
            ["ip", "netns", "exec", client.ns, "python3", "-c", SERVER, str(PROBE_PORT)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        srv.net_client = client
        yield srv
    finally:
        if server:
            server.kill()
            server.wait()
        if client:
            client.close()
        srv.stop()
        srv.kill()
        srv.purge()


def last_probe(ec2, iid: str) -> str | None:
    """What the guest's latest probe of the client's server got."""
    out = ec2.get_console_output(InstanceId=iid).get("Output", "") or ""
    probes = re.findall(r"PROBE \d+ \[([^\]\r\n]*)\]", out)
    return probes[-1] if probes else None


def probes_get(ec2, iid: str, wanted: str) -> bool:
    return wait_until(lambda: last_probe(ec2, iid) == wanted, timeout=APPLIED, interval=1) is not None


def test_routes_decide_what_reaches_and_leaves_a_running_instance(cloud):
    ec2 = cloud.client("ec2")
    client: Client = cloud.net_client
    vpc_id = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    subnet_id = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    (igw,) = ec2.describe_internet_gateways()["InternetGateways"]
    igw_id = igw["InternetGatewayId"]

    # The subnet gets a table of its own, without a way out.
    rtb = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    assoc = ec2.associate_route_table(RouteTableId=rtb, SubnetId=subnet_id)["AssociationId"]

    sg = ec2.create_security_group(GroupName=f"rt-{uuid.uuid4().hex[:6]}", Description="routes")["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=sg, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                                    "IpRanges": [{"CidrIp": cloud.public}]}])
    probe = user_data(
        f"(i=0; while true; do i=$((i+1)); r=$(nc -w 2 {client.address} {PROBE_PORT} </dev/null); "
        f'echo "PROBE $i [$r]"; sleep 1; done) &'
    )
    (iid,) = [i["InstanceId"] for i in ec2.run_instances(
        ImageId=cloud.images["pv"], MinCount=1, MaxCount=1, InstanceType="t1.micro",
        SecurityGroupIds=[sg], UserData=probe)["Instances"]]
    eip = ec2.allocate_address(Domain="vpc")
    nat_eip = ec2.allocate_address(Domain="vpc")
    nat_id = None
    try:
        wait_states(ec2, [iid], "running")
        ec2.associate_address(AllocationId=eip["AllocationId"], InstanceId=iid)
        wait_console(ec2, iid, SSH_READY, "PROBE 3 [")
        public = eip["PublicIp"]

        # No route: the elastic IP is shown but carries nothing.
        described = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
        assert described["PublicIpAddress"] == public
        assert probes_get(ec2, iid, ""), last_probe(ec2, iid)
        assert not client.tcp_open(public, 22, timeout=1)

        # 0.0.0.0/0 → the gateway: in and out under the elastic IP.
        ec2.create_route(RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw_id)
        assert wait_until(lambda: client.tcp_open(public, 22, timeout=0.5), timeout=APPLIED) is not None
        assert probes_get(ec2, iid, f"peer={public}"), last_probe(ec2, iid)

        # The gateway detached: cut again, both ways.
        ec2.detach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id)
        assert wait_until(lambda: not client.tcp_open(public, 22, timeout=0.5), timeout=APPLIED) is not None
        assert probes_get(ec2, iid, ""), last_probe(ec2, iid)
        ec2.attach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id)
        assert wait_until(lambda: client.tcp_open(public, 22, timeout=0.5), timeout=APPLIED) is not None

        # 0.0.0.0/0 → a NAT gateway: out under the NAT gateway's address,
        # and nothing comes in.
        nat = ec2.create_nat_gateway(SubnetId=subnet_id, AllocationId=nat_eip["AllocationId"])["NatGateway"]
        nat_id = nat["NatGatewayId"]
        ec2.replace_route(RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat_id)
        assert probes_get(ec2, iid, f"peer={nat_eip['PublicIp']}"), last_probe(ec2, iid)
        assert not client.tcp_open(public, 22, timeout=1)
        assert not client.tcp_open(nat_eip["PublicIp"], 22, timeout=1)
        assert not client.ping(nat_eip["PublicIp"])

        # The NAT gateway deleted: nothing either way.
        ec2.delete_nat_gateway(NatGatewayId=nat_id)
        assert probes_get(ec2, iid, ""), last_probe(ec2, iid)
    finally:
        ec2.terminate_instances(InstanceIds=[iid])
        if nat_id:
            ec2.delete_nat_gateway(NatGatewayId=nat_id)
        ec2.disassociate_route_table(AssociationId=assoc)
    wait_states(ec2, [iid], "terminated", timeout=120)
    for a in (eip, nat_eip):
        ec2.release_address(AllocationId=a["AllocationId"])
    ec2.delete_route_table(RouteTableId=rtb)
