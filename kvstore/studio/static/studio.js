// kvstore studio: the little the pages need beyond HTML. No inline script anywhere (the
// Content-Security-Policy forbids it), no build step, no dependency.
"use strict";

(function () {
  // -- the waterfall: a click on a span shows its attributes and events ----------------------
  let selectedSpanId = null;

  function showSpan(root, spanId) {
    let shown = false;
    root.querySelectorAll(".span-detail").forEach(function (section) {
      const match = section.dataset.spanId === spanId;
      section.hidden = !match;
      shown = shown || match;
    });
    root.querySelectorAll(".wf-row").forEach(function (row) {
      row.classList.toggle("selected", row.dataset.spanId === spanId);
      row.setAttribute("aria-selected", row.dataset.spanId === spanId ? "true" : "false");
    });
    const hint = root.querySelector(".span-details .hint");
    if (hint) hint.hidden = shown;
    return shown;
  }

  document.addEventListener("click", function (event) {
    const row = event.target.closest ? event.target.closest(".wf-row") : null;
    if (!row || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    const root = row.closest("#trace-root");
    if (!root) return;
    event.preventDefault();
    selectedSpanId = row.dataset.spanId;
    if (showSpan(root, selectedSpanId)) {
      history.replaceState(null, "", row.getAttribute("href"));
      const detail = root.querySelector('.span-detail:not([hidden])');
      if (detail && detail.getBoundingClientRect().top > window.innerHeight) {
        detail.scrollIntoView({ block: "nearest" });
      }
    }
  });

  // -- JSON trees: expand or collapse a whole snapshot ----------------------------------------
  document.addEventListener("click", function (event) {
    const button = event.target.closest ? event.target.closest("[data-tree-toggle]") : null;
    if (!button) return;
    const scope = button.closest("section") || document;
    const open = button.dataset.treeToggle === "open";
    scope.querySelectorAll(".json-tree details").forEach(function (node) {
      node.open = open;
    });
  });

  // -- a trace still being written refreshes by itself ----------------------------------------
  function scheduleRefresh() {
    const root = document.getElementById("trace-root");
    if (!root || !root.dataset.refreshMs) return;
    const delay = Math.max(500, parseInt(root.dataset.refreshMs, 10) || 2000);
    window.setTimeout(refresh, delay);
  }

  function refresh() {
    const current = document.getElementById("trace-root");
    if (!current) return;
    const selected = current.querySelector(".wf-row.selected");
    const keep = selectedSpanId || (selected ? selected.dataset.spanId : null);
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("trace-root");
        if (!fresh) throw new Error("no trace in the page");
        const node = document.importNode(fresh, true);
        current.replaceWith(node);
        if (keep) showSpan(node, keep);
        scheduleRefresh();
      })
      .catch(function () {
        window.setTimeout(refresh, 5000); // the store or the server may be back soon
      });
  }

  document.addEventListener("DOMContentLoaded", scheduleRefresh);
})();
