"""Ansible's `amazon.aws.ec2_vpc_igw` and `amazon.aws.ec2_vpc_route_table`
modules, unchanged, against the session server (the runner of
test_ansible.py): in a fresh account whose default VPC's gateway the test
detaches and deletes first, one playbook makes and attaches a gateway and
a route table (0.0.0.0/0 → that gateway, associated with the default
subnet) and a second run of the same playbook reports no change; a third
playbook removes both."""

import uuid

from test_ansible import run_playbook

MODULE_DEFAULTS = """
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

PRESENT = MODULE_DEFAULTS + """
    - name: gateway
      amazon.aws.ec2_vpc_igw:
        vpc_id: "{{ vpc_id }}"
        tags: {Name: "{{ group }}"}
        state: present
      register: igw
    - name: route table
      amazon.aws.ec2_vpc_route_table:
        vpc_id: "{{ vpc_id }}"
        tags: {Name: "{{ group }}"}
        subnets: ["{{ subnet_id }}"]
        routes:
          - dest: 0.0.0.0/0
            gateway_id: "{{ igw.gateway_id }}"
        state: present
"""

ABSENT = MODULE_DEFAULTS + """
    - name: route table
      amazon.aws.ec2_vpc_route_table:
        vpc_id: "{{ vpc_id }}"
        lookup: tag
        tags: {Name: "{{ group }}"}
        state: absent
    - name: gateway
      amazon.aws.ec2_vpc_igw:
        vpc_id: "{{ vpc_id }}"
        state: absent
"""


def test_gateway_and_route_table_idempotent(server, tmp_path):
    creds = server.create_account()
    ec2 = server.client("ec2", creds=creds)
    vpc_id = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    subnet_id = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    (default,) = ec2.describe_internet_gateways()["InternetGateways"]
    ec2.detach_internet_gateway(InternetGatewayId=default["InternetGatewayId"], VpcId=vpc_id)
    ec2.delete_internet_gateway(InternetGatewayId=default["InternetGatewayId"])
    key = {"access_key_id": creds["access_key_id"], "secret_access_key": creds["secret_access_key"]}
    name = f"ansible-{uuid.uuid4().hex[:8]}"
    ids = {"vpc_id": vpc_id, "subnet_id": subnet_id}

    first = run_playbook(tmp_path / "first", server.endpoint, key, name, PRESENT, ids)
    assert first["gateway"]["changed"] and first["route table"]["changed"]
    igw = first["gateway"]["gateway_id"]
    (made,) = ec2.describe_internet_gateways(InternetGatewayIds=[igw])["InternetGateways"]
    assert made["Attachments"] == [{"State": "available", "VpcId": vpc_id}]
    (table,) = ec2.describe_route_tables(Filters=[{"Name": "tag:Name", "Values": [name]}])["RouteTables"]
    assert [a.get("SubnetId") for a in table["Associations"]] == [subnet_id]
    assert {(r["DestinationCidrBlock"], r["GatewayId"]) for r in table["Routes"]} == {
        ("172.31.0.0/16", "local"), ("0.0.0.0/0", igw)}

    second = run_playbook(tmp_path / "second", server.endpoint, key, name, PRESENT, ids)
    assert not second["gateway"]["changed"], second["gateway"]
    assert not second["route table"]["changed"], second["route table"]

    gone = run_playbook(tmp_path / "gone", server.endpoint, key, name, ABSENT, ids)
    assert gone["route table"]["changed"] and gone["gateway"]["changed"]
    assert ec2.describe_internet_gateways()["InternetGateways"] == []
    assert [t["RouteTableId"] for t in ec2.describe_route_tables()["RouteTables"]] != [table["RouteTableId"]]
