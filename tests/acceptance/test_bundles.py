"""AMI bundles (issue 19, part 1): RegisterImage of a bundle manifest, the
cloud's bundling certificate, IAM signing certificates and `mallee bundle`.

Two clouds, one VM each:
- cloud A boots an image bundled WITHOUT mallee (tar, sha1sum, gzip,
  openssl enc, split, openssl pkeyutl, a manifest from a shell template),
  uploaded with s3cmd and registered with awscli; the five broken bundles
  fail on A, through the API only;
- cloud B is first started paused in the middle of an unbundle and killed
  there (the registration resumes after the restart), then boots the seed's
  migration: `mallee bundle image` → upload → register on A; download →
  unbundle → migrate-manifest → upload → register on B.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from computeutil import guest_cloud, guest_images, register_guest, user_data, wait_console, wait_states
from conftest import MALLEE_BIN, AwsCli, MalleeServer, run_mallee, unique

SYSTEM_BUCKET = "_unbundled-images"


def mallee(*args, env=None, timeout=300) -> str:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EC2_", "EUCA"))}
    full_env.update(env or {})
    p = subprocess.run(
        [str(MALLEE_BIN), *map(str, args)], capture_output=True, text=True, timeout=timeout, env=full_env,
        stdin=subprocess.DEVNULL,
    )
    assert p.returncode == 0, f"mallee {' '.join(map(str, args))} exited {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p.stdout


def cli_env(server) -> dict:
    """What eucarc gives the bundle commands, and the API client."""
    creds = server.cred_dir
    return {
        "EC2_CERT": str(creds / "admin-cert.pem"),
        "EC2_PRIVATE_KEY": str(creds / "admin-pk.pem"),
        "EUCALYPTUS_CERT": str(creds / "cloud-cert.pem"),
        "EC2_USER_ID": server.admin["account_id"],
        "MALLEE_ENDPOINT": server.endpoint,
        "MALLEE_DATA_DIR": str(server.data_dir),
    }


def wait_image(ec2, image_id: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
        if image["State"] != "pending":
            return image
        assert time.monotonic() < deadline, f"{image_id} still pending"
        time.sleep(0.5)


def unbundled_objects(server, image_id: str) -> int:
    """Objects the cloud stored for the image (in its own bucket, which no S3
    client can name)."""
    with sqlite3.connect(server.data_dir / "mallee.db") as db:
        (n,) = db.execute(
            "SELECT count(*) FROM objects WHERE bucket = ? AND key = ?", (SYSTEM_BUCKET, image_id)
        ).fetchone()
    return n


# ---------------------------------------------------------------- the shell bundle

SHELL_BUNDLE = r"""
set -eu
cd "$WORK"
cp "$IMAGE" "$NAME"
KEY=$(openssl rand -hex 16)
IV=$(openssl rand -hex 16)
hex() { od -An -v -tx1 | tr -d ' \n'; }
wrap() { printf %s "$1" | openssl pkeyutl -encrypt -certin -inkey "$2" -pkeyopt rsa_padding_mode:pkcs1 | hex; }
DIGEST=$(tar -c -f - "$NAME" | sha1sum | cut -d' ' -f1)
tar -c -f - "$NAME" | gzip -c | openssl enc -e -aes-128-cbc -K "$KEY" -iv "$IV" | split -a 2 -d -b 10M - "$NAME.part."
SIZE=$(stat -c %s "$NAME")
BUNDLED=$(cat "$NAME".part.* | wc -c)
PARTS=""
COUNT=0
for p in "$NAME".part.*; do
  PARTS="$PARTS<part index=\"$COUNT\"><filename>$p</filename><digest algorithm=\"SHA1\">$(sha1sum "$p" | cut -d' ' -f1)</digest></part>"
  COUNT=$((COUNT + 1))
