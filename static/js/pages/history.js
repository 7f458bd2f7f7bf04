// Match history of a player (the viewer, or data-user-id), newest first: who they played against, how it went and
// what it did to their rating; also the profile's ratings summary.

import { ApiClient } from "../gsclient.js";
import { $, clear, el, formatDelta, formatRating, showError } from "./ui.js";

const api = new ApiClient();
const root = $("#history");
const userId = root.dataset.userId;
const errorBox = $("#history-error");
const limit = Number(root.dataset.limit || 50);
const gamesPromise = api.get("/api/games/").catch(() => []);

function placingText(placing, players) {
  return placing === null || placing === undefined ? "–" : `${placing} of ${players}`;
}

function opponentsCell(entry) {
  const cell = el("td", { className: "opponents" });
  if (!entry.opponents.length) cell.append("–");
  entry.opponents.forEach((opponent, i) => {
    if (i) cell.append(", ");
    cell.append(el("a", { href: `/users/${opponent.id}/` }, opponent.username));
    // Who beat whom is the point of a free-for-all; in 1-v-1 the row's own placing says it.
    if (entry.players > 2 && opponent.placing !== null) cell.append(el("small", { className: "muted" }, ` #${opponent.placing}`));
  });
  return cell;
}

function ratingCell(rating) {
  if (!rating) return el("td", { className: "muted" }, "unrated");
  return el(
    "td", { className: "rating-cell" },
    el("span", { className: rating.display_delta >= 0 ? "up" : "down" }, formatDelta(rating.display_delta)),
    el("small", { className: "muted" }, ` → ${formatRating(rating.display_after)}`),
  );
}

async function loadHistory() {
  const [page, games] = await Promise.all([
    api.get(userId ? `/api/history/${userId}/?limit=${limit}` : `/api/history/?limit=${limit}`),
    gamesPromise,
  ]);
  const names = Object.fromEntries(games.map((game) => [game.slug, game.name]));
  const rows = $("#history-rows");
  clear(rows);
  for (const entry of page.results) {
    const when = entry.finished_at ? new Date(entry.finished_at).toLocaleString([], { dateStyle: "short", timeStyle: "short" }) : "–";
    const outcome = entry.abandoned ? "left" : entry.placing === 1 ? "won" : entry.placing === null ? "" : "lost";
    const result = el("td", {}, el("b", {}, outcome), " ", el("small", { className: "muted" }, placingText(entry.placing, entry.players)));
    if (entry.score !== null) result.append(el("br"), el("small", { className: "muted" }, `score ${entry.score}`));
    rows.append(el(
      "tr", {},
      el("td", {}, el("a", { href: `/matches/${entry.match.id}/` }, names[entry.game] || entry.game), el("br"), el("small", { className: "muted" }, when)),
      opponentsCell(entry),
      result,
      ratingCell(entry.rating),
    ));
  }
  $("#history-empty").hidden = page.results.length > 0;
}

async function loadRatings() {
  const list = $("#ratings");
  const games = await gamesPromise;
  clear(list);
  for (const game of games) {
    const board = await api.get(`/api/leaderboards/${game.slug}/?limit=1`);
    const text = board.me
      ? `${formatRating(board.me.display_rating)} (#${board.me.rank}, won ${board.me.wins} of ${board.me.matches})`
      : "unrated";
    list.append(el("li", {}, el("a", { href: `/leaderboard/?game=${game.slug}` }, game.name), ": ", text));
  }
}

loadHistory().catch((error) => showError(errorBox, error));
if ($("#ratings")) loadRatings().catch((error) => showError(errorBox, error));
