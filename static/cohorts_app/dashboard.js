// The audience dashboard: fetch /api/v1/stats/ with the staff session and draw one Chart.js chart per statistic.
"use strict";

(function () {
  const root = document.getElementById("dashboard");
  const summary = document.getElementById("dashboard-summary");
  const errorBox = document.getElementById("dashboard-error");
  const segmentSelect = document.getElementById("dashboard-segment");
  const numbers = new Intl.NumberFormat();

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  // Chart.js reads colours once, so take them from the admin theme (light or dark) before drawing.
  function themeCharts() {
    Chart.defaults.color = cssVar("--body-fg");
    Chart.defaults.borderColor = cssVar("--hairline-color");
    Chart.defaults.font.family = cssVar("--font-family-primary") || Chart.defaults.font.family;
    Chart.defaults.maintainAspectRatio = false;
  }

  // Several series or slices: the admin's own colours first, then distinct ones that read on light and dark.
  function palette(count) {
    const colors = [cssVar("--link-fg"), cssVar("--accent"), "#c25b56", "#6a9f58", "#8e6fb8", "#d08a3c",
      cssVar("--secondary"), "#8c8c8c"];
    return Array.from({ length: count }, (_, index) => colors[index % colors.length]);
  }

  function draw(canvasId, config) {
    const canvas = document.getElementById(canvasId);
    new Chart(canvas, config);
    canvas.dataset.drawn = "true";
  }

  function barChart(items, { horizontal = false, color = cssVar("--link-fg") } = {}) {
    return {
      type: "bar",
      data: {
        labels: items.map((item) => item.label),
        datasets: [{ label: "Profiles", data: items.map((item) => item.count), backgroundColor: color }],
      },
      options: {
        indexAxis: horizontal ? "y" : "x",
        plugins: { legend: { display: false } },
        scales: { [horizontal ? "y" : "x"]: { ticks: { autoSkip: false } } },
      },
    };
  }

  // Points start on a date (YYYY-MM-DD); a month reads as YYYY-MM and a year as YYYY.
  function periodLabel(start, period) {
    return { month: start.slice(0, 7), year: start.slice(0, 4) }[period] || start;
  }

  function drawAll(stats) {
    themeCharts();
    draw("chart-countries", barChart(stats.countries, { horizontal: true }));
    draw("chart-ages", barChart(stats.ages));
    draw("chart-genders", {
      type: "doughnut",
      data: {
        labels: stats.genders.map((item) => item.label),
        datasets: [
          {
            label: "Profiles",
            data: stats.genders.map((item) => item.count),
            backgroundColor: palette(stats.genders.length),
          },
        ],
      },
    });
    draw("chart-interests", barChart(stats.interests, { horizontal: true, color: cssVar("--secondary") }));
    draw("chart-income", barChart(stats.income));
    draw("chart-income-by-gender", {
      type: "bar",
      data: {
        labels: stats.income_by_gender.brackets,
        datasets: stats.income_by_gender.genders.map((series, index, all) => ({
          label: series.label,
          data: series.counts,
          backgroundColor: palette(all.length)[index],
        })),
      },
      options: { scales: { x: { stacked: true, ticks: { autoSkip: false } }, y: { stacked: true } } },
    });
    const period = stats.new_profiles.period;
    document.getElementById("heading-new-profiles").textContent = `New profiles per ${period} (by first seen)`;
    draw("chart-new-profiles", {
      type: "line",
      data: {
        labels: stats.new_profiles.points.map((point) => periodLabel(point.start, period)),
        datasets: [
          {
            label: `New profiles per ${period}`,
            data: stats.new_profiles.points.map((point) => point.count),
            borderColor: cssVar("--link-fg"),
            backgroundColor: cssVar("--primary"),
            fill: true,
          },
        ],
      },
      options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true } } },
    });
  }

  function showSummary(stats) {
    const total = document.createElement("strong");
    total.textContent = numbers.format(stats.total);
    const scope = stats.segment ? ` profiles in segment “${stats.segment.name}”` : " profiles (all profiles)";
    summary.replaceChildren(total, document.createTextNode(scope));
  }

  // A DRF error body is {"detail": "..."} or {"field": ["message", ...]}: say it in one line.
  function errorText(body) {
    if (body && typeof body.detail === "string") return body.detail;
    if (body && typeof body === "object") {
      return Object.entries(body)
        .map(([field, messages]) => `${field}: ${[].concat(messages).join(" ")}`)
        .join("; ");
    }
    return "";
  }

  async function load() {
    let response;
    try {
      response = await fetch(root.dataset.statsUrl, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
    } catch (error) {
      throw new Error("the server could not be reached. Check the connection and reload the page.");
    }
    if (!response.ok) {
      const detail = errorText(await response.json().catch(() => null));
      throw new Error(`${detail || response.statusText} (HTTP ${response.status}).`);
    }
    return response.json();
  }

  segmentSelect.addEventListener("change", () => segmentSelect.form.submit());

  load()
    .then((stats) => {
      showSummary(stats);
      drawAll(stats);
    })
    .catch((error) => {
      summary.textContent = "";
      errorBox.textContent = `Could not load the statistics: ${error.message}`;
      errorBox.hidden = false;
    });
})();
