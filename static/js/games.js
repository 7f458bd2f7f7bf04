// Per-game knowledge of the browser client: field size, the own avatar's movement (the same math as
// games/rules/*.py, for client-side prediction), interpolation of what others control, drawing, and controls.

const SEAT_COLOURS = ["#4fd1c5", "#f6ad55", "#f687b3", "#90cdf4", "#b794f4", "#68d391", "#fc8181", "#faf089"];

export function seatColour(seat) {
  return SEAT_COLOURS[seat % SEAT_COLOURS.length];
}

const clamp = (value, lo, hi) => (value < lo ? lo : value > hi ? hi : value);
const lerp = (a, b, t) => a + (b - a) * t;

function lerpAngle(a, b, t) {
  let d = b - a;
  if (d > Math.PI) d -= 2 * Math.PI;
  if (d < -Math.PI) d += 2 * Math.PI;
  return a + d * t;
}

// --- touch pads ---------------------------------------------------------------------------------------------------

/** A touch screen is there: the page shows the on-screen buttons. */
export function touchDevice() {
  return navigator.maxTouchPoints > 0 || window.matchMedia("(pointer: coarse)").matches;
}

/**
 * On-screen buttons that press the keyboard's keys: each one puts its key in `keys` while a finger (or any pointer)
 * is on it, and calls `onChange` when it goes down or up, so a touch sends exactly what that key would. Only on
 * touch screens; `pad` is the page's empty container (#touch-pad), absent on pages without controls.
 */
export function touchButtons(pad, layout, buttons, keys, onChange) {
  if (!pad || !touchDevice()) return;
  pad.replaceChildren();
  pad.dataset.layout = layout;
  for (const { key, label, name } of buttons) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = `pad-button pad-${name}`;
    button.textContent = label;
    button.setAttribute("aria-label", name);
    button.dataset.key = key;
    const pointers = new Set();
    const update = () => {
      const held = pointers.size > 0;
      button.classList.toggle("held", held);
      if (keys.has(key) === held) return;
      if (held) keys.add(key);
      else keys.delete(key);
      onChange();
    };
    button.addEventListener("pointerdown", (event) => {
      event.preventDefault(); // no focus, no text selection, no emulated mouse events
      if (button.setPointerCapture) button.setPointerCapture(event.pointerId);
      pointers.add(event.pointerId);
      update();
    });
    for (const kind of ["pointerup", "pointercancel", "lostpointercapture"]) {
      button.addEventListener(kind, (event) => {
        pointers.delete(event.pointerId);
        update();
      });
    }
    button.addEventListener("contextmenu", (event) => event.preventDefault()); // a long press is holding, not a menu
    pad.append(button);
  }
  pad.hidden = false;
}

// --- arena (games/rules/arena.py) -------------------------------------------------------------------------------

const ARENA = { size: 1000, radius: 15, speed: 200, bulletRadius: 3, bulletSpeed: 600 };

