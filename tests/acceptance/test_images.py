"""RegisterImage / DescribeImages / DeregisterImage / Describe-, Modify-,
ResetImageAttribute, and `mallee image install`, with boto3, awscli and the
mallee CLI against a running server."""

import gzip
import hashlib
import os
import re
import subprocess
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conftest import MALLEE_BIN, REPO, assert_aws_error, unique

AMI = re.compile(r"^ami-[0-9a-f]{17}$")
AKI = re.compile(r"^aki-[0-9a-f]{17}$")
ARI = re.compile(r"^ari-[0-9a-f]{17}$")
GUEST_IMAGES = REPO / "target" / "guest-images"


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def fake_kernel() -> bytes:
    """Bytes with a Linux boot protocol header ("HdrS" at 0x202)."""
    data = bytearray(os.urandom(8192))
    data[0x202:0x206] = b"HdrS"
    return bytes(data)


def fake_ramdisk() -> bytes:
    return gzip.compress(b"070701" + os.urandom(2048))


def fake_raw_disk() -> bytes:
    return bytes(1 << 16)


def qcow2_disk(tmp_dir: Path) -> bytes:
    path = tmp_dir / f"{unique('disk')}.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "16M"], check=True)
    data = path.read_bytes()
    assert data.startswith(b"QFI\xfb")
    return data


def s3_client(server, creds=None):
    return server.client("s3", creds=creds, s3={"addressing_style": "path"})


class Uploader:
    """Puts objects into one bucket of one account."""

    def __init__(self, server, creds=None):
        self.s3 = s3_client(server, creds)
        self.bucket = unique("img")
        self.s3.create_bucket(Bucket=self.bucket)

    def put(self, key: str, data: bytes, acl: str | None = None) -> str:
        kw = {"ACL": acl} if acl else {}
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, **kw)
        return f"{self.bucket}/{key}"


def describe_one(ec2, image_id):
    images = ec2.describe_images(ImageIds=[image_id])["Images"]
    assert len(images) == 1, images
    return images[0]


@pytest.fixture(scope="module")
def admin_id(server):
    return server.admin["account_id"]


@pytest.fixture(scope="module")
def registered(server, tmp_path_factory):
    """One kernel, ramdisk, paravirtual raw image and hvm qcow2 image of the
    admin account, all named with one unique prefix."""
    ec2 = server.client("ec2")
    up = Uploader(server)
    prefix = unique("set")
    kernel = ec2.register_image(ImageLocation=up.put("vmlinuz", fake_kernel()), Name=f"{prefix}-kernel")["ImageId"]
    ramdisk = ec2.register_image(ImageLocation=up.put("initrd", fake_ramdisk()), Name=f"{prefix}-ramdisk")["ImageId"]
    pv = ec2.register_image(
        ImageLocation=up.put("root.img", fake_raw_disk()),
        Name=f"{prefix}-pv",
        Description="paravirtual root",
        KernelId=kernel,
        RamdiskId=ramdisk,
        TagSpecifications=[{"ResourceType": "image", "Tags": [{"Key": "role", "Value": "pv"}]}],
    )["ImageId"]
    hvm = ec2.register_image(
        ImageLocation=up.put("disk.qcow2", qcow2_disk(tmp_path_factory.mktemp("qcow2"))),
        Name=f"{prefix}-hvm",
        Architecture="i386",
        RootDeviceName="/dev/xvda",
    )["ImageId"]
    return {"prefix": prefix, "bucket": up.bucket, "kernel": kernel, "ramdisk": ramdisk, "pv": pv, "hvm": hvm}


# ---------------------------------------------------------------- register + describe


