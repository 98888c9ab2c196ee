"""`mallee up`: first start, credential files, restart, clean shutdown; `mallee doctor`."""

import json
import os
import re
import shutil
import signal
import subprocess

import pytest

from conftest import MALLEE_BIN, REGION, AwsCli, run_mallee, ssh_keygen, unique

ADMIN_FIELDS = {"account_id", "account_name", "user_name", "access_key_id", "secret_access_key", "endpoint", "region"}


def parse_eucarc(path):
    """Source eucarc in bash and return the resulting environment."""
    out = subprocess.run(
        ["bash", "-c", f'set -a; . "{path}" >/dev/null; env -0'],
        capture_output=True,
        env={"PATH": os.environ["PATH"]},
        check=True,
    ).stdout.decode()
    return dict(item.split("=", 1) for item in out.split("\0") if "=" in item)


def test_first_start_writes_admin_credentials(mallee_factory):
    srv = mallee_factory("first")
    admin = srv.admin
    assert ADMIN_FIELDS <= set(admin), f"admin.json lacks {ADMIN_FIELDS - set(admin)}"
    assert admin["account_name"] == "eucalyptus"
    assert admin["user_name"] == "admin"
    assert re.fullmatch(r"\d{12}", admin["account_id"]), admin["account_id"]
    assert re.fullmatch(r"[A-Z0-9]{16,128}", admin["access_key_id"]), admin["access_key_id"]
    assert len(admin["secret_access_key"]) >= 20
    assert admin["region"] == REGION
    assert admin["endpoint"].rstrip("/").startswith(f"http://127.0.0.1:{srv.port}")
    for name in ("admin.json", "eucarc", "aws-config", "boto3.env"):
        assert (srv.cred_dir / name).is_file(), f"missing credentials/{name}"
    # the credentials really work
    regions = srv.client().describe_regions()["Regions"]
    assert [r["RegionName"] for r in regions] == [REGION]


def test_credentials_printed_to_stdout(mallee_factory):
    srv = mallee_factory("printed")
    log = srv.log_text()
    admin = srv.admin
    assert admin["access_key_id"] in log, "access key id not printed at first start"
    assert admin["secret_access_key"] in log, "secret key not printed at first start"


def test_eucarc_exports(mallee_factory):
    srv = mallee_factory("eucarc")
    admin = srv.admin
    env = parse_eucarc(srv.cred_dir / "eucarc")
    for var in ("EC2_URL", "S3_URL", "EUARE_URL", "TOKEN_URL"):
        assert env.get(var, "").startswith("http://127.0.0.1:"), f"{var}={env.get(var)!r}"
    assert env["AWS_ACCESS_KEY_ID"] == admin["access_key_id"]
    assert env["AWS_SECRET_ACCESS_KEY"] == admin["secret_access_key"]
    assert env["EC2_ACCESS_KEY"] == admin["access_key_id"]
    assert env["EC2_SECRET_KEY"] == admin["secret_access_key"]
    assert env["EC2_ACCOUNT_NUMBER"] == admin["account_id"]
    assert env["AWS_DEFAULT_REGION"] == REGION
    # EC2_URL is usable as an endpoint (the Eucalyptus /services/compute path or root)
    cli = AwsCli(srv, creds={"access_key_id": env["AWS_ACCESS_KEY_ID"], "secret_access_key": env["AWS_SECRET_ACCESS_KEY"]})
    out = cli.json("ec2", "describe-regions", endpoint=env["EC2_URL"])
    assert [r["RegionName"] for r in out["Regions"]] == [REGION]


