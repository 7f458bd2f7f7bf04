// The player's own socket (ws/matchmaking/) on every page but home (which opens its own): it announces matches
// created for the player (announce.js) and drives the queue bar in the header, which, while the player or their
// lobby's party has a searching ticket, shows the game, the time waited and Cancel, and goes to the match when one is
// found. The open socket also keeps the ticket (lobby/presence.py: a ticket stops a few seconds after its last socket
// closed). Pages hear of the ticket through a "gs:ticket" window event (the lobby page follows its party's search).

import { ApiClient, LiveSocket, websocketSupported } from "../gsclient.js";
import { announce } from "./announce.js";
import { forgetTicket, gameName, goToMatch, justMatched, rememberedTicket } from "./queue.js";
import { $, formatSeconds } from "./ui.js";

const bar = $("#queue-bar");
const api = new ApiClient();
let ticket = null;
let seenAt = 0;

function follow() {
  const socket = new LiveSocket("/ws/matchmaking/", { api });
  socket.on("message", (message) => {
    if (message.type === "matchmaking.state" && message.ticket === null) lookBack();
    else if (message.type === "matchmaking.state" || message.type === "ticket.update") show(message.ticket);
    else if (message.type === "match.created") announce(message);
  });
  socket.connect();
}

function tell(next) {
  window.dispatchEvent(new CustomEvent("gs:ticket", { detail: next }));
}

function stop() {
  bar.hidden = true;
  ticket = null;
}

function show(next) {
  tell(next);
  if (next.status === "matched" && next.match) {
    forgetTicket();
    goToMatch(next.match.id);
    return;
  }
  if (next.status !== "searching") {
    if (ticket === null || ticket.id === next.id) {
      forgetTicket(); // cancelled (here, by a party member, or in another tab) or expired while this page watched
      stop();
    }
    return;
  }
  ticket = next;
  seenAt = performance.now();
  const remembered = rememberedTicket();
  $("#queue-bar-game").textContent = remembered && remembered.id === next.id ? remembered.name : gameName(next.game);
  bar.hidden = false;
  tickTimer();
}

// No searching ticket any more, but this browser queued one: matched while the player went from page to page (the
// socket of the next page only hears of searching tickets)? Then go there; anything else ends the bar.
async function lookBack() {
  tell(null);
  const remembered = rememberedTicket();
  if (!remembered) {
    stop();
    return;
  }
  let last = null;
  try {
    last = await api.get(`/api/matchmaking/tickets/${remembered.id}/`);
  } catch {
    last = null;
  }
  if (last && (justMatched(last) || last.status === "searching")) show(last);
  else {
    // Home tells a player who left what became of the ticket; other pages just stop showing it.
    if (!last || last.status === "matched") forgetTicket();
    stop();
  }
}

function tickTimer() {
  if (ticket) $("#queue-bar-timer").textContent = formatSeconds(ticket.waited_seconds + (performance.now() - seenAt) / 1000);
}

if (bar && !$("#play-now") && websocketSupported()) {
  $("#queue-bar-cancel").addEventListener("click", async () => {
    if (!ticket) return;
    try {
      show(await api.delete(`/api/matchmaking/tickets/${ticket.id}/`));
    } catch {
      // Matched in the meantime (409): the socket's update takes the player there.
    }
  });
  setInterval(tickTimer, 250);
  follow();
}
