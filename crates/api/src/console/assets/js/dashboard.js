// The dashboard: what the account has, counted from the same Describe and
// List calls the other pages make, refreshed while it is shown.

import * as api from "./api.js";
import { h, newPage, poll, region, fill } from "./ui.js";

function card(label, count, href, detail = "") {
  return h("div", { class: "card", "data-card": label }, h("a", { href }, h("div", { class: "n" }, count), label, detail ? h("div", {}, detail) : null));
}

async function counts() {
  // Each count is independent: one refused call does not blank the rest.
  const safe = (p, f) => p.then(f, (e) => (e.code ? "—" : Promise.reject(e)));
  const [inst, vols, snaps, keys, groups, addrs, imgs, bkts] = await Promise.all([
    safe(api.ec2("DescribeInstances"), (d) => {
      const states = {};
      for (const r of api.items(d, "reservationSet"))
        for (const i of api.items(r, "instancesSet")) {
          const s = api.text(i, "instanceState/name");
          states[s] = (states[s] || 0) + 1;
        }
      return states;
    }),
    safe(api.ec2("DescribeVolumes"), (d) => api.items(d, "volumeSet").length),
    safe(api.ec2("DescribeSnapshots", { "Owner.1": "self" }), (d) => api.items(d, "snapshotSet").length),
    safe(api.ec2("DescribeKeyPairs"), (d) => api.items(d, "keySet").length),
    safe(api.ec2("DescribeSecurityGroups"), (d) => api.items(d, "securityGroupInfo").length),
    safe(api.ec2("DescribeAddresses"), (d) => api.items(d, "addressesSet").length),
    safe(api.ec2("DescribeImages", { "Owner.1": "self" }), (d) => api.items(d, "imagesSet").length),
    safe(api.s3Xml("GET", "", ""), (d) => api.items(d, "Buckets").length || d.getElementsByTagName("Bucket").length),
  ]);
  const running = typeof inst === "object" ? inst.running || 0 : inst;
  const total = typeof inst === "object" ? Object.values(inst).reduce((a, b) => a + b, 0) - (inst.terminated || 0) : inst;
  const detail = typeof inst === "object" ? Object.entries(inst).filter(([s]) => s !== "terminated").map(([s, n]) => `${n} ${s}`).join(", ") : "";
  return [
    card("Instances", total, "#/instances", detail),
    card("Running", running, "#/instances"),
    card("Images", imgs, "#/images"),
    card("Key pairs", keys, "#/keypairs"),
    card("Security groups", groups, "#/groups"),
    card("Elastic IPs", addrs, "#/addresses"),
    card("Volumes", vols, "#/volumes"),
    card("Snapshots", snaps, "#/snapshots"),
    card("Buckets", bkts, "#/buckets"),
  ];
}

async function dashboard() {
  const m = newPage("Dashboard");
  const s = api.current();
  m.append(h("p", {}, `Signed in as ${s.arn} (account ${s.account}), region ${s.region}.`), region("cards"));
  poll(async () => fill("cards", h("div", { class: "cards" }, await counts())), 5000);
}

export const routes = [[/^\/$/, dashboard]];
