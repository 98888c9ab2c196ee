"""The web console at /console/ in a real browser: headless Chromium
(Debian's `chromium` and `chromium-driver`) driven by Selenium.

One cloud for the module (the shared session cloud) and one instance.
In the order a user goes: sign in with an access key; create a key pair
and download its private key; open port 80 in a new security group;
launch the test guest with user-data and that key and group, see it
`running` and its user-data's output on the console page, and fetch its
web page on port 80 with curl; attach and detach a volume; allocate an
elastic IP, associate it (the web page answers on it), release it; create a
bucket, upload a 20 MiB file and watch the progress bar, make the object
public and fetch it with curl, share a presigned link; look at every
other page (the administrators' too); terminate the instance. Then an
IAM user signs in with a password (choosing a new one, as its login
profile requires) and is refused an action its policy does not allow, with EC2's own error code and message on the page.

Every page is saved as a screenshot under $MALLEE_CONSOLE_SCREENSHOTS
(or the test's temporary directory). The browser is required: without
it the test fails, it never skips.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests
from computeutil import register_guest, wait_states

try:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:  # reported by the fixture, never skipped
    webdriver = None

BOOT = float(os.environ.get("MALLEE_BOOT_TIMEOUT", "180"))
WAIT = 30
# The instance's user-data: a web server on port 80 (which the console's
# security group opens), and a line on the console only a run script
# prints (the script itself says $((6*7)), not 42).
WEB = "#!/bin/sh\nmkdir -p /www\necho console-web > /www/index.html\nbusybox httpd -p 80 -h /www\necho CONSOLE-USERDATA-$((6*7))\n"


def http_get(ip: str, timeout: float = 60) -> str:
    """The body of http://IP/ once it answers (curl, from the host)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = subprocess.run(
            ["curl", "-sS", "--noproxy", "*", "-m", "3", f"http://{ip}/"], capture_output=True, text=True, timeout=10
        )
        if last.returncode == 0:
            return last.stdout.strip()
        time.sleep(1)
    raise AssertionError(f"http://{ip}/ did not answer in {timeout}s: {last.stderr if last else ''}")


# ---------------------------------------------------------------- browser


def _need_browser():
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    missing = [n for n, p in (("chromium", chromium), ("chromium-driver (chromedriver)", driver)) if not p]
    if webdriver is None:
        missing.append("selenium (pip, requirements-test.txt)")
    if missing:
        pytest.fail(
            "the console test needs a real browser: install "
            + ", ".join(missing)
            + " (`scripts/install-deps test` installs the Debian packages)"
        )
    return chromium, driver


