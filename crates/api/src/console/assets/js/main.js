// The console's entry point: sign-in (access keys, or an IAM user's
// password), the navigation, and the hash router that shows one page.

import * as api from "./api.js";
import { h, newPage, form, showError, clearBanner } from "./ui.js";
import { routes as dashboard } from "./dashboard.js";
import { routes as instances } from "./instances.js";
import { routes as compute } from "./compute.js";
import { routes as network } from "./network.js";
import { routes as volumes } from "./volumes.js";
import { routes as buckets } from "./buckets.js";
import { routes as admin } from "./admin.js";

// [pattern, page(match)] in order; the first match wins.
const ROUTES = [...dashboard, ...instances, ...compute, ...network, ...volumes, ...buckets, ...admin];

async function completeSignIn(s) {
  const { region } = await api.consoleConfig();
  api.setSession({ ...s, region });
  // Who the keys belong to, from STS itself.
  const me = await api.sts("GetCallerIdentity");
  api.setSession({ ...api.current(), arn: api.text(me, "GetCallerIdentityResult/Arn"), account: api.text(me, "GetCallerIdentityResult/Account") });
  await probeAdmin();
}

// The administration pages are offered to callers IAM lets list accounts
// (the cloud's administrators); the pages themselves are refused by the
// API to anyone else, whatever the navigation shows.
async function probeAdmin() {
  try {
    await api.iam("ListAccounts");
    api.setSession({ ...api.current(), admin: true });
  } catch (_) {
    api.setSession({ ...api.current(), admin: false });
  }
}

function signInPage() {
  const m = newPage("Sign in to mallee");
  const keys = form(
    "signin-keys",
    [
      { name: "accessKeyId", label: "Access key ID", required: true },
      { name: "secretAccessKey", label: "Secret access key", type: "password", required: true },
    ],
    "Sign in",
    async (v) => {
      try {
        await completeSignIn({ accessKeyId: v.accessKeyId.trim(), secretAccessKey: v.secretAccessKey.trim() });
      } catch (e) {
        api.signOut();
        throw e;
      }
      location.hash = "#/";
      render();
    },
  );
  const password = form(
    "signin-password",
    [
      { name: "account", label: "Account (name or ID)", required: true },
      { name: "username", label: "IAM user name", required: true },
      { name: "password", label: "Password", type: "password", required: true },
      { name: "newPassword", label: "New password", type: "password" },
    ],
    "Sign in",
    async (v) => {
      let s;
      try {
        s = await api.passwordSignIn(v.account.trim(), v.username.trim(), v.password, v.newPassword);
      } catch (e) {
        // The profile asks for a new password first: offer the field.
        if (e.code === "PasswordResetRequired") showNewPassword(true);
        throw e;
      }
      try {
        await completeSignIn({ accessKeyId: s.AccessKeyId, secretAccessKey: s.SecretAccessKey, sessionToken: s.SessionToken, expiration: s.Expiration });
      } catch (e) {
        api.signOut();
        throw e;
      }
      location.hash = "#/";
      render();
    },
  );
  password.hidden = true;
  const showNewPassword = (show) => {
    const input = password.elements.newPassword;
    input.hidden = !show;
    input.required = show;
    password.querySelector("label[for='signin-password-newPassword']").hidden = !show;
  };
  showNewPassword(false);
  const tabKeys = h("button", { type: "button", id: "tab-keys", class: "active" }, "Access key");
  const tabPassword = h("button", { type: "button", id: "tab-password", class: "secondary" }, "IAM user and password");
  const pick = (showKeys) => {
    keys.hidden = !showKeys;
    password.hidden = showKeys;
    tabKeys.className = showKeys ? "active" : "secondary";
    tabPassword.className = showKeys ? "secondary" : "active";
  };
  tabKeys.addEventListener("click", () => pick(true));
  tabPassword.addEventListener("click", () => pick(false));
  m.append(h("div", { class: "signin" }, h("div", { class: "tabs" }, tabKeys, tabPassword), keys, password));
}

function chrome() {
  const s = api.current();
  document.getElementById("nav").hidden = !s;
  document.getElementById("signout").hidden = !s;
  document.getElementById("admin-nav").hidden = !(s && s.admin);
  document.getElementById("who").textContent = s ? `${s.arn || s.accessKeyId} · ${s.region}` : "";
  for (const a of document.querySelectorAll("#nav a")) {
    const target = a.getAttribute("href");
    a.classList.toggle("active", target === "#/" ? location.hash === "#/" || location.hash === "" : location.hash.startsWith(target));
  }
}

export function render() {
  clearBanner();
  chrome();
  if (!api.current()) return signInPage();
  const path = location.hash.replace(/^#/, "") || "/";
  for (const [pattern, page] of ROUTES) {
    const match = path.match(pattern);
    if (match) {
      Promise.resolve(page(match)).catch(showError);
      return;
    }
  }
  newPage("Not found").append(h("p", {}, `No console page at ${path}.`));
}

document.getElementById("signout").addEventListener("click", () => {
  api.signOut();
  location.hash = "#/";
  render();
});
window.addEventListener("hashchange", render);
render();
