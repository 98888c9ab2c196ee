"""The bare-metal zone through the EC2 API, with real parts: two QEMU
machines (TCG, empty disks, PXE through QEMU's iPXE ROM) on a provisioning
bridge in a network namespace stand for a rack in group test01, as in
test_metal_lab.py; this time an account drives them with `aws ec2 …` (awscli).

- describe-availability-zones lists the bare-metal zone `mallee-1-metal`
  (its message says bare metal and names its instance types);
  describe-instance-types lists `test01.metal` with BareMetal true.
- the administrator registers the profile as an image
  (`ImageLocation=metal:PROFILE`); other accounts may not, and a profile
  that does not exist is refused.
- refused with AWS error codes, nothing reserved: a VM image in the
  bare-metal zone, the bare-metal image in a VM zone, a VM instance type in
  the bare-metal zone, more machines than are free, Stop of a bare-metal
  instance.
- `aws ec2 run-instances` in the zone: the instance is pending with the
  machine's address, the machine PXE boots, is written and checks in, and
  the instance is running; the metal API shows the machine owned for the
  reservation. terminate-instances: the group's wipe policy is `zero`, so
  the instance is shutting-down while the machine netboots the deploy
  agent in wipe mode, which zeroes the disk and verifies it; then
  terminated, the machine free and powered off, its disk all zeros.

Needs root, qemu-system-x86_64, dnsmasq, ip, debugfs (guest/metal/build.sh).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import boto3
import pytest

from metalutil import Lab, Metaleuca, build_images

NET = "10.254.8"
HTTP_PORT = 8782
BOOT_TIMEOUT = 1200
ZONE = "mallee-1-metal"

pytestmark = pytest.mark.timeout(900)


@pytest.fixture
def lab(tmp_path):
    netns = f"mmec2{os.getpid()}"
    lab = Lab(netns, f"{NET}.1", 24, tmp_path / "lab")
    yield lab
    lab.destroy(tmp_path / "srv-data" / "metal" / "netboot" / "dnsmasq.pid")


def metal_args(lab: Lab, images) -> list[str]:
    return [
        "--no-node",
        "--metal-interface", "br0",
        "--metal-address", f"{NET}.1/24",
        "--metal-netns", lab.netns,
        "--metal-http-port", str(HTTP_PORT),
        "--metal-agent-dir", str(images),
        "--metal-check-in-timeout", "900",
        "--metal-release-timeout", "60",
    ]


def error_of(proc) -> str:
    assert proc.returncode != 0, proc.stdout
    return proc.stderr


def instance(cli, iid: str) -> dict:
    out = cli.json("ec2", "describe-instances", "--instance-ids", iid)
    return out["Reservations"][0]["Instances"][0]


def wait_state(cli, iid: str, wanted: str, timeout: float) -> dict:
    start = time.monotonic()
    while True:
        i = instance(cli, iid)
        state = i["State"]["Name"]
        if state == wanted:
            return i
        assert state in ("pending", "running", "shutting-down") or state == wanted, i
        assert time.monotonic() - start < timeout, f"{iid} not {wanted} after {timeout}s: {i}"
        time.sleep(2)


def nonzero_bytes(disk: str, tmp: Path) -> int:
    """How many bytes of the qcow2 `disk` are not zero, read as raw."""
    raw = tmp / "check.raw"
    subprocess.run(["qemu-img", "convert", "-U", "-f", "qcow2", "-O", "raw", disk, str(raw)], check=True)
    nonzero = 0
    with open(raw, "rb") as f:
        while chunk := f.read(1 << 20):
            nonzero += len(chunk) - chunk.count(0)
    raw.unlink()
    return nonzero


def test_run_instances_in_the_bare_metal_zone(mallee_factory, lab, tmp_path):
    from conftest import AwsCli

    images = build_images()
    srv = mallee_factory("srv", extra_args=metal_args(lab, images))
    ml = Metaleuca(srv, tmp_path / "bin")
    machines = [lab.add_machine(f"b{i}", f"52:54:00:4d:08:0{i}", f"{NET}.1{i}") for i in (1, 2)]
    rack = {
        "groups": [{"name": "test01", "description": "QA rack", "wipe": "zero"}],
        "profiles": [],
        "systems": [
            {"name": m["name"], "mac": m["mac"], "ip": m["ip"], "group": "test01", "power": m["power"]}
            for m in machines
        ],
    }
    (tmp_path / "rack.json").write_text(json.dumps(rack))
    ml.mallee("import", tmp_path / "rack.json")
    ml.mallee("add-profile", "debian-test", "--location", images / "installed.raw")

    admin = AwsCli(srv, home=tmp_path)
    user_creds = srv.create_account()
    user = AwsCli(srv, creds=user_creds, home=tmp_path)

    # ---- the zone and its instance types
    zones = user.json("ec2", "describe-availability-zones")["AvailabilityZones"]
    metal_zone = next(z for z in zones if z["ZoneName"] == ZONE)
    assert metal_zone["State"] == "available" and metal_zone["RegionName"] == "mallee-1"
    assert any("bare-metal" in m["Message"] and "test01.metal" in m["Message"] for m in metal_zone["Messages"]), metal_zone
    assert all(not z["Messages"] for z in zones if z["ZoneName"] != ZONE), zones
    types = user.json("ec2", "describe-instance-types", "--instance-types", "test01.metal")["InstanceTypes"]
    assert [(t["InstanceType"], t["BareMetal"]) for t in types] == [("test01.metal", True)], types
    bare = user.json("ec2", "describe-instance-types", "--filters", "Name=bare-metal,Values=true")["InstanceTypes"]
    assert [t["InstanceType"] for t in bare] == ["test01.metal"], bare

    # ---- the profile as an image: administrators only, existing profiles only
    denied = user.run("ec2", "register-image", "--name", "nope", "--image-location", "metal:debian-test", check=False)
    assert "UnauthorizedOperation" in error_of(denied), denied.stderr
    missing = admin.run("ec2", "register-image", "--name", "nope", "--image-location", "metal:no-such", check=False)
    assert "InvalidManifest" in error_of(missing) and "no-such" in missing.stderr, missing.stderr
    ami = admin.json(
        "ec2", "register-image", "--name", "qa-debian", "--image-location", "metal:debian-test"
    )["ImageId"]
    seen = user.json("ec2", "describe-images", "--image-ids", ami)["Images"][0]
    assert seen["ImageLocation"] == "metal:debian-test" and seen["Public"] is True, seen

    # A VM image (a raw disk in the object store) for the refusals below.
    s3 = srv.client("s3", creds=user_creds)
    s3.create_bucket(Bucket="vmimages")
    s3.put_object(Bucket="vmimages", Key="disk.raw", Body=b"\0" * 65536)
    vm_ami = user.json("ec2", "register-image", "--name", "vm-disk", "--image-location", "vmimages/disk.raw")["ImageId"]

    def run(*args, check=False):
        return user.run("ec2", "run-instances", *args, check=check)

    refusals = [
        (run("--image-id", vm_ami, "--instance-type", "test01.metal", "--placement", f"AvailabilityZone={ZONE}"),
         "InvalidParameterCombination", "not a bare-metal image"),
        (run("--image-id", ami, "--instance-type", "m1.small", "--placement", "AvailabilityZone=mallee-1a"),
         "InvalidParameterCombination", ZONE),
        (run("--image-id", ami, "--instance-type", "m1.small", "--placement", f"AvailabilityZone={ZONE}"),
         "InvalidParameterCombination", "test01.metal"),
        (run("--image-id", ami, "--instance-type", "test01.metal", "--count", "3",
             "--placement", f"AvailabilityZone={ZONE}"),
         "InsufficientInstanceCapacity", "2 machine(s) of group test01 free"),
        (run("--image-id", ami, "--instance-type", "test01.metal", "--key-name", "k",
             "--placement", f"AvailabilityZone={ZONE}"),
         "UnsupportedOperation", "KeyName"),
    ]
    for proc, code, text in refusals:
        err = error_of(proc)
        assert code in err and text in err, (code, text, err)
    systems = ml.json("describe-systems")
    assert all(s["state"] == "free" and "owner" not in s for s in systems), "nothing reserved"
    assert user.json("ec2", "describe-instances")["Reservations"] == []

    # ---- aws ec2 run-instances in the bare-metal zone
    t0 = time.monotonic()
    out = run("--image-id", ami, "--instance-type", "test01.metal",
              "--placement", f"AvailabilityZone={ZONE}", check=True)
    launched = json.loads(out.stdout)["Instances"]
    assert len(launched) == 1, launched
    iid = launched[0]["InstanceId"]
    assert launched[0]["State"]["Name"] == "pending"
    assert launched[0]["Placement"]["AvailabilityZone"] == ZONE
    assert launched[0]["InstanceType"] == "test01.metal"
    assert launched[0]["PrivateIpAddress"] == f"{NET}.11", launched[0]
    reservation = json.loads(out.stdout)["ReservationId"]

    owned = {s["name"]: s for s in ml.json("describe-systems")}
    assert owned["b1"]["owner"] == f"{user_creds['account_name']}:ec2/{reservation}", owned["b1"]
    assert owned["b2"]["state"] == "free"
    assert user.run("ec2", "stop-instances", "--instance-ids", iid, check=False).stderr.count("UnsupportedOperation")

    running = wait_state(user, iid, "running", BOOT_TIMEOUT)
    print(f"bare-metal instance from run-instances to running: {time.monotonic() - t0:.0f}s")
    assert running["PrivateIpAddress"] == f"{NET}.11"
    assert running["Placement"]["AvailabilityZone"] == ZONE
    log = lab.console("b1")
    assert "MALLEE-DEPLOY: server says provisioning" in log, log[-3000:]
    assert "MALLEE-METAL: checked in" in log, log[-3000:]
    b1 = {s["name"]: s for s in ml.json("describe-systems")}["b1"]
    assert b1["state"] == "running" and b1["netboot"] == "false", b1
    assert lab.qemu_pid("b2") is None, "the other machine was never powered on"

    # The zone's free count shows in the message-free type table too.
    statuses = user.json("ec2", "describe-instance-status", "--instance-ids", iid)["InstanceStatuses"]
    assert statuses and statuses[0]["InstanceState"]["Name"] == "running", statuses

    disk = machines[0]["power"]["disk"]
    assert nonzero_bytes(disk, tmp_path) > 1 << 20, "the image is on b1's disk"

    # ---- terminate-instances: the group wipes the disk (netbooting the
    # deploy agent in wipe mode), then the machine goes back to the pool, off
    term = user.json("ec2", "terminate-instances", "--instance-ids", iid)["TerminatingInstances"][0]
    assert term["CurrentState"]["Name"] == "shutting-down", term
    b1 = {s["name"]: s for s in ml.json("describe-systems")}["b1"]
    assert b1["state"] == "wiping" and b1["netboot"] == "true", b1
    assert b1["owner"] == f"{user_creds['account_name']}:ec2/{reservation}", "owned while wiping"
    done = wait_state(user, iid, "terminated", 600)
    assert done["StateReason"]["Code"] == "Client.UserInitiatedShutdown", done
    b1 = {s["name"]: s for s in ml.json("describe-systems")}["b1"]
    assert b1["state"] == "free" and "owner" not in b1, b1
    assert lab.qemu_pid("b1") is None, "still powered on"
    log = lab.console("b1")
    assert "MALLEE-DEPLOY: wiping /dev/vda" in log, log[-3000:]
    assert "MALLEE-DEPLOY: verify: 0 non-zero bytes in the first MiB, 0 in the last" in log, log[-3000:]
    assert nonzero_bytes(disk, tmp_path) == 0, "b1's disk reads back as zeros"
    srv.stop()