class Console:
    """The browser on the console, with the helpers the steps share."""

    def __init__(self, driver, base: str, shots: Path, downloads: Path):
        self.d = driver
        self.base = base
        self.shots = shots
        self.downloads = downloads

    def go(self, route: str):
        self.d.get(f"{self.base}/console/#{route}")
        self.wait(lambda d: d.find_element(By.CSS_SELECTOR, "main h1"), what=f"the page {route}", errors_ok=True)

    def wait(self, until, timeout: float = WAIT, what: str = "", errors_ok: bool = False):
        def probe(d):
            if not errors_ok and self.error_banner():
                raise AssertionError(f"waiting for {what or until}, the console shows an error: {self.error_banner()}")
            try:
                return until(d)
            except (StaleElementReferenceException, WebDriverException):
                return False

        try:
            return WebDriverWait(self.d, timeout, poll_frequency=0.2).until(probe)
        except Exception as e:
            raise AssertionError(
                f"{what or until} not seen within {timeout}s; banner: {self.banner()!r}; "
                f"page: {self.d.find_element(By.ID, 'main').text[:1500]!r}"
            ) from e

    def el(self, css: str):
        return self.wait(lambda d: d.find_element(By.CSS_SELECTOR, css), what=css, errors_ok=True)

    def fill(self, form: str, **fields):
        for name, value in fields.items():
            box = self.el(f"#{form}-{name}")
            if box.tag_name == "select":
                sel = Select(box)
                values = value if isinstance(value, list) else [value]
                for v in values:
                    sel.select_by_value(v)
            else:
                box.clear()
                box.send_keys(value)

    def submit(self, form: str):
        self.el(f"#{form}-submit").click()

    def banner(self) -> str:
        try:
            b = self.d.find_element(By.ID, "banner")
            return b.text if b.is_displayed() else ""
        except WebDriverException:
            return ""

    def error_banner(self) -> str:
        try:
            b = self.d.find_element(By.ID, "banner")
            return b.text if "error" in (b.get_attribute("class") or "") and b.is_displayed() else ""
        except WebDriverException:
            return ""

    def no_error(self):
        assert not self.error_banner(), f"the console shows an error: {self.error_banner()}"

    def shot(self, name: str):
        self.d.save_screenshot(str(self.shots / f"{name}.png"))

    def text(self, css: str) -> str:
        return self.el(css).text

    def row(self, region: str, row_id: str):
        return self.el(f"#{region} tr[data-id='{row_id}']")

    # Pages redraw while polled: these find the row afresh on each try.
    def choose(self, region: str, row_id: str, value: str):
        def probe(d):
            row = d.find_element(By.CSS_SELECTOR, f"#{region} tr[data-id='{row_id}']")
            Select(row.find_element(By.TAG_NAME, "select")).select_by_value(value)
            return True

        self.wait(probe, what=f"{value} chosen in {row_id}")

    def press(self, region: str, row_id: str, label: str):
        def probe(d):
            row = d.find_element(By.CSS_SELECTOR, f"#{region} tr[data-id='{row_id}']")
            row.find_element(By.XPATH, f".//button[text()='{label}']").click()
            return True

        self.wait(probe, what=f"{label} of {row_id}")


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    given = os.environ.get("MALLEE_CONSOLE_SCREENSHOTS")
    path = Path(given) if given else tmp_path_factory.mktemp("console-screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser(server, shots, tmp_path_factory):
    chromium, driver_path = _need_browser()
    downloads = tmp_path_factory.mktemp("console-downloads")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1440,1000", "--disable-gpu"):
        opts.add_argument(arg)
    opts.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "safebrowsing.enabled": False,
        },
    )
    service = webdriver.ChromeService(executable_path=driver_path)
    drv = webdriver.Chrome(options=opts, service=service)
    try:
        drv.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        yield Console(drv, server.endpoint, shots, downloads)
    finally:
        drv.quit()


@pytest.fixture(scope="module")
def guest(server):
    return register_guest(server)


# ---------------------------------------------------------------- the server side


def test_the_console_is_served_with_its_headers(server):
    r = requests.get(f"{server.endpoint}/console/", timeout=10)
    assert r.status_code == 200 and "text/html" in r.headers["Content-Type"]
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    js = requests.get(f"{server.endpoint}/console/js/main.js", timeout=10)
    assert js.headers["Content-Type"].startswith("text/javascript")
    assert js.headers["Cache-Control"] == "no-cache"
    again = requests.get(
        f"{server.endpoint}/console/js/main.js", headers={"If-None-Match": js.headers["ETag"]}, timeout=10
    )
    assert again.status_code == 304
    assert requests.get(f"{server.endpoint}/console/nope.js", timeout=10).status_code == 404
    # Sign-in's errors are IAM's (a wrong password: the browser test).
    bad = requests.post(f"{server.endpoint}/console/signin", data={"account": "x", "username": "y"}, timeout=30)
    assert bad.status_code == 400 and "<Code>MissingParameter</Code>" in bad.text, bad.text
    # Five wrong passwords in a row, then the user waits, whatever the
    # password (made-up names are counted the same as real ones).
    guess = {"account": "no-such-account", "username": "mallory", "password": "Guess-Horse9"}
    for _ in range(5):
        wrong = requests.post(f"{server.endpoint}/console/signin", data=guess, timeout=30)
        assert wrong.status_code == 403 and "<Code>AccessDenied</Code>" in wrong.text, wrong.text
    locked = requests.post(f"{server.endpoint}/console/signin", data=guess, timeout=30)
    assert locked.status_code == 400 and "<Code>Throttling</Code>" in locked.text, locked.text
    assert "try again in 30 seconds" in locked.text, locked.text
    # A signed request for /console/… is S3's: a bucket may be named so.
    s3 = server.client("s3")
    s3.create_bucket(Bucket="console")
    s3.put_object(Bucket="console", Key="js/main.js", Body=b"mine")
    assert s3.get_object(Bucket="console", Key="js/main.js")["Body"].read() == b"mine"
    s3.delete_object(Bucket="console", Key="js/main.js")
    s3.delete_bucket(Bucket="console")


