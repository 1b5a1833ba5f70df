/* Hypercare feedback widget: no dependencies. Embed with
 *   <script src="https://console.example.com/widget.js" data-key="wk_..." async></script>
 * It adds a feedback button and form, and sends the page URL, the user agent and the
 * X-Request-Id of the last failed API calls (the gateway exposes that header to CORS). */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.HypercareFeedback) return;
  var key = script.getAttribute("data-key") || "";
  var base = script.getAttribute("data-endpoint") || new URL(script.src).origin;
  var endpoint = base.replace(/\/$/, "") + "/api/v1/feedback?key=" + encodeURIComponent(key);
  var MAX_IDS = 5;
  var failed = [];

  function remember(status, getHeader) {
    if (status && status < 400) return;
    var id = null;
    try { id = getHeader("x-request-id"); } catch (e) { id = null; }
    if (id) {
      failed.push(String(id).slice(0, 100));
      if (failed.length > MAX_IDS) failed.shift();
    }
  }

  if (window.fetch) {
    var origFetch = window.fetch;
    window.fetch = function () {
      return origFetch.apply(this, arguments).then(function (resp) {
        if (!resp.ok) remember(resp.status, function (h) { return resp.headers.get(h); });
        return resp;
      });
    };
  }
  var origOpen = XMLHttpRequest.prototype.open;
  XMLHttpRequest.prototype.open = function () {
    if (!this.__hcWatched) {
      this.__hcWatched = true;
      this.addEventListener("loadend", function () {
        var xhr = this;
        if (xhr.status >= 400) remember(xhr.status, function (h) { return xhr.getResponseHeader(h); });
      });
    }
    return origOpen.apply(this, arguments);
  };

  function send(data) {
    var body = {
      category: data.category || "bug",
      message: data.message || "",
      url: String(location.href).slice(0, 2000),
      user_agent: String(navigator.userAgent).slice(0, 500),
      request_ids: failed.slice(),
      website: data.website || ""
    };
    if (data.email) body.email = data.email;
    if (data.nps !== undefined && data.nps !== null && data.nps !== "") body.nps = Number(data.nps);
    return origFetchOrFetch()(endpoint, {
      method: "POST",
      mode: "cors",
      credentials: "omit",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body)
    }).then(function (resp) { return resp.status; });
  }

  function origFetchOrFetch() { return origFetch || window.fetch; }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var name in attrs) node.setAttribute(name, attrs[name]);
    if (text) node.textContent = text;
    return node;
  }

  function build() {
    var button = el("button", { type: "button", id: "hc-feedback-button",
      style: "position:fixed;right:16px;bottom:16px;z-index:2147483647;padding:8px 14px;" +
             "border-radius:18px;border:0;background:#1f6feb;color:#fff;font:14px sans-serif;cursor:pointer" },
      "Feedback");
    var form = el("form", { id: "hc-feedback-form",
      style: "display:none;position:fixed;right:16px;bottom:60px;z-index:2147483647;width:300px;" +
             "padding:12px;background:#fff;border:1px solid #ccc;border-radius:8px;font:14px sans-serif" });
    var category = el("select", { name: "category", "aria-label": "Category" });
    [["bug", "Something is broken"], ["question", "Question"], ["idea", "Idea"], ["praise", "Praise"]]
      .forEach(function (c) { category.appendChild(el("option", { value: c[0] }, c[1])); });
    var message = el("textarea", { name: "message", required: "required", maxlength: "5000",
      rows: "4", placeholder: "What happened?", style: "width:100%;box-sizing:border-box" });
    var email = el("input", { name: "email", type: "email", maxlength: "200",
      placeholder: "Email (optional)", style: "width:100%;box-sizing:border-box" });
    var nps = el("select", { name: "nps", "aria-label": "How likely are you to recommend us (0-10)?" });
    nps.appendChild(el("option", { value: "" }, "Recommend us? (optional)"));
    for (var i = 0; i <= 10; i++) nps.appendChild(el("option", { value: String(i) }, String(i)));
    var trap = el("input", { name: "website", tabindex: "-1", autocomplete: "off",
      "aria-hidden": "true", style: "position:absolute;left:-10000px;width:1px;height:1px" });
    var submit = el("button", { type: "submit" }, "Send");
    var note = el("p", { id: "hc-feedback-status", role: "status", style: "margin:6px 0 0" });
    [category, message, email, nps, trap, submit, note].forEach(function (n) { form.appendChild(n); });
    button.addEventListener("click", function () {
      form.style.display = form.style.display === "none" ? "block" : "none";
    });
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      submit.disabled = true;
      send({ category: category.value, message: message.value, email: email.value,
             nps: nps.value, website: trap.value })
        .then(function (status) {
          note.textContent = status === 202 ? "Thank you, we received it." : "Could not send (" + status + ").";
          if (status === 202) { message.value = ""; }
        }, function () { note.textContent = "Could not send feedback."; })
        .then(function () { submit.disabled = false; });
    });
    document.body.appendChild(button);
    document.body.appendChild(form);
  }

  window.HypercareFeedback = { send: send, failedRequestIds: function () { return failed.slice(); } };
  if (document.body) build(); else document.addEventListener("DOMContentLoaded", build);
})();
