/* Audit log: filter, page through, export the same filter as CSV. */
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const LX = window.LX;
  const $ = (id) => document.getElementById(id);
  const PAGE = 100;
  let offset = 0;
  // An action in the reader's words, its code after it (what the filter and the CSV use).
  const said = (action) => {
    const key = "audit.do." + action;
    return LX.t(key) === key ? "" : LX.el("span", { class: "audit-said" }, LX.t(key));
  };

  // Details in the reader's words: each key by its label (audit.detail.<key>), values as they
  // are (ids, titles, codes) but for times, yes/no, sizes, targets and the catalogue's names.
  const known = (key) => (LX.t(key) === key ? "" : LX.t(key));
  const label = (key) => known("audit.detail." + key) || key;
  const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/;
  const NAMED = { kind: "kind.", role: "role.", reason: "media.reason_", language: "prog.lang_", class: "bulletins.class_" };
  function value(key, v) {
    if (v === null || v === undefined || v === "") return "—";
    if (typeof v === "boolean") return LX.t(v ? "audit.yes" : "audit.no");
    if (Array.isArray(v)) return v.length ? v.map((item) => value(key, item)).join(", ") : "—";
    if (typeof v === "object") {
      if (key === "targets" && v.all) return LX.t("sched.all_clusters");
      return Object.entries(v).map(([k, inner]) => `${label(k)}: ${value(k, inner)}`).join("; ");
    }
    if (key === "bytes" && typeof v === "number") return LX.fmtBytes(v);
    if (typeof v === "string" && ISO_INSTANT.test(v) && !Number.isNaN(Date.parse(v))) return LX.fmtDateTime(v);
    if (typeof v === "string" && NAMED[key] && known(NAMED[key] + v)) return known(NAMED[key] + v);
    return String(v);
  }
  function detailList(details) {
    const entries = Object.entries(details || {});
    if (!entries.length) return "";
    return LX.el("ul", { class: "audit-details" }, entries.map(([k, v]) =>
      LX.el("li", { "data-key": k }, LX.el("span", { class: "detail-label" }, `${label(k)}: `), value(k, v))));
  }

  function filters() {
    const params = new URLSearchParams();
    const action = $("audit-action").value.trim();
    const actor = $("audit-actor").value.trim();
    if (action) params.set("action", action);
    if (actor) params.set("actor", actor);
    for (const [id, key, days] of [["audit-since", "since", 0], ["audit-until", "until", 1]]) {
      const value = $(id).value;
      if (!value) continue;
      const [y, m, d] = value.split("-").map(Number);
      params.set(key, LX.fromZoned(y, m, d + days, 0, 0).toISOString());
    }
    return params;
  }

  async function load(append) {
    const params = filters();
    $("audit-csv").href = LX.apiBase + "/audit.csv" + (params.toString() ? "?" + params : "");
    if (!append) offset = 0;
    params.set("limit", String(PAGE));
    params.set("offset", String(offset));
    const page = await LX.get("/audit?" + params);
    const body = document.querySelector("#audit-table tbody");
    if (!append) LX.clear(body);
    for (const e of page.items) {
      body.append(LX.el("tr", { "data-action": e.action },
        LX.el("td", { "data-label": LX.t("audit.at") }, LX.fmt(e.at)),
        LX.el("td", { "data-label": LX.t("audit.actor") }, e.actor),
        LX.el("td", { "data-label": LX.t("audit.action") }, said(e.action), LX.el("code", { class: "small" }, e.action)),
        LX.el("td", { "data-label": LX.t("audit.target") }, e.target),
        LX.el("td", { "data-label": LX.t("audit.details"), class: "small" }, detailList(e.details)),
        LX.el("td", { "data-label": LX.t("audit.ip"), class: "small" }, e.ip)));
    }
    if (!page.total) body.append(LX.el("tr", {}, LX.el("td", { colspan: 6, class: "muted" }, LX.t("audit.none"))));
    offset += page.items.length;
    $("audit-more").hidden = offset >= page.total;
  }
  $("audit-filter").addEventListener("submit", (e) => { e.preventDefault(); load(false).catch((err) => LX.say(LX.problemText(err), "error")); });
  $("audit-more").addEventListener("click", () => load(true).catch((err) => LX.say(LX.problemText(err), "error")));
  load(false).catch((err) => LX.say(LX.problemText(err), "error"));
});
