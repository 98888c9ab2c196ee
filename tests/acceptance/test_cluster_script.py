"""The seeds' scripted-cluster scenario (hadoop-ec2's `launch-cluster NAME
N`, `login NAME`, `terminate-cluster NAME`) as a user runs it:
examples/cluster/*.sh, which use only the AWS CLI, against `mallee up` with
its public DNS server, on the small test guest. The slaves find the master
by its private DNS name through their VPC's resolver; the master names each
slave by a reverse lookup; `login` reaches the master by its public DNS
name, which the host resolves through the cloud's DNS server (in a domain
the admin set with `--public-domain`; over UDP and TCP)."""

import os
import random
import socket
import struct
import shutil
import subprocess
import sys

import pytest

from computeutil import guest_cloud, instances_of, wait_console
from conftest import REGION, REPO

SCRIPTS = REPO / "examples" / "cluster"
DOMAIN = "cloud.example.test"


def tcp_lookup(server: str, name: str) -> str | None:
    """The A record of `name` asked over TCP (RFC 7766 framing), or None
    for NXDOMAIN."""
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    query = struct.pack(">HHHHHH", 0x4D4C, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", 1, 1)
    with socket.create_connection((server, 53), timeout=10) as s:
        s.sendall(struct.pack(">H", len(query)) + query)
        length = struct.unpack(">H", s.recv(2, socket.MSG_WAITALL))[0]
        reply = s.recv(length, socket.MSG_WAITALL)
    ident, flags, _, answers = struct.unpack(">HHHH", reply[:8])
    assert ident == 0x4D4C and flags & 0x8000, reply
    if flags & 0xF == 3:
        return None
    assert flags & 0xF == 0 and answers == 1, reply
    return socket.inet_ntoa(reply[-4:])


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    # A loopback address of its own: resolv.conf names no port, so the
    # DNS server listens on 53.
    dns = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.53"
    # A public range of its own: the session's cloud holds 198.18.0.0/24,
    # and `login` reaches the master from the host.
    public = f"198.18.{random.randint(1, 249)}.0/24"
    args = ["--dns-listen", f"{dns}:53", "--public-range", public, "--public-domain", DOMAIN]
    with guest_cloud(tmp_path_factory, "cluster-script", extra_args=args) as srv:
        srv.dns = dns
        yield srv


def script_env(cloud, key: str, key_file) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=cloud.endpoint,
        AWS_ACCESS_KEY_ID=cloud.admin["access_key_id"],
        AWS_SECRET_ACCESS_KEY=cloud.admin["secret_access_key"],
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_PAGER="",
        CLUSTER_IMAGE=cloud.images["pv"],
        CLUSTER_KEY=key,
        CLUSTER_KEY_FILE=str(key_file),
        # The venv's `aws`.
        PATH=f"{os.path.dirname(sys.executable)}:{env.get('PATH', '')}",
    )
    return env


def run(env, *args, timeout=900, via=None) -> subprocess.CompletedProcess:
    cmd = [str(a) for a in args]
    if via:
        cmd = via + cmd
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def test_launch_login_and_terminate_a_cluster(cloud, tmp_path):
    assert shutil.which("unshare"), "unshare (util-linux) is needed to give login.sh a resolver"
    ec2 = cloud.client("ec2")
    key = f"cluster-{random.randint(0, 1 << 30)}"
    key_file = tmp_path / f"{key}.pem"
    key_file.write_text(ec2.create_key_pair(KeyName=key)["KeyMaterial"])
    key_file.chmod(0o600)
    env = script_env(cloud, key, key_file)

    public_name = run(env, SCRIPTS / "launch-cluster.sh", "hadoop", 3).stdout.strip()
    members = {
        i["InstanceId"]: i
        for r in ec2.describe_instances(Filters=[{"Name": "tag:cluster", "Values": ["hadoop"]}])["Reservations"]
        for i in r["Instances"]
    }
    roles = {iid: {t["Key"]: t["Value"] for t in i["Tags"]}["role"] for iid, i in members.items()}
    (master,) = [iid for iid, role in roles.items() if role == "master"]
    slaves = [iid for iid, role in roles.items() if role == "slave"]
    assert len(slaves) == 3
    m = members[master]
    assert public_name == m["PublicDnsName"] and public_name.startswith("ec2-"), public_name
    assert public_name.endswith(f".{DOMAIN}"), public_name
    assert tcp_lookup(cloud.dns, public_name) == m["PublicIpAddress"]
    assert tcp_lookup(cloud.dns, f"ec2-1-2-3-4.{DOMAIN}") is None
    try:
        # Each slave resolved the master's private name and reached it.
        for iid in slaves:
            out = wait_console(ec2, iid, "CLUSTER-SLAVE ")
            assert f"CLUSTER-RESOLVED {m['PrivateDnsName']} {m['PrivateIpAddress']}" in out, out[-2000:]
            name = instances_of(ec2, [iid])[iid]["PrivateDnsName"]
            assert f"CLUSTER-SLAVE welcome {name}" in out, out[-2000:]
        # The master saw each of them connect and named it by reverse lookup.
        out = wait_console(ec2, master, *[f"CLUSTER-JOINED {members[s]['PrivateIpAddress']} "
                                          f"{members[s]['PrivateDnsName']}" for s in slaves])
        # `login` from the host: ssh to the master's public DNS name, resolved
        # by the host through the cloud's DNS server (a resolver the host
        # uses for the cloud's domain; here one mount namespace's).
        resolv = tmp_path / "resolv.conf"
        resolv.write_text(f"nameserver {cloud.dns}\n")
        via = ["unshare", "--mount", "--", "sh", "-c", f"mount --bind {resolv} /etc/resolv.conf && exec \"$@\"", "sh"]
        listed = run(env, SCRIPTS / "login.sh", "hadoop", "sort /tmp/slaves", via=via, timeout=120).stdout.split()
        assert listed == sorted(members[s]["PrivateDnsName"] for s in slaves)
    finally:
        run(env, SCRIPTS / "terminate-cluster.sh", "hadoop")
    states = {iid: i["State"]["Name"] for iid, i in instances_of(ec2, list(members)).items()}
    assert set(states.values()) == {"terminated"}, states
    groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["hadoop"]}])["SecurityGroups"]
    assert groups == []
