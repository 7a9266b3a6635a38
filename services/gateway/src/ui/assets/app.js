// HeyDoc dashboard script. Pages are rendered by the server; this file only
//  - submits forms marked data-api to the JSON API and shows its error messages,
//  - refreshes the live regions ([data-live]) when the server sends a chat event,
//  - drives the campaign form (its fields, and the next runs before saving),
//  - shows times in the browser's own time zone.
"use strict";

// ---- the API -------------------------------------------------------------------------------

async function api(method, url, body) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  let data = null;
  try { data = await response.json(); } catch (_) { /* an empty or non-JSON body */ }
  if (response.status === 401 && !url.startsWith("/login") && !url.startsWith("/register")) {
    location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
    throw new Error("Your session has ended; please log in again.");
  }
  if (!response.ok) {
    const error = new Error((data && data.message) || `${response.status} ${response.statusText}`);
    error.status = response.status;
    // The machine-readable part: `code` (the rule's or the status's) and, when one field of
    // the request broke the rule, `field` as the request names it ("recipients[3]").
    error.code = data && data.error && data.error.code;
    error.field = data && data.error && data.error.field;
    throw error;
  }
  return data;
}

// Form fields as the API's JSON: "a.b" nests (a group without a name is left out),
// "x[]" collects checked boxes, data-type="int" and number inputs become numbers,
// data-type="bool" becomes true/false, and empty fields are left out. Passwords and texts are sent exactly as typed.
function formBody(form) {
  const body = {};
  for (const el of form.elements) {
    if (!el.name || el.disabled || el.type === "submit" || el.type === "button") continue;
    const typed = (v) => {
      if (el.dataset.type === "bool") return v === "true";
      return el.dataset.type === "int" || el.type === "number" ? Number(v) : v;
    };
    if (el.name.endsWith("[]")) {
      const key = el.name.slice(0, -2);
      body[key] = body[key] || [];
      if (el.checked) body[key].push(typed(el.value));
      continue;
    }
    if (el.type === "checkbox") { body[el.name] = el.checked; continue; }
    if (el.dataset.type === "nullable-int") {
      body[el.name] = el.value === "" ? null : Number(el.value);
      continue;
    }
    if (el.dataset.type === "attributes") {
      body[el.name] = attributeLines(el.value);
      continue;
    }
    const exact = el.type === "password" || el.tagName === "TEXTAREA";
    const value = exact ? el.value : el.value.trim();
    if (value.trim() === "") continue;
    const path = el.name.split(".");
    let target = body;
    for (const part of path.slice(0, -1)) target = target[part] = target[part] || {};
    target[path[path.length - 1]] = typed(value);
  }
  for (const [key, value] of Object.entries(body)) {
    if (value && typeof value === "object" && !Array.isArray(value) && !value.name) delete body[key];
  }
  const template = templateOf(form);
  if (template) body.template = template;
  return body;
}

// "name: value" lines as an object (a value that reads as JSON, such as 42 or true, is one).
function attributeLines(text) {
  const out = {};
  for (const line of text.split("\n")) {
    const at = line.indexOf(":");
    if (at < 1) continue;
    const key = line.slice(0, at).trim();
    const raw = line.slice(at + 1).trim();
    if (!key) continue;
    let value = raw;
    if (/^(-?\d+(\.\d+)?|true|false)$/.test(raw)) value = JSON.parse(raw);
    out[key] = value;
  }
  return out;
}

// ---- templates: picked from the catalog, a field per parameter ------------------------------

// The template a form's picker names, with its components, or null.
function templateOf(form) {
  const pick = form.querySelector("select[data-template-pick]");
  if (pick) {
    const option = pick.selectedOptions[0];
    if (!option || !option.value) return null;
    const template = { name: option.dataset.name, language: option.dataset.language };
    const components = [];
    for (const kind of ["header", "body"]) {
      const fields = [...form.querySelectorAll(`input[data-param-kind='${kind}']`)];
      if (fields.length) {
        components.push({ type: kind, parameters: fields.map(templateParameter) });
      }
    }
    if (components.length) template.components = components;
    return template;
  }
  const name = form.elements["template.name"];
  if (!name || !name.value.trim()) return null;
  const template = { name: name.value.trim(), language: form.elements["template.language"].value.trim() || "en_US" };
  const lines = form.querySelector("textarea[data-template-lines]");
  const params = lines ? lines.value.split("\n").map((p) => p.trim()).filter(Boolean) : [];
  if (params.length) template.components = [{ type: "body", parameters: params.map((text) => ({ type: "text", text })) }];
  return template;
}

// One parameter as Meta wants it: text, or a media header's link.
function templateParameter(field) {
  const format = (field.dataset.format || "TEXT").toLowerCase();
  if (format === "text") return { type: "text", text: field.value.trim() };
  return { type: format, [format]: { link: field.value.trim() } };
}

// The body as the patient will read it: {{1}}, {{2}} ... replaced by what is typed so far.
function showTemplatePreview(picker) {
  const option = picker.querySelector("select[data-template-pick]").selectedOptions[0];
  const box = picker.querySelector("[data-template-preview]");
  if (!option || !option.value) { box.hidden = true; return; }
  const values = [...picker.querySelectorAll("input[data-param-kind='body']")].map((f) => f.value.trim());
  let index = 0;
  const seen = new Map();
  const text = option.dataset.body.replace(/\{\{\s*([^}]+?)\s*\}\}/g, (whole, name) => {
    if (!seen.has(name)) seen.set(name, index++);
    return values[seen.get(name)] || whole;
  });
  picker.querySelector("[data-template-text]").textContent = text;
  box.hidden = false;
}

// One labelled field per header and body parameter of the picked template.
function pickTemplate(picker) {
  const option = picker.querySelector("select[data-template-pick]").selectedOptions[0];
  const fields = picker.querySelector("[data-template-fields]");
  fields.replaceChildren();
  if (option && option.value) {
    const headerFormat = (option.dataset.headerFormat || "TEXT").toUpperCase();
    const add = (kind, n) => {
      for (let i = 1; i <= n; i++) {
        const id = `template-${kind}-${i}`;
        const media = kind === "header" && headerFormat !== "TEXT";
        const label = document.createElement("label");
        label.htmlFor = id;
        label.textContent = media
          ? `Header ${headerFormat.toLowerCase()}: its link (https://...)`
          : kind === "header" ? `Header parameter ${i}` : `Parameter {{${i}}}`;
        const input = document.createElement("input");
        input.id = id;
        input.dataset.paramKind = kind;
        if (media) {
          input.type = "url";
          input.dataset.format = headerFormat;
        }
        input.required = true;
        input.placeholder = i === 1 && kind === "body" ? "{{name}}" : "";
        fields.append(label, input);
      }
    };
    add("header", Number(option.dataset.header || 0));
    add("body", Number(option.dataset.params || 0));
  }
  showTemplatePreview(picker);
}

// A form reset (after a send) puts its picker back to "None": its parameter fields go too.
document.addEventListener("reset", (event) => {
  const pickers = event.target.querySelectorAll("[data-template-picker]");
  setTimeout(() => pickers.forEach((picker) => {
    if (picker.querySelector("select[data-template-pick]")) pickTemplate(picker);
  }), 0);
});

