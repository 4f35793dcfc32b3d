// The status page's actions: "Roll back" buttons with a confirm step, the "Sync now", "Suspend",
// "Resume" and "Promote from" buttons (the same confirm step), and the page's reload.
// Served as /static/actions.js (the page's Content-Security-Policy allows no other script).
//
// The actions token is typed once and kept in this tab's sessionStorage; it is sent only as an
// "Authorization: Bearer" header to this page's own origin, never written into the page. A custom
// Authorization header cannot be sent cross-site without a CORS preflight the server never grants:
// that, and the server's Origin check, keep other sites from acting (see reconciler/runtime/actions.py).
// What both sections share: session storage, element building, a result box kept across reloads, the
// bearer token (typed once per tab), and the POST itself.
var ReconcilerUI = (function () {
  "use strict";
  var TOKEN_KEY = "reconciler.actionsToken";
  function storage() {
    try { return window.sessionStorage; } catch (e) { return null; }
  }
  function storedToken() {
    var s = storage();
    return s ? s.getItem(TOKEN_KEY) || "" : "";
  }
  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  }
  // The answer shown in `box` (fill(r) writes its lines) with a Dismiss button, kept under `key` in this
  // tab until dismissed and shown again after a reload; returns the function that keeps and shows one.
  function resultPanel(box, key, fill) {
    function show(r) {
      if (!box) return;
      box.textContent = "";
      box.hidden = false;
      box.className = "result " + (r.ok ? "ok" : "bad");
      box.setAttribute("data-outcome", r.ok ? "ok" : "error");
      fill(r);
      var dismiss = el("button", "Dismiss");
      dismiss.type = "button";
      dismiss.addEventListener("click", function () {
        var s = storage();
        if (s) s.removeItem(key);
        box.hidden = true;
        box.textContent = "";
      });
      box.appendChild(dismiss);
    }
    var s = storage();
    var raw = s ? s.getItem(key) : null;
    if (raw) {
      try { show(JSON.parse(raw)); } catch (e) { s.removeItem(key); }
    }
    return function keep(r) {
      var st = storage();
      if (st) st.setItem(key, JSON.stringify(r));
      show(r);
    };
  }
  // The request headers: with a bearer token typed now (kept for this tab) or earlier, unless a proxy
  // vouches for the user; null (and the token row shown) when a token is needed and there is none.
  function authHeaders(proxied, tokenInput, tokenRow) {
    var headers = { "Content-Type": "application/json" };
    if (proxied) return headers;
    var typed = tokenInput ? tokenInput.value.trim() : "";
    if (tokenInput) tokenInput.value = "";
    var token = typed || storedToken();
    if (!token) {
      if (tokenRow) tokenRow.hidden = false;
      if (tokenInput) tokenInput.focus();
      return null;
    }
    if (typed) {
      var s = storage();
      if (s) s.setItem(TOKEN_KEY, typed);
    }
    headers["Authorization"] = "Bearer " + token;
    return headers;
  }
  // POST `body` to `url`; keep(answer) gets the server's answer with ok: true, or { ok: false, status,
  // error }, each with the fields of `extra`; a 401 forgets the stored token; then done().
  function post(url, headers, body, extra, keep, done) {
    function withExtra(r) {
      Object.keys(extra).forEach(function (k) { r[k] = extra[k]; });
      keep(r);
    }
    fetch(url, {
      method: "POST",
      headers: headers,
      body: JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store"
    }).then(function (resp) {
      return resp.json().catch(function () { return { error: resp.statusText }; }).then(function (data) {
        if (resp.status === 401) {
          var s = storage();
          if (s) s.removeItem(TOKEN_KEY);
        }
        if (resp.ok) {
          data.ok = true;
          withExtra(data);
        } else {
          withExtra({ ok: false, status: resp.status, error: data.error || resp.statusText });
        }
      });
    }).catch(function (err) {
      withExtra({ ok: false, status: 0, error: String(err) });
    }).then(done);
  }
  return { storedToken: storedToken, el: el, resultPanel: resultPanel, authHeaders: authHeaders, post: post };
})();

