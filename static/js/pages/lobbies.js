// Lobby browser: open public lobbies (refreshed every few seconds), creating a lobby, joining one by its code, and
// the way back to the lobby the player is in.

import { ApiClient } from "../gsclient.js";
import { $, clear, el, gameOptions, showError } from "./ui.js";

const api = new ApiClient();
const errorBox = $("#lobby-error");
const filter = $("#filter-game");

const goTo = (lobby) => window.location.assign(`/lobbies/${lobby.code}/`);

async function load() {
  const query = filter.value ? `?game=${encodeURIComponent(filter.value)}` : "";
  const page = await api.get(`/api/lobbies/${query}`);
  const rows = $("#lobby-rows");
  clear(rows);
  for (const lobby of page.results) {
    const join = el("button", { type: "button", className: "small" }, "Join");
    join.addEventListener("click", () => act(() => api.post(`/api/lobbies/${lobby.code}/join/`)));
    const host = lobby.host ? lobby.host.username : "–";
    rows.append(el("tr", {}, el("td", {}, lobby.game), el("td", {}, host), el("td", {}, `${lobby.members}/${lobby.size}`), el("td", {}, join)));
  }
  $("#no-lobbies").hidden = page.results.length > 0;
}

async function act(call) {
  errorBox.hidden = true;
  try {
    goTo(await call());
  } catch (error) {
    showError(errorBox, error);
  }
}

$("#create-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const size = $("#create-size").value;
  const body = { game: $("#create-game").value, public: !$("#create-private").checked };
  if (size) body.size = Number(size);
  act(() => api.post("/api/lobbies/", body));
});

$("#join-form").addEventListener("submit", (event) => {
  event.preventDefault();
  act(() => api.post("/api/lobbies/join/", { code: $("#join-code").value.trim().toUpperCase() }));
});

filter.addEventListener("change", () => load().catch((error) => showError(errorBox, error)));

async function showMyLobby() {
  const mine = (await api.get("/api/lobbies/mine/")).lobby;
  $("#my-lobby").hidden = !mine;
  if (mine) {
    $("#my-lobby-link").href = `/lobbies/${mine.code}/`;
    $("#my-lobby-link").textContent = `lobby ${mine.code}`;
  }
}

(async () => {
  try {
    await showMyLobby();
    const games = await gameOptions(api, $("#create-game"));
    filter.append(...games.map((g) => el("option", { value: g.slug }, g.name)));
    await load();
  } catch (error) {
    showError(errorBox, error);
  }
  setInterval(() => load().catch(() => {}), 5000);
})();
