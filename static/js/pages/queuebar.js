// The queue bar in the header of every page but home (which shows the queue itself): while this browser has a
// searching ticket it shows the game, the time waited and Cancel, goes to the match when one is found, and its
// matchmaking socket keeps the ticket (lobby/presence.py: a ticket stops a few seconds after its last socket closed).

import { ApiClient, LiveSocket, websocketSupported } from "../gsclient.js";
import { forgetTicket, justMatched, rememberedTicket } from "./queue.js";
import { $, formatSeconds } from "./ui.js";

const bar = $("#queue-bar");
const api = new ApiClient();
let socket = null;
let ticket = null;
let seenAt = 0;

function follow() {
  if (socket || !rememberedTicket() || !websocketSupported()) return;
  socket = new LiveSocket("/ws/matchmaking/", { api });
  socket.on("message", (message) => {
    if (message.type === "matchmaking.state" && message.ticket === null) lookBack();
    else if (message.type === "matchmaking.state" || message.type === "ticket.update") show(message.ticket);
  });
  socket.connect();
}

function stop() {
  bar.hidden = true;
  ticket = null;
  if (socket) socket.close();
  socket = null;
}

function show(next) {
  if (next.status === "matched" && next.match) {
    forgetTicket();
    window.location.assign(`/matches/${next.match.id}/`);
    return;
  }
  if (next.status !== "searching") {
    forgetTicket(); // cancelled (here, or in another tab) or expired while this page watched
    stop();
    return;
  }
  ticket = next;
  seenAt = performance.now();
  const remembered = rememberedTicket();
  $("#queue-bar-game").textContent = remembered && remembered.id === next.id ? remembered.name : next.game;
  bar.hidden = false;
  tickTimer();
}

// No searching ticket any more, but this browser queued one: matched while the player went from page to page (the
// socket of the next page only hears of searching tickets)? Then go there; anything else ends the bar.
async function lookBack() {
  const remembered = rememberedTicket();
  let last = null;
  if (remembered) {
    try {
      last = await api.get(`/api/matchmaking/tickets/${remembered.id}/`);
    } catch {
      last = null;
    }
  }
  if (last && justMatched(last)) show(last);
  else if (last && last.status === "searching") show(last);
  else {
    // Home tells a player who left what became of the ticket; other pages just stop showing it.
    if (!last || last.status === "matched") forgetTicket();
    stop();
  }
}

function tickTimer() {
  if (ticket) $("#queue-bar-timer").textContent = formatSeconds(ticket.waited_seconds + (performance.now() - seenAt) / 1000);
}

if (bar && !$("#play-now")) {
  $("#queue-bar-cancel").addEventListener("click", async () => {
    if (!ticket) return;
    try {
      show(await api.delete(`/api/matchmaking/tickets/${ticket.id}/`));
    } catch {
      // Matched in the meantime (409): the socket's update takes the player there.
    }
  });
  setInterval(tickTimer, 250);
  // Queued in another tab of this site: follow it here too.
  window.addEventListener("storage", (event) => {
    if (event.key === "gs.queue") follow();
  });
  follow();
}
