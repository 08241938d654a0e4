/* Clusters: village grid and SVG village map, open alerts, list with filters, register (the
   provisioning bundle shown once), replace / retire / move / identify, reissue the password
   (a new bundle, shown once), edit name / SIM number / hardware / location (If-Match). */
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const LX = window.LX;
  const $ = (id) => document.getElementById(id);

  const stateOf = (c) => (c.status === "faulty" ? "faulty" : c.online ? "online"
    : (c.status === "registered" || c.status === "provisioned") ? "registered" : "offline");

  function grid(clusters, names) {
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
        LX.el("h3", {}, key ? villageName(names, key) : LX.t("clusters.no_village")),
        LX.el("div", { class: "grid", role: "list" }, tiles)));
    }
    if (!keys.length) box.append(LX.el("p", { class: "muted" }, LX.t("clusters.none")));
  }

  const SVG = "http://www.w3.org/2000/svg";
  const svg = (tag, attrs, ...children) => {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return node;
  };

  /** Villages placed by lat/lon (equirectangular, no tiles): green covered, red not. */
  function map(villages) {
    const box = LX.clear($("village-map"));
    const placed = villages.filter((v) => v.lat !== null && v.lon !== null);
    if (!placed.length) { box.append(LX.el("p", { class: "muted" }, LX.t("clusters.map_none"))); return; }
    const lats = placed.map((v) => v.lat), lons = placed.map((v) => v.lon);
    const [x0, x1, y0, y1] = [Math.min(...lons), Math.max(...lons), Math.min(...lats), Math.max(...lats)];
    const W = 320, H = 220, pad = 30;
    const sx = (lon) => pad + (x1 > x0 ? (lon - x0) / (x1 - x0) : 0.5) * (W - 2 * pad);
    const sy = (lat) => H - pad - (y1 > y0 ? (lat - y0) / (y1 - y0) : 0.5) * (H - 2 * pad);
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": LX.t("clusters.map"), width: "100%" });
    for (const v of placed) {
      const label = `${v.name} (${v.village_id}): ${v.working.length}/${v.working.length + v.not_working.length}`;
      root.append(svg("g", { "data-village": v.village_id },
        svg("title", {}, label),
        svg("circle", { cx: sx(v.lon), cy: sy(v.lat), r: 7 + Math.min(8, v.working.length * 2), fill: v.covered ? "#2e7d32" : "#c62828" }),
        svg("text", { x: sx(v.lon), y: sy(v.lat) - 12, "text-anchor": "middle", "font-size": 11 }, v.name)));
    }
    box.append(root);
  }

  function alerts(items) {
    const list = LX.clear($("alert-list"));
    for (const a of items) {
      list.append(LX.el("li", { "data-alert": a.id }, `${a.cluster_id}: ${LX.t("alert." + a.kind)} ${a.detail} (${LX.fmt(a.raised_at)})`));
    }
    if (!items.length) list.append(LX.el("li", { class: "muted" }, LX.t("clusters.no_alerts")));
  }

  function villageChoices(villages) {
    const select = $("move-village");
    if (!select || select.options.length === villages.length + 1) return;
    const keep = select.value;
    LX.clear(select).append(LX.el("option", { value: "" }, ""),
      ...villages.map((v) => LX.el("option", { value: v.village_id }, `${v.name} (${v.village_id})`)));
    select.value = keep;
  }

  // A village by its name (the broadcaster's word for it), its id after it.
  const villageName = (names, id) => (names.get(id) ? `${names.get(id)} (${id})` : id);

  async function load() {
    const coverage = await LX.get("/fleet/coverage");
    const names = new Map(coverage.villages.map((v) => [v.village_id, v.name]));
    map(coverage.villages);
    villageChoices(coverage.villages);
    alerts((await LX.get("/alerts?limit=50")).items);
    const q = $("cluster-q").value.trim();
    const status = $("cluster-status").value;
    let path = "/clusters?limit=500";
    if (q) path += "&q=" + encodeURIComponent(q);
    if (status) path += "&status=" + status;
    const page = await LX.get(path);
    const all = q || status ? (await LX.get("/clusters?limit=500")).items : page.items;
    grid(all, names);
    const body = LX.clear(document.querySelector("#cluster-table tbody"));
    for (const c of page.items) {
      const pick = () => { if ($("manage-id")) $("manage-id").value = c.id; };
      body.append(LX.el("tr", { "data-cluster": c.id, onclick: pick },
        LX.el("td", { "data-label": LX.t("clusters.id") }, c.id),
        LX.el("td", { "data-label": LX.t("clusters.name") }, c.name),
        LX.el("td", { "data-label": LX.t("clusters.village") }, c.village_id ? villageName(names, c.village_id) : ""),
        LX.el("td", { "data-label": LX.t("clusters.kind") }, LX.t("kind." + c.kind)),
        LX.el("td", { "data-label": LX.t("clusters.status") },
          LX.el("span", { class: "badge state-" + stateOf(c) }, LX.t("status." + c.status)),
          c.online && c.status !== "online" ? " " + LX.t("dash.online") : ""),
        LX.el("td", { "data-label": LX.t("clusters.last_seen") }, LX.fmt(c.last_seen_at)),
        LX.el("td", { "data-label": LX.t("clusters.firmware") }, c.firmware || ""),
        LX.el("td", { "data-label": LX.t("clusters.sim") }, c.sim_msisdn || "")));
    }
    if (!page.items.length) body.append(LX.el("tr", {}, LX.el("td", { colspan: 8, class: "muted" }, LX.t("clusters.none"))));
  }

  $("cluster-filter").addEventListener("submit", (e) => { e.preventDefault(); load().catch((err) => LX.say(LX.problemText(err), "error")); });
  const form = $("register-form");
  if (form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const id = $("cluster-id").value.trim();
      const name = $("cluster-name").value.trim();
      const sim = $("cluster-sim").value.trim();
      try {
        const made = await LX.api("POST", "/fleet/clusters", sim ? { id, name, sim_msisdn: sim } : { id, name });
        showBundle(made.data.bundle);
        LX.say(LX.t("clusters.registered", { id }), "ok");
        form.reset();
        await load();
      } catch (err) { LX.say(LX.problemText(err), "error"); }
    });
  }

  /** The provisioning bundle, shown once (it is never fetched again). */
  function showBundle(bundle) {
    const lines = Object.entries(bundle).filter(([, v]) => v !== null).map(([k, v]) => `${k}=${v}`);
    $("bundle-text").textContent = lines.join("\n");
    $("bundle").hidden = false;
  }
  const copy = $("bundle-copy");
  if (copy) {
    copy.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText($("bundle-text").textContent);
        LX.say(LX.t("clusters.copied"), "ok");
      } catch (err) {
        const range = document.createRange();
        range.selectNodeContents($("bundle-text"));
        window.getSelection().removeAllRanges();
        window.getSelection().addRange(range);
      }
    });
  }

  async function act(fn) {
    const id = $("manage-id").value.trim();
    if (!id) { LX.say(LX.t("clusters.pick"), "error"); return; }
    try { await fn(id); await load(); } catch (err) { LX.say(LX.problemText(err), "error"); }
  }
  const on = (button, fn) => { if ($(button)) $(button).addEventListener("click", () => act(fn)); };
  on("replace-button", async (old) => {
    const id = $("replace-id").value.trim();
    if (!id) { LX.say(LX.t("clusters.pick"), "error"); return; }
    const made = await LX.api("POST", `/clusters/${encodeURIComponent(old)}/replace`, { id });
    if ($("bundle")) showBundle(made.data.bundle);
    LX.say(LX.t("clusters.replaced", { old, id }), "ok");
  });
  on("retire-button", async (id) => {
    await LX.api("POST", `/clusters/${encodeURIComponent(id)}/retire`);
    LX.say(LX.t("clusters.retired", { id }), "ok");
  });
  on("move-button", async (id) => {
    const village = $("move-village").value;
    if (!village) { LX.say(LX.t("clusters.pick"), "error"); return; }
    await LX.api("POST", `/clusters/${encodeURIComponent(id)}/move`, { village_id: village });
    LX.say(LX.t("clusters.moved", { id }), "ok");
  });
  on("identify-button", async (id) => {
    await LX.api("POST", `/clusters/${encodeURIComponent(id)}/identify`, {});
    LX.say(LX.t("clusters.identify_sent", { id }), "ok");
  });
  on("reissue-button", async (id) => {
    if (!window.confirm(LX.t("clusters.reissue_confirm", { id }))) return;
    const made = await LX.api("POST", `/clusters/${encodeURIComponent(id)}/credentials`);
    showBundle(made.data.bundle);
    LX.say(LX.t("clusters.reissued", { id }), "ok");
  });

  // Edit: the form keeps the ETag it was filled from; a stale save (412) refills it.
  let editing = null;
  const EDIT = { name: "edit-name", sim_msisdn: "edit-sim", imei: "edit-imei", iccid: "edit-iccid",
    serial: "edit-serial", model: "edit-model", lat: "edit-lat", lon: "edit-lon" };
  async function openEdit(id) {
    const { data, etag } = await LX.api("GET", `/clusters/${encodeURIComponent(id)}`);
    editing = { id, etag };
    for (const [field, input] of Object.entries(EDIT)) $(input).value = data[field] ?? "";
    $("edit-cluster-id").textContent = `(${id})`;
    $("cluster-edit").hidden = false;
  }
  on("edit-load", openEdit);
  const editForm = $("cluster-edit-form");
  if (editForm) {
    editForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!editing) return;
      const change = {};
      for (const [field, input] of Object.entries(EDIT)) {
        const value = $(input).value.trim();
        if (field === "lat" || field === "lon") change[field] = value === "" ? null : Number(value);
        else change[field] = value === "" && field !== "name" ? null : value;
      }
      try {
        await LX.api("PATCH", `/clusters/${encodeURIComponent(editing.id)}`, change, { "If-Match": editing.etag });
        LX.say(LX.t("clusters.saved", { id: editing.id }), "ok");
        editing = null;
        $("cluster-edit").hidden = true;
        await load();
      } catch (err) {
        LX.say(LX.problemText(err), "error");
        if (err instanceof LX.ApiError && err.status === 412) await openEdit(editing.id);
      }
    });
  }
  LX.poll(load, 10000);
});
