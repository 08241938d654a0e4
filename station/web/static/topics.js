/* Topic catalogue [danh mục chủ đề] (Phụ lục 01): list (retired ones on request), add, rename,
   retire after a confirmation. Editing needs the "approve" permission (admin, approver). */
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const LX = window.LX;
  const $ = (id) => document.getElementById(id);
  const canEdit = LX.can("approve");
  const enc = encodeURIComponent;
  const report = (err) => LX.say(LX.problemText(err), "error");
  let renaming = null; // the topic whose name is being edited
  let retiring = null; // the topic waiting for the retire confirmation

  const nameOf = (t) => (LX.lang === "en" && t.title_en ? t.title_en : t.title_vi);
  const otherName = (t) => (LX.lang === "en" ? t.title_vi : t.title_en);
  const day = (iso) => LX.fmtDate(iso);

  function span(t) {
    if (!t.valid_from && !t.valid_to) return LX.t("topics.always");
    return `${t.valid_from ? day(t.valid_from) : "…"} – ${t.valid_to ? day(t.valid_to) : "…"}`;
  }

  function actions(t) {
    if (!canEdit || !t.active) return "";
    return LX.el("div", { class: "actions" },
      LX.el("button", { type: "button", class: "small-button", "data-rename": t.code,
        "aria-label": LX.t("topics.rename_of", { code: t.code }), onclick: () => startRename(t) }, LX.t("topics.rename")),
      LX.el("button", { type: "button", class: "small-button", "data-retire": t.code,
        "aria-label": LX.t("topics.retire_of", { code: t.code }), onclick: () => askRetire(t) }, LX.t("topics.retire")));
  }

  /** The rename / retire panel just under the topic's row (a phone has a long list). */
  const panels = [$("topic-edit"), $("topic-retire")];
  const home = panels[0].parentNode;
  function under(panel, code) {
    const row = document.querySelector(`#topic-table tr[data-topic="${CSS.escape(code)}"]`);
    if (!row) return;
    const holder = LX.el("tr", { class: "panel-row" }, LX.el("td", { colspan: 6 }, panel));
    row.after(holder);
  }
  function panelsHome() {
    for (const panel of panels) {
      const holder = panel.closest("tr.panel-row");
      home.insertBefore(panel, home.querySelector(".table-wrap"));
      if (holder) holder.remove();
    }
  }

  async function load() {
    panelsHome();
    const retired = $("topics-retired").checked;
    const list = await LX.get(`/topics${retired ? "?include_retired=true" : ""}`);
    const body = LX.clear(document.querySelector("#topic-table tbody"));
    const label = (key) => ({ "data-label": LX.t(key) });
    for (const t of list.items) {
      const other = otherName(t);
      body.append(LX.el("tr", { "data-topic": t.code, class: t.active ? "" : "retired" },
        LX.el("td", label("topics.code"), LX.el("strong", {}, t.code)),
        LX.el("td", label("topics.name"), nameOf(t),
          other && other !== nameOf(t) ? LX.el("div", { class: "muted small" }, other) : null),
        LX.el("td", label("topics.kind"), LX.t(t.kind === "period" ? "topics.kind_period" : "topics.kind_thematic")),
        LX.el("td", label("topics.valid"), span(t)),
        LX.el("td", label("topics.state"), LX.el("span", { class: t.active ? "badge ok" : "badge" },
          LX.t(t.active ? "topics.active" : "topics.retired"))),
        LX.el("td", label("topics.actions"), actions(t))));
    }
    if (!list.items.length) {
      body.append(LX.el("tr", {}, LX.el("td", { colspan: 6, class: "muted" }, LX.t("topics.none"))));
    }
  }

  function startRename(t) {
    closeRetire();
    renaming = t;
    $("rename-title").textContent = LX.t("topics.rename_of", { code: t.code });
    $("rename-vi").value = t.title_vi;
    $("rename-en").value = t.title_en;
    $("topic-edit").hidden = false;
    under($("topic-edit"), t.code);
    $("rename-vi").focus();
  }
  const closeRename = () => { renaming = null; $("topic-edit").hidden = true; panelsHome(); };

  function askRetire(t) {
    closeRename();
    retiring = t;
    $("retire-text").textContent = LX.t("topics.retire_confirm", { code: t.code, name: nameOf(t) });
    $("retire-to").value = "";
    $("topic-retire").hidden = false;
    under($("topic-retire"), t.code);
    $("retire-yes").focus();
  }
  const closeRetire = () => { retiring = null; $("topic-retire").hidden = true; panelsHome(); };

  $("topics-retired").addEventListener("change", () => load().catch(report));
  $("rename-cancel").addEventListener("click", closeRename);
  $("retire-no").addEventListener("click", closeRetire);

  $("rename-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!renaming) return;
    const t = renaming;
    try {
      await LX.api("PATCH", `/topics/${enc(t.code)}`,
        { title_vi: $("rename-vi").value.trim(), title_en: $("rename-en").value.trim() });
      closeRename();
      LX.say(LX.t("topics.renamed", { code: t.code }), "ok");
      await load();
    } catch (err) { report(err); }
  });

  $("retire-yes").addEventListener("click", async () => {
    if (!retiring) return;
    const t = retiring;
    const body = $("retire-to").value ? { valid_to: $("retire-to").value } : {};
    $("retire-yes").disabled = true;
    try {
      await LX.api("POST", `/topics/${enc(t.code)}/retire`, body);
      closeRetire();
      LX.say(LX.t("topics.retired_ok", { code: t.code }), "ok");
      await load();
    } catch (err) { report(err); } finally { $("retire-yes").disabled = false; }
  });

  const form = $("topic-form");
  if (form) {
    const spanChoice = () => form.querySelector('input[name="topic-span"]:checked').value;
    const showSpan = () => {
      $("topic-year-box").hidden = spanChoice() !== "year";
      $("topic-dates-box").hidden = spanChoice() !== "dates";
    };
    $("topic-year").value = String(LX.zoned(new Date()).year);
    form.addEventListener("change", showSpan);
    showSpan();
    $("topic-code").addEventListener("input", (e) => {
      // "ii.10" typed on a phone keyboard: the roman part in capitals
      const v = e.target.value;
      const fixed = v.replace(/^[a-z]+(?=\.|$)/, (m) => m.toUpperCase());
      if (fixed !== v) e.target.value = fixed;
    });
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      $("topic-error").textContent = "";
      const body = {
        code: $("topic-code").value.trim(),
        title_vi: $("topic-vi").value.trim(),
        title_en: $("topic-en").value.trim(),
        kind: $("topic-kind").value,
      };
      if (spanChoice() === "year" && $("topic-year").value) body.year = Number($("topic-year").value);
      if (spanChoice() === "dates") {
        if ($("topic-from").value) body.valid_from = $("topic-from").value;
        if ($("topic-to").value) body.valid_to = $("topic-to").value;
      }
      $("topic-save").disabled = true;
      try {
        await LX.api("POST", "/topics", body);
        LX.say(LX.t("topics.added", { code: body.code }), "ok");
        form.reset();
        $("topic-year").value = String(LX.zoned(new Date()).year);
        showSpan();
        await load();
      } catch (err) {
        // A known code says it all (which code is taken); an older server: the 409 itself.
        const taken = err instanceof LX.ApiError && err.status === 409 && !LX.problemByCode(err.body);
        $("topic-error").textContent = taken
          ? `${LX.t("topics.code_taken", { code: body.code })} (${LX.problemText(err)})` : LX.problemText(err);
        LX.say($("topic-error").textContent, "error");
      } finally { $("topic-save").disabled = false; }
    });
  }

  load().catch(report);
});