done
MC="<machine_configuration><architecture>x86_64</architecture><kernel_id>$KERNEL</kernel_id><ramdisk_id>$RAMDISK</ramdisk_id></machine_configuration>"
IMG="<image><name>$NAME</name><user>$ACCOUNT</user><type>machine</type><digest algorithm=\"SHA1\">$DIGEST</digest><size>$SIZE</size><bundled_size>$BUNDLED</bundled_size><ec2_encrypted_key algorithm=\"AES-128-CBC\">$(wrap "$KEY" "$CLOUD_CERT")</ec2_encrypted_key><user_encrypted_key algorithm=\"AES-128-CBC\">$(wrap "$KEY" "$USER_CERT")</user_encrypted_key><ec2_encrypted_iv>$(wrap "$IV" "$CLOUD_CERT")</ec2_encrypted_iv><user_encrypted_iv>$(wrap "$IV" "$USER_CERT")</user_encrypted_iv><parts count=\"$COUNT\">$PARTS</parts></image>"
SIG=$(printf %s "$MC$IMG" | openssl dgst -sha1 -sign "$USER_KEY" | hex)
cat > "$NAME.manifest.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<manifest><version>2007-10-10</version><bundler><name>shell</name><version>1</version><release>0</release></bundler>$MC$IMG<signature>$SIG</signature></manifest>
EOF
rm "$NAME"
"""


def shell_bundle(work: Path, image: Path, server, kernel: str, ramdisk: str, cloud_cert: Path | None = None) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    creds = server.cred_dir
    env = dict(
        os.environ,
        WORK=str(work),
        IMAGE=str(image),
        NAME=image.name,
        KERNEL=kernel,
        RAMDISK=ramdisk,
        ACCOUNT=server.admin["account_id"],
        CLOUD_CERT=str(cloud_cert or creds / "cloud-cert.pem"),
        USER_CERT=str(creds / "admin-cert.pem"),
        USER_KEY=str(creds / "admin-pk.pem"),
    )
    p = subprocess.run(["bash", "-c", SHELL_BUNDLE], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    return work / f"{image.name}.manifest.xml"


def s3cmd(server, tmp: Path, *args):
    cfg = tmp / "s3cfg"
    creds = server.admin
    cfg.write_text(
        "[default]\n"
        f"access_key = {creds['access_key_id']}\nsecret_key = {creds['secret_access_key']}\n"
        f"host_base = 127.0.0.1:{server.port}\nhost_bucket = 127.0.0.1:{server.port}\n"
        "use_https = False\nbucket_location = mallee-1\nsignature_v2 = False\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = str(tmp)
    p = subprocess.run(
        [shutil.which("s3cmd") or "s3cmd", "-c", str(cfg), "--no-progress", *map(str, args)],
        capture_output=True, text=True, timeout=300, env=env, stdin=subprocess.DEVNULL,
    )
    assert p.returncode == 0, f"s3cmd {args}: {p.stdout}\n{p.stderr}"
    return p.stdout


@pytest.fixture(scope="module")
def cloud_a(tmp_path_factory):
    with guest_cloud(tmp_path_factory, "bundles-a") as srv:
        yield srv


@pytest.fixture(scope="module")
def cloud_b(tmp_path_factory):
    """Cloud B, started to pause in the middle of every unbundle (after the
    first part): the kill-restart test takes it out of that mode."""
    guest_images()
    d = tmp_path_factory.mktemp("bundles-b")
    srv = MalleeServer(d / "data", d / "server.log", env={"MALLEE_PAUSE_AT": "bundle.part"})
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
        srv.kill()
        srv.purge()


def test_credentials_hold_the_bundling_certificates(cloud_a):
    creds = cloud_a.cred_dir
    eucarc = (creds / "eucarc").read_text()
    assert f"export EUCALYPTUS_CERT={creds}/cloud-cert.pem" in eucarc
    assert f"export EC2_CERT={creds}/admin-cert.pem" in eucarc
    assert "BEGIN CERTIFICATE" in (creds / "cloud-cert.pem").read_text()
    # The administrator's certificate is registered as its signing certificate.
    certs = cloud_a.client("iam").list_signing_certificates()["Certificates"]
    body = (creds / "admin-cert.pem").read_text().strip()
    assert [c["CertificateBody"].strip() for c in certs] == [body]
    assert certs[0]["Status"] == "Active"


def test_describe_service_certificates_serves_the_bundling_certificate(cloud_a):
    """What euca-bundle-image asks the bootstrap service (Empyrean) when
    it has no --ec2cert."""
    params = {
        "Action": "DescribeServiceCertificates", "Version": "eucalyptus", "Format": "pem",
        "FingerprintDigest": "SHA-256", "Filter.1.Name": "certificate-usage", "Filter.1.Value.1": "image-bundling",
    }
    r = cloud_a.raw(params, service="bootstrap", path="/services/Empyrean", add_version=False)
    assert r.status == 200, r.describe()
    (member,) = r.find_all("member")
    fields = {child.tag.split("}")[-1]: child.text for child in member}
    assert fields["certificateUsage"] == "image-bundling" and fields["serviceType"] == "compute"
    pem = (cloud_a.cred_dir / "cloud-cert.pem").read_text()
    assert fields["certificate"].strip() == pem.strip()
    der = subprocess.run(
        ["openssl", "x509", "-outform", "DER"], input=pem.encode(), capture_output=True, check=True
    ).stdout
    assert fields["certificateFingerprint"] == hashlib.sha256(der).hexdigest()
    none = cloud_a.raw(
        {**params, "Filter.1.Value.1": "other"}, service="bootstrap", path="/services/Empyrean", add_version=False
    )
    assert none.status == 200 and not none.find_all("member")
    bad = cloud_a.raw({**params, "Format": "txt"}, service="bootstrap", path="/services/Empyrean", add_version=False)
    assert (bad.status, bad.find_all("Code")[0].text) == (400, "ValidationError"), bad.describe()


def test_signing_certificates_of_a_user(cloud_a, tmp_path):
    iam = cloud_a.client("iam")
    user = unique("bundler")
    iam.create_user(UserName=user)
    out = run_mallee(
        "admin", "signing-certificate", "create", "--account", "eucalyptus", "--user", user,
        "--out-dir", tmp_path, "--data-dir", cloud_a.data_dir, check=True,
    ).stdout
    cert_id = out.split("\t")[1]
    assert (tmp_path / f"{user}-pk.pem").stat().st_mode & 0o077 == 0
    body = (tmp_path / f"{user}-cert.pem").read_text()
    (listed,) = iam.list_signing_certificates(UserName=user)["Certificates"]
    assert (listed["CertificateId"], listed["UserName"], listed["Status"]) == (cert_id, user, "Active")
    with pytest.raises(ClientError) as e:
        iam.upload_signing_certificate(UserName=user, CertificateBody=body)
    assert e.value.response["Error"]["Code"] == "DuplicateCertificate"
    with pytest.raises(ClientError) as e:
        iam.upload_signing_certificate(UserName=user, CertificateBody="not a certificate")
    assert e.value.response["Error"]["Code"] == "MalformedCertificate"
    own = tmp_path / "own"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{own}-pk.pem",
         "-out", f"{own}-cert.pem", "-subj", "/CN=own", "-days", "30"],
        check=True, capture_output=True,
    )
    uploaded = iam.upload_signing_certificate(UserName=user, CertificateBody=Path(f"{own}-cert.pem").read_text())
    assert uploaded["Certificate"]["Status"] == "Active"
    iam.update_signing_certificate(UserName=user, CertificateId=cert_id, Status="Inactive")
    statuses = {c["CertificateId"]: c["Status"] for c in iam.list_signing_certificates(UserName=user)["Certificates"]}
    assert statuses == {cert_id: "Inactive", uploaded["Certificate"]["CertificateId"]: "Active"}
    with pytest.raises(ClientError) as e:
        iam.upload_signing_certificate(UserName=user, CertificateBody=(cloud_a.cred_dir / "cloud-cert.pem").read_text())
    assert e.value.response["Error"]["Code"] == "LimitExceeded"
    iam.delete_signing_certificate(UserName=user, CertificateId=cert_id)
    with pytest.raises(ClientError) as e:
        iam.delete_signing_certificate(UserName=user, CertificateId=cert_id)
    assert e.value.response["Error"]["Code"] == "NoSuchEntity"
    with pytest.raises(ClientError) as e:
        iam.delete_user(UserName=user)
    assert e.value.response["Error"]["Code"] == "DeleteConflict"
    iam.delete_signing_certificate(UserName=user, CertificateId=uploaded["Certificate"]["CertificateId"])
    iam.delete_user(UserName=user)
    # Another account sees none of them.
    other = cloud_a.create_account()
    with pytest.raises(ClientError) as e:
        cloud_a.client("iam", creds=other).list_signing_certificates(UserName=user)
    assert e.value.response["Error"]["Code"] == "NoSuchEntity"


def test_a_shell_made_bundle_boots_and_runs_its_user_data(cloud_a, tmp_path):
    images = cloud_a.images
    manifest = shell_bundle(tmp_path / "bundle", guest_images() / "root.img", cloud_a, images["kernel"], images["ramdisk"])
    bucket = unique("shellb")
    s3cmd(cloud_a, tmp_path, "mb", f"s3://{bucket}")
    for f in sorted(manifest.parent.glob("root.img.part.*")) + [manifest]:
        s3cmd(cloud_a, tmp_path, "put", f, f"s3://{bucket}/shell/{f.name}")
    aws = AwsCli(cloud_a)
    image_id = aws.json(
        "ec2", "register-image", "--image-location", f"{bucket}/shell/root.img.manifest.xml", "--name", unique("shell")
    )["ImageId"]
    ec2 = cloud_a.client("ec2")
    image = wait_image(ec2, image_id)
    assert image["State"] == "available", image
    # The manifest's kernel and ramdisk are the image's.
    assert image["KernelId"] == images["kernel"] and image["RamdiskId"] == images["ramdisk"]
    assert image["ImageLocation"] == f"{bucket}/shell/root.img.manifest.xml"
    assert unbundled_objects(cloud_a, image_id) == 1
    run = ec2.run_instances(
        ImageId=image_id, MinCount=1, MaxCount=1, InstanceType="m1.small",
        UserData=user_data('echo "BUNDLE-SHELL-OK $(imds meta-data/ami-id)"'),
    )
    iid = run["Instances"][0]["InstanceId"]
    try:
        wait_states(ec2, [iid], "running")
        wait_console(ec2, iid, f"BUNDLE-SHELL-OK {image_id}")
    finally:
        ec2.terminate_instances(InstanceIds=[iid])
    wait_states(ec2, [iid], "terminated", timeout=60)
    # Deregistering keeps the bundle's objects and drops the cloud's copy.
    ec2.deregister_image(ImageId=image_id)
    keys = [o["Key"] for o in cloud_a.client("s3").list_objects_v2(Bucket=bucket)["Contents"]]
    assert f"shell/root.img.manifest.xml" in keys and "shell/root.img.part.00" in keys
    assert unbundled_objects(cloud_a, image_id) == 0


def test_kernel_and_ramdisk_bundles(cloud_a, tmp_path):
    """`--kernel true` / `--ramdisk true` bundles register as aki- / ari-,
    and a machine bundle naming them is paravirtual with them."""
    env = cli_env(cloud_a)
    kernel = bytearray(os.urandom(9000))
    kernel[0x202:0x206] = b"HdrS"
    (tmp_path / "vmlinuz-b").write_bytes(bytes(kernel))
    (tmp_path / "initrd-b").write_bytes(gzip.compress(b"070701" + os.urandom(4000)))
    (tmp_path / "disk-b.img").write_bytes(bytes(1 << 16))
    ec2 = cloud_a.client("ec2")
    bucket = unique("kr")

    def bundle_register(name: str, *extra) -> dict:
        out = tmp_path / f"out-{name}"
        mallee("bundle", "image", tmp_path / name, "-d", out, *extra, env=env)
        mallee("bundle", "upload", out / f"{name}.manifest.xml", "-b", bucket, env=env)
        image_id = ec2.register_image(ImageLocation=f"{bucket}/{name}.manifest.xml", Name=unique(name))["ImageId"]
        return wait_image(ec2, image_id)

    aki = bundle_register("vmlinuz-b", "--kernel", "true")
    ari = bundle_register("initrd-b", "--ramdisk", "true")
    assert aki["ImageId"].startswith("aki-") and aki["State"] == "available", aki
    assert ari["ImageId"].startswith("ari-") and ari["State"] == "available", ari
    ami = bundle_register("disk-b.img", "--kernel", aki["ImageId"], "--ramdisk", ari["ImageId"])
    assert ami["State"] == "available", ami
    assert (ami["KernelId"], ami["RamdiskId"], ami["VirtualizationType"]) == (aki["ImageId"], ari["ImageId"], "paravirtual")


# ---------------------------------------------------------------- broken bundles


def resign(manifest: Path, key: Path):
    """Signs the manifest's text again, as a user with that key would."""
    text = manifest.read_text()
    signed = re.search(r"<machine_configuration>.*</machine_configuration>", text).group(0) + re.search(
        r"<image>.*</image>", text
    ).group(0)
    sig = subprocess.run(
        ["openssl", "dgst", "-sha1", "-sign", str(key)], input=signed.encode(), capture_output=True, check=True
    ).stdout.hex()
    manifest.write_text(re.sub(r"<signature>[0-9a-f]*</signature>", f"<signature>{sig}</signature>", text))


