// Browser client for the game server: REST calls, the match WebSocket (protocol v2 with deltas, or v1 from an older
// server; docs/protocol.md) with automatic reconnect, and a reconnecting JSON socket for lobbies and matchmaking.
// Plain ES module, no dependencies; docs/client.md shows how a third-party front end uses it.

// Offered in this order: a server that knows v2 picks it, an older one picks v1 (full snapshots every tick).
export const SUBPROTOCOLS = ["gs.v2.json", "gs.v1.json"];
// A lost delta (a gap) asks the server for a keyframe at most this often while none has come.
const KEYFRAME_REQUEST_EVERY_MS = 1000;
// Fields of a snapshot that deltas do not patch (games/engine/snapshots.py, MESSAGE_ONLY).
const MESSAGE_ONLY = new Set(["type", "events", "n", "keys"]);

/** A snapshot without its per-message fields: what deltas patch. */
export function snapshotBody(message) {
  const body = {};
  for (const [key, value] of Object.entries(message)) if (!MESSAGE_ONLY.has(key)) body[key] = value;
  return body;
}

/**
 * `prev` with a delta's `patch` applied (docs/protocol.md, "Deltas"; games/engine/delta.py is the server's side).
 * Returns a new value and leaves `prev` alone; throws on a patch that does not fit `prev` (ask for a keyframe).
 */
export function applyPatch(prev, patch) {
  if (Array.isArray(patch)) {
    if (patch[0] === 0 && patch.length === 2) return patch[1];
    if (patch[0] === 1 && patch.length >= 2 && patch.length % 2 === 0) return applyListPatch(prev, patch);
    if (patch[0] === 3) {  // every item of a list of the same length, in order
      if (!Array.isArray(prev) || prev.length !== patch.length - 1) throw new Error("gsclient: item patches do not fit the list");
      return prev.map((item, i) => applyPatch(item, patch[i + 1]));
    }
    if (patch[0] === 4) {  // integers, each plus its step (every seat's ack moved)
      if (!Array.isArray(prev) || prev.length !== patch.length - 1) throw new Error("gsclient: steps do not fit the list");
      return prev.map((item, i) => {
        if (!Number.isInteger(item) || !Number.isInteger(patch[i + 1])) throw new Error("gsclient: steps need integers");
        return item + patch[i + 1];
      });
    }
    throw new Error(`gsclient: unknown patch ${JSON.stringify(patch[0])}`);
  }
  if (patch !== null && typeof patch === "object") {
    if (prev === null || typeof prev !== "object" || Array.isArray(prev)) throw new Error("gsclient: object patch on a non-object");
    const out = { ...prev };
    for (const [key, change] of Object.entries(patch)) {
      if (Array.isArray(change) && change.length === 1 && change[0] === 2) delete out[key];
      else out[key] = key in prev ? applyPatch(prev[key], change) : wholeValue(change);
    }
    return out;
  }
  return patch;
}

function wholeValue(patch) {
  if (Array.isArray(patch) && patch[0] === 0 && patch.length === 2) return patch[1];
  if (patch !== null && typeof patch === "object") throw new Error("gsclient: a new item must be a whole value");
  return patch;
}

function applyListPatch(prev, patch) {
  if (!Array.isArray(prev)) throw new Error("gsclient: list patch on a non-list");
  const length = patch[1];
  if (!Number.isInteger(length) || length < 0) throw new Error("gsclient: list patch without a length");
  const out = prev.slice(0, length);
  const old = out.length;
  while (out.length < length) out.push(null);
  for (let at = 2; at < patch.length; at += 2) {
    const i = patch[at];
    if (!Number.isInteger(i) || i < 0 || i >= length) throw new Error("gsclient: list index out of range");
    out[i] = i < old ? applyPatch(out[i], patch[at + 1]) : wholeValue(patch[at + 1]);
  }
  return out;
}

