// Announces a match created for the player (a lobby's start, an invitation, an admin's match) on whatever page they
// are on: it arrives as match.created on their own socket, ws/matchmaking/ (queuebar.js, or home.js on home). A lobby
// match takes the player there, as a found matchmaking match does, unless they are playing another match right now;
// an invitation asks Accept or Decline. Matchmaking matches come as ticket.update instead (queuebar.js, home.js).

import { ApiClient } from "../gsclient.js";
import { gameName, goToMatch } from "./queue.js";
import { $, showError } from "./ui.js";

const api = new ApiClient();
const box = $("#match-call");

/** True while this page plays a live match (the match page, seated, before the result). */
function playingHere() {
  const client = window.gsMatch && window.gsMatch.client;
  return Boolean(client && client.seat !== null && client.seat !== undefined && !client.matchEnd);
}

function onMatchPage(matchId) {
  return window.location.pathname === `/matches/${matchId}/`;
}

// The game's display name ("Connect Four"); the slug's best guess while the list cannot be had.
async function displayName(slug) {
  try {
    const game = (await api.get("/api/games/")).find((g) => g.slug === slug);
    if (game) return game.name;
  } catch {
    // offline for a moment
  }
  return gameName(slug);
}

export async function announce(message) {
  const match = message.match;
  if (!box || !match || onMatchPage(match.id)) return;
  const url = `/matches/${match.id}/`;
  if (!message.invited && message.source === "lobby" && !playingHere()) {
    goToMatch(match.id);
    return;
  }
  const others = message.players.filter((p) => !message.invited_by || p.id !== message.invited_by.id);
  const game = await displayName(message.game);
  $("#match-call-text").textContent = message.invited
    ? `${message.invited_by.username} invites you to a ${game} match${others.length > 1 ? ` (${message.players.length} players)` : ""}.`
    : `Your ${game} match is ready.`;
  $("#match-call-go").href = url;
  $("#match-call-go").hidden = message.invited;
  $("#match-call-accept").hidden = !message.invited;
  $("#match-call-decline").hidden = !message.invited;
  $("#match-call-error").hidden = true;
  box.dataset.matchId = match.id;
  box.hidden = false;
}

async function answer(kind) {
  const matchId = box.dataset.matchId;
  try {
    await api.post(`/api/matches/${matchId}/${kind}/`);
  } catch (error) {
    showError($("#match-call-error"), error); // answered already, or the invitation expired: say so
    return;
  }
  if (kind === "accept") goToMatch(matchId);
  else box.hidden = true;
}

if (box) {
  $("#match-call-accept").addEventListener("click", () => answer("accept"));
  $("#match-call-decline").addEventListener("click", () => answer("decline"));
  $("#match-call-close").addEventListener("click", () => {
    box.hidden = true;
  });
}
