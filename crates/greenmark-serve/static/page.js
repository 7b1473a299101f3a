// The detector page: posts the text to /v1/detect and shows the verdict. Text the caller
// pasted is only ever written with textContent, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);

function fact(name, value) {
  const dt = document.createElement("dt");
  dt.textContent = name;
  const dd = document.createElement("dd");
  dd.textContent = value;
  $("facts").append(dt, dd);
}

function pretty(p) {
  if (p === 0) return "0";
  if (p >= 1e-3) return p.toPrecision(3);
  return p.toExponential(2);
}

async function detect(token, body) {
  const response = await fetch("/v1/detect", {
    method: "POST",
    headers: { "Content-Type": "application/json", "Authorization": "Bearer " + token },
    body: JSON.stringify(body),
  });
  let json = null;
  try { json = await response.json(); } catch (e) { json = null; }
  return { status: response.status, json };
}

function show(record, note) {
  const verdict = $("verdict");
  const threshold = record.threshold < 1e-3 ? record.threshold.toExponential() : String(record.threshold);
  const p = record.p_value;
  const shown = p === 0 ? "10^" + record.log10_p_value.toFixed(1) : pretty(p);
  if (record.watermarked) {
    verdict.textContent = "Watermarked at the " + threshold + " threshold (p = " + shown + ")";
    verdict.className = "verdict yes";
  } else {
    verdict.textContent = "No watermark at the " + threshold + " threshold (p = " + shown + ")";
    verdict.className = "verdict no";
  }
  $("facts").replaceChildren();
  fact("p-value", p === 0 ? "below 1e-308 (log10 p = " + record.log10_p_value.toFixed(1) + ")" : pretty(p));
  fact("log10 p", record.log10_p_value.toFixed(2));
  if (record.key_id) fact("key", record.key_id);
  if (record.n_scored !== undefined) fact("tokens scored", record.n_scored + " of " + record.n_tokens);
  if (record.n_green !== undefined) fact("green", record.n_green + " (" + (100 * record.green_fraction).toFixed(1) + "%)");
  if (record.start !== undefined && record.end !== undefined) {
    fact("strongest passage", "tokens " + record.start + " to " + record.end);
  }
  $("note").textContent = note || "";
  const tokens = $("tokens");
  tokens.replaceChildren();
  const coloured = Array.isArray(record.tokens);
  tokens.hidden = !coloured;
  $("legend").hidden = !coloured;
  if (coloured) {
    for (const t of record.tokens) {
      const span = document.createElement("span");
      span.className = "tok " + t.colour;
      span.textContent = t.text;
      if (t.unscored) span.title = "not scored: " + t.unscored.replace("_", " ");
      tokens.append(span);
    }
  }
  $("result").hidden = false;
}

function fail(message) {
  $("verdict").textContent = message;
  $("verdict").className = "verdict error";
  $("facts").replaceChildren();
  $("note").textContent = "";
  $("tokens").hidden = true;
  $("legend").hidden = true;
  $("result").hidden = false;
}

$("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = $("token").value.trim();
  const body = { text: $("text").value };
  if ($("span").checked) body.span = true;
  const wantColours = $("colours").checked;
  if (wantColours) body.tokens = true;
  $("check").disabled = true;
  try {
    let answer = await detect(token, body);
    let note = "";
    if (answer.status === 403 && wantColours) {
      delete body.tokens;
      answer = await detect(token, body);
      note = "Token colours are shown to trusted tokens only; this token sees the verdict.";
    }
    if (answer.status === 200 && answer.json) {
      show(answer.json, note);
    } else {
      const message = answer.json && answer.json.error ? answer.json.error.message : "HTTP " + answer.status;
      fail("Could not check: " + message);
    }
  } catch (e) {
    fail("Could not reach the service: " + e);
  } finally {
    $("check").disabled = false;
  }
});
