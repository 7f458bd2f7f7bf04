// The match page: draws the game at the display's frame rate, sends the controls once per server tick (paced by the
// server's clock, docs/client.md), predicts the own avatar, shows connection state and ping, and ends on the result
// screen with everyone's rating change.

import { ApiClient, InputPacer, MatchClient, TickClock, websocketSupported } from "../gsclient.js";
import { GAMES, Interpolator, Predictor, seatColour } from "../games.js";
import { $, clear, el, formatDelta, formatRating, showError, sleep } from "./ui.js";
import { gameName, rememberTicket } from "./queue.js";
// Renderers of games beyond the built-in ones, by slug (static/js/renderers.js; docs/games.md, "The renderer").
import { complete, generic, loadRenderers } from "../renderers.js";

const root = $("#match");
const matchId = Number(root.dataset.matchId);
const api = new ApiClient();
const canvas = $("#field");
const ctx = canvas.getContext("2d");
const overlay = $("#overlay");
const STATE_LABELS = {
  connecting: "Connecting…",
  open: "Connected",
  reconnecting: "Reconnecting…",
  ended: "Match over",
  closed: "Disconnected",
};
// Snapshots come every tick while playing (4 to 30 a second): a second without one is an outage that the badge shows
// at once, long before the client's watchdog (staleAfterMs) gives the socket up. Slower phases send less often
// (every 10th tick while waiting for players, once a second while the result is saved): twice their gap, then.
const STALLED_AFTER_MS = 1000;
const WAITING_SNAPSHOT_EVERY_TICKS = 10; // games/engine/runner.py
const SAVING_SNAPSHOT_EVERY_MS = 1000;

// Visible to tests and to anyone debugging in the console. With `record` set, each drawn frame is kept in `frames`
// (the last MAX_RECORDED_FRAMES): when, the own avatar as drawn, and the others and the ball as drawn.
const MAX_RECORDED_FRAMES = 3000;
const debug = { client: null, states: [], inputs: 0, record: false, frames: [], predictor: null, pacer: null, interpolator: null };
window.gsMatch = debug;

function showOverlay(text, detail = "") {
  clear(overlay);
  overlay.append(el("strong", {}, text));
  if (detail) overlay.append(el("p", {}, detail));
  overlay.hidden = false;
}

function hideOverlay() {
  overlay.hidden = true;
}

if (!websocketSupported()) {
  showOverlay("Your browser cannot play live games", "It has no WebSocket support. Please use a current browser.");
} else {
  loadRenderers(api).then(start); // renderer loader: every game's renderer is in GAMES before the socket opens
}