def test_types_are_read_from_the_objects(ec2, registered, admin_id):
    r = registered
    assert AKI.match(r["kernel"]) and ARI.match(r["ramdisk"]), r
    assert AMI.match(r["pv"]) and AMI.match(r["hvm"]), r
    kernel = describe_one(ec2, r["kernel"])
    assert kernel["ImageType"] == "kernel"
    assert kernel["VirtualizationType"] == "paravirtual"
    assert describe_one(ec2, r["ramdisk"])["ImageType"] == "ramdisk"

    pv = describe_one(ec2, r["pv"])
    assert pv["ImageType"] == "machine"
    assert pv["VirtualizationType"] == "paravirtual"
    assert pv["KernelId"] == r["kernel"] and pv["RamdiskId"] == r["ramdisk"]
    assert pv["ImageLocation"] == f"{r['bucket']}/root.img"
    assert pv["State"] == "available"
    assert pv["OwnerId"] == admin_id
    assert pv["Public"] is False
    assert pv["Architecture"] == "x86_64"
    assert pv["RootDeviceType"] == "instance-store"
    assert pv["RootDeviceName"] == "/dev/sda1"
    assert pv["Name"] == f"{r['prefix']}-pv"
    assert pv["Description"] == "paravirtual root"
    assert pv["Hypervisor"] == "xen"
    assert pv["PlatformDetails"] == "Linux/UNIX"
    assert pv["UsageOperation"] == "RunInstances"
    assert pv["BlockDeviceMappings"] == []
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", pv["CreationDate"]), pv["CreationDate"]
    assert pv["Tags"] == [{"Key": "role", "Value": "pv"}]

    hvm = describe_one(ec2, r["hvm"])
    assert hvm["VirtualizationType"] == "hvm"
    assert "KernelId" not in hvm and "RamdiskId" not in hvm
    assert hvm["Architecture"] == "i386"
    assert hvm["RootDeviceName"] == "/dev/xvda"


def names(images):
    return sorted(i["Name"] for i in images)


