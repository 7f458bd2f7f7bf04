// The header's menu on narrow screens (static/css/site.css, "Header"): the nav folds behind a Menu button. Without
// this script the nav is never folded, only wrapped, so every link stays reachable.
(() => {
  const bar = document.querySelector(".topbar");
  const button = bar && bar.querySelector(".menu-toggle");
  if (!button) return;
  const setOpen = (open) => {
    bar.classList.toggle("open", open);
    button.setAttribute("aria-expanded", String(open));
  };
  bar.classList.add("foldable");
  button.hidden = false;
  button.addEventListener("click", () => setOpen(!bar.classList.contains("open")));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && bar.classList.contains("open")) {
      setOpen(false);
      button.focus();
    }
  });
  // A tap anywhere else closes it, as menus on phones do.
  document.addEventListener("click", (event) => {
    if (bar.classList.contains("open") && !bar.contains(event.target)) setOpen(false);
  });
})();
