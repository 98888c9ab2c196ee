"""Ansible's `amazon.aws.ec2_security_group` module, unchanged (the
`ansible` package from PyPI), creates and deletes a security group against
the session server: once with the account's admin key and once with an
IAM user allowed only `ec2:*`. The module asks `sts:GetCallerIdentity` who
it is before anything else. `ec2_vpc_net` and `ec2_vpc_subnet` make a
custom VPC with a subnet, and a second run of the same playbook changes
nothing. Each run is one `ansible-playbook` on localhost (connection
local, this venv's Python) whose JSON report the test reads; everything
Ansible writes stays in the test's tmp dir."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from conftest import REGION, ZONE

ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

EC2_ONLY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}],
}

# One play on localhost, every amazon.aws module pointed at the cloud; the
# tasks follow.
PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  module_defaults:
    group/amazon.aws.aws:
      endpoint_url: "{{ endpoint }}"
      region: "{{ region }}"
      access_key: "{{ access_key }}"
      secret_key: "{{ secret_key }}"
  tasks:
"""

# Create (with a rule), create again (nothing to change), look it up,
# delete, delete again (nothing to delete).
PLAYBOOK = PLAY + """    - name: create
      amazon.aws.ec2_security_group: &group
        name: "{{ group }}"
        description: made by ansible
        rules:
          - proto: tcp
            ports: [22]
            cidr_ip: 10.0.0.0/8
        state: present
      register: created
    - name: create again
      amazon.aws.ec2_security_group: *group
    - name: look up
      amazon.aws.ec2_security_group_info:
        filters:
          group-id: "{{ created.group_id }}"
    - name: delete
      amazon.aws.ec2_security_group: &gone
        group_id: "{{ created.group_id }}"
        state: absent
    - name: delete again
      amazon.aws.ec2_security_group: *gone
"""


def run_playbook(tmp: Path, endpoint: str, key: dict, group: str, playbook: str = PLAYBOOK,
                 extra: dict | None = None) -> dict:
    """Runs `playbook`; returns each task's result by name."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "playbook.yml").write_text(playbook)
    (tmp / "vars.json").write_text(json.dumps({
        "endpoint": endpoint,
        "region": REGION,
        "access_key": key["access_key_id"],
        "secret_key": key["secret_access_key"],
        "group": group,
        **(extra or {}),
    }))
    home = tmp / "home"
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("ANSIBLE_", "AWS_", "EC2_", "BOTO"))
    }
    env.update({
        "HOME": str(home),
        "ANSIBLE_HOME": str(home / ".ansible"),
        "ANSIBLE_LOCAL_TEMP": str(tmp / "local-tmp"),
        "ANSIBLE_REMOTE_TEMP": str(tmp / "remote-tmp"),
        "ANSIBLE_CONFIG": str(tmp / "ansible.cfg"),
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_RETRY_FILES_ENABLED": "false",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_NOCOLOR": "true",
        "ANSIBLE_FORCE_COLOR": "false",
        "AWS_CONFIG_FILE": str(tmp / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "aws-credentials"),
    })
    (tmp / "ansible.cfg").write_text("[defaults]\n")
    proc = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "-e", f"@{tmp / 'vars.json'}", str(tmp / "playbook.yml")],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"ansible-playbook exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    results = {
        task["task"]["name"]: task["hosts"]["localhost"]
        for play in report["plays"]
        for task in play["tasks"]
    }
    failed = {name: r.get("msg") for name, r in results.items() if r.get("failed")}
    assert proc.returncode == 0 and not failed, (failed, proc.stderr)
    return results


def check_run(results: dict, ec2, group: str):
    created = results["create"]
    assert created["changed"] and created["group_name"] == group
    gid = created["group_id"]
    assert gid.startswith("sg-")
    ingress = created["ip_permissions"]
    assert [(p["ip_protocol"], p["from_port"], p["to_port"], [r["cidr_ip"] for r in p["ip_ranges"]])
            for p in ingress] == [("tcp", 22, 22, ["10.0.0.0/8"])], ingress
    assert not results["create again"]["changed"]
    assert [g["group_id"] for g in results["look up"]["security_groups"]] == [gid]
    assert results["delete"]["changed"]
    assert not results["delete again"]["changed"]
    assert ec2.describe_security_groups(Filters=[{"Name": "group-id", "Values": [gid]}])["SecurityGroups"] == []


def test_security_group_created_and_deleted_by_the_admin(server, tmp_path):
    group = f"ansible-{uuid.uuid4().hex[:8]}"
    results = run_playbook(tmp_path / "admin", server.endpoint, server.admin, group)
    check_run(results, server.client("ec2"), group)


def test_security_group_created_and_deleted_by_an_ec2_only_user(server, tmp_path):
    iam = server.client("iam")
    user = f"ansible-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="ec2-only", PolicyDocument=json.dumps(EC2_ONLY))
    made = iam.create_access_key(UserName=user)["AccessKey"]
    key = {"access_key_id": made["AccessKeyId"], "secret_access_key": made["SecretAccessKey"]}
    group = f"ansible-{uuid.uuid4().hex[:8]}"
    results = run_playbook(tmp_path / "user", server.endpoint, key, group)
    check_run(results, server.client("ec2"), group)


# ec2_launch_template: create, run again (nothing to change), a new version
# when the data changes, run that again (nothing), then delete.
TEMPLATE_PLAYBOOK = PLAY + """    - name: create
      amazon.aws.ec2_launch_template: &v1
        name: "{{ group }}"
        image_id: ami-0123456789abcdef0
        instance_type: t2.micro
        key_name: some-key
        security_group_ids: ["{{ sg }}"]
        disable_api_termination: true
        block_device_mappings:
          - device_name: /dev/sdf
            ebs:
              volume_size: 2
              delete_on_termination: true
        tag_specifications:
          - resource_type: instance
            tags:
              Name: web
          - resource_type: volume
            tags:
              team: a
        tags:
          owner: ansible
    - name: create again
      amazon.aws.ec2_launch_template: *v1
    - name: change
      amazon.aws.ec2_launch_template: &v2
        <<: *v1
        instance_type: m1.large
    - name: change again
      amazon.aws.ec2_launch_template: *v2
    - name: delete
      amazon.aws.ec2_launch_template:
        name: "{{ group }}"
        state: absent