export const arena = {
  width: ARENA.size,
  height: ARENA.size,

  /** Own avatar from a snapshot state, or null when it is not in play (dead, removed). */
  ownFrom(state, seat) {
    const p = state.players.find((player) => player.seat === seat);
    return p && p.alive ? { x: p.x, y: p.y, aim: p.aim } : null;
  },

  /** One tick of own movement, as ArenaGame.parse_input + step do it (minus pushes, which the server corrects). */
  stepOwn(own, input, dt) {
    let { dx, dy } = input;
    const lengthSq = dx * dx + dy * dy;
    if (lengthSq > 1) {
      const length = Math.sqrt(lengthSq);
      dx /= length;
      dy /= length;
    }
    const travel = ARENA.speed * dt;
    const lo = ARENA.radius;
    const hi = ARENA.size - ARENA.radius;
    return {
      x: clamp(own.x + dx * travel, lo, hi),
      y: clamp(own.y + dy * travel, lo, hi),
      aim: input.aim === undefined ? own.aim : input.aim,
    };
  },

  /** Blend two snapshot states; players are matched by seat, bullets by the nearest one a tick's flight away. */
  interpolate(a, b, t) {
    const bySeat = new Map(b.players.map((p) => [p.seat, p]));
    const players = a.players.map((p) => {
      const q = bySeat.get(p.seat);
      if (!q || !p.alive || !q.alive) return t < 0.5 || !q ? p : q;
      return { ...q, x: lerp(p.x, q.x, t), y: lerp(p.y, q.y, t), aim: lerpAngle(p.aim, q.aim, t) };
    });
    const reach = ARENA.bulletSpeed / 10;
    const bullets = a.bullets.map(([x, y]) => {
      let best = null;
      let bestD = reach * reach;
      for (const [bx, by] of b.bullets) {
        const d = (bx - x) ** 2 + (by - y) ** 2;
        if (d < bestD) [best, bestD] = [[bx, by], d];
      }
      return best ? [lerp(x, best[0], t), lerp(y, best[1], t)] : [x, y];
    });
    return { ...b, players, bullets };
  },

  draw(ctx, view, { seat, own, names }) {
    ctx.fillStyle = "#10172a";
    ctx.fillRect(0, 0, ARENA.size, ARENA.size);
    ctx.strokeStyle = "#1f2a44";
    ctx.lineWidth = 1;
    for (let g = 100; g < ARENA.size; g += 100) {
      ctx.beginPath();
      ctx.moveTo(g, 0);
      ctx.lineTo(g, ARENA.size);
      ctx.moveTo(0, g);
      ctx.lineTo(ARENA.size, g);
      ctx.stroke();
    }
    ctx.fillStyle = "#f7fafc";
    for (const [x, y] of view.bullets) {
      ctx.beginPath();
      ctx.arc(x, y, ARENA.bulletRadius + 1, 0, 2 * Math.PI);
      ctx.fill();
    }
    for (const p of view.players) {
      const mine = p.seat === seat;
      const at = mine && own ? { ...p, ...own } : p;
      ctx.globalAlpha = p.alive ? 1 : 0.25;
      ctx.fillStyle = seatColour(p.seat);
      ctx.beginPath();
      ctx.arc(at.x, at.y, ARENA.radius, 0, 2 * Math.PI);
      ctx.fill();
      ctx.strokeStyle = "#f7fafc";
      ctx.lineWidth = 4;
      ctx.beginPath();
      ctx.moveTo(at.x, at.y);
      ctx.lineTo(at.x + Math.cos(at.aim) * ARENA.radius * 1.8, at.y + Math.sin(at.aim) * ARENA.radius * 1.8);
      ctx.stroke();
      if (mine) {
        ctx.lineWidth = 3;
        ctx.beginPath();
        ctx.arc(at.x, at.y, ARENA.radius + 6, 0, 2 * Math.PI);
        ctx.stroke();
      }
      ctx.globalAlpha = 1;
      ctx.fillStyle = "#cbd5e0";
      ctx.font = "20px system-ui, sans-serif";
      ctx.textAlign = "center";
      ctx.fillText(names[p.seat] || `seat ${p.seat}`, at.x, at.y - ARENA.radius - 10);
    }
  },

  scores(state) {
    return state.players.map((p) => ({ seat: p.seat, score: p.score }));
  },

  /** Keyboard WASD/arrows, mouse aim and button (or space) to fire; touch: left half moves, right half aims+fires,
   * or the on-screen pad (arrows and Fire, aiming where the pad moves). `onChange` is called when a key or button
   * goes down or up (not for aim), so the input can go out at once. */
  controls(canvas, toWorld, ownPosition, onChange = () => {}, pad = null) {
    const keys = new Set();
    let aim;
    let padAims = false; // the pad's arrows aim too, until the mouse or a finger on the field aims
    touchButtons(pad, "arena", [
      { key: "arrowup", label: "▲", name: "up" },
      { key: "arrowleft", label: "◀", name: "left" },
      { key: "arrowright", label: "▶", name: "right" },
      { key: "arrowdown", label: "▼", name: "down" },
      { key: " ", label: "Fire", name: "fire" },
    ], keys, () => {
      padAims = true;
      onChange();
    });
    let mouseFire = false;
    const stick = { id: null, x0: 0, y0: 0, dx: 0, dy: 0 };
    const shooter = { id: null };
    const aimAt = (clientX, clientY) => {
      const own = ownPosition();
      if (!own) return;
      padAims = false;
      const [x, y] = toWorld(clientX, clientY);
      aim = Math.atan2(y - own.y, x - own.x);
    };
    const onKey = (down) => (event) => {
      if (["ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight", " "].includes(event.key)) event.preventDefault();
      const key = event.key.toLowerCase();
      if (keys.has(key) === down) return; // auto-repeat
      if (down) keys.add(key);
      else keys.delete(key);
      onChange();
    };
    window.addEventListener("keydown", onKey(true));
    window.addEventListener("keyup", onKey(false));
    canvas.addEventListener("mousemove", (e) => aimAt(e.clientX, e.clientY));
    canvas.addEventListener("mousedown", (e) => {
      aimAt(e.clientX, e.clientY);
      mouseFire = true;
      onChange();
    });
    window.addEventListener("mouseup", () => {
      if (!mouseFire) return;
      mouseFire = false;
      onChange();
    });
    canvas.addEventListener("touchstart", (e) => {
      e.preventDefault();
      const rect = canvas.getBoundingClientRect();
      for (const t of e.changedTouches) {
        if (t.clientX < rect.left + rect.width / 2 && stick.id === null) {
          Object.assign(stick, { id: t.identifier, x0: t.clientX, y0: t.clientY, dx: 0, dy: 0 });
        } else if (shooter.id === null) {
          shooter.id = t.identifier;
          aimAt(t.clientX, t.clientY);
        }
      }
    }, { passive: false });
    canvas.addEventListener("touchmove", (e) => {
      e.preventDefault();
      for (const t of e.changedTouches) {
        if (t.identifier === stick.id) {
          // A 60 px drag is full speed.
          stick.dx = clamp((t.clientX - stick.x0) / 60, -1, 1);
          stick.dy = clamp((t.clientY - stick.y0) / 60, -1, 1);
        } else if (t.identifier === shooter.id) {
          aimAt(t.clientX, t.clientY);
        }
      }
    }, { passive: false });
    const endTouch = (e) => {
      for (const t of e.changedTouches) {
        if (t.identifier === stick.id) Object.assign(stick, { id: null, dx: 0, dy: 0 });
        if (t.identifier === shooter.id) shooter.id = null;
      }
    };
    canvas.addEventListener("touchend", endTouch);
    canvas.addEventListener("touchcancel", endTouch);
    return () => {
      const k = (...names) => names.some((n) => keys.has(n));
      let dx = (k("arrowright", "d") ? 1 : 0) - (k("arrowleft", "a") ? 1 : 0);
      let dy = (k("arrowdown", "s") ? 1 : 0) - (k("arrowup", "w") ? 1 : 0);
      if (stick.id !== null) [dx, dy] = [stick.dx, stick.dy];
      else if (padAims && (dx || dy)) aim = Math.atan2(dy, dx);
      const input = { dx, dy, fire: mouseFire || keys.has(" ") || shooter.id !== null };
      // Three decimals are plenty; rounding must not push ±π (straight left) past the range the server accepts.
      if (aim !== undefined) input.aim = clamp(Math.round(aim * 1000) / 1000, -Math.PI, Math.PI);
      return input;
    };
  },
};

