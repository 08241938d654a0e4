/* Media library: upload with a progress bar (XHR), list, search, listen. */
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const LX = window.LX;
  const $ = (id) => document.getElementById(id);
  const body = document.querySelector("#media-table tbody");

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
        LX.el("td", { "data-label": LX.t("media.listen") }, listenCell(m))));
    }
    if (!page.items.length) body.append(LX.el("tr", {}, LX.el("td", { colspan: 6, class: "muted" }, LX.t("media.empty"))));
    $("media-more").textContent = page.total > page.items.length
      ? LX.t("common.shown_of", { n: page.items.length, total: page.total }) : "";
  }

  $("media-search").addEventListener("submit", (e) => { e.preventDefault(); load().catch((err) => LX.say(LX.problemText(err), "error")); });

  const form = $("upload-form");
  if (form) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const file = $("upload-file").files[0];
      if (!file) { LX.say(LX.t("media.pick_file"), "error"); return; }
      const maxBytes = Number(form.dataset.maxMb) * 1024 * 1024;
      if (file.size > maxBytes) { LX.say(LX.t("media.too_big", { mb: form.dataset.maxMb }), "error"); return; }
      const data = new FormData();
      data.append("title", $("upload-title").value.trim());
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