def test_aws_config_profile_works_with_awscli(mallee_factory, tmp_path):
    srv = mallee_factory("awscfg")
    cfg = srv.cred_dir / "aws-config"
    text = cfg.read_text()
    assert "[profile mallee]" in text
    cli = AwsCli(srv, home=tmp_path)
    env = cli.env({"AWS_CONFIG_FILE": str(cfg)})
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        env.pop(k)
    proc = subprocess.run(
        [
            __import__("sys").executable, "-m", "awscli", "--profile", "mallee",
            "--endpoint-url", srv.endpoint, "--output", "json", "ec2", "describe-availability-zones",
        ],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    zones = json.loads(proc.stdout)["AvailabilityZones"]
    assert zones[0]["RegionName"] == REGION


def test_boto3_env_file(mallee_factory):
    srv = mallee_factory("boto3env")
    admin = srv.admin
    env = {}
    for line in (srv.cred_dir / "boto3.env").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        k, v = line.removeprefix("export ").split("=", 1)
        env[k.strip()] = v.strip().strip('"').strip("'")
    assert env["AWS_ACCESS_KEY_ID"] == admin["access_key_id"]
    assert env["AWS_SECRET_ACCESS_KEY"] == admin["secret_access_key"]
    c = srv.client(creds={"access_key_id": env["AWS_ACCESS_KEY_ID"], "secret_access_key": env["AWS_SECRET_ACCESS_KEY"]})
    assert c.describe_regions()["Regions"][0]["RegionName"] == REGION


def test_sigterm_clean_exit_and_restart_keeps_data(mallee_factory, tmp_path):
    srv = mallee_factory("restart")
    admin1 = srv.admin
    ec2 = srv.client()
    name = unique("durable")
    kp = ec2.create_key_pair(
        KeyName=name,
        TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": "k", "Value": "v"}]}],
    )
    imported = ec2.import_key_pair(
        KeyName=name + "-imp",
        PublicKeyMaterial=ssh_keygen(tmp_path, "ed25519")[1].encode(),
    )
    ec2.create_tags(Resources=[imported["KeyPairId"]], Tags=[{"Key": "x", "Value": "y"}])

    rc = srv.stop(signal.SIGTERM)
    assert rc == 0, f"SIGTERM exit code {rc}\n{srv.log_tail()}"

    srv.start()
    assert srv.admin == admin1, "admin credentials changed across restart"
    ec2 = srv.client()
    got = {k["KeyName"]: k for k in ec2.describe_key_pairs()["KeyPairs"]}
    assert got[name]["KeyPairId"] == kp["KeyPairId"]
    assert got[name]["KeyFingerprint"] == kp["KeyFingerprint"]
    assert got[name].get("Tags") == [{"Key": "k", "Value": "v"}]
    assert got[name + "-imp"]["KeyFingerprint"] == imported["KeyFingerprint"]
    assert got[name + "-imp"].get("Tags") == [{"Key": "x", "Value": "y"}]


def test_sigint_clean_exit(mallee_factory):
    srv = mallee_factory("sigint")
    rc = srv.stop(signal.SIGINT)
    assert rc == 0, f"SIGINT exit code {rc}\n{srv.log_tail()}"


def test_restart_keeps_accounts_and_keys(mallee_factory):
    srv = mallee_factory("acctkeep")
    other = srv.create_account()
    ec2b = srv.client(creds=other)
    ec2b.create_key_pair(KeyName="b-key")
    srv.restart()
    ec2b = srv.client(creds=other)
    assert [k["KeyName"] for k in ec2b.describe_key_pairs()["KeyPairs"]] == ["b-key"]


def test_log_format_json(mallee_factory):
    srv = mallee_factory("jsonlog", extra_args=["--log-format", "json"])
    srv.client().describe_regions()
    srv.stop()
    lines = [l for l in srv.log_text().splitlines() if l.startswith("{")]
    assert lines, "no JSON log lines with --log-format json"
    for l in lines:
        json.loads(l)


# ---------------------------------------------------------------- doctor

DOCTOR_TOOLS = ("qemu-system-x86_64", "qemu-img", "nft", "dnsmasq")


def _which_any(tool):
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return shutil.which(tool, path=path)


def test_doctor_reports_host():
    proc = run_mallee("doctor", timeout=120)
    out = proc.stdout + proc.stderr
    for tool in DOCTOR_TOOLS:
        assert tool in out, f"doctor does not mention {tool}\n{out}"
    all_present = all(_which_any(t) for t in DOCTOR_TOOLS)
    if os.environ.get("CI") == "true" or all_present:
        assert proc.returncode == 0, f"doctor exit {proc.returncode} although all tools are installed\n{out}"
    else:
        assert proc.returncode != 0, f"doctor exit 0 although some tool is missing\n{out}"
        assert "apt-get install" in out


def test_doctor_missing_tools_prints_apt_line(tmp_path):
    empty = tmp_path / "emptybin"
    empty.mkdir()
    env = {"PATH": str(empty), "HOME": str(tmp_path), "LANG": "C"}
    proc = run_mallee("doctor", env=env, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"doctor exit 0 with an empty PATH\n{out}"
    assert "apt-get install" in out, out
    m = re.search(r"apt-get install[^\n]*", out)
    line = m.group(0)
    # doctor also looks in /usr/sbin and /sbin (nft and dnsmasq live there and
    # are often missing from a user's PATH); tools found there are not missing.
    def in_sbin(tool):
        return any(os.access(os.path.join(d, tool), os.X_OK) for d in ("/usr/sbin", "/sbin"))

    tools = (("qemu-system-x86_64", "qemu-system-x86"), ("qemu-img", "qemu-utils"), ("nft", "nftables"), ("dnsmasq", "dnsmasq-base"))
    for tool, pkg in tools:
        if in_sbin(tool):
            assert pkg not in line, f"{pkg} reported missing although {tool} is in sbin: {line!r}"
        else:
            assert pkg in line, f"{pkg} missing from {line!r}"


def test_binary_exists():
    assert MALLEE_BIN.exists(), MALLEE_BIN
