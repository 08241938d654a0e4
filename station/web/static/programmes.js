/* The programme form of /console/schedules: create a programme of media, relay, live,
   silence and jingle items with a topic and a language, or edit one ("Sửa" in the programme
   list; PUT + If-Match; a 412 reloads the current version). Saving tells schedules.js
   ("lx:programme-saved") so the lists and choices follow. */
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const LX = window.LX;
  const $ = (id) => document.getElementById(id);
  const form = $("programme-form");
  if (!form) return;
  const MOUNT = /^[a-z0-9][a-z0-9_-]{0,31}$/;
  let media = new Map(); // id -> media item (title, duration_ms)
  let topics = new Map(); // code -> topic
  let items = []; // the programme being built: API item bodies, in order
  let keptTopics = []; // topics beyond the one the form shows (made through the API): kept
  // The programme being edited: { id, etag, programme }; null while the form creates.
  let editing = null;

  const lengthMs = (item) =>
    item.duration_s != null ? item.duration_s * 1000 : (media.get(item.media_id) || {}).duration_ms || 0;

  function describe(item) {
    const name = (id) => (media.get(id) || { title: `#${id}` }).title;
    const titled = item.title ? ` «${item.title}»` : "";
    switch (item.kind) {
      case "media": return LX.t("prog.item_media", { title: name(item.media_id) });
      case "jingle": return LX.t("prog.item_jingle", { title: name(item.media_id) }) + titled;
      case "relay": return LX.t("prog.item_relay", { url: item.url }) + titled;
      case "live": return LX.t("prog.item_live", { mount: item.mount || LX.t("prog.studio") }) + titled;
      default: return LX.t("prog.item_silence") + titled;
    }
  }

  function move(index, by) {
    const to = index + by;
    if (to < 0 || to >= items.length) return;
    [items[index], items[to]] = [items[to], items[index]];
    render();
  }

  function remove(index) {
    items.splice(index, 1);
    render();
  }

  function small(label, text, onclick) {
    return LX.el("button", { type: "button", class: "small-button", "aria-label": label, onclick }, text);
  }

  /** The ordered list, the total length, and the media ticks that mirror the media items. */
  function render() {
    const list = LX.clear($("prog-items"));
    items.forEach((item, i) => {
      const n = i + 1;
      list.append(LX.el("li", { "data-kind": item.kind }, describe(item), " · ", LX.fmtDuration(lengthMs(item)), " ",
        small(LX.t("prog.up", { n }), "↑", () => move(i, -1)),
        small(LX.t("prog.down", { n }), "↓", () => move(i, 1)),
        small(LX.t("prog.remove", { n }), "×", () => remove(i))));
    });
    if (!items.length) list.append(LX.el("li", { class: "muted" }, LX.t("prog.no_items")));
    const total = items.reduce((sum, item) => sum + lengthMs(item), 0);
    $("prog-total").textContent = LX.t("prog.total", { n: items.length, length: LX.fmtDuration(total) });
    const ticked = new Set(items.filter((i) => i.kind === "media").map((i) => i.media_id));
    for (const box of document.querySelectorAll("#prog-media input")) box.checked = ticked.has(Number(box.value));
  }

  /** A media tick adds the file at the end; untick takes it out again. */
  function mediaTicked(event) {
    const id = Number(event.target.value);
    if (event.target.checked) items.push({ kind: "media", media_id: id });
    else items = items.filter((i) => !(i.kind === "media" && i.media_id === id));
    render();
  }

  function kindChanged() {
    const kind = $("prog-kind").value;
    $("prog-url-box").hidden = kind !== "relay";
    $("prog-mount-box").hidden = kind !== "live";
    $("prog-jingle-box").hidden = kind !== "jingle";
    $("prog-length-box").hidden = kind === "jingle";
  }

  /** The item of the "add another item" fields, or an Error saying what is missing. */
  function otherItem() {
    const kind = $("prog-kind").value;
    const title = $("prog-item-title").value.trim();
    if (kind === "jingle") {
      const id = Number($("prog-jingle").value);
      if (!id) throw new Error(LX.t("media.empty"));
      return { kind, media_id: id, title };
    }
    const item = { kind, title };
    if (kind === "relay") {
      const url = $("prog-url").value.trim();
      if (!/^(https?|rtmp|rtsp):\/\/[^/\s]+/i.test(url)) throw new Error(LX.t("prog.need_url"));
      item.url = url;
    }
    if (kind === "live") {
      const mount = $("prog-mount").value.trim().toLowerCase();
      if (mount && !MOUNT.test(mount)) throw new Error(LX.t("prog.bad_mount"));
      if (mount) item.mount = mount;
    }
    // in the order of the fields: what to play, then for how long
    const seconds = Number($("prog-minutes").value || 0) * 60 + Number($("prog-seconds").value || 0);
    if (!(seconds > 0) || seconds > 86400) throw new Error(LX.t("prog.need_length"));
    item.duration_s = seconds;
    return item;
  }

  function addOther() {
    try {
      items.push(otherItem());
    } catch (err) {
      LX.say(err.message, "error");
      return;
    }
    for (const id of ["prog-url", "prog-mount", "prog-minutes", "prog-seconds", "prog-item-title"]) $(id).value = "";
    render();
  }

  async function loadChoices() {
    const page = await LX.get("/media?limit=200");
    media = new Map(page.items.map((m) => [m.id, m]));
    const box = LX.clear($("prog-media"));
    box.append(...page.items.map((m) => LX.el("label", { class: "check" },
      LX.el("input", { type: "checkbox", value: m.id, name: "media", onchange: mediaTicked }),
      ` ${m.title} (${LX.fmtDuration(m.duration_ms)})`)));
    if (!page.items.length) box.append(LX.el("p", { class: "muted" }, LX.t("media.empty")));
    LX.clear($("prog-jingle")).append(...page.items.map((m) => LX.el("option", { value: m.id }, m.title)));
    const found = await LX.get("/topics");
    topics = new Map(found.items.map((t) => [t.code, t]));
    const topic = $("prog-topic");
    for (const t of found.items) topic.append(topicOption(t.code));
    render();
  }

  function topicOption(code) {
    const t = topics.get(code);
    const name = t ? (LX.lang === "vi" ? t.title_vi : t.title_en || t.title_vi) : LX.t("prog.topic_retired");
    return LX.el("option", { value: code }, `${code} — ${name}`);
  }

  /** Put a programme (as read, with its ETag) in the form. */
  function fill(p) {
    $("prog-title").value = p.title;
    items = p.items.map((i) => {
      const item = { kind: i.kind, title: i.title || "" };
      if (i.media_id != null) item.media_id = i.media_id;
      if (i.duration_s != null) item.duration_s = i.duration_s;
      if (i.url) item.url = i.url;
      if (i.mount) item.mount = i.mount;
      return item;
    });
    const [first, ...rest] = p.topics;
    const topic = $("prog-topic");
    if (first && ![...topic.options].some((o) => o.value === first)) topic.append(topicOption(first));
    topic.value = first || "";
    keptTopics = rest;
    const language = $("prog-language");
    if (![...language.options].some((o) => o.value === p.language)) {
      language.append(LX.el("option", { value: p.language }, p.language));
    }
    language.value = p.language;
    render();
  }

  function showEditing() {
    const on = editing !== null;
    const heading = $("prog-heading");
    heading.textContent = on ? heading.dataset.edit : heading.dataset.create;
    const note = $("prog-editing");
    note.hidden = !on;
    note.textContent = on ? LX.t("prog.editing", { title: editing.programme.title, v: editing.programme.version }) : "";
    const kept = $("prog-topics-kept");
    kept.hidden = !keptTopics.length;
    kept.textContent = keptTopics.length ? LX.t("prog.topics_kept", { topics: keptTopics.join(", ") }) : "";
    const submit = $("prog-submit");
    submit.textContent = on ? submit.dataset.edit : submit.dataset.create;
    $("prog-stop-edit").hidden = !on;
    $("programme-card").classList.toggle("editing", on);
  }

  async function loadForEdit(id) {
    const { data, etag } = await LX.api("GET", `/programmes/${id}`);
    editing = { id, etag, programme: data };
    fill(data);
    showEditing();
  }

  async function edit(id) {
    try {
      await loadForEdit(id);
      $("programme-card").scrollIntoView({ block: "start" });
      $("prog-title").focus({ preventScroll: true });
      LX.say(LX.t("prog.edit_opened", { title: editing.programme.title }), "info");
    } catch (err) { LX.say(LX.problemText(err), "error"); }
  }

  function stopEditing() {
    editing = null;
    keptTopics = [];
    items = [];
    form.reset();
    kindChanged();
    render();
    showEditing();
  }

  /** 422: which item the API refused, in the console's language, then its message (a
      refusal the catalogue knows by its code names the item itself). */
  function refusal(err) {
    if (LX.problemByCode(err.body) && err.body.code !== "invalid_request") return LX.problemText(err);
    const fields = (err.body && err.body.errors) || [];
    const item = fields.map((e) => /^items\.(\d+)\./.exec(e.field)).find(Boolean);
    const lead = item ? LX.t("prog.bad_item", { n: Number(item[1]) + 1 }) + " " : "";
    return lead + LX.problemText(err);
  }

  async function submit(event) {
    event.preventDefault();
    const title = $("prog-title").value.trim();
    if (!title || !items.length) { LX.say(LX.t("prog.fill"), "error"); return; }
    const topic = $("prog-topic").value;
    const body = {
      title,
      items,
      topics: [...(topic ? [topic] : []), ...keptTopics.filter((t) => t !== topic)],
      language: $("prog-language").value,
    };
    const edit = editing;
    $("prog-submit").disabled = true; // one save at a time (a double tap on a phone)
    try {
      const { data } = edit
        ? await LX.api("PUT", `/programmes/${edit.id}`, body, { "If-Match": edit.etag })
        : await LX.api("POST", "/programmes", body);
      if (edit) {
        const again = edit.programme.approved ? " " + LX.t("prog.approve_again") : "";
        LX.say(LX.t("prog.saved", { title: data.title, v: data.version }) + again, "ok");
      } else {
        LX.say(LX.t("prog.created", { title: data.title }), "ok");
      }
      stopEditing();
      document.dispatchEvent(new CustomEvent("lx:programme-saved", { detail: data.id }));
    } catch (err) {
      if (err instanceof LX.ApiError && err.status === 412 && edit) {
        // Someone saved it meanwhile: show their version; the broadcaster re-applies the change.
        LX.say(LX.t("prog.stale", { title: edit.programme.title }), "error");
        await loadForEdit(edit.id).catch((e) => LX.say(LX.problemText(e), "error"));
      } else if (err instanceof LX.ApiError) {
        LX.say(refusal(err), "error");
      } else {
        LX.say(LX.t("error.network"), "error");
      }
    } finally {
      $("prog-submit").disabled = false;
    }
  }

  form.addEventListener("submit", submit);
  $("prog-kind").addEventListener("change", kindChanged);
  $("prog-add-item").addEventListener("click", addOther);
  $("prog-stop-edit").addEventListener("click", stopEditing);
  document.addEventListener("lx:edit-programme", (event) => edit(event.detail));
  kindChanged();
  loadChoices().catch((err) => LX.say(LX.problemText(err), "error"));
});