function startTemplatePickers(root = document) {
  for (const picker of root.querySelectorAll("[data-template-picker]")) {
    const select = picker.querySelector("select[data-template-pick]");
    if (!select) continue;
    select.addEventListener("change", () => pickTemplate(picker));
    picker.addEventListener("input", (event) => {
      if (event.target.dataset.paramKind) showTemplatePreview(picker);
    });
    pickTemplate(picker);
  }
}

// Someone writing in a chat: WhatsApp shows the patient that the business is typing (at most
// every 20 s).
function startTypingIndicator(root = document) {
  const box = root.querySelector("form.send textarea[name=message]");
  if (!box) return;
  const phone = box.form.elements.phone_number.value;
  let last = 0;
  box.addEventListener("input", () => {
    if (Date.now() - last < 20000 || !box.value.trim()) return;
    last = Date.now();
    api("POST", `/api/messages/${encodeURIComponent(phone)}/typing`, {}).catch(() => {});
  });
}

// A file chosen in a form is uploaded to WhatsApp first (once, for the number the message goes
// from); the send then names it, with the text as its caption (or the file's name).
async function attachFile(form, body) {
  const input = form.querySelector("input[type=file][data-attach]");
  const file = input && input.files[0];
  if (!file) return;
  let url = `/api/media?filename=${encodeURIComponent(file.name)}`;
  if (form.dataset.uploadFrom) url += `&from=${encodeURIComponent(form.dataset.uploadFrom)}`;
  const answer = await postFile(url, file, file.type || "application/octet-stream");
  body.media = { upload_id: answer.data.id };
  if (!body.message) body.message = file.name;
}

// A file as the body of a POST; the API's JSON answer, or its error message thrown.
async function postFile(url, file, type) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": type, Accept: "application/json" },
    body: file,
  });
  const answer = await response.json().catch(() => null);
  if (!response.ok) throw new Error((answer && answer.message) || `${response.status} ${response.statusText}`);
  return answer;
}

// "/chat/{phone}" with values from the form's body or the API's answer.
function fill(template, ...sources) {
  return template.replace(/\{(\w+)\}/g, (_, key) => {
    for (const source of sources) {
      if (source && source[key] !== undefined) return encodeURIComponent(source[key]);
    }
    return "";
  });
}

function showError(form, message) {
  const line = form.querySelector(".form-error");
  if (line) {
    line.textContent = message;
    line.hidden = !message;
  } else if (message) {
    toast(message);
  }
}

function toast(message) {
  const el = document.getElementById("toast");
  if (!el) return;
  el.textContent = message;
  el.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => el.classList.remove("show"), 3000);
}

// A question asked next to the button instead of the browser's OK/Cancel box: the form is
// sent when "Yes" is pressed.
function askFirst(form) {
  if (form.dataset.confirmed === "yes") {
    delete form.dataset.confirmed;
    return false;
  }
  if (form.querySelector(".confirm-box")) return true;
  const box = document.createElement("span");
  box.className = "confirm-box";
  box.setAttribute("role", "alertdialog");
  box.setAttribute("aria-label", form.dataset.confirm);
  const question = document.createElement("span");
  question.textContent = form.dataset.confirm + " ";
  const yes = document.createElement("button");
  yes.type = "button";
  yes.className = "danger small";
  yes.textContent = form.dataset.confirmYes || "Yes";
  const no = document.createElement("button");
  no.type = "button";
  no.className = "secondary small";
  no.textContent = form.dataset.confirmNo || "No";
  yes.addEventListener("click", () => {
    box.remove();
    form.dataset.confirmed = "yes";
    form.requestSubmit();
  });
  no.addEventListener("click", () => {
    box.remove();
    form.querySelector("button[type=submit]")?.focus();
  });
  box.append(question, yes, " ", no);
  form.append(box);
  no.focus();
  return true;
}

async function submitApiForm(form) {
  // One send at a time per form: a quick second Enter does not send the message twice.
  if (form.dataset.sending) return;
  if (form.dataset.confirm && askFirst(form)) return;
  form.dataset.sending = "yes";
  const method = form.dataset.method || "POST";
  const body = formBody(form);
  const url = fill(form.dataset.api, body);
  const then = form.dataset.then || "reload";
  const button = form.querySelector("button[type=submit]");
  if (button) button.disabled = true;
  showError(form, "");
  try {
    await attachFile(form, body);
    const answer = await api(method, url, method === "DELETE" ? undefined : body);
    const data = (answer && answer.data) || answer || {};
    if (form.hasAttribute("data-reset")) form.reset();
    if (then === "reload") {
      location.reload();
    } else if (then === "refresh") {
      form.closest("details")?.removeAttribute("open");
      const box = form.querySelector("textarea[data-enter-sends]");
      await refreshLive(true);
      // Sending from the keyboard keeps the keyboard in the box, ready for the next message;
      // a control that went away (its button is gone) leaves it in the chat's message box.
      if (box && box.id) document.getElementById(box.id)?.focus();
      else if (!document.activeElement || document.activeElement === document.body) {
        document.getElementById("message")?.focus();
      }
    } else if (then.startsWith("secret:")) {
      // A key or signing secret, shown once, labelled, with a copy button; every secret made
      // on this page stays listed until the page is left.
      const box = document.getElementById("secret-box");
      showSecret(fill(form.dataset.secretLabel || "Secret", body).replace(/%20/g, " "),
        data[then.slice("secret:".length)] || "");
      box.hidden = false;
      form.reset();
      await refreshLive(true);
      box.scrollIntoView({ block: "nearest" });
    } else if (then === "next") {
      location.assign(sameSite(form.dataset.next));
    } else if (then.startsWith("login:")) {
      await api("POST", "/login", { username: body.username, password: body.password });
      location.assign(then.slice("login:".length));
    } else {
      location.assign(fill(then, data, body));
    }
  } catch (e) {
    if (e.status === 409 && form.dataset.ifExists) {
      location.assign(fill(form.dataset.ifExists, body));
      return;
    }
    showError(form, e.message);
  } finally {
    delete form.dataset.sending;
    if (button) button.disabled = false;
  }
}

function showSecret(label, secret) {
  const list = document.getElementById("secret-list");
  if (!list) return;
  const item = document.createElement("li");
  const name = document.createElement("p");
  name.className = "secret-label";
  name.textContent = decodeURIComponent(label);
  const value = document.createElement("code");
  value.className = "secret-value";
  value.textContent = secret;
  const copy = document.createElement("button");
  copy.type = "button";
  copy.className = "small";
  copy.textContent = "Copy";
  copy.setAttribute("aria-label", `Copy ${name.textContent}`);
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(secret);
      copy.textContent = "Copied";
    } catch (_) {
      // No clipboard (plain HTTP): select it for Ctrl+C.
      const range = document.createRange();
      range.selectNodeContents(value);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      copy.textContent = "Selected: press Ctrl+C";
    }
  });
  item.append(name, value, " ", copy);
  list.prepend(item);
}

