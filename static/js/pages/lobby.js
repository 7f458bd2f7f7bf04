// Lobby room. Anyone with the link sees the lobby (game, players) and may join; members get it live over
// ws/lobbies/<code>/ with its chat (the recent lines first), ready up, and the host starts a match or queues the whole
// lobby for opponents. Everyone moves to the match when it starts, and is back here, ready to go again, when it ends.

import { ApiClient, LiveSocket, websocketSupported } from "../gsclient.js";
import { gameName, goToMatch, rememberTicket } from "./queue.js";
import { $, clear, el, showError } from "./ui.js";

const root = $("#lobby");
const code = root.dataset.code;
const me = Number(root.dataset.userId);
const api = new ApiClient();
const errorBox = $("#lobby-error");
const chatInput = $("#chat-text");
let lobby = null;
let socket = null;
let partySearch = null; // the lobby's searching party ticket, from the queue bar's socket
let wasMember = false;
let games = {}; // slug -> the game's settings (name, max_players), for labels and the party's room for opponents

const isMember = () => Boolean(lobby && lobby.members.some((m) => m.id === me));

function render(next) {
  lobby = next;
  const member = isMember();
  wasMember = wasMember || member;
  root.dataset.status = lobby.status;
  root.dataset.member = String(member);
  const game = games[lobby.game];
  $("#lobby-game").textContent = game ? game.name : gameName(lobby.game);
  $("#lobby-visibility").textContent = lobby.public ? "public" : "private";
  $("#lobby-count").textContent = `${lobby.members.length}/${lobby.size}`;
  const amHost = Boolean(lobby.host && lobby.host.id === me);
  const open = lobby.status === "open";
  const list = $("#members");
  clear(list);
  for (const m of lobby.members) {
    const item = el("li", {}, el("span", { className: "name" }, m.username));
    item.dataset.userId = m.id;
    // The host starts the match rather than readying up.
    if (m.host) item.append(el("span", { className: "tag" }, "host"));
    else item.append(el("span", { className: m.ready ? "tag ready" : "tag" }, m.ready ? "ready" : "not ready"));
    if (amHost && m.id !== me && open) {
      const kick = el("button", { type: "button", className: "link" }, "kick");
      kick.addEventListener("click", () => call(`/api/lobbies/${code}/kick/`, { user_id: m.id }));
      item.append(kick);
    }
    list.append(item);
  }

  const closed = lobby.status === "closed";
  $("#closed").hidden = !closed;
  $("#guest").hidden = member || closed;
  if (!member && !closed) {
    const full = lobby.members.length >= lobby.size;
    $("#join-lobby").disabled = !open || full;
    $("#guest-text").textContent = wasMember
      ? "You are no longer in this lobby."
      : full
        ? "This lobby is full."
        : open
          ? "You are not in this lobby yet."
          : "This lobby is playing a match; you can join when it is over.";
  }
  $("#member-actions").hidden = !member;
  $("#chat-form").hidden = !member;
  $("#chat-guest").hidden = member;

  const searching = Boolean(partySearch);
  const mine = lobby.members.find((m) => m.id === me);
  $("#ready").hidden = !member || !open || amHost;
  $("#ready").textContent = mine && mine.ready ? "Not ready" : "Ready";
  $("#ready").disabled = searching;
  const othersReady = lobby.members.every((m) => m.ready || m.id === me);
  $("#start").hidden = !member || !open || !amHost;
  $("#start").disabled = !othersReady || searching;
  // A party that fills the game on its own has no opponents to find: Start match is its way to play.
  const room = !game || lobby.members.length < game.max_players;
  $("#queue-party").hidden = !member || !open || !amHost || !room;
  $("#queue-party").disabled = !othersReady || searching;
  $("#party-search").hidden = !member || !searching;
  $("#in-match").hidden = !member || lobby.status !== "in_match" || !lobby.match;
  if (lobby.match) {
    $("#match-link").href = `/matches/${lobby.match.id}/`;
    $("#last-match-link").href = `/matches/${lobby.match.id}/`;
  }
  // Back from a match: say so, and what to do next.
  $("#back-from-match").hidden = !member || !open || !lobby.match;
  $("#back-text").textContent = amHost
    ? "Back from the match. Start the rematch once everyone is ready."
    : "Back from the match. Ready up for a rematch.";
}

async function call(path, body = {}) {
  errorBox.hidden = true;
  try {
    render(await api.post(path, body));
  } catch (error) {
    showError(errorBox, error);
  }
}