// Close codes after which reconnecting cannot help (docs/protocol.md, "Close codes").
const FINAL_CLOSE_CODES = new Map([
  [4001, "Not logged in, or the login expired."],
  [4002, "This client speaks a protocol version the server does not support."],
  [4003, "You are not allowed in this match."],
  [4004, "There is no such match."],
  [4007, "Too many malformed messages."],
  [4009, "A message was too large."],
  [4011, "This seat was opened in another tab or device."],
  [4012, "You were logged out."],
  [4014, "An operator removed you from this match."],
]);
// 4012 names why the credential was revoked; a player must learn that a ban is not a logout.
const REVOKED_REASONS = new Map([
  ["banned", "Your account has been banned."],
  ["password_changed", "The password was changed: log in again."],
]);
const CLOSE_REVOKED = 4012;
const CLOSE_SERVER_RESTART = 4010;

/** What to tell a person about a final close code (4012 by its reason: logged out, password changed, banned). */
export function closeMessage(code, reason = "") {
  if (code === CLOSE_REVOKED && REVOKED_REASONS.has(reason)) return REVOKED_REASONS.get(reason);
  return FINAL_CLOSE_CODES.get(code) || reason || "The connection was lost.";
}
const CLOSE_MATCH_OVER = 4013;

export class UnsupportedBrowserError extends Error {}

/** True when this browser can open WebSockets at all. */
export function websocketSupported() {
  return typeof WebSocket === "function";
}

function requireWebSocket() {
  if (!websocketSupported()) {
    throw new UnsupportedBrowserError(
      "This browser cannot open WebSocket connections, which live games need. Please use a current browser.",
    );
  }
}

/** Delay before reconnect attempt n (0-based): exponential from base, capped, with "full jitter" so that many
 * clients cut off at once do not all come back in the same instant. */
export function backoffDelay(attempt, { base = 250, cap = 5000, random = Math.random } = {}) {
  const ceiling = Math.min(cap, base * 2 ** attempt);
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

function readCookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return null;
}

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `Request failed with HTTP ${status}.`);
    this.status = status;
    this.code = (body && body.error) || "http_error";
    this.fields = (body && body.fields) || {};
  }
}

/** REST calls with either the browser session (cookie + CSRF header) or a token (Authorization header). */
export class ApiClient {
  constructor({ base = "", token = null } = {}) {
    this.base = base.replace(/\/$/, "");
    this.token = token;
  }

