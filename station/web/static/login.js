/* Log in; change a (one-time) password, then log in again with the new one. */
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const LX = window.LX;
  const login = document.getElementById("login-form");
  if (login) {
    login.addEventListener("submit", async (event) => {
      event.preventDefault();
      const error = document.getElementById("login-error");
      error.textContent = "";
      const username = login.username.value.trim();
      const password = login.password.value;
      if (!username || !password) { error.textContent = LX.t("auth.fill_both"); return; }
      try {
        const { data } = await LX.api("POST", "/auth/login", { username, password });
        sessionStorage.setItem("lx-login", username);
        const next = data.must_change_password ? "/console/password" : login.dataset.next;
        window.location.assign(next || "/console/");
      } catch (err) {
        error.textContent = err.status === 401 ? LX.t("auth.wrong") : LX.problemText(err);
      }
    });
  }
  const change = document.getElementById("password-form");
  if (change) {
    change.addEventListener("submit", async (event) => {
      event.preventDefault();
      const error = document.getElementById("password-error");
      error.textContent = "";
      const current = document.getElementById("current_password").value;
      const next = document.getElementById("new_password").value;
      if (next !== document.getElementById("new_password2").value) {
        error.textContent = LX.t("auth.mismatch");
        return;
      }
      try {
        await LX.api("POST", "/auth/password", { current_password: current, new_password: next });
      } catch (err) {
        error.textContent = LX.problemText(err);
        return;
      }
      // The change ended every session: log in again with the new password.
      LX.csrf = "";
      try {
        await LX.api("POST", "/auth/login", { username: LX.user, password: next });
        window.location.assign("/console/");
      } catch (err) {
        window.location.assign("/console/login");
      }
    });
  }
});
