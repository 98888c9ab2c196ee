// Small DOM helpers shared by every page: an element builder, tables,
// forms, the message banner and page-scoped polling. No framework: the
// pages are plain functions that build their DOM and redraw on a timer.

/** h("div", {class: "x", onclick: f}, child, …): an element. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const main = () => document.getElementById("main");
let timers = [];
let generation = 0;

/** Clears the page for a new route; stops the previous page's polling. */
export function newPage(title) {
  timers.forEach(clearInterval);
  timers = [];
  generation += 1;
  const m = main();
  m.replaceChildren(h("h1", {}, title));
  document.title = `${title} · mallee console`;
  return m;
}

/**
 * Runs `draw` now and every `ms` while this page is shown, so lists
 * follow instances as they change state. Errors show in the banner.
 */
export function poll(draw, ms = 3000) {
  const mine = generation;
  const run = async () => {
    if (mine !== generation) return;
    try {
      await draw();
    } catch (e) {
      showError(e);
    }
  };
  run();
  timers.push(setInterval(run, ms));
}

/** A table of `rows` with `columns` [{title, value(row)}]. */
export function table(columns, rows, empty = "None.") {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c.title)))),
    h("tbody", {}, rows.map((r) => h("tr", { "data-id": columns[0].id ? columns[0].id(r) : null }, columns.map((c) => h("td", {}, c.value(r)))))),
  );
}

/** A region of a page whose content `fill()` replaces. */
export function region(id) {
  return h("div", { id, class: "region" });
}

/**
 * Replaces a region's content. Controls marked `data-keep="KEY"` keep
 * what the user chose across a redraw, so polling does not undo a
 * half-made choice (an instance picked to attach a volume to).
 */
export function fill(id, ...children) {
  const el = document.getElementById(id);
  if (!el) return;
  const kept = new Map(Array.from(el.querySelectorAll("[data-keep]"), (c) => [c.dataset.keep, c.value]));
  const focused = document.activeElement && el.contains(document.activeElement) ? document.activeElement.dataset.keep : null;
  el.replaceChildren(...children.flat());
  for (const c of el.querySelectorAll("[data-keep]")) {
    if (kept.has(c.dataset.keep) && Array.from(c.options || [{ value: kept.get(c.dataset.keep) }]).some((o) => o.value === kept.get(c.dataset.keep))) {
      c.value = kept.get(c.dataset.keep);
    }
    if (focused && c.dataset.keep === focused) c.focus();
  }
}

/** The banner: AWS's Code and Message for errors, plain text otherwise. */
export function showError(e) {
  const banner = document.getElementById("banner");
  const msg = e && e.code ? [h("strong", { class: "code" }, e.code), " ", e.awsMessage || ""] : [String(e && e.message ? e.message : e)];
  if (e && e.requestId) msg.push(h("span", { class: "rid" }, ` (request ${e.requestId})`));
  banner.className = "banner error";
  banner.replaceChildren(...msg);
  banner.hidden = false;
}

export function showInfo(text) {
  const banner = document.getElementById("banner");
  banner.className = "banner info";
  banner.replaceChildren(text);
  banner.hidden = false;
}

export function clearBanner() {
  const banner = document.getElementById("banner");
  banner.hidden = true;
}

/** A button running `action`, disabled while it runs; errors go to the banner. */
export function button(label, action, attrs = {}) {
  const b = h("button", { type: "button", ...attrs }, label);
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      clearBanner();
      await action();
    } catch (e) {
      showError(e);
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

/**
 * A form of `fields` [{name, label, type?, options?, value?, required?}]
 * whose submit calls `onsubmit(values)`.
 */
export function form(id, fields, submitLabel, onsubmit) {
  const f = h("form", { id, class: "form" });
  for (const field of fields) {
    let input;
    const common = { name: field.name, id: `${id}-${field.name}`, required: field.required };
    if (field.options) {
      input = h("select", { ...common, multiple: field.multiple }, field.options.map((o) => {
        const [value, label] = Array.isArray(o) ? o : [o, o];
        return h("option", { value, selected: value === field.value }, label);
      }));
    } else if (field.type === "textarea") {
      input = h("textarea", { ...common, rows: 4 }, field.value || "");
    } else {
      input = h("input", { ...common, type: field.type || "text", value: field.value, placeholder: field.placeholder });
    }
    f.append(h("label", { for: common.id }, field.label), input);
  }
  const submit = h("button", { type: "submit", id: `${id}-submit` }, submitLabel);
  f.append(submit);
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    const values = {};
    for (const field of fields) {
      const el = f.elements[field.name];
      values[field.name] = field.multiple ? Array.from(el.selectedOptions, (o) => o.value) : field.type === "file" ? el.files[0] : el.value;
    }
    try {
      clearBanner();
      await onsubmit(values);
    } catch (e) {
      showError(e);
    } finally {
      submit.disabled = false;
    }
  });
  return f;
}

/** Lets the user save `content` as file `name`. */
export function saveAs(name, content, type = "application/octet-stream") {
  const url = URL.createObjectURL(new Blob([content], { type }));
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** A state shown as a coloured badge (class `state-NAME`). */
export const badge = (state) => h("span", { class: `badge state-${state}` }, state);

export const link = (href, label) => h("a", { href }, label);

export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString();
}

export function bytes(n) {
  n = Number(n);
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}
