// Security groups (with a rule editor over the security-group-rule API)
// and elastic IP addresses.

import * as api from "./api.js";
import { h, newPage, poll, table, region, fill, form, button, link, showInfo } from "./ui.js";
import { listInstances } from "./instances.js";

async function groupsPage() {
  const m = newPage("Security groups");
  const vpcs = await api.ec2("DescribeVpcs").then((d) => api.items(d, "vpcSet").map((v) => [api.text(v, "vpcId"), `${api.text(v, "vpcId")} ${api.text(v, "cidrBlock")}${api.text(v, "isDefault") === "true" ? " (default)" : ""}`]), () => []);
  m.append(
    form(
      "create-group",
      [
        { name: "name", label: "Name", required: true },
        { name: "description", label: "Description", required: true },
        { name: "vpc", label: "VPC", options: vpcs },
      ],
      "Create security group",
      async (v) => {
        const d = await api.ec2("CreateSecurityGroup", { GroupName: v.name, GroupDescription: v.description, VpcId: v.vpc });
        location.hash = `#/groups/${api.text(d, "groupId")}`;
      },
    ),
    region("groups"),
  );
  poll(async () => {
    const d = await api.ec2("DescribeSecurityGroups");
    fill(
      "groups",
      table(
        [
          { title: "Group", id: (g) => api.text(g, "groupName"), value: (g) => link(`#/groups/${api.text(g, "groupId")}`, api.text(g, "groupId")) },
          { title: "Name", value: (g) => api.text(g, "groupName") },
          { title: "VPC", value: (g) => api.text(g, "vpcId") },
          { title: "Description", value: (g) => api.text(g, "groupDescription") },
          { title: "Inbound rules", value: (g) => String(api.items(g, "ipPermissions").length) },
        ],
        api.items(d, "securityGroupInfo"),
      ),
    );
  }, 10000);
}

const portText = (r) => {
  const [from, to] = [api.text(r, "fromPort"), api.text(r, "toPort")];
  if (api.text(r, "ipProtocol") === "-1" || from === "-1") return "all";
  return from === to ? from : `${from}–${to}`;
};

async function groupPage(match) {
  const id = match[1];
  const m = newPage(`Security group ${id}`);
  const redraw = async () => {
    const d = await api.ec2("DescribeSecurityGroupRules", { "Filter.1.Name": "group-id", "Filter.1.Value.1": id });
    const rules = api.items(d, "securityGroupRuleSet");
    const show = (egress) =>
      table(
        [
          { title: "Rule", id: (r) => api.text(r, "securityGroupRuleId"), value: (r) => api.text(r, "securityGroupRuleId") },
          { title: "Protocol", value: (r) => (api.text(r, "ipProtocol") === "-1" ? "all" : api.text(r, "ipProtocol")) },
          { title: "Ports", value: portText },
          { title: egress ? "Destination" : "Source", value: (r) => api.text(r, "cidrIpv4") || api.text(r, "cidrIpv6") || api.text(r, "referencedGroupInfo/groupId") },
          { title: "Description", value: (r) => api.text(r, "description") },
          {
            title: "",
            value: (r) =>
              button("Remove", async () => {
                await api.ec2(egress ? "RevokeSecurityGroupEgress" : "RevokeSecurityGroupIngress", { GroupId: id, "SecurityGroupRuleId.1": api.text(r, "securityGroupRuleId") });
                await redraw();
              }, { class: "danger" }),
          },
        ],
        rules.filter((r) => (api.text(r, "isEgress") === "true") === egress),
        "No rules.",
      );
    fill("ingress", show(false));
    fill("egress", show(true));
  };
  const ruleForm = (egress) =>
    form(
      egress ? "add-egress" : "add-ingress",
      [
        { name: "protocol", label: "Protocol", options: [["tcp", "TCP"], ["udp", "UDP"], ["icmp", "ICMP"], ["-1", "All traffic"]] },
        { name: "from", label: "From port (ICMP type)", type: "number", value: "22" },
        { name: "to", label: "To port (ICMP code)", type: "number", value: "22" },
        { name: "source", label: egress ? "Destination CIDR or group" : "Source CIDR or group", value: "0.0.0.0/0", required: true },
        { name: "description", label: "Description" },
      ],
      egress ? "Add outbound rule" : "Add inbound rule",
      async (v) => {
        const p = { GroupId: id, "IpPermissions.1.IpProtocol": v.protocol };
        if (v.protocol !== "-1") {
          p["IpPermissions.1.FromPort"] = v.from;
          p["IpPermissions.1.ToPort"] = v.to;
        }
        if (v.source.startsWith("sg-")) {
          p["IpPermissions.1.Groups.1.GroupId"] = v.source;
          p["IpPermissions.1.Groups.1.Description"] = v.description;
        } else if (v.source.includes(":")) {
          p["IpPermissions.1.Ipv6Ranges.1.CidrIpv6"] = v.source;
          p["IpPermissions.1.Ipv6Ranges.1.Description"] = v.description;
        } else {
          p["IpPermissions.1.IpRanges.1.CidrIp"] = v.source;
          p["IpPermissions.1.IpRanges.1.Description"] = v.description;
        }
        await api.ec2(egress ? "AuthorizeSecurityGroupEgress" : "AuthorizeSecurityGroupIngress", p);
        showInfo("Rule added.");
        await redraw();
      },
    );
  m.append(
    h("p", { class: "crumbs" }, link("#/groups", "← Security groups")),
    button("Delete group", async () => {
      if (!confirm(`Delete ${id}?`)) return;
      await api.ec2("DeleteSecurityGroup", { GroupId: id });
      location.hash = "#/groups";
    }, { class: "danger" }),
    h("h2", {}, "Inbound rules"),
    region("ingress"),
    ruleForm(false),
    h("h2", {}, "Outbound rules"),
    region("egress"),
    ruleForm(true),
  );
  poll(redraw, 10000);
}

