"""Helpers for compute acceptance tests: the test guest images, registering
them through the real APIs, and waiting for instance states and console
output."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

from conftest import REPO, MalleeServer

GUEST_DIR = Path(os.environ.get("MALLEE_GUEST_IMAGES", str(REPO / "target" / "guest-images")))
GUEST_FILES = ("vmlinuz", "initrd.img", "root.img", "hvm.qcow2")
# A TCG boot takes ~5 s alone; several at once on two cores take longer.
BOOT_TIMEOUT = float(os.environ.get("MALLEE_BOOT_TIMEOUT", "180"))


def guest_images() -> Path:
    """The test guest images, built from Debian packages if missing (never
    skipped: compute tests cannot run without them)."""
    if not all((GUEST_DIR / f).exists() for f in GUEST_FILES):
        result = subprocess.run(
            [str(REPO / "guest" / "build.sh"), str(GUEST_DIR)],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert result.returncode == 0, (
            "the compute tests need the test guest images and guest/build.sh failed:\n"
            + result.stdout[-3000:]
            + result.stderr[-3000:]
        )
    return GUEST_DIR


@contextlib.contextmanager
def guest_cloud(tmp_path_factory, name: str, extra_args=()):
    """A started `mallee up` with the test guest registered (its ids in
    `.images`), stopped, killed and purged afterwards: the module-scoped
    cloud of the compute, volume, snapshot and EBS tests."""
    guest_images()
    d = tmp_path_factory.mktemp(name)
    srv = MalleeServer(d / "data", d / "server.log", extra_args=extra_args)
    try:
        srv.start()
        srv.images = register_guest(srv)
        yield srv
    finally:
        srv.stop()
        srv.kill()
        srv.purge()


def register_guest(server, bucket: str | None = None, creds: dict | None = None) -> dict:
    """Uploads the test guest through S3 and registers its kernel, ramdisk,
    paravirtual machine image and HVM image; returns their ids."""
    images = guest_images()
    s3 = server.client("s3", creds=creds)
    ec2 = server.client("ec2", creds=creds)
    bucket = bucket or f"guest-{os.urandom(4).hex()}"
    s3.create_bucket(Bucket=bucket)
    for name in GUEST_FILES:
        s3.upload_file(str(images / name), bucket, name)
    suffix = os.urandom(3).hex()
    kernel = ec2.register_image(Name=f"kernel-{suffix}", ImageLocation=f"{bucket}/vmlinuz")["ImageId"]
    ramdisk = ec2.register_image(Name=f"ramdisk-{suffix}", ImageLocation=f"{bucket}/initrd.img")["ImageId"]
    pv = ec2.register_image(
        Name=f"guest-pv-{suffix}",
        ImageLocation=f"{bucket}/root.img",
        KernelId=kernel,
        RamdiskId=ramdisk,
        Architecture="x86_64",
    )["ImageId"]
    hvm = ec2.register_image(
        Name=f"guest-hvm-{suffix}",
        ImageLocation=f"{bucket}/hvm.qcow2",
        VirtualizationType="hvm",
        Architecture="x86_64",
    )["ImageId"]
    return {"kernel": kernel, "ramdisk": ramdisk, "pv": pv, "hvm": hvm, "bucket": bucket}


def qemu_pids() -> dict[str, int]:
    """Running QEMU processes by instance id (from their `-name`)."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().split()[2]
        except OSError:
            continue
        if not args or b"qemu-system" not in args[0] or state == "Z":
            continue
        for i, a in enumerate(args[:-1]):
            if a == b"-name":
                name = args[i + 1].decode().split(",")[0]
                found[name.removeprefix("guest=")] = int(proc.name)
    return found


def instances_of(ec2, ids) -> dict:
    out = {}
    for r in ec2.describe_instances(InstanceIds=list(ids))["Reservations"]:
        for i in r["Instances"]:
            out[i["InstanceId"]] = i
    return out


def wait_states(ec2, ids, wanted: str | set, timeout: float = BOOT_TIMEOUT) -> dict:
    """Waits until every instance is in `wanted`; fails on an unexpected
    terminal state."""
    wanted = {wanted} if isinstance(wanted, str) else set(wanted)
    deadline = time.monotonic() + timeout
    last = {}
    while time.monotonic() < deadline:
        last = instances_of(ec2, ids)
        states = {i: d["State"]["Name"] for i, d in last.items()}
        if all(s in wanted for s in states.values()):
            return last
        bad = {i: (s, last[i].get("StateReason")) for i, s in states.items() if s == "terminated" and s not in wanted}
        assert not bad, f"instances ended instead of reaching {wanted}: {bad}"
        time.sleep(0.5)
    raise AssertionError(
        f"not all {wanted} after {timeout}s: "
        + str({i: (d["State"]["Name"], d.get("StateReason")) for i, d in last.items()})
    )


def console(ec2, iid: str) -> str:
    return ec2.get_console_output(InstanceId=iid).get("Output", "") or ""


def wait_console(ec2, iid: str, *needles: str, timeout: float = BOOT_TIMEOUT) -> str:
    """Waits until the console output contains every needle."""
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        out = console(ec2, iid)
        if all(n in out for n in needles):
            return out
        time.sleep(1)
    raise AssertionError(f"console of {iid} lacks {needles} after {timeout}s:\n{out[-3000:]}")


def user_data(script: str) -> str:
    return "#!/bin/sh\n" + script.strip() + "\n"


def instance_role(cloud, bucket: str) -> tuple[str, str]:
    """A role EC2 may assume that may put objects into `bucket`, in an
    instance profile; returns (profile name, role name)."""
    iam = cloud.client("iam")
    suffix = uuid.uuid4().hex[:6]
    role, profile = f"app-{suffix}", f"web-{suffix}"
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                       "Action": "sts:AssumeRole"}]}))
    iam.put_role_policy(RoleName=role, PolicyName="put", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]}))
    iam.create_instance_profile(InstanceProfileName=profile)
    iam.add_role_to_instance_profile(InstanceProfileName=profile, RoleName=role)
    return profile, role