// --- pong (games/rules/pong.py) ---------------------------------------------------------------------------------

const PONG = { width: 800, height: 600, paddleHeight: 80, paddleWidth: 10, margin: 20, paddleSpeed: 400, ball: 8 };

export const pong = {
  width: PONG.width,
  height: PONG.height,

  ownFrom(state, seat) {
    return { y: state.paddles[seat] };
  },

  /** One tick of own paddle movement, as PongGame.step does it. */
  stepOwn(own, input, dt) {
    const half = PONG.paddleHeight / 2;
    return { y: clamp(own.y + input.dy * PONG.paddleSpeed * dt, half, PONG.height - half) };
  },

  interpolate(a, b, t) {
    // A point resets the ball to the centre: blending across that jump would draw it flying back.
    const jump = Math.abs(a.ball[0] - b.ball[0]) > PONG.width / 4;
    const ball = jump ? b.ball : b.ball.map((v, i) => lerp(a.ball[i], v, t));
    return { ...b, ball, paddles: b.paddles.map((y, i) => lerp(a.paddles[i], y, t)) };
  },

  draw(ctx, view, { seat, own }) {
    ctx.fillStyle = "#10172a";
    ctx.fillRect(0, 0, PONG.width, PONG.height);
    ctx.strokeStyle = "#2c3550";
    ctx.setLineDash([12, 12]);
    ctx.lineWidth = 4;
    ctx.beginPath();
    ctx.moveTo(PONG.width / 2, 0);
    ctx.lineTo(PONG.width / 2, PONG.height);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = "#2c3550";
    ctx.font = "bold 72px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.fillText(String(view.scores[0]), PONG.width / 4, 90);
    ctx.fillText(String(view.scores[1]), (PONG.width * 3) / 4, 90);
    for (const s of [0, 1]) {
      const y = s === seat && own ? own.y : view.paddles[s];
      const x = s === 0 ? PONG.margin : PONG.width - PONG.margin - PONG.paddleWidth;
      ctx.fillStyle = seatColour(s);
      ctx.fillRect(x, y - PONG.paddleHeight / 2, PONG.paddleWidth, PONG.paddleHeight);
    }
    ctx.fillStyle = "#f7fafc";
    ctx.beginPath();
    ctx.arc(view.ball[0], view.ball[1], PONG.ball, 0, 2 * Math.PI);
    ctx.fill();
  },

  scores(state) {
    return state.scores.map((score, seat) => ({ seat, score }));
  },

  /** Arrow keys or W/S; on touch, the on-screen ▲/▼ (the same keys), or the paddle follows a finger on the field.
   * `onChange`: a key went down or up. */
  controls(canvas, toWorld, ownPosition, onChange = () => {}, pad = null) {
    const keys = new Set();
    let touchY = null;
    touchButtons(pad, "pong", [
      { key: "arrowup", label: "▲", name: "up" },
      { key: "arrowdown", label: "▼", name: "down" },
    ], keys, onChange);
    const onKey = (down) => (event) => {
      if (["ArrowUp", "ArrowDown"].includes(event.key)) event.preventDefault();
      const key = event.key.toLowerCase();
      if (keys.has(key) === down) return; // auto-repeat
      if (down) keys.add(key);
      else keys.delete(key);
      onChange();
    };
    window.addEventListener("keydown", onKey(true));
    window.addEventListener("keyup", onKey(false));
    const onTouch = (e) => {
      e.preventDefault();
      const t = e.touches[0];
      touchY = t ? toWorld(t.clientX, t.clientY)[1] : null;
    };
    canvas.addEventListener("touchstart", onTouch, { passive: false });
    canvas.addEventListener("touchmove", onTouch, { passive: false });
    canvas.addEventListener("touchend", onTouch);
    return () => {
      const own = ownPosition();
      if (touchY !== null && own) {
        // Full speed until within 20 px, then slow down so the paddle settles under the finger.
        return { dy: clamp((touchY - own.y) / 20, -1, 1) };
      }
      const up = keys.has("arrowup") || keys.has("w");
      const down = keys.has("arrowdown") || keys.has("s");
      return { dy: (down ? 1 : 0) - (up ? 1 : 0) };
    };
  },
};

