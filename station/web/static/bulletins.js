/* Upstream bulletins [bản tin cấp trên]: proposed priority bulletins with the programmes they
   clash with, placed (before / after / instead of an item, or as an own session) or declined
   after a confirmation; the inbox of normal bulletins (same placement, clashes on demand);
   what was decided, by whom and when. An emergency waiting for an operator's confirmation
   stands out at the top (red) with a big confirm button and a confirmation step; a text-only
   bulletin gets an upload/record step (upload through the media pipeline, then link); the
   exchange log with the outbox state and "retry now" closes the screen. */
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const LX = window.LX;
  const $ = (id) => document.getElementById(id);
  const canPlace = LX.can("schedules:write");
  const canConfirm = LX.can("emergency");
  const canRecord = LX.can("media:write");
  const canRetry = LX.can("schedules:write");
  const EX_PAGE = 20;
  let exOffset = 0;
  const OPEN = new Set(["inbox", "proposed", "confirm_needed", "confirmed"]);
  const PLACEABLE = new Set(["inbox", "proposed"]);
  const DONE_SHOWN = 20;
  let villageNames = new Map();

  /** A catalogue string for a computed key, or the fallback when the catalogue lacks it. */
  const known = (key, fallback) => { const s = LX.t(key); return s === key ? fallback : s; };
  const report = (err) => LX.say(LX.problemText(err), "error");
  const line = (labelKey, value) => LX.el("p", { class: "bl-line" },
    LX.el("span", { class: "muted" }, LX.t(labelKey) + ": "), value);
  const when = (iso) => LX.fmtDateTime(iso);
  const titleOf = (b) => b.title || b.upstream_id;

  function where(villages) {
    if (!villages.length) return LX.t("bulletins.whole_commune");
    return villages.map((id) => villageNames.get(id) || id).join(", ");
  }

  function window_(from, to) {
    if (!from && !to) return LX.t("bulletins.no_window");
    return `${from ? when(from) : "…"} – ${to ? when(to) : "…"}`;
  }

  function decision(b) {
    if (b.status === "scheduled") {
      return LX.el("p", { class: "bl-decision ok", "data-decision": "scheduled" },
        LX.t("bulletins.scheduled_by", { user: b.decided_by || "?", at: when(b.decided_at) }));
    }
    if (b.status === "declined") {
      return LX.el("p", { class: "bl-decision", "data-decision": "declined" },
        LX.t("bulletins.declined_by", { user: b.decided_by || "?", at: when(b.decided_at) }));
    }
    return null;
  }

  /** The note, except the API's own "declined" marker: a decline shows its reason. */
  function note(b) {
    if (!b.note) return null;
    if (b.status === "declined" && b.note.startsWith("declined")) {
      const reason = b.note.replace(/^declined:?\s*/, "");
      return reason ? line("bulletins.reason_given", reason) : null;
    }
    return LX.el("p", { class: "muted small" }, b.note);
  }

  /** Title, class and status, validity, villages, text, audio: everything the bulletin says. */
  function head(b) {
    const audio = b.media_id !== null
      ? LX.el("audio", { controls: true, preload: "none", src: `${LX.apiBase}/console/media/${b.media_id}/audio`,
        "aria-label": LX.t("bulletins.listen_to", { title: titleOf(b) }) })
      : LX.el("p", { class: "muted small" }, LX.t("bulletins.text_only"));
    return [
      LX.el("h3", {}, titleOf(b)),
      LX.el("p", { class: "bl-badges" },
        LX.el("span", { class: `badge bl-class-${b.bulletin_class}` },
          known(`bulletins.class_${b.bulletin_class}`, b.bulletin_class)), " ",
        LX.el("span", { class: `badge bl-status-${b.status}` },
          known(`bulletins.status_${b.status}`, b.status)), " ",
        LX.el("span", { class: "muted small" }, b.upstream_id)),
      line("bulletins.valid", window_(b.valid_from, b.valid_to)),
      line("bulletins.villages", where(b.villages)),
      b.issuer ? line("bulletins.issuer", b.issuer) : null,
      b.text ? LX.el("p", { class: "bl-text" }, b.text) : null,
      audio,
      note(b),
      decision(b),
    ];
  }

  function clashList(p) {
    if (p.problem) return LX.el("p", { class: "notice", role: "alert" }, LX.t("bulletins.problem"), " — ", p.problem);
    if (!p.clashes.length) return LX.el("p", { class: "muted" }, LX.t("bulletins.no_clashes"));
    return LX.el("div", { class: "bl-clashes" },
      LX.el("h4", {}, LX.t("bulletins.clashes", { n: p.clashes.length })),
      ...p.clashes.map((c) => LX.el("div", { class: "bl-clash", "data-session": c.session_id },
        LX.el("p", {}, LX.el("strong", {}, `${when(c.start)} · ${c.title}`)),
        LX.el("p", { class: "muted small" }, LX.t("bulletins.on_clusters", { clusters: c.clusters.join(", ") })),
        LX.el("ol", { class: "bl-items" }, ...c.items.map((i) => LX.el("li", { "data-item": i.item },
          `${LX.fmtTime(i.start)} · ${i.title || known(`bulletins.kind_${i.kind}`, i.kind)} `,
          LX.el("span", { class: "muted small" }, `(${LX.fmtDuration(i.duration_s * 1000)})`)))))));
  }

  /** The placement form with its confirmation step; ``b`` a bulletin, ``p`` its proposal. */
  function placeForm(b, p) {
    const id = `bl${b.id}`;
    const opt = (value, text) => LX.el("option", { value }, text);
    const modes = (p.clashes.length ? ["before", "after", "instead"] : []).concat(["session"]);
    const radios = modes.map((m, n) => LX.el("label", { class: "check" },
      LX.el("input", { type: "radio", name: `${id}-mode`, value: m, checked: n === 0 }),
      " ", LX.t(`bulletins.mode_${m}`)));
    const clash = LX.el("select", { id: `${id}-clash` },
      ...p.clashes.map((c, n) => opt(String(n), `${when(c.start)} · ${c.title}`)));
    const item = LX.el("select", { id: `${id}-item` });
    const fillItems = () => {
      const c = p.clashes[Number(clash.value)];
      LX.clear(item).append(...(c ? c.items : []).map((i) =>
        opt(String(i.item), `${i.item}. ${i.title || known(`bulletins.kind_${i.kind}`, i.kind)} (${LX.fmtTime(i.start)})`)));
    };
    fillItems();
    clash.addEventListener("change", fillItems);
    // own session: by default a few minutes after the window opens, on a 5-minute mark
    const first = new Date(Math.ceil((Date.parse(p.window_start) + 300000) / 300000) * 300000);
    const z = LX.zoned(first);
    const date = LX.el("input", { id: `${id}-date`, type: "date", value: LX.isoDate(z) });
    const time = LX.el("input", { id: `${id}-time`, type: "time",
      value: `${String(z.hour).padStart(2, "0")}:${String(z.minute).padStart(2, "0")}` });
    const onItem = LX.el("div", { class: "row" },
      LX.el("div", {}, LX.el("label", { for: clash.id }, LX.t("bulletins.programme")), clash),
      LX.el("div", {}, LX.el("label", { for: item.id }, LX.t("bulletins.item")), item));
    const onOwn = LX.el("div", {},
      LX.el("div", { class: "row" },
        LX.el("div", {}, LX.el("label", { for: date.id }, LX.t("bulletins.date")), date),
        LX.el("div", {}, LX.el("label", { for: time.id }, LX.t("bulletins.time")), time)),
      LX.el("p", { class: "muted small" }, LX.t("bulletins.within", { window: window_(p.window_start, p.window_end) })));
    const mode = () => (form.querySelector(`input[name="${id}-mode"]:checked`) || {}).value;
    const showMode = () => { onItem.hidden = mode() === "session"; onOwn.hidden = mode() !== "session"; };

    const error = LX.el("p", { class: "error", role: "alert" });
    const confirmText = LX.el("p", { class: "bl-confirm-text" });
    const reason = LX.el("input", { id: `${id}-reason`, maxlength: 500 });
    const reasonBox = LX.el("div", {}, LX.el("label", { for: reason.id }, LX.t("bulletins.reason")), reason);
    const yes = LX.el("button", { type: "button", class: "primary" });
    const no = LX.el("button", { type: "button" }, LX.t("bulletins.back"));
    const confirmBox = LX.el("div", { class: "notice bl-confirm", hidden: true }, confirmText, reasonBox,
      LX.el("div", { class: "buttons" }, yes, no));
    const placeButton = LX.el("button", { type: "submit", class: "primary" }, LX.t("bulletins.place"));
    const declineButton = LX.el("button", { type: "button" }, LX.t("bulletins.decline"));
    const actions = LX.el("div", { class: "buttons" }, placeButton, declineButton);
    const form = LX.el("form", { class: "bl-place", "aria-label": LX.t("bulletins.place_title", { title: titleOf(b) }) },
      LX.el("fieldset", {}, LX.el("legend", {}, LX.t("bulletins.how")), ...radios),
      onItem, onOwn, actions, confirmBox, error);
    form.addEventListener("change", (e) => { if (e.target.name === `${id}-mode`) showMode(); });
    showMode();

    let pending = null; // what "yes" sends
    let failKey = "bulletins.place_failed";
    const close = () => { pending = null; confirmBox.hidden = true; actions.hidden = false; };
    const ask = (text, call, yesKey, withReason) => {
      error.textContent = "";
      pending = call;
      failKey = withReason ? "bulletins.decline_failed" : "bulletins.place_failed";
      confirmText.textContent = text;
      reasonBox.hidden = !withReason;
      yes.textContent = LX.t(yesKey);
      confirmBox.hidden = false;
      actions.hidden = true;
      yes.focus();
    };
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const m = mode();
      if (m === "session") {
        if (!date.value || !time.value) { error.textContent = LX.t("bulletins.pick_time"); return; }
        const [y, mo, d] = date.value.split("-").map(Number);
        const [h, mi] = time.value.split(":").map(Number);
        const at = LX.fromZoned(y, mo, d, h, mi);
        if (at < Date.parse(p.window_start) - 60000 || at >= Date.parse(p.window_end)) {
          error.textContent = LX.t("bulletins.outside_window", { window: window_(p.window_start, p.window_end) });
          return;
        }
        ask(LX.t("bulletins.confirm_session", { title: titleOf(b), at: when(at.toISOString()) }),
          () => LX.api("POST", `/bulletins/${b.id}/place`, { mode: "session", at: at.toISOString() }),
          "bulletins.confirm_place", false);
        return;
      }
      const c = p.clashes[Number(clash.value)];
      const it = c && c.items.find((i) => String(i.item) === item.value);
      if (!c || !it) { error.textContent = LX.t("bulletins.pick_item"); return; }
      ask(LX.t(`bulletins.confirm_${m}`, { title: titleOf(b), n: it.item,
        item: it.title || known(`bulletins.kind_${it.kind}`, it.kind), programme: c.title, at: when(c.start) }),
        () => LX.api("POST", `/bulletins/${b.id}/place`, { mode: m, session_id: c.session_id, item: it.item }),
        "bulletins.confirm_place", false);
    });
    declineButton.addEventListener("click", () => {
      reason.value = "";
      ask(LX.t("bulletins.confirm_decline", { title: titleOf(b) }),
        () => LX.api("POST", `/bulletins/${b.id}/decline`, { reason: reason.value.trim() }),
        "bulletins.confirm_decline_yes", true);
    });
    no.addEventListener("click", close);
    yes.addEventListener("click", async () => {
      if (!pending) return;
      yes.disabled = true;
      try {
        const result = (await pending()).data;
        close();
        LX.say(LX.t(result.status === "declined" ? "bulletins.declined_ok" : "bulletins.placed_ok",
          { title: titleOf(result) }), "ok");
        await load();
      } catch (err) {
        close();
        error.textContent = `${LX.t(failKey)} ${LX.problemText(err)}`;
        LX.say(error.textContent, "error");
      } finally {
        yes.disabled = false;
      }
    });
    return form;
  }

  function proposalPart(b, p) {
    return LX.el("div", { class: "bl-proposal" },
      LX.el("p", { class: "muted small" },
        LX.t("bulletins.reaches", { clusters: p.clusters.join(", ") || "—" }),
        p.duration_s !== null ? " · " + LX.t("bulletins.length", { d: LX.fmtDuration(p.duration_s * 1000) }) : ""),
      clashList(p),
      p.duration_s === null ? LX.el("p", { class: "notice" }, LX.t("bulletins.needs_audio")) : null,
      canPlace ? placeForm(b, p) : null);
  }

  function card(b, p) {
    const node = LX.el("article", { class: "bulletin", "data-bulletin": b.id, "data-status": b.status }, ...head(b));
    if (b.media_id === null && OPEN.has(b.status) && canRecord) node.append(audioForm(b));
    if (p) node.append(proposalPart(b, p));
    else if (PLACEABLE.has(b.status)) {
      const more = LX.el("button", { type: "button", class: "small-button" },
        LX.t(canPlace ? "bulletins.open_place" : "bulletins.open_clashes"));
      more.addEventListener("click", async () => {
        more.disabled = true;
        try {
          const found = await LX.get(`/bulletins/${b.id}/clashes`);
          more.replaceWith(proposalPart(found.bulletin, found));
        } catch (err) {
          more.disabled = false;
          report(err);
        }
      });
      node.append(LX.el("div", { class: "buttons" }, more));
    }
    return node;
  }


  // ---- a recording for a text-only bulletin: upload (or record) through the media pipeline, then link
  async function uploadAudio(b, file, name) {
    const data = new FormData();
    data.append("title", (b.title || b.upstream_id).slice(0, 200));
    data.append("file", file, name);
    const response = await fetch(LX.apiBase + "/media", {
      method: "POST", body: data, credentials: "same-origin",
      headers: { "X-CSRF-Token": LX.csrf, Accept: "application/json" },
    });
    let reply = {};
    try { reply = await response.json(); } catch (e) { reply = {}; }
    if (!response.ok) throw new LX.ApiError(response.status, reply);
    return (await LX.api("POST", `/bulletins/${b.id}/audio`, { media_id: reply.id })).data;
  }

  /** The browser microphone (MediaRecorder, as the live screen uses it): record, then stop and
      upload. "Stop" is enabled after a second of sound, so an empty recording is never sent. */
  function recorder(onDone) {
    if (!(window.MediaRecorder && navigator.mediaDevices && navigator.mediaDevices.getUserMedia)) return null;
    const SLICE_MS = 500;
    const button = LX.el("button", { type: "button", class: "small-button" }, LX.t("bulletins.record"));
    const clock = LX.el("span", { class: "muted small bl-rec-time", "aria-live": "off" });
    let rec = null;
    let chunks = [];
    button.addEventListener("click", async () => {
      if (rec) { button.disabled = true; rec.stop(); return; }
      try {
        const mic = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
        chunks = [];
        rec = new MediaRecorder(mic);
        rec.addEventListener("dataavailable", (e) => {
          if (e.data.size) chunks.push(e.data);
          clock.textContent = LX.fmtDuration(chunks.length * SLICE_MS);
          if (rec && chunks.length * SLICE_MS >= 1000) button.disabled = false;
        });
        rec.addEventListener("stop", () => {
          mic.getTracks().forEach((t) => t.stop());
          const type = rec.mimeType || "audio/webm";
          rec = null;
          button.disabled = false;
          button.textContent = LX.t("bulletins.record");
          onDone(new Blob(chunks, { type }), type.includes("ogg") ? "ghi-am.ogg" : "ghi-am.webm");
        });
        rec.start(SLICE_MS);
        button.disabled = true;
        button.textContent = LX.t("bulletins.record_stop");
      } catch (err) {
        rec = null;
        LX.say(LX.t("bulletins.no_microphone"), "error");
      }
    });
    return LX.el("span", {}, button, " ", clock);
  }

  function audioForm(b) {
    const id = `bl${b.id}-audio`;
    const file = LX.el("input", { id, type: "file", accept: "audio/*" });
    const error = LX.el("p", { class: "error", role: "alert" });
    const send = LX.el("button", { type: "submit", class: "primary" }, LX.t("bulletins.audio_send"));
    const attach = async (blob, name) => {
      send.disabled = true;
      error.textContent = "";
      LX.say(LX.t("bulletins.audio_uploading"), "info");
      try {
        const result = await uploadAudio(b, blob, name);
        LX.say(LX.t(result.status === "triggered" ? "bulletins.audio_aired" : "bulletins.audio_ok",
          { title: titleOf(result) }), "ok");
        await load();
      } catch (err) {
        error.textContent = `${LX.t("bulletins.audio_failed")} ${LX.problemText(err)}`;
        LX.say(error.textContent, "error");
      } finally {
        send.disabled = false;
      }
    };
    const form = LX.el("form", { class: "bl-audio", "aria-label": LX.t("bulletins.audio_title", { title: titleOf(b) }) },
      LX.el("h4", {}, LX.t("bulletins.audio_heading")),
      LX.el("p", { class: "muted small" }, LX.t("bulletins.audio_help")),
      LX.el("label", { for: id }, LX.t("bulletins.audio_file")), LX.filePicker(file),
      LX.el("div", { class: "buttons" }, send, recorder((blob, name) => attach(blob, name))), error);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const chosen = file.files[0];
      if (!chosen) { error.textContent = LX.t("bulletins.audio_pick"); return; }
      attach(chosen, chosen.name);
    });
    return form;
  }

  // ---- an emergency waiting for an operator's confirmation: red, at the top, a big button
  function emergencyCard(b) {
    const node = LX.el("article", { class: "bulletin bl-emergency", "data-bulletin": b.id, "data-status": b.status }, ...head(b));
    if (b.status !== "confirm_needed") {
      if (b.media_id === null && canRecord) node.append(audioForm(b));
      return node;
    }
    if (!canConfirm) {
      node.append(LX.el("p", { class: "notice" }, LX.t("bulletins.emergency_no_right")));
      return node;
    }
    const big = LX.el("button", { type: "button", class: "primary bl-emergency-button" }, LX.t("bulletins.emergency_confirm"));
    const text = LX.el("p", { class: "bl-confirm-text" },
      LX.t("bulletins.emergency_confirm_text", { title: titleOf(b), where: where(b.villages) }));
    const yes = LX.el("button", { type: "button", class: "primary bl-emergency-button" }, LX.t("bulletins.emergency_yes"));
    const no = LX.el("button", { type: "button" }, LX.t("bulletins.back"));
    const error = LX.el("p", { class: "error", role: "alert" });
    const ask = LX.el("div", { class: "notice bl-confirm", hidden: true }, text, LX.el("div", { class: "buttons" }, yes, no));
    big.addEventListener("click", () => { big.hidden = true; ask.hidden = false; error.textContent = ""; yes.focus(); });
    no.addEventListener("click", () => { ask.hidden = true; big.hidden = false; big.focus(); });
    yes.addEventListener("click", async () => {
      yes.disabled = true;
      try {
        const result = (await LX.api("POST", `/bulletins/${b.id}/confirm`)).data;
        LX.say(LX.t(result.status === "triggered" ? "bulletins.emergency_aired" : "bulletins.emergency_confirmed",
          { title: titleOf(result) }), result.status === "triggered" ? "ok" : "error");
        await load();
      } catch (err) {
        ask.hidden = true;
        big.hidden = false;
        error.textContent = `${LX.t("bulletins.emergency_failed")} ${LX.problemText(err)}`;
        LX.say(error.textContent, "error");
      } finally {
        yes.disabled = false;
      }
    });
    if (b.media_id === null && canRecord) node.append(audioForm(b));
    node.append(LX.el("div", { class: "buttons" }, big), ask, error);
    return node;
  }

  // ---- the exchange log [nhật ký trao đổi] with the outbox state and "retry now"
  const exWord = (group, value) => known(`bulletins.ex_${group}_${value}`, value);

  async function loadOutbox() {
    const o = await LX.get("/upstream/outbox");
    const box = LX.clear($("bl-outbox"));
    box.append(...[
      o.enabled ? null : LX.el("p", { class: "notice" }, LX.t("bulletins.ex_disabled")),
      LX.el("p", { id: "bl-outbox-counts" }, LX.t("bulletins.ex_counts", { pending: o.pending, sent: o.sent, failed: o.failed })),
      o.next ? LX.el("p", { class: "small" }, LX.t("bulletins.ex_next", {
        kind: exWord("kind", o.next.kind), key: o.next.key, attempts: o.next.attempts, at: when(o.next.next_attempt_at) }),
      o.next.last_error ? ` — ${o.next.last_error}` : "") : null,
      o.last_pull_at ? LX.el("p", { class: "muted small" }, LX.t("bulletins.ex_last_pull", { at: when(o.last_pull_at) })) : null,
      o.failed_rows.length ? LX.el("ul", { class: "bl-failed" }, ...o.failed_rows.map((r) => LX.el("li", { "data-outbox": r.id },
        `${exWord("kind", r.kind)} · ${r.key} · HTTP ${r.http_status === null ? "-" : r.http_status} ${r.last_error}`))) : null,
    ].filter(Boolean)); // append() would write "null"
    if (canRetry && (o.failed || o.pending)) {
      const retry = LX.el("button", { type: "button", class: "small-button", id: "bl-retry" }, LX.t("bulletins.ex_retry"));
      retry.addEventListener("click", async () => {
        retry.disabled = true;
        try {
          const r = (await LX.api("POST", "/upstream/outbox/retry", {})).data;
          LX.say(LX.t("bulletins.ex_retried", { requeued: r.requeued, hastened: r.hastened }), "ok");
          await loadExchanges(true);
        } catch (err) {
          retry.disabled = false;
          report(err);
        }
      });
      box.append(LX.el("div", { class: "buttons" }, retry));
    }
  }

  async function loadExchanges(fresh) {
    if (fresh) await loadOutbox();
    const page = await LX.get(`/upstream/exchanges?limit=${EX_PAGE}&offset=${fresh ? 0 : exOffset}`);
    if (fresh) { exOffset = 0; LX.clear($("bl-exchanges").tBodies[0]); }
    const td = (label, value) => LX.el("td", { "data-label": LX.t(label) }, value);
    const body = $("bl-exchanges").tBodies[0];
    if (!page.total) {
      body.append(LX.el("tr", {}, LX.el("td", { colspan: 6, class: "muted" }, LX.t("bulletins.ex_none"))));
    }
    for (const e of page.items) {
      body.append(LX.el("tr", { "data-exchange": e.id, class: ["failed", "rejected"].includes(e.status) ? "row-error" : null },
        td("bulletins.ex_at", LX.fmt(e.at)),
        td("bulletins.ex_direction", exWord("dir", e.direction)),
        td("bulletins.ex_kind", exWord("kind", e.kind)),
        td("bulletins.ex_status", LX.el("span", { class: `badge bl-ex-${e.status}` }, exWord("status", e.status))),
        td("bulletins.ex_http", e.http_status === null ? "-" : String(e.http_status)),
        td("bulletins.ex_key", LX.el("code", {}, e.key), e.error ? ` ${e.error}` : "")));
    }
    exOffset += page.items.length;
    $("bl-ex-more").hidden = exOffset >= page.total;
  }
  $("bl-ex-more").addEventListener("click", () => loadExchanges(false).catch(report));

  const fill = (box, nodes, emptyKey) => {
    LX.clear(box).append(...(nodes.length ? nodes : [LX.el("p", { class: "muted" }, LX.t(emptyKey))]));
  };

  async function load() {
    const [proposed, all] = await Promise.all([
      LX.get("/bulletins/proposed"),
      LX.get("/bulletins?include_done=true&limit=500"),
    ]);
    fill($("bl-proposed"), proposed.items.map((p) => card(p.bulletin, p)), "bulletins.none_proposed");
    const urgent = all.items.filter((b) => b.status === "confirm_needed"
      || (b.bulletin_class === "emergency" && b.status === "confirmed"));
    LX.clear($("bl-emergency")).append(...urgent.map(emergencyCard));
    $("bl-emergency-card").hidden = !urgent.length;
    const shown = new Set(proposed.items.map((p) => p.bulletin.id).concat(urgent.map((b) => b.id)));
    const waiting = all.items.filter((b) => OPEN.has(b.status) && !shown.has(b.id));
    fill($("bl-inbox"), waiting.map((b) => card(b, null)), "bulletins.none_inbox");
    const done = all.items.filter((b) => !OPEN.has(b.status))
      .sort((x, y) => Date.parse(y.decided_at || y.received_at || 0) - Date.parse(x.decided_at || x.received_at || 0))
      .slice(0, DONE_SHOWN);
    fill($("bl-done"), done.map((b) => card(b, null)), "bulletins.none_done");
    await loadExchanges(true); // a decision queues a message upstream: show it
  }

  $("bl-reload").addEventListener("click", () => load().then(() => LX.say("", "info")).catch(report));

  (async () => {
    try {
      const villages = await LX.get("/villages?limit=500");
      villageNames = new Map(villages.items.map((v) => [v.id, v.name]));
    } catch (err) { /* ids are shown instead */ }
    await load();
  })().catch(report);
});
