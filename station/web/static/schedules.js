/* Programmes and schedules: week calendar with the two daily slots, create, cancel, approve. */
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const LX = window.LX;
  const $ = (id) => document.getElementById(id);
  // The usual daily slots of a commune station (DOMAIN.md), in station time, minutes of day.
  const SLOTS = [
    { key: "morning", from: 5 * 60 + 30, to: 7 * 60 },
    { key: "afternoon", from: 16 * 60 + 30, to: 18 * 60 },
  ];
  const DAY_MS = 86400000;
  let weekOffset = 0;
  let programmes = new Map();

  const hhmm = (m) => `${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`;

  function weekStart() {
    const z = LX.zoned(new Date());
    const monday = LX.fromZoned(z.year, z.month, z.day, 0, 0).getTime() - z.weekday * DAY_MS;
    return new Date(monday + weekOffset * 7 * DAY_MS + 3 * 3600000); // 03:00: safe from DST edges
  }

  /** Which week (0 = this one) shows ``date``. */
  function weekOf(date) {
    const saved = weekOffset;
    weekOffset = 0;
    const monday = weekStart().getTime() - 3 * 3600000;
    weekOffset = saved;
    return Math.floor((date.getTime() - monday) / (7 * DAY_MS));
  }

  async function loadProgrammes() {
    const page = await LX.get("/programmes?limit=500");
    programmes = new Map(page.items.map((p) => [p.id, p]));
    const select = $("sched-programme");
    if (select) {
      const chosen = select.value;
      LX.clear(select).append(...page.items.map((p) =>
        LX.el("option", { value: p.id }, p.title + (p.approved ? "" : ` (${LX.t("prog.not_approved")})`))));
      if (chosen) select.value = chosen;
    }
    const list = LX.clear($("programmes"));
    for (const p of page.items) {
      const approve = LX.can("approve") && !p.approved
        ? LX.el("button", { type: "button", class: "small-button", onclick: () => approveProgramme(p) }, LX.t("prog.approve"))
        : null;
      list.append(LX.el("li", { "data-programme": p.id }, LX.el("strong", {}, p.title), " ",
        LX.el("span", { class: "muted small" }, LX.t("prog.summary", { n: p.media_ids.length, v: p.version })), " ",
        LX.el("span", { class: "badge " + (p.approved ? "ok" : "warn") }, LX.t(p.approved ? "prog.approved" : "prog.not_approved")),
        " ", approve));
    }
    if (!page.items.length) list.append(LX.el("li", { class: "muted" }, LX.t("prog.none")));
  }

  async function approveProgramme(p) {
    try {
      await LX.api("POST", `/programmes/${p.id}/approvals`, { version: p.version });
      LX.say(LX.t("prog.approved_msg", { title: p.title }), "ok");
      await loadProgrammes();
    } catch (err) { LX.say(LX.problemText(err), "error"); }
  }

  function entry(s) {
    const p = programmes.get(s.programme_id);
    return LX.el("div", { class: `entry status-${s.status}`, "data-schedule": s.id },
      LX.el("time", { datetime: s.start_at }, LX.fmtTime(s.start_at)), " ",
      LX.el("span", { class: "entry-title" }, p ? p.title : `#${s.programme_id}`),
      s.status === "pending" ? null : LX.el("span", { class: "small muted" }, " · " + LX.t("status." + s.status)));
  }

  async function loadWeek() {
    const start = weekStart();
    const end = new Date(start.getTime() + 7 * DAY_MS);
    const from = new Date(start.getTime() - 3 * 3600000);
    const to = new Date(end.getTime() - 3 * 3600000);
    const page = await LX.get(`/schedules?limit=500&start_from=${encodeURIComponent(from.toISOString())}` +
      `&start_to=${encodeURIComponent(to.toISOString())}`);
    const week = LX.clear($("week"));
    const days = [];
    for (let i = 0; i < 7; i++) {
      const day = new Date(start.getTime() + i * DAY_MS);
      const z = LX.zoned(day);
      const slots = {};
      const column = LX.el("div", { class: "day", "data-date": LX.isoDate(z) },
        LX.el("h3", {}, LX.fmt(day.toISOString(), { weekday: "short", day: "2-digit", month: "2-digit" })));
      for (const slot of [...SLOTS, { key: "other" }]) {
        const label = slot.from === undefined ? LX.t("sched.slot_other")
          : `${LX.t("sched.slot_" + slot.key)} ${hhmm(slot.from)}–${hhmm(slot.to)}`;
        slots[slot.key] = LX.el("div", { class: `slot slot-${slot.key}`, "aria-label": label },
          LX.el("div", { class: "slot-label" }, label));
        column.append(slots[slot.key]);
      }
      days.push({ date: LX.isoDate(z), slots });
      week.append(column);
    }
    for (const s of page.items) {
      if (s.status === "cancelled") continue;
      const z = LX.zoned(new Date(s.start_at));
      const day = days.find((d) => d.date === LX.isoDate(z));
      if (!day) continue;
      const minute = z.hour * 60 + z.minute;
      const slot = SLOTS.find((sl) => minute >= sl.from && minute < sl.to);
      day.slots[slot ? slot.key : "other"].append(entry(s));
    }
    const last = new Date(start.getTime() + 6 * DAY_MS).toISOString();
    $("week-title").textContent = LX.t("sched.week_of", {
      from: LX.fmt(start.toISOString(), { day: "2-digit", month: "2-digit" }),
      to: LX.fmt(last, { day: "2-digit", month: "2-digit", year: "numeric" }),
    });
  }

  async function loadUpcoming() {
    const now = new Date().toISOString();
    const page = await LX.get(`/schedules?status=pending&limit=50&start_from=${encodeURIComponent(now)}`);
    const list = LX.clear($("upcoming"));
    for (const s of page.items) {
      const p = programmes.get(s.programme_id);
      const cancel = LX.can("schedules:write")
        ? LX.el("button", { type: "button", class: "small-button", onclick: () => cancelSchedule(s) }, LX.t("sched.cancel"))
        : null;
      list.append(LX.el("li", { "data-schedule": s.id },
        LX.el("time", { datetime: s.start_at }, LX.fmt(s.start_at)), " ",
        LX.el("strong", {}, p ? p.title : `#${s.programme_id}`), " ", cancel));
    }
    if (!page.items.length) list.append(LX.el("li", { class: "muted" }, LX.t("dash.nothing_next")));
  }

  async function cancelSchedule(s) {
    if (!window.confirm(LX.t("sched.cancel_confirm"))) return;
    try {
      const current = await LX.api("GET", `/schedules/${s.id}`);
      await LX.api("POST", `/schedules/${s.id}/cancel`, undefined, { "If-Match": current.etag });
      LX.say(LX.t("sched.cancelled"), "ok");
      await refresh();
    } catch (err) { LX.say(LX.problemText(err), "error"); }
  }

  async function loadChoices() {
    const box = $("prog-media");
    if (box) {
      const media = await LX.get("/media?limit=200");
      LX.clear(box).append(...media.items.map((m) => LX.el("label", { class: "check" },
        LX.el("input", { type: "checkbox", value: m.id, name: "media" }), ` ${m.title} (${LX.fmtDuration(m.duration_ms)})`)));
      if (!media.items.length) box.append(LX.el("p", { class: "muted" }, LX.t("media.empty")));
    }
    const clusters = $("sched-clusters");
    if (clusters) {
      const page = await LX.get("/clusters?limit=500");
      LX.clear(clusters).append(...page.items.filter((c) => c.status !== "retired").map((c) =>
        LX.el("label", { class: "check" }, LX.el("input", { type: "checkbox", value: c.id, name: "cluster" }), ` ${c.name || c.id}`)));
    }
  }

  async function refresh() {
    await loadProgrammes();
    await Promise.all([loadWeek(), loadUpcoming()]);
  }

  async function schedule(startAt) {
    const some = document.querySelector('input[name="targets"]:checked').value === "some";
    const chosen = [...document.querySelectorAll('#sched-clusters input:checked')].map((i) => i.value);
    if (some && !chosen.length) { LX.say(LX.t("sched.pick_clusters"), "error"); return; }
    const body = {
      programme_id: Number($("sched-programme").value),
      start_at: startAt.toISOString(),
      targets: some ? { clusters: chosen } : { all: true },
    };
    if (!body.programme_id) { LX.say(LX.t("prog.none"), "error"); return; }
    try {
      await LX.api("POST", "/schedules", body);
      LX.say(LX.t("sched.created", { time: LX.fmt(body.start_at) }), "ok");
      weekOffset = weekOf(startAt);
      await refresh();
    } catch (err) { LX.say(LX.problemText(err), "error"); }
  }

  const form = $("schedule-form");
  if (form) {
    const now = LX.zoned(new Date(Date.now() + 3600000));
    $("sched-date").value = LX.isoDate(now);
    $("sched-time").value = `${String(now.hour).padStart(2, "0")}:${String(now.minute).padStart(2, "0")}`;
    for (const radio of document.querySelectorAll('input[name="targets"]')) {
      radio.addEventListener("change", () => {
        $("sched-clusters").hidden = document.querySelector('input[name="targets"]:checked').value !== "some";
      });
    }
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const [y, m, d] = $("sched-date").value.split("-").map(Number);
      const [h, min] = $("sched-time").value.split(":").map(Number);
      if (!y || Number.isNaN(h)) { LX.say(LX.t("sched.pick_time"), "error"); return; }
      schedule(LX.fromZoned(y, m, d, h, min));
    });
    // "Now": as soon as the clusters can fetch the audio (dispatch lead + a margin).
    const soonMs = (Number(form.dataset.lead || 0) + 7) * 1000;
    $("sched-now").addEventListener("click", () => schedule(new Date(Date.now() + soonMs)));
  }

  const progForm = $("programme-form");
  if (progForm) {
    progForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const ids = [...document.querySelectorAll('#prog-media input:checked')].map((i) => Number(i.value));
      const title = $("prog-title").value.trim();
      if (!title || !ids.length) { LX.say(LX.t("prog.fill"), "error"); return; }
      try {
        const { data } = await LX.api("POST", "/programmes", { title, media_ids: ids });
        LX.say(LX.t("prog.created", { title: data.title }), "ok");
        progForm.reset();
        await loadProgrammes();
        const select = $("sched-programme");
        if (select) select.value = String(data.id);
      } catch (err) { LX.say(LX.problemText(err), "error"); }
    });
  }

  $("week-prev").addEventListener("click", () => { weekOffset -= 1; loadWeek().catch((e) => LX.say(LX.problemText(e), "error")); });
  $("week-next").addEventListener("click", () => { weekOffset += 1; loadWeek().catch((e) => LX.say(LX.problemText(e), "error")); });
  $("week-today").addEventListener("click", () => { weekOffset = 0; loadWeek().catch((e) => LX.say(LX.problemText(e), "error")); });
  Promise.all([refresh(), loadChoices()]).catch((err) => LX.say(LX.problemText(err), "error"));
});