def test_describe_filters(server, ec2, registered):
    r, p = registered, registered["prefix"]

    def q(name, *values):
        return names(
            ec2.describe_images(
                Owners=["self"],
                Filters=[{"Name": "name", "Values": [f"{p}-*"]}, {"Name": name, "Values": list(values)}],
            )["Images"]
        )

    everything = [f"{p}-hvm", f"{p}-kernel", f"{p}-pv", f"{p}-ramdisk"]
    assert q("name", "*") == everything
    assert q("image-id", r["pv"], r["hvm"]) == [f"{p}-hvm", f"{p}-pv"]
    assert q("image-type", "kernel", "ramdisk") == [f"{p}-kernel", f"{p}-ramdisk"]
    assert q("architecture", "i386") == [f"{p}-hvm"]
    assert q("virtualization-type", "hvm") == [f"{p}-hvm"]
    assert q("state", "available") == everything
    assert q("state", "pending") == []
    assert q("is-public", "false") == everything
    assert q("is-public", "true") == []
    assert q("kernel-id", r["kernel"]) == [f"{p}-pv"]
    assert q("ramdisk-id", r["ramdisk"]) == [f"{p}-pv"]
    assert q("root-device-type", "instance-store") == everything
    assert q("root-device-name", "/dev/xvda") == [f"{p}-hvm"]
    assert q("description", "paravirtual*") == [f"{p}-pv"]
    assert q("owner-id", registered_owner(ec2, r)) == everything
    assert q("owner-alias", "amazon") == everything
    assert q("hypervisor", "xen") == everything
    assert q("manifest-location", f"{r['bucket']}/disk.qcow2") == [f"{p}-hvm"]
    assert q("tag:role", "pv") == [f"{p}-pv"]
    assert q("tag-key", "role") == [f"{p}-pv"]
    assert q("tag-value", "p?") == [f"{p}-pv"]
    with pytest.raises(ClientError) as e:
        ec2.describe_images(Filters=[{"Name": "bogus", "Values": ["x"]}])
    assert error_code(e) == "InvalidParameterValue"

    # Pages follow image ids and together list every image once.
    up = Uploader(server)
    for n in range(2):
        ec2.register_image(ImageLocation=up.put(f"page{n}", fake_raw_disk()), Name=unique("page"))
    first = ec2.describe_images(Owners=["self"], MaxResults=5)
    assert len(first["Images"]) == 5 and first.get("NextToken"), first.get("NextToken")
    paged = [i["ImageId"] for page in ec2.get_paginator("describe_images").paginate(
        Owners=["self"], PaginationConfig={"PageSize": 5}) for i in page["Images"]]
    assert paged == sorted(paged) == sorted(i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"])


def registered_owner(ec2, r):
    return describe_one(ec2, r["pv"])["OwnerId"]


def test_owner_forms(server, ec2, registered, admin_id, other_account):
    pv = registered["pv"]

    def ids(client, **kw):
        return {i["ImageId"] for i in client.describe_images(**kw)["Images"]}

    assert pv in ids(ec2, Owners=["self"])
    assert pv in ids(ec2, Owners=[admin_id])
    # The cloud administrator's images are the "amazon" images.
    assert pv in ids(ec2, Owners=["amazon"])
    assert describe_one(ec2, pv)["ImageOwnerAlias"] == "amazon"
    assert pv not in ids(ec2, Owners=["aws-marketplace"])
    assert pv not in ids(ec2, Owners=["123456789012"])
    assert pv in ids(ec2)
    # Another account does not see the private image at all.
    other = server.client("ec2", creds=other_account)
    assert pv not in ids(other)
    assert pv not in ids(other, Owners=[admin_id])
    with pytest.raises(ClientError) as e:
        other.describe_images(ImageIds=[pv])
    assert error_code(e) == "InvalidAMIID.NotFound"
    with pytest.raises(ClientError) as e:
        ec2.describe_images(Owners=["not-an-owner"])
    assert error_code(e) == "InvalidUserID.Malformed"


def test_unknown_and_malformed_ids(ec2, raw, registered):
    with pytest.raises(ClientError) as e:
        ec2.describe_images(ImageIds=[registered["pv"], "ami-12345678"])
    assert error_code(e) == "InvalidAMIID.NotFound"
    assert "ami-12345678" in e.value.response["Error"]["Message"]
    resp = raw({"Action": "DescribeImages", "ImageId.1": "ami-nothex"})
    assert_aws_error(resp, "InvalidAMIID.Malformed", 400)
    resp = raw({"Action": "DeregisterImage", "ImageId": "ami-12345678"})
    assert_aws_error(resp, "InvalidAMIID.NotFound", 400)


# ---------------------------------------------------------------- attributes


def test_image_attributes(ec2, registered):
    pv = registered["pv"]
    attr = ec2.describe_image_attribute(ImageId=pv, Attribute="kernel")
    assert attr["ImageId"] == pv
    assert attr["KernelId"]["Value"] == registered["kernel"]
    assert ec2.describe_image_attribute(ImageId=pv, Attribute="ramdisk")["RamdiskId"]["Value"] == registered["ramdisk"]
    assert ec2.describe_image_attribute(ImageId=registered["hvm"], Attribute="kernel").get("KernelId", {}).get("Value") is None
    ec2.modify_image_attribute(ImageId=pv, Description={"Value": "changed"})
    assert ec2.describe_image_attribute(ImageId=pv, Attribute="description")["Description"]["Value"] == "changed"
    assert describe_one(ec2, pv)["Description"] == "changed"
    assert ec2.describe_image_attribute(ImageId=pv, Attribute="launchPermission")["LaunchPermissions"] == []
    assert ec2.describe_image_attribute(ImageId=pv, Attribute="blockDeviceMapping").get("BlockDeviceMappings", []) == []
    with pytest.raises(ClientError) as e:
        ec2.describe_image_attribute(ImageId=pv, Attribute="imdsSupport")
    assert error_code(e) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        ec2.reset_image_attribute(ImageId=pv, Attribute="kernel")
    assert error_code(e) == "InvalidParameterValue"


def test_launch_permissions_across_accounts(server, ec2, raw, other_account, tmp_path):
    up = Uploader(server)
    image = ec2.register_image(ImageLocation=up.put("disk", fake_raw_disk()), Name=unique("shared"))["ImageId"]
    other = server.client("ec2", creds=other_account)
    other_id = other_account["account_id"]

    def other_sees(**kw):
        return image in {i["ImageId"] for i in other.describe_images(**kw)["Images"]}

    assert not other_sees()
    ec2.modify_image_attribute(ImageId=image, LaunchPermission={"Add": [{"UserId": other_id}]})
    assert other_sees()
    assert other_sees(ExecutableUsers=["self"])
    assert not other_sees(ExecutableUsers=["all"])
    assert describe_one(other, image)["ImageId"] == image
    assert image in {i["ImageId"] for i in ec2.describe_images(ExecutableUsers=[other_id])["Images"]}
    perms = ec2.describe_image_attribute(ImageId=image, Attribute="launchPermission")["LaunchPermissions"]
    assert perms == [{"UserId": other_id}]

    # Visible is not owned: every change by the other account is refused.
    for call in (
        lambda: other.modify_image_attribute(ImageId=image, Description={"Value": "mine"}),
        lambda: other.deregister_image(ImageId=image),
        lambda: other.describe_image_attribute(ImageId=image, Attribute="launchPermission"),
        lambda: other.reset_image_attribute(ImageId=image, Attribute="launchPermission"),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == "AuthFailure"
    assert other.describe_image_attribute(ImageId=image, Attribute="description")["ImageId"] == image

    ec2.modify_image_attribute(ImageId=image, LaunchPermission={"Remove": [{"UserId": other_id}]})
    assert not other_sees()
    with pytest.raises(ClientError) as e:
        other.modify_image_attribute(ImageId=image, Description={"Value": "mine"})
    assert error_code(e) == "InvalidAMIID.NotFound"

    # Public, then the euca2ools form to share and unshare, then reset.
    ec2.modify_image_attribute(ImageId=image, LaunchPermission={"Add": [{"Group": "all"}]})
    assert describe_one(ec2, image)["Public"] is True
    assert other_sees(ExecutableUsers=["all"])
    assert other_sees(Filters=[{"Name": "is-public", "Values": ["true"]}])
    resp = raw(
        {
            "Action": "ModifyImageAttribute",
            "ImageId": image,
            "Attribute": "launchPermission",
            "OperationType": "remove",
            "UserGroup.1": "all",
        }
    )
    assert resp.status == 200, resp.describe()
    assert not other_sees()
    resp = raw(
        {
            "Action": "ModifyImageAttribute",
            "ImageId": image,
            "Attribute": "launchPermission",
            "OperationType": "add",
            "UserId.1": other_id,
        }
    )
    assert resp.status == 200, resp.describe()
    assert other_sees(ExecutableUsers=[other_id])
    ec2.reset_image_attribute(ImageId=image, Attribute="launchPermission")
    assert not other_sees()
    assert ec2.describe_image_attribute(ImageId=image, Attribute="launchPermission")["LaunchPermissions"] == []

    with pytest.raises(ClientError) as e:
        ec2.modify_image_attribute(ImageId=image, LaunchPermission={"Add": [{"UserId": "12345"}]})
    assert error_code(e) == "InvalidAMIAttributeItemValue"
    with pytest.raises(ClientError) as e:
        ec2.modify_image_attribute(ImageId=image, LaunchPermission={"Add": [{"Group": "everyone"}]})
    assert error_code(e) == "InvalidAMIAttributeItemValue"


# ---------------------------------------------------------------- deregister, tags


def test_deregister(server, ec2):
    up = Uploader(server)
    name = unique("gone")
    location = up.put("disk", fake_raw_disk())
    image = ec2.register_image(ImageLocation=location, Name=name)["ImageId"]
    ec2.create_tags(Resources=[image], Tags=[{"Key": "k", "Value": "v"}])
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [image]}])["Tags"]
    assert [(t["ResourceType"], t["Key"]) for t in tags] == [("image", "k")]
    ec2.deregister_image(ImageId=image)
    with pytest.raises(ClientError) as e:
        ec2.describe_images(ImageIds=[image])
    assert error_code(e) == "InvalidAMIID.NotFound"
    assert ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [image]}])["Tags"] == []
    with pytest.raises(ClientError) as e:
        ec2.deregister_image(ImageId=image)
    assert error_code(e) == "InvalidAMIID.NotFound"
    # The object stays, and the name is free again.
    again = ec2.register_image(ImageLocation=location, Name=name)["ImageId"]
    assert again != image


