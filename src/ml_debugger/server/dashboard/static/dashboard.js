// ml-debugger dashboard: draws the figures the server built, wires filters and shows request errors.
// No inline scripts (the pages' Content-Security-Policy forbids them); htmx does the requests.
"use strict";

const PLOT_CONFIG = {displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d"]};

function drawFigures(root) {
  root.querySelectorAll("[data-figure]").forEach((element) => {
    if (element.dataset.drawn || typeof Plotly === "undefined") return;
    const spec = JSON.parse(document.getElementById(element.dataset.figure).textContent);
    element.dataset.drawn = "pending";
    Plotly.newPlot(element, spec.data, spec.layout, PLOT_CONFIG).then(() => {
      element.dataset.drawn = "1";
      const filters = (spec.layout.meta || {}).filters;
      if (filters) element.on("plotly_click", (event) => filterFromCell(filters, event.points[0]));
    });
  });
}

const FOCUS_FILTERS = ["category", "code", "label", "prediction", "cluster"];

// Show the samples a click points at: clear the focus filters, set `values` (name -> value), reload the table.
function applyFilters(values) {
  const form = document.getElementById("sample-filters");
  if (!form) return;
  form.querySelectorAll("[data-column-filter]").forEach((chip) => chip.remove());
  const wanted = Object.fromEntries(FOCUS_FILTERS.map((name) => [name, ""]));
  for (const [name, value] of Object.entries({...wanted, ...values})) {
    const text = value === null || value === undefined ? "" : String(value);
    if (name.startsWith("f.")) {  // a filter on any column: a hidden field
      const input = Object.assign(document.createElement("input"), {type: "hidden", name: name, value: text});
      input.dataset.columnFilter = name;
      form.appendChild(input);
      continue;
    }
    const field = form.elements[name];
    if (!field) continue;
    if (field.tagName === "SELECT" && ![...field.options].some((o) => o.value === text)) continue;
    field.value = text;
  }
  htmx.trigger(form, "change");
  document.getElementById("samples").scrollIntoView({behavior: "smooth"});
}

function filterFromCell(filters, point) {
  const values = {};
  if (filters.y) values[filters.y] = point.y;
  if (filters.x) values[filters.x] = point.x;
  if (Object.keys(values).length) applyFilters(values);
}

function showError(message) {
  const flash = document.getElementById("flash");
  flash.textContent = message;
  flash.hidden = false;
  setTimeout(() => { flash.hidden = true; }, 8000);
}

document.addEventListener("DOMContentLoaded", () => {
  drawFigures(document);
  document.querySelectorAll("select[data-autosubmit]").forEach((select) => {
    select.addEventListener("change", () => select.form.submit());
  });
  document.body.addEventListener("click", (event) => {
    const link = event.target.closest("[data-filter]");
    if (!link) return;
    event.preventDefault();
    applyFilters(JSON.parse(link.dataset.filter));
  });
  document.body.addEventListener("htmx:afterSwap", (event) => drawFigures(event.target));
  document.body.addEventListener("htmx:responseError", (event) => {
    let message = `request failed (${event.detail.xhr.status})`;
    try {
      message = JSON.parse(event.detail.xhr.responseText).error.message;
    } catch (error) { /* not a JSON error: keep the status */ }
    showError(message);
  });
});
