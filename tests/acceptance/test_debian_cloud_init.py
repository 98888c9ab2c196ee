"""A real Debian 12 image with cloud-init, as users bring one to an EC2-style
cloud (guest/debian-cloud-image.sh: Debian's own packages, cloud-init told
to use its Ec2 data source, nothing else added). cloud-init, unchanged, takes
the instance's hostname from mallee's metadata service and runs the
user-data; the VPC's resolver, which the instance learns by DHCP, answers
`getent hosts` for another instance's private DNS name.

The image is built from the Debian tree the package test also uses
(debianutil), so CI downloads Debian once. One Debian boot (systemd and
cloud-init under TCG: a few minutes) and one small test guest as the peer."""

from __future__ import annotations

import os

import pytest

from computeutil import guest_cloud, wait_console, wait_states
from debianutil import cloud_image

# systemd, then cloud-init's four stages in Python, under TCG on a shared
# machine.
DEBIAN_BOOT_TIMEOUT = float(os.environ.get("MALLEE_DEBIAN_BOOT_TIMEOUT", "900"))
MARK = "MALLEE-DEBIAN"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    with guest_cloud(tmp_path_factory, "debian") as srv:
        yield srv


@pytest.fixture(scope="module")
def debian(cloud, tmp_path_factory) -> str:
    """The Debian image, registered as kernel + ramdisk + machine image
    through S3 as any user would; returns its ami id."""
    files = cloud_image(tmp_path_factory.mktemp("debian-image"))
    s3, ec2 = cloud.client("s3"), cloud.client("ec2")
    bucket = f"debian-{os.urandom(4).hex()}"
    s3.create_bucket(Bucket=bucket)
    for name in ("vmlinuz", "initrd.img", "root.qcow2"):
        s3.upload_file(str(files / name), bucket, name)
    kernel = ec2.register_image(Name="debian-12-kernel", ImageLocation=f"{bucket}/vmlinuz")["ImageId"]
    ramdisk = ec2.register_image(Name="debian-12-initrd", ImageLocation=f"{bucket}/initrd.img")["ImageId"]
    return ec2.register_image(
        Name="debian-12-cloud-init", ImageLocation=f"{bucket}/root.qcow2",
        KernelId=kernel, RamdiskId=ramdisk, Architecture="x86_64",
    )["ImageId"]


@pytest.mark.timeout(1500)
def test_cloud_init_takes_its_hostname_from_the_metadata_and_resolves_a_peer_by_name(cloud, debian):
    ec2 = cloud.client("ec2")
    peer_id = ec2.run_instances(ImageId=cloud.images["pv"], MinCount=1, MaxCount=1,
                                InstanceType="t1.micro")["Instances"][0]["InstanceId"]
    peer = wait_states(ec2, [peer_id], "running")[peer_id]
    peer_name, peer_ip = peer["PrivateDnsName"], peer["PrivateIpAddress"]
    assert peer_name.startswith("ip-"), peer

    # A plain shell script as user-data: cloud-init runs it in its final
    # stage, whose output systemd copies to the console.
    script = f"""#!/bin/sh
echo "{MARK} hostname=$(hostname)"
echo "{MARK} fqdn=$(hostname -f)"
echo "{MARK} peer=$(getent hosts {peer_name})"
echo "{MARK} datasource=$(cloud-init query platform 2>&1)"
echo "{MARK} done"
"""
    iid = ec2.run_instances(ImageId=debian, MinCount=1, MaxCount=1, InstanceType="t2.micro",
                            UserData=script)["Instances"][0]["InstanceId"]
    try:
        me = wait_states(ec2, [iid], "running")[iid]
        out = wait_console(ec2, iid, f"{MARK} done", timeout=DEBIAN_BOOT_TIMEOUT)
        said = {}
        for line in out.splitlines():
            if MARK + " " in line and "=" in line:
                key, _, value = line.split(MARK + " ", 1)[1].partition("=")
                said[key] = value.strip()
        my_name = me["PrivateDnsName"]
        # cloud-init's set_hostname: the metadata's local-hostname, whose
        # first label is the host name.
        assert said.get("hostname") == my_name.split(".")[0], (said, my_name)
        # The search domain and resolver came by DHCP: the full name
        # resolves through the VPC's resolver.
        assert said.get("fqdn") == my_name, (said, my_name)
        assert said.get("peer", "").split() == [peer_ip, peer_name], (said, peer_name, peer_ip)
        assert said.get("datasource") == "ec2", said
    finally:
        ec2.terminate_instances(InstanceIds=[iid, peer_id])
        wait_states(ec2, [iid, peer_id], "terminated")