// A path on this site, or the inbox: never another origin.
function sameSite(path) {
  try {
    const url = new URL(path, location.origin);
    if (url.origin === location.origin) return url.pathname + url.search + url.hash;
  } catch (_) { /* not a URL */ }
  return "/inbox";
}

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.matches("form[data-api]")) {
    event.preventDefault();
    submitApiForm(form);
  } else if (form.matches("form[data-campaign]")) {
    event.preventDefault();
    submitCampaign(form);
  }
});

document.addEventListener("click", async (event) => {
  if (event.target.closest("[data-action=logout]")) {
    try { await api("POST", "/logout"); } catch (_) { /* already logged out */ }
    location.assign("/login");
  }
  if (event.target.closest("[data-action=notify]")) {
    const button = event.target.closest("[data-action=notify]");
    const answer = await Notification.requestPermission();
    (button.closest("[data-notify]") || button).hidden = answer !== "default";
    toast(answer === "granted" ? "You will be notified of new messages." : "Notifications are off.");
  }
  if (event.target.closest("[data-action=use-template]")) {
    showTab("reply-panel");
    const picker = document.querySelector("#reply-form details[data-template-picker]");
    if (picker) {
      picker.open = true;
      (picker.querySelector("select, input") || picker).focus();
    }
  }
  const tab = event.target.closest("[data-tab]");
  if (tab) showTab(tab.dataset.tab);
});

// The composer's two boxes: a reply to the contact, or a note only the team sees.
function showTab(id) {
  for (const tab of document.querySelectorAll("[data-tab]")) {
    const on = tab.dataset.tab === id;
    tab.setAttribute("aria-selected", on ? "true" : "false");
    const panel = document.getElementById(tab.dataset.tab);
    if (panel) panel.hidden = !on;
  }
  document.getElementById(id)?.querySelector("textarea")?.focus();
}

// A select marked data-autosubmit sends its form when it changes (the tag filter, the
// assignee): one click, no separate button.
document.addEventListener("change", (event) => {
  const select = event.target.closest("select[data-autosubmit]");
  if (select && select.form) select.form.requestSubmit();
});

// ---- the message box: Enter sends, "/" offers canned replies --------------------------------

function cannedMatches(text) {
  const match = /^\/([\w-]*)$/.exec(text.trim());
  if (!match) return [];
  const start = match[1].toLowerCase();
  return [...document.querySelectorAll("#canned li")]
    .filter((li) => li.dataset.shortcut.startsWith(start))
    .slice(0, 8);
}

function showCanned(box) {
  const list = document.getElementById("canned-suggestions");
  if (!list) return;
  const found = cannedMatches(box.value);
  list.replaceChildren(...found.map((li, i) => {
    const option = document.createElement("li");
    option.id = `canned-${i}`;
    option.setAttribute("role", "option");
    option.setAttribute("aria-selected", i === 0 ? "true" : "false");
    option.dataset.body = li.dataset.body;
    const key = document.createElement("strong");
    key.textContent = `/${li.dataset.shortcut} `;
    option.append(key, li.dataset.body.length > 80 ? li.dataset.body.slice(0, 80) + "…" : li.dataset.body);
    return option;
  }));
  list.hidden = !found.length;
  if (found.length) box.setAttribute("aria-activedescendant", "canned-0");
  else box.removeAttribute("aria-activedescendant");
}

function closeCanned(box) {
  document.getElementById("canned-suggestions").hidden = true;
  box.removeAttribute("aria-activedescendant");
}

function pickCanned(box, option) {
  box.value = option.dataset.body;
  closeCanned(box);
  box.focus();
}

document.addEventListener("input", (event) => {
  if (event.target.matches("textarea[data-canned]")) showCanned(event.target);
});

document.addEventListener("keydown", (event) => {
  const box = event.target;
  if (!box.matches || !box.matches("textarea[data-enter-sends]")) return;
  const list = document.getElementById("canned-suggestions");
  const open = box.matches("[data-canned]") && list && !list.hidden;
  if (open) {
    const options = [...list.children];
    const current = options.findIndex((o) => o.getAttribute("aria-selected") === "true");
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const next = (current + (event.key === "ArrowDown" ? 1 : options.length - 1)) % options.length;
      options.forEach((o, i) => o.setAttribute("aria-selected", i === next ? "true" : "false"));
      box.setAttribute("aria-activedescendant", options[next].id);
      return;
    }
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      pickCanned(box, options[Math.max(current, 0)]);
      return;
    }
    if (event.key === "Escape") {
      closeCanned(box);
      return;
    }
  }
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing && box.value.trim()) {
    event.preventDefault();
    box.form.requestSubmit();
  }
});

document.addEventListener("mousedown", (event) => {
  const option = event.target.closest("#canned-suggestions li");
  if (!option) return;
  event.preventDefault();
  const box = document.querySelector("textarea[data-canned]");
  if (box) pickCanned(box, option);
});

// ---- times ---------------------------------------------------------------------------------

// One way of writing a time on every page: "8:30" today, "Yesterday 8:30", "Mon 8:30" within
// the week either side, "4 Dec, 8:30" this year, "4 Dec 2025, 8:30" before; a list row drops
// the clock past today ("Yesterday", "Mon", "4 Dec"). The exact time is the title. A time with
// data-zone (a campaign's) is written in that zone, with its name.
function dayKey(at, zone) {
  return new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit" }).format(at);
}

function friendlyTime(at, compact, zone) {
  const inZone = zone ? { timeZone: zone } : {};
  const [then, today] = [dayKey(at, zone), dayKey(new Date(), zone)];
  const days = Math.round((Date.parse(then) - Date.parse(today)) / 86400000);
  const clock = new Intl.DateTimeFormat(undefined, { ...inZone, hour: "numeric", minute: "2-digit" }).format(at);
  let day = "";
  if (days === -1) day = "Yesterday";
  else if (days === 1) day = "Tomorrow";
  else if (days !== 0 && Math.abs(days) < 7) day = new Intl.DateTimeFormat(undefined, { ...inZone, weekday: "short" }).format(at);
  else if (days !== 0) {
    const year = then.slice(0, 4) === today.slice(0, 4) ? {} : { year: "numeric" };
    day = new Intl.DateTimeFormat(undefined, { ...inZone, day: "numeric", month: "short", ...year }).format(at);
  }
  if (compact) return day || clock;
  const zoneName = zone
    ? " " + (new Intl.DateTimeFormat(undefined, { timeZone: zone, timeZoneName: "short" })
      .formatToParts(at).find((p) => p.type === "timeZoneName") || { value: zone }).value
    : "";
  return (day ? `${day}${days !== 0 && Math.abs(days) >= 7 ? "," : ""} ${clock}` : clock) + zoneName;
}

function localTimes(root) {
  for (const el of root.querySelectorAll("time[datetime]")) {
    const at = new Date(el.getAttribute("datetime"));
    if (isNaN(at)) continue;
    const zone = el.dataset.zone || undefined;
    try {
      el.textContent = friendlyTime(at, el.hasAttribute("data-compact"), zone);
      el.title = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short", ...(zone ? { timeZone: zone } : {}) }).format(at)
        + (zone ? ` (${zone})` : "");
    } catch (_) { /* a zone this browser does not know: the server's text stays */ }
  }
}