  async request(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (this.token) {
      headers.Authorization = `Token ${this.token}`;
    } else if (method !== "GET" && method !== "HEAD") {
      // Django refuses unsafe requests with a session cookie unless the CSRF cookie comes back as a header.
      const csrf = readCookie("csrftoken");
      if (csrf) headers["X-CSRFToken"] = csrf;
    }
    const response = await fetch(this.base + path, {
      method,
      headers,
      credentials: this.token ? "omit" : "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  get(path) { return this.request("GET", path); }
  post(path, body = {}) { return this.request("POST", path, body); }
  delete(path) { return this.request("DELETE", path); }

  /** Log in a game client: keeps the token for later calls and returns the user. */
  async login(username, password) {
    const data = await this.post("/api/auth/login/", { username, password });
    this.token = data.token;
    return data.user;
  }

  /** Log the browser in with the session cookie (pages of the same site then see the user too). */
  async sessionLogin(username, password) {
    return (await this.post("/api/auth/session/", { username, password })).user;
  }

  me() { return this.get("/api/auth/me/"); }

  async wsTicket() { return (await this.post("/api/auth/ws-ticket/")).ticket; }

  /** ws(s)://host/path, with a fresh single-use ticket when this client uses a token. */
  async socketUrl(path) {
    const origin = this.base || window.location.origin;
    const url = new URL(path, origin.replace(/^http/, "ws"));
    if (this.token) url.searchParams.set("ticket", await this.wsTicket());
    return url.toString();
  }
}

/** Minimal event emitter: on(name, fn) returns a function that unsubscribes. */
class Emitter {
  constructor() { this.handlers = new Map(); }

  on(name, fn) {
    if (!this.handlers.has(name)) this.handlers.set(name, new Set());
    this.handlers.get(name).add(fn);
    return () => this.handlers.get(name).delete(fn);
  }

  emit(name, ...args) {
    for (const fn of this.handlers.get(name) || []) {
      try {
        fn(...args);
      } catch (error) {
        console.error(`gsclient: a "${name}" handler failed`, error);
      }
    }
  }
}

/**
 * One seat (or a spectator's view) of a match over ws/matches/<id>/.
 *
 * Events: "state" (connection state: connecting, open, reconnecting, ended, closed), "welcome", "snapshot",
 * "event" (each game event of a snapshot), "end" (match_end), "error" (server error messages), "pong" (rtt ms),
 * "notice" (an operator's message).
 */
export class MatchClient extends Emitter {
  constructor({
    matchId,
    api = new ApiClient(),
    reconnect = true,
    pingIntervalMs = 2000,
    staleAfterMs = 5000,
    backoff = {},
  }) {
    super();
    requireWebSocket();
    this.matchId = matchId;
    this.api = api;
    this.reconnect = reconnect;
    this.pingIntervalMs = pingIntervalMs;
    this.staleAfterMs = staleAfterMs;
    this.backoff = backoff;
    this.state = "idle";
    this.closeInfo = null;
    this.welcome = null;
    this.snapshot = null;
    this.matchEnd = null;
    this.rtt = null;
    this.seq = 0;
    this.synced = false;
    // Protocol v2: the delta stream's number and state as this socket last had them (null: wait for a keyframe).
    this.streamN = null;
    this.streamBody = null;
    this.keyframeAskedAt = -Infinity;
    this.stats = { keyframes: 0, deltas: 0, gaps: 0 };
    this.attempt = 0;
    this.reconnects = 0;
    this.ws = null;
    this.timers = { ping: null, watchdog: null, retry: null };
    this.lastMessageAt = 0;
    this.stopped = false;
  }

  /** The protocol version the server chose for this socket (2: deltas; 1: full snapshots, an older server). */
  get version() { return this.welcome ? this.welcome.v : null; }

  get role() { return this.welcome ? this.welcome.role : null; }
  get seat() { return this.welcome ? this.welcome.seat : null; }

  /** Last input seq the server applied for our seat, from the latest snapshot. */
  get ackedSeq() {
    if (!this.snapshot || this.seat === null) return 0;
    return this.snapshot.acks[this.seat] || 0;
  }

  onSnapshot(fn) { return this.on("snapshot", fn); }
  onEvent(fn) { return this.on("event", fn); }
  onEnd(fn) { return this.on("end", fn); }
  onState(fn) { return this.on("state", fn); }

  connect() {
    this.stopped = false;
    this._setState(this.reconnects ? "reconnecting" : "connecting");
    this._open();
    return this;
  }

  /** Send this seat's input; returns its seq, or null while it cannot be sent (not synced, spectating, closed). */
  sendInput(input) {
    if (!this.synced || this.role !== "player" || !this._isOpen()) return null;
    this.seq += 1;
    this._send(this._inputMessage(this.seq, input));
    return this.seq;
  }

  /**
   * The compact form [seq, value, ...] in the order of the welcome's `input_fields` (protocol v2), or the object form
   * when the game has none or a field before the last given one is missing (the server would then refuse it by name).
   */
  _inputMessage(seq, input) {
    const fields = this.welcome && this.welcome.input_fields;
    if (fields && fields.length) {
      let count = fields.length;
      while (count > 0 && input[fields[count - 1]] === undefined) count -= 1;
      const values = fields.slice(0, count).map((field) => input[field]);
      if (!values.includes(undefined)) return [seq, ...values];
    }
    return { type: "input", seq, input };
  }

  /** Give the seat up now: forfeit games end, the others go on without us. */
  leave() {
    if (this._isOpen()) this._send({ type: "leave" });
  }

  /** Close for good (no reconnect). */
  close() {
    this.stopped = true;
    this._clearTimers();
    if (this.ws) {
      this._detach(this.ws);
      this.ws.close(1000);
      this.ws = null;
    }
    if (this.state !== "ended") this._setState("closed", { code: 1000, reason: "Closed by the client." });
  }

  // --- internals ---------------------------------------------------------------------------------------------

  async _open() {
    let url;
    try {
      url = await this.api.socketUrl(`/ws/matches/${this.matchId}/`);
    } catch (error) {
      // No ticket (logged out, server down): a 401/403 is final, anything else is worth retrying.
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
        this._finish("closed", { code: 4001, reason: FINAL_CLOSE_CODES.get(4001) });
      } else {
        this._scheduleRetry(false);
      }
      return;
    }
    if (this.stopped) return;
    const ws = new WebSocket(url, SUBPROTOCOLS);
    this.ws = ws;
    this.synced = false;
    this.streamN = null;
    this.streamBody = null;
    ws.onmessage = (message) => this._receive(message);
    ws.onclose = (event) => this._closed(ws, event.code, event.reason);
    ws.onopen = () => {
      this.lastMessageAt = performance.now();
      this._startTimers();
    };
  }

  _isOpen() { return this.ws !== null && this.ws.readyState === WebSocket.OPEN; }

  _send(message) { this.ws.send(JSON.stringify(message)); }

  _receive(raw) {
    this.lastMessageAt = performance.now();
    let message;
    try {
      message = JSON.parse(raw.data);
    } catch {
      return;
    }
    if (Array.isArray(message)) {  // version 2's compact delta: [n, patch] or [n, patch, events]
      this._delta(message[0], message[1], message[2]);
      return;
    }
    switch (message.type) {
      case "welcome":
        this.welcome = message;
        this.emit("welcome", message);
        break;
      case "snapshot":
        if (message.n !== undefined) this._keyframe(message);
        this._snapshot(message);
        break;
      case "match_end":
        this.matchEnd = message;
        this.emit("end", message);
        break;
      case "pong":
        if (typeof message.t === "number") {
          const rtt = performance.now() - message.t;
          this.rtt = this.rtt === null ? rtt : this.rtt * 0.7 + rtt * 0.3;
          this.emit("pong", this.rtt);
        }
        break;
      case "error":
        this.emit("error", message);
        break;
      case "notice":
        this.emit("notice", message);
        break;
      default:
        break; // newer server messages are ignored, as the protocol asks
    }
  }

  _keyframe(message) {
    this.streamN = message.n;
    this.streamBody = snapshotBody(message);
    this.stats.keyframes += 1;
    this.keyframeAskedAt = -Infinity;
  }

  /** Delta `n` fits only the state it was made from, number n - 1; anything else is a gap: ask for a keyframe. */
  _delta(n, patch, events) {
    if (this.streamN === null || n - 1 !== this.streamN) {
      this._gap();
      return;
    }
    let body;
    try {
      body = applyPatch(this.streamBody, patch);
    } catch (error) {
      console.error(error);
      this._gap();
      return;
    }
    this.streamN = n;
    this.streamBody = body;
    this.stats.deltas += 1;
    const snapshot = { type: "snapshot", ...body };
    if (events) snapshot.events = events;
    this._snapshot(snapshot);
  }

  _gap() {
    this.stats.gaps += 1;
    this.streamN = null;
    const now = performance.now();
    if (now - this.keyframeAskedAt >= KEYFRAME_REQUEST_EVERY_MS && this._isOpen()) {
      this.keyframeAskedAt = now;
      this._send({ type: "keyframe" });
    }
  }

  _snapshot(snapshot) {
    this.snapshot = snapshot;
    if (!this.synced) {
      // Inputs must stay above what the seat already had applied, also after a page reload.
      this.seq = Math.max(this.seq, this.ackedSeq);
      this.synced = true;
      this.attempt = 0;
      this._setState("open");
    }
    this.emit("snapshot", snapshot);
    for (const event of snapshot.events || []) this.emit("event", event, snapshot);
  }

  _closed(ws, code, reason) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.synced = false;
    this._clearTimers();
    if (this.stopped) return;
    if (code === CLOSE_MATCH_OVER || this.matchEnd) {
      this._finish("ended", { code, reason: "The match is over." });
    } else if (FINAL_CLOSE_CODES.has(code)) {
      this._finish("closed", { code, reason: closeMessage(code, reason), serverReason: reason });
    } else if (!this.reconnect) {
      this._finish("closed", { code, reason: reason || "The connection was lost." });
    } else {
      this._scheduleRetry(code === CLOSE_SERVER_RESTART);
    }
  }

  _scheduleRetry(now) {
    if (this.stopped) return;
    this.reconnects += 1;
    const delay = now ? 0 : backoffDelay(this.attempt, this.backoff);
    this.attempt += 1;
    this._setState("reconnecting", { attempt: this.attempt, delay });
    this.timers.retry = setTimeout(() => this._open(), delay);
  }

  _finish(state, info) {
    this.stopped = true;
    this._clearTimers();
    this._setState(state, info);
  }

  _startTimers() {
    this._ping();
    this.timers.ping = setInterval(() => this._ping(), this.pingIntervalMs);
    // A dead network often gives no close event for minutes; silence longer than staleAfterMs counts as a drop
    // (snapshots arrive every tick, and every half second even while waiting for players).
    this.timers.watchdog = setInterval(() => {
      if (performance.now() - this.lastMessageAt > this.staleAfterMs) this._drop();
    }, 500);
  }

  _ping() {
    if (this._isOpen()) this._send({ type: "ping", t: performance.now() });
  }

  _drop() {
    const ws = this.ws;
    if (!ws) return;
    this._detach(ws);
    try {
      ws.close(4000, "stale");
    } catch {
      // already closing
    }
    this._closed(ws, 1006, "No messages from the server.");
  }

  _detach(ws) {
    ws.onmessage = ws.onclose = ws.onopen = null;
  }

  _clearTimers() {
    clearInterval(this.timers.ping);
    clearInterval(this.timers.watchdog);
    clearTimeout(this.timers.retry);
    this.timers = { ping: null, watchdog: null, retry: null };
  }

  _setState(state, info = null) {
    this.state = state;
    this.closeInfo = info;
    this.emit("state", state, info);
  }
}

/**
 * The server's tick on this page's clock, learnt from when snapshots arrive. `offset` maps tick n to the local time
 * n's snapshot arrives by the fastest path seen: earlier arrivals move it at once, later ones only slowly, so it
 * settles on the quickest path instead of following the jitter. `jitterMs` is how much later than that snapshots
 * came over the last `windowMs` (their worst lateness): what a render clock must stay behind to always have one.
 */
export class TickClock {
  constructor(tickRate, { windowMs = 3000 } = {}) {
    this.dtMs = 1000 / tickRate;
    this.windowMs = windowMs;
    this.offset = null;
    this.newestTick = null;
    this.late = []; // [arrival time, lateness ms], oldest first
  }

