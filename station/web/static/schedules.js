/* Programmes and schedules: week calendar with the two daily slots (recurring schedules
   expanded by /calendar, overlaps marked, airtime quotas per day), one-off and recurring
   schedules, conflicts (accept in an order or drop), edit ("Sửa": the recurring form pre-filled,
   saved with PUT + If-Match; a 412 reloads the current version), cancel, approve. The programme
   form (create, edit) is programmes.js. */
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
  let pendingRecurring = null; // the body refused with 409, waiting for the operator's choice
  const scheduleTitles = new Map(); // schedule id -> programme title, from what was loaded
  const named = (id) => (scheduleTitles.has(id) ? `#${id} «${scheduleTitles.get(id)}»` : `#${id}`);

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
    for (const select of [$("sched-programme"), $("rec-programme")]) {
      if (!select) continue;
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
      // Editing is programmes.js's (the programme form): it listens for "lx:edit-programme".
      const edit = LX.can("programmes:write") && $("programme-form")
        ? LX.el("button", {
          type: "button", class: "small-button", "data-edit-programme": p.id,
          "aria-label": LX.t("prog.edit_named", { title: p.title }),
          onclick: () => document.dispatchEvent(new CustomEvent("lx:edit-programme", { detail: p.id })),
        }, LX.t("prog.edit"))
        : null;
      const tags = [...(p.topics || []), p.language && p.language !== "vi" ? p.language : ""].filter(Boolean);
      list.append(LX.el("li", { "data-programme": p.id }, LX.el("strong", {}, p.title), " ",
        LX.el("span", { class: "muted small" }, LX.t("prog.summary", { n: (p.items || p.media_ids).length, v: p.version })), " ",
        tags.length ? LX.el("span", { class: "muted small" }, `[${tags.join("; ")}] `) : "",
        LX.el("span", { class: "badge " + (p.approved ? "ok" : "warn") }, LX.t(p.approved ? "prog.approved" : "prog.not_approved")),
        " ", approve, " ", edit));
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
      s.status === "pending" ? null : LX.el("span", { class: "small muted" }, " · " + LX.t("status." + s.status)),
      s.status === "pending" ? editButton(s.id) : null);
  }

  /** One occurrence from /calendar; ``clash``: null, "ordered" or "open". */
  function airingEntry(a, recurring, clash, editable) {
    const classes = ["entry", recurring ? "recurring" : "status-pending"];
    if (Date.parse(a.end) < Date.now()) classes.push("past");
    if (clash) classes.push("clash", "clash-" + clash);
    return LX.el("div", { class: classes.join(" "), "data-schedule": a.schedule_id, "data-start": a.start },
      LX.el("time", { datetime: a.start }, LX.fmtTime(a.start)), " ",
      recurring ? LX.el("span", { class: "rec-mark", title: LX.t("schedules.recurring_mark") }, "↻ ") : null,
      LX.el("span", { class: "entry-title" }, a.title),
      a.priority === "scheduled" ? null : LX.el("span", { class: "small muted" }, ` · ${a.priority}`),
      clash ? LX.el("span", { class: "clash-mark" }, " ⚠ " + LX.t(clash === "open" ? "schedules.clash_open" : "schedules.clash_ordered")) : null,
      editable ? editButton(a.schedule_id) : null);
  }

  /** "rural: 2/3 phiên" under a day's heading, per locality with a sessions limit. */
  function quotaLine(uses) {
    const parts = uses.filter((u) => u.max_sessions !== null || u.sessions > 0).map((u) => {
      const name = LX.t("schedules.locality_" + u.locality) === "schedules.locality_" + u.locality
        ? u.locality : LX.t("schedules.locality_" + u.locality);
      const state = u.max_sessions === null ? "" : u.sessions > u.max_sessions ? "over" : u.sessions === u.max_sessions ? "full" : "";
      return LX.el("span", { class: `quota ${state}`, "data-locality": u.locality },
        u.max_sessions === null
          ? LX.t("schedules.quota_day_unlimited", { locality: name, n: u.sessions })
          : LX.t("schedules.quota_day", { locality: name, n: u.sessions, max: u.max_sessions }));
    });
    return parts.length ? LX.el("div", { class: "quotas small" }, parts) : null;
  }

  async function loadWeek() {
    const start = weekStart();
    const end = new Date(start.getTime() + 7 * DAY_MS);
    const from = new Date(start.getTime() - 3 * 3600000);
    const to = new Date(end.getTime() - 3 * 3600000);
    const monday = LX.isoDate(LX.zoned(start));
    const [page, cal, active] = await Promise.all([
      LX.get(`/schedules?limit=500&start_from=${encodeURIComponent(from.toISOString())}` +
        `&start_to=${encodeURIComponent(to.toISOString())}`),
      LX.get(`/calendar?week=${monday}`),
      LX.get("/schedules?status=active&limit=500"),
    ]);
    const recurring = new Set(active.items.map((s) => s.id));
    // Only pending one-offs and active recurring schedules can still change.
    const editable = new Set([...recurring, ...page.items.filter((s) => s.status === "pending").map((s) => s.id)]);
    const week = LX.clear($("week"));
    const days = [];
    for (let i = 0; i < 7; i++) {
      const day = new Date(start.getTime() + i * DAY_MS);
      const z = LX.zoned(day);
      const slots = {};
      const column = LX.el("div", { class: "day", "data-date": LX.isoDate(z) },
        LX.el("h3", {}, LX.fmt(day.toISOString(), { weekday: "short", day: "2-digit", month: "2-digit" })),
        quotaLine(cal.quotas.filter((u) => u.day === LX.isoDate(z))));
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
    const place = (iso, node) => {
      const z = LX.zoned(new Date(iso));
      const day = days.find((d) => d.date === LX.isoDate(z));
      if (!day) return;
      const minute = z.hour * 60 + z.minute;
      const slot = SLOTS.find((sl) => minute >= sl.from && minute < sl.to);
      day.slots[slot ? slot.key : "other"].append(node);
    };
    // Overlapping airings of one priority: marked on both, "open" while nobody chose an order.
    const clashOf = (a) => {
      const t0 = Date.parse(a.start), t1 = Date.parse(a.end);
      let found = null;
      for (const c of cal.clashes) {
        if (!c.schedule_ids.includes(a.schedule_id)) continue;
        if (Date.parse(c.start) < t1 && Date.parse(c.end) > t0) found = c.first === null ? "open" : found || "ordered";
      }
      return found;
    };
    const shown = new Set();
    for (const a of cal.airings) {
      shown.add(a.schedule_id);
      scheduleTitles.set(a.schedule_id, a.title);
      place(a.start, airingEntry(a, recurring.has(a.schedule_id), clashOf(a), editable.has(a.schedule_id)));
    }
    // One-offs the calendar does not expand (done, missed, or aimed at unregistered clusters).
    for (const s of page.items) {
      if (s.status === "cancelled" || s.recurrence !== "once" || shown.has(s.id)) continue;
      place(s.start_at, entry(s));
    }
    showClashes(cal.clashes);
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
        LX.el("strong", {}, p ? p.title : `#${s.programme_id}`), " ", editButton(s.id), " ", cancel));
    }
    if (!page.items.length) list.append(LX.el("li", { class: "muted" }, LX.t("dash.nothing_next")));
  }

  const weekdayNames = (s) => s.weekdays.map((d) => LX.t("schedules.day_" + d)).join(", ");

  function describeRule(s) {
    const at = (s.time_of_day || "").slice(0, 5);
    const rule = s.recurrence === "daily" ? LX.t("schedules.kind_daily")
      : s.recurrence === "weekly" ? weekdayNames(s)
        : LX.t("schedules.monthly_on", { day: s.day_of_month });
    const span = s.valid_from || s.valid_to
      ? " · " + LX.t("schedules.span", { from: s.valid_from || "…", to: s.valid_to || "…" }) : "";
    return `${rule} ${at}${span}`;
  }

  async function loadRecurring() {
    const page = await LX.get("/schedules?status=active&limit=500");
    const list = LX.clear($("recurring"));
    for (const s of page.items) {
      const p = programmes.get(s.programme_id);
      if (p) scheduleTitles.set(s.id, p.title);
      const cancel = LX.can("schedules:write")
        ? LX.el("button", { type: "button", class: "small-button", onclick: () => cancelSchedule(s) }, LX.t("sched.cancel"))
        : null;
      list.append(LX.el("li", { "data-schedule": s.id },
        LX.el("strong", {}, p ? p.title : `#${s.programme_id}`), " ",
        LX.el("span", { class: "muted small" }, `#${s.id} · ${describeRule(s)} · ${showTargets(s.targets)}`),
        s.note ? LX.el("div", { class: "small muted" }, s.note) : null, " ", editButton(s.id), " ", cancel));
    }
    if (!page.items.length) list.append(LX.el("li", { class: "muted" }, LX.t("schedules.none_recurring")));
  }

  function showTargets(t) {
    if (t.all) return LX.t("sched.all_clusters");
    return ["zones", "villages", "clusters"].filter((k) => t[k] && t[k].length)
      .map((k) => `${LX.t("schedules.target_" + k)}: ${t[k].join(", ")}`).join("; ");
  }

  function showClashes(clashes) {
    const card = $("clash-card");
    const list = LX.clear($("clashes"));
    card.hidden = !clashes.length;
    const seen = new Set();
    for (const c of clashes) {
      const key = c.schedule_ids.join("-") + c.start;
      if (seen.has(key)) continue;
      seen.add(key);
      const [a, b] = c.schedule_ids;
      const order = c.first === null ? LX.t("schedules.clash_no_order")
        : LX.t("schedules.clash_first", { id: c.first });
      const buttons = LX.can("schedules:write") ? [
        c.first === null ? LX.el("button", { type: "button", class: "small-button", onclick: () => acceptOrder(b, "after") },
          LX.t("schedules.accept_after_id", { id: b })) : null,
        LX.el("button", { type: "button", class: "small-button", onclick: () => cancelSchedule({ id: b }) },
          LX.t("schedules.cancel_id", { id: b })),
      ] : [];
      list.append(LX.el("li", { class: "clash-item", "data-schedules": c.schedule_ids.join(" ") },
        LX.el("strong", {}, `${named(a)} ⟷ ${named(b)}`), " ",
        LX.el("time", { datetime: c.start }, `${LX.fmt(c.start, { weekday: "short", day: "2-digit", month: "2-digit" })} ${LX.fmtTime(c.start)}–${LX.fmtTime(c.end)}`),
        " · ", `${c.clusters.join(", ")}${c.cluster_count > c.clusters.length ? " …" : ""}`, " · ", order, " ", buttons));
    }
  }

  async function acceptOrder(id, order) {
    try {
      const current = await LX.api("GET", `/schedules/${id}`);
      await LX.api("PATCH", `/schedules/${id}`, { on_conflict: order }, { "If-Match": current.etag });
      LX.say(LX.t("schedules.order_saved"), "ok");
      await refresh();
    } catch (err) { LX.say(LX.problemText(err), "error"); }
  }

  async function cancelSchedule(s) {
    if (!window.confirm(LX.t("sched.cancel_confirm"))) return;
    try {
      const current = await LX.api("GET", `/schedules/${s.id}`);
      await LX.api("POST", `/schedules/${s.id}/cancel`, undefined, { "If-Match": current.etag });
      if (editing && editing.id === s.id) stopEditing(); // nothing left to edit
      LX.say(LX.t("sched.cancelled"), "ok");
      await refresh();
    } catch (err) { LX.say(LX.problemText(err), "error"); }
  }

  async function loadChoices() {
    // the programme form's media choices are programmes.js's
    const clusters = $("sched-clusters");
    if (clusters) {
      const page = await LX.get("/clusters?limit=500");
      LX.clear(clusters).append(...page.items.filter((c) => c.status !== "retired").map((c) =>
        LX.el("label", { class: "check" }, LX.el("input", { type: "checkbox", value: c.id, name: "cluster" }), ` ${c.name || c.id}`)));
    }
  }

  async function refresh() {
    await loadProgrammes();
    await Promise.all([loadWeek(), loadUpcoming(), loadRecurring()]);
  }

  // ---- recurring schedules: one form creates them and edits them (pre-filled, If-Match)
  const PLACE_KINDS = ["zones", "villages", "clusters"];
  // The schedule being edited: { id, etag, schedule }; null while the form creates.
  let editing = null;
  // Targets of a kind the form does not show next to the chosen one (made through the API):
  // an edit keeps them rather than dropping them silently.
  let keptTargets = {};

  /** Fill the place checkboxes of the chosen kind; ``chosen`` ids come ticked (kept even when
      no longer listed, e.g. a retired cluster, so saving does not drop them unseen). */
  let placesAsked = 0;
  async function loadPlaces(chosen) {
    const box = $("rec-places");
    if (!box) return;
    const kind = document.querySelector('input[name="rec-targets"]:checked').value;
    // The old kind's boxes go at once (a tick on them would be lost when the new ones come),
    // and only the latest request fills the list.
    LX.clear(box);
    const asked = ++placesAsked;
    box.hidden = kind === "all";
    if (kind === "all") return;
    const page = await LX.get(`/${kind}?limit=500`);
    if (asked !== placesAsked) return;
    const wanted = new Set(chosen || []);
    const items = page.items.filter((x) => x.status !== "retired" || wanted.has(x.id));
    const listed = new Set(items.map((x) => x.id));
    const all = [...items, ...[...wanted].filter((id) => !listed.has(id)).map((id) => ({ id }))];
    LX.clear(box).append(...all.map((x) => LX.el("label", { class: "check" },
      LX.el("input", { type: "checkbox", value: x.id, name: "place", checked: wanted.has(x.id) }),
      ` ${x.name || x.id}`)));
    if (!all.length) box.append(LX.el("p", { class: "muted" }, LX.t("schedules.no_places")));
  }

  function recurringBody() {
    const kind = $("rec-kind").value;
    let recurrence;
    if (kind === "once") {
      const [y, m, d] = $("rec-date").value.split("-").map(Number);
      const [h, min] = $("rec-time").value.split(":").map(Number);
      if (!y || Number.isNaN(h)) throw new Error(LX.t("sched.pick_time"));
      recurrence = { kind, at: LX.fromZoned(y, m, d, h, min).toISOString() };
    } else {
      recurrence = { kind, time: $("rec-time").value };
      if (!recurrence.time) throw new Error(LX.t("sched.pick_time"));
      if (kind === "weekly") {
        recurrence.weekdays = [...document.querySelectorAll('#rec-weekdays input:checked')].map((i) => i.value);
        if (!recurrence.weekdays.length) throw new Error(LX.t("schedules.pick_weekdays"));
      }
      if (kind === "monthly") recurrence.day_of_month = Number($("rec-dom").value);
      if ($("rec-from").value) recurrence.valid_from = $("rec-from").value;
      if ($("rec-to").value) recurrence.valid_to = $("rec-to").value;
      const exceptions = $("rec-except").value.split(/[,\s]+/).filter(Boolean);
      if (exceptions.length) recurrence.exceptions = exceptions;
    }
    const where = document.querySelector('input[name="rec-targets"]:checked').value;
    let targets = { all: true };
    if (where !== "all") {
      const chosen = [...document.querySelectorAll('#rec-places input:checked')].map((i) => i.value);
      if (!chosen.length) throw new Error(LX.t("schedules.pick_places"));
      targets = Object.assign({}, keptTargets, { [where]: chosen });
    }
    const body = { programme_id: Number($("rec-programme").value), recurrence, targets };
    if (!body.programme_id) throw new Error(LX.t("prog.none"));
    if ($("rec-volume").value !== "") body.volume = Number($("rec-volume").value);
    const misfire = $("rec-misfire").value;
    if (misfire !== "default") body.misfire = misfire;
    if (misfire === "start_late") body.misfire_late_min = Number($("rec-late-min").value) || 10;
    // PUT replaces the whole schedule: keep what the form does not show (its priority).
    if (editing) body.priority = editing.schedule.priority;
    return body;
  }

  function showConflict(body, problem) {
    pendingRecurring = body;
    const list = LX.clear($("conflict-list"));
    for (const c of problem.conflicts || []) {
      const times = c.overlaps.slice(0, 3).map((o) =>
        `${LX.fmt(o.start, { weekday: "short", day: "2-digit", month: "2-digit" })} ${LX.fmtTime(o.start)}–${LX.fmtTime(o.end)}`);
      const more = c.overlap_count > times.length ? " " + LX.t("schedules.more", { n: c.overlap_count - times.length }) : "";
      list.append(LX.el("li", { "data-schedule": c.schedule_id },
        LX.t("schedules.conflict_with", { schedule: named(c.schedule_id), clusters: c.clusters.join(", ") }), " ",
        LX.el("span", { class: "small" }, times.join(", ") + more)));
    }
    $("conflict-box").hidden = false;
  }

  /** A quota rule's ``first`` (a day, a session start or an ISO week) as the reader says it. */
  function quotaWhen(first) {
    const week = /^(\d{4})-W(\d{2})$/.exec(first);
    if (week) return LX.t("schedules.week_no", { year: week[1], week: Number(week[2]) });
    if (/^\d{4}-\d{2}-\d{2}$/.test(first)) {
      const [y, m, d] = first.split("-");
      return `${d}/${m}/${y}`;
    }
    return Number.isNaN(Date.parse(first)) ? first : LX.fmtDateTime(first);
  }

  /** One quota violation in the reader's language from its codes; the API's English
      ``reason`` only for a rule this console does not know. */
  function violationText(v) {
    const key = "schedules.violation_" + v.quota;
    if (LX.t(key) === key) return v.reason;
    const local = LX.t("schedules.locality_" + v.locality);
    const text = LX.t(key, {
      locality: local === "schedules.locality_" + v.locality ? v.locality : local,
      value: v.value, limit: v.limit, first: quotaWhen(v.first),
    });
    const more = v.times > 1 ? " " + LX.t("schedules.more", { n: v.times - 1 }) : "";
    const where = v.clusters && v.clusters.length ? " " + LX.t("schedules.violation_on", { clusters: v.clusters.join(", ") }) : "";
    return text + more + where;
  }

  const slug = (text) => String(text || "").toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_|_$/g, "");

  /** The catalogue's text for ``key``, or null when it has none. */
  const known = (key, params) => (LX.t(key) === key ? null : LX.t(key, params));

  /** A refused save in the reader's language: quota violations and field errors by their
      codes and names (and the few refusal sentences the catalogue knows); the API's English
      detail only where nothing is known. */
  function refusalText(err) {
    if (!(err instanceof LX.ApiError)) return LX.problemText(err);
    if (err.body.violations) {
      return [LX.t("schedules.quota_refused"), ...err.body.violations.map(violationText)].join(" — ");
    }
    if (err.body.code === "schedule_not_editable" || (err.status === 409 && err.body.title === "Not editable")) {
      return LX.t("schedules.not_editable", { id: err.body.schedule_id || (editing ? editing.id : "") });
    }
    // Any other refusal the catalogue knows by its code (a generic "invalid request" names
    // its fields below, in the form's words).
    if (err.body.code && err.body.code !== "invalid_request" && LX.problemByCode(err.body)) {
      return LX.problemText(err);
    }
    if (err.status === 422 && (err.body.errors || []).length) {
      const fields = err.body.errors.map((e) => {
        const field = String(e.field).replace(/\.\d+$/, ""); // exceptions.1 -> exceptions
        const label = known("schedules.field_" + field) || LX.fieldLabel(e.field);
        const message = known("schedules.msg_" + slug(e.message)) || LX.fieldMessage(e);
        return label ? `${label}: ${message}` : message;
      });
      return [LX.t("problem.invalid_request"), ...fields].join(" — ");
    }
    const sentence = known("schedules.msg_" + slug(err.body.detail));
    return sentence || LX.problemText(err);
  }

  function setPlaceKind(kind) {
    for (const radio of document.querySelectorAll('input[name="rec-targets"]')) radio.checked = radio.value === kind;
  }

  function showKept() {
    const kept = $("rec-kept");
    const shown = PLACE_KINDS.filter((k) => keptTargets[k] && keptTargets[k].length);
    kept.hidden = !shown.length;
    kept.textContent = shown.length ? LX.t("schedules.kept_targets", { targets: showTargets(keptTargets) }) : "";
  }

  function kindChanged() {
    const kind = $("rec-kind").value;
    $("rec-weekdays-box").hidden = kind !== "weekly";
    $("rec-dom-box").hidden = kind !== "monthly";
    $("rec-date-box").hidden = kind !== "once";
    $("rec-span-box").hidden = kind === "once";
    $("rec-except-box").hidden = kind === "once";
  }

  const misfireChanged = () => { $("rec-late-box").hidden = $("rec-misfire").value !== "start_late"; };
  const syncSlot = () => {
    $("rec-slot").value = ["06:00", "17:00"].includes($("rec-time").value) ? $("rec-time").value : "";
  };

  /** The form shows ``s`` as stored: every field the form has, targets ticked. */
  async function fillForm(s) {
    const p = programmes.get(s.programme_id);
    if (!p) await loadProgrammes();
    $("rec-programme").value = String(s.programme_id);
    $("rec-kind").value = s.recurrence;
    if (s.recurrence === "once") {
      const z = LX.zoned(new Date(s.start_at));
      $("rec-date").value = LX.isoDate(z);
      $("rec-time").value = `${String(z.hour).padStart(2, "0")}:${String(z.minute).padStart(2, "0")}`;
    } else {
      $("rec-time").value = (s.time_of_day || "").slice(0, 5);
    }
    syncSlot();
    for (const box of document.querySelectorAll('#rec-weekdays input')) box.checked = s.weekdays.includes(box.value);
    $("rec-dom").value = s.day_of_month || 1;
    $("rec-from").value = s.valid_from || "";
    $("rec-to").value = s.valid_to || "";
    $("rec-except").value = (s.exceptions || []).join(", ");
    $("rec-volume").value = s.volume === null || s.volume === undefined ? "" : s.volume;
    const grace = s.misfire_grace_s;
    $("rec-misfire").value = grace === null || grace === undefined ? "default" : grace === 0 ? "skip" : "start_late";
    $("rec-late-min").value = grace ? Math.max(1, Math.round(grace / 60)) : 10;
    misfireChanged();
    kindChanged();
    const kinds = s.targets.all ? [] : PLACE_KINDS.filter((k) => s.targets[k] && s.targets[k].length);
    const shown = kinds[0] || "all";
    keptTargets = {};
    for (const k of kinds.slice(1)) keptTargets[k] = s.targets[k];
    setPlaceKind(shown);
    showKept();
    await loadPlaces(shown === "all" ? [] : s.targets[shown]);
  }

  /** Edit mode: heading, the version being edited, the buttons. */
  function showEditing() {
    const on = editing !== null;
    $("rec-heading").textContent = on ? LX.t("schedules.editing", { id: editing.id }) : LX.t("schedules.recurring_new");
    const note = $("rec-editing");
    note.hidden = !on;
    note.textContent = on ? LX.t("schedules.editing_version", {
      title: (programmes.get(editing.schedule.programme_id) || { title: `#${editing.schedule.programme_id}` }).title,
      time: LX.fmt(editing.schedule.updated_at),
    }) : "";
    const submit = $("rec-submit");
    submit.textContent = on ? submit.dataset.edit : submit.dataset.create;
    $("rec-stop-edit").hidden = !on;
    $("recurring-card").classList.toggle("editing", on);
  }

  /** Read the schedule as it is now (with its ETag) and put it in the form. */
  async function loadForEdit(id) {
    // No saving a half-filled form (its places are still loading).
    $("rec-submit").disabled = true;
    try {
      const { data, etag } = await LX.api("GET", `/schedules/${id}`);
      if (!["pending", "active"].includes(data.status)) {
        throw new Error(LX.t("schedules.not_editable", { id }));
      }
      editing = { id, etag, schedule: data };
      $("conflict-box").hidden = true;
      pendingRecurring = null;
      await fillForm(data);
      showEditing();
    } finally {
      $("rec-submit").disabled = false;
    }
  }

  async function editSchedule(id) {
    try {
      await loadForEdit(id);
      $("recurring-card").scrollIntoView({ block: "start" });
      $("rec-programme").focus({ preventScroll: true });
      LX.say(LX.t("schedules.edit_opened", { id }), "info");
    } catch (err) {
      LX.say(err instanceof LX.ApiError ? LX.problemText(err) : err.message, "error");
    }
  }

  function formDefaults() {
    $("rec-from").value = LX.isoDate(LX.zoned(new Date()));
    $("rec-date").value = LX.isoDate(LX.zoned(new Date(Date.now() + DAY_MS)));
  }

  function stopEditing() {
    editing = null;
    keptTargets = {};
    $("recurring-form").reset();
    formDefaults();
    kindChanged();
    misfireChanged();
    showKept();
    showEditing();
    loadPlaces().catch((e) => LX.say(LX.problemText(e), "error"));
  }

  /** "Sửa" for a schedule that can still change (shown to those who may write). */
  function editButton(id) {
    if (!LX.can("schedules:write") || !$("recurring-form")) return null;
    return LX.el("button", {
      type: "button", class: "small-button edit-button", "data-edit": id,
      "aria-label": LX.t("schedules.edit_id", { id }), onclick: () => editSchedule(id),
    }, LX.t("schedules.edit"));
  }

  async function submitRecurring(body) {
    const edit = editing;
    $("rec-submit").disabled = true; // one save at a time (a double tap on a phone)
    try {
      const { data } = edit
        ? await LX.api("PUT", `/schedules/${edit.id}`, body, { "If-Match": edit.etag })
        : await LX.api("POST", "/schedules", body);
      $("conflict-box").hidden = true;
      pendingRecurring = null;
      if (edit) {
        stopEditing();
        LX.say(LX.t("schedules.saved", { id: data.id, first: LX.fmt(data.start_at) }), "ok");
      } else {
        LX.say(LX.t("schedules.created", { id: data.id, first: LX.fmt(data.start_at) }), "ok");
      }
      weekOffset = weekOf(new Date(data.start_at));
      await refresh();
    } catch (err) {
      if (err instanceof LX.ApiError && err.status === 412 && edit) {
        // Someone saved it since it was opened: show what is stored now, edit from there.
        $("conflict-box").hidden = true;
        pendingRecurring = null;
        try {
          await loadForEdit(edit.id);
          LX.say(LX.t("schedules.stale", { id: edit.id }), "error");
        } catch (again) {
          stopEditing();
          LX.say(again instanceof LX.ApiError ? LX.problemText(again) : again.message, "error");
        }
        await refresh();
      } else if (err instanceof LX.ApiError && err.status === 409 && err.body.conflicts) {
        showConflict(body, err.body);
        LX.say(LX.t("schedules.conflict_title"), "error");
      } else {
        LX.say(refusalText(err), "error");
        // On air, done or cancelled meanwhile: nothing left to edit. Other refusals keep the form.
        if (edit && err instanceof LX.ApiError && err.body.title === "Not editable") { stopEditing(); await refresh(); }
      }
    } finally {
      $("rec-submit").disabled = false;
    }
  }

  const recForm = $("recurring-form");
  if (recForm) {
    $("rec-kind").addEventListener("change", kindChanged);
    kindChanged();
    $("rec-misfire").addEventListener("change", misfireChanged);
    misfireChanged();
    $("rec-slot").addEventListener("change", () => { if ($("rec-slot").value) $("rec-time").value = $("rec-slot").value; });
    $("rec-time").addEventListener("input", syncSlot);
    formDefaults();
    for (const radio of document.querySelectorAll('input[name="rec-targets"]')) {
      radio.addEventListener("change", () => loadPlaces().catch((e) => LX.say(LX.problemText(e), "error")));
    }
    recForm.addEventListener("submit", (event) => {
      event.preventDefault();
      let body;
      try { body = recurringBody(); } catch (e) { LX.say(e.message, "error"); return; }
      submitRecurring(body);
    });
    $("rec-stop-edit").addEventListener("click", () => { stopEditing(); LX.say(LX.t("schedules.edit_stopped"), "info"); });
    for (const order of ["after", "before"]) {
      $("conflict-" + order).addEventListener("click", () => {
        if (pendingRecurring) submitRecurring(Object.assign({}, pendingRecurring, { on_conflict: order }));
      });
    }
    $("conflict-cancel").addEventListener("click", () => {
      pendingRecurring = null;
      $("conflict-box").hidden = true;
      LX.say(LX.t("schedules.dropped"), "info");
    });
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

  // programmes.js made or edited a programme: new titles, approval states and the choice
  document.addEventListener("lx:programme-saved", (event) => {
    refresh().then(() => {
      const select = $("sched-programme");
      if (select && event.detail) select.value = String(event.detail);
    }).catch((err) => LX.say(LX.problemText(err), "error"));
  });

  $("week-prev").addEventListener("click", () => { weekOffset -= 1; loadWeek().catch((e) => LX.say(LX.problemText(e), "error")); });
  $("week-next").addEventListener("click", () => { weekOffset += 1; loadWeek().catch((e) => LX.say(LX.problemText(e), "error")); });
  $("week-today").addEventListener("click", () => { weekOffset = 0; loadWeek().catch((e) => LX.say(LX.problemText(e), "error")); });
  Promise.all([refresh(), loadChoices()]).catch((err) => LX.say(LX.problemText(err), "error"));
});
