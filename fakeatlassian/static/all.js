// all.js of the fake Atlassian: the iframe side of the Connect JavaScript
// API for app pages shown by the fake. It talks to the product page
// (host.js) with postMessage, only to and from the host origin named by
// the xdm_e parameter of the iframe URL. Callbacks and Promises are both
// supported.
(function () {
  'use strict';
  if (window.AP && window.AP._fake) { return; }

  var params = new URLSearchParams(window.location.search);
  var hostOrigin = null;
  try {
    var e = params.get('xdm_e');
    if (e) { hostOrigin = new URL(e).origin; }
  } catch (err) { hostOrigin = null; }
  var inFrame = window.parent && window.parent !== window;

  var seq = 0;
  var pending = {};
  var listeners = {};

  function call(method, args) {
    return new Promise(function (resolve, reject) {
      if (!hostOrigin || !inFrame) {
        reject(new Error('AP.' + method + ': not inside a product page (no xdm_e parameter or no parent window)'));
        return;
      }
      var id = 'c' + (++seq);
      pending[id] = { resolve: resolve, reject: reject };
      window.parent.postMessage({ tenonAP: 1, kind: 'call', id: id, method: method, args: args || [] }, hostOrigin);
    });
  }

  window.addEventListener('message', function (event) {
    if (event.source !== window.parent || event.origin !== hostOrigin) { return; }
    var m = event.data;
    if (!m || m.tenonAP !== 1) { return; }
    if (m.kind === 'result' && pending[m.id]) {
      var p = pending[m.id];
      delete pending[m.id];
      if (m.ok) { p.resolve(m.value); } else { p.reject(new Error(m.error)); }
    } else if (m.kind === 'event') {
      (listeners[m.name] || []).slice().forEach(function (l) {
        if (l.once) { off(m.name, l.fn); }
        try { l.fn.apply(null, m.args || []); } catch (err) { console.error(err); }
      });
    }
  });

  // withCallback lets every method be used with a callback or a Promise.
  function withCallback(promise, cb) {
    if (typeof cb === 'function') {
      promise.then(function (v) { cb(v); }, function (err) { console.error(err); });
    }
    return promise;
  }

  function off(name, fn) {
    listeners[name] = (listeners[name] || []).filter(function (l) { return l.fn !== fn; });
  }

  // xhrLike mimics the object jQuery-style AP.request callbacks receive.
  function xhrLike(r) {
    return {
      status: r.status, statusText: r.statusText, responseText: r.responseText,
      getResponseHeader: function (name) {
        name = String(name).toLowerCase();
        if (name === 'content-type') { return r.contentType || null; }
        if (name === 'retry-after') { return r.retryAfter || null; }
        return null;
      }
    };
  }

  function request(urlOrOptions, maybeOptions) {
    var o = typeof urlOrOptions === 'string' ? Object.assign({}, maybeOptions || {}, { url: urlOrOptions }) : Object.assign({}, urlOrOptions || {});
    // GET data travels in the query string, as with jQuery.ajax.
    if (String(o.type || 'GET').toUpperCase() === 'GET' && o.data && typeof o.data === 'object') {
      o.url = String(o.url) + (String(o.url).indexOf('?') >= 0 ? '&' : '?') + new URLSearchParams(o.data).toString();
      o.data = undefined;
    }
    var p = call('request', [{ url: o.url, type: o.type || 'GET', data: o.data, contentType: o.contentType, headers: o.headers }])
      .then(function (r) {
        var xhr = xhrLike(r);
        if (r.status >= 200 && r.status < 300) {
          if (typeof o.success === 'function') { o.success(r.responseText, r.statusText, xhr); }
          return { body: r.responseText, xhr: xhr };
        }
        if (typeof o.error === 'function') { o.error(xhr, 'error', r.statusText); }
        var err = new Error('AP.request: ' + r.status + ' ' + r.statusText);
        err.xhr = xhr;
        err.err = r.statusText;
        throw err;
      }, function (err) {
        if (typeof o.error === 'function') { o.error(xhrLike({ status: 0, statusText: String(err.message), responseText: '' }), 'error', err.message); }
        throw err;
      });
    if (typeof o.success === 'function' || typeof o.error === 'function') { p.catch(function () {}); }
    return p;
  }

  var AP = {
    _fake: true,
    context: {
      getToken: function (cb) { return withCallback(call('context.getToken'), cb); },
      getContext: function (cb) { return withCallback(call('context.getContext'), cb); }
    },
    request: request,
    resize: function (width, height) { call('resize', [width, height]); },
    sizeToParent: function () { call('sizeToParent'); },
    events: {
      on: function (name, fn) { (listeners[name] = listeners[name] || []).push({ fn: fn }); },
      once: function (name, fn) { (listeners[name] = listeners[name] || []).push({ fn: fn, once: true }); },
      off: off,
      emit: function (name) { call('events.emit', Array.prototype.slice.call(arguments)); }
    },
    navigator: {
      go: function (target, context) { call('navigator.go', [target, context || {}]); },
      reload: function () { call('navigator.reload'); },
      getLocation: function (cb) { return withCallback(call('navigator.getLocation'), cb); }
    },
    user: {
      getCurrentUser: function (cb) { return withCallback(call('user.getCurrentUser'), cb); },
      getLocale: function (cb) { return withCallback(call('user.getLocale'), cb); },
      getTimeZone: function (cb) { return withCallback(call('user.getTimeZone'), cb); }
    },
    flag: {
      create: function (options) { call('flag.create', [options || {}]); return { close: function () {} }; }
    },
    theming: {
      // initializeTheming asks the product page for its theme and marks
      // this document's html element with it: data-color-mode (light or
      // dark) and data-theme (the theme of each mode, "dark:dark
      // light:light spacing:spacing"), the attributes the design system's
      // token style sheets select on. The app's own style sheet holds the
      // token values; the fake loads no style sheet into the frame.
      initializeTheming: function (cb) { return withCallback(call('theming.getTheme').then(applyTheme), cb); }
    }
  };

  function applyTheme(theme) {
    var t = theme || {};
    var mode = t.colorMode === 'dark' ? 'dark' : 'light';
    var parts = [];
    ['dark', 'light', 'spacing'].forEach(function (k) {
      if (typeof t[k] === 'string' && /^[a-z-]+$/.test(t[k])) { parts.push(k + ':' + t[k]); }
    });
    var html = document.documentElement;
    html.setAttribute('data-color-mode', mode);
    html.setAttribute('data-theme', parts.join(' '));
    return { colorMode: mode, dark: t.dark, light: t.light, spacing: t.spacing };
  }
  window.AP = AP;

  // Resize the iframe to its content, as the real all.js does unless the
  // script tag says data-options="resize:false" or "sizeToParent:true".
  var script = document.currentScript;
  var opts = script ? String(script.getAttribute('data-options') || '') : '';
  function report() {
    var h = Math.max(document.documentElement.scrollHeight, document.body ? document.body.scrollHeight : 0);
    AP.resize('100%', h);
  }
  if (/sizeToParent:\s*true/.test(opts)) {
    window.addEventListener('load', function () { AP.sizeToParent(); });
  } else if (!/resize:\s*false/.test(opts) && inFrame && hostOrigin) {
    window.addEventListener('load', function () {
      report();
      if (window.ResizeObserver && document.body) { new ResizeObserver(report).observe(document.body); }
    });
  }
}());
