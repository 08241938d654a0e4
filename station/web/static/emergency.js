/* Emergency broadcast [phát khẩn cấp]: choose where and what, confirm (with a second user when
   auth.emergency_two_person is on), then watch it on air and stop it. */
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const LX = window.LX;
  const $ = (id) => document.getElementById(id);
  const ids = (id) => $(id).value.split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean);
  let pending = null;

  function showSource() {
    const source = $("em-source").value;
    $("em-media-box").hidden = source !== "media";
    $("em-relay-box").hidden = source !== "relay";
  }
  function showPlaces() {
    for (const id of ["em-zones", "em-villages", "em-clusters"]) $(id).disabled = $("em-all").checked;
  }

  function request() {
    const targets = {};
    if ($("em-all").checked) targets.all = true;
    else {
      for (const [key, id] of [["zones", "em-zones"], ["villages", "em-villages"], ["clusters", "em-clusters"]]) {
        const found = ids(id);
        if (found.length) targets[key] = found;
      }
    }
    const body = { targets, repeat: Number($("em-repeat").value || 1) };
    const source = $("em-source").value;
    if (source === "media") body.media_id = Number($("em-media").value) || null;
    else if (source === "relay") body.relay_url = $("em-relay").value.trim();
    else body.live = true;
    if ($("em-volume").value !== "") body.volume = Number($("em-volume").value);
    return body;
  }

  function where(targets) {
    if (targets.all) return LX.t("emergency.all");
    return ["zones", "villages", "clusters"].filter((k) => targets[k])
      .map((k) => `${LX.t("emergency." + k)}: ${targets[k].join(", ")}`).join("; ");
  }

  function line(e, withStop) {
    const clusters = Object.entries(e.clusters).map(([c, s]) => `${c} (${LX.t("play." + s)})`).join(", ");
    const who = e.stopped_by ? ` · ${LX.t("emergency.stopped_by", { user: e.stopped_by })}` : "";
    return LX.el("li", { "data-emergency": e.id, class: e.active ? "emergency-active" : "" },
      LX.el("strong", {}, e.title), ` · ${LX.fmt(e.start_at)} · `,
      LX.t("emergency.by", { user: e.triggered_by || "" }), who,
      LX.el("br"), LX.el("span", { class: "small" }, clusters),
      withStop ? LX.el("button", { type: "button", class: "small-button em-stop", onclick: () => stop(e) }, LX.t("emergency.stop")) : null);
  }

  async function load() {
    const data = await LX.get("/emergency");
    const active = LX.clear($("em-active"));
    if (!data.active.length) active.append(LX.el("li", { class: "muted" }, LX.t("emergency.none")));
    for (const e of data.active) active.append(line(e, LX.can("emergency")));
    $("em-active-card").classList.toggle("alerting", data.active.length > 0);
    const recent = LX.clear($("em-recent"));
    if (!data.recent.length) recent.append(LX.el("li", { class: "muted" }, LX.t("emergency.none_recent")));
    for (const e of data.recent) recent.append(line(e, false));
  }

  async function stop(e) {
    if (!window.confirm(LX.t("emergency.stop_confirm", { title: e.title }))) return;
    try {
      await LX.api("DELETE", `/emergency/${encodeURIComponent(e.id)}`);
      LX.say(LX.t("emergency.stopped"), "ok");
      await load();
    } catch (err) { LX.say(LX.problemText(err), "error"); }
  }

  async function media() {
    const page = await LX.get("/media?limit=500");
    const select = LX.clear($("em-media"));
    for (const m of page.items) select.append(LX.el("option", { value: m.id }, `${m.title} (${LX.fmtDuration(m.duration_ms)})`));
  }

  $("em-source").addEventListener("change", showSource);
  $("em-all").addEventListener("change", showPlaces);
  $("em-form").addEventListener("submit", (event) => {
    event.preventDefault();
    pending = request();
    $("em-confirm-text").textContent = LX.t("emergency.confirm_text", { where: where(pending.targets) });
    $("em-confirm").hidden = false;
    $("em-start").disabled = true;
  });
  const closeConfirm = () => { pending = null; $("em-confirm").hidden = true; $("em-start").disabled = false; };
  $("em-confirm-no").addEventListener("click", closeConfirm);
  $("em-confirm-yes").addEventListener("click", async () => {
    if (!pending) return;
    const body = Object.assign({}, pending);
    if ($("em-second-user")) {
      body.second_username = $("em-second-user").value.trim();
      body.second_password = $("em-second-password").value;
    }
    try {
      await LX.api("POST", "/emergency", body);
      LX.say(LX.t("emergency.started"), "ok");
      if ($("em-second-password")) $("em-second-password").value = "";
      closeConfirm();
      await load();
    } catch (err) { LX.say(LX.problemText(err), "error"); }
  });
  showSource();
  showPlaces();
  media().catch((err) => LX.say(LX.problemText(err), "error"));
  LX.poll(load, 3000);
});