function start() {
  const client = new MatchClient({ matchId, api });
  debug.client = client;
  let game = null;
  let names = {};
  let predictor = null;
  let interpolator = null;
  let readControls = null;
  let clock = null;
  let pacer = null;
  let lastSnapshotAt = null;
  let left = false;

  client.on("welcome", (welcome) => {
    names = Object.fromEntries(welcome.players.map((p) => [p.seat, p.username]));
    if (!client.matchEnd) document.title = `${gameName(welcome.game)}: ${welcome.players.map((p) => p.username).join(" vs ")} · Arena`;
    $("#role").textContent = welcome.role === "player" ? `You play seat ${welcome.seat + 1}` : "Spectating";
    if (game === null) {
      // renderer loader: a game without a renderer gets the raw-state view and the socket stays open.
      game = GAMES[welcome.game] || (GAMES[welcome.game] = complete(generic, welcome.game));
      setUpCanvas(game);
      clock = new TickClock(welcome.tick_rate);
      interpolator = new Interpolator(game, clock);
      debug.interpolator = interpolator;
      if (welcome.role === "player") {
        predictor = new Predictor(game, welcome.seat, 1 / welcome.tick_rate);
        pacer = new InputPacer({
          clock,
          seat: welcome.seat,
          sample: sampleInput,
          send: (input) => client.sendInput(input),
          onSent: (seq, input, now, until) => {
            predictor.record(seq, input, now, until);
            debug.inputs += 1;
          },
        });
        Object.assign(debug, { predictor, pacer });
        // #touch-pad: on-screen buttons of games that have them, shown on touch screens only (games.js).
        readControls = game.controls(canvas, toWorld, () => predictor.current, () => pacer.changed(), $("#touch-pad"));
        $("#leave").hidden = false;
      }
      requestAnimationFrame(frame);
    } else if (predictor) {
      predictor.reset();
    }
  });

  client.onSnapshot((snapshot) => {
    const now = performance.now();
    lastSnapshotAt = now;
    if ($("#conn").dataset.state === "stalled") showBadge();
    // Ticks only advance once play runs; the countdown's snapshots would tell the clock nothing.
    if (snapshot.phase === "running" || snapshot.phase === "finished") clock.push(snapshot.tick, now);
    interpolator.push(snapshot);
    if (predictor) {
      const waiting = snapshot.waiting ? snapshot.waiting[client.seat] || 0 : 0;
      predictor.reconcile(snapshot.state, snapshot.acks[client.seat] || 0, now, Math.max(0, -waiting));
      if (snapshot.phase === "running" && !snapshot.removed[client.seat]) {
        pacer.start(client.rtt);
        pacer.observe(snapshot, now);
      } else if (snapshot.phase === "finished" || snapshot.phase === "paused" || snapshot.removed[client.seat]) {
        pacer.stop();
      }
    }
    showHud(snapshot);
    if (left && client.seat !== null && snapshot.removed[client.seat] && snapshot.phase !== "finished") {
      showLeft("The match goes on without you.");
    }
  });

  client.onEvent((event) => {
    const who = (seat) => names[seat] || `seat ${seat}`;
    if (event.type === "point") log(`${who(event.seat)} scores`);
    else if (event.type === "hit") log(`${who(event.by)} hit ${who(event.target)}`);
    else if (event.type === "player_removed") log(`${who(event.seat)} left the match`);
  });

  client.onEnd((end) => {
    // Over before this page saw any of it (a finished match's page): no empty field, the result and its replay.
    if (!client.snapshot) $(".stage").hidden = true;
    showResult(end, client.seat);
  });

  client.onState((state, info) => {
    debug.states.push(state);
    document.body.dataset.connState = state;
    if (state === "open") lastSnapshotAt = performance.now(); // it opens on a snapshot, just before the page hears of it
    showBadge();
    if (state === "reconnecting") showOverlay("Reconnecting…", "Your seat is kept while we get you back.");
    else if (state === "open") hideOverlay();
    else if (state === "closed" && info && info.serverReason === "banned") showOverlay("You have been banned", info.reason);
    else if (state === "closed") showOverlay("Disconnected", info ? info.reason : "");
    if (state === "closed") $("#leave").hidden = true; // for good: there is no seat left to give up from here
    else if (state === "ended") hideOverlay();
  });

  client.on("pong", () => showBadge());

  // The badge follows the snapshots, not only the socket: an open socket that carries nothing is not "Connected".
  function showBadge() {
    const badge = $("#conn");
    const silentMs = lastSnapshotAt === null ? 0 : performance.now() - lastSnapshotAt;
    const stalled = client.state === "open" && silentMs > stalledAfterMs();
    badge.textContent = stalled ? `No updates for ${Math.floor(silentMs / 1000)} s` : STATE_LABELS[client.state] || client.state;
    badge.className = `badge ${stalled ? "stalled" : client.state}`;
    badge.dataset.state = stalled ? "stalled" : client.state;
    // A ping measured before the outage says nothing about now.
    $("#ping").textContent = client.state === "open" && !stalled && client.rtt !== null ? `${Math.round(client.rtt)} ms` : "–";
  }
  setInterval(showBadge, 250);

  function stalledAfterMs() {
    const phase = client.snapshot ? client.snapshot.phase : null;
    const tickMs = client.welcome ? 1000 / client.welcome.tick_rate : 250;
    if (phase === "waiting") return Math.max(STALLED_AFTER_MS, 2 * WAITING_SNAPSHOT_EVERY_TICKS * tickMs);
    if (phase === "finished") return 2 * SAVING_SNAPSHOT_EVERY_MS + STALLED_AFTER_MS;
    return STALLED_AFTER_MS;
  }

  client.on("error", (error) => console.warn("server:", error.error, error.message));

  client.on("notice", (notice) => {
    log(`Operator: ${notice.text}`);
    $("#notice").textContent = notice.text;
    $("#notice").hidden = false;
  });

  // Leaving forfeits or gives the seat up for good: it takes a click on Leave, then on the confirmation. The space
  // bar (fire in the arena) must never press these buttons, whatever has the focus.
  for (const button of document.querySelectorAll("#leave, #leave-yes, #leave-no")) {
    for (const kind of ["keydown", "keyup"]) {
      button.addEventListener(kind, (event) => {
        if (event.key === " ") event.preventDefault();
      });
    }
  }
  $("#leave").addEventListener("click", () => {
    $("#leave-confirm").hidden = false;
    $("#leave-no").focus();
  });
  $("#leave-no").addEventListener("click", () => {
    $("#leave-confirm").hidden = true;
    canvas.focus();
  });
  $("#leave-yes").addEventListener("click", () => {
    $("#leave-confirm").hidden = true;
    left = true;
    client.leave();
    $("#leave").disabled = true;
    canvas.focus();
  });

  client.connect();

  function sampleInput() {
    const snapshot = client.snapshot;
    if (!snapshot || snapshot.phase !== "running" || snapshot.removed[client.seat]) return null;
    return readControls();
  }

  function frame() {
    // The time of drawing, on the clock the inputs and snapshots are stamped with (the frame's own timestamp is
    // when the frame began, which a busy page reaches much later).
    const now = performance.now();
    const view = interpolator.sample(now);
    if (view) {
      const own = predictor ? predictor.at(now) : null;
      game.draw(ctx, view, { seat: client.seat, own, names });
      drawPhase(client.snapshot);
      if (debug.record) {
        debug.frames.push({ t: now, own, view });
        if (debug.frames.length > MAX_RECORDED_FRAMES) debug.frames.shift();
      }
    }
    requestAnimationFrame(frame);
  }

  function drawPhase(snapshot) {
    let text = null;
    if (snapshot.phase === "waiting") text = "Waiting for players";
    else if (snapshot.phase === "paused") text = "Paused";
    else if (snapshot.phase === "countdown") text = String(Math.ceil(snapshot.countdown || 0));
    else if (snapshot.phase === "finished" && snapshot.saving) text = "Saving the result…";
    if (!text) return;
    ctx.fillStyle = "rgba(15, 19, 32, 0.6)";
    ctx.fillRect(0, game.height / 2 - 60, game.width, 120);
    ctx.fillStyle = "#e8ecf4";
    ctx.font = "bold 56px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    const detail = snapshot.phase === "paused" ? awayText(snapshot) : "";
    ctx.fillText(text, game.width / 2, game.height / 2 - (detail ? 14 : 0));
    if (detail) {
      ctx.font = "20px system-ui, sans-serif";
      ctx.fillText(detail, game.width / 2, game.height / 2 + 34);
    }
    ctx.textBaseline = "alphabetic";
  }

  // Who play waits for, and how long they have left to come back before they lose by forfeit.
  function awayText(snapshot) {
    const away = (snapshot.away || []).map((left, seat) => [seat, left]).filter(([, left]) => left !== null);
    return away.map(([seat, left]) => `${names[seat] || `seat ${seat}`} is offline, ${Math.ceil(left)} s to come back`).join("; ");
  }

  function showHud(snapshot) {
    let phase = snapshot.phase === "countdown" ? `starting in ${Math.ceil(snapshot.countdown || 0)}` : snapshot.phase;
    if (snapshot.phase === "paused") phase = `paused: ${awayText(snapshot)}`;
    if (snapshot.saving) phase = "finished, saving the result"; // the database is away: the result is stored later
    $("#phase").textContent = phase;
    root.dataset.phase = snapshot.phase;
    root.dataset.tick = snapshot.tick;
    const left = Math.max(0, snapshot.state.time_left);
    $("#time-left").textContent = `${Math.floor(left / 60)}:${String(Math.floor(left % 60)).padStart(2, "0")}`;
    const board = $("#scoreboard");
    clear(board);
    for (const { seat, score } of game.scores(snapshot.state)) {
      const status = snapshot.removed[seat] ? " (left)" : snapshot.connected[seat] ? "" : " (offline)";
      const item = el("li", {}, el("span", { className: "swatch" }), `${names[seat] || `seat ${seat}`}${status}`, el("b", {}, String(score)));
      item.firstChild.style.background = seatColour(seat);
      if (seat === client.seat) item.classList.add("me");
      board.append(item);
    }
  }
}

