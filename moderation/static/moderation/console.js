// Riff moderation console: keyboard shortcuts and the inline confirmation step.
// No framework: the pages are server-rendered and work without this file (the server then
// asks for the confirmation on a page of its own).
"use strict";

(function () {
  // --- confirmation: a form[data-confirm] posts only from its "Confirm" button ------------
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    var box = form.querySelector(".confirm");
    var chosen = form.querySelector("[data-chosen]");
    if (!box) return;
    form.addEventListener("submit", function (event) {
      var by = event.submitter;
      if (by && by.name === "confirm") return; // the second step: let it go
      event.preventDefault();
      if (by && by.hasAttribute("data-needs-selection") &&
          !form.querySelector("input[name=tickets]:checked")) {
        showText(box, "Select tickets first (x, or the boxes on the left).", true);
        box.hidden = false;
        return;
      }
      var needs = by && by.getAttribute("data-needs");
      if (needs) {
        var field = form.querySelector("[name=" + needs + "]");
        if (field && !field.value.trim()) {
          field.setCustomValidity("Required for this action.");
          field.reportValidity();
          field.addEventListener("input", function () { field.setCustomValidity(""); }, { once: true });
          return;
        }
      }
      if (chosen && by && by.name) {
        chosen.name = by.name;
        chosen.value = by.value;
        chosen.disabled = false;
      }
      showText(box, (by && by.getAttribute("data-confirm")) || "Are you sure?", false);
      var button = box.querySelector(".confirm-button");
      if (button && by) button.textContent = "Confirm: " + by.textContent.replace(/…$/, "");
      box.hidden = false;
      if (button) button.focus();
    });
    form.querySelectorAll("[data-cancel]").forEach(function (cancel) {
      cancel.addEventListener("click", function () {
        box.hidden = true;
        if (chosen) chosen.disabled = true;
      });
    });
  });

  function showText(box, text, onlyText) {
    var p = box.querySelector(".confirm-text");
    if (p) p.textContent = text;
    var button = box.querySelector(".confirm-button");
    if (button) button.hidden = onlyText;
  }

  // --- the queue: select-all box --------------------------------------------------------
  var all = document.querySelector("[data-select-all]");
  if (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll("input[name=tickets]").forEach(function (box) {
        box.checked = all.checked;
      });
    });
  }

  // --- keyboard -------------------------------------------------------------------------
  var rows = Array.prototype.slice.call(document.querySelectorAll("#queue tbody tr[data-href]"));
  var current = rows.length ? 0 : -1;
  function select(index) {
    if (!rows.length) return;
    current = Math.max(0, Math.min(rows.length - 1, index));
    rows.forEach(function (row, i) { row.classList.toggle("current", i === current); });
    rows[current].scrollIntoView({ block: "nearest" });
  }
  if (rows.length) select(0);
  rows.forEach(function (row, i) {
    row.addEventListener("click", function (event) {
      if (event.target.closest("a, button, input, label")) return;
      select(i);
      window.location.href = row.getAttribute("data-href");
    });
  });

  function clickKey(key) {
    var target = document.querySelector('[data-key="' + key + '"]');
    if (target) { target.click(); return true; }
    return false;
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var el = event.target;
    if (el.closest && el.closest("input, textarea, select, [contenteditable]")) {
      if (event.key === "Escape") el.blur();
      return;
    }
    var key = event.key;
    if (key === "Enter" && el.closest && el.closest("a, button, video")) return;
    var handled = true;
    if (key === "?") {
      var help = document.getElementById("help");
      help.hidden = !help.hidden;
    } else if (rows.length && key === "j") {
      select(current + 1);
    } else if (rows.length && key === "k") {
      select(current - 1);
    } else if (rows.length && key === "Enter") {
      window.location.href = rows[current].getAttribute("data-href");
    } else if (rows.length && key === "a") {
      var form = document.getElementById(rows[current].getAttribute("data-assign"));
      if (form) form.requestSubmit();
    } else if (rows.length && key === "x") {
      var box = rows[current].querySelector("input[name=tickets]");
      if (box) box.checked = !box.checked;
    } else if (key === "r") {
      var reason = document.querySelector("[data-key-focus=r]");
      if (reason) reason.focus(); else handled = false;
    } else if (key === "p") {
      var video = document.getElementById("player");
      if (video) { if (video.paused) video.play(); else video.pause(); } else handled = false;
    } else if (key === "Escape") {
      document.querySelectorAll(".confirm").forEach(function (box) { box.hidden = true; });
      document.getElementById("help").hidden = true;
    } else {
      handled = clickKey(key);
    }
    if (handled) event.preventDefault();
  });
})();
