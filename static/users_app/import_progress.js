// Polls the import run's progress every second until it has finished, then shows its summary.
"use strict";
(function () {
  const root = document.getElementById("import-progress");
  if (!root || root.dataset.finished === "true") {
    return;
  }
  const bar = document.getElementById("import-progress-bar");
  const summary = document.getElementById("import-summary");

  function show(progress) {
    bar.value = progress.percent;
    bar.textContent = progress.percent + "%";
    document.getElementById("import-status").textContent = progress.status_display;
    for (const cell of document.querySelectorAll("[data-field]")) {
      cell.textContent = progress[cell.dataset.field];
    }
    if (progress.finished) {
      document.getElementById("import-error").hidden = !progress.error;
      summary.dataset.status = progress.status;
      summary.hidden = false;
    }
  }

  async function poll() {
    try {
      const response = await fetch(root.dataset.url, { headers: { Accept: "application/json" } });
      if (response.ok) {
        const progress = await response.json();
        show(progress);
        if (progress.finished) {
          return;
        }
      }
    } catch (error) {
      // A dropped connection or a restarting server: try again at the next tick.
    }
    setTimeout(poll, 1000);
  }

  setTimeout(poll, 1000);
})();
