// The cloud's own APIs, called from the browser: EC2, IAM, STS and metal
// through the Query protocol, S3 through REST, each request SigV4-signed
// with the signed-in user's credentials. Errors become AwsError with the
// API's own Code and Message.

import { sign, presign, sha256Hex, uriEncode } from "./sigv4.js";

const VERSIONS = { ec2: "2016-11-15", iam: "2010-05-08", sts: "2011-06-15", metal: "2024-06-01" };
const KEY = "mallee.console.session";

let session = JSON.parse(sessionStorage.getItem(KEY) || "null");

/** The signed-in user ({accessKeyId, secretAccessKey, sessionToken, region, arn, …}) or null. */
export const current = () => session;

export function setSession(s) {
  session = s;
  sessionStorage.setItem(KEY, JSON.stringify(s));
}

export function signOut() {
  session = null;
  sessionStorage.removeItem(KEY);
}

export class AwsError extends Error {
  constructor(status, code, message, requestId) {
    super(`${code}: ${message}`);
    this.status = status;
    this.code = code;
    this.awsMessage = message;
    this.requestId = requestId;
  }
}

const parser = new DOMParser();

/** First descendant element called `name` (namespaces ignored). */
export function find(node, name) {
  return node ? node.getElementsByTagName(name)[0] || null : null;
}

/** Text of the direct child path `a/b/c` of `node`, or "". */
export function text(node, path) {
  let n = node;
  for (const part of path.split("/")) {
    if (!n) return "";
    n = Array.from(n.children).find((c) => c.localName === part) || null;
  }
  return n ? n.textContent : "";
}

/** The `item` children of the direct child `set` of `node` (EC2 lists). */
export function items(node, set) {
  const s = node && Array.from(node.children).find((c) => c.localName === set);
  return s ? Array.from(s.children).filter((c) => c.localName === "item" || c.localName === "member") : [];
}

function errorFrom(status, body, headers) {
  let code = `HTTP${status}`;
  let message = body.slice(0, 200) || `The request failed with HTTP ${status}.`;
  try {
    const doc = parser.parseFromString(body, "application/xml");
    const c = find(doc, "Code");
    if (c) {
      code = c.textContent;
      const m = find(doc, "Message");
      message = m ? m.textContent : "";
    }
  } catch (_) {
    /* not XML: keep the text */
  }
  const rid = headers && (headers.get ? headers.get("x-amzn-requestid") : headers);
  return new AwsError(status, code, message, rid || "");
}

function creds() {
  if (!session) throw new AwsError(0, "NotSignedIn", "Sign in first.", "");
  return session;
}

/**
 * A Query-protocol action (`service`: ec2, iam, sts, metal).
 * `params` is an object; arrays become `Name.1`, `Name.2`, ….
 */
export async function query(service, action, params = {}) {
  const form = new URLSearchParams({ Action: action, Version: VERSIONS[service] });
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    if (Array.isArray(v)) v.forEach((x, i) => form.append(`${k}.${i + 1}`, x));
    else form.append(k, v);
  }
  const body = form.toString().replace(/\+/g, "%20");
  const c = creds();
  const headers = await sign({
    creds: c,
    region: c.region,
    service,
    method: "POST",
    path: "/",
    headers: { "content-type": "application/x-www-form-urlencoded; charset=utf-8" },
    payloadHash: await sha256Hex(body),
  });
  const r = await fetch("/", { method: "POST", headers, body, credentials: "omit", cache: "no-store" });
  const textBody = await r.text();
  if (!r.ok) throw errorFrom(r.status, textBody, r.headers);
  return parser.parseFromString(textBody, "application/xml").documentElement;
}

export const ec2 = (action, params) => query("ec2", action, params);
export const iam = (action, params) => query("iam", action, params);
export const sts = (action, params) => query("sts", action, params);
export const metal = (action, params) => query("metal", action, params);

/** The path of an S3 bucket or object (path-style). */
export function s3Path(bucket, key = "") {
  return "/" + uriEncode(bucket) + (bucket ? "/" : "") + uriEncode(key, true);
}

/**
 * An S3 REST request with a small or empty body; answers the Response
 * (XML documents through `.xml()` below). `query` is a list of [k, v].
 */
export async function s3(method, bucket, key = "", { query = [], headers = {}, body = "" } = {}) {
  const c = creds();
  const payload = typeof body === "string" ? body : new Uint8Array(await body.arrayBuffer());
  const signed = await sign({
    creds: c,
    region: c.region,
    service: "s3",
    method,
    path: s3Path(bucket, key),
    query,
    headers,
    payloadHash: await sha256Hex(payload),
  });
  const qs = query.map(([k, v]) => (v === "" ? uriEncode(k) : `${uriEncode(k)}=${uriEncode(v)}`)).join("&");
  const url = s3Path(bucket, key) + (qs ? `?${qs}` : "");
  const r = await fetch(url, { method, headers: signed, body: method === "GET" || method === "HEAD" ? undefined : payload, credentials: "omit", cache: "no-store" });
  if (!r.ok) throw errorFrom(r.status, await r.text(), r.headers);
  return r;
}

export async function s3Xml(method, bucket, key, opts) {
  const r = await s3(method, bucket, key, opts);
  return parser.parseFromString(await r.text(), "application/xml").documentElement;
}

/**
 * PutObject of a File through XMLHttpRequest, whose upload events report
 * progress (fetch has none). The payload is UNSIGNED-PAYLOAD, as S3
 * allows, so a large file is not read twice to hash it first.
 */
export async function upload(bucket, key, file, onProgress) {
  const c = creds();
  const contentType = file.type || "application/octet-stream";
  const headers = await sign({
    creds: c,
    region: c.region,
    service: "s3",
    method: "PUT",
    path: s3Path(bucket, key),
    headers: { "content-type": contentType },
    payloadHash: "UNSIGNED-PAYLOAD",
  });
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", s3Path(bucket, key));
    for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded, e.total);
    xhr.onload = () =>
      xhr.status >= 200 && xhr.status < 300
        ? resolve()
        : reject(errorFrom(xhr.status, xhr.responseText, xhr.getResponseHeader("x-amz-request-id")));
    xhr.onerror = () => reject(new AwsError(0, "NetworkError", "The upload could not reach the cloud.", ""));
    xhr.send(file);
  });
}

/** A presigned GET link to an object, valid for `seconds`. */
export function presignedUrl(bucket, key, seconds) {
  const c = creds();
  return presign({ creds: c, region: c.region, path: s3Path(bucket, key), expires: seconds });
}

/** Password sign-in: answers the session or throws AwsError. */
export async function passwordSignIn(account, username, password, newPassword = "") {
  const form = new URLSearchParams({ account, username, password });
  if (newPassword) form.append("newPassword", newPassword);
  const r = await fetch("/console/signin", {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: form.toString(),
    credentials: "omit",
    cache: "no-store",
  });
  const body = await r.text();
  if (!r.ok) throw errorFrom(r.status, body, r.headers);
  return JSON.parse(body);
}

export async function consoleConfig() {
  const r = await fetch("/console/config.json", { cache: "no-store" });
  return r.json();
}
