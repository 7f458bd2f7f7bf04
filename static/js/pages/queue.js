// The matchmaking ticket this browser queued, remembered in localStorage so that every page (and every tab) knows
// to show the queue bar, and so that coming back can say what became of it. The server stays the truth: pages only
// use this to know which ticket to ask about.

const KEY = "gs.queue";

/** {id, game, name} of the searching ticket, or null. */
export function rememberedTicket() {
  try {
    const value = JSON.parse(localStorage.getItem(KEY));
    return value && Number.isInteger(value.id) ? value : null;
  } catch {
    return null;
  }
}

export function rememberTicket(ticket, name) {
  localStorage.setItem(KEY, JSON.stringify({ id: ticket.id, game: ticket.game, name: name || gameName(ticket.game) }));
}

export function forgetTicket() {
  localStorage.removeItem(KEY);
}

let names = null;

/** A game's display name ("Connect Four"), from the names every page carries (base.html's #game-names). */
export function gameName(slug) {
  if (names === null) {
    const node = document.getElementById("game-names");
    names = node ? JSON.parse(node.textContent) : {};
  }
  return names[slug] || slug.charAt(0).toUpperCase() + slug.slice(1).replaceAll("_", " ");
}

// A match found this recently still waits for its players (MATCH_JOIN_TIMEOUT_SECONDS is 60 by default).
const FRESH_MATCH_MS = 30_000;

/** True for a ticket matched moments ago (found while the player went from page to page): go to that match. */
export function justMatched(ticket) {
  const endedAt = Date.parse(ticket.created_at) + ticket.waited_seconds * 1000;
  return ticket.status === "matched" && Boolean(ticket.match) && Date.now() - endedAt < FRESH_MATCH_MS;
}

/** What to tell a player who comes back to find their ticket no longer searching; null when nothing is worth saying. */
export function whileAway(ticket, name) {
  if (ticket.status === "cancelled") {
    return `Your search for a ${name} match stopped because you left the site. Press Play now to search again.`;
  }
  if (ticket.status === "expired") return `No ${name} match was found in time. Try again?`;
  return null;
}

// Several things on a page may learn of the same match at once (the lobby's "started", the announcement, the ticket):
// the first goes there, the others do nothing, so that no navigation interrupts another.
let goingTo = null;

export function goToMatch(matchId) {
  const url = `/matches/${matchId}/`;
  if (goingTo === url || window.location.pathname === url) return;
  goingTo = url;
  window.location.assign(url);
}