  push(tick, now = performance.now()) {
    if (this.newestTick !== null && tick <= this.newestTick) {
      if (tick < this.newestTick - 1000) this.reset(); // a takeover resumed from an older checkpoint
      else return;
    }
    this.newestTick = tick;
    const sample = now - tick * this.dtMs;
    if (this.offset === null || sample < this.offset || Math.abs(sample - this.offset) > 1000) {
      // Re-base the recorded lateness on the new, earlier offset.
      if (this.offset !== null && sample < this.offset) for (const item of this.late) item[1] += this.offset - sample;
      this.offset = sample;
    } else {
      this.offset += (sample - this.offset) * 0.01;
    }
    this.late.push([now, sample - this.offset]);
    while (this.late.length && this.late[0][0] < now - this.windowMs) this.late.shift();
  }

  reset() {
    this.offset = null;
    this.newestTick = null;
    this.late = [];
  }

  get ready() { return this.offset !== null; }

  get jitterMs() {
    let worst = 0;
    for (const [, late] of this.late) if (late > worst) worst = late;
    return worst;
  }

  /** The tick whose snapshot arrives (by the fastest path) at local time `now`, fractional. */
  tickAt(now = performance.now()) { return (now - this.offset) / this.dtMs; }

  /** Local time at which tick `tick`'s snapshot arrives by the fastest path. */
  timeOf(tick) { return this.offset + tick * this.dtMs; }
}

/**
 * Sends one input per server tick, paced by the server's clock (a TickClock), never by a free-running timer: the
 * input meant for tick n goes out `leadTicks` before n's snapshot would arrive, so that it is waiting at the server
 * when tick n is applied (docs/protocol.md, "Inputs and ticks"). The lead adapts to what snapshots say about the
 * seat's buffer (`waiting`): a tick that found nothing waiting adds a tick of lead; a few seconds in which at least
 * MIN_SPARE_INPUTS more than needed were always waiting take half a tick off. The lead moves towards its target a
 * little per input (inputs go out up to 25% faster or 10% slower meanwhile), so the predicted avatar never lurches. `sample()` reads the controls;
 * `send(input)` sends one and returns its seq (or null); `onSent(seq, input, now, untilMs)` tells the predictor,
 * with the local time until which the input's tick lasts on screen. `changed()` sends the next tick's input early
 * (at most one tick ahead), so a key press shows at the next frame instead of at the next tick.
 */
export class InputPacer {
  static MIN_SPARE_INPUTS = 2;
  static MAX_LEAD_TICKS = 40;