def own_images(ec2):
    return sorted(
        (i["ImageId"], i["Name"], i.get("Description"), i["Public"], tuple(sorted((t["Key"], t["Value"]) for t in i.get("Tags", []))))
        for i in ec2.describe_images(Owners=["self"])["Images"]
    )


def test_malformed_registrations_change_nothing(server, ec2, raw, registered, other_account):
    up = Uploader(server)
    disk = up.put("disk", fake_raw_disk())
    kernel_obj = up.put("kernel", fake_kernel())
    up.put("empty", b"")
    up.put("manifest.xml", b'<?xml version="1.0"?><manifest></manifest>')
    other_up = Uploader(server, other_account)
    private_other = other_up.put("secret.img", fake_raw_disk())
    before = own_images(ec2)
    name = registered["prefix"] + "-pv"
    cases = [
        ({"ImageLocation": disk, "Name": "x"}, "InvalidAMIName.Malformed"),
        ({"ImageLocation": disk, "Name": "bad*name"}, "InvalidAMIName.Malformed"),
        ({"ImageLocation": disk, "Name": name}, "InvalidAMIName.Duplicate"),
        ({"ImageLocation": f"{up.bucket}/missing", "Name": unique("m")}, "InvalidManifest"),
        ({"ImageLocation": "no-such-bucket-xyz/disk", "Name": unique("m")}, "InvalidManifest"),
        ({"ImageLocation": private_other, "Name": unique("m")}, "InvalidManifest"),
        ({"ImageLocation": f"{up.bucket}/empty", "Name": unique("m")}, "InvalidManifest"),
        ({"ImageLocation": f"{up.bucket}/manifest.xml", "Name": unique("m")}, "InvalidManifest"),
        ({"ImageLocation": "nobucketkey", "Name": unique("m")}, "InvalidParameterValue"),
        ({"Name": unique("m")}, "MissingParameter"),
        ({"ImageLocation": disk}, "MissingParameter"),
        ({"ImageLocation": disk, "Name": unique("m"), "Architecture": "sparc"}, "InvalidParameterValue"),
        ({"ImageLocation": disk, "Name": unique("m"), "VirtualizationType": "paravirtual"}, "InvalidParameterCombination"),
        ({"ImageLocation": disk, "Name": unique("m"), "VirtualizationType": "hvm", "KernelId": registered["kernel"]}, "InvalidParameterCombination"),
        ({"ImageLocation": disk, "Name": unique("m"), "KernelId": registered["ramdisk"]}, "InvalidParameterValue"),
        ({"ImageLocation": disk, "Name": unique("m"), "KernelId": "aki-12345678"}, "InvalidAMIID.NotFound"),
        ({"ImageLocation": disk, "Name": unique("m"), "KernelId": "vmlinuz"}, "InvalidAMIID.Malformed"),
        ({"ImageLocation": kernel_obj, "Name": unique("m"), "KernelId": registered["kernel"]}, "InvalidParameterCombination"),
        ({"ImageLocation": disk, "Name": unique("m"), "Description": "d" * 256}, "InvalidParameterValue"),
    ]
    for params, code in cases:
        resp = raw({"Action": "RegisterImage", **params})
        assert_aws_error(resp, code, 400)
    # The other account cannot base an image on the admin's private kernel.
    other = server.client("ec2", creds=other_account)
    with pytest.raises(ClientError) as e:
        other.register_image(ImageLocation=private_other, Name=unique("m"), KernelId=registered["kernel"])
    assert error_code(e) == "InvalidAMIID.NotFound"
    for params, code in [
        ({"Action": "ModifyImageAttribute", "ImageId": registered["pv"]}, "InvalidParameterCombination"),
        ({"Action": "ModifyImageAttribute", "ImageId": registered["pv"], "LaunchPermission.Add.1.UserId": "abc"}, "InvalidAMIAttributeItemValue"),
        ({"Action": "DescribeImageAttribute", "ImageId": registered["pv"]}, "MissingParameter"),
    ]:
        assert_aws_error(raw(params), code, 400)
    assert own_images(ec2) == before


