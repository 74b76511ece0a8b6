// The checklist panel's browser code. It talks to the app's API with a
// fresh context token from AP.context.getToken for every call (the tokens
// are short-lived), and renders with DOM methods only: item text is always
// set as text, never parsed as HTML. The page's Content Security Policy
// allows no inline script, which is why this file exists.
(function () {
  "use strict";

  var root = document.getElementById("checklist");
  if (!root) {
    return;
  }

  // Take on the product's theme: the host marks the html element with its
  // colour mode, which checklist.css keys the design tokens on. The panel
  // is ready once the theme is in place (or the host could not tell it).
  var themed = theming();

  function theming() {
    var th = window.AP && window.AP.theming;
    if (!th || typeof th.initializeTheming !== "function") {
      return Promise.resolve();
    }
    try {
      return Promise.resolve(th.initializeTheming()).catch(function () {});
    } catch (err) {
      return Promise.resolve();
    }
  }

  var issueKey = root.getAttribute("data-issue-key");
  var t = JSON.parse(root.getAttribute("data-i18n") || "{}");
  var state = JSON.parse(root.getAttribute("data-state") || "{}");
  var list = document.getElementById("items");
  var empty = document.getElementById("empty");
  var progress = document.getElementById("progress");
  var form = document.getElementById("add-form");
  var input = document.getElementById("new-item");
  var addButton = document.getElementById("add-item");
  var errorBox = document.getElementById("error");

  // Requests run one after another, so responses (each the whole
  // checklist) arrive in the order the user acted.
  var queue = Promise.resolve();

  function resize() {
    if (window.AP && typeof window.AP.resize === "function") {
      window.AP.resize();
    }
  }

  function token() {
    return new Promise(function (resolve, reject) {
      var ctx = window.AP && window.AP.context;
      if (!ctx || typeof ctx.getToken !== "function") {
        reject(new Error("the AP library is not available"));
        return;
      }
      // Older versions of the library take a callback, newer ones also
      // return a promise; accept whichever answers.
      var p = ctx.getToken(resolve);
      if (p && typeof p.then === "function") {
        p.then(resolve, reject);
      }
    });
  }

  function api(method, path, body) {
    return token().then(function (tok) {
      var opts = {
        method: method,
        headers: { "Authorization": "JWT " + tok, "Accept": "application/json" },
        credentials: "omit"
      };
      if (body !== undefined) {
        opts.headers["Content-Type"] = "application/json";
        opts.body = JSON.stringify(body);
      }
      // Relative to the panel's URL, so the app may live under a path.
      return fetch("api/checklists/" + encodeURIComponent(issueKey) + path, opts);
    }).then(function (resp) {
      if (resp.ok) {
        return resp.json();
      }
      var err = new Error("HTTP " + resp.status);
      err.status = resp.status;
      throw err;
    });
  }

  function run(method, path, body) {
    queue = queue.then(function () {
      return api(method, path, body).then(function (next) {
        state = next;
        showError("");
        render();
        return true;
      }, function (err) {
        showError(messageFor(err));
        return false;
      });
    });
    return queue;
  }

  function messageFor(err) {
    switch (err && err.status) {
      case 400: return t.errInvalid;
      case 401: return t.errSession;
      case 403: return t.errForbidden;
      case 409: return t.errTooMany;
      default: return t.errGeneric;
    }
  }

  function showError(msg) {
    errorBox.textContent = msg || "";
    errorBox.hidden = !msg;
    resize();
  }

  function render() {
    var items = (state && state.items) || [];
    var done = 0;
    while (list.firstChild) {
      list.removeChild(list.firstChild);
    }
    items.forEach(function (it) {
      if (it.done) {
        done++;
      }
      var li = document.createElement("li");
      li.setAttribute("data-id", it.id);
      if (it.done) {
        li.className = "done";
      }
      var label = document.createElement("label");
      var box = document.createElement("input");
      box.type = "checkbox";
      box.className = "toggle";
      box.checked = !!it.done;
      var text = document.createElement("span");
      text.className = "text";
      text.textContent = it.text;
      label.appendChild(box);
      label.appendChild(document.createTextNode(" "));
      label.appendChild(text);
      var del = document.createElement("button");
      del.type = "button";
      del.className = "delete";
      del.setAttribute("data-appearance", "subtle");
      del.title = t["delete"];
      del.setAttribute("aria-label", t["delete"]);
      del.textContent = "\u00d7";
      li.appendChild(label);
      li.appendChild(document.createTextNode(" "));
      li.appendChild(del);
      list.appendChild(li);
    });
    empty.hidden = items.length > 0;
    progress.textContent = String(t.progress || "")
      .replace("{done}", String(done))
      .replace("{total}", String(items.length));
    resize();
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = input.value.trim();
    if (!text) {
      showError(t.errInvalid);
      return;
    }
    addButton.disabled = true;
    run("POST", "/items", { text: text }).then(function (ok) {
      addButton.disabled = false;
      if (ok) {
        input.value = "";
      }
      input.focus();
    });
  });

  list.addEventListener("change", function (ev) {
    var box = ev.target;
    if (!box.classList || !box.classList.contains("toggle")) {
      return;
    }
    var li = box.closest("li");
    run("PATCH", "/items/" + encodeURIComponent(li.getAttribute("data-id")), { done: box.checked }).then(function (ok) {
      if (!ok) {
        render(); // put the box back the way the server has it
      }
    });
  });

  list.addEventListener("click", function (ev) {
    var del = ev.target.closest && ev.target.closest(".delete");
    if (!del) {
      return;
    }
    var li = del.closest("li");
    run("DELETE", "/items/" + encodeURIComponent(li.getAttribute("data-id")));
  });

  render();
  themed.then(function () {
    root.setAttribute("data-ready", "true");
  });
})();