  constructor({ clock, sample, send, onSent = () => {}, seat, settleMs = 2000, timers = globalThis, now = () => performance.now() }) {
    this.clock = clock;
    this.sample = sample;
    this.send = send;
    this.onSent = onSent;
    this.seat = seat;
    this.settleMs = settleMs;
    this.timers = timers;
    this.now = now;
    this.leadTicks = null;
    this.targetLead = null;
    this.nextTick = null; // the tick the next input is for
    this.firstTick = null;
    this.bumpedUntil = -Infinity; // no second bump before the snapshot of a tick sent after the last one
    this.spare = Infinity; // fewest spare inputs seen since the lead last changed
    this.spareSince = null;
    this.timer = null;
    this.running = false;
    this.stats = { sent: 0, dry: 0, early: 0, resyncs: 0, leadChanges: 0 };
  }

  /** Start (or go on) sending; `rttMs`, when known, sets the first lead. */
  start(rttMs = null) {
    if (this.running) return;
    this.running = true;
    if (this.leadTicks === null) {
      const rtt = rttMs === null ? 150 : rttMs;
      this.leadTicks = Math.min(InputPacer.MAX_LEAD_TICKS, Math.ceil(rtt / this.clock.dtMs) + 1);
      this.targetLead = this.leadTicks;
    }
    this._schedule();
  }