async function addressesPage() {
  const m = newPage("Elastic IPs");
  const redraw = async () => {
    const [d, instances] = await Promise.all([api.ec2("DescribeAddresses"), listInstances()]);
    const live = instances.filter((i) => ["pending", "running", "stopping", "stopped"].includes(api.text(i, "instanceState/name")));
    const choices = live.map((i) => api.text(i, "instanceId"));
    fill(
      "addresses",
      table(
        [
          { title: "Address", id: (a) => api.text(a, "publicIp"), value: (a) => api.text(a, "publicIp") },
          { title: "Allocation", value: (a) => api.text(a, "allocationId") },
          { title: "Instance", value: (a) => api.text(a, "instanceId") },
          { title: "Private IP", value: (a) => api.text(a, "privateIpAddress") },
          {
            title: "",
            value: (a) => {
              const alloc = api.text(a, "allocationId");
              if (api.text(a, "associationId")) {
                return button("Disassociate", async () => {
                  await api.ec2("DisassociateAddress", { AssociationId: api.text(a, "associationId") });
                  await redraw();
                }, { class: "secondary" });
              }
              const select = h("select", { "data-keep": `${alloc}-instance` }, choices.map((c) => h("option", { value: c }, c)));
              return h(
                "span",
                {},
                select,
                button("Associate", async () => {
                  await api.ec2("AssociateAddress", { AllocationId: alloc, InstanceId: select.value });
                  await redraw();
                }, { class: "secondary" }),
                button("Release", async () => {
                  await api.ec2("ReleaseAddress", { AllocationId: alloc });
                  await redraw();
                }, { class: "danger" }),
              );
            },
          },
        ],
        api.items(d, "addressesSet"),
        "No elastic IPs.",
      ),
    );
  };
  m.append(
    button("Allocate address", async () => {
      const d = await api.ec2("AllocateAddress", { Domain: "vpc" });
      showInfo(`Allocated ${api.text(d, "publicIp")}.`);
      await redraw();
    }, { id: "allocate-address" }),
    region("addresses"),
  );
  poll(redraw, 10000);
}

export const routes = [
  [/^\/groups$/, groupsPage],
  [/^\/groups\/(sg-[0-9a-f]+)$/, groupPage],
  [/^\/addresses$/, addressesPage],
];
