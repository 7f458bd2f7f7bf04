// Connect Four's renderer (games/rules/connect_four.py), written against the renderer interface of docs/games.md.
// Click or tap a column, or choose one with ←/→ (A/D) and drop with ↓, Space or Enter.

const COLUMNS = 7;
const ROWS = 6;
const CELL = 100;
const TOP = 100; // a strip above the board for the turn and the column being aimed at

let newest = null; // the newest snapshot state (draw gets an interpolated one, a little in the past)
let mySeat = null;
let aimed = 3;
let wanted = null; // {col, move}: sent every tick until that move has been played

export default {
  width: COLUMNS * CELL,
  height: TOP + ROWS * CELL,

  // Called with every snapshot's state as it arrives: no prediction here (null), but the controls need the newest
  // turn and move number, not the drawn ones.
  ownFrom(state, seat) {
    newest = state;
    mySeat = seat;
    return null;
  },

  draw(ctx, state, { seat, names, colour }) {
    ctx.fillStyle = "#10172a";
    ctx.fillRect(0, 0, this.width, this.height);
    ctx.fillStyle = "#e8ecf4";
    ctx.font = "bold 30px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    let title = "Game over";
    if (state.turn !== null) {
      const who = state.turn === seat ? "Your turn" : `${names[state.turn] || `Seat ${state.turn + 1}`}'s turn`;
      title = `${who} · ${state.turn_left} s`;
    }
    ctx.fillText(title, this.width / 2, 30);
    if (state.turn !== null && state.turn === seat) {
      ctx.fillStyle = colour(seat);
      ctx.beginPath();
      ctx.arc((aimed + 0.5) * CELL, 75, 18, 0, 2 * Math.PI);
      ctx.fill();
    }
    ctx.fillStyle = "#1e3a8a";
    ctx.fillRect(0, TOP, this.width, ROWS * CELL);
    const winning = new Set((state.line || []).map(([c, r]) => `${c},${r}`));
    for (let col = 0; col < COLUMNS; col++) {
      for (let row = 0; row < ROWS; row++) {
        const owner = state.board[col][row];
        const x = (col + 0.5) * CELL;
        const y = TOP + (ROWS - row - 0.5) * CELL;
        ctx.fillStyle = owner === undefined ? "#10172a" : colour(owner);
        ctx.beginPath();
        ctx.arc(x, y, CELL * 0.4, 0, 2 * Math.PI);
        ctx.fill();
        if (winning.has(`${col},${row}`)) {
          ctx.strokeStyle = "#ffffff";
          ctx.lineWidth = 6;
          ctx.stroke();
        }
      }
    }
    ctx.textBaseline = "alphabetic";
  },

  scores(state) {
    return state.scores.map((score, seat) => ({ seat, score }));
  },

  controls(canvas, toWorld) {
    const play = (col) => {
      aimed = col;
      // Out of turn the click is dropped here (the server would refuse it with not_your_turn).
      wanted = newest && newest.turn === mySeat ? { col, move: newest.moves } : null;
    };
    canvas.addEventListener("pointerdown", (e) => {
      const [x] = toWorld(e.clientX, e.clientY);
      play(Math.max(0, Math.min(COLUMNS - 1, Math.floor(x / CELL))));
    });
    window.addEventListener("keydown", (e) => {
      if (e.code === "ArrowLeft" || e.code === "KeyA") aimed = Math.max(0, aimed - 1);
      else if (e.code === "ArrowRight" || e.code === "KeyD") aimed = Math.min(COLUMNS - 1, aimed + 1);
      else if (e.code === "ArrowDown" || e.code === "Space" || e.code === "Enter") play(aimed);
      else return;
      e.preventDefault();
    });
    // The same input is sent every tick until the move is on the board; the rules make it count once.
    return () => (wanted && newest && wanted.move === newest.moves ? wanted : null);
  },
};