  stop() {
    this.running = false;
    this.nextTick = null;
    this.timers.clearTimeout(this.timer);
    this.timer = null;
  }

  /** A snapshot arrived (after the clock has seen it): learn from the seat's buffer. */
  observe(snapshot, now = this.now()) {
    if (!this.running || this.firstTick === null || snapshot.tick <= this.firstTick) return;
    const waiting = snapshot.waiting ? snapshot.waiting[this.seat] || 0 : 0;
    if (waiting <= 0) {
      this.stats.dry += 1;
      if (snapshot.tick > this.bumpedUntil) {
        this._setLead(this.targetLead + 1);
        // The next bump waits for the snapshot of a tick whose input went out with this one's effect.
        this.bumpedUntil = this.nextTick + Math.ceil(this.targetLead - this.leadTicks);
      }
      return;
    }
    const spare = waiting - 1;
    if (this.spareSince === null) this.spareSince = now;
    this.spare = Math.min(this.spare, spare);
    if (now - this.spareSince >= this.settleMs) {
      if (this.spare >= InputPacer.MIN_SPARE_INPUTS) this._setLead(this.targetLead - 0.5);
      this.spare = Infinity;
      this.spareSince = now;
    }
  }

  /** The controls changed: send the coming tick's input now rather than at its time (once per tick). */
  changed(now = this.now()) {
    if (!this.running || this.nextTick === null || !this.clock.ready) return;
    const due = this.clock.timeOf(this.nextTick - this.leadTicks);
    if (due - now > this.clock.dtMs) return; // already one tick ahead
    this.stats.early += 1;
    this._sendNext(now);
    this._schedule();
  }

