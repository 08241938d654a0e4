/* Media library: upload with a progress bar (XHR), list, search, listen; edit the title, topics
   and language (If-Match); delete (refused while a programme uses the item: said in words). */
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const LX = window.LX;
  const $ = (id) => document.getElementById(id);
  const body = document.querySelector("#media-table tbody");
  const canWrite = LX.can("media:write");
  const codes = (text) => text.split(",").map((c) => c.trim()).filter(Boolean);
  let editing = null; // { id, etag } of the item in the edit form

  function actionsCell(m) {
    return LX.el("td", { "data-label": LX.t("media.actions") },
      LX.el("button", { type: "button", class: "media-edit", onclick: () => openEdit(m.id) }, LX.t("media.edit")),
      " ",
      LX.el("button", { type: "button", class: "media-delete", onclick: () => remove(m) }, LX.t("media.delete")));
  }

  const field = (id, label, attrs) => [LX.el("label", { for: id }, label), LX.el("input", Object.assign({ id }, attrs))];

  function closeEdit() {
    editing = null;
    LX.clear($("media-edit")).hidden = true;
  }

  /** The edit form, built for the item being edited and removed afterwards. */
  function editForm(data) {
    const form = LX.el("form", { id: "media-edit-form" },
      ...field("edit-title", LX.t("media.title"), { maxlength: 300, required: true, value: data.title }),
      LX.el("div", { class: "row" },
        LX.el("div", {}, ...field("edit-topics", LX.t("media.topics"),
          { maxlength: 400, placeholder: LX.t("media.topics_hint"), value: data.topics.join(", ") })),
        LX.languageField("edit-language", data.language)),
      LX.el("div", { class: "actions" },
        LX.el("button", { type: "submit", class: "primary", id: "edit-save" }, LX.t("media.save")),
        LX.el("button", { type: "button", id: "edit-cancel", onclick: closeEdit }, LX.t("media.cancel"))));
    form.addEventListener("submit", (event) => { event.preventDefault(); save(); });
    return form;
  }

  async function openEdit(id) {
    try {
      const { data, etag } = await LX.api("GET", `/media/${id}`);
      editing = { id, etag };
      const box = LX.clear($("media-edit"));
      box.append(LX.el("h2", {}, LX.t("media.edit_title")), editForm(data));
      box.hidden = false;
      $("edit-title").focus();
    } catch (err) { LX.say(LX.problemText(err), "error"); }
  }

  async function save() {
    if (!editing) return;
    const change = { title: $("edit-title").value.trim(), topics: codes($("edit-topics").value),
      language: LX.languageOf("edit-language") };
    try {
      const { data } = await LX.api("PATCH", `/media/${editing.id}`, change, { "If-Match": editing.etag });
      closeEdit();
      LX.say(LX.t("media.saved", { title: data.title }), "ok");
      await load();
    } catch (err) {
      LX.say(LX.problemText(err), "error");
      if (err instanceof LX.ApiError && err.status === 412) await openEdit(editing.id); // refill it
    }
  }

  /** The refusal of a delete, in the user's language: which programmes (and schedules). */
  function inUseText(m, problem) {
    const names = (problem.programmes || []).map((p) => {
      const name = LX.t("media.in_use_programme", { title: p.title });
      return p.schedules.length
        ? `${name} (${LX.t("media.in_use_schedules", { ids: p.schedules.join(", ") })})` : name;
    });
    return LX.t("media.in_use", { title: m.title, programmes: names.join(", ") });
  }

  async function remove(m) {
    if (!window.confirm(LX.t("media.delete_confirm", { title: m.title }))) return;
    try {
      await LX.api("DELETE", `/media/${m.id}`);
      LX.say(LX.t("media.deleted", { title: m.title }), "ok");
      if (editing && editing.id === m.id) closeEdit();
      await load();
    } catch (err) {
      // The programmes (and their schedules) a "media_in_use" refusal lists, by name.
      const inUse = err instanceof LX.ApiError && err.body.code === "media_in_use" && err.body.programmes;
      LX.say(inUse ? inUseText(m, err.body) : LX.problemText(err), "error");
    }
  }

  function listenCell(m) {
    return LX.el("audio", { controls: true, preload: "none", src: `${LX.apiBase}/console/media/${m.id}/audio`,
      "aria-label": LX.t("media.listen_to", { title: m.title }) });
  }

  async function load() {
    const q = $("media-q").value.trim();
    const page = await LX.get("/media?limit=200" + (q ? "&q=" + encodeURIComponent(q) : ""));
    LX.clear(body);
    for (const m of page.items) {
      body.append(LX.el("tr", { "data-media": m.id },
        LX.el("td", { "data-label": LX.t("media.title") }, m.title),
        LX.el("td", { "data-label": LX.t("media.duration") }, LX.fmtDuration(m.duration_ms)),
        LX.el("td", { "data-label": LX.t("media.size") }, LX.fmtBytes(m.size_bytes)),
        LX.el("td", { "data-label": LX.t("media.loudness") },
          m.loudness_out_lufs === null ? "" : `${m.loudness_out_lufs.toFixed(1)} LUFS`),
        LX.el("td", { "data-label": LX.t("media.added") }, LX.fmt(m.created_at)),
        LX.el("td", { "data-label": LX.t("media.topics") }, (m.topics || []).join(", ")),
        LX.el("td", { "data-label": LX.t("media.listen") }, listenCell(m)),
        canWrite ? actionsCell(m) : null));
    }
    if (!page.items.length) body.append(LX.el("tr", {}, LX.el("td", { colspan: canWrite ? 8 : 7, class: "muted" }, LX.t("media.empty"))));
    $("media-more").textContent = page.total > page.items.length
      ? LX.t("common.shown_of", { n: page.items.length, total: page.total }) : "";
  }

  $("media-search").addEventListener("submit", (e) => { e.preventDefault(); load().catch((err) => LX.say(LX.problemText(err), "error")); });

  const form = $("upload-form");
  if (form) {
    $("upload-language-field").replaceWith(LX.languageField("upload-language", "vi"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const file = $("upload-file").files[0];
      if (!file) { LX.say(LX.t("media.pick_file"), "error"); return; }
      const maxBytes = Number(form.dataset.maxMb) * 1024 * 1024;
      if (file.size > maxBytes) { LX.say(LX.t("media.too_big", { mb: form.dataset.maxMb }), "error"); return; }
      const data = new FormData();
      data.append("title", $("upload-title").value.trim());
      data.append("topics", codes($("upload-topics").value).join(","));
      data.append("language", LX.languageOf("upload-language") || "vi");
      data.append("file", file);
      const xhr = new XMLHttpRequest();
      const bar = $("upload-progress");
      const text = $("upload-progress-text");
      $("upload-progress-wrap").hidden = false;
      $("upload-button").disabled = true;
      bar.value = 0;
      xhr.upload.addEventListener("progress", (e) => {
        if (!e.lengthComputable) return;
        const pct = Math.round((e.loaded / e.total) * 100);
        bar.value = pct;
        text.textContent = pct + "%";
      });
      xhr.upload.addEventListener("load", () => {
        bar.value = 100;
        text.textContent = LX.t("media.processing");
      });
      xhr.addEventListener("loadend", () => {
        $("upload-button").disabled = false;
        let reply = {};
        try { reply = JSON.parse(xhr.responseText || "{}"); } catch (e) { reply = {}; }
        if (xhr.status === 201) {
          text.textContent = "100%";
          LX.say(reply.created ? LX.t("media.uploaded", { title: reply.title })
            : LX.t("media.duplicate", { title: reply.title }), "ok");
          form.reset();
          load();
        } else {
          $("upload-progress-wrap").hidden = true;
          const err = new LX.ApiError(xhr.status || 0, reply);
          LX.say(xhr.status ? LX.problemText(err) : LX.t("error.network"), "error");
        }
      });
      xhr.open("POST", LX.apiBase + "/media");
      xhr.setRequestHeader("X-CSRF-Token", LX.csrf);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.send(data);
      LX.say(LX.t("media.uploading", { name: file.name }), "info");
    });
  }
  load().catch((err) => LX.say(LX.problemText(err), "error"));
});
