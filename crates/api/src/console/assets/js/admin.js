// The administrator's pages: nodes with health and capacity, zones with
// their free room per instance type, accounts, and bare-metal groups and
// systems. Each is an API action only a cloud administrator is allowed;
// anyone else sees the API's refusal.

import * as api from "./api.js";
import { h, newPage, poll, table, region, fill, badge } from "./ui.js";

const ofTotal = (n, used, total) => `${api.text(n, used)} / ${api.text(n, total)}`;

async function nodesPage() {
  const m = newPage("Nodes");
  m.append(region("nodes"));
  poll(async () => {
    const d = await api.ec2("DescribeNodes");
    fill(
      "nodes",
      table(
        [
          { title: "Node", id: (n) => api.text(n, "nodeName"), value: (n) => api.text(n, "nodeName") },
          { title: "Zone", value: (n) => api.text(n, "availabilityZone") },
          { title: "Health", value: (n) => badge(api.text(n, "health")) },
          { title: "Schedulable", value: (n) => (api.text(n, "disabled") === "true" ? "disabled" : api.text(n, "schedulable")) },
          { title: "Heartbeat", value: (n) => `${(Number(api.text(n, "heartbeatAgeMillis")) / 1000).toFixed(1)} s ago` },
          { title: "Accel", value: (n) => api.text(n, "accelerator") },
          { title: "Cores used / max", value: (n) => ofTotal(n, "capacity/usedCores", "capacity/maxCores") },
          { title: "Memory MiB used / max", value: (n) => ofTotal(n, "capacity/usedMemoryMib", "capacity/maxMemoryMib") },
          { title: "Disk GiB used / max", value: (n) => ofTotal(n, "capacity/usedDiskGib", "capacity/maxDiskGib") },
          { title: "Instances", value: (n) => String(api.items(n, "instanceSet").length) },
          { title: "Version", value: (n) => api.text(n, "version") },
        ],
        api.items(d, "nodeSet"),
        "No node has registered.",
      ),
    );
  }, 5000);
}

async function zonesPage() {
  const m = newPage("Zones");
  m.append(region("zones"));
  poll(async () => {
    // Eucalyptus' `verbose`: each zone followed by its capacity rows.
    const d = await api.ec2("DescribeAvailabilityZones", { "ZoneName.1": "verbose" });
    const rows = api.items(d, "availabilityZoneInfo").map((z) => ({ name: api.text(z, "zoneName"), state: api.text(z, "zoneState"), id: api.text(z, "zoneId"), metal: api.text(z, "messageSet/item/message") }));
    fill(
      "zones",
      table(
        [
          { title: "Zone", id: (z) => z.name, value: (z) => z.name },
          { title: "State / free and max", value: (z) => (z.name.startsWith("|-") ? h("code", {}, z.state) : badge(z.state)) },
          { title: "Zone ID", value: (z) => z.id },
          { title: "Bare metal", value: (z) => z.metal },
        ],
        rows,
      ),
    );
  }, 10000);
}

async function accountsPage() {
  const m = newPage("Accounts");
  m.append(region("accounts"));
  poll(async () => {
    const d = await api.iam("ListAccounts");
    const result = api.find(d, "ListAccountsResult");
    fill(
      "accounts",
      table(
        [
          { title: "Account", id: (a) => api.text(a, "AccountName"), value: (a) => api.text(a, "AccountName") },
          { title: "ID", value: (a) => api.text(a, "AccountId") },
        ],
        api.items(result, "Accounts"),
      ),
    );
  }, 15000);
}

async function metalPage() {
  const m = newPage("Bare metal");
  m.append(h("h2", {}, "Groups"), region("metal-groups"), h("h2", {}, "Systems"), region("metal-systems"));
  poll(async () => {
    const d = await api.metal("DescribeSystemGroups");
    fill(
      "metal-groups",
      table(
        [
          { title: "Group", id: (g) => api.text(g, "name"), value: (g) => api.text(g, "name") },
          { title: "Description", value: (g) => api.text(g, "description") },
          { title: "Free / total", value: (g) => `${api.text(g, "free")} / ${api.text(g, "total")}` },
          { title: "Wipe", value: (g) => api.text(g, "wipe") },
        ],
        api.items(d, "groupSet"),
        "No groups.",
      ),
    );
    fill(
      "metal-systems",
      table(
        [
          { title: "System", id: (s) => api.text(s, "name"), value: (s) => api.text(s, "name") },
          { title: "Group", value: (s) => api.text(s, "group") },
          { title: "State", value: (s) => badge(api.text(s, "state")) },
          { title: "Step / reason", value: (s) => api.text(s, "step") || api.text(s, "reason") },
          { title: "Owner", value: (s) => api.text(s, "owner") },
          { title: "Profile", value: (s) => api.text(s, "profile") },
          { title: "MAC", value: (s) => api.text(s, "mac") },
          { title: "IP", value: (s) => api.text(s, "ip") },
          { title: "Power", value: (s) => api.text(s, "powerDriver") },
          { title: "Netboot", value: (s) => api.text(s, "netboot") },
        ],
        api.items(d, "systemSet"),
        "No systems.",
      ),
    );
  }, 5000);
}

export const routes = [
  [/^\/admin\/nodes$/, nodesPage],
  [/^\/admin\/zones$/, zonesPage],
  [/^\/admin\/accounts$/, accountsPage],
  [/^\/admin\/metal$/, metalPage],
];