function setUpCanvas(game) {
  const wrap = canvas.parentElement;
  const resize = () => {
    // Draw in game units. The field fits both the column's width and the window's height (arena is square), and
    // the backing store follows the displayed size and the pixel ratio, so it stays sharp on any screen.
    const room = window.innerHeight - wrap.getBoundingClientRect().top - window.scrollY - 16;
    const width = Math.max(240, Math.min(wrap.parentElement.clientWidth - 256, (room * game.width) / game.height));
    const fullWidth = window.innerWidth <= 760 ? wrap.parentElement.clientWidth : width;
    const height = (fullWidth * game.height) / game.width;
    const ratio = window.devicePixelRatio || 1;
    wrap.style.width = `${fullWidth}px`;
    canvas.style.height = `${height}px`;
    canvas.width = Math.round(fullWidth * ratio);
    canvas.height = Math.round(height * ratio);
    ctx.setTransform(canvas.width / game.width, 0, 0, canvas.height / game.height, 0, 0);
  };
  resize();
  window.addEventListener("resize", resize);
  canvas.dataset.game = Object.keys(GAMES).find((slug) => GAMES[slug] === game); // renderer loader: any slug
}

function toWorld(clientX, clientY) {
  const rect = canvas.getBoundingClientRect();
  const game = GAMES[canvas.dataset.game];
  return [((clientX - rect.left) / rect.width) * game.width, ((clientY - rect.top) / rect.height) * game.height];
}

