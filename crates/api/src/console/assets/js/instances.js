// Instances: the list (refreshed while shown, so states follow the cloud),
// launching with image, type, key pair, security groups, subnet and
// user-data, and one instance's details, actions and console output.

import * as api from "./api.js";
import { h, newPage, poll, table, region, fill, form, button, badge, link, when, showInfo } from "./ui.js";

export function decodeBase64(b64) {
  const bin = atob(b64 || "");
  return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
}

function encodeBase64(textValue) {
  let bin = "";
  for (const b of new TextEncoder().encode(textValue)) bin += String.fromCharCode(b);
  return btoa(bin);
}

const nameTag = (i) => {
  const t = api.items(i, "tagSet").find((x) => api.text(x, "key") === "Name");
  return t ? api.text(t, "value") : "";
};

export async function listInstances(params = {}) {
  const d = await api.ec2("DescribeInstances", params);
  return api.items(d, "reservationSet").flatMap((r) => api.items(r, "instancesSet"));
}

async function instancesPage() {
  const m = newPage("Instances");
  m.append(h("p", {}, link("#/instances/launch", "Launch instances")), region("instances"));
  poll(async () => {
    const list = await listInstances();
    fill(
      "instances",
      table(
        [
          { title: "Instance", id: (i) => api.text(i, "instanceId"), value: (i) => link(`#/instances/${api.text(i, "instanceId")}`, api.text(i, "instanceId")) },
          { title: "Name", value: nameTag },
          { title: "State", value: (i) => badge(api.text(i, "instanceState/name")) },
          { title: "Type", value: (i) => api.text(i, "instanceType") },
          { title: "Image", value: (i) => api.text(i, "imageId") },
          { title: "Zone", value: (i) => api.text(i, "placement/availabilityZone") },
          { title: "Private IP", value: (i) => api.text(i, "privateIpAddress") },
          { title: "Public IP", value: (i) => api.text(i, "ipAddress") },
          { title: "Launched", value: (i) => when(api.text(i, "launchTime")) },
        ],
        list,
        "No instances yet.",
      ),
    );
  });
}

async function options(action, params, set, value, label) {
  try {
    const d = await api.ec2(action, params);
    return api.items(d, set).map((x) => [value(x), label(x)]);
  } catch (_) {
    return []; // a list the user may not read leaves its choice empty
  }
}

async function launchPage() {
  const m = newPage("Launch instances");
  const [images, types, keys, groups, subnets] = await Promise.all([
    options("DescribeImages", {}, "imagesSet", (x) => api.text(x, "imageId"), (x) => `${api.text(x, "imageId")} ${api.text(x, "name")}`),
    options("DescribeInstanceTypes", {}, "instanceTypeSet", (x) => api.text(x, "instanceType"), (x) => `${api.text(x, "instanceType")} (${api.text(x, "vCpuInfo/defaultVCpus")} vCPU, ${api.text(x, "memoryInfo/sizeInMiB")} MiB)`),
    options("DescribeKeyPairs", {}, "keySet", (x) => api.text(x, "keyName"), (x) => api.text(x, "keyName")),
    options("DescribeSecurityGroups", {}, "securityGroupInfo", (x) => api.text(x, "groupId"), (x) => `${api.text(x, "groupId")} ${api.text(x, "groupName")}`),
    options("DescribeSubnets", {}, "subnetSet", (x) => api.text(x, "subnetId"), (x) => `${api.text(x, "subnetId")} ${api.text(x, "cidrBlock")} ${api.text(x, "availabilityZone")}`),
  ]);
  const machine = images.filter(([id]) => id.startsWith("ami-") || id.startsWith("emi-"));
  m.append(
    form(
      "launch",
      [
        { name: "image", label: "Image", options: machine, required: true },
        { name: "type", label: "Instance type", options: types, value: "t2.micro" },
        { name: "key", label: "Key pair", options: [["", "(none)"], ...keys] },
        { name: "groups", label: "Security groups", options: groups, multiple: true },
        { name: "subnet", label: "Subnet", options: [["", "(default)"], ...subnets] },
        { name: "name", label: "Name tag" },
        { name: "count", label: "Count", type: "number", value: "1" },
        { name: "userData", label: "User data", type: "textarea" },
      ],
      "Launch",
      async (v) => {
        const params = {
          ImageId: v.image,
          InstanceType: v.type,
          KeyName: v.key,
          SecurityGroupId: v.groups.length ? v.groups : undefined,
          SubnetId: v.subnet,
          MinCount: v.count || "1",
          MaxCount: v.count || "1",
          UserData: v.userData ? encodeBase64(v.userData) : undefined,
        };
        if (v.name) {
          params["TagSpecification.1.ResourceType"] = "instance";
          params["TagSpecification.1.Tag.1.Key"] = "Name";
          params["TagSpecification.1.Tag.1.Value"] = v.name;
        }
        const d = await api.ec2("RunInstances", params);
        const ids = api.items(d, "instancesSet").map((i) => api.text(i, "instanceId"));
        location.hash = ids.length === 1 ? `#/instances/${ids[0]}` : "#/instances";
        showInfo(`Launched ${ids.join(", ")}.`);
      },
    ),
  );
}

async function instancePage(match) {
  const id = match[1];
  const m = newPage(`Instance ${id}`);
  const act = (action, label, cls) =>
    button(label, async () => {
      await api.ec2(action, { "InstanceId.1": id });
      showInfo(`${label}: request accepted for ${id}.`);
    }, { id: `do-${action}`, class: cls });
  m.append(
    h("p", { class: "crumbs" }, link("#/instances", "← Instances")),
    h("div", { class: "actions" }, act("StopInstances", "Stop", "secondary"), act("StartInstances", "Start", "secondary"), act("RebootInstances", "Reboot", "secondary"), act("TerminateInstances", "Terminate", "danger")),
    region("details"),
    h("h2", {}, "Console output"),
    region("console"),
  );
  poll(async () => {
    const [i] = await listInstances({ "InstanceId.1": id });
    if (!i) return fill("details", h("p", {}, "No such instance."));
    const rows = [
      ["State", badge(api.text(i, "instanceState/name"))],
      ["Name", nameTag(i)],
      ["Type", api.text(i, "instanceType")],
      ["Image", api.text(i, "imageId")],
      ["Key pair", api.text(i, "keyName")],
      ["Zone", api.text(i, "placement/availabilityZone")],
      ["VPC / subnet", `${api.text(i, "vpcId")} / ${api.text(i, "subnetId")}`],
      ["Private IP", api.text(i, "privateIpAddress")],
      ["Public IP", api.text(i, "ipAddress")],
      ["Security groups", api.items(i, "groupSet").map((g) => `${api.text(g, "groupId")} (${api.text(g, "groupName")})`).join(", ")],
      ["Launched", when(api.text(i, "launchTime"))],
      ["State reason", api.text(i, "stateReason/message")],
    ];
    fill("details", h("dl", { class: "details", id: "instance-details" }, rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", { "data-field": k }, v)])));
    const out = await api.ec2("GetConsoleOutput", { InstanceId: id });
    const textOut = decodeBase64(api.text(out, "output"));
    fill("console", h("pre", { class: "console", id: "console-output" }, textOut || "(no output yet)"));
  }, 3000);
}

export const routes = [
  [/^\/instances$/, instancesPage],
  [/^\/instances\/launch$/, launchPage],
  [/^\/instances\/(i-[0-9a-f]+)$/, instancePage],
];
