// Home: "Play now" queues for a game and follows the ticket live (ws/matchmaking/), with a polling fallback,
// until it is matched (go to the match), cancelled or expired. The ticket is remembered for the queue bar of the
// other pages (queuebar.js); coming back after leaving the site while queued says what became of it. The socket also
// announces matches created for the player (announce.js), and a player in a lobby is shown the way back to it.

import { ApiClient, LiveSocket, websocketSupported } from "../gsclient.js";
import { announce } from "./announce.js";
import { forgetTicket, goToMatch, justMatched, rememberTicket, rememberedTicket, whileAway } from "./queue.js";
import { $, formatSeconds, gameOptions, showError } from "./ui.js";

const api = new ApiClient();
const select = $("#play-game");
const playButton = $("#play");
const queue = $("#queue");
const errorBox = $("#play-error");
let ticket = null;
let ticketSeenAt = 0;
let poller = null;

gameOptions(api, select).catch((error) => showError(errorBox, error));

if (!websocketSupported()) {
  showError(errorBox, "This browser cannot open WebSocket connections, which live games need. Please use a current browser.");
  playButton.disabled = true;
} else {
  const socket = new LiveSocket("/ws/matchmaking/", { api });
  socket.on("message", (message) => {
    if (message.type === "matchmaking.state" && message.ticket === null) comeBack();
    if (message.type === "matchmaking.state" || message.type === "ticket.update") show(message.ticket);
    if (message.type === "match.created") announce(message);
  });
  socket.on("state", (state, code, text) => {
    if (state === "closed") showError(errorBox, text);
  });
  socket.connect();
}

// In a lobby, Play now would be refused (queue the lobby from its page instead): say where the lobby is.
async function showMyLobby() {
  let mine = null;
  try {
    mine = (await api.get("/api/lobbies/mine/")).lobby;
  } catch {
    return;
  }
  $("#my-lobby").hidden = !mine;
  if (!mine) return;
  $("#my-lobby-link").href = `/lobbies/${mine.code}/`;
  $("#my-lobby-link").textContent = `lobby ${mine.code}`;
}

$("#my-lobby-leave").addEventListener("click", async () => {
  const code = $("#my-lobby-link").href.split("/").filter(Boolean).pop();
  try {
    await api.post(`/api/lobbies/${code}/leave/`);
  } catch (error) {
    if (error.code !== "not_a_member" && error.code !== "lobby_not_found") {
      showError(errorBox, error);
      return;
    }
  }
  $("#my-lobby").hidden = true;
});
showMyLobby();

playButton.addEventListener("click", async () => {
  errorBox.hidden = true;
  $("#away").hidden = true;
  playButton.disabled = true;
  try {
    show(await api.post("/api/matchmaking/tickets/", { game: select.value }));
  } catch (error) {
    showError(errorBox, error);
    playButton.disabled = false;
  }
});

$("#cancel").addEventListener("click", async () => {
  if (!ticket) return;
  try {
    show(await api.delete(`/api/matchmaking/tickets/${ticket.id}/`));
  } catch (error) {
    // Matched in the meantime (409): the refresh shows where to go.
    showError(errorBox, error);
    refresh();
  }
});

function show(next) {
  // A ticket never goes back to searching: such an answer is a poll that left before a cancel or a match.
  if (next && ticket && next.id === ticket.id && next.status === "searching" && ticket.status !== "searching") return;
  ticket = next;
  ticketSeenAt = performance.now();
  const searching = ticket !== null && ticket.status === "searching";
  queue.hidden = !searching;
  playButton.disabled = searching;
  clearInterval(poller);
  if (searching) {
    select.value = ticket.game;
    const name = select.selectedOptions[0] ? select.selectedOptions[0].textContent : ticket.game;
    $("#queue-game").textContent = name;
    rememberTicket(ticket, name);
    const estimate = ticket.estimated_wait_seconds;
    $("#queue-estimate").textContent = estimate === null ? "unknown" : `about ${formatSeconds(estimate)}`;
    poller = setInterval(refresh, 3000);
  } else if (ticket && ticket.status === "matched" && ticket.match) {
    forgetTicket();
    $("#queue-status").textContent = "Match found!";
    goToMatch(ticket.match.id);
  } else if (ticket && ticket.status === "expired") {
    forgetTicket();
    showError(errorBox, "No match was found in time. Try again?");
  } else if (ticket) {
    forgetTicket();
  }
}

// The server has no searching ticket for us, but this browser queued one: say what became of it (the player left
// the site and it was cancelled, it expired, or a match was found meanwhile).
async function comeBack() {
  const remembered = rememberedTicket();
  if (!remembered) return;
  forgetTicket();
  let last;
  try {
    last = await api.get(`/api/matchmaking/tickets/${remembered.id}/`);
  } catch {
    return; // not ours any more (another account on this browser) or the server is away: nothing true to say
  }
  if (justMatched(last)) {
    show(last);
    return;
  }
  if (last.status === "matched" && last.match) {
    $("#away-text").textContent = `A ${remembered.name} match was found while you were away.`;
    $("#away-match").href = `/matches/${last.match.id}/`;
    $("#away-match").hidden = false;
    $("#away").hidden = false;
    return;
  }
  const text = whileAway(last, remembered.name);
  if (text) {
    $("#away-text").textContent = text;
    $("#away").hidden = false;
  }
}

async function refresh() {
  if (!ticket) return;
  try {
    show(await api.get(`/api/matchmaking/tickets/${ticket.id}/`));
  } catch {
    // the socket or the next poll will tell
  }
}

// The queue timer counts locally from the server's waited_seconds, so it runs smoothly between updates.
setInterval(() => {
  if (ticket && ticket.status === "searching") {
    $("#queue-timer").textContent = formatSeconds(ticket.waited_seconds + (performance.now() - ticketSeenAt) / 1000);
  }
}, 250);