def test_public_object_of_another_account_can_be_registered(server, ec2, other_account):
    """Registration needs read access to the object, not ownership."""
    other_up = Uploader(server, other_account)
    location = other_up.put("shared.img", fake_raw_disk(), acl="public-read")
    image = ec2.register_image(ImageLocation=location, Name=unique("borrowed"))["ImageId"]
    assert describe_one(ec2, image)["ImageLocation"] == location


# ---------------------------------------------------------------- awscli


def test_awscli_round_trip(server, aws_cli, other_account):
    up = Uploader(server)
    location = up.put("cli.img", fake_raw_disk())
    name = unique("cli")
    image = aws_cli.json(
        "ec2", "register-image", "--image-location", location, "--name", name, "--description", "from the cli"
    )["ImageId"]
    assert AMI.match(image)
    found = aws_cli.json("ec2", "describe-images", "--owners", "self", "--filters", f"Name=name,Values={name}")["Images"]
    assert [i["ImageId"] for i in found] == [image]
    assert found[0]["Description"] == "from the cli"
    aws_cli.run(
        "ec2", "modify-image-attribute", "--image-id", image,
        "--launch-permission", f"Add=[{{UserId={other_account['account_id']}}},{{Group=all}}]",
    )
    perms = aws_cli.json("ec2", "describe-image-attribute", "--image-id", image, "--attribute", "launchPermission")
    assert {"Group": "all"} in perms["LaunchPermissions"]
    assert {"UserId": other_account["account_id"]} in perms["LaunchPermissions"]
    aws_cli.run("ec2", "reset-image-attribute", "--image-id", image, "--attribute", "launchPermission")
    aws_cli.run("ec2", "deregister-image", "--image-id", image)
    proc = aws_cli.run("ec2", "describe-images", "--image-ids", image, check=False)
    assert proc.returncode != 0 and "InvalidAMIID.NotFound" in proc.stderr, proc.stderr