(function () {
  "use strict";
  var main = document.querySelector("main");
  var section = document.getElementById("rollback");
  var dialog = document.getElementById("rollback-dialog");
  var busy = false;

  // -- reload every N seconds, but never under an open confirmation or a running request
  var refresh = main ? Number(main.getAttribute("data-refresh") || 0) : 0;
  function scheduleReload() {
    if (!refresh) return;
    window.setTimeout(function () {
      if (busy || document.querySelector("dialog[open]") || document.body.hasAttribute("data-busy")) {
        scheduleReload();
      } else {
        window.location.reload();
      }
    }, refresh * 1000);
  }
  scheduleReload();

  if (!section) return;
  var env = section.getAttribute("data-env") || "";
  var el = ReconcilerUI.el;
  var resultBox = document.getElementById("action-result");
  // the result of the last action, kept across reloads until dismissed
  var keepResult = ReconcilerUI.resultPanel(resultBox, "reconciler.actionResult." + env, function (r) {
    var what = r.app ? "app " + r.app + " in " + env : env;
    if (r.ok) {
      resultBox.appendChild(el("p", "Rolled back " + what + ": " + r.message));
      var commits = el("p", "Commit" + (r.commits.length === 1 ? "" : "s") + ": ");
      r.commits.forEach(function (sha) {
        var code = el("code", sha.slice(0, 12));
        code.title = sha;
        code.setAttribute("data-commit", sha);
        commits.appendChild(code);
        commits.appendChild(document.createTextNode(" "));
      });
      resultBox.appendChild(commits);
      if (r.pull_request_url && /^https?:\/\//.test(r.pull_request_url)) {
        var p = el("p", "Pull request: ");
        var a = el("a", r.pull_request_url);
        a.href = r.pull_request_url;
        a.rel = "noopener noreferrer";
        a.setAttribute("data-testid", "pull-request");
        p.appendChild(a);
        resultBox.appendChild(p);
      }
      if (r.instructions) resultBox.appendChild(el("p", r.instructions, "muted"));
      resultBox.appendChild(el("p", "Requested by " + r.requested_by +
        (r.pass_triggered ? "; a pass of " + env + " was started." : "."), "muted"));
    } else {
      resultBox.appendChild(el("p", "Rollback of " + what + " refused (HTTP " + r.status + "): " + r.error, "error"));
    }
  });

  if (!dialog) return; // actions are disabled: the buttons are too
  var question = document.getElementById("rollback-question");
  var reason = document.getElementById("rollback-reason");
  var tokenRow = document.getElementById("rollback-token-row");
  var tokenInput = document.getElementById("rollback-token");
  var tokenNote = document.getElementById("rollback-token-note");
  var confirmButton = document.getElementById("rollback-confirm");
  var cancelButton = document.getElementById("rollback-cancel");
  var proxied = section.hasAttribute("data-identity");
  var chosen = null;

  function open(button) {
    chosen = {
      app: button.getAttribute("data-app") || "",
      promotion: button.getAttribute("data-promotion") || "",
      short: button.getAttribute("data-short") || ""
    };
    question.textContent = chosen.app
      ? "Set the images of app " + chosen.app + " in " + env + " back to their versions before promotion " +
        chosen.short + "? One commit; the promotion's other apps stay."
      : "Revert promotion " + chosen.short + " in " + env + "? A git revert, applied by the next pass " +
        "(or proposed as a pull request when " + env + " takes changes that way).";
    reason.value = "";
    if (!proxied && tokenRow) {
      var have = ReconcilerUI.storedToken() !== "";
      tokenRow.hidden = have;
      if (tokenNote) {
        tokenNote.textContent = have
          ? "Using the actions token typed earlier in this tab (recorded as requested by token)."
          : "Kept in this tab only (session storage), sent as a bearer token; recorded as requested by token.";
      }
    }
    dialog.showModal();
  }

  Array.prototype.forEach.call(section.querySelectorAll("button.rollback"), function (button) {
    button.addEventListener("click", function () { open(button); });
  });
  cancelButton.addEventListener("click", function () { dialog.close(); });

  confirmButton.addEventListener("click", function () {
    if (!chosen || busy) return;
    var headers = ReconcilerUI.authHeaders(proxied, tokenInput, tokenRow);
    if (!headers) return;
    var target = chosen;
    var url = "/api/env/" + encodeURIComponent(env) +
      (target.app ? "/apps/" + encodeURIComponent(target.app) : "") + "/rollback";
    var body = { promotion: target.promotion };
    if (reason.value.trim()) body.reason = reason.value.trim();
    busy = true;
    confirmButton.disabled = true;
    ReconcilerUI.post(url, headers, body, { app: target.app }, keepResult, function () {
      busy = false;
      confirmButton.disabled = false;
      dialog.close();
    });
  });
})();


