// Live matches one may watch (refreshed every few seconds): opening one joins it as a spectator (the match page).

import { ApiClient } from "../gsclient.js";
import { $, clear, el, showError } from "./ui.js";

const api = new ApiClient();
const errorBox = $("#watch-error");
const filter = $("#filter-game");
let names = {};

async function load() {
  const query = filter.value ? `?game=${encodeURIComponent(filter.value)}` : "";
  const page = await api.get(`/api/matches/live/${query}`);
  const rows = $("#watch-rows");
  clear(rows);
  for (const match of page.results) {
    const players = match.players.map((p) => p.username).join(" vs ");
    const delay = match.spectator_delay_seconds ? ` (${match.spectator_delay_seconds} s behind)` : "";
    const watch = el("a", { href: `/matches/${match.id}/`, className: "button small" }, "Watch");
    const row = el("tr", {}, el("td", {}, names[match.game] || match.game), el("td", {}, players),
      el("td", {}, match.status === "running" ? "playing" : "waiting for players"),
      el("td", {}, match.spectators === null ? "–" : String(match.spectators)), el("td", {}, watch, delay));
    row.dataset.match = match.id;
    rows.append(row);
  }
  $("#no-matches").hidden = page.results.length > 0;
}

(async () => {
  try {
    const games = await api.get("/api/games/");
    names = Object.fromEntries(games.map((g) => [g.slug, g.name]));
    filter.append(...games.filter((g) => g.spectators_allowed).map((g) => el("option", { value: g.slug }, g.name)));
    filter.addEventListener("change", () => load().catch((error) => showError(errorBox, error)));
    await load();
  } catch (error) {
    showError(errorBox, error);
  }
  setInterval(() => load().catch(() => {}), 3000);
})();