# ---------------------------------------------------------------- mallee image install


def guest_images() -> Path:
    """The test guest built by guest/build.sh (built now when missing)."""
    wanted = ["vmlinuz", "initrd.img", "root.img", "hvm.qcow2"]
    if not all((GUEST_IMAGES / f).exists() for f in wanted):
        subprocess.run(["bash", str(REPO / "guest" / "build.sh")], check=True, cwd=REPO, timeout=900)
    missing = [f for f in wanted if not (GUEST_IMAGES / f).exists()]
    assert not missing, f"guest/build.sh did not produce {missing} in {GUEST_IMAGES}"
    return GUEST_IMAGES


def install(server, *args, creds=None, env_creds=False):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "MALLEE_ENDPOINT"}
    cmd = [str(MALLEE_BIN), "image", "install", *map(str, args), "--endpoint", server.endpoint]
    if env_creds:
        env["AWS_ACCESS_KEY_ID"] = creds["access_key_id"]
        env["AWS_SECRET_ACCESS_KEY"] = creds["secret_access_key"]
    else:
        cmd += ["--data-dir", str(server.data_dir)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=600)


def image_lines(proc) -> list[str]:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    lines = proc.stdout.splitlines()
    assert all(line.startswith("IMAGE\t") for line in lines), proc.stdout
    # No TTY: no progress bar drawn.
    assert proc.stderr == "", proc.stderr
    return [line.split("\t")[1] for line in lines]