export const GAMES = { arena, pong };

// Below this a difference between the prediction and the server is rounding (snapshots keep one decimal);
// above SNAP_UNITS it is a jump (a respawn, a reconnect) that is drawn at once rather than slid across the field.
const ROUNDING_UNITS = 0.5;
const SNAP_UNITS = 100;

/**
 * Client-side prediction for the own avatar. Each input the page sends is one tick of the server's movement
 * (docs/protocol.md, "Inputs and ticks"), so the prediction is the server's latest position with every input it
 * has not acknowledged replayed on top, tick by tick, through the same math as the rules. With no input lost that
 * is exactly where the server will be; a correction (the server disagreed: a push, a lost input) is drawn as an
 * offset that fades over `smoothMs` instead of a snap. On screen an input's tick runs from when it was sent to when
 * the next one is due, starting from wherever the avatar is drawn then, so the path has no steps.
 */
export class Predictor {
  constructor(game, seat, dt, { smoothMs = 100 } = {}) {
    this.game = game;
    this.seat = seat;
    this.dt = dt;
    this.smoothMs = smoothMs;
    this.pending = [];
    this.lastApplied = null; // the last acknowledged input, as JSON
    this.current = null; // after the last input sent
    this.from = null; // drawn at fromAt, then moving towards current until `until`
    this.fromAt = 0;
    this.until = 0;
    this.error = null; // what is left of a correction at errorAt, fading to nothing over smoothMs
    this.errorAt = 0;
    this.stats = { corrections: 0, maxCorrection: 0 };
    this.corrections = []; // [local time, size] of each one, the last 200
  }