// "Sync now", "Suspend" / "Resume" and "Promote from": POST /api/env/<env>/<action> with the same token
// (or proxy identity) as the rollback buttons; the answer is shown, and kept across the page's reloads.
(function () {
  "use strict";
  var section = document.getElementById("control");
  if (!section) return;
  var env = section.getAttribute("data-env") || "";
  var resultBox = document.getElementById("control-result");
  var dialog = document.getElementById("control-dialog");
  var proxied = section.hasAttribute("data-identity");
  var el = ReconcilerUI.el;
  var keepResult = ReconcilerUI.resultPanel(resultBox, "reconciler.controlResult." + env, function (r) {
    resultBox.setAttribute("data-action", r.action || "");
    if (r.ok) {
      resultBox.appendChild(el("p", r.message || (r.action + " done")));
      if (r.commit) {
        var p = el("p", "Commit: ");
        var code = el("code", r.commit.slice(0, 12));
        code.title = r.commit;
        code.setAttribute("data-commit", r.commit);
        p.appendChild(code);
        resultBox.appendChild(p);
      }
      if (r.branch) resultBox.appendChild(el("p", "Branch: " + r.branch, "mono"));
      if (r.pull_request_url && /^https?:\/\//.test(r.pull_request_url)) {
        var pr = el("p", "Pull request: ");
        var a = el("a", r.pull_request_url);
        a.href = r.pull_request_url;
        a.rel = "noopener noreferrer";
        pr.appendChild(a);
        resultBox.appendChild(pr);
      }
      resultBox.appendChild(el("p", "Requested by " + r.requested_by + ".", "muted"));
    } else {
      resultBox.appendChild(el("p", r.action + " refused (HTTP " + r.status + "): " + r.error, "error"));
    }
  });

  if (!dialog) return; // actions are disabled: the buttons are too
  var question = document.getElementById("control-question");
  var reason = document.getElementById("control-reason");
  var tokenRow = document.getElementById("control-token-row");
  var tokenInput = document.getElementById("control-token");
  var confirmButton = document.getElementById("control-confirm");
  var cancelButton = document.getElementById("control-cancel");
  var chosen = null;
  var QUESTIONS = {
    sync: function () { return "Run a pass of " + env + " now?"; },
    suspend: function () {
      return "Suspend " + env + "? No passes (no apply, no prune, no drift correction) until it is resumed.";
    },
    resume: function () { return "Resume " + env + "? Passes run again, starting with one now."; },
    promote: function (from) {
      return "Promote every image " + from + " runs (its last healthy revision) into " + env +
        "? A commit, pushed or proposed as a pull request as " + env + "'s rules say.";
    }
  };

  Array.prototype.forEach.call(section.querySelectorAll("button.act"), function (button) {
    button.addEventListener("click", function () {
      chosen = { action: button.getAttribute("data-action"), from: button.getAttribute("data-from") || "" };
      question.textContent = QUESTIONS[chosen.action](chosen.from);
      reason.value = "";
      if (!proxied && tokenRow) tokenRow.hidden = ReconcilerUI.storedToken() !== "";
      dialog.showModal();
    });
  });
  cancelButton.addEventListener("click", function () { dialog.close(); });

  confirmButton.addEventListener("click", function () {
    if (!chosen || document.body.hasAttribute("data-busy")) return;
    var headers = ReconcilerUI.authHeaders(proxied, tokenInput, tokenRow);
    if (!headers) return;
    var target = chosen;
    var body = {};
    if (reason.value.trim()) body.reason = reason.value.trim();
    if (target.action === "promote") {
      body = { from: target.from };
    }
    document.body.setAttribute("data-busy", "1");
    confirmButton.disabled = true;
    var url = "/api/env/" + encodeURIComponent(env) + "/" + target.action;
    ReconcilerUI.post(url, headers, body, { action: target.action }, keepResult, function () {
      document.body.removeAttribute("data-busy");
      confirmButton.disabled = false;
      dialog.close();
      if (target.action === "suspend" || target.action === "resume") window.location.reload();
    });
  });
})();