# ---------------------------------------------------------------- the user's walk


STATE: dict = {}


def test_sign_in_with_an_access_key(browser, server, guest):
    c = browser
    c.go("/")
    c.shot("signin")
    key = server.admin
    c.fill("signin-keys", accessKeyId=key["access_key_id"], secretAccessKey=key["secret_access_key"])
    c.submit("signin-keys")
    c.wait(lambda d: "Dashboard" in d.find_element(By.CSS_SELECTOR, "main h1").text, what="the dashboard")
    c.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-card='Instances']"), what="the dashboard's counts")
    assert server.admin["account_id"] in c.text("#who")
    c.no_error()
    c.shot("dashboard")


def test_create_a_key_pair_and_download_its_private_key(browser, server):
    c = browser
    name = f"console-{uuid.uuid4().hex[:6]}"
    c.go("/keypairs")
    c.fill("create-key", name=name, type="rsa")
    c.submit("create-key")
    pem = c.downloads / f"{name}.pem"
    c.wait(lambda d: pem.exists() and pem.stat().st_size > 0, what=f"the download {pem}")
    body = pem.read_text()
    assert "PRIVATE KEY-----" in body, body[:200]
    c.row("keys", name)
    ec2 = server.client("ec2")
    assert [k["KeyName"] for k in ec2.describe_key_pairs(KeyNames=[name])["KeyPairs"]] == [name]
    c.shot("keypairs")
    STATE["key"] = name


def test_open_port_80_in_a_security_group(browser, server):
    c = browser
    name = f"console-web-{uuid.uuid4().hex[:6]}"
    c.go("/groups")
    c.fill("create-group", name=name, description="web from the console")
    c.submit("create-group")
    c.wait(lambda d: "/groups/sg-" in d.current_url, what="the new group's page")
    gid = c.d.current_url.rsplit("/", 1)[1]
    c.el("#add-ingress")
    c.fill("add-ingress", protocol="tcp", **{"from": "80", "to": "80"}, source="0.0.0.0/0", description="http")
    c.submit("add-ingress")
    c.wait(lambda d: "80" in d.find_element(By.ID, "ingress").text, what="the port 80 rule")
    ec2 = server.client("ec2")
    perms = ec2.describe_security_groups(GroupIds=[gid])["SecurityGroups"][0]["IpPermissions"]
    assert any(
        p["IpProtocol"] == "tcp" and p["FromPort"] == 80 and p["ToPort"] == 80
        and {"CidrIp": "0.0.0.0/0", "Description": "http"} in p["IpRanges"]
        for p in perms
    ), perms
    c.no_error()
    c.shot("security-group")
    c.go("/groups")
    c.row("groups", name)
    c.shot("security-groups")
    STATE["group"] = gid


