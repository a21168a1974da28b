// Draws the cookies-per-profile histogram of the identity clusters page from its json_script data.
"use strict";

(function () {
  const canvas = document.getElementById("chart-cookies-per-profile");
  const source = document.getElementById("cookies-per-profile-data");
  if (!canvas || !source || typeof Chart === "undefined") {
    return;
  }
  const histogram = JSON.parse(source.textContent);
  new Chart(canvas, {
    type: "bar",
    data: {
      labels: histogram.labels,
      datasets: [{ label: "Profiles", data: histogram.profiles, backgroundColor: "#417690" }],
    },
    options: {
      animation: false,
      aspectRatio: 3,
      plugins: { legend: { display: false } },
      scales: {
        x: { title: { display: true, text: "Cookies per profile" } },
        // Logarithmic: one-cookie profiles outnumber the long tail by orders of magnitude. Starting
        // below 1 keeps a bar of one profile visible; only whole numbers of profiles get a label.
        y: {
          type: "logarithmic",
          min: 0.5,
          title: { display: true, text: "Profiles (log scale)" },
          ticks: { callback: (value) => (Number.isInteger(value) ? value.toLocaleString() : "") },
        },
      },
    },
  });
  canvas.dataset.drawn = "true";
})();
