/* CSV import of villages or clusters: check first (a dry run: every row goes through the
   import's own checks, nothing is written), see each bad row with its line and reason, then
   import (good rows are kept, bad ones reported again). */
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const LX = window.LX;
  const $ = (id) => document.getElementById(id);
  let checked = null; // {kind, text} of the file that passed a check

  async function send(kind, text, dryRun) {
    const path = `/fleet/import?kind=${kind}${dryRun ? "&dry_run=true" : ""}`;
    const response = await fetch(LX.apiBase + path, {
      method: "POST", credentials: "same-origin", body: text,
      headers: LX.headers({ "Content-Type": "text/csv; charset=utf-8" }),
    });
    const raw = await response.text();
    let data = null;
    try { data = raw ? JSON.parse(raw) : null; } catch (e) { data = { detail: raw }; }
    if (response.status === 401) window.location.assign("/console/login?next=" + encodeURIComponent(location.pathname));
    if (!response.ok) throw new LX.ApiError(response.status, data);
    return data;
  }

  // Codes whose catalogue sentence is general: the row's own English reason follows it.
  const GENERAL = new Set(["cluster_invalid", "csv_invalid", "recurrence_invalid"]);

  /** A refused row's reason in the reader's language: its ``code`` with the ``params`` from
      the catalogue; a row without a known code keeps the import's English reason. */
  function rowError(row) {
    const said = LX.problemByCode({ ...(row.params || {}), code: row.code });
    if (!said) return row.error;
    return GENERAL.has(row.code) ? `${said} (${row.error})` : said;
  }

  function show(report) {
    $("import-result").hidden = false;
    $("import-result-title").textContent = LX.t(report.dry_run ? "import.checked" : "import.done");
    const ok = report.rows.length - report.errors;
    $("import-summary").textContent = LX.t(report.dry_run ? "import.summary_check" : "import.summary_done",
      { ok, errors: report.errors });
    $("import-summary").className = report.errors ? "notice" : "";
    const body = LX.clear(document.querySelector("#import-table tbody"));
    for (const row of report.rows) {
      const good = row.error === null;
      body.append(LX.el("tr", { class: good ? "row-ok" : "row-error", "data-line": row.line },
        LX.el("td", { "data-label": LX.t("import.line") }, String(row.line)),
        LX.el("td", { "data-label": LX.t("import.id") }, row.id || LX.t("import.no_id")),
        LX.el("td", { "data-label": LX.t("import.result") },
          good ? LX.el("span", { class: "badge ok" }, LX.t(report.dry_run ? "import.row_ready" : "import.row_imported"))
            : LX.el("span", { class: "badge state-faulty" }, LX.t("import.row_error")),
          good ? "" : " ",
          good ? "" : LX.el("span", { class: "row-reason", title: row.error }, rowError(row)))));
    }
    if (!report.rows.length) body.append(LX.el("tr", {}, LX.el("td", { colspan: 3, class: "muted" }, LX.t("import.empty"))));
  }

  const runButton = $("import-run");
  const forget = () => { checked = null; runButton.disabled = true; };
  $("import-file").addEventListener("change", forget);
  $("import-kind").addEventListener("change", forget);

  $("import-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    forget();
    const file = $("import-file").files[0];
    if (!file) { LX.say(LX.t("import.pick_file"), "error"); return; }
    const kind = $("import-kind").value;
    try {
      const text = await file.text();
      const report = await send(kind, text, true);
      show(report);
      if (report.rows.length - report.errors > 0) { checked = { kind, text }; runButton.disabled = false; }
      LX.say(LX.t(report.errors ? "import.fix_rows" : "import.all_good"), report.errors ? "error" : "ok");
    } catch (err) { LX.say(LX.problemText(err), "error"); }
  });

  runButton.addEventListener("click", async () => {
    if (!checked) return;
    runButton.disabled = true;
    try {
      const report = await send(checked.kind, checked.text, false);
      show(report);
      LX.say(LX.t("import.summary_done", { ok: report.imported.length, errors: report.errors }),
        report.errors ? "error" : "ok");
    } catch (err) { LX.say(LX.problemText(err), "error"); }
    checked = null;
  });
});