def test_launch_an_instance_with_user_data_and_see_it_run(browser, server, guest):
    c = browser
    c.go("/instances/launch")
    c.el("#launch")
    c.shot("launch")
    c.fill(
        "launch",
        image=guest["pv"],
        type="t1.micro",
        key=STATE["key"],
        groups=[STATE["group"]],
        name="console-guest",
        userData=WEB,
    )
    c.submit("launch")
    c.wait(lambda d: "/instances/i-" in d.current_url, what="the new instance's page")
    iid = c.d.current_url.rsplit("/", 1)[1]
    STATE["instance"] = iid
    # The page polls: the state moves to running without a reload.
    c.wait(
        lambda d: d.find_element(By.CSS_SELECTOR, "[data-field='State']").text == "running",
        timeout=BOOT,
        what="state running on the instance page",
    )
    c.wait(
        lambda d: "CONSOLE-USERDATA-42" in d.find_element(By.ID, "console-output").text,
        timeout=BOOT,
        what="the user-data's output in the console output",
    )
    details = c.text("#instance-details")
    assert STATE["key"] in details and STATE["group"] in details, details
    # Port 80, opened in the console, reaches the instance's web server.
    public_ip = c.text("[data-field='Public IP']")
    assert public_ip, details
    assert http_get(public_ip) == "console-web"
    c.no_error()
    c.shot("instance")
    c.go("/instances")
    c.wait(lambda d: "running" in c.row("instances", iid).text, what="running in the list")
    c.shot("instances")
    c.go("/")
    c.wait(lambda d: "1 running" in d.find_element(By.CSS_SELECTOR, "[data-card='Instances']").text, what="the running instance on the dashboard")
    c.shot("dashboard")


def test_attach_and_detach_a_volume_and_move_an_elastic_ip(browser, server):
    c = browser
    iid = STATE["instance"]
    ec2 = server.client("ec2")
    before = {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]}
    c.go("/volumes")
    c.fill("create-volume", size="1")
    c.submit("create-volume")
    new = c.wait(lambda d: {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]} - before, what="the new volume")
    (vol,) = new
    c.wait(lambda d: "available" in c.row("volumes", vol).text, timeout=60, what="the volume available")
    c.choose("volumes", vol, iid)
    c.press("volumes", vol, "Attach")
    c.wait(lambda d: "in-use" in c.row("volumes", vol).text and "attached" in c.row("volumes", vol).text, timeout=120, what="the volume attached")
    c.no_error()
    c.shot("volumes")
    c.press("volumes", vol, "Detach")
    c.wait(lambda d: "available" in c.row("volumes", vol).text, timeout=120, what="the volume detached")
    c.press("volumes", vol, "Delete")
    c.d.switch_to.alert.accept()
    c.wait(lambda d: not d.find_elements(By.CSS_SELECTOR, f"#volumes tr[data-id='{vol}']"), what="the volume deleted")

    c.go("/addresses")
    c.el("#allocate-address").click()
    ip = c.wait(lambda d: d.find_element(By.CSS_SELECTOR, "#addresses tbody tr").get_attribute("data-id"), what="the new address")
    c.choose("addresses", ip, iid)
    c.press("addresses", ip, "Associate")
    has = lambda label: lambda d: c.row("addresses", ip).find_elements(By.XPATH, f".//button[text()='{label}']")  # noqa: E731
    c.wait(has("Disassociate"), what="the address associated")
    assert [a["InstanceId"] for a in ec2.describe_addresses(PublicIps=[ip])["Addresses"]] == [iid]
    assert http_get(ip) == "console-web"
    c.no_error()
    c.shot("addresses")
    c.press("addresses", ip, "Disassociate")
    c.wait(has("Associate"), what="the address disassociated")
    c.press("addresses", ip, "Release")
    c.wait(lambda d: not d.find_elements(By.CSS_SELECTOR, f"#addresses tr[data-id='{ip}']"), what="the address released")
    assert ip not in [a["PublicIp"] for a in ec2.describe_addresses()["Addresses"]]


