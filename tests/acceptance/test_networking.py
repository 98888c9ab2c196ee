"""Networking end to end: default VPCs, security groups enforced on real
guests, public and elastic IPs, seen from a client host on the public
network (a namespace the test builds), with ssh, TCP and ping."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import MalleeServer, free_port
from computeutil import guest_images, instances_of, register_guest, user_data, wait_console, wait_states
from netutil import Client, public_range_for, sh, wait_until

SSH_READY = "MALLEE-GUEST: sshd started"
# Rule changes must reach running instances within a second.
RULE_DEADLINE = 1.0


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    guest_images()
    d = tmp_path_factory.mktemp("net")
    port = free_port()
    public = public_range_for(port)
    srv = MalleeServer(d / "data", d / "server.log", port=port, extra_args=["--public-range", public])
    client = None
    try:
        srv.start()
        srv.images = register_guest(srv)
        srv.public = public
        client = Client(public)
        srv.net_client = client
        yield srv
    finally:
        if client:
            client.close()
        srv.stop()
        srv.kill()
        srv.purge()


def key_file(ec2, tmp_path) -> tuple[str, str]:
    name = f"k-{uuid.uuid4().hex[:8]}"
    material = ec2.create_key_pair(KeyName=name)["KeyMaterial"]
    path = tmp_path / f"{name}.pem"
    path.write_text(material)
    os.chmod(path, 0o600)
    return name, str(path)


def launch(ec2, images, **kw) -> list[str]:
    args = dict(ImageId=images["pv"], MinCount=1, MaxCount=1, InstanceType="t1.micro")
    args.update(kw)
    return [i["InstanceId"] for i in ec2.run_instances(**args)["Instances"]]


def running(ec2, ids) -> dict:
    insts = wait_states(ec2, ids, "running")
    for iid in ids:
        wait_console(ec2, iid, SSH_READY)
    return insts


def test_default_vpc_lookups_work_as_on_aws(net):
    ec2 = net.client("ec2")
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    assert len(vpcs) == 1 and vpcs[0]["CidrBlock"] == "172.31.0.0/16"
    vpc = vpcs[0]["VpcId"]
    subnets = ec2.describe_subnets(
        Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "default-for-az", "Values": ["true"]}]
    )["Subnets"]
    assert [s["AvailabilityZone"] for s in subnets] == ["mallee-1a"]
    subnet = subnets[0]
    assert subnet["CidrBlock"] == "172.31.0.0/20" and subnet["MapPublicIpOnLaunch"] is True
    attrs = ec2.describe_account_attributes(AttributeNames=["default-vpc"])["AccountAttributes"]
    assert attrs[0]["AttributeValues"][0]["AttributeValue"] == vpc
    (iid,) = launch(ec2, net.images, SubnetId=subnet["SubnetId"])
    try:
        inst = instances_of(ec2, [iid])[iid]
        assert inst["VpcId"] == vpc and inst["SubnetId"] == subnet["SubnetId"]
        assert inst["PrivateIpAddress"].startswith("172.31.")
        assert inst["NetworkInterfaces"][0]["PrivateIpAddress"] == inst["PrivateIpAddress"]
        default_sg = ec2.describe_security_groups(
            Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "group-name", "Values": ["default"]}]
        )["SecurityGroups"][0]["GroupId"]
        assert [g["GroupId"] for g in inst["SecurityGroups"]] == [default_sg]
    finally:
        ec2.terminate_instances(InstanceIds=[iid])


def test_security_group_rules_reach_running_instances_within_a_second(net, tmp_path):
    ec2 = net.client("ec2")
    client: Client = net.net_client
    key, key_path = key_file(ec2, tmp_path)
    sg = ec2.create_security_group(GroupName=f"web-{uuid.uuid4().hex[:6]}", Description="web")["GroupId"]
    (iid,) = launch(ec2, net.images, KeyName=key, SecurityGroupIds=[sg])
    try:
        inst = running(ec2, [iid])[iid]
        public_ip = inst["PublicIpAddress"]
        assert public_ip.startswith(net.public.rsplit(".", 1)[0])
        # No rule: nothing gets in.
        assert not client.tcp_open(public_ip, 22)
        assert not client.ping(public_ip)
        ssh_rule = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                    "IpRanges": [{"CidrIp": net.public, "Description": "client net"}]}
        ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[ssh_rule])
        took = wait_until(lambda: client.tcp_open(public_ip, 22, timeout=0.3), timeout=RULE_DEADLINE + 0.5)
        assert took is not None and took <= RULE_DEADLINE, f"port 22 opened after {took}s"
        out = client.ssh(key_path, public_ip, "cat /proc/uptime")
        assert out.returncode == 0, out.stderr
        assert len(out.stdout.split()[0].split(".")) == 2  # an uptime
        # ICMP by one rule.
        ec2.authorize_security_group_ingress(
            GroupId=sg, IpPermissions=[{"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1,
                                        "IpRanges": [{"CidrIp": f"{client.address}/32"}]}])
        assert wait_until(lambda: client.ping(public_ip), timeout=5) is not None
        # Revoke: new connections are refused within a second.
        ec2.revoke_security_group_ingress(GroupId=sg, IpPermissions=[ssh_rule])
        took = wait_until(lambda: not client.tcp_open(public_ip, 22, timeout=0.3), timeout=RULE_DEADLINE + 0.5)
        assert took is not None and took <= RULE_DEADLINE, f"port 22 still open {took}s after revoke"
        assert client.ping(public_ip)
        ec2.revoke_security_group_ingress(
            GroupId=sg, IpPermissions=[{"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1,
                                        "IpRanges": [{"CidrIp": f"{client.address}/32"}]}])
        assert wait_until(lambda: not client.ping(public_ip), timeout=5) is not None
    finally:
        ec2.terminate_instances(InstanceIds=[iid])
    wait_states(ec2, [iid], "terminated", timeout=90)


def test_source_group_rules_and_same_group_traffic(net, tmp_path):
    ec2 = net.client("ec2")
    client: Client = net.net_client
    key, key_path = key_file(ec2, tmp_path)
    suffix = uuid.uuid4().hex[:6]
    ga = ec2.create_security_group(GroupName=f"a-{suffix}", Description="a")["GroupId"]
    gb = ec2.create_security_group(GroupName=f"b-{suffix}", Description="b")["GroupId"]
    gc = ec2.create_security_group(GroupName=f"c-{suffix}", Description="c")["GroupId"]
    ssh_from_client = [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": net.public}]}]
    for g in (ga, gc):
        ec2.authorize_security_group_ingress(GroupId=g, IpPermissions=ssh_from_client)
    ec2.authorize_security_group_ingress(
        GroupId=gb, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080,
                                    "UserIdGroupPairs": [{"GroupId": ga}]}])
    server_script = user_data("(while true; do echo PONG-B | nc -l -p 8080; done) &")
    (b,) = launch(ec2, net.images, SecurityGroupIds=[gb], UserData=server_script)
    (a,) = launch(ec2, net.images, SecurityGroupIds=[ga], KeyName=key)
    (c,) = launch(ec2, net.images, SecurityGroupIds=[gc], KeyName=key)
    ids = [a, b, c]
    try:
        insts = running(ec2, ids)
        b_ip = insts[b]["PrivateIpAddress"]
        from_a = client.ssh(key_path, insts[a]["PublicIpAddress"], f"nc -w 3 {b_ip} 8080")
        assert "PONG-B" in from_a.stdout, (from_a.stdout, from_a.stderr)
        from_c = client.ssh(key_path, insts[c]["PublicIpAddress"], f"nc -w 3 {b_ip} 8080")
        assert from_c.returncode == 0 or from_c.stdout == "", from_c.stderr
        assert "PONG-B" not in from_c.stdout
        # Members of the default group reach each other on private addresses.
    finally:
        ec2.terminate_instances(InstanceIds=ids)
    wait_states(ec2, ids, "terminated", timeout=120)


def test_elastic_ip_moves_between_instances(net, tmp_path):
    ec2 = net.client("ec2")
    client: Client = net.net_client
    key, key_path = key_file(ec2, tmp_path)
    sg = ec2.create_security_group(GroupName=f"eip-{uuid.uuid4().hex[:6]}", Description="eip")["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=sg, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                                    "IpRanges": [{"CidrIp": net.public}]}])
    ids = launch(ec2, net.images, MinCount=2, MaxCount=2, KeyName=key, SecurityGroupIds=[sg])
    alloc = ec2.allocate_address(Domain="vpc")
    eip, alloc_id = alloc["PublicIp"], alloc["AllocationId"]
    try:
        running(ec2, ids)

        def who(ip):
            r = client.ssh(key_path, ip, "imds meta-data/instance-id")
            return r.stdout.strip() if r.returncode == 0 else None

        ec2.associate_address(AllocationId=alloc_id, InstanceId=ids[0])
        # Each probe is a whole dropbear handshake, seconds apiece on a busy
        # TCG guest: the waits bound "it works", not how fast (the
        # cluster test times a move).
        assert wait_until(lambda: who(eip) == ids[0], timeout=60) is not None
        assert instances_of(ec2, [ids[0]])[ids[0]]["PublicIpAddress"] == eip
        with pytest.raises(ClientError) as e:
            ec2.associate_address(AllocationId=alloc_id, InstanceId=ids[1], AllowReassociation=False)
        assert e.value.response["Error"]["Code"] == "Resource.AlreadyAssociated"
        ec2.associate_address(AllocationId=alloc_id, InstanceId=ids[1], AllowReassociation=True)
        assert wait_until(lambda: who(eip) == ids[1], timeout=60) is not None
        # The instance sees its public address in the metadata service.
        meta = client.ssh(key_path, eip, "imds meta-data/public-ipv4").stdout.strip()
        assert meta == eip
        ec2.disassociate_address(AssociationId=ec2.describe_addresses(AllocationIds=[alloc_id])["Addresses"][0]["AssociationId"])
        assert wait_until(lambda: not client.tcp_open(eip, 22, timeout=0.3), timeout=5) is not None
        # The instance gets an auto-assigned public address back.
        back = instances_of(ec2, [ids[1]])[ids[1]].get("PublicIpAddress")
        assert back and back != eip
        assert wait_until(lambda: who(back) == ids[1], timeout=60) is not None
    finally:
        ec2.terminate_instances(InstanceIds=ids)
    ec2.release_address(AllocationId=alloc_id)
    assert all(a["AllocationId"] != alloc_id for a in ec2.describe_addresses()["Addresses"])
    wait_states(ec2, ids, "terminated", timeout=120)


def test_two_accounts_never_share_a_network(net, tmp_path):
    ec2 = net.client("ec2")
    other = net.create_account()
    theirs = net.client("ec2", creds=other)
    client: Client = net.net_client
    for image in ("pv", "kernel", "ramdisk"):
        ec2.modify_image_attribute(ImageId=net.images[image],
                                   LaunchPermission={"Add": [{"UserId": other["account_id"]}]})
    my_key, my_key_path = key_file(ec2, tmp_path)
    my_vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    my_default = ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [my_vpc]}, {"Name": "group-name", "Values": ["default"]}]
    )["SecurityGroups"][0]["GroupId"]
    my_ssh = ec2.create_security_group(GroupName=f"ssh-{uuid.uuid4().hex[:6]}", Description="ssh")["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=my_ssh, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                                        "IpRanges": [{"CidrIp": net.public}]}])
    mine = launch(ec2, net.images, MinCount=2, MaxCount=2, KeyName=my_key,
                  SecurityGroupIds=[my_default, my_ssh])
    key, key_path = key_file(theirs, tmp_path)
    sg = theirs.create_security_group(GroupName="ssh", Description="ssh")["GroupId"]
    theirs.authorize_security_group_ingress(
        GroupId=sg, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                                    "IpRanges": [{"CidrIp": net.public}]}])
    (t,) = launch(theirs, net.images, KeyName=key, SecurityGroupIds=[sg])
    try:
        m = running(ec2, mine)
        tt = running(theirs, [t])[t]
        assert ec2.describe_vpcs()["Vpcs"][0]["VpcId"] != theirs.describe_vpcs()["Vpcs"][0]["VpcId"]
        # Members of the default group reach each other on private addresses.
        first, second = mine
        peer = m[second]["PrivateIpAddress"]
        same = client.ssh(my_key_path, m[first]["PublicIpAddress"],
                          f"ping -c 1 -W 2 {peer} >/dev/null && echo REACHED || echo ISOLATED")
        assert "REACHED" in same.stdout, (same.stdout, same.stderr)
        # Their instance probes every private address of my instances that
        # is not also one of theirs: nothing answers.
        for iid, inst in m.items():
            ip = inst["PrivateIpAddress"]
            if ip == tt["PrivateIpAddress"]:
                continue
            probe = client.ssh(key_path, tt["PublicIpAddress"], f"ping -c 1 -W 1 {ip} >/dev/null && echo REACHED || echo ISOLATED")
            assert "ISOLATED" in probe.stdout, (ip, probe.stdout, probe.stderr)
    finally:
        ec2.terminate_instances(InstanceIds=mine)
        theirs.terminate_instances(InstanceIds=[t])


def test_rules_survive_a_node_restart_and_terminate_leaves_nothing(tmp_path, mallee_factory):
    port = free_port()
    public = public_range_for(port)
    srv = mallee_factory("netrestart", port=port, extra_args=["--public-range", public])
    images = register_guest(srv)
    ec2 = srv.client("ec2")
    client = Client(public, host_octet=251)
    try:
        key, key_path = key_file(ec2, tmp_path)
        sg = ec2.create_security_group(GroupName="ssh", Description="ssh")["GroupId"]
        ec2.authorize_security_group_ingress(
            GroupId=sg, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                                        "IpRanges": [{"CidrIp": f"{client.address}/32"}]}])
        namespaces_before = set(sh("ip", "netns", "list").stdout.split())
        (iid,) = launch(ec2, images, KeyName=key, SecurityGroupIds=[sg])
        public_ip = running(ec2, [iid])[iid]["PublicIpAddress"]
        assert client.tcp_open(public_ip, 22)
        assert not client.tcp_open(public_ip, 80)
        links_before = set(sh("ip", "-o", "link", "show").stdout.split("\n"))
        srv.kill()
        srv.start()
        ec2 = srv.client("ec2")
        wait_states(ec2, [iid], "running", timeout=30)
        assert client.tcp_open(public_ip, 22), "allowed port closed after restart"
        assert not client.tcp_open(public_ip, 80), "denied port open after restart"
        assert client.ssh(key_path, public_ip, "true").returncode == 0
        ec2.terminate_instances(InstanceIds=[iid])
        wait_states(ec2, [iid], "terminated", timeout=90)
        time.sleep(2)
        assert not client.tcp_open(public_ip, 22)
        leftovers = {
            n for n in sh("ip", "netns", "list").stdout.split()
            if n.startswith("mallee-v") and n not in namespaces_before
        }
        assert not leftovers, f"namespaces left after the last instance: {leftovers}"
        ports = json.loads(sh("ip", "-j", "link", "show", "master", client.bridge).stdout)
        assert [p["ifname"] for p in ports] == [client.outer], f"links left on the public bridge: {ports}"
        del links_before
    finally:
        client.close()


def test_metadata_never_leaks_across_a_reused_address(net):
    ec2 = net.client("ec2")
    secret = f"SECRET-{uuid.uuid4().hex[:8]}"
    (x,) = launch(ec2, net.images, UserData=user_data(f"echo {secret}"))
    x_ip = wait_states(ec2, [x], "running")[x]["PrivateIpAddress"]
    wait_console(ec2, x, secret)
    ec2.terminate_instances(InstanceIds=[x])
    wait_states(ec2, [x], "terminated", timeout=90)
    # The lowest free address is handed out first, so the next instance
    # gets X's address.
    (y,) = launch(ec2, net.images, UserData=user_data(
        'echo "Y-SEES $(imds meta-data/instance-id) $(imds meta-data/local-ipv4) $(imds user-data | grep -c SECRET)"'))
    try:
        y_ip = wait_states(ec2, [y], "running")[y]["PrivateIpAddress"]
        assert y_ip == x_ip, "the test needs the address reused"
        out = wait_console(ec2, y, f"Y-SEES {y} {y_ip}")
        line = next(l for l in out.splitlines() if l.startswith("Y-SEES"))
        assert line.split()[-1] == "1", line  # only its own script mentions SECRET
        assert secret not in out
    finally:
        ec2.terminate_instances(InstanceIds=[y])
