// The live-match console (admin): polls the live matches every second and posts the operator's actions (end with or
// without the result, kick a seat, send a notice). The server does everything; this only draws and asks.

const root = document.getElementById("live-console");
const body = document.querySelector("#live-table tbody");
const status = document.getElementById("live-status");
const result = document.getElementById("live-result");
const canAct = root.dataset.canAct === "1";
const csrf = root.querySelector("input[name=csrfmiddlewaretoken]").value;
const POLL_MS = 1000;
let busy = false; // an action is being posted: the next redraw waits, so a half-typed notice is not wiped

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function say(where, text, isError = false) {
  where.textContent = text;
  where.className = isError ? "error" : "";
}

async function act(matchId, action, fields, question) {
  if (question && !window.confirm(question)) return;
  busy = true;
  try {
    const url = root.dataset.actionUrl.replace("/0/", `/${matchId}/`).replace("ACTION", action);
    const response = await fetch(url, {
      method: "POST",
      headers: { "X-CSRFToken": csrf },
      body: new URLSearchParams(fields),
      credentials: "same-origin",
    });
    const answer = await response.json().catch(() => ({ message: `HTTP ${response.status}` }));
    say(result, response.ok ? `Match #${matchId}: ${action} sent.` : `Match #${matchId}: ${answer.message}`, !response.ok);
  } finally {
    busy = false;
  }
}

function playerCell(match) {
  const cell = el("td");
  for (const p of match.players) {
    const line = el("div", { className: "player" }, `${p.seat + 1}. ${p.username} `,
      el("span", { className: `state-${p.state}` }, p.state));
    if (p.process && p.process !== match.owner) line.append(` (via ${p.process})`);
    if (canAct && p.state !== "left") {
      line.append(" ", el("button", {
        type: "button", className: "kick", textContent: "Kick",
        onclick: () => act(match.match_id, "kick", { seat: p.seat }, `Kick ${p.username} from match #${match.match_id}?`),
      }));
    }
    cell.append(line);
  }
  return cell;
}

function actionCell(match) {
  const text = el("input", { type: "text", maxLength: 500, placeholder: "Message to the players", name: "text" });
  const notice = el("form", {
    className: "notice",
    onsubmit: (event) => {
      event.preventDefault();
      if (text.value.trim()) act(match.match_id, "notice", { text: text.value }).then(() => { text.value = ""; });
    },
  }, text, el("button", { type: "submit", textContent: "Send" }));
  const end = el("button", {
    type: "button", className: "end-result", textContent: "End, record result",
    onclick: () => act(match.match_id, "end", { result: "1" }, `End match #${match.match_id} and record its result?`),
  });
  const cancel = el("button", {
    type: "button", className: "end-cancel", textContent: "End, no result",
    onclick: () => act(match.match_id, "end", { result: "0" }, `Cancel match #${match.match_id} without a result?`),
  });
  return el("td", {}, end, " ", cancel, el("br"), notice);
}

function draw(matches) {
  // A row whose notice is being typed stays as it is (while its match is live): the others are drawn again.
  const typing = document.activeElement && document.activeElement.matches("input[name=text]")
    ? document.activeElement.closest("tr[data-match]") : null;
  const keep = typing && matches.some((m) => String(m.match_id) === typing.dataset.match) ? typing.dataset.match : null;
  for (const row of [...body.children]) if (row.dataset.match !== keep) row.remove();
  for (const match of matches) {
    if (String(match.match_id) === keep) continue;
    const tickMs = match.tick_ms == null ? "–" : `${match.tick_ms.toFixed(2)} ms, max ${match.max_tick_ms}`;
    const row = el("tr", {},
      el("td", {}, el("a", { href: `../${match.match_id}/change/` }, `#${match.match_id}`)),
      el("td", {}, match.game),
      el("td", { className: "phase" }, match.phase || match.status),
      el("td", { className: "tick" }, match.tick == null ? "–" : String(match.tick)),
      el("td", {}, tickMs),
      el("td", { className: "owner" }, match.owner || "not running yet"),
      el("td", { className: "spectators" }, String(match.spectators)),
      playerCell(match),
    );
    if (canAct) row.append(actionCell(match));
    row.dataset.match = String(match.match_id);
    body.append(row);
  }
}

async function poll() {
  if (!busy) {
    try {
      const response = await fetch(root.dataset.dataUrl, { credentials: "same-origin" });
      const answer = await response.json();
      if (!response.ok) throw new Error(answer.message || `HTTP ${response.status}`);
      draw(answer.matches);
      say(status, `${answer.matches.length} live match(es), updated ${new Date().toLocaleTimeString()}`);
    } catch (error) {
      say(status, `Could not load live matches: ${error.message}`, true);
    }
  }
  setTimeout(poll, POLL_MS);
}

poll();