// ---- live regions --------------------------------------------------------------------------

// Re-reads this page and swaps in its live regions. A region being edited (an open disclosure,
// or the keyboard in one of its fields) is left alone; it is refreshed once, when the user is
// done with it (`deferred`), however many events came meanwhile.
// The page is asked for again with a header saying whether anyone is looking: a chat
// refreshed in a background tab is not marked read.
// Each live region's markup as the server sent it.
const served = new WeakMap();
let refreshing = null;
let refreshAgain = false;
let forceAgain = false;
let deferred = false;

function busy(region) {
  // An open disclosure, or a question asked beside a button, stays until it is answered.
  if (region.querySelector("details[open], .confirm-box")) return true;
  const active = document.activeElement;
  return Boolean(active && region.contains(active) && active.matches("input, textarea, select"));
}

async function refreshLive(force) {
  if (refreshing) {
    refreshAgain = true;
    forceAgain = forceAgain || Boolean(force);
    return refreshing;
  }
  // Nothing is fetched while every region is being edited. The list counts as edited only
  // while a form in it is open (a new chat's details): it is merged under the keyboard.
  const regions = [...document.querySelectorAll("[data-live]")];
  const editing = (r) => (r.id === "conversations" ? Boolean(r.querySelector("details[open], .confirm-box")) : busy(r));
  if (!force && regions.length && regions.every(editing)) {
    deferred = true;
    return;
  }
  refreshing = (async () => {
    try {
      const response = await fetch(location.href, {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      });
      if (response.redirected || !response.ok) {
        setTimeout(() => refreshLive(), 3000);
        return;
      }
      const next = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const region of document.querySelectorAll("[data-live]")) {
        // The conversation list is merged row by row, and never moves a row under the
        // pointer or the keyboard (its search field may be in use meanwhile).
        if (region.id === "conversations") {
          const fresh = next.getElementById("conversations");
          if (fresh && served.get(region) !== fresh.outerHTML) {
            served.set(region, fresh.outerHTML);
            mergeList(region, fresh);
          }
          continue;
        }
        if (!force && busy(region)) {
          deferred = true;
          continue;
        }
        const fresh = next.getElementById(region.id);
        // Unchanged: left alone, so that nothing under the pointer or the keyboard moves. The
        // server's markup is compared (times are rewritten in the browser's zone here); a
        // region with a data-live-key is unchanged while its key is, whatever the script did
        // to it (a template's parameter fields).
        if (fresh && served.get(region) === fresh.outerHTML) continue;
        if (fresh && region.dataset.liveKey && fresh.dataset.liveKey === region.dataset.liveKey) continue;
        if (fresh) {
          served.set(fresh, fresh.outerHTML);
          const focus = focusKey(region);
          region.replaceWith(fresh);
          localTimes(fresh);
          if (fresh.id === "chat") scrollChat();
          if (focus) restoreFocus(fresh, focus);
        }
      }
      showUnread(next.title);
    } catch (e) {
      console.warn("refresh failed; trying again", e);
      setTimeout(() => refreshLive(), 3000);
    }
  })();
  await refreshing;
  refreshing = null;
  if (refreshAgain) {
    const again = forceAgain;
    refreshAgain = false;
    forceAgain = false;
    await refreshLive(again);
  }
}

// ---- the conversation list: updated in place ------------------------------------------------

// Rows are keyed by phone. What changed in a row is written into it (its elements kept, so a
// click that has started still lands); new rows and a new order wait while the pointer or the
// keyboard is on the list, announced by a "new" button, and move in when the pointer leaves or
// the button is pressed, in one frame. The open conversation keeps its place.
const rowServed = new WeakMap();
let listPending = null;
let pointerOnList = false;

// Makes `el` look like `model`, keeping `el` and every child whose kind matches (the elements
// under the pointer stay the same elements).
function morph(el, model) {
  for (const { name } of [...el.attributes]) if (!model.hasAttribute(name)) el.removeAttribute(name);
  for (const { name, value } of [...model.attributes]) if (el.getAttribute(name) !== value) el.setAttribute(name, value);
  const mine = [...el.childNodes];
  const theirs = [...model.childNodes];
  theirs.forEach((node, i) => {
    const old = mine[i];
    if (!old) el.appendChild(node.cloneNode(true));
    else if (old.nodeType !== node.nodeType || old.nodeName !== node.nodeName) el.replaceChild(node.cloneNode(true), old);
    else if (old.nodeType === Node.TEXT_NODE) { if (old.nodeValue !== node.nodeValue) old.nodeValue = node.nodeValue; }
    else if (old.nodeType === Node.ELEMENT_NODE) morph(old, node);
  });
  for (let i = mine.length - 1; i >= theirs.length; i--) el.removeChild(mine[i]);
}

function rowsOf(ul) {
  return [...ul.children].filter((li) => li.matches("li.conv"));
}

// The rows are in use while the pointer is over them or the keyboard is on one (the search
// field, the views and a new chat's form are not rows: nothing moves under them).
function listEngaged(list) {
  return pointerOnList || list.querySelector("ul.conversations").contains(document.activeElement);
}

function mergeList(list, fresh) {
  list.dataset.unreadTotal = fresh.dataset.unreadTotal;
  // The views' counts, the empty note, the pager, the legend: written in place.
  for (const sel of ["nav.views", "nav.pager"]) {
    const mine = list.querySelector(sel);
    const theirs = fresh.querySelector(sel);
    if (mine && theirs) morph(mine, theirs);
  }
  const ul = list.querySelector("ul.conversations");
  const wanted = rowsOf(fresh.querySelector("ul.conversations"));
  for (const sel of ["p.empty", "p.legend"]) {
    const mine = list.querySelector(sel);
    const theirs = fresh.querySelector(sel);
    if (mine && theirs) morph(mine, theirs);
    else if (mine) mine.remove();
    else if (theirs) ul[sel === "p.empty" ? "before" : "after"](theirs.cloneNode(true));
  }
  const current = new Map(rowsOf(ul).map((li) => [li.dataset.phone, li]));
  for (const model of wanted) {
    const row = current.get(model.dataset.phone);
    if (row && rowServed.get(row) !== model.outerHTML) {
      morph(row, model);
      rowServed.set(row, model.outerHTML);
      localTimes(row);
    }
  }
  const shown = rowsOf(ul).map((li) => li.dataset.phone);
  const next = keepOpenInPlace(ul, wanted.map((li) => li.dataset.phone));
  if (shown.join() === next.join()) {
    listPending = null;
    showListNews(list, 0);
    return;
  }
  listPending = wanted;
  if (listEngaged(list)) {
    showListNews(list, next.filter((phone) => !shown.includes(phone)).length, true);
  } else {
    requestAnimationFrame(() => applyListOrder(list));
  }
}

function applyListOrder(list) {
  if (!listPending) return;
  const ul = list.querySelector("ul.conversations");
  const current = new Map(rowsOf(ul).map((li) => [li.dataset.phone, li]));
  const models = new Map(listPending.map((model) => [model.dataset.phone, model]));
  const rows = keepOpenInPlace(ul, listPending.map((model) => model.dataset.phone)).map((phone) => {
    const old = current.get(phone);
    if (old) return old;
    const model = models.get(phone);
    const row = model.cloneNode(true);
    rowServed.set(row, model.outerHTML);
    localTimes(row);
    return row;
  });
  ul.replaceChildren(...rows);
  listPending = null;
  showListNews(list, 0);
}

