/* pipecast graph viewer: zoom (wheel, buttons, + - 0 keys), pan (drag) and a settings panel
 * on click. No library, no network: everything it shows comes from the JSON in the page. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("pc-data").textContent);
  var stage = document.getElementById("pc-stage");
  var svg = document.getElementById("pc-graph");
  var panel = document.getElementById("pc-panel");
  var view = { k: 1, x: 0, y: 0 };
  var W = svg.viewBox.baseVal.width, H = svg.viewBox.baseVal.height;

  function apply() {
    svg.style.transformOrigin = "0 0";
    svg.style.transform = "translate(" + view.x + "px," + view.y + "px) scale(" + view.k + ")";
    stage.setAttribute("data-zoom", view.k.toFixed(3));
  }
  function zoomAt(factor, px, py) {
    var k = Math.min(6, Math.max(0.1, view.k * factor));
    factor = k / view.k;
    view.x = px - (px - view.x) * factor;
    view.y = py - (py - view.y) * factor;
    view.k = k;
    apply();
  }
  function fit() {
    var r = stage.getBoundingClientRect();
    var k = Math.min(1.5, Math.min((r.width - 24) / W, (r.height - 24) / H));
    view.k = k > 0 ? k : 1;
    view.x = (r.width - W * view.k) / 2;
    view.y = Math.max(12, (r.height - H * view.k) / 2);
    apply();
  }
  function center() { var r = stage.getBoundingClientRect(); return [r.width / 2, r.height / 2]; }

  stage.addEventListener("wheel", function (ev) {
    ev.preventDefault();
    var r = stage.getBoundingClientRect();
    zoomAt(Math.exp(-ev.deltaY * 0.0015), ev.clientX - r.left, ev.clientY - r.top);
  }, { passive: false });

  var drag = null;
  stage.addEventListener("pointerdown", function (ev) {
    if (ev.button !== 0 || ev.target.closest(".pc-toolbar")) return;
    drag = { x: ev.clientX, y: ev.clientY, vx: view.x, vy: view.y, moved: false };
  });
  window.addEventListener("pointermove", function (ev) {
    if (!drag) return;
    var dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (!drag.moved && Math.abs(dx) + Math.abs(dy) < 4) return;
    drag.moved = true;
    stage.classList.add("dragging");
    view.x = drag.vx + dx; view.y = drag.vy + dy; apply();
  });
  window.addEventListener("pointerup", function () {
    if (drag && drag.moved) { stage.setAttribute("data-panned", "1"); }
    stage.classList.remove("dragging");
    setTimeout(function () { drag = null; }, 0);
  });

  document.getElementById("pc-zoom-in").addEventListener("click", function () { var c = center(); zoomAt(1.25, c[0], c[1]); });
  document.getElementById("pc-zoom-out").addEventListener("click", function () { var c = center(); zoomAt(0.8, c[0], c[1]); });
  document.getElementById("pc-fit").addEventListener("click", fit);
  document.addEventListener("keydown", function (ev) {
    if (ev.target && /INPUT|TEXTAREA/.test(ev.target.tagName)) return;
    var c = center();
    if (ev.key === "+" || ev.key === "=") zoomAt(1.25, c[0], c[1]);
    else if (ev.key === "-") zoomAt(0.8, c[0], c[1]);
    else if (ev.key === "0") fit();
  });

  function text(tag, value, cls) {
    var el = document.createElement(tag);
    if (cls) el.className = cls;
    el.textContent = value;
    return el;
  }
  function show(value) {
    if (value === null || value === undefined) return "-";
    if (typeof value === "string") return value;
    return JSON.stringify(value, null, 1);
  }
  function select(id) {
    var item = data.items[id];
    if (!item) return;
    var prev = svg.querySelectorAll(".selected");
    for (var i = 0; i < prev.length; i++) prev[i].classList.remove("selected");
    var el = svg.querySelector('[data-id="' + id + '"]');
    if (el) el.classList.add("selected");
    panel.textContent = "";
    panel.setAttribute("data-selected", item.name);
    var h = text("h2", item.name);
    panel.appendChild(h);
    panel.appendChild(text("p", item.kind, "hint"));
    var dl = document.createElement("dl");
    var keys = Object.keys(item.settings);
    for (var j = 0; j < keys.length; j++) {
      dl.appendChild(text("dt", keys[j]));
      dl.appendChild(text("dd", show(item.settings[keys[j]])));
    }
    panel.appendChild(dl);
    if (typeof window.pcSelected === "function") window.pcSelected(id, item, panel);
  }
  svg.addEventListener("click", function (ev) {
    if (drag && drag.moved) return;
    var g = ev.target.closest(".pc-node, .pc-cluster");
    if (g) select(g.getAttribute("data-id"));
  });
  svg.addEventListener("keydown", function (ev) {
    if (ev.key !== "Enter") return;
    var g = ev.target.closest(".pc-node, .pc-cluster");
    if (g) select(g.getAttribute("data-id"));
  });
  window.pipecastGraph = { select: select, fit: fit, zoom: function () { return view.k; } };
  fit();
})();