"""


def test_launch_template_playbook_is_idempotent(server, tmp_path):
    ec2 = server.client("ec2")
    sg = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"]
    name = f"ansible-{uuid.uuid4().hex[:8]}"
    results = run_playbook(tmp_path, server.endpoint, server.admin, name, TEMPLATE_PLAYBOOK, {"sg": sg})
    created = results["create"]
    assert created["changed"]
    assert created["latest_version"] == 1 and created["default_version"] == 1
    assert created["template"]["tags"] == {"owner": "ansible"}
    assert not results["create again"]["changed"], results["create again"]
    changed = results["change"]
    assert changed["changed"] and changed["latest_version"] == 2 and changed["default_version"] == 2
    assert changed["latest_template"]["launch_template_data"]["instance_type"] == "m1.large"
    assert not results["change again"]["changed"], results["change again"]
    assert results["delete"]["changed"]
    assert ec2.describe_launch_templates(Filters=[{"Name": "launch-template-name", "Values": [name]}])[
        "LaunchTemplates"] == []


# A custom VPC with a subnet (`state` present or absent); run twice
# present, the second run must change nothing.
VPC_PLAYBOOK = PLAY + """    - name: vpc
      amazon.aws.ec2_vpc_net:
        name: "{{ group }}"
        cidr_block: 10.80.0.0/16
        tags:
          env: test
        state: present
      register: vpc
    - name: subnet
      amazon.aws.ec2_vpc_subnet:
        vpc_id: "{{ vpc.vpc.id }}"
        cidr: 10.80.1.0/24
        az: "{{ zone }}"
        map_public: true
        tags:
          Name: "{{ group }}-a"
        state: "{{ state }}"
    - name: vpc gone
      when: state == "absent"
      amazon.aws.ec2_vpc_net:
        name: "{{ group }}"
        cidr_block: 10.80.0.0/16
        state: absent
"""


def test_vpc_and_subnet_made_by_ansible_twice_change_once(server, tmp_path):
    ec2 = server.client("ec2")
    name = f"ansible-{uuid.uuid4().hex[:8]}"
    run = lambda tag, state: run_playbook(  # noqa: E731
        tmp_path / tag, server.endpoint, server.admin, name, VPC_PLAYBOOK, {"zone": ZONE, "state": state}
    )
    try:
        first = run("first", "present")
        assert first["vpc"]["changed"] and first["subnet"]["changed"]
        vpc = first["vpc"]["vpc"]
        assert vpc["cidr_block"] == "10.80.0.0/16" and vpc["is_default"] is False
        assert vpc["tags"] == {"Name": name, "env": "test"}
        subnet = first["subnet"]["subnet"]
        assert subnet["vpc_id"] == vpc["id"] and subnet["cidr_block"] == "10.80.1.0/24"
        assert subnet["map_public_ip_on_launch"] is True and subnet["availability_zone"] == ZONE
        (described,) = ec2.describe_subnets(SubnetIds=[subnet["id"]])["Subnets"]
        assert described["MapPublicIpOnLaunch"] is True
        assert {t["Key"]: t["Value"] for t in described["Tags"]} == {"Name": f"{name}-a"}
        assert ec2.describe_vpc_attribute(VpcId=vpc["id"], Attribute="enableDnsHostnames")[
            "EnableDnsHostnames"]["Value"] is True
        second = run("second", "present")
        assert not second["vpc"]["changed"] and not second["subnet"]["changed"], second
        assert second["vpc"]["vpc"]["id"] == vpc["id"]
        assert second["subnet"]["subnet"]["id"] == subnet["id"]
    finally:
        gone = run("gone", "absent")
    assert gone["subnet"]["changed"] and gone["vpc gone"]["changed"]
    assert ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [name]}])["Vpcs"] == []
