// Images and key pairs. A new key pair's private key is shown and saved
// once, as EC2 returns it only in CreateKeyPair's answer.

import * as api from "./api.js";
import { h, newPage, poll, table, region, fill, form, button, badge, saveAs, showInfo } from "./ui.js";

async function imagesPage() {
  const m = newPage("Images");
  m.append(region("images"));
  poll(async () => {
    const d = await api.ec2("DescribeImages");
    const mine = api.current().account;
    fill(
      "images",
      table(
        [
          { title: "Image", id: (x) => api.text(x, "imageId"), value: (x) => api.text(x, "imageId") },
          { title: "Name", value: (x) => api.text(x, "name") },
          { title: "State", value: (x) => badge(api.text(x, "imageState")) },
          { title: "Type", value: (x) => `${api.text(x, "imageType")} ${api.text(x, "virtualizationType")}` },
          { title: "Owner", value: (x) => api.text(x, "imageOwnerId") },
          { title: "Public", value: (x) => api.text(x, "isPublic") },
          { title: "Location", value: (x) => api.text(x, "imageLocation") },
          {
            title: "",
            value: (x) =>
              api.text(x, "imageOwnerId") === mine
                ? button("Deregister", async () => {
                    if (!confirm(`Deregister ${api.text(x, "imageId")}?`)) return;
                    await api.ec2("DeregisterImage", { ImageId: api.text(x, "imageId") });
                  }, { class: "danger" })
                : "",
          },
        ],
        api.items(d, "imagesSet"),
        "No images.",
      ),
    );
  }, 10000);
}

async function keyPairsPage() {
  const m = newPage("Key pairs");
  const redraw = async () => {
    const d = await api.ec2("DescribeKeyPairs");
    fill(
      "keys",
      table(
        [
          { title: "Name", id: (x) => api.text(x, "keyName"), value: (x) => api.text(x, "keyName") },
          { title: "ID", value: (x) => api.text(x, "keyPairId") },
          { title: "Type", value: (x) => api.text(x, "keyType") },
          { title: "Fingerprint", value: (x) => api.text(x, "keyFingerprint") },
          {
            title: "",
            value: (x) =>
              button("Delete", async () => {
                if (!confirm(`Delete key pair ${api.text(x, "keyName")}?`)) return;
                await api.ec2("DeleteKeyPair", { KeyName: api.text(x, "keyName") });
                await redraw();
              }, { class: "danger" }),
          },
        ],
        api.items(d, "keySet"),
        "No key pairs.",
      ),
    );
  };
  m.append(
    form(
      "create-key",
      [
        { name: "name", label: "Name", required: true },
        { name: "type", label: "Type", options: ["rsa", "ed25519"] },
      ],
      "Create key pair",
      async (v) => {
        const d = await api.ec2("CreateKeyPair", { KeyName: v.name, KeyType: v.type });
        const material = api.text(d, "keyMaterial");
        // The only copy: saved now, and never shown again.
        saveAs(`${v.name}.pem`, material + (material.endsWith("\n") ? "" : "\n"), "application/x-pem-file");
        showInfo(`Created key pair ${v.name}; its private key was saved as ${v.name}.pem. It cannot be downloaded again.`);
        await redraw();
      },
    ),
    form(
      "import-key",
      [
        { name: "name", label: "Name", required: true },
        { name: "publicKey", label: "Public key (OpenSSH)", type: "textarea", required: true },
      ],
      "Import key pair",
      async (v) => {
        await api.ec2("ImportKeyPair", { KeyName: v.name, PublicKeyMaterial: btoa(v.publicKey.trim()) });
        await redraw();
      },
    ),
    region("keys"),
  );
  poll(redraw, 15000);
}

export const routes = [
  [/^\/images$/, imagesPage],
  [/^\/keypairs$/, keyPairsPage],
];
