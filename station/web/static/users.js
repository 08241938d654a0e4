/* Users (admins): list, create (generated one-time password shown once), disable, reset. */
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const LX = window.LX;
  const $ = (id) => document.getElementById(id);

  function showSecret(username, password) {
    const box = $("user-secret");
    box.hidden = false;
    LX.clear(box).append(LX.t("users.one_time", { user: username }), " ", LX.el("code", { id: "user-password" }, password));
  }

  async function patch(u, change) {
    try {
      const current = await LX.api("GET", `/users/${u.id}`);
      await LX.api("PATCH", `/users/${u.id}`, change, { "If-Match": current.etag });
      await load();
    } catch (err) { LX.say(LX.problemText(err), "error"); }
  }

  async function reset(u) {
    if (!window.confirm(LX.t("users.reset_confirm", { user: u.username }))) return;
    try {
      const { data } = await LX.api("POST", `/users/${u.id}/password`, {});
      showSecret(u.username, data.password);
      await load();
    } catch (err) { LX.say(LX.problemText(err), "error"); }
  }

  async function load() {
    const page = await LX.get("/users?limit=500");
    const body = LX.clear(document.querySelector("#user-table tbody"));
    for (const u of page.items) {
      const role = LX.el("select", { "aria-label": LX.t("users.role_of", { user: u.username }),
        onchange: (e) => patch(u, { role: e.target.value }) },
      ...["admin", "broadcaster", "approver", "technician", "viewer"].map((r) =>
        LX.el("option", { value: r, selected: r === u.role }, LX.t("role." + r))));
      body.append(LX.el("tr", { "data-user": u.username },
        LX.el("td", { "data-label": LX.t("auth.username") }, u.username),
        LX.el("td", { "data-label": LX.t("users.display_name") }, u.display_name),
        LX.el("td", { "data-label": LX.t("users.role") }, role),
        LX.el("td", { "data-label": LX.t("users.state") }, LX.t(u.disabled ? "users.disabled" : "users.active"),
          u.must_change_password ? ` · ${LX.t("users.must_change")}` : ""),
        LX.el("td", { "data-label": LX.t("users.last_login") }, LX.fmt(u.last_login_at)),
        LX.el("td", { "data-label": LX.t("users.actions") },
          LX.el("button", { type: "button", class: "small-button", onclick: () => patch(u, { disabled: !u.disabled }) },
            LX.t(u.disabled ? "users.enable" : "users.disable")), " ",
          LX.el("button", { type: "button", class: "small-button", onclick: () => reset(u) }, LX.t("users.reset")))));
    }
  }

  $("user-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { username: $("user-name").value.trim(), role: $("user-role").value,
      display_name: $("user-display").value.trim() };
    try {
      const { data } = await LX.api("POST", "/users", body);
      if (data.password) showSecret(data.username, data.password);
      LX.say(LX.t("users.created", { user: data.username }), "ok");
      $("user-form").reset();
      await load();
    } catch (err) { LX.say(LX.problemText(err), "error"); }
  });
  load().catch((err) => LX.say(LX.problemText(err), "error"));
});
