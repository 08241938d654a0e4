/* loaxa console core: strings, API calls (session cookie + X-CSRF-Token), formatting. */
"use strict";
(function () {
  const meta = (name) => (document.querySelector(`meta[name="loaxa-${name}"]`) || {}).content || "";
  const strings = JSON.parse((document.getElementById("lx-strings") || {}).textContent || "{}");
  const LX = {
    csrf: meta("csrf"),
    apiBase: meta("api"),
    tz: meta("tz") || "Asia/Ho_Chi_Minh",
    lang: meta("lang") || "vi",
    user: meta("user"),
    permissions: new Set(meta("permissions").split(" ").filter(Boolean)),
  };
  const locale = () => (LX.lang === "vi" ? "vi-VN" : "en-GB");

  LX.can = (permission) => LX.permissions.has(permission);

  LX.t = function (key, params) {
    let text = strings[key] || key;
    for (const [k, v] of Object.entries(params || {})) text = text.split(`{${k}}`).join(String(v));
    return text;
  };

  class ApiError extends Error {
    constructor(status, body) {
      super((body && (body.detail || body.title)) || `HTTP ${status}`);
      this.status = status;
      this.body = body || {};
    }
  }
  LX.ApiError = ApiError;

  LX.headers = function (extra) {
    const headers = Object.assign({ Accept: "application/json" }, extra || {});
    if (LX.csrf) headers["X-CSRF-Token"] = LX.csrf;
    return headers;
  };

  LX.api = async function (method, path, body, extraHeaders) {
    const init = { method, headers: LX.headers(extraHeaders), credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(LX.apiBase + path, init);
    if (response.status === 401 && !path.startsWith("/auth/login")) {
      window.location.assign("/console/login?next=" + encodeURIComponent(location.pathname));
      throw new ApiError(401, { detail: LX.t("error.session_ended") });
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = { detail: text }; }
    if (!response.ok) throw new ApiError(response.status, data);
    return { data, etag: response.headers.get("ETag"), status: response.status };
  };
  LX.get = async (path) => (await LX.api("GET", path)).data;

  /** A readable message for an API error, naming the fields of a 422. */
  const known = (key) => (strings[key] ? strings[key] : "");
  const slug = (text) => String(text || "").toLowerCase().replace(/[^a-z0-9]+/g, "_");

  // Parameter values the catalogue names (a cluster kind, a schedule's state, a rejection
  // reason, a kind of target): said in the reader's language, else as they are.
  const NAMED = { kind: "kind.", state: "status.", reason: "media.reason_", target: "problem.target_",
    bulletin_status: "bulletins.status_" };
  const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/;
  function spoken(name, value) {
    if (Array.isArray(value)) return value.map((v) => spoken(name, v)).join(", ");
    if (value === null || value === undefined || typeof value === "object") return "";
    if (typeof value === "string" && NAMED[name] && known(NAMED[name] + value)) return known(NAMED[name] + value);
    if (typeof value === "string" && ISO_INSTANT.test(value) && !Number.isNaN(Date.parse(value))) {
      return LX.fmtDateTime(value);
    }
    return String(value);
  }

  /** A problem's parameters (its extension members) ready for ``LX.t``. */
  LX.problemParams = function (body) {
    const params = {};
    for (const [name, value] of Object.entries(body || {})) params[name] = spoken(name, value);
    return params;
  };

  /** The catalogue's sentence for a problem's ``code`` (``code.<code>``) with its parameters
      (ids, names, times), or "" for a code this console does not know. */
  LX.problemByCode = function (body) {
    const key = body && body.code ? `code.${body.code}` : "";
    return key && known(key) ? LX.t(key, LX.problemParams(body)) : "";
  };

  /** A field of a validation problem in the reader's words: ``fieldname.<name>`` of its last
      named segment (items.0.media_id -> media_id), else its API path; "" for the whole body. */
  LX.fieldLabel = function (field) {
    const path = String(field || "");
    if (path === "(body)") return "";
    const name = path.split(".").filter((part) => !/^\d+$/.test(part)).pop() || "";
    return known(`fieldname.${name}`) || path;
  };

  /** What is wrong with a field: the catalogue's ``field.<type>`` with pydantic's parameters
      (max_length, ge...); our own validators' sentences (value_error) and types the catalogue
      does not know stay the API's English message. */
  LX.fieldMessage = function (e) {
    const key = e.type && e.type !== "value_error" ? `field.${e.type}` : "";
    return key && known(key) ? LX.t(key, e.params || {}) : String(e.message || "");
  };

  /** "Label: what is wrong" for one entry of a problem's ``errors``. */
  LX.fieldProblemText = function (e) {
    const label = LX.fieldLabel(e.field);
    const message = LX.fieldMessage(e);
    return label ? `${label}: ${message}` : message;
  };

  /** Any refusal in the reader's language: by its ``code`` from the catalogue; a problem
      without a known code by its title, with the API's English detail for the specifics. */
  LX.problemText = function (err) {
    if (!(err instanceof ApiError)) return LX.t("error.network");
    const fields = (err.body.errors || []).map(LX.fieldProblemText);
    const coded = LX.problemByCode(err.body);
    // A generic "invalid request" still names the fields; a specific code says it all.
    if (coded) return err.body.code === "invalid_request" ? [coded, ...fields].join(" — ") : coded;
    // A problem the catalogue knows by title (or media rejection reason) is said in the
    // user's language; the API's own English detail follows for the specifics.
    const said = known(`problem.${slug(err.body.title)}`) || known(`error.http_${err.status}`);
    const reason = err.body.reason ? known(`media.reason_${err.body.reason}`) : "";
    // A 412's detail is always the same English sentence: the catalogue's text says it all.
    const detail = err.status === 412 && said ? "" : err.message;
    return [said, reason, detail, ...fields].filter(Boolean).join(" — ");
  };

  LX.say = function (text, kind) {
    const box = document.getElementById("lx-status");
    if (!box) return;
    box.textContent = text;
    box.className = "status " + (kind || "info");
  };

  /** el("tr", {class: "x"}, child, "text", ...) */
  LX.el = function (tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  };
  LX.clear = (node) => { while (node.firstChild) node.removeChild(node.firstChild); return node; };

  // ---- time, in the station's zone
  // Lists say "27/11/2026 14:05" (vi) or "27 Nov 2026 14:05" (en): built from the zoned parts,
  // not from a locale's short style, which gives vi-VN a two-digit year and seconds.
  const pad = (n) => String(n).padStart(2, "0");
  const MONTHS_EN = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const DATE_ONLY = /^(\d{4})-(\d{2})-(\d{2})$/;
  const instant = (iso) => {
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? null : date;
  };
  const dayText = (y, m, d) => (LX.lang === "vi" ? `${pad(d)}/${pad(m)}/${y}` : `${pad(d)} ${MONTHS_EN[m - 1]} ${y}`);
  /** A day: an instant's day in the station's zone, or a calendar date (2026-11-27) as it is. */
  LX.fmtDate = function (iso) {
    if (!iso) return "";
    const day = DATE_ONLY.exec(String(iso));
    if (day) return dayText(+day[1], +day[2], +day[3]);
    const date = instant(iso);
    if (!date) return String(iso);
    const z = LX.zoned(date);
    return dayText(z.year, z.month, z.day);
  };
  /** A wall-clock time, 24 h; seconds only where they carry meaning (a play's actual start). */
  LX.fmtClock = function (iso, seconds) {
    const date = iso ? instant(iso) : null;
    if (!date) return iso ? String(iso) : "";
    const z = LX.zoned(date);
    return `${pad(z.hour)}:${pad(z.minute)}` + (seconds ? `:${pad(z.second)}` : "");
  };
  /** Day and time, the form of every list: no seconds unless asked for. */
  LX.fmtDateTime = function (iso, seconds) {
    if (!iso) return "";
    if (!instant(iso)) return String(iso);
    return `${LX.fmtDate(iso)} ${LX.fmtClock(iso, seconds)}`;
  };
  /** Without options, a list's day and time (``fmtDateTime``); with them, Intl's own parts
      (weekday and day of a week view...). */
  LX.fmt = function (iso, opts) {
    if (!iso) return "";
    if (!opts) return LX.fmtDateTime(iso);
    if (!instant(iso)) return String(iso);
    return new Intl.DateTimeFormat(locale(), Object.assign({ timeZone: LX.tz }, opts)).format(new Date(iso));
  };
  LX.fmtTime = (iso) => LX.fmtClock(iso);
  LX.fmtDuration = function (ms) {
    const s = Math.round((ms || 0) / 1000);
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  };
  LX.fmtBytes = function (n) {
    if (n >= 1048576) return (n / 1048576).toFixed(1) + " MB";
    if (n >= 1024) return Math.round(n / 1024) + " kB";
    return (n || 0) + " B";
  };
  /** Wall-clock parts of an instant in the station's zone. */
  LX.zoned = function (date) {
    const parts = new Intl.DateTimeFormat("en-GB", {
      timeZone: LX.tz, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23", weekday: "short",
    }).formatToParts(date);
    const p = {};
    for (const part of parts) p[part.type] = part.value;
    return {
      year: +p.year, month: +p.month, day: +p.day, hour: +p.hour, minute: +p.minute,
      second: +p.second, weekday: ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].indexOf(p.weekday),
    };
  };
  /** The instant when the station's wall clock shows y-m-d h:m (handles any zone offset). */
  LX.fromZoned = function (y, m, d, h, min) {
    const wanted = Date.UTC(y, m - 1, d, h, min);
    let guess = wanted;
    for (let i = 0; i < 2; i++) {
      const z = LX.zoned(new Date(guess));
      const shown = Date.UTC(z.year, z.month - 1, z.day, z.hour, z.minute);
      guess += wanted - shown;
    }
    return new Date(guess);
  };
  LX.isoDate = (z) => `${z.year}-${String(z.month).padStart(2, "0")}-${String(z.day).padStart(2, "0")}`;

  /** Call fn now and every ms while the page is visible. */
  LX.poll = function (fn, ms) {
    let timer = null;
    const run = async () => {
      try { await fn(); } catch (err) { LX.say(LX.problemText(err), "error"); }
      timer = setTimeout(tick, ms);
    };
    const tick = () => { if (document.hidden) timer = setTimeout(tick, ms); else run(); };
    run();
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && timer) { clearTimeout(timer); run(); }
    });
  };

  LX.badge = (value, prefix) =>
    LX.el("span", { class: `badge ${prefix}-${value}` }, LX.t(`${prefix}.${value}`));

  /** A file input said in the console's language (the browser's own "Choose File / No file
      chosen" follows the phone's language, not the console's): the input stays the labelled,
      focusable control, visually hidden; a button opens it and the chosen name shows. Returns
      the box holding them, for a script that builds the input itself to place. */
  LX.filePicker = function (input) {
    if (input.classList.contains("file-input")) return input.parentNode;
    const box = LX.el("span", { class: "file-box" });
    if (input.parentNode) input.replaceWith(box);
    box.append(input);
    input.classList.add("file-input");
    const name = LX.el("span", { class: "file-name muted" }, LX.t("common.no_file"));
    const pick = LX.el("button", { type: "button", class: "file-pick", tabindex: "-1", "aria-hidden": "true",
      onclick: () => input.click() }, LX.t("common.choose_file"));
    const show = () => {
      name.textContent = input.files && input.files.length ? input.files[0].name : LX.t("common.no_file");
    };
    input.addEventListener("change", show);
    input.addEventListener("lx-reset", show);
    box.append(pick, " ", name);
    return box;
  };

  /** The languages a commune broadcasts in, as the API stores them (Vietnamese and Cơ Tu,
      the example commune's ethnic-minority language); any other code the API accepts goes in
      the "other language" field. */
  LX.LANGUAGES = ["vi", "ctu"];
  LX.LANGUAGE_PATTERN = "[a-z]{2,3}(-[A-Za-z0-9]{2,8})*";
  /** A language chosen by its name, with a code field for one the list does not have. */
  LX.languageField = function (id, value) {
    const current = value || "vi";
    const listed = LX.LANGUAGES.includes(current);
    const select = LX.el("select", { id, class: "language-select", "data-on-reset": "" },
      LX.LANGUAGES.map((code) => LX.el("option", { value: code, selected: code === current }, LX.t(`prog.lang_${code}`))),
      LX.el("option", { value: "", selected: !listed }, LX.t("media.language_other")));
    const other = LX.el("input", { id: `${id}-other`, maxlength: 16, pattern: LX.LANGUAGE_PATTERN,
      title: LX.t("media.language_hint"), value: listed ? "" : current, autocapitalize: "none", spellcheck: "false" });
    const otherBox = LX.el("div", { class: "language-other" },
      LX.el("label", { for: other.id }, LX.t("media.language_code")), other,
      LX.el("span", { class: "small muted" }, LX.t("media.language_hint")));
    const follow = () => {
      otherBox.hidden = select.value !== "";
      other.required = select.value === "";
    };
    select.addEventListener("change", () => { follow(); if (!otherBox.hidden) other.focus(); });
    select.addEventListener("lx-reset", follow);
    follow();
    return LX.el("div", { class: "language-field" }, LX.el("label", { for: id }, LX.t("media.language")), select, otherBox);
  };
  /** The code a language field holds: the listed one chosen, else the one typed. */
  LX.languageOf = function (id) {
    const select = document.getElementById(id);
    const other = document.getElementById(`${id}-other`);
    return select.value || (other ? other.value.trim() : "");
  };

  /** The chosen day (or time) said beside a native date/time input: Chromium draws those in
      the phone's own locale (mm/dd/yyyy, 5:05 PM on an English phone; the page's lang does not
      change it), so the user sees "27/11/2026" or "17:05" to check. The echo follows typing,
      picking, a form's reset and a script setting ``value``. */
  const nativeValue = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value");
  LX.inputEcho = function (input) {
    if (input.dataset.echo || !input.parentNode) return;
    input.dataset.echo = "1";
    const echo = LX.el("span", { class: "input-echo small muted", "data-echo-for": input.id || null });
    input.after(echo);
    const show = () => {
      const value = nativeValue.get.call(input);
      echo.textContent = value && input.type === "date" ? LX.fmtDate(value) : value;
    };
    Object.defineProperty(input, "value", {
      configurable: true,
      get() { return nativeValue.get.call(input); },
      set(v) { nativeValue.set.call(input, v); show(); },
    });
    for (const event of ["input", "change", "lx-reset"]) input.addEventListener(event, show);
    show();
  };
  const ECHOED = 'input[type="date"], input[type="time"]';
  const echoAll = (root) => {
    if (root.matches && root.matches(ECHOED)) LX.inputEcho(root);
    if (root.querySelectorAll) root.querySelectorAll(ECHOED).forEach(LX.inputEcho);
  };

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll('input[type="file"]').forEach(LX.filePicker);
    echoAll(document.body);
    // forms that scripts build later (a bulletin's placing, an edit form) get theirs too
    new MutationObserver((changes) => {
      for (const change of changes) {
        for (const node of change.addedNodes) if (node.nodeType === Node.ELEMENT_NODE) echoAll(node);
      }
    }).observe(document.body, { childList: true, subtree: true });
    // a form's reset empties its file inputs without a "change": the chosen names go too
    document.addEventListener("reset", (event) => setTimeout(() => {
      for (const input of event.target.querySelectorAll(".file-input, [data-echo], [data-on-reset]")) input.dispatchEvent(new Event("lx-reset"));
    }), true);
    const logout = document.getElementById("lx-logout");
    if (logout) {
      logout.addEventListener("click", async () => {
        try { await LX.api("POST", "/auth/logout"); } catch (e) { /* gone already */ }
        window.location.assign("/console/login");
      });
    }
  });
  window.LX = LX;
})();