  /** A new input was sent with this seq: its tick of movement is drawn from `now` until `until`. */
  record(seq, input, now = performance.now(), until = now + this.dt * 1000) {
    this.pending.push({ seq, input });
    if (!this.current) return;
    this.from = this._path(now);
    this.fromAt = now;
    // An input sent late, or two close together after a stall (a busy page delays timers), still get most of a tick
    // on screen each: the drawn avatar catches up at most a third faster than it moves, never in a sudden step.
    this.until = Math.max(until, now + 750 * this.dt, this.until + 750 * this.dt);
    this.current = this.game.stepOwn(this.current, input, this.dt);
  }

  /**
   * A snapshot arrived: the server's own position with what it has not applied yet replayed on top. `owed`: ticks
   * that found no input of ours and repeated the last one applied (minus the snapshot's `waiting[seat]`); the
   * server counts our next inputs that equal that one as applied by them, so they are not replayed again.
   */
  reconcile(state, ack, now = performance.now(), owed = 0) {
    let at = 0;
    while (at < this.pending.length && this.pending[at].seq <= ack) at += 1;
    if (at) this.lastApplied = JSON.stringify(this.pending[at - 1].input);
    this.pending = this.pending.slice(at);
    let own = this.game.ownFrom(state, this.seat);
    if (own === null) {
      this.current = this.from = this.error = null;
      return;
    }
    let skip = 0;
    while (skip < owed && skip < this.pending.length && JSON.stringify(this.pending[skip].input) === this.lastApplied) skip += 1;
    for (const p of this.pending.slice(skip)) own = this.game.stepOwn(own, p.input, this.dt);
    if (!this.current) {
      this._jumpTo(own, now);
      return;
    }
    const shift = {};
    let size = 0;
    for (const key of Object.keys(own)) {
      if (key === "aim") continue;
      shift[key] = own[key] - this.current[key];
      size = Math.max(size, Math.abs(shift[key]));
    }
    if (size > SNAP_UNITS) {
      this._jumpTo(own, now);
      return;
    }
    if (size > ROUNDING_UNITS) {
      this.stats.corrections += 1;
      this.stats.maxCorrection = Math.max(this.stats.maxCorrection, size);
      this.corrections.push([now, size]);
      if (this.corrections.length > 200) this.corrections.shift();
      // The path moves with the correction; what is drawn does not jump: the difference fades out instead.
      const left = this._errorAt(now);
      this.error = {};
      for (const key of Object.keys(shift)) this.error[key] = (left ? left[key] || 0 : 0) - shift[key];
      this.errorAt = now;
    }
    for (const key of Object.keys(shift)) this.from[key] += shift[key];
    this.current = own;
  }

  /** Forget inputs that died with a dropped socket; the next snapshot is the new base. */
  reset() {
    this.pending = [];
  }

