// Small DOM helpers for the pages. Text always goes in as text nodes, never as HTML, so user names and chat lines
// cannot inject markup.

export const $ = (selector, scope = document) => scope.querySelector(selector);

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  node.replaceChildren();
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A change of the shown rating (a whole number, docs/lobby.md "Ratings"): "+344", "−183", "+0". */
export function formatDelta(delta) {
  return `${delta >= 0 ? "+" : "−"}${Math.abs(Math.round(delta))}`;
}

/** A shown rating (a whole number) with a real minus sign, like the changes. */
export function formatRating(rating) {
  return rating < 0 ? `−${Math.abs(rating)}` : String(rating);
}

export function formatSeconds(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** Show an error (an ApiError, any Error, or a plain message) in a status element. */
export function showError(node, error) {
  const text = typeof error === "string" ? error : error && error.message;
  node.textContent = text || "Something went wrong.";
  node.hidden = false;
}

export async function gameOptions(api, select) {
  const games = await api.get("/api/games/");
  clear(select);
  for (const game of games) select.append(el("option", { value: game.slug }, game.name));
  return games;
}