function showLeft(detail) {
  const box = $("#left-notice");
  if (!box.hidden) return;
  $("#left-detail").textContent = detail;
  box.hidden = false;
  $("#leave").hidden = true;
}

function log(text) {
  const list = $("#events");
  list.prepend(el("li", {}, text));
  while (list.children.length > 6) list.lastChild.remove();
}

const REASONS = {
  score_limit: "Score limit reached",
  time_limit: "Time is up",
  forfeit: "Won by forfeit",
  last_player_standing: "Last player standing",
  players_missing: "Cancelled: not enough players arrived",
  no_show: "Cancelled: nobody joined in time",
  invitation_declined: "Cancelled: an invitation was declined",
  invitation_expired: "Cancelled: not every invitation was accepted in time",
  cancelled_by_admin: "Cancelled by an admin",
  ended_by_admin: "Ended by an admin (the score at that moment counts)",
  server_error: "Cancelled after a server error",
};

async function showResult(end, mySeat) {
  const section = $("#result");
  section.hidden = false;
  section.scrollIntoView({ block: "start" });
  $("#leave").hidden = true;
  $("#leave-confirm").hidden = true;
  $("#left-notice").hidden = true;
  const mine = end.results.find((r) => r.seat === mySeat);
  let title = "Match over";
  if (end.status === "cancelled") title = "Match cancelled";
  else if (mine) title = mine.placing === 1 ? "You won!" : "You lost";
  $("#result-title").textContent = title;
  document.title = `${title} · Arena`;
  let reason = REASONS[end.reason] || end.reason || "";
  if (mine && mine.abandoned) reason = end.reason === "forfeit" ? "You left the match: a forfeit" : `You left the match. ${reason}`;
  $("#result-reason").textContent = reason;
  $("#replay-offer").hidden = end.status !== "finished";
  const rows = $("#result-rows");
  clear(rows);
  const cells = new Map();
  for (const r of [...end.results].sort((a, b) => (a.placing ?? 99) - (b.placing ?? 99))) {
    const rating = el("td", { className: "rating-change" }, end.status === "finished" ? "…" : "unrated");
    rating.dataset.userId = r.user_id;
    cells.set(r.user_id, rating);
    // Who left says so beside their name, not in a cell of its own under no heading.
    const name = el("td", {}, el("a", { href: `/users/${r.user_id}/` }, r.username));
    if (r.abandoned) name.append(" ", el("span", { className: "muted left-match" }, "(left)"));
    const row = el("tr", {}, el("td", {}, r.placing ?? "–"), name, el("td", {}, r.score ?? "–"), rating);
    if (r.seat === mySeat) row.classList.add("me");
    rows.append(row);
  }
  offerPlayAgain();
  if (end.status === "finished") await fillRatingChanges(end, cells);
}