def test_install_guest_images(server, ec2, other_account):
    guest = guest_images()
    name = unique("guest")
    kernel, ramdisk, machine = image_lines(
        install(
            server, guest / "root.img", "--name", name,
            "--kernel", guest / "vmlinuz", "--ramdisk", guest / "initrd.img",
            "--description", "test guest",
        )
    )
    assert AKI.match(kernel) and ARI.match(ramdisk) and AMI.match(machine)
    image = describe_one(ec2, machine)
    assert image["VirtualizationType"] == "paravirtual"
    assert (image["KernelId"], image["RamdiskId"]) == (kernel, ramdisk)
    assert image["Description"] == "test guest"
    assert describe_one(ec2, kernel)["Name"] == f"{name}-kernel"
    bucket, key = image["ImageLocation"].split("/", 1)
    head = s3_client(server).head_object(Bucket=bucket, Key=key)
    root = guest / "root.img"
    assert head["ContentLength"] == root.stat().st_size
    assert head["ETag"].strip('"') == hashlib.md5(root.read_bytes()).hexdigest()

    # An existing kernel id is reused; credentials from the environment.
    reuse = image_lines(
        install(server, guest / "root.img", "--name", unique("reuse"), "--kernel", kernel, creds=server.admin, env_creds=True)
    )
    assert len(reuse) == 1
    assert describe_one(ec2, reuse[0])["KernelId"] == kernel

    # Another account installs a public hvm image everyone can see.
    (hvm,) = image_lines(
        install(server, guest / "hvm.qcow2", "--name", unique("hvm"), "--public", creds=other_account, env_creds=True)
    )
    seen = describe_one(ec2, hvm)
    assert seen["VirtualizationType"] == "hvm" and seen["Public"] is True
    assert seen["OwnerId"] == other_account["account_id"]


def test_install_large_file_uses_multipart(server, ec2, tmp_path):
    big = tmp_path / "big.img"
    with open(big, "wb") as f:
        f.truncate(70 * 1024 * 1024)
        f.seek(5 * 1024 * 1024)
        f.write(os.urandom(4096))
    (image_id,) = image_lines(install(server, big, "--name", unique("big"), "--bucket", unique("bigbucket")))
    image = describe_one(ec2, image_id)
    assert image["VirtualizationType"] == "hvm"
    bucket, key = image["ImageLocation"].split("/", 1)
    head = s3_client(server).head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == 70 * 1024 * 1024
    assert head["ETag"].strip('"').endswith("-2"), head["ETag"]


def test_install_errors(server, tmp_path):
    missing = install(server, tmp_path / "nope.img", "--name", unique("x"))
    assert missing.returncode != 0 and "nope.img" in missing.stderr, missing.stderr
    disk = tmp_path / "disk.img"
    disk.write_bytes(fake_raw_disk())
    bad_name = install(server, disk, "--name", "x")
    assert bad_name.returncode != 0 and "InvalidAMIName.Malformed" in bad_name.stderr, bad_name.stderr
    wrong_secret = install(
        server, disk, "--name", unique("x"),
        creds={"access_key_id": server.admin["access_key_id"], "secret_access_key": "wrong"}, env_creds=True,
    )
    assert wrong_secret.returncode != 0 and "SignatureDoesNotMatch" in wrong_secret.stderr, wrong_secret.stderr