// The order `phones` with the open conversation where it is now, even when it has left the
// view (answered, in "Needs reply") or moved (read).
function keepOpenInPlace(ul, phones) {
  const rows = rowsOf(ul);
  const open = rows.findIndex((li) => li.getAttribute("aria-current") === "true");
  if (open < 0) return phones;
  const phone = rows[open].dataset.phone;
  const order = phones.filter((p) => p !== phone);
  order.splice(Math.min(open, order.length), 0, phone);
  return order;
}

// The marker: how many conversations are new, or only that the order changed.
function showListNews(list, fresh, pending) {
  let button = document.getElementById("list-news");
  if (!pending) {
    if (button) button.remove();
    return;
  }
  if (!button) {
    button = document.createElement("button");
    button.id = "list-news";
    button.type = "button";
    button.className = "small secondary";
    button.addEventListener("click", () => applyListOrder(list));
    // In the list's head, whose height is kept for it: nothing below moves when it comes.
    list.querySelector(".list-head h1").after(button);
  }
  button.textContent = fresh ? `${fresh} new — show` : "Updated — show";
}

function startList() {
  const list = document.getElementById("conversations");
  if (!list) return;
  for (const row of rowsOf(list.querySelector("ul.conversations"))) rowServed.set(row, row.outerHTML);
  const ul = list.querySelector("ul.conversations");
  ul.addEventListener("pointerenter", () => { pointerOnList = true; });
  ul.addEventListener("pointerleave", () => {
    pointerOnList = false;
    if (listPending && !listEngaged(list)) requestAnimationFrame(() => applyListOrder(list));
  });
  ul.addEventListener("focusout", () => {
    setTimeout(() => {
      if (listPending && !listEngaged(list)) applyListOrder(list);
    }, 0);
  });
}

// ---- opening a conversation: only the chat pane is loaded -----------------------------------

async function openChat(url, push) {
  const workspace = document.querySelector(".workspace");
  if (!workspace) { location.assign(url); return; }
  let next;
  try {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (!response.ok || response.redirected) { location.assign(url); return; }
    next = new DOMParser().parseFromString(await response.text(), "text/html");
  } catch (_) {
    location.assign(url);
    return;
  }
  const freshWorkspace = next.querySelector(".workspace");
  const freshChat = freshWorkspace && freshWorkspace.querySelector(".pane-chat");
  if (!freshChat) { location.assign(url); return; }
  if (push) history.pushState({ chat: true }, "", url);
  workspace.querySelector(".pane-chat").replaceWith(freshChat);
  workspace.querySelector(".pane-contact")?.remove();
  const freshContact = freshWorkspace.querySelector(".pane-contact");
  if (freshContact) workspace.append(freshContact);
  workspace.className = freshWorkspace.className;
  for (const region of workspace.querySelectorAll(".pane-chat [data-live], .pane-contact[data-live]")) {
    served.set(region, region.outerHTML);
  }
  document.title = next.title;
  const phone = freshChat.querySelector("#chat")?.dataset.phone;
  const list = document.getElementById("conversations");
  if (list) {
    for (const row of rowsOf(list.querySelector("ul.conversations"))) {
      if (row.dataset.phone === phone) row.setAttribute("aria-current", "true");
      else row.removeAttribute("aria-current");
    }
  }
  hideReplying();
  startChat(workspace);
  const box = document.getElementById("message");
  if (box) box.focus();
}

// What a chat pane needs once it is on the page (a full load, or opened from the list).
function startChat(root) {
  localTimes(root);
  scrollChat();
  startTemplatePickers(root);
  startTypingIndicator(root);
  const chat = document.getElementById("chat");
  if (chat && Number(chat.dataset.unread) > 0 && document.visibilityState === "visible") {
    markChatRead(chat).then(() => refreshLive(true));
  }
}

document.addEventListener("click", (event) => {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const link = event.target.closest("#conversations a[href^='/chat/']");
  if (!link || !document.querySelector(".workspace .pane-chat")) return;
  event.preventDefault();
  openChat(link.href, true);
});

window.addEventListener("popstate", () => {
  if (location.pathname.startsWith("/chat/") && document.querySelector(".workspace .pane-chat")) openChat(location.href, false);
  else location.reload();
});

// A region left alone while it was being edited catches up once the editing ends: a
// disclosure closes, or the keyboard leaves its field.
function catchUpWhenIdle() {
  if (!deferred) return;
  setTimeout(() => {
    const regions = [...document.querySelectorAll("[data-live]")];
    if (deferred && !regions.some(busy)) {
      deferred = false;
      refreshSoon(0);
    }
  }, 50);
}
document.addEventListener("toggle", catchUpWhenIdle, true);
document.addEventListener("focusout", catchUpWhenIdle);

// Where the keyboard focus was inside a region about to be replaced: the element's id, or
// the contact row it was in.
function focusKey(region) {
  const active = document.activeElement;
  if (!active || !region.contains(active) || active === region) return null;
  if (active.id) return { id: active.id };
  const row = active.closest("[data-phone]");
  return row ? { phone: row.dataset.phone } : { region: true };
}

function restoreFocus(region, key) {
  let target = null;
  if (key.id) target = document.getElementById(key.id);
  if (!target && key.phone) {
    const row = [...region.querySelectorAll("[data-phone]")].find((r) => r.dataset.phone === key.phone);
    target = row && (row.querySelector("details summary") || row.querySelector("a"));
  }
  // The control used went away (an "Assign to me" that is done): in a chat, the keyboard goes
  // back to the message box.
  if (!target) target = document.getElementById("message");
  if (!target) {
    region.tabIndex = -1;
    target = region;
  }
  target.focus();
}

// The tab's title carries the unread count ("(3) Inbox"); a rise notifies when the person
// allowed it and is looking elsewhere.
let unreadSeen = null;
function showUnread(title) {
  if (title) document.title = title;
  const list = document.getElementById("conversations");
  if (!list) return;
  const now = Number(list.dataset.unreadTotal || 0);
  if (unreadSeen !== null && now > unreadSeen && "Notification" in window
      && Notification.permission === "granted" && document.hidden) {
    new Notification("New WhatsApp message", { body: `${now} conversation${now === 1 ? "" : "s"} unread`, tag: "heydoc-unread" });
  }
  unreadSeen = now;
}

function scrollChat() {
  const chat = document.getElementById("chat");
  if (chat) chat.scrollTop = chat.scrollHeight;
}

// At most one refresh per `delay` however fast events come (a debounce would starve while a
// campaign is sending).
let pending = null;
function refreshSoon(delay) {
  if (pending) return;
  pending = setTimeout(() => { pending = null; refreshLive(); }, delay);
}

// ---- the event stream: one per browser ----------------------------------------------------