def test_bucket_upload_with_progress_make_public_and_share(browser, server, tmp_path):
    c = browser
    bucket = f"console-{uuid.uuid4().hex[:8]}"
    c.go("/buckets")
    c.fill("create-bucket", name=bucket)
    c.submit("create-bucket")
    c.row("buckets", bucket)
    c.shot("buckets")
    c.go(f"/buckets/{bucket}/")
    c.fill("new-folder", name="reports")
    c.submit("new-folder")
    c.row("objects", "reports/")
    c.go(f"/buckets/{bucket}/reports/")
    data = os.urandom(20 * 1024 * 1024)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    # Every value the progress bar shows, recorded in the page.
    c.d.execute_script(
        """
        window.__progress = [];
        const p = document.getElementById('upload-progress');
        new MutationObserver(() => { if (!p.hidden) window.__progress.push(p.value); })
          .observe(p, {attributes: true});
        """
    )
    c.el("#upload-file").send_keys(str(path))
    c.submit("upload")
    c.wait(lambda d: "uploaded reports/big.bin" in d.find_element(By.ID, "upload-percent").text, timeout=120, what="the upload")
    seen = c.d.execute_script("return window.__progress")
    progress = c.el("#upload-progress")
    assert progress.is_displayed() and progress.get_attribute("value") == "100"
    assert any(0 < v < 100 for v in seen), f"no intermediate progress shown: {seen}"
    c.no_error()
    c.shot("bucket-upload")
    s3 = server.client("s3")
    assert s3.head_object(Bucket=bucket, Key="reports/big.bin")["ContentLength"] == len(data)

    c.el("#objects span[data-key='reports/big.bin'] button.download").click()
    saved = c.downloads / "big.bin"
    c.wait(lambda d: saved.exists() and saved.stat().st_size == len(data), timeout=60, what="the downloaded object")
    assert saved.read_bytes() == data

    c.el("#objects span[data-key='reports/big.bin'] button.make-public").click()
    url = c.wait(lambda d: d.find_element(By.ID, "public-url").get_attribute("value"), what="the public URL")
    fetched = tmp_path / "fetched.bin"
    curl = subprocess.run(["curl", "-sS", "-f", "-o", str(fetched), url], capture_output=True, text=True, timeout=60)
    assert curl.returncode == 0, curl.stderr
    assert hashlib.sha256(fetched.read_bytes()).digest() == hashlib.sha256(data).digest()

    c.el("#objects span[data-key='reports/big.bin'] button.share").click()
    link = c.wait(lambda d: d.find_element(By.ID, "share-url").get_attribute("value"), what="the presigned link")
    assert "X-Amz-Signature=" in link
    head = subprocess.run(["curl", "-sS", "-f", "-r", "0-15", link], capture_output=True, timeout=60)
    assert head.returncode == 0 and head.stdout == data[:16], head.stderr
    c.shot("bucket-share")
    STATE["bucket"] = bucket


def test_every_other_page_shows_without_error(browser, server):
    c = browser
    pages = {
        "images": ("/images", "images"),
        "snapshots": ("/snapshots", "snapshots"),
        "admin-zones": ("/admin/zones", "zones"),
        "admin-accounts": ("/admin/accounts", "accounts"),
        "admin-metal": ("/admin/metal", "metal-systems"),
    }
    for name, (route, region) in pages.items():
        c.go(route)
        c.wait(lambda d: d.find_element(By.ID, region).find_elements(By.XPATH, "./*"), what=f"{route} filled")
        c.no_error()
        c.shot(name)
    c.go("/admin/accounts")
    c.wait(lambda d: server.admin["account_id"] in d.find_element(By.ID, "accounts").text, what="the admin account")
    c.go("/admin/nodes")
    c.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#nodes .state-up"), what="an up node")
    # The page is DescribeNodes: the node that runs the instance lists it.
    nodes = server.raw({"Action": "DescribeNodes"})
    assert nodes.status == 200, nodes.describe()
    assert STATE["instance"] in [e.text for e in nodes.find_all("instanceId")], nodes.text
    ran = [n for n in nodes.find_all("item") if any(e.text == STATE["instance"] for e in n.iter() if e.tag.endswith("instanceId"))]
    node_name = next(e.text for e in ran[0] if e.tag.endswith("nodeName"))
    assert "up" in c.row("nodes", node_name).text
    c.no_error()
    c.shot("admin-nodes")


