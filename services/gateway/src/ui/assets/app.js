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

function startTemplatePickers() {
  for (const picker of document.querySelectorAll("[data-template-picker]")) {
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
function startTypingIndicator() {
  const box = document.querySelector("form.send textarea[name=message]");
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
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": file.type || "application/octet-stream", Accept: "application/json" },
    body: file,
  });
  const answer = await response.json().catch(() => null);
  if (!response.ok) throw new Error((answer && answer.message) || `${response.status} ${response.statusText}`);
  body.media = { upload_id: answer.data.id };
  if (!body.message) body.message = file.name;
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

async function submitApiForm(form) {
  if (form.dataset.confirm && !confirm(form.dataset.confirm)) return;
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
      await refreshLive(true);
    } else if (then.startsWith("secret:")) {
      // A key or signing secret, shown once; the list below refreshes.
      const box = document.getElementById("secret-box");
      document.getElementById("secret-output").textContent = data[then.slice("secret:".length)] || "";
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
    if (button) button.disabled = false;
  }
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
});

// ---- times ---------------------------------------------------------------------------------

const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
function localTimes(root) {
  for (const el of root.querySelectorAll("time[datetime]:not([data-fixed])")) {
    const at = new Date(el.getAttribute("datetime"));
    if (!isNaN(at)) {
      el.title = el.textContent;
      el.textContent = timeFormat.format(at);
    }
  }
}

// ---- live regions --------------------------------------------------------------------------

// Re-reads this page and swaps in its live regions. A region being edited (an open disclosure,
// or the keyboard in one of its fields) is left alone; it is refreshed once, when the user is
// done with it (`deferred`), however many events came meanwhile.
// The page is asked for again with a header saying whether anyone is looking: a chat
// refreshed in a background tab is not marked read.
let refreshing = null;
let refreshAgain = false;
let forceAgain = false;
let deferred = false;

function busy(region) {
  if (region.querySelector("details[open]")) return true;
  const active = document.activeElement;
  return Boolean(active && region.contains(active) && active.matches("input, textarea, select"));
}

async function refreshLive(force) {
  if (refreshing) {
    refreshAgain = true;
    forceAgain = forceAgain || Boolean(force);
    return refreshing;
  }
  const regions = [...document.querySelectorAll("[data-live]")];
  if (!force && regions.length && regions.every(busy)) {
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
        if (!force && busy(region)) {
          deferred = true;
          continue;
        }
        const fresh = next.getElementById(region.id);
        if (fresh) {
          const focus = focusKey(region);
          region.replaceWith(fresh);
          localTimes(fresh);
          if (fresh.id === "chat") scrollChat();
          if (focus) restoreFocus(fresh, focus);
        }
      }
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
  if (!target) {
    region.tabIndex = -1;
    target = region;
  }
  target.focus();
}

function scrollChat() {
  const chat = document.getElementById("chat");
  if (chat) chat.lastElementChild?.scrollIntoView({ block: "end" });
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
// `deliver(type, data)` receives "message" and "status" events, and "open" and "lost".
function connectStream(deliver) {
  const open = (forward) => {
    const source = new EventSource("/api/events");
    for (const type of ["message", "status"]) {
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

function startLive() {
  if (!document.querySelector("[data-live]")) return;
  const onEvent = (type, data) => {
    let change;
    try { change = JSON.parse(data); } catch (_) { change = { all: true }; }
    const chat = document.getElementById("chat");
    if (chat) {
      const id = Number(chat.dataset.contactId);
      if (!change.all && !(change.contact_ids || []).includes(id)) return;
      if (type === "message" && document.visibilityState === "visible") {
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

function campaignBody(form) {
  const v = (name) => form.elements[name].value.trim();
  const body = {
    recipients: v("recipients").split(/[\s,;]+/).filter(Boolean),
    tag_ids: [...form.querySelectorAll("input[name='tag_ids[]']:checked")].map((el) => Number(el.value)),
    scheduled_time: v("scheduled_time"),
    timezone: v("timezone") || "UTC",
    recurrence: v("recurrence") === "cron" ? v("cron") : v("recurrence"),
  };
  if (v("message")) body.message = v("message");
  const template = templateOf(form);
  if (template) body.template = template;
  if (v("daily_limit")) body.daily_limit = Number(v("daily_limit"));
  if (v("end") === "time" && v("end_time")) body.end_time = v("end_time");
  if (v("end") === "count" && v("max_occurrences")) body.max_occurrences = Number(v("max_occurrences"));
  return body;
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
    list.replaceChildren(...answer.next_runs_local.map((text, i) => {
      const li = document.createElement("li");
      const time = document.createElement("time");
      time.dateTime = answer.next_runs[i];
      time.textContent = text;
      li.append(time);
      return li;
    }));
    note.textContent = answer.next_runs.length < 5 ? "These are all its runs." : `The next five runs, in ${answer.timezone}.`;
    note.classList.remove("form-error");
    showSample(answer.sample);
  } catch (e) {
    if (seq !== previewSeq) return;
    list.replaceChildren();
    showSample(null);
    note.textContent = e.message;
    note.classList.add("form-error");
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
    const answer = await api("POST", "/api/scheduled-messages", body);
    location.assign(`/campaigns/${answer.data.id}`);
  } catch (e) {
    showError(form, e.message);
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
    document.getElementById("cron-field").hidden = form.elements.recurrence.value !== "cron";
    document.getElementById("end-time-field").hidden = form.elements.end.value !== "time";
    document.getElementById("max-field").hidden = form.elements.end.value !== "count";
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
  const chat = document.getElementById("chat");
  if (chat && Number(chat.dataset.unread) > 0 && document.visibilityState === "visible") {
    markChatRead(chat).then(() => refreshLive(true));
  }
  localTimes(document);
  scrollChat();
  startLive();
  startTemplatePickers();
  startCampaignForm();
  startTypingIndicator();
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
    for (const text of [r.line, r.reason]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    return tr;
  }));
}

async function submitImport(form) {
  const file = form.elements.file.files[0];
  if (!file) return;
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  showError(form, "");
  try {
    const response = await fetch("/api/contacts/import", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "text/csv", Accept: "application/json" },
      body: file,
    });
    const answer = await response.json().catch(() => null);
    if (!response.ok) throw new Error((answer && answer.message) || `${response.status} ${response.statusText}`);
    let result = answer.data;
    showImport(result);
    while (result.status === "running") {
      await new Promise((done) => setTimeout(done, 500));
      result = await api("GET", `/api/imports/${result.id}`);
      showImport(result);
    }
  } catch (e) {
    showError(form, e.message);
  } finally {
    button.disabled = false;
  }
}

document.addEventListener("submit", (event) => {
  if (event.target.matches("form[data-import]")) {
    event.preventDefault();
    submitImport(event.target);
  }
});
