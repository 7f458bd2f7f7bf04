// Renderer loading for the match page: the built-in games' renderers live in games.js; every other game's renderer
// is the module static/js/renderers/<slug>.js (its default export), loaded by the game's slug and completed with
// defaults. A game whose renderer is missing or broken gets the generic view of the raw state, so its match stays
// open and playable by whoever can. The interface is documented in docs/games.md ("The renderer").

import { GAMES, seatColour } from "./games.js";

const SLUG = /^[a-z][a-z0-9_-]{0,39}$/;

/** The generic view: the raw snapshot state as text, and no controls (nothing is sent). */
export const generic = {
  generic: true,
  width: 800,
  height: 600,
  draw(ctx, state, { slug }) {
    ctx.canvas.dataset.view = "generic"; // for tests and for anyone wondering why the game looks like this
    ctx.fillStyle = "#10172a";
    ctx.fillRect(0, 0, this.width, this.height);
    ctx.fillStyle = "#e8ecf4";
    ctx.font = "bold 22px system-ui, sans-serif";
    ctx.textAlign = "left";
    ctx.fillText(`${slug || "This game"}: no renderer, showing the raw state`, 20, 36);
    ctx.font = "15px ui-monospace, monospace";
    // One top-level key a line, long values wrapped.
    const lines = [];
    for (const [key, value] of Object.entries(state || {})) {
      const text = `${key}: ${JSON.stringify(value)}`;
      for (let at = 0; at < text.length; at += 86) lines.push((at ? "  " : "") + text.slice(at, at + 86));
    }
    lines.slice(0, 34).forEach((line, i) => ctx.fillText(line, 20, 66 + i * 16));
  },
};

/** Fill the optional members of a renderer module's default export. */
export function complete(renderer, slug) {
  if (!renderer || typeof renderer.draw !== "function") throw new Error(`renderer for ${slug} has no draw()`);
  const draw = renderer.draw;
  return {
    ...renderer,
    slug,
    width: renderer.width || 800,
    height: renderer.height || 600,
    // Extra context for authors' renderers: the seat colours the scoreboard uses, and the slug.
    draw(ctx, view, options) {
      return draw.call(this, ctx, view, { ...options, colour: seatColour, slug });
    },
    interpolate: renderer.interpolate || ((a, b) => b),
    scores:
      renderer.scores ||
      ((state) => (Array.isArray(state.scores) ? state.scores.map((score, seat) => ({ seat, score })) : [])),
    // Without controls (a spectator-only renderer, the generic view) the page sends no inputs.
    controls: renderer.controls || (() => () => null),
    // Prediction is optional: ownFrom returning null turns it off.
    ownFrom: renderer.ownFrom || (() => null),
    stepOwn: renderer.stepOwn || ((own) => own),
  };
}

export async function loadRenderer(slug) {
  if (!SLUG.test(slug)) return complete(generic, slug);
  try {
    const module = await import(`./renderers/${slug}.js`);
    return complete(module.default, slug);
  } catch (error) {
    console.warn(`no renderer for ${slug}, showing the raw state:`, error);
    return complete(generic, slug);
  }
}

/** Make GAMES[slug] exist for every game the server offers (GET /api/games/), before the page connects. */
export async function loadRenderers(api) {
  let slugs = [];
  try {
    slugs = (await api.get("/api/games/")).map((game) => game.slug);
  } catch {
    // The socket's welcome still names the game: without the list, only the built-in renderers are known.
  }
  await Promise.all(
    slugs.filter((slug) => !GAMES[slug]).map(async (slug) => {
      GAMES[slug] = await loadRenderer(slug);
    }),
  );
}