// "Play again" does what this player can do next: back to their lobby (ready for the rematch, or to start it as the
// host), or, without a lobby, queue again for the same game right here: the button then cancels the search, and the
// queue bar (queuebar.js) takes the player to the next match.
let searching = null; // the ticket queued from this screen, while it searches

async function offerPlayAgain() {
  const button = $("#play-again");
  const errorBox = $("#play-again-error");
  let mine = null;
  try {
    mine = (await api.get("/api/lobbies/mine/")).lobby;
  } catch {
    mine = null; // offline for a moment: queueing again is still on offer, and says so if it fails
  }
  $("#play-again-hint").textContent = mine ? `back to lobby ${mine.code}` : "";
  button.onclick = async () => {
    errorBox.hidden = true;
    button.disabled = true;
    try {
      if (searching) await api.delete(`/api/matchmaking/tickets/${searching.id}/`); // the bar hears it, below
      else if (mine) await backToLobby(mine);
      else await queueAgain();
    } catch (error) {
      showError(errorBox, error.status ? error : "Could not reach the server. Try again.");
    }
    button.disabled = false;
  };
}

async function backToLobby(lobby) {
  if (lobby.host && lobby.host.id !== Number(root.dataset.userId)) {
    try {
      await api.post(`/api/lobbies/${lobby.code}/ready/`, { ready: true });
    } catch (error) {
      if (!error.status) throw error; // offline: stay, and say so
      // The lobby is not open (yet, or any more): its page shows what it is.
    }
  }
  window.location.assign(`/lobbies/${lobby.code}/`);
}

async function queueAgain() {
  const game = (await api.get(`/api/matches/${matchId}/`)).game;
  const ticket = await api.post("/api/matchmaking/tickets/", { game });
  rememberTicket(ticket, gameName(game));
  searching = ticket;
  $("#play-again").textContent = "Cancel search";
  $("#play-again-hint").textContent = `Searching for a ${gameName(game)} match…`;
  // Cancelled (here, from the bar or another tab) or expired: offer it again. Matched: the bar goes there.
  window.addEventListener("gs:ticket", function ended(event) {
    const next = event.detail;
    if (next && next.id === ticket.id && (next.status === "searching" || next.status === "matched")) return;
    window.removeEventListener("gs:ticket", ended);
    searching = null;
    $("#play-again").textContent = "Play again";
    $("#play-again-hint").textContent = next && next.status === "expired" ? "No match was found in time." : "";
  });
}

async function fillRatingChanges(end, cells) {
  // Ratings are written in the same transaction as the result, so they are there by now; a few retries cover a
  // hiccup on the way.
  for (let attempt = 0; attempt < 5 && cells.size; attempt++) {
    try {
      for (const entry of await api.get(`/api/matches/${end.match}/ratings/`)) {
        const cell = cells.get(entry.user_id);
        if (!cell) continue;
        cell.textContent = `${formatDelta(entry.rating.display_delta)} (now ${formatRating(entry.rating.display_after)})`;
        cell.classList.add(entry.rating.display_delta >= 0 ? "up" : "down");
        cells.delete(entry.user_id);
      }
    } catch {
      // try again below
    }
    if (cells.size) await sleep(1000);
  }
  for (const cell of cells.values()) cell.textContent = "not available";
}
