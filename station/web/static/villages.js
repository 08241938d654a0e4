/* Villages & zones: villages with their clusters and coverage (villages with no working cluster
   highlighted), add / edit a village (If-Match), zones with their members (add, remove). */
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const LX = window.LX;
  const $ = (id) => document.getElementById(id);
  const canWrite = LX.can("clusters:write");
  const enc = encodeURIComponent;
  let editing = null; // {id, etag} while a village is being edited

  const report = (err) => LX.say(LX.problemText(err), "error");

  function villages(coverage) {
    const summary = $("coverage-summary");
    summary.hidden = false;
    summary.textContent = LX.t("villages.summary", {
      uncovered: coverage.uncovered, total: coverage.covered + coverage.uncovered });
    const body = LX.clear(document.querySelector("#village-table tbody"));
    for (const v of coverage.villages) {
      const label = (key) => ({ "data-label": LX.t(key) });
      const clusters = [
        ...v.working.map((id) => LX.el("span", { class: "badge ok", title: LX.t("villages.working") }, id)),
        ...v.not_working.map((id) => LX.el("span", { class: "badge state-faulty", title: LX.t("villages.not_working") }, id)),
      ];
      const edit = canWrite ? LX.el("button", { type: "button", class: "small-button", "data-edit": v.village_id,
        onclick: () => startEdit(v.village_id).catch(report) }, LX.t("villages.edit")) : "";
      body.append(LX.el("tr", { class: v.covered ? "covered" : "uncovered", "data-village": v.village_id, "data-covered": String(v.covered) },
        LX.el("td", label("villages.id"), v.village_id),
        LX.el("td", label("villages.name"), v.name),
        LX.el("td", label("villages.households"), v.households === null ? "" : String(v.households)),
        LX.el("td", label("villages.clusters"), clusters.length ? clusters.flatMap((c) => [c, " "]) : LX.t("villages.no_clusters")),
        LX.el("td", label("villages.coverage"),
          LX.el("span", { class: v.covered ? "badge ok" : "badge state-faulty" },
            LX.t(v.covered ? "villages.covered" : "villages.uncovered"))),
        LX.el("td", label("villages.actions"), edit)));
    }
    if (!coverage.villages.length) {
      body.append(LX.el("tr", {}, LX.el("td", { colspan: 6, class: "muted" }, LX.t("villages.none"))));
    }
  }

  function zones(items, clusters) {
    const list = LX.clear($("zone-list"));
    for (const z of items) {
      const members = z.clusters.map((id) => LX.el("span", { class: "chip", "data-member": id }, id,
        canWrite ? LX.el("button", { type: "button", class: "chip-remove", "aria-label": LX.t("villages.remove_member", { id, zone: z.name }),
          title: LX.t("villages.remove_member", { id, zone: z.name }), onclick: () => removeMember(z, id) }, "×") : ""));
      const add = canWrite ? (() => {
        const choices = clusters.filter((c) => !z.clusters.includes(c.id));
        const select = LX.el("select", { "aria-label": LX.t("villages.member_pick", { zone: z.name }), "data-zone-pick": z.id },
          LX.el("option", { value: "" }, LX.t("villages.member_pick", { zone: z.name })),
          ...choices.map((c) => LX.el("option", { value: c.id }, c.name && c.name !== c.id ? `${c.id} · ${c.name}` : c.id)));
        return LX.el("div", { class: "buttons" }, select,
          LX.el("button", { type: "button", class: "small-button", "data-zone-add": z.id,
            onclick: () => addMember(z, select.value) }, LX.t("villages.member_add")));
      })() : "";
      list.append(LX.el("li", { "data-zone": z.id },
        LX.el("strong", {}, z.name), ` (${z.id}) `,
        LX.el("div", { class: "chips" }, members.length ? members : LX.el("span", { class: "muted" }, LX.t("villages.no_members"))),
        add));
    }
    if (!items.length) list.append(LX.el("li", { class: "muted" }, LX.t("villages.no_zones")));
  }

  async function addMember(zone, clusterId) {
    if (!clusterId) { LX.say(LX.t("villages.member_pick", { zone: zone.name }), "error"); return; }
    try {
      await LX.api("POST", `/zones/${enc(zone.id)}/clusters`, { cluster_ids: [clusterId] });
      LX.say(LX.t("villages.member_added", { id: clusterId, zone: zone.name }), "ok");
      await load();
    } catch (err) { report(err); }
  }

  async function removeMember(zone, clusterId) {
    try {
      await LX.api("DELETE", `/zones/${enc(zone.id)}/clusters/${enc(clusterId)}`);
      LX.say(LX.t("villages.member_removed", { id: clusterId, zone: zone.name }), "ok");
      await load();
    } catch (err) { report(err); }
  }

  async function load() {
    const only = $("only-uncovered").checked;
    villages(await LX.get("/fleet/coverage" + (only ? "?uncovered=true" : "")));
    const clusters = canWrite ? (await LX.get("/clusters?limit=500")).items.filter((c) => c.status !== "retired") : [];
    zones((await LX.get("/zones?limit=500")).items, clusters);
  }

  // ---- add / edit a village
  const form = $("village-form");
  const field = (name) => $("village-" + name);
  const number = (name) => (field(name).value.trim() === "" ? null : Number(field(name).value));

  function stopEdit() {
    editing = null;
    form.reset();
    field("id").readOnly = false;
    $("village-form-title").textContent = LX.t("villages.add");
    $("village-new").hidden = true;
  }

  async function startEdit(id) {
    const { data, etag } = await LX.api("GET", `/villages/${enc(id)}`);
    editing = { id, etag };
    field("id").value = data.id;
    field("id").readOnly = true;
    field("name").value = data.name;
    field("households").value = data.households === null ? "" : data.households;
    field("lat").value = data.lat === null ? "" : data.lat;
    field("lon").value = data.lon === null ? "" : data.lon;
    field("note").value = data.note;
    $("village-form-title").textContent = LX.t("villages.edit_title", { id });
    $("village-new").hidden = false;
    field("name").focus();
  }

  if (form) {
    $("village-new").addEventListener("click", stopEdit);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { name: field("name").value.trim(), households: number("households"),
        lat: number("lat"), lon: number("lon"), note: field("note").value.trim() };
      try {
        if (editing) {
          await LX.api("PATCH", `/villages/${enc(editing.id)}`, body, { "If-Match": editing.etag });
          LX.say(LX.t("villages.saved", { id: editing.id }), "ok");
        } else {
          const id = field("id").value.trim();
          await LX.api("POST", "/villages", Object.assign({ id }, body));
          LX.say(LX.t("villages.added", { id }), "ok");
        }
        stopEdit();
        await load();
      } catch (err) {
        if (err.status === 412) LX.say(LX.t("villages.changed_meanwhile"), "error");
        else report(err);
      }
    });
  }

  const zoneForm = $("zone-form");
  if (zoneForm) {
    zoneForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const id = $("zone-id").value.trim();
      try {
        await LX.api("POST", "/zones", { id, name: $("zone-name").value.trim() });
        LX.say(LX.t("villages.zone_created", { id }), "ok");
        zoneForm.reset();
        await load();
      } catch (err) { report(err); }
    });
  }

  $("only-uncovered").addEventListener("change", () => load().catch(report));
  load().catch(report); // reloaded after each change (no polling: it would reset open forms)
});
