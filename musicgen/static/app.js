// musicgen studio: fills the controls from /api/models, posts /api/generate, shows audio, piano roll and downloads.
"use strict";

const $ = (id) => document.getElementById(id);

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

// A number when the field holds one, null when it is empty, else the raw text (the server names what is wrong).
function numberOrText(id) {
  const text = $(id).value.trim();
  if (text === "") return null;
  const value = Number(text);
  return Number.isFinite(value) ? value : text;
}

function base64(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

async function loadModels() {
  const response = await fetch("/api/models");
  const info = await response.json();
  $("renderer").textContent = "audio: " + info.renderer;
  for (const m of info.models) {
    const option = new Option(m.error ? `${m.name} (unusable)` : m.name, m.name);
    option.disabled = Boolean(m.error);
    option.dataset.info = m.error ? m.error
      : `${m.cell.toUpperCase()} ${m.layers}×${m.units}, ${m.vocab_size} events` +
        (m.val_nll != null ? `, validation NLL ${m.val_nll.toFixed(3)} nats/event` : "");
    $("model").add(option);
  }
  info.programs.forEach((name, i) => $("program").add(new Option(`${i} ${name}`, String(i))));
  const describe = () => { $("model-info").textContent = $("model").selectedOptions[0]?.dataset.info || ""; };
  $("model").addEventListener("change", describe);
  describe();
  $("primer").dataset.maxBytes = info.limits.max_primer_bytes;
}

async function request() {
  const limit = document.querySelector("input[name=limit]:checked").value;
  const body = {
    model: $("model").value,
    temperature: numberOrText("temperature"),
    top_p: numberOrText("top-p"),
    seed: numberOrText("seed"),
    program: $("program").value === "" ? null : Number($("program").value),
    keep_primer: $("keep-primer").checked,
    key: $("key").value.trim() || null,
    instruments: $("instruments").value.trim() || null,
    density: $("density").value.trim() || null,
    voices: $("voices").value.trim() === "" ? null : numberOrText("voices"),
    style: $("style").value.trim() || null,
  };
  body[limit] = numberOrText("limit-value");
  if (limit === "seconds") body.length = null;
  const file = $("primer").files[0];
  if (file) {
    const cap = Number($("primer").dataset.maxBytes);
    if (file.size > cap) throw new Error(`primer: ${file.name} has ${file.size} bytes, at most ${cap}`);
    body.primer = { name: file.name, data: base64(await file.arrayBuffer()) };
  }
  return body;
}

async function generate(event) {
  event.preventDefault();
  showError("");
  $("generate").disabled = true;
  $("status").textContent = "generating…";
  const started = performance.now();
  try {
    const response = await fetch("/api/generate", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(await request()),
    });
    const data = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
    const took = (performance.now() - started) / 1000;
    $("summary").textContent = `seed ${data.seed} · ${data.events} events · ${data.notes} notes · ` +
      `${data.duration_seconds.toFixed(1)} s of music · made in ${took.toFixed(2)} s`;
    $("audio").src = data.files["sample.wav"];
    $("roll").src = data.files["sample.png"];
    $("download-midi").href = data.files["sample.mid"];
    $("download-json").href = data.files["sample.json"];
    $("result").hidden = false;
    $("status").textContent = "done";
  } catch (err) {
    showError(err.message);
    $("status").textContent = "";
  } finally {
    $("generate").disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("controls").addEventListener("submit", generate);
  loadModels().catch((err) => showError("cannot list the models: " + err.message));
});
