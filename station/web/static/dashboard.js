/* Dashboard: counts, on air now, next programmes, cluster tiles, alerts; polled. */
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const LX = window.LX;
  const $ = (id) => document.getElementById(id);
  const POLL_MS = 3000;

  function targetsText(targets) {
    if (targets.all) return LX.t("sched.all_clusters");
    const parts = [];
    for (const key of ["clusters", "zones", "villages"]) {
      if (targets[key] && targets[key].length) parts.push(targets[key].join(", "));
    }
    return parts.join("; ");
  }

  function tile(c) {
    const state = c.on_air ? "on-air" : c.online ? "online" : "offline";
    const label = `${c.name || c.id} (${c.id}): ${LX.t("dash." + state.replace("-", "_"))}` +
      (c.alerts ? `, ${LX.t("dash.alert_count", { n: c.alerts })}` : "");
    return LX.el("div", {
      class: `tile ${state}${c.alerts ? " alert" : ""}`, role: "listitem",
      title: label, "aria-label": label, "data-cluster": c.id,
    }, c.id);
  }

  async function refresh() {
    const d = await LX.get("/console/dashboard");
    $("count-total").textContent = d.counts.total;
    $("count-online").textContent = d.counts.online;
    $("count-offline").textContent = d.counts.offline;
    $("count-on-air").textContent = d.counts.on_air;
    $("count-alerts").textContent = d.counts.alerts_open;

    const byProgramme = new Map();
    for (const o of d.on_air) {
      const key = o.session_id;
      if (!byProgramme.has(key)) byProgramme.set(key, { o, clusters: [] });
      byProgramme.get(key).clusters.push(o.cluster_id);
    }
    const onAir = LX.clear($("on-air"));
    for (const { o, clusters } of byProgramme.values()) {
      onAir.append(LX.el("li", { class: "on-air-item" },
        LX.el("strong", {}, o.programme_title), " ",
        LX.el("span", { class: "muted" }, LX.t("dash.since", { time: LX.fmtTime(o.started_at || o.scheduled_start) })),
        LX.el("div", { class: "small" }, LX.t("dash.on_clusters", { n: clusters.length }), ": ", clusters.join(", "))));
    }
    let live = [];
    try { live = (await LX.get("/live")).items; } catch (err) { live = []; }
    for (const m of live) {
      onAir.append(LX.el("li", { class: "on-air-item" },
        LX.el("span", { class: "badge live-" + m.state }, LX.t("nav.live")), " ",
        LX.el("strong", {}, m.mount), " ",
        LX.el("span", { class: "muted small" }, LX.t("live.state_" + m.state),
          " · ", LX.t("dash.listening", { n: m.listeners }))));
    }
    if (!byProgramme.size && !live.length) onAir.append(LX.el("li", { class: "muted" }, LX.t("dash.nothing_on_air")));

    const next = LX.clear($("next-up"));
    for (const s of d.next) {
      next.append(LX.el("li", {},
        LX.el("time", { datetime: s.start_at }, LX.fmt(s.start_at, { weekday: "short", hour: "2-digit", minute: "2-digit", day: "2-digit", month: "2-digit" })),
        " ", LX.el("strong", {}, s.programme_title),
        LX.el("div", { class: "small muted" }, targetsText(s.targets))));
    }
    if (!d.next.length) next.append(LX.el("li", { class: "muted" }, LX.t("dash.nothing_next")));

    LX.clear($("grid")).append(...d.clusters.map(tile));
    if (!d.clusters.length) $("grid").append(LX.el("p", { class: "muted" }, LX.t("clusters.none")));

    const alerts = LX.clear($("alerts"));
    for (const a of d.alerts) {
      alerts.append(LX.el("li", {},
        LX.el("span", { class: "badge alert-" + a.kind }, LX.t("alert." + a.kind)), " ",
        LX.el("strong", {}, a.cluster_id || a.mount), " ", a.detail, " ",
        LX.el("span", { class: "muted small" }, LX.fmt(a.raised_at))));
    }
    if (!d.alerts.length) alerts.append(LX.el("li", { class: "muted" }, LX.t("dash.no_alerts")));
    $("updated").textContent = LX.fmtClock(d.now, true);
    LX.say("", "info");
  }
  LX.poll(refresh, POLL_MS);
});
