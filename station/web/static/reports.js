/* Reports: pick kind, period (half-year, year, or dates) and format; the link downloads. */
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const LX = window.LX;
  const $ = (id) => document.getElementById(id);
  const year = LX.zoned(new Date()).year;
  const periods = [];
  for (const y of [year, year - 1]) {
    periods.push([`${y}H1`, LX.t("reports.h1", { year: y })], [`${y}Y`, LX.t("reports.year", { year: y })]);
  }
  periods.push(["range", LX.t("reports.range")]);
  LX.clear($("report-period")).append(...periods.map(([v, label]) => LX.el("option", { value: v }, label)));

  function update() {
    const kind = document.querySelector('input[name="kind"]:checked').value;
    const period = $("report-period").value;
    $("report-range").hidden = period !== "range";
    const params = new URLSearchParams({ format: $("report-format").value, lang: LX.lang });
    if (period === "range") {
      if ($("report-from").value) params.set("from", $("report-from").value);
      if ($("report-to").value) params.set("to", $("report-to").value);
    } else {
      params.set("period", period);
    }
    const link = $("report-link");
    link.href = `${LX.apiBase}/reports/${kind}?${params}`;
    if ($("report-format").value === "html") link.removeAttribute("download");
    else link.setAttribute("download", "");
  }
  $("report-form").addEventListener("change", update);
  $("report-form").addEventListener("submit", (e) => e.preventDefault());
  update();
});