  /** Position to draw at local time `now`. */
  at(now = performance.now()) {
    if (!this.current) return null;
    const out = this._path(now);
    const error = this._errorAt(now);
    if (error) for (const key of Object.keys(error)) out[key] += error[key];
    return out;
  }

  _jumpTo(own, now) {
    this.current = own;
    this.from = { ...own };
    this.fromAt = this.until = now;
    this.error = null;
  }

  _path(now) {
    const span = this.until - this.fromAt;
    const t = span > 0 ? clamp((now - this.fromAt) / span, 0, 1) : 1;
    const out = {};
    for (const key of Object.keys(this.current)) {
      out[key] = key === "aim" ? this.current.aim : lerp(this.from[key], this.current[key], t);
    }
    return out;
  }

  _errorAt(now) {
    if (!this.error) return null;
    const left = 1 - (now - this.errorAt) / this.smoothMs;
    if (left <= 0) {
      this.error = null;
      return null;
    }
    const out = {};
    for (const key of Object.keys(this.error)) out[key] = this.error[key] * left;
    return out;
  }
}

/**
 * Draws other players and the ball a little in the past, between the two snapshots around that moment, so that
 * movement stays smooth whatever the jitter of arrival times. The delay follows the clock's measured jitter (one
 * tick plus the worst lateness of the last seconds, plus a margin), so the render clock does not run past the
 * newest snapshot; it changes gradually (the render clock runs at most 20% slow or 10% fast meanwhile). A snapshot
 * later than that holds the render clock until it comes (counted in stats.overruns): a pause, never a skip.
 */
export class Interpolator {
  constructor(game, clock, { marginMs = 4 } = {}) {
    this.game = game;
    this.clock = clock;
    this.marginMs = marginMs;
    this.buffer = [];
    this.delayMs = null;
    this.sampledAt = null;
    this.overrun = false;
    this.stats = { overruns: 0 };
  }

  push(snapshot) {
    const last = this.buffer[this.buffer.length - 1];
    if (last && snapshot.tick < last.tick) this.buffer = []; // a takeover resumed from an older checkpoint
    if (last && snapshot.tick === last.tick) return;
    this.buffer.push({ tick: snapshot.tick, state: snapshot.state });
    if (this.buffer.length > 60) this.buffer.shift();
  }

  reset() {
    this.buffer = [];
    this.delayMs = null;
  }

  /** The delay it aims for now: one tick to interpolate across, the measured jitter and a margin. */
  get targetDelayMs() {
    return this.clock.dtMs + this.clock.jitterMs + this.marginMs;
  }

  /** The state to draw now, or null before the first snapshot. */
  sample(now = performance.now()) {
    if (!this.buffer.length) return null;
    const newest = this.buffer[this.buffer.length - 1];
    if (!this.clock.ready) return newest.state;
    const target = this.targetDelayMs;
    if (this.delayMs === null) {
      this.delayMs = target;
    } else {
      const elapsed = clamp(now - this.sampledAt, 0, 100);
      this.delayMs += clamp(target - this.delayMs, -0.1 * elapsed, 0.2 * elapsed);
    }
    this.sampledAt = now;
    const tick = (now - this.clock.offset - this.delayMs) / this.clock.dtMs;
    if (tick > newest.tick) {
      // A snapshot later than any of the last seconds: wait for it with the render clock held at the newest one
      // (the delay grows by the wait) rather than skip ahead when it comes; the delay then eases back down.
      if (!this.overrun) this.stats.overruns += 1;
      this.overrun = true;
      this.delayMs = now - this.clock.offset - newest.tick * this.clock.dtMs;
      return newest.state;
    }
    this.overrun = false;
    const first = this.buffer[0];
    if (tick <= first.tick) return first.state;
    for (let i = this.buffer.length - 1; i > 0; i--) {
      const a = this.buffer[i - 1];
      const b = this.buffer[i];
      if (tick >= a.tick) return this.game.interpolate(a.state, b.state, (tick - a.tick) / (b.tick - a.tick));
    }
    return newest.state;
  }
}
