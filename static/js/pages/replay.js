// The replay page: plays a finished match from the server's per-tick frames (GET /api/matches/<id>/replay/ and its
// frames chunks), drawn by the same per-game renderers and interpolation as live play (games.js). Play, pause, speed,
// seek to any tick, and a timeline of the match's events.

import { ApiClient } from "../gsclient.js";
import { GAMES, seatColour } from "../games.js";
import { $, clear, el, formatSeconds } from "./ui.js";

const root = $("#replay");
const matchId = Number(root.dataset.matchId);
const api = new ApiClient();
const canvas = $("#field");
const ctx = canvas.getContext("2d");
const playButton = $("#play");
const seek = $("#seek");
const speedSelect = $("#speed");

// Visible to tests and to anyone debugging in the console.
const debug = { ready: false, drawnTick: null, playing: false };
window.gsReplay = debug;

const EVENT_TEXT = {
  point: (e, who) => `${who(e.seat)} scores`,
  hit: (e, who) => `${who(e.by)} hit ${who(e.target)}`,
  respawn: (e, who) => `${who(e.seat)} is back`,
  player_removed: (e, who) => `${who(e.seat)} left the match`,
};

start().catch((error) => {
  const box = $("#replay-error");
  box.textContent = (error && error.message) || "This replay could not be loaded.";
  box.hidden = false;
});

async function start() {
  const meta = await api.get(`/api/matches/${matchId}/replay/`);
  const game = GAMES[meta.game] || GAMES[meta.game.split("-")[0]]; // test variants: "pong-quick"
  if (!game) throw new Error(`This page cannot draw "${meta.game}".`);
  const names = Object.fromEntries(meta.players.map((p) => [p.seat, p.username]));
  const who = (seat) => names[seat] || `seat ${seat}`;
  const tickRate = meta.settings.tick_rate;
  const chunks = new Map(); // start tick -> Promise of frames
  let position = 0; // in ticks, fractional while playing
  let playing = false;
  let lastFrameAt = null;

  $("#replay-title").textContent = `${meta.settings.name}: ${meta.players.map((p) => p.username).join(" vs ")}`;
  $("#ticks").textContent = meta.ticks;
  seek.max = meta.ticks;
  seek.disabled = false;
  playButton.disabled = false;
  setUpCanvas(game);
  buildTimeline();

  function chunkOf(tick) {
    const begin = Math.floor(tick / meta.chunk_ticks) * meta.chunk_ticks;
    if (!chunks.has(begin)) {
      const loading = api.get(`${meta.frames_url}?start=${begin}`).then((answer) => {
        loading.frames = answer.frames;
        return answer.frames;
      });
      loading.catch(() => chunks.delete(begin)); // asked again on the next frame
      chunks.set(begin, loading);
    }
    return chunks.get(begin);
  }

  /** The frame at a tick if its chunk is loaded (else null, and the chunk is on its way). */
  function frameAt(tick) {
    const chunk = chunkOf(tick);
    return chunk.frames ? chunk.frames[tick - Math.floor(tick / meta.chunk_ticks) * meta.chunk_ticks] : null;
  }

  function draw() {
    const t0 = Math.floor(position);
    const t1 = Math.min(t0 + 1, meta.ticks);
    const a = frameAt(t0);
    if (!a) return false;
    const b = t1 > t0 ? frameAt(t1) : null;
    if (t1 + meta.chunk_ticks / 4 <= meta.ticks) chunkOf(t1 + meta.chunk_ticks / 4); // load ahead of playback
    const view = b ? game.interpolate(a.state, b.state, position - t0) : a.state;
    game.draw(ctx, view, { seat: null, own: null, names });
    if (debug.drawnTick !== t0) showTick(a);
    return true;
  }

  function showTick(frame) {
    debug.drawnTick = frame.tick;
    root.dataset.tick = frame.tick;
    $("#tick").textContent = frame.tick;
    $("#clock").textContent = formatSeconds(frame.tick / tickRate);
    seek.value = frame.tick;
    const board = $("#scoreboard");
    clear(board);
    for (const { seat, score } of game.scores(frame.state)) {
      const item = el("li", {}, el("span", { className: "swatch" }), `${who(seat)}${frame.removed[seat] ? " (left)" : ""}`,
        el("b", {}, String(score)));
      item.firstChild.style.background = seatColour(seat);
      board.append(item);
    }
    for (const item of $("#timeline").children) item.classList.toggle("current", Number(item.dataset.tick) <= frame.tick);
  }

  function buildTimeline() {
    const list = $("#timeline");
    const marks = $("#marks");
    for (const event of meta.events) {
      const text = (EVENT_TEXT[event.type] || ((e) => e.type))(event, who);
      const button = el("button", { type: "button" }, `${formatSeconds(event.tick / tickRate)} ${text}`);
      button.addEventListener("click", () => jump(event.tick));
      const item = el("li", {}, button);
      item.dataset.tick = event.tick;
      list.append(item);
      const mark = el("span", { title: text });
      mark.style.left = `${(100 * event.tick) / Math.max(1, meta.ticks)}%`;
      marks.append(mark);
    }
    if (!meta.events.length) list.append(el("li", { className: "muted" }, "No events."));
  }

  function jump(tick) {
    position = Math.max(0, Math.min(meta.ticks, tick));
    debug.drawnTick = null;
    draw();
  }

  function setPlaying(on) {
    playing = on;
    debug.playing = on;
    lastFrameAt = null;
    playButton.textContent = on ? "Pause" : "Play";
  }

  playButton.addEventListener("click", () => {
    if (!playing && position >= meta.ticks) jump(0);
    setPlaying(!playing);
  });
  seek.addEventListener("input", () => jump(Number(seek.value)));
  speedSelect.addEventListener("change", () => {
    lastFrameAt = null;
  });

  function frame(now) {
    if (playing && lastFrameAt !== null) {
      const next = position + ((now - lastFrameAt) / 1000) * tickRate * Number(speedSelect.value);
      position = Math.min(meta.ticks, next);
      if (position >= meta.ticks) setPlaying(false);
    }
    if (playing) lastFrameAt = now;
    draw();
    requestAnimationFrame(frame);
  }

  await chunkOf(0);
  debug.ready = true;
  draw();
  requestAnimationFrame(frame);
}

function setUpCanvas(game) {
  const wrap = canvas.parentElement;
  const resize = () => {
    const room = window.innerHeight - wrap.getBoundingClientRect().top - window.scrollY - 16;
    const width = Math.max(240, Math.min(wrap.parentElement.clientWidth - 256, (room * game.width) / game.height));
    const fullWidth = window.innerWidth <= 760 ? wrap.parentElement.clientWidth : width;
    const ratio = window.devicePixelRatio || 1;
    wrap.style.width = `${fullWidth}px`;
    canvas.style.height = `${(fullWidth * game.height) / game.width}px`;
    canvas.width = Math.round(fullWidth * ratio);
    canvas.height = Math.round(((fullWidth * game.height) / game.width) * ratio);
    ctx.setTransform(canvas.width / game.width, 0, 0, canvas.height / game.height, 0, 0);
  };
  resize();
  window.addEventListener("resize", resize);
}
