// Buckets and objects over S3 REST: list and create buckets, browse by
// prefix, upload with a progress bar, download, delete, make an object
// public, and share a presigned link.

import * as api from "./api.js";
import { h, newPage, poll, table, region, fill, form, button, link, when, bytes, showInfo } from "./ui.js";

const kids = (node, name) => Array.from(node.children).filter((c) => c.localName === name);

async function bucketsPage() {
  const m = newPage("Buckets");
  const redraw = async () => {
    const d = await api.s3Xml("GET", "", "");
    const list = Array.from(d.getElementsByTagName("Bucket"));
    fill(
      "buckets",
      table(
        [
          { title: "Bucket", id: (b) => api.text(b, "Name"), value: (b) => link(`#/buckets/${encodeURIComponent(api.text(b, "Name"))}/`, api.text(b, "Name")) },
          { title: "Created", value: (b) => when(api.text(b, "CreationDate")) },
          {
            title: "",
            value: (b) =>
              button("Delete", async () => {
                if (!confirm(`Delete bucket ${api.text(b, "Name")}? It must be empty.`)) return;
                await api.s3("DELETE", api.text(b, "Name"));
                await redraw();
              }, { class: "danger" }),
          },
        ],
        list,
        "No buckets.",
      ),
    );
  };
  m.append(
    form("create-bucket", [{ name: "name", label: "Bucket name", required: true }], "Create bucket", async (v) => {
      await api.s3("PUT", v.name.trim());
      showInfo(`Created bucket ${v.name}.`);
      await redraw();
    }),
    region("buckets"),
  );
  poll(redraw, 15000);
}

function crumbs(bucket, prefix) {
  const parts = prefix.split("/").filter(Boolean);
  const out = [link("#/buckets", "Buckets"), " / ", link(`#/buckets/${encodeURIComponent(bucket)}/`, bucket)];
  let acc = "";
  for (const p of parts) {
    acc += `${p}/`;
    out.push(" / ", link(`#/buckets/${encodeURIComponent(bucket)}/${acc.split("/").map(encodeURIComponent).join("/")}`, p));
  }
  return h("p", { class: "crumbs" }, out);
}

async function bucketPage(match) {
  const bucket = decodeURIComponent(match[1]);
  const prefix = (match[2] || "").split("/").map(decodeURIComponent).join("/");
  const m = newPage(`Bucket ${bucket}`);
  const here = (p) => `#/buckets/${encodeURIComponent(bucket)}/${p.split("/").map(encodeURIComponent).join("/")}`;
  const redraw = async () => {
    const d = await api.s3Xml("GET", bucket, "", { query: [["list-type", "2"], ["delimiter", "/"], ["prefix", prefix]] });
    const folders = kids(d, "CommonPrefixes").map((c) => api.text(c, "Prefix"));
    const objects = kids(d, "Contents").filter((o) => api.text(o, "Key") !== prefix);
    fill(
      "objects",
      table(
        [
          { title: "Name", id: (o) => o.key, value: (o) => (o.folder ? link(here(o.key), o.key.slice(prefix.length)) : o.key.slice(prefix.length)) },
          { title: "Size", value: (o) => (o.folder ? "folder" : bytes(o.size)) },
          { title: "Modified", value: (o) => when(o.modified) },
          { title: "", value: (o) => (o.folder ? "" : objectActions(bucket, o.key, redraw)) },
        ],
        [
          ...folders.map((key) => ({ key, folder: true })),
          ...objects.map((o) => ({ key: api.text(o, "Key"), size: api.text(o, "Size"), modified: api.text(o, "LastModified") })),
        ],
        "This folder is empty.",
      ),
    );
  };
  const progress = h("progress", { id: "upload-progress", max: 100, value: 0, hidden: true });
  const percent = h("span", { id: "upload-percent" });
  m.append(
    crumbs(bucket, prefix),
    form(
      "upload",
      [
        { name: "file", label: "File", type: "file", required: true },
        { name: "key", label: "Name (default: the file's)", placeholder: prefix },
      ],
      "Upload",
      async (v) => {
        const key = prefix + (v.key || v.file.name);
        progress.hidden = false;
        progress.value = 0;
        await api.upload(bucket, key, v.file, (done, total) => {
          progress.value = Math.floor((done * 100) / total);
          percent.textContent = ` ${progress.value}% of ${bytes(total)}`;
        });
        progress.value = 100;
        percent.textContent = ` uploaded ${key}`;
        showInfo(`Uploaded ${key} (${bytes(v.file.size)}).`);
        await redraw();
      },
    ),
    h("div", { class: "progress" }, progress, percent),
    form("new-folder", [{ name: "name", label: "New folder" }], "Create folder", async (v) => {
      await api.s3("PUT", bucket, `${prefix}${v.name.replace(/\/+$/, "")}/`);
      await redraw();
    }),
    region("objects"),
    region("share"),
  );
  poll(redraw, 15000);
}

function objectActions(bucket, key, redraw) {
  const expiry = h("select", { "data-keep": `${key}-expiry` }, [["900", "15 minutes"], ["3600", "1 hour"], ["86400", "1 day"], ["604800", "7 days"]].map(([v, l]) => h("option", { value: v }, l)));
  return h(
    "span",
    { "data-key": key },
    button("Download", async () => {
      const a = h("a", { href: await api.presignedUrl(bucket, key, 300), download: key.split("/").pop() });
      document.body.append(a);
      a.click();
      a.remove();
    }, { class: "secondary download" }),
    button("Make public", async () => {
      await api.s3("PUT", bucket, key, { query: [["acl", ""]], headers: { "x-amz-acl": "public-read" } });
      const url = `${location.origin}${api.s3Path(bucket, key)}`;
      fill("share", h("p", {}, "Anyone can now read it at ", h("input", { class: "secret", id: "public-url", readonly: true, size: 80, value: url })));
    }, { class: "secondary make-public" }),
    expiry,
    button("Share link", async () => {
      const url = await api.presignedUrl(bucket, key, Number(expiry.value));
      fill("share", h("p", {}, `Link valid for ${expiry.selectedOptions[0].textContent}: `, h("input", { class: "secret", id: "share-url", readonly: true, size: 80, value: url })));
    }, { class: "secondary share" }),
    button("Delete", async () => {
      if (!confirm(`Delete ${key}?`)) return;
      await api.s3("DELETE", bucket, key);
      await redraw();
    }, { class: "danger" }),
  );
}

export const routes = [
  [/^\/buckets$/, bucketsPage],
  [/^\/buckets\/([^/]+)\/(.*)$/, bucketPage],
];
