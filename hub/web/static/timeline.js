// The timeline reloads itself every few seconds (htmx). Entries a caseworker opened stay
// open, and the one in focus keeps the focus, so reading or tabbing is not interrupted.
(function () {
  let open = [];
  let focused = null;
  document.addEventListener("htmx:beforeSwap", function (event) {
    const target = event.detail.target;
    if (target.id !== "entries") return;
    open = Array.from(target.querySelectorAll("li.entry details[open]"), function (d) {
      return d.closest("li").dataset.id;
    });
    const active = document.activeElement;
    const entry = active && target.contains(active) ? active.closest("li.entry") : null;
    focused = entry ? entry.dataset.id : null;
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    const target = event.detail.target;
    if (target.id !== "entries") return;
    open.forEach(function (id) {
      const details = target.querySelector('li.entry[data-id="' + id + '"] details');
      if (details) details.open = true;
    });
    if (focused) {
      const summary = target.querySelector('li.entry[data-id="' + focused + '"] summary');
      if (summary) summary.focus();
    }
  });
})();