  _setLead(lead) {
    const clamped = Math.max(1, Math.min(InputPacer.MAX_LEAD_TICKS, lead));
    if (clamped !== this.targetLead) this.stats.leadChanges += 1;
    this.targetLead = clamped;
    this.spare = Infinity;
    this.spareSince = null;
  }

  _schedule() {
    this.timers.clearTimeout(this.timer);
    this.timer = null;
    if (!this.running) return;
    if (!this.clock.ready) {
      this.timer = this.timers.setTimeout(() => this._schedule(), this.clock.dtMs);
      return;
    }
    const now = this.now();
    const current = Math.floor(this.clock.tickAt(now) + this.leadTicks);
    if (this.nextTick === null || current - this.nextTick > 4) {
      // First input, or far behind (a throttled tab): start again from the tick now due; the server held the last
      // input meanwhile.
      if (this.nextTick !== null) this.stats.resyncs += 1;
      this.nextTick = current;
    }
    const due = this.clock.timeOf(this.nextTick - this.leadTicks);
    this.timer = this.timers.setTimeout(() => this._tick(), Math.max(0, due - now));
  }

  _tick() {
    this.timer = null;
    if (!this.running) return;
    const now = this.now();
    if (now >= this.clock.timeOf(this.nextTick - this.leadTicks) - 1) this._sendNext(now);
    this._schedule();
  }

  _sendNext(now) {
    const input = this.sample();
    const tick = this.nextTick;
    this.nextTick += 1;
    this.leadTicks += Math.max(-0.1, Math.min(0.25, this.targetLead - this.leadTicks));
    if (input === null) return;
    const seq = this.send(input);
    if (seq === null) return;
    if (this.firstTick === null) this.firstTick = tick;
    this.stats.sent += 1;
    // On screen the input's tick lasts until the next input is due.
    this.onSent(seq, input, now, this.clock.timeOf(this.nextTick - this.leadTicks));
  }
}

/**
 * A JSON WebSocket that comes back after drops (lobby rooms, matchmaking status). Events: "message", "state"
 * (open, reconnecting, closed). Close codes in finalCodes stop it for good.
 */
export class LiveSocket extends Emitter {
  constructor(path, { api = new ApiClient(), finalCodes = [4001, 4003, 4004, 4007, 4012], backoff = {} } = {}) {
    super();
    requireWebSocket();
    this.path = path;
    this.api = api;
    this.finalCodes = new Set(finalCodes);
    this.backoff = backoff;
    this.attempt = 0;
    this.ws = null;
    this.stopped = false;
    this.retry = null;
  }

  connect() {
    this._open();
    return this;
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  close() {
    this.stopped = true;
    clearTimeout(this.retry);
    if (this.ws) this.ws.close(1000);
  }

  async _open() {
    let url;
    try {
      url = await this.api.socketUrl(this.path);
    } catch {
      this._retry();
      return;
    }
    if (this.stopped) return;
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.emit("state", "open");
    };
    ws.onmessage = (raw) => {
      try {
        this.emit("message", JSON.parse(raw.data));
      } catch {
        // not JSON: nothing we can show
      }
    };
    ws.onclose = (event) => {
      if (ws !== this.ws || this.stopped) return;
      this.ws = null;
      if (this.finalCodes.has(event.code)) {
        this.stopped = true;
        this.emit("state", "closed", event.code, closeMessage(event.code, event.reason));
      } else {
        this._retry();
      }
    };
  }

  _retry() {
    if (this.stopped) return;
    const delay = backoffDelay(this.attempt, this.backoff);
    this.attempt += 1;
    this.emit("state", "reconnecting", delay);
    this.retry = setTimeout(() => this._open(), delay);
  }
}
