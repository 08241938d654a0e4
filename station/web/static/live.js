/* Live from the browser microphone: push-to-talk over the /live/<mount>/mic WebSocket,
   with a level meter; the mounts of the station and their alerts, polled. */
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const LX = window.LX;
  const $ = (id) => document.getElementById(id);
  const button = $("ptt");
  let stream = null;
  let talk = null; // {ws, recorder}
  let meterRunning = false;

  const state = (key, kind) => { $("live-state").textContent = LX.t(key); $("live-state").className = "small " + (kind || ""); };
  const mountName = () => $("live-mount").value.trim();

  async function microphone() {
    if (stream) return stream;
    stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
    const ctx = new AudioContext();
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 1024;
    ctx.createMediaStreamSource(stream).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    meterRunning = true;
    const draw = () => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const s of samples) sum += s * s;
      const rms = Math.sqrt(sum / samples.length);
      $("live-level").value = Math.min(1, rms * 4);
      if (meterRunning) requestAnimationFrame(draw);
    };
    draw();
    return stream;
  }

  async function ensureMount(name) {
    try {
      await LX.api("POST", "/live", { mount: name, source: "browser" });
    } catch (err) {
      // already live: we feed it (the station says if it waits for another kind of source)
      if (!(err instanceof LX.ApiError && err.body.code === "live_already_live")) throw err;
    }
  }

  // The station answers the "loaxa.mic" subprotocol with a first text message: {ready: true},
  // or the refusal's problem body (code and parameters) before it closes with 4000 + status.
  function openMic(name) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/live/${encodeURIComponent(name)}/mic`, "loaxa.mic");
    ws.binaryType = "arraybuffer";
    return new Promise((resolve, reject) => {
      let refusal = null;
      ws.onmessage = (e) => {
        if (typeof e.data !== "string") return;
        let body = null;
        try { body = JSON.parse(e.data); } catch (_) { return; }
        if (body && body.ready) { ws.onmessage = null; resolve(ws); }
        else if (body && body.status) refusal = new LX.ApiError(body.status, body);
      };
      ws.onerror = () => reject(refusal || new Error("websocket"));
      ws.onclose = (e) => reject(refusal || (e.code >= 4000 && e.code < 5000
        ? new LX.ApiError(e.code - 4000, { code: e.reason, mount: name }) : new Error("websocket")));
    });
  }

  function mimeType() {
    for (const type of ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm"]) {
      if (window.MediaRecorder && MediaRecorder.isTypeSupported(type)) return type;
    }
    return "";
  }

  async function startTalking() {
    if (talk) return;
    const name = mountName();
    if (!/^[a-z0-9][a-z0-9_-]{0,31}$/.test(name)) { state("live.bad_mount", "error"); return; }
    talk = { pending: true };
    button.setAttribute("aria-pressed", "true");
    button.classList.add("talking");
    let mic = null;
    try {
      mic = await microphone();
      await ensureMount(name);
      const ws = await openMic(name);
      const recorder = new MediaRecorder(mic, { mimeType: mimeType() });
      recorder.ondataavailable = (e) => { if (e.data.size && ws.readyState === WebSocket.OPEN) ws.send(e.data); };
      recorder.onstop = () => { if (ws.readyState === WebSocket.OPEN) { ws.send("stop"); ws.close(); } };
      ws.onclose = () => { if (talk && talk.ws === ws) stopTalking(); };
      recorder.start(250);
      const stopNow = talk.stopRequested;
      talk = { ws, recorder };
      state("live.on_air", "ok");
      if (stopNow) stopTalking();
      refresh();
    } catch (err) {
      talk = null;
      button.setAttribute("aria-pressed", "false");
      button.classList.remove("talking");
      // the microphone itself, else the station's refusal in the reader's language
      state(mic ? "" : "live.no_mic", "error");
      if (mic) $("live-state").textContent = LX.problemText(err);
    }
  }

  function stopTalking() {
    if (!talk) return;
    if (talk.pending) { talk.stopRequested = true; return; }
    const { recorder } = talk;
    talk = null;
    if (recorder.state !== "inactive") recorder.stop();
    button.setAttribute("aria-pressed", "false");
    button.classList.remove("talking");
    state("live.paused");
    setTimeout(refresh, 300);
  }

  // Hold to talk (pointer or Space/Enter); with the latch, a press toggles instead.
  const latched = () => $("ptt-latch").checked;
  button.addEventListener("pointerdown", (e) => {
    e.preventDefault();
    if (latched() && talk) stopTalking(); else startTalking();
  });
  for (const ev of ["pointerup", "pointerleave", "pointercancel"]) {
    button.addEventListener(ev, () => { if (!latched()) stopTalking(); });
  }
  button.addEventListener("keydown", (e) => {
    if ((e.key === " " || e.key === "Enter") && !e.repeat) {
      e.preventDefault();
      if (latched() && talk) stopTalking(); else startTalking();
    }
  });
  button.addEventListener("keyup", (e) => { if ((e.key === " " || e.key === "Enter") && !latched()) stopTalking(); });

  async function endMount(name) {
    if (talk) stopTalking();
    try {
      await LX.api("DELETE", `/live/${encodeURIComponent(name)}`);
      LX.say(LX.t("live.ended", { mount: name }), "ok");
    } catch (err) { LX.say(LX.problemText(err), "error"); }
    refresh();
  }
  $("live-end").addEventListener("click", () => endMount(mountName()));

  async function refresh() {
    const [mounts, alerts] = await Promise.all([LX.get("/live"), LX.get("/live/alerts")]);
    const body = LX.clear(document.querySelector("#mount-table tbody"));
    for (const m of mounts.items) {
      body.append(LX.el("tr", { "data-mount": m.mount },
        LX.el("td", { "data-label": LX.t("live.mount") }, m.mount),
        LX.el("td", { "data-label": LX.t("live.source") }, m.source),
        LX.el("td", { "data-label": LX.t("live.state") },
          LX.el("span", { class: "badge live-" + m.state }, LX.t("live.state_" + m.state)),
          " ", m.source_connected ? LX.t("live.source_connected") : ""),
        LX.el("td", { "data-label": LX.t("live.listeners") }, m.listeners),
        LX.el("td", { "data-label": LX.t("users.actions") }, LX.can("live")
          ? LX.el("button", { type: "button", class: "small-button", onclick: () => endMount(m.mount) }, LX.t("live.stop"))
          : "")));
    }
    if (!mounts.items.length) body.append(LX.el("tr", {}, LX.el("td", { colspan: 5, class: "muted" }, LX.t("live.none"))));
    const list = LX.clear($("live-alerts"));
    for (const a of alerts.items.slice(-10).reverse()) {
      list.append(LX.el("li", {}, LX.el("strong", {}, a.mount), ` ${a.kind}: ${a.detail} `,
        LX.el("span", { class: "muted small" }, LX.fmt(a.raised_at) + (a.cleared_at ? " ✓" : ""))));
    }
    if (!alerts.items.length) list.append(LX.el("li", { class: "muted" }, LX.t("dash.no_alerts")));
  }
  window.addEventListener("pagehide", () => { if (talk) stopTalking(); meterRunning = false; });
  LX.poll(refresh, 2000);
});
