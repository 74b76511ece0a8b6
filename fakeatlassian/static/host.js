// Host side of the fake's app iframes. It runs on the fake's product pages
// and answers the AP calls that all.js posts from each app iframe. A
// message is only accepted when it comes from one of this page's iframes
// AND from the origin of that iframe's app; answers are posted to that
// origin only.
(function () {
  'use strict';
  var dataEl = document.getElementById('tenon-host-data');
  if (!dataEl) { return; }
  var data = JSON.parse(dataEl.textContent);
  var frames = [];
  data.frames.forEach(function (f) {
    var el = document.getElementById(f.id);
    if (el) { frames.push({ id: f.id, el: el, origin: f.origin, appKey: f.appKey, moduleKey: f.moduleKey, context: f.context || {} }); }
  });

  function frameOf(event) {
    for (var i = 0; i < frames.length; i++) {
      var f = frames[i];
      if (f.el.contentWindow === event.source && f.origin === event.origin) { return f; }
    }
    return null;
  }

  function post(frame, msg) {
    msg.tenonAP = 1;
    frame.el.contentWindow.postMessage(msg, frame.origin);
  }

  function hostCall(path, body) {
    return fetch('/_host/' + encodeURIComponent(data.session) + path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
      credentials: 'same-origin'
    }).then(function (resp) {
      return resp.json().then(function (json) {
        if (!resp.ok) { throw new Error(json.error || ('host call failed with ' + resp.status)); }
        return json;
      });
    });
  }

  function size(v) {
    if (v === undefined || v === null || v === '') { return null; }
    return typeof v === 'number' || /^\d+$/.test(String(v)) ? v + 'px' : String(v);
  }

  function flag(opts) {
    var box = document.getElementById('flags');
    var el = document.createElement('div');
    el.className = 'flag ' + (opts && opts.type ? String(opts.type) : 'info');
    var title = document.createElement('strong');
    title.textContent = (opts && opts.title) || '';
    var body = document.createElement('div');
    body.textContent = (opts && opts.body) || '';
    el.appendChild(title); el.appendChild(body);
    box.appendChild(el);
    setTimeout(function () { el.remove(); }, 5000);
    return true;
  }

  var handlers = {
    'context.getToken': function (frame) {
      return hostCall('/token', { frame: frame.id }).then(function (r) { return r.token; });
    },
    // The context names the page's theme, as the product's does.
    'context.getContext': function (frame) { return Object.assign({}, frame.context, { theme: data.theme }); },
    'theming.getTheme': function () { return data.theme; },
    'request': function (frame, args) {
      var o = args[0] || {};
      return hostCall('/request', {
        frame: frame.id, url: String(o.url || ''), type: String(o.type || 'GET'),
        data: o.data === undefined || o.data === null ? '' : (typeof o.data === 'string' ? o.data : JSON.stringify(o.data)),
        contentType: o.contentType ? String(o.contentType) : '', headers: o.headers || {}
      });
    },
    'resize': function (frame, args) {
      var w = size(args[0]), h = size(args[1]);
      if (w) { frame.el.style.width = w; }
      if (h) { frame.el.style.height = h; }
      return true;
    },
    'sizeToParent': function (frame) {
      frame.el.style.width = '100%';
      frame.el.style.height = Math.max(150, window.innerHeight - frame.el.getBoundingClientRect().top - 16) + 'px';
      return true;
    },
    'events.emit': function (frame, args) {
      // Events go to the other iframes of the same app on this page.
      frames.forEach(function (other) {
        if (other !== frame && other.appKey === frame.appKey) {
          post(other, { kind: 'event', name: String(args[0]), args: args.slice(1) });
        }
      });
      return true;
    },
    'navigator.reload': function () { window.location.reload(); return true; },
    'navigator.getLocation': function () { return window.location.href; },
    'navigator.go': function (frame, args) {
      var target = args[0], ctx = args[1] || {};
      if (target === 'issue' && ctx.issueKey) {
        window.location.href = data.baseUrl + '/browse/' + encodeURIComponent(ctx.issueKey);
      } else if (target === 'addonmodule' && ctx.moduleKey) {
        window.location.href = data.baseUrl + '/plugins/servlet/ac/' + encodeURIComponent(ctx.addonKey || frame.appKey) + '/' + encodeURIComponent(ctx.moduleKey);
      } else {
        throw new Error('navigator.go: target ' + target + ' is not supported by the fake');
      }
      return true;
    },
    'user.getCurrentUser': function () { return { atlassianAccountId: data.user.atlassianAccountId }; },
    'user.getLocale': function () { return data.locale; },
    'user.getTimeZone': function () { return data.user.timeZone; },
    'flag.create': function (frame, args) { return flag(args[0]); }
  };

  window.addEventListener('message', function (event) {
    var frame = frameOf(event);
    if (!frame) { return; }
    var m = event.data;
    if (!m || m.tenonAP !== 1 || m.kind !== 'call' || typeof m.method !== 'string') { return; }
    var handler = handlers[m.method];
    Promise.resolve().then(function () {
      if (!handler) { throw new Error('AP.' + m.method + ' is not supported by the fake'); }
      return handler(frame, Array.isArray(m.args) ? m.args : []);
    }).then(function (value) {
      post(frame, { kind: 'result', id: m.id, ok: true, value: value === undefined ? null : value });
    }, function (err) {
      post(frame, { kind: 'result', id: m.id, ok: false, error: String(err && err.message || err) });
    });
  });
}());