def test_broken_bundles_fail_with_their_reason_and_leave_nothing(cloud_a, cloud_b, tmp_path):
    env = cli_env(cloud_a)
    disk = tmp_path / "small.img"
    disk.write_bytes(os.urandom(200_000))
    s3 = cloud_a.client("s3")
    ec2 = cloud_a.client("ec2")
    bucket = unique("broken")
    s3.create_bucket(Bucket=bucket)
    other = cloud_a.create_account()

    def bundle(case: str, *extra) -> Path:
        out = tmp_path / case
        mallee("bundle", "image", disk, "-d", out, "--prefix", case, *extra, env=env)
        return out / f"{case}.manifest.xml"

    def register(case: str, manifest: Path, flip_part: bool = False) -> dict:
        for part in sorted(manifest.parent.glob(f"{case}.part.*")):
            data = bytearray(part.read_bytes())
            if flip_part:
                data[len(data) // 2] ^= 0xFF
            s3.put_object(Bucket=bucket, Key=f"{case}/{part.name}", Body=bytes(data))
        s3.put_object(Bucket=bucket, Key=f"{case}/{manifest.name}", Body=manifest.read_bytes())
        image_id = ec2.register_image(ImageLocation=f"{bucket}/{case}/{manifest.name}", Name=unique(case))["ImageId"]
        return wait_image(ec2, image_id)

    key = cloud_a.cred_dir / "admin-pk.pem"
    cases = {}
    cases["tampered"] = register("tampered", bundle("tampered"), flip_part=True)
    wrong = bundle("digest")
    wrong.write_text(re.sub(r'(<image>.*?<digest algorithm="SHA1">)[0-9a-f]{40}', r"\g<1>" + "0" * 40, wrong.read_text()))
    resign(wrong, key)
    cases["digest"] = register("digest", wrong)
    cases["account"] = register("account", bundle("account", "--user", other["account_id"]))
    cases["cloud"] = register("cloud", bundle("cloud", "--ec2cert", cloud_b.cred_dir / "cloud-cert.pem"))
    unsigned = bundle("signature")
    unsigned.write_text(unsigned.read_text().replace("<size>200000</size>", "<size>200001</size>"))
    cases["signature"] = register("signature", unsigned)

    reasons = {
        "tampered": "part tampered.part.00 does not match its digest",
        "digest": "the image digest does not match the manifest",
        "account": f"the manifest's user {other['account_id']} is not the registering account",
        "cloud": "not encrypted for this cloud's certificate",
        "signature": "signature does not verify",
    }
    for case, image in cases.items():
        assert image["State"] == "failed", (case, image)
        assert image["StateReason"]["Code"] == "Client.InvalidManifest", (case, image)
        assert reasons[case] in image["StateReason"]["Message"], (case, image)
        assert unbundled_objects(cloud_a, image["ImageId"]) == 0, case
    with pytest.raises(Exception, match="failed"):
        ec2.run_instances(ImageId=cases["digest"]["ImageId"], MinCount=1, MaxCount=1)
    # Not even a temporary file of the failed unbundles stays.
    assert not any((cloud_a.data_dir / "objects" / "tmp").iterdir())
    # A document that is no bundle manifest is refused at once.
    s3.put_object(Bucket=bucket, Key="junk.manifest.xml", Body=b"<manifest><version>1999</version></manifest>")
    with pytest.raises(Exception, match="InvalidManifest"):
        ec2.register_image(ImageLocation=f"{bucket}/junk.manifest.xml", Name=unique("junk"))


# ---------------------------------------------------------------- kill, restart, migrate


def test_a_registration_killed_mid_unbundle_resumes_after_restart(cloud_b, tmp_path):
    env = cli_env(cloud_b)
    disk = tmp_path / "two-parts.img"
    disk.write_bytes(os.urandom(12 * 1024 * 1024))
    out = tmp_path / "b"
    mallee("bundle", "image", disk, "-d", out, env=env)
    mallee("bundle", "upload", out / "two-parts.img.manifest.xml", "-b", "resume/x", env=env)
    ec2 = cloud_b.client("ec2")
    image_id = ec2.register_image(ImageLocation="resume/x/two-parts.img.manifest.xml", Name=unique("resume"))["ImageId"]
    deadline = time.monotonic() + 60
    while "paused at bundle.part" not in cloud_b.log_text():
        assert time.monotonic() < deadline, cloud_b.log_tail(40)
        time.sleep(0.2)
    assert ec2.describe_images(ImageIds=[image_id])["Images"][0]["State"] == "pending"
    cloud_b.kill()
    cloud_b.env.pop("MALLEE_PAUSE_AT")
    cloud_b.start()
    ec2 = cloud_b.client("ec2")
    image = wait_image(ec2, image_id)
    assert image["State"] == "available", image
    with sqlite3.connect(cloud_b.data_dir / "mallee.db") as db:
        rows = db.execute("SELECT size FROM objects WHERE bucket = ?", (SYSTEM_BUCKET,)).fetchall()
    assert rows == [(disk.stat().st_size,)], "one unbundled copy, whole"


def test_the_seeds_migration_from_cloud_a_boots_on_cloud_b(cloud_a, cloud_b, tmp_path):
    env_a, env_b = cli_env(cloud_a), cli_env(cloud_b)
    images_a = cloud_a.images
    root = guest_images() / "root.img"
    # On A: bundle, upload, register.
    mallee(
        "bundle", "image", root, "-d", tmp_path / "a", "--kernel", images_a["kernel"], "--ramdisk", images_a["ramdisk"],
        env=env_a,
    )
    mallee("bundle", "upload", tmp_path / "a" / "root.img.manifest.xml", "-b", "seed-a/appscale", env=env_a)
    ec2_a = cloud_a.client("ec2")
    on_a = ec2_a.register_image(ImageLocation="seed-a/appscale/root.img.manifest.xml", Name=unique("seed"))["ImageId"]
    assert wait_image(ec2_a, on_a)["State"] == "available"
    # Back down from A, and open with the user's key (ec2-unbundle).
    mallee("bundle", "download", "seed-a/appscale/root.img.manifest.xml", "-d", tmp_path / "dl", env=env_a)
    mallee("bundle", "unbundle", tmp_path / "dl" / "root.img.manifest.xml", "-d", tmp_path / "img", env=env_a)
    assert hashlib.sha1((tmp_path / "img" / "root.img").read_bytes()).digest() == hashlib.sha1(root.read_bytes()).digest()
    # To B: the user's certificate is uploaded there, the key re-wrapped
    # for B's certificate, the manifest made B's account's with B's kernel.
    images_b = register_guest(cloud_b)
    iam_b = cloud_b.client("iam")
    iam_b.upload_signing_certificate(CertificateBody=(cloud_a.cred_dir / "admin-cert.pem").read_text())
    mallee(
        "bundle", "migrate-manifest", tmp_path / "dl" / "root.img.manifest.xml",
        "--ec2cert", cloud_b.cred_dir / "cloud-cert.pem", "--user", cloud_b.admin["account_id"],
        "--kernel", images_b["kernel"], "--ramdisk", images_b["ramdisk"],
        env=env_a,
    )
    mallee("bundle", "upload", tmp_path / "dl" / "root.img.manifest.xml", "-b", "seed-b", env=env_b)
    ec2_b = cloud_b.client("ec2")
    on_b = ec2_b.register_image(ImageLocation="seed-b/root.img.manifest.xml", Name=unique("seed"))["ImageId"]
    image = wait_image(ec2_b, on_b)
    assert image["State"] == "available", image
    assert image["KernelId"] == images_b["kernel"]
    run = ec2_b.run_instances(
        ImageId=on_b, MinCount=1, MaxCount=1, InstanceType="m1.small",
        UserData=user_data('echo "BUNDLE-SEED-OK $(imds meta-data/ami-id)"'),
    )
    iid = run["Instances"][0]["InstanceId"]
    try:
        wait_states(ec2_b, [iid], "running")
        wait_console(ec2_b, iid, f"BUNDLE-SEED-OK {on_b}")
    finally:
        ec2_b.terminate_instances(InstanceIds=[iid])
    wait_states(ec2_b, [iid], "terminated", timeout=60)
