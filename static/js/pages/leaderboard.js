// Leaderboard of one game by rating (the shown whole number, docs/lobby.md "Ratings"), with the viewer's own rank.

import { ApiClient } from "../gsclient.js";
import { $, clear, el, formatRating, gameOptions, showError } from "./ui.js";

const api = new ApiClient();
const select = $("#board-game");
const errorBox = $("#board-error");

function row(entry, mine) {
  const tr = el(
    "tr", {},
    el("td", {}, entry.rank),
    el("td", {}, el("a", { href: `/users/${entry.user.id}/` }, entry.user.username)),
    el("td", { title: `μ ${entry.mu.toFixed(2)}, σ ${entry.sigma.toFixed(2)}` }, formatRating(entry.display_rating)),
    el("td", {}, entry.matches),
    el("td", {}, entry.wins),
  );
  if (mine) tr.classList.add("me");
  return tr;
}

async function load() {
  const board = await api.get(`/api/leaderboards/${select.value}/?limit=50`);
  const rows = $("#board-rows");
  clear(rows);
  const myId = board.me ? board.me.user.id : null;
  for (const entry of board.results) rows.append(row(entry, entry.user.id === myId));
  $("#board-empty").hidden = board.results.length > 0;
  rows.closest("table").hidden = board.results.length === 0; // no header over nobody
  $("#board-me").textContent = board.me
    ? `You are #${board.me.rank} with a rating of ${formatRating(board.me.display_rating)} after ${board.me.matches} ${board.me.matches === 1 ? "match" : "matches"}.`
    : "You have no rating in this game yet: play a match!";
}

// The chosen game lives in the URL (?game=pong): a reload, a shared link and the back button keep it.
function gameInUrl() {
  return new URLSearchParams(window.location.search).get("game");
}

function choose(slug) {
  // An unknown or missing game shows the first one, as the page does without a choice.
  const known = [...select.options].some((option) => option.value === slug);
  if (select.options.length) select.value = known ? slug : select.options[0].value;
  document.title = `Leaderboard: ${select.selectedOptions[0] ? select.selectedOptions[0].textContent : select.value} · Arena`;
  return load();
}

select.addEventListener("change", () => {
  const url = new URL(window.location.href);
  url.searchParams.set("game", select.value);
  window.history.pushState({ game: select.value }, "", url);
  choose(select.value).catch((error) => showError(errorBox, error));
});
window.addEventListener("popstate", () => choose(gameInUrl()).catch((error) => showError(errorBox, error)));
gameOptions(api, select).then(() => choose(gameInUrl())).catch((error) => showError(errorBox, error));