// A browser opens at most six HTTP/1.1 connections to a site, and a server-sent event stream
// holds one for as long as it is open. So one tab (the leader, holding the "heydoc-live" Web
// Lock) keeps the only stream and passes its events to the other tabs over a BroadcastChannel.
// A page that goes away (pagehide: a navigation, the back/forward cache, a closed tab) closes
// its stream and gives up the lead, and another tab takes it; a page shown again from the
// back/forward cache (pageshow) joins again. Where Web Locks are missing (a plain-HTTP origin
// other than localhost), each page keeps its own stream, still closed on pagehide.
// `deliver(type, data)` receives "message", "status", "conversation" and "replying" events,
// and "open" and "lost".
function connectStream(deliver) {
  const open = (forward) => {
    const source = new EventSource("/api/events");
    for (const type of ["message", "status", "conversation", "replying"]) {
      source.addEventListener(type, (event) => forward(type, event.data));
    }
    source.addEventListener("error", () => forward("lost", null));
    source.addEventListener("open", () => forward("open", null));
    return source;
  };
  if (!("locks" in navigator) || !("BroadcastChannel" in window)) {
    const source = open(deliver);
    return () => source.close();
  }
  const channel = new BroadcastChannel("heydoc-live");
  let leading = null;
  let connected = false;
  // Whether another tab led while this one followed.
  let followed = false;
  channel.onmessage = ({ data }) => {
    if (data.type === "hello") {
      if (leading && connected) channel.postMessage({ type: "open", data: null });
      return;
    }
    if (data.type === "open") followed = true;
    deliver(data.type, data.data);
  };
  const stop = new AbortController();
  let release = null;
  const done = new Promise((resolve) => { release = resolve; });
  navigator.locks
    .request("heydoc-live", { signal: stop.signal }, async () => {
      // Taking over from a tab that left: what happened between its stream and this one is
      // re-read once this stream is open.
      if (followed) deliver("lost", null);
      leading = open((type, data) => {
        connected = type === "open" ? true : type === "lost" ? false : connected;
        deliver(type, data);
        channel.postMessage({ type, data });
      });
      await done;
      leading.close();
      leading = null;
    })
    .catch(() => { /* aborted before this tab led */ });
  channel.postMessage({ type: "hello", data: null });
  return () => {
    stop.abort();
    release();
    channel.close();
  };
}

// A colleague writing a reply in the open chat: "anna is writing a reply…" above the box, for
// as long as WhatsApp's own typing indicator lasts (25 s; the page re-sends it every 20 s while
// someone writes), or until a new message arrives in the chat (most likely their reply).
const REPLYING_FOR_MS = 25000;
let replyingTimer = null;

function showReplying(change) {
  const chat = document.getElementById("chat");
  const line = document.getElementById("replying");
  if (!chat || !line || change.by == null) return;
  if (!(change.contact_ids || []).includes(Number(chat.dataset.contactId))) return;
  if (String(change.by) === chat.dataset.me) return;
  const option = document.querySelector(`#assignee option[value="${Number(change.by)}"]`);
  const who = option ? option.textContent.replace(/ \(me\)$/, "").trim() : "A colleague";
  line.textContent = `${who} is writing a reply…`;
  line.hidden = false;
  clearTimeout(replyingTimer);
  replyingTimer = setTimeout(hideReplying, REPLYING_FOR_MS);
}

function hideReplying() {
  clearTimeout(replyingTimer);
  const line = document.getElementById("replying");
  if (line) {
    line.hidden = true;
    line.textContent = "";
  }
}

function startLive() {
  if (!document.querySelector("[data-live]")) return;
  const onEvent = (type, data) => {
    let change;
    try { change = JSON.parse(data); } catch (_) { change = { all: true }; }
    // Not a change to re-read: only who is writing where.
    if (type === "replying") {
      showReplying(change);
      return;
    }
    const chat = document.getElementById("chat");
    if (chat) {
      const id = Number(chat.dataset.contactId);
      const here = change.all || (change.contact_ids || []).includes(id);
      if (here && type === "message") hideReplying();
      if (here && type === "message" && document.visibilityState === "visible") {
        markChatRead(chat).then(() => refreshSoon(0));
        return;
      }
    }
    refreshSoon(document.getElementById("campaign") ? 800 : 150);
  };
  // After a reconnect, events sent meanwhile are gone: re-read once.
  let lost = false;
  const deliver = (type, data) => {
    if (type === "lost") {
      lost = true;
    } else if (type === "open") {
      document.body.dataset.live = "connected";
      if (lost) { lost = false; readAndRefresh(); }
    } else {
      onEvent(type, data);
    }
  };
  let disconnect = connectStream(deliver);
  window.addEventListener("pagehide", () => {
    if (disconnect) disconnect();
    disconnect = null;
    delete document.body.dataset.live;
  });
  window.addEventListener("pageshow", (event) => {
    if (!event.persisted || disconnect) return;
    disconnect = connectStream(deliver);
    readAndRefresh();
  });
  // Back to a chat that was in the background: what arrived meanwhile is now read.
  document.addEventListener("visibilitychange", () => {
    const chat = document.getElementById("chat");
    if (document.visibilityState === "visible" && chat && Number(chat.dataset.unread) > 0) {
      markChatRead(chat).then(() => refreshLive());
    }
  });
  // A campaign's runs are created by the scheduler, which sends no chat events: poll gently.
  const campaign = document.getElementById("campaign");
  if (campaign && ["pending", "paused"].includes(campaign.dataset.status)) {
    setInterval(() => { if (!document.hidden) refreshLive(); }, 3000);
  }
}

// ---- the campaign form ---------------------------------------------------------------------

// The form's "Repeats" as the API's recurrence: weekdays and days of the month become a cron
// expression at the first run's time of day.
function recurrenceOf(form) {
  const v = (name) => form.elements[name].value.trim();
  const kind = v("recurrence");
  const [, hh = "9", mm = "0"] = /T(\d{2}):(\d{2})/.exec(v("scheduled_time")) || [];
  const at = `${Number(mm)} ${Number(hh)}`;
  if (kind === "weekdays") return `${at} * * 1-5`;
  if (kind === "weekly") {
    const days = [...form.querySelectorAll("input[name=weekday]:checked")].map((el) => el.value);
    return days.length ? `${at} * * ${days.join(",")}` : "weekly";
  }
  if (kind === "monthly") {
    const day = Number(v("monthday"));
    return day >= 1 && day <= 31 ? `${at} ${day} * *` : "monthly";
  }
  if (kind === "cron") return v("cron");
  return kind;
}

function campaignBody(form) {
  const v = (name) => form.elements[name].value.trim();
  const body = {
    recipients: v("recipients").split(/[\s,;]+/).filter(Boolean),
    tag_ids: [...form.querySelectorAll("input[name='tag_ids[]']:checked")].map((el) => Number(el.value)),
    scheduled_time: v("scheduled_time"),
    timezone: v("timezone") || "UTC",
    recurrence: recurrenceOf(form),
  };
  if (v("name")) body.name = v("name");
  if (v("message")) body.message = v("message");
  const template = templateOf(form);
  if (template) body.template = template;
  if (v("daily_limit")) body.daily_limit = Number(v("daily_limit"));
  if (body.recurrence !== "none") {
    if (v("end") === "time" && v("end_time")) body.end_time = v("end_time");
    if (v("end") === "count" && v("max_occurrences")) body.max_occurrences = Number(v("max_occurrences"));
  }
  return body;
}