async function load() {
  try {
    if (!Object.keys(games).length) games = Object.fromEntries((await api.get("/api/games/")).map((g) => [g.slug, g]));
    render(await api.get(`/api/lobbies/${code}/`));
  } catch (error) {
    showError(errorBox, error.code === "lobby_not_found" ? "There is no lobby with this code." : error);
    return;
  }
  if (isMember()) connect();
}

// --- chat: a line stays in the box until the server relays it, so a refused one (too fast, too long, offline) is
// not lost -------------------------------------------------------------------------------------------------------------

const normalise = (text) => [...text].filter((ch) => ch >= " " && ch !== "\x7f").join("").trim();
let pendingLine = null;

function chatLine(message) {
  const log = $("#chat-log");
  const item = el("li", {}, el("b", {}, message.user.username), " ", message.text);
  item.title = new Date(message.at).toLocaleString();
  log.append(item);
  log.scrollTop = log.scrollHeight;
  if (message.user.id === me && pendingLine !== null && message.text === pendingLine) {
    pendingLine = null;
    if (normalise(chatInput.value) === message.text) chatInput.value = "";
  }
}

function chatHistory(lines) {
  clear($("#chat-log"));
  for (const line of lines || []) chatLine(line);
}

$("#chat-form").addEventListener("submit", (event) => {
  event.preventDefault();
  errorBox.hidden = true;
  const text = normalise(chatInput.value);
  if (!text) return;
  if (socket && socket.send({ type: "chat", text: chatInput.value })) pendingLine = text;
  else showError(errorBox, "Not connected: your message was not sent. It is still in the box; send it again once connected.");
});

// --- the room's socket ---------------------------------------------------------------------------------------------

function connect() {
  if (socket || !websocketSupported()) {
    if (!websocketSupported()) showError(errorBox, "This browser cannot open WebSocket connections: the room will not update live.");
    return;
  }
  socket = new LiveSocket(`/ws/lobbies/${code}/`, { api });
  socket.on("message", (message) => {
    if (message.type === "lobby.state") {
      render(message.lobby);
      chatHistory(message.chat);
    } else if (message.type === "lobby.update") {
      render(message.lobby);
      if (message.event === "started" && message.match) goToMatch(message.match.id);
    } else if (message.type === "lobby.chat") chatLine(message);
    else if (message.type === "error") showError(errorBox, message);
  });
  socket.on("state", (state, closeCode, message) => {
    const status = $("#lobby-conn");
    status.textContent = state === "reconnecting" ? "Reconnecting…" : "";
    if (state !== "closed") return;
    socket = null;
    if (closeCode === 4012 || closeCode === 4001) status.textContent = message;
    else load(); // left, kicked or closed: show the lobby as it is now, with Join if it is still open
  });
  socket.connect();
}

// --- buttons ---------------------------------------------------------------------------------------------------------

$("#ready").addEventListener("click", () => {
  const mine = lobby.members.find((m) => m.id === me);
  call(`/api/lobbies/${code}/ready/`, { ready: !(mine && mine.ready) });
});
$("#start").addEventListener("click", () => call(`/api/lobbies/${code}/start/`));
$("#queue-party").addEventListener("click", async () => {
  errorBox.hidden = true;
  try {
    const ticket = await api.post("/api/matchmaking/tickets/", { game: lobby.game, lobby: code });
    rememberTicket(ticket, gameName(lobby.game));
    followSearch(ticket);
  } catch (error) {
    showError(errorBox, error);
  }
});
$("#join-lobby").addEventListener("click", async () => {
  errorBox.hidden = true;
  try {
    render(await api.post(`/api/lobbies/${code}/join/`));
    connect();
  } catch (error) {
    showError(errorBox, error);
  }
});
$("#leave-lobby").addEventListener("click", async () => {
  errorBox.hidden = true;
  try {
    await api.post(`/api/lobbies/${code}/leave/`);
  } catch (error) {
    // Already out (kicked, or the lobby closed) is what leaving wanted; anything else (offline) keeps the player here.
    if (error.code !== "not_a_member" && error.code !== "lobby_not_found") {
      showError(errorBox, error.status ? error : "Could not reach the server: you are still in the lobby. Try again.");
      return;
    }
  }
  window.location.assign("/lobbies/");
});

// The party's search, as the queue bar hears it (queuebar.js); it takes everyone to the match once one is found.
function followSearch(ticket) {
  const ours = ticket && ticket.status === "searching" && ticket.party.length > 1 && ticket.party.some((p) => p.id === me);
  partySearch = ours ? ticket : null;
  if (lobby) render(lobby);
}
window.addEventListener("gs:ticket", (event) => followSearch(event.detail));

load();
