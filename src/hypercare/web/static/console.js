// Hypercare console: CSRF header for htmx, live updates (SSE, polling fallback),
// SLA countdowns, messages, and keyboard shortcuts. No build step, no dependencies but htmx.
(function () {
  "use strict";

  var body = document.body;
  var csrfMeta = document.querySelector('meta[name="hc-csrf"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";

  // Every htmx request carries the session's CSRF token.
  document.addEventListener("htmx:configRequest", function (evt) {
    evt.detail.headers["X-CSRF-Token"] = csrf;
  });

  // --- messages -------------------------------------------------------------------------
  var flashArea = document.getElementById("flash");
  function flash(text, kind) {
    if (!flashArea) return;
    var p = document.createElement("p");
    p.className = "flash " + (kind || "ok");
    p.textContent = text;
    flashArea.replaceChildren(p);
    window.setTimeout(function () { if (p.parentNode) p.remove(); }, 8000);
  }
  document.body.addEventListener("hc:flash", function (evt) {
    flash(String(evt.detail.value || ""), "ok");
  });
  // Errors from actions (4xx with a message fragment) go to the message area, the form stays.
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var status = evt.detail.xhr.status;
    if (status >= 400) {
      evt.detail.shouldSwap = false;
      var tmp = document.createElement("div");
      tmp.innerHTML = evt.detail.serverResponse || "";
      var text = (tmp.textContent || "").trim() || "The request failed (" + status + ").";
      var target = evt.detail.target;
      if (target && target.hasAttribute("data-inline-errors")) {
        // a form that answers next to itself (e.g. "Merge into #999": no such issue)
        target.textContent = text;
        target.classList.add("error");
      } else {
        flash(text, "error");
      }
    }
  });
  document.addEventListener("htmx:sendError", function () {
    flash("The console cannot be reached; check your connection and try again.", "error");
  });

  // --- live updates ---------------------------------------------------------------------
  var liveStatus = document.getElementById("live-status");
  function setLive(state, text) {
    if (!liveStatus) return;
    liveStatus.dataset.state = state;
    liveStatus.textContent = text;
  }
  function changed() {
    htmx.trigger(document.body, "hc:changed");
    var stale = document.getElementById("stale");
    if (stale) stale.hidden = false;
  }
  var pollTimer = null;
  function startPolling() {
    if (pollTimer) return;
    var seconds = parseInt(body.dataset.poll || "5", 10) || 5;
    setLive("polling", "Live updates: every " + seconds + " s");
    pollTimer = window.setInterval(function () {
      if (!document.hidden) htmx.trigger(document.body, "hc:changed");
    }, seconds * 1000);
  }
  function startLive() {
    if (!liveStatus) return;
    if (!window.EventSource) { startPolling(); return; }
    var since = body.dataset.marker || "";
    var source = new EventSource("/live" + (since ? "?since=" + encodeURIComponent(since) : ""));
    var failures = 0;
    source.addEventListener("open", function () {
      failures = 0;
      setLive("live", "Live updates: on");
    });
    source.addEventListener("changed", function (evt) {
      body.dataset.marker = evt.data;
      changed();
    });
    source.addEventListener("error", function () {
      failures += 1;
      // the stream ends on purpose every so often and reconnects; give up only when it keeps failing
      if (source.readyState === EventSource.CLOSED || failures > 3) {
        source.close();
        startPolling();
      } else {
        setLive("connecting", "Live updates: reconnecting…");
      }
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  // --- SLA countdowns -------------------------------------------------------------------
  function short(seconds) {
    var s = Math.abs(Math.round(seconds));
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
    var m = Math.floor((s % 3600) / 60), sec = s % 60;
    function two(n) { return n < 10 ? "0" + n : String(n); }
    if (d) return d + "d " + two(h) + "h";
    if (h) return h + "h " + two(m) + "m";
    if (m) return m + "m " + two(sec) + "s";
    return sec + "s";
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-due]").forEach(function (el) {
      var left = (Date.parse(el.dataset.due) - now) / 1000;
      var out = el.querySelector(".countdown");
      if (!out || isNaN(left)) return;
      out.textContent = left > 0 ? short(left) + " left" : "overdue " + short(left);
    });
  }

  // --- keyboard -------------------------------------------------------------------------
  function typing(el) {
    return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  }
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("#queue tbody tr")); }
  function selected() { return document.querySelector("#queue tbody tr.selected"); }
  function select(row) {
    rows().forEach(function (r) { r.classList.remove("selected"); r.removeAttribute("aria-selected"); });
    if (!row) return;
    row.classList.add("selected");
    row.setAttribute("aria-selected", "true");
    row.focus({ preventScroll: false });
  }
  function move(step) {
    var all = rows();
    if (!all.length) return;
    var i = all.indexOf(selected());
    select(all[Math.max(0, Math.min(all.length - 1, i + step))] || all[0]);
  }
  function act(key) {
    var row = selected();
    if (!row) { move(1); row = selected(); }
    if (!row) return;
    var control = row.querySelector('[data-action="' + key + '"]');
    if (control) { control.focus(); if (control.select) control.select(); }
    else flash("That action is not available to your role.", "error");
  }
  var pendingG = false;
  document.addEventListener("keydown", function (evt) {
    if (evt.ctrlKey || evt.metaKey || evt.altKey) return;
    var help = document.getElementById("help");
    if (evt.key === "Escape") {
      if (typing(document.activeElement)) {
        evt.preventDefault(); // a search field would clear itself and refilter the queue
        document.activeElement.blur();
        var row = selected();
        if (row) row.focus();
      }
      return;
    }
    if (typing(evt.target)) return;
    if (pendingG) {
      pendingG = false;
      var link = document.querySelector('nav a[data-key="' + evt.key + '"]');
      if (link) { evt.preventDefault(); window.location.assign(link.getAttribute("href")); }
      return;
    }
    switch (evt.key) {
      case "g": pendingG = true; window.setTimeout(function () { pendingG = false; }, 1200); break;
      case "?": if (help && help.showModal) { evt.preventDefault(); help.showModal(); } break;
      case "/": var q = document.getElementById("q"); if (q) { evt.preventDefault(); q.focus(); } break;
      case "j": if (document.getElementById("queue")) { evt.preventDefault(); move(1); } break;
      case "k": if (document.getElementById("queue")) { evt.preventDefault(); move(-1); } break;
      case "a": case "p": case "t":
        if (document.getElementById("queue")) { evt.preventDefault(); act(evt.key); }
        break;
      case "Enter":
        var r = selected();
        if (r && evt.target === r) { var open = r.querySelector("a.open"); if (open) open.click(); }
        break;
    }
  });
  // A swapped row keeps the selection so j/k continue from it.
  document.addEventListener("htmx:afterSwap", function (evt) {
    var target = evt.detail.target;
    var fresh = target && target.id ? document.getElementById(target.id) : null;
    if (fresh && fresh.tagName === "TR") select(fresh);
  });
  document.addEventListener("click", function (evt) {
    var back = evt.target.closest && evt.target.closest("[data-back]");
    if (back && window.history.length > 1) { evt.preventDefault(); window.history.back(); }
    var helpOpen = evt.target.closest && evt.target.closest("#help-open");
    var help = document.getElementById("help");
    if (helpOpen && help && help.showModal) help.showModal();
    var row = evt.target.closest && evt.target.closest("#queue tbody tr");
    if (row && !typing(evt.target)) select(row);
  });

  tick();
  window.setInterval(tick, 1000);
  startLive();
})();
