/* Clusters: village grid with status colours, list with filters, register. */
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const LX = window.LX;
  const $ = (id) => document.getElementById(id);

  const stateOf = (c) => (c.status === "faulty" ? "faulty" : c.online ? "online"
    : (c.status === "registered" || c.status === "provisioned") ? "registered" : "offline");

  function grid(clusters) {
    const byVillage = new Map();
    for (const c of clusters) {
      if (c.status === "retired") continue;
      const key = c.village_id || "";
      if (!byVillage.has(key)) byVillage.set(key, []);
      byVillage.get(key).push(c);
    }
    const box = LX.clear($("village-grid"));
    const keys = [...byVillage.keys()].sort((a, b) => (a === "") - (b === "") || a.localeCompare(b));
    for (const key of keys) {
      const tiles = byVillage.get(key).map((c) => {
        const state = stateOf(c);
        const label = `${c.name || c.id} (${c.id}): ${LX.t("status." + c.status)}`;
        return LX.el("div", { class: `tile ${state}`, role: "listitem", title: label, "aria-label": label, "data-cluster": c.id }, c.id);
      });
      box.append(LX.el("div", { class: "village" },
        LX.el("h3", {}, key || LX.t("clusters.no_village")),
        LX.el("div", { class: "grid", role: "list" }, tiles)));
    }
    if (!keys.length) box.append(LX.el("p", { class: "muted" }, LX.t("clusters.none")));
  }

  async function load() {
    const q = $("cluster-q").value.trim();
    const status = $("cluster-status").value;
    let path = "/clusters?limit=500";
    if (q) path += "&q=" + encodeURIComponent(q);
    if (status) path += "&status=" + status;
    const page = await LX.get(path);
    const all = q || status ? (await LX.get("/clusters?limit=500")).items : page.items;
    grid(all);
    const body = LX.clear(document.querySelector("#cluster-table tbody"));
    for (const c of page.items) {
      body.append(LX.el("tr", { "data-cluster": c.id },
        LX.el("td", { "data-label": LX.t("clusters.id") }, c.id),
        LX.el("td", { "data-label": LX.t("clusters.name") }, c.name),
        LX.el("td", { "data-label": LX.t("clusters.village") }, c.village_id || ""),
        LX.el("td", { "data-label": LX.t("clusters.kind") }, LX.t("kind." + c.kind)),
        LX.el("td", { "data-label": LX.t("clusters.status") },
          LX.el("span", { class: "badge state-" + stateOf(c) }, LX.t("status." + c.status)),
          c.online ? " " + LX.t("dash.online") : ""),
        LX.el("td", { "data-label": LX.t("clusters.last_seen") }, LX.fmt(c.last_seen_at)),
        LX.el("td", { "data-label": LX.t("clusters.firmware") }, c.firmware || "")));
    }
    if (!page.items.length) body.append(LX.el("tr", {}, LX.el("td", { colspan: 7, class: "muted" }, LX.t("clusters.none"))));
  }

  $("cluster-filter").addEventListener("submit", (e) => { e.preventDefault(); load().catch((err) => LX.say(LX.problemText(err), "error")); });
  const form = $("register-form");
  if (form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const id = $("cluster-id").value.trim();
      const name = $("cluster-name").value.trim();
      try {
        await LX.api("POST", "/clusters", { id, name });
        LX.say(LX.t("clusters.registered", { id }), "ok");
        form.reset();
        await load();
      } catch (err) { LX.say(LX.problemText(err), "error"); }
    });
  }
  LX.poll(load, 10000);
});