def test_terminate_the_instance(browser, server):
    c = browser
    iid = STATE["instance"]
    c.go(f"/instances/{iid}")
    c.el("#do-TerminateInstances").click()
    c.wait(
        lambda d: d.find_element(By.CSS_SELECTOR, "[data-field='State']").text in ("shutting-down", "terminated"),
        what="the instance shutting down",
    )
    c.no_error()
    wait_states(server.client("ec2"), [iid], "terminated")
    c.wait(lambda d: d.find_element(By.CSS_SELECTOR, "[data-field='State']").text == "terminated", what="terminated on the page")
    c.shot("instance-terminated")


def test_password_sign_in_and_a_refusal_with_aws_message(browser, server):
    c = browser
    iam = server.client("iam")
    user = f"viewer-{uuid.uuid4().hex[:6]}"
    password = "Console-View-42!"
    iam.create_user(UserName=user)
    iam.create_login_profile(UserName=user, Password=password, PasswordResetRequired=True)
    iam.put_user_policy(
        UserName=user,
        PolicyName="read-only",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["ec2:Describe*"], "Resource": "*"}]}
        ),
    )
    c.el("#signout").click()
    c.el("#tab-password").click()
    account = server.admin["account_id"]
    c.fill("signin-password", account=account, username=user, password="wrong-Password-1")
    c.submit("signin-password")
    c.wait(lambda d: "AccessDenied" in c.error_banner(), what="the refused password", errors_ok=True)
    assert "authentication information is incorrect" in c.error_banner()
    # The profile asks for a new password first, as AWS's console does.
    c.fill("signin-password", account=account, username=user, password=password)
    c.submit("signin-password")
    c.wait(lambda d: "PasswordResetRequired" in c.error_banner(), what="the reset asked for", errors_ok=True)
    assert c.el("#signin-password-newPassword").is_displayed()
    c.fill("signin-password", newPassword="Console-View-43!")
    c.submit("signin-password")
    c.wait(lambda d: "Dashboard" in d.find_element(By.CSS_SELECTOR, "main h1").text, what="the dashboard after password sign-in")
    assert f"user/{user}" in c.text("#who")
    assert iam.get_login_profile(UserName=user)["LoginProfile"]["PasswordResetRequired"] is False
    assert not c.d.find_element(By.ID, "admin-nav").is_displayed(), "no administration for a viewer"
    c.shot("dashboard-viewer")
    # Allowed: reading. Refused: creating, with EC2's own code and message.
    c.go("/keypairs")
    c.row("keys", STATE["key"])
    c.fill("create-key", name="not-allowed", type="rsa")
    c.submit("create-key")
    c.wait(lambda d: "UnauthorizedOperation" in c.error_banner(), what="the refusal", errors_ok=True)
    shown = c.error_banner()
    assert "You are not authorized to perform this operation." in shown, shown
    assert "Encoded authorization failure message" in shown, shown
    assert "request " in shown, "the request id is shown"
    assert "not-allowed" not in [k["KeyName"] for k in server.client("ec2").describe_key_pairs()["KeyPairs"]]
    c.shot("refused")
    # The administrators' pages are the API's to refuse too.
    c.go("/admin/accounts")
    c.wait(lambda d: "AccessDenied" in c.error_banner(), what="ListAccounts refused", errors_ok=True)
    assert f"is not authorized to perform: iam:ListAccounts" in c.error_banner()
    c.el("#signout").click()
