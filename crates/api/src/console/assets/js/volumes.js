// Volumes (create, attach, detach, snapshot, delete) and snapshots
// (create a volume from one, delete).

import * as api from "./api.js";
import { h, newPage, poll, table, region, fill, form, button, badge, when, showInfo } from "./ui.js";
import { listInstances } from "./instances.js";

async function zones() {
  const d = await api.ec2("DescribeAvailabilityZones");
  return api.items(d, "availabilityZoneInfo").map((z) => api.text(z, "zoneName"));
}

async function volumesPage() {
  const m = newPage("Volumes");
  const [zoneNames, snaps] = await Promise.all([
    zones(),
    api.ec2("DescribeSnapshots", { "Owner.1": "self" }).then((d) => api.items(d, "snapshotSet").map((s) => api.text(s, "snapshotId")), () => []),
  ]);
  const redraw = async () => {
    const [d, instances] = await Promise.all([api.ec2("DescribeVolumes"), listInstances()]);
    const targets = instances.filter((i) => ["running", "stopped"].includes(api.text(i, "instanceState/name")));
    fill(
      "volumes",
      table(
        [
          { title: "Volume", id: (v) => api.text(v, "volumeId"), value: (v) => api.text(v, "volumeId") },
          { title: "Size", value: (v) => `${api.text(v, "size")} GiB` },
          { title: "State", value: (v) => badge(api.text(v, "status")) },
          { title: "Zone", value: (v) => api.text(v, "availabilityZone") },
          { title: "Snapshot", value: (v) => api.text(v, "snapshotId") },
          { title: "Attached to", value: (v) => api.items(v, "attachmentSet").map((a) => `${api.text(a, "instanceId")} ${api.text(a, "device")} (${api.text(a, "status")})`).join(", ") },
          { title: "Created", value: (v) => when(api.text(v, "createTime")) },
          {
            title: "",
            value: (v) => {
              const id = api.text(v, "volumeId");
              const snapshot = button("Snapshot", async () => {
                const s = await api.ec2("CreateSnapshot", { VolumeId: id, Description: `from ${id}` });
                showInfo(`Snapshot ${api.text(s, "snapshotId")} started.`);
              }, { class: "secondary" });
              if (api.text(v, "status") === "in-use") {
                return h("span", {}, button("Detach", async () => {
                  await api.ec2("DetachVolume", { VolumeId: id });
                  await redraw();
                }, { class: "secondary" }), snapshot);
              }
              const here = targets.filter((i) => api.text(i, "placement/availabilityZone") === api.text(v, "availabilityZone"));
              const select = h("select", { "data-keep": `${id}-instance` }, here.map((i) => h("option", { value: api.text(i, "instanceId") }, api.text(i, "instanceId"))));
              const device = h("input", { value: "/dev/sdf", size: 9, "data-keep": `${id}-device` });
              return h(
                "span",
                {},
                select,
                device,
                button("Attach", async () => {
                  await api.ec2("AttachVolume", { VolumeId: id, InstanceId: select.value, Device: device.value });
                  await redraw();
                }, { class: "secondary" }),
                snapshot,
                button("Delete", async () => {
                  if (!confirm(`Delete ${id}?`)) return;
                  await api.ec2("DeleteVolume", { VolumeId: id });
                  await redraw();
                }, { class: "danger" }),
              );
            },
          },
        ],
        api.items(d, "volumeSet"),
        "No volumes.",
      ),
    );
  };
  m.append(
    form(
      "create-volume",
      [
        { name: "size", label: "Size (GiB)", type: "number", value: "1" },
        { name: "zone", label: "Zone", options: zoneNames },
        { name: "snapshot", label: "From snapshot", options: [["", "(empty volume)"], ...snaps] },
      ],
      "Create volume",
      async (v) => {
        await api.ec2("CreateVolume", { Size: v.snapshot ? undefined : v.size, AvailabilityZone: v.zone, SnapshotId: v.snapshot });
        await redraw();
      },
    ),
    region("volumes"),
  );
  poll(redraw, 4000);
}

async function snapshotsPage() {
  const m = newPage("Snapshots");
  const zoneNames = await zones();
  const redraw = async () => {
    const d = await api.ec2("DescribeSnapshots", { "Owner.1": "self" });
    fill(
      "snapshots",
      table(
        [
          { title: "Snapshot", id: (s) => api.text(s, "snapshotId"), value: (s) => api.text(s, "snapshotId") },
          { title: "Volume", value: (s) => api.text(s, "volumeId") },
          { title: "Size", value: (s) => `${api.text(s, "volumeSize")} GiB` },
          { title: "State", value: (s) => badge(api.text(s, "status")) },
          { title: "Progress", value: (s) => api.text(s, "progress") },
          { title: "Description", value: (s) => api.text(s, "description") },
          { title: "Started", value: (s) => when(api.text(s, "startTime")) },
          {
            title: "",
            value: (s) => {
              const id = api.text(s, "snapshotId");
              const zone = h("select", { "data-keep": `${id}-zone` }, zoneNames.map((z) => h("option", { value: z }, z)));
              return h(
                "span",
                {},
                zone,
                button("Create volume", async () => {
                  const v = await api.ec2("CreateVolume", { SnapshotId: id, AvailabilityZone: zone.value });
                  showInfo(`Volume ${api.text(v, "volumeId")} is being created.`);
                }, { class: "secondary" }),
                button("Delete", async () => {
                  if (!confirm(`Delete ${id}?`)) return;
                  await api.ec2("DeleteSnapshot", { SnapshotId: id });
                  await redraw();
                }, { class: "danger" }),
              );
            },
          },
        ],
        api.items(d, "snapshotSet"),
        "No snapshots.",
      ),
    );
  };
  m.append(region("snapshots"));
  poll(redraw, 5000);
}

export const routes = [
  [/^\/volumes$/, volumesPage],
  [/^\/snapshots$/, snapshotsPage],
];
