// Match history of a player (the viewer, or data-user-id), newest first, with rating changes; also the profile's
// ratings summary.

import { ApiClient } from "../gsclient.js";
import { $, clear, el, formatDelta, showError } from "./ui.js";

const api = new ApiClient();
const root = $("#history");
const userId = root.dataset.userId;
const errorBox = $("#history-error");
const limit = Number(root.dataset.limit || 50);

async function loadHistory() {
  const page = await api.get(userId ? `/api/history/${userId}/?limit=${limit}` : `/api/history/?limit=${limit}`);
  const rows = $("#history-rows");
  clear(rows);
  for (const entry of page.results) {
    const when = entry.finished_at ? new Date(entry.finished_at).toLocaleString() : "–";
    const rating = entry.rating ? el("span", { className: entry.rating.delta >= 0 ? "up" : "down" }, formatDelta(entry.rating.delta)) : "–";
    const placing = entry.abandoned ? "left" : `${entry.placing ?? "–"} of ${entry.players}`;
    rows.append(el(
      "tr", {},
      el("td", {}, el("a", { href: `/matches/${entry.match.id}/` }, when)),
      el("td", {}, entry.game),
      el("td", {}, placing),
      el("td", {}, entry.score ?? "–"),
      el("td", {}, rating),
      el("td", {}, entry.rating ? entry.rating.after.toFixed(2) : "–"),
    ));
  }
  $("#history-empty").hidden = page.results.length > 0;
}

async function loadRatings() {
  const list = $("#ratings");
  const games = await api.get("/api/games/");
  clear(list);
  for (const game of games) {
    const board = await api.get(`/api/leaderboards/${game.slug}/?limit=1`);
    const text = board.me
      ? `${board.me.rating.toFixed(2)} (#${board.me.rank}, won ${board.me.wins} of ${board.me.matches})`
      : "unrated";
    list.append(el("li", {}, el("b", {}, game.name), ": ", text));
  }
}

loadHistory().catch((error) => showError(errorBox, error));
if ($("#ratings")) loadRatings().catch((error) => showError(errorBox, error));
