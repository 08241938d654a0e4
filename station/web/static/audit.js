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
      const details = Object.entries(e.details || {}).map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
      body.append(LX.el("tr", { "data-action": e.action },
        LX.el("td", { "data-label": LX.t("audit.at") }, LX.fmt(e.at)),
        LX.el("td", { "data-label": LX.t("audit.actor") }, e.actor),
        LX.el("td", { "data-label": LX.t("audit.action") }, said(e.action), LX.el("code", { class: "small" }, e.action)),
        LX.el("td", { "data-label": LX.t("audit.target") }, e.target),
        LX.el("td", { "data-label": LX.t("audit.details"), class: "small" }, details),
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