// The API's error, in the form's words, next to the field it is about. Returns whether it
// found the field (otherwise the form's own error line says it).
// The campaign form's words for the API's rule codes (`heydoc_domain::codes`), by code; the
// API's field ("recipients[3]", "end_time") says where on the form the words go.
const FIELD_WORDS = {
  empty_audience: () => "Choose who receives it: type phone numbers, or tick at least one tag.",
  too_many_recipients: (detail) => `Too many phone numbers typed (${detail}). Tick a tag for a larger audience.`,
  invalid_phone: (detail) => `One of the phone numbers is not valid: ${detail}. Write each with its country code, such as +91 98000 00002.`,
  unknown_tag: () => "One of the ticked tags no longer exists. Reload the page and choose again.",
  in_the_past: () => "The first run is in the past. Pick a time later than now.",
  invalid_time: (_, field) => field === "scheduled_time" ? "Pick the date and time of the first run." : "Pick the date and time of the end, or leave it empty.",
  unknown_time_zone: () => "Pick a time zone from the list, such as Asia/Kolkata or Europe/London.",
  invalid_recurrence: (detail) => `That repeat pattern is not one HeyDoc understands (${detail}). Pick days above, or check the cron expression: minute hour day month weekday.`,
  invalid_end: () => "The end must come after the first run, and the number of runs must be at least 1.",
  out_of_range: () => "The daily limit must be a whole number of people, 1 or more.",
  too_long: (detail, field) => field === "name" ? "The name can be at most 120 characters." : `The message is too long: ${detail}.`,
  empty_message: () => "Write the message, or pick a template to send.",
  invalid_placeholder: (detail) => `The message cannot be sent as it is: ${detail}`,
  template_unusable: (detail) => `The template cannot be used: ${detail}`,
};

// Where on the campaign form an API field's error is shown.
function formFieldOf(field) {
  if (field.startsWith("recipients") || field === "tag_ids") return "audience";
  if (field === "end_time" || field === "max_occurrences") return "end";
  return field;
}

// The part of an API message after its field's name ("recipients: ..." gives "...").
function detailOf(message) {
  const colon = message.indexOf(": ");
  return colon < 0 ? message : message.slice(colon + 2);
}

function clearFieldErrors(form) {
  for (const el of form.querySelectorAll(".field-error")) { el.hidden = true; el.textContent = ""; }
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

// Shows an API error beside the field it names, in the form's words; false when the error
// names no field of this form (the caller shows it whole).
function showFieldError(form, error) {
  const words = FIELD_WORDS[error.code];
  if (!words || !error.field) return false;
  const field = formFieldOf(error.field);
  const line = document.getElementById(`error-${field}`);
  if (!line) return false;
  line.textContent = words(detailOf(error.message), error.field);
  line.hidden = false;
  const input = form.elements[field];
  if (input && input.setAttribute) {
    input.setAttribute("aria-invalid", "true");
    input.focus();
  } else {
    line.scrollIntoView({ block: "center" });
  }
  return true;
}

// Only the answer to the latest question is shown, whatever order answers come back in.
let previewSeq = 0;
async function previewCampaign(form) {
  const note = document.getElementById("preview-note");
  const list = document.getElementById("next-runs");
  const body = campaignBody(form);
  if (!body.scheduled_time) return;
  const seq = ++previewSeq;
  try {
    const answer = await api("POST", "/api/scheduled-messages/preview", body);
    if (seq !== previewSeq) return;
    const inZone = runFormat(answer.timezone);
    list.replaceChildren(...answer.next_runs.map((at, i) => {
      const li = document.createElement("li");
      const time = document.createElement("time");
      time.dateTime = at;
      time.dataset.fixed = "";
      time.textContent = inZone ? inZone.format(new Date(at)) : answer.next_runs_local[i];
      li.append(time);
      return li;
    }));
    note.textContent = answer.next_runs.length < 5 ? "These are all its runs." : `The next five runs, in ${answer.timezone}.`;
    note.classList.remove("form-error");
    clearFieldErrors(form);
    showSample(answer.sample);
  } catch (e) {
    if (seq !== previewSeq) return;
    list.replaceChildren();
    showSample(null);
    clearFieldErrors(form);
    if (showFieldError(form, e)) {
      note.textContent = "Fix the field marked above to see the runs.";
      note.classList.remove("form-error");
    } else {
      note.textContent = e.message;
      note.classList.add("form-error");
    }
  }
}

// Runs as people read them, with the weekday: "Mon, 7 Dec 2026, 09:00" in the campaign's zone.
function runFormat(zone) {
  try {
    return new Intl.DateTimeFormat(undefined, {
      weekday: "short", day: "numeric", month: "short", year: "numeric",
      hour: "2-digit", minute: "2-digit", timeZone: zone, timeZoneName: "short",
    });
  } catch (_) {
    return null;
  }
}

// How many people the audience reaches, who it skips, what it will likely cost, and whether it
// fits the account's messaging limit.
let estimateSeq = 0;
async function estimateCampaign(form) {
  const text = document.getElementById("estimate-text");
  const warnings = document.getElementById("estimate-warnings");
  if (!text) return;
  const full = campaignBody(form);
  const body = { recipients: full.recipients, tag_ids: full.tag_ids };
  if (full.template) body.template = full.template;
  const seq = ++estimateSeq;
  if (!body.recipients.length && !body.tag_ids.length) {
    text.textContent = "Choose who receives it to see how many people it reaches and what it will likely cost.";
    text.classList.remove("form-error");
    warnings.replaceChildren();
    return;
  }
  try {
    const e = await api("POST", "/api/scheduled-messages/estimate", body);
    if (seq !== estimateSeq) return;
    const people = `${e.audience} ${e.audience === 1 ? "person" : "people"}`;
    const cost = e.category === "service"
      ? "free text: no charge inside the 24-hour window (WhatsApp refuses it outside)"
      : `${e.category} template: about ${e.estimated_cost.toFixed(2)} ${e.currency}`;
    text.textContent = `Reaches ${people}; ${cost}.`;
    text.classList.remove("form-error");
    warnings.replaceChildren(...e.warnings.map((w) => {
      const li = document.createElement("li");
      li.textContent = w;
      if (e.exceeds_limit) li.classList.add("form-error");
      return li;
    }));
  } catch (err) {
    if (seq !== estimateSeq) return;
    text.textContent = err.message;
    text.classList.add("form-error");
    warnings.replaceChildren();
  }
}

// The message as the audience's first member will read it.
function showSample(sample) {
  const box = document.getElementById("sample");
  if (!box) return;
  box.hidden = !sample;
  if (!sample) return;
  const who = sample.name ? `${sample.name} (+${sample.phone})` : `+${sample.phone}`;
  document.getElementById("sample-who").textContent = `As ${who} will read it:`;
  const text = document.getElementById("sample-text");
  text.textContent = sample.text ?? sample.problem;
  text.classList.toggle("form-error", !sample.text);
}

async function submitCampaign(form) {
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  showError(form, "");
  try {
    const body = campaignBody(form);
    await attachFile(form, body);
    clearFieldErrors(form);
    const answer = await api("POST", "/api/scheduled-messages", body);
    location.assign(`/campaigns/${answer.data.id}`);
  } catch (e) {
    if (!showFieldError(form, e)) showError(form, e.message);
  } finally {
    button.disabled = false;
  }
}

function localInputValue(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function startCampaignForm() {
  const form = document.querySelector("form[data-campaign]");
  if (!form) return;
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (zone) form.elements.timezone.value = zone;
  if (!form.elements.scheduled_time.value) {
    const soon = new Date(Date.now() + 15 * 60 * 1000);
    soon.setMinutes(Math.ceil(soon.getMinutes() / 5) * 5, 0, 0);
    form.elements.scheduled_time.value = localInputValue(soon);
  }
  const sync = () => {
    const repeats = form.elements.recurrence.value;
    document.getElementById("cron-field").hidden = repeats !== "cron";
    document.getElementById("weekday-field").hidden = repeats !== "weekly";
    document.getElementById("monthday-field").hidden = repeats !== "monthly";
    document.getElementById("ends-field").hidden = repeats === "none";
    document.getElementById("end-time-field").hidden = form.elements.end.value !== "time";
    document.getElementById("max-field").hidden = form.elements.end.value !== "count";
    // The first run's weekday and day are the defaults.
    const first = form.elements.scheduled_time.value;
    if (repeats === "weekly" && first && !form.querySelector("input[name=weekday]:checked")) {
      const day = new Date(first).getDay();
      const box = form.querySelector(`input[name=weekday][value='${day}']`);
      if (box) box.checked = true;
    }
    if (repeats === "monthly" && first && !form.elements.monthday.value) {
      form.elements.monthday.value = new Date(first).getDate();
    }
  };
  let timer = null;
  const changed = () => {
    sync();
    clearTimeout(timer);
    timer = setTimeout(() => {
      previewCampaign(form);
      estimateCampaign(form);
    }, 300);
  };
  form.addEventListener("input", changed);
  form.addEventListener("change", changed);
  changed();
}

// ---- start ---------------------------------------------------------------------------------

// After events may have been missed: an open chat someone looks at is read (what came
// meanwhile included), then the page re-reads itself.
function readAndRefresh() {
  const chat = document.getElementById("chat");
  if (chat && document.visibilityState === "visible") {
    markChatRead(chat).then(() => refreshSoon(0));
  } else {
    refreshSoon(0);
  }
}

// Marks the open chat read at the API (a POST: showing a page never changes anything).
async function markChatRead(chat) {
  try {
    await api("POST", `/api/messages/${encodeURIComponent(chat.dataset.phone)}/read`);
  } catch (_) { /* the next refresh shows what is unread */ }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const region of document.querySelectorAll("[data-live]")) served.set(region, region.outerHTML);
  startChat(document);
  showUnread(null);
  const notify = document.querySelector("[data-notify]");
  if (notify && "Notification" in window && Notification.permission === "default") notify.hidden = false;
  startList();
  startLive();
  startCampaignForm();
});

