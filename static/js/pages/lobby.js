// Lobby room: members and their ready state, chat, start (host), live over ws/lobbies/<code>/; everyone moves to
// the match page when the match starts.

import { ApiClient, LiveSocket, websocketSupported } from "../gsclient.js";
import { $, clear, el, showError } from "./ui.js";

const root = $("#lobby");
const code = root.dataset.code;
const me = Number(root.dataset.userId);
const api = new ApiClient();
const errorBox = $("#lobby-error");
let lobby = null;

function render(next) {
  lobby = next;
  root.dataset.status = lobby.status;
  $("#lobby-game").textContent = lobby.game;
  $("#lobby-visibility").textContent = lobby.public ? "public" : "private";
  $("#lobby-count").textContent = `${lobby.members.length}/${lobby.size}`;
  const list = $("#members");
  clear(list);
  const amHost = lobby.host && lobby.host.id === me;
  for (const member of lobby.members) {
    const item = el("li", {}, el("span", { className: "name" }, member.username));
    item.dataset.userId = member.id;
    // The host starts the match rather than readying up.
    if (member.host) item.append(el("span", { className: "tag" }, "host"));
    else item.append(el("span", { className: member.ready ? "tag ready" : "tag" }, member.ready ? "ready" : "not ready"));
    if (amHost && member.id !== me && lobby.status === "open") {
      const kick = el("button", { type: "button", className: "link" }, "kick");
      kick.addEventListener("click", () => call(`/api/lobbies/${code}/kick/`, { user_id: member.id }));
      item.append(kick);
    }
    list.append(item);
  }
  const mine = lobby.members.find((m) => m.id === me);
  const open = lobby.status === "open";
  $("#ready").hidden = !open || amHost;
  $("#ready").textContent = mine && mine.ready ? "Not ready" : "Ready";
  $("#start").hidden = !open || !amHost;
  $("#start").disabled = lobby.members.some((m) => !m.ready && m.id !== me);
  $("#in-match").hidden = lobby.status !== "in_match" || !lobby.match;
  if (lobby.match) $("#match-link").href = `/matches/${lobby.match.id}/`;
  $("#rematch").hidden = lobby.status !== "in_match" || !amHost;
}

async function call(path, body = {}) {
  errorBox.hidden = true;
  try {
    render(await api.post(path, body));
  } catch (error) {
    showError(errorBox, error);
  }
}

function chatLine(message) {
  const log = $("#chat-log");
  log.append(el("li", {}, el("b", {}, message.user.username), " ", message.text));
  log.scrollTop = log.scrollHeight;
}

$("#ready").addEventListener("click", () => {
  const mine = lobby.members.find((m) => m.id === me);
  call(`/api/lobbies/${code}/ready/`, { ready: !(mine && mine.ready) });
});
$("#start").addEventListener("click", () => call(`/api/lobbies/${code}/start/`));
$("#rematch").addEventListener("click", () => call(`/api/lobbies/${code}/rematch/`));
$("#leave-lobby").addEventListener("click", async () => {
  try {
    await api.post(`/api/lobbies/${code}/leave/`);
  } finally {
    window.location.assign("/lobbies/");
  }
});

if (!websocketSupported()) {
  showError(errorBox, "This browser cannot open WebSocket connections: the room will not update live.");
  api.get(`/api/lobbies/${code}/`).then(render, (error) => showError(errorBox, error));
} else {
  const socket = new LiveSocket(`/ws/lobbies/${code}/`, { api });
  socket.on("message", (message) => {
    if (message.type === "lobby.state") render(message.lobby);
    else if (message.type === "lobby.update") {
      render(message.lobby);
      if (message.event === "started" && message.match) window.location.assign(`/matches/${message.match.id}/`);
    } else if (message.type === "lobby.chat") chatLine(message);
    else if (message.type === "error") showError(errorBox, message);
  });
  socket.on("state", (state, closeCode, message) => {
    const status = $("#lobby-conn");
    status.textContent = state === "open" ? "" : state === "reconnecting" ? "Reconnecting…" : "";
    if (state !== "closed") return;
    if (closeCode === 4004) status.textContent = "This lobby is closed.";
    else if (closeCode === 4012 || closeCode === 4001) status.textContent = message;
    else if (closeCode === 4003 && lobby === null) $("#join-lobby").hidden = false; // followed a link: not in it yet
    else status.textContent = "You are no longer in this lobby.";
  });
  $("#join-lobby").addEventListener("click", async () => {
    try {
      await api.post(`/api/lobbies/${code}/join/`);
      window.location.reload();
    } catch (error) {
      showError(errorBox, error);
    }
  });
  socket.connect();
  $("#chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("#chat-text");
    if (input.value.trim() && socket.send({ type: "chat", text: input.value })) input.value = "";
  });
}
