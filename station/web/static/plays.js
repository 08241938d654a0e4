/* Proof of play: what each cluster played, filtered by day, cluster and status. */
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const LX = window.LX;
  const $ = (id) => document.getElementById(id);
  async function load() {
    const params = new URLSearchParams({ limit: "200" });
    if ($("plays-date").value) params.set("date", $("plays-date").value);
    if ($("plays-cluster").value.trim()) params.set("cluster_id", $("plays-cluster").value.trim());
    if ($("plays-status").value) params.set("status", $("plays-status").value);
    const page = await LX.get("/plays?" + params);
    const body = LX.clear(document.querySelector("#plays-table tbody"));
    for (const r of page.items) {
      body.append(LX.el("tr", {},
        LX.el("td", { "data-label": LX.t("plays.scheduled") }, LX.fmt(r.scheduled_start)),
        LX.el("td", { "data-label": LX.t("plays.cluster") }, r.cluster_id),
        LX.el("td", { "data-label": LX.t("plays.status") }, LX.el("span", { class: "badge play-" + r.status }, LX.t("play." + r.status)),
          r.error_code ? ` (${r.error_code})` : ""),
        LX.el("td", { "data-label": LX.t("plays.started") }, LX.fmtClock(r.started_at, true)),
        LX.el("td", { "data-label": LX.t("plays.skew") }, r.skew_ms === null ? "" : `${r.skew_ms} ms`),
        LX.el("td", { "data-label": LX.t("plays.played") }, r.played_ms === null ? "" : LX.fmtDuration(r.played_ms)),
        LX.el("td", { "data-label": LX.t("plays.session"), class: "small" }, r.session_id)));
    }
    if (!page.items.length) body.append(LX.el("tr", {}, LX.el("td", { colspan: 7, class: "muted" }, LX.t("plays.none"))));
    $("plays-more").textContent = LX.t("common.shown_of", { n: page.items.length, total: page.total });
  }
  $("plays-filter").addEventListener("submit", (e) => { e.preventDefault(); load().catch((err) => LX.say(LX.problemText(err), "error")); });
  load().catch((err) => LX.say(LX.problemText(err), "error"));
});