// ---- contact import ------------------------------------------------------------------------

function showImport(result) {
  document.getElementById("import-result").hidden = false;
  document.getElementById("import-progress").value = result.progress;
  const status = {
    running: `Importing: ${result.lines} rows read…`,
    done: `Done: ${result.lines} rows read.`,
    failed: `Stopped: ${result.error}`,
    interrupted: "Interrupted: the server stopped during the import. What was counted is in.",
  }[result.status] || result.status;
  const line = document.getElementById("import-status");
  line.textContent = status;
  line.classList.toggle("form-error", result.status === "failed" || result.status === "interrupted");
  for (const el of document.querySelectorAll("#import-result [data-count]")) {
    el.textContent = result[el.dataset.count];
  }
  const rejects = document.getElementById("import-rejects");
  rejects.hidden = !result.rejects.length;
  rejects.querySelector("tbody").replaceChildren(...result.rejects.map((r) => {
    const tr = document.createElement("tr");
    for (const text of [r.line, r.content || "", r.reason]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    return tr;
  }));
}

// The file's first rows and what each will do, before anything is imported.
function showPreview(p) {
  const section = document.getElementById("import-preview");
  section.hidden = false;
  const more = p.more ? ` (the first ${p.rows_read} rows; the rest are checked as they are imported)` : "";
  document.getElementById("preview-summary").textContent =
    `${p.rows_read} rows${more}: ${p.created} new, ${p.updated} changed, ${p.unchanged} unchanged, ${p.rejected} refused.`;
  const words = { create: "be added", update: "change", unchanged: "stay as it is", reject: "be refused" };
  section.querySelector("tbody").replaceChildren(...p.rows.map((r) => {
    const tr = document.createElement("tr");
    tr.dataset.action = r.action;
    const who = r.action === "reject" ? r.content : [r.name, r.phone && `+${r.phone}`].filter(Boolean).join(" ");
    const details = r.action === "reject" ? r.reason : r.changes.join("; ");
    [String(r.line), who, words[r.action] || r.action, details].forEach((text, i) => {
      const td = document.createElement("td");
      td.dataset.label = ["Line", "Contact", "Will", "Details"][i];
      td.textContent = text;
      tr.append(td);
    });
    return tr;
  }));
}

function resetImport(form) {
  delete form.dataset.checked;
  document.getElementById("import-preview").hidden = true;
  document.getElementById("import-button").textContent = "Check the file";
  document.getElementById("import-cancel").hidden = true;
}

async function submitImport(form) {
  const file = form.elements.file.files[0];
  if (!file) return;
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  showError(form, "");
  if (!form.dataset.checked) {
    try {
      const answer = await postFile("/api/contacts/import/preview", file, "text/csv");
      showPreview(answer);
      form.dataset.checked = "yes";
      button.textContent = answer.more ? "Import the whole file" : `Import ${answer.rows_read - answer.rejected} rows`;
      document.getElementById("import-cancel").hidden = false;
    } catch (e) {
      showError(form, e.message);
    } finally {
      button.disabled = false;
    }
    return;
  }
  try {
    const answer = await postFile("/api/contacts/import", file, "text/csv");
    let result = answer.data;
    showImport(result);
    while (result.status === "running") {
      await new Promise((done) => setTimeout(done, 500));
      result = await api("GET", `/api/imports/${result.id}`);
      showImport(result);
    }
    // Imported: another file is checked first again.
    delete form.dataset.checked;
    button.textContent = "Check the file";
    document.getElementById("import-cancel").hidden = true;
  } catch (e) {
    showError(form, e.message);
  } finally {
    button.disabled = false;
  }
}

document.addEventListener("change", (event) => {
  if (event.target.matches("#import-file")) resetImport(event.target.form);
});
document.addEventListener("click", (event) => {
  if (event.target.matches("#import-cancel")) {
    const form = event.target.form;
    form.reset();
    resetImport(form);
    form.elements.file.focus();
  }
});

document.addEventListener("submit", (event) => {
  if (event.target.matches("form[data-import]")) {
    event.preventDefault();
    submitImport(event.target);
  }
});
