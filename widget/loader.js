// Nexus Flow loader (served as widget.js). Embed with:
//   <script src="https://YOUR-SERVER/widget.js" data-site="SITE_KEY" async></script>
// Optional: data-server, data-color, data-position="left", data-greeting, data-locale,
// data-open, data-preload. It draws the launcher at once and loads the chat app only on the
// first click (with data-preload: as soon as the browser is idle).
// Agent mode (the widget menu's "Team sign-in", or NexusFlow.agentMode()) loads the agents'
// app instead, in place of the visitor's; a visitor never downloads it. Its token is kept in
// localStorage per site, so agent mode comes back on the site's other pages until sign-out.
// `cargo xtask widget` replaces the __NF_…__ names with the content-hashed file names and
// strips comment lines and indentation: keep every statement on lines of its own.
(function () {
  'use strict';
  var d = document;
  var w = window;
  if (w.NexusFlow) {
    return;
  }
  var script = d.currentScript || d.querySelector('script[data-site]');
  var data = script ? script.dataset : {};
  if (!data.site) {
    console.error('Nexus Flow: the widget.js script tag needs a data-site attribute.');
    return;
  }
  // The server serves the loader at /widget.js and the app next to it under /widget/.
  var base = new URL('widget/', script.src).href;
  var server = (data.server || new URL(script.src).origin).replace(/\/+$/, '');
  var handlers = {};
  var wantOpen = false;
  var mountEl;
  var launcherRoot;
  var launcher;
  var loading;
  var ready = false;
  // The last NexusFlow.identify() claim, for the app's hello.
  var identity = null;
  var shadow;
  var agentEl;
  var agentCss;
  var agentLoading;
  var agentKey = 'nexus-flow:' + data.site + ':agent-mode';

  function asset(name) {
    return new URL(name, base).href;
  }

  function emit(type, detail) {
    (handlers[type] || []).slice().forEach(function (fn) {
      try {
        fn(detail);
      } catch (e) {
        console.error(e);
      }
    });
  }

  function command(name) {
    mountEl.dispatchEvent(new CustomEvent('nexus-flow:command', { detail: name }));
  }

  function load() {
    if (ready) {
      command(wantOpen ? 'open' : 'close');
      return loading;
    }
    if (loading) {
      return loading;
    }
    launcher.setAttribute('aria-busy', 'true');
    loading = import(asset('__NF_JS__'))
      .then(function (app) {
        return app.default({ module_or_path: asset('__NF_WASM__') }).then(function () {
          app.mount(mountEl, {
            site: data.site,
            server: server,
            color: data.color || null,
            position: data.position || null,
            greeting: data.greeting || null,
            locale: data.locale || null,
            open: wantOpen,
            identity: identity
          });
          // The app draws its own launcher.
          launcherRoot.remove();
          ready = true;
        });
      })
      .catch(function (e) {
        loading = null;
        launcher.removeAttribute('aria-busy');
        console.error('Nexus Flow: could not load the chat.', e);
        emit('error', { type: 'error', error: e });
      });
    return loading;
  }

  // Shows the agents' app (loading it the first time) or, with false, the visitor's again.
  function agentMode(on, open) {
    if (!mountEl) {
      return Promise.resolve();
    }
    mountEl.style.display = on ? 'none' : '';
    if (agentEl) {
      agentEl.hidden = !on;
      // Its rules for bare buttons and inputs must not restyle the visitor's panel.
      agentCss.disabled = !on;
    }
    if (!on) {
      return Promise.resolve();
    }
    if (ready) {
      command('close');
    }
    if (agentLoading) {
      return agentLoading;
    }
    agentCss = d.createElement('link');
    agentCss.rel = 'stylesheet';
    agentCss.href = asset('__NF_AGENT_CSS__');
    agentEl = d.createElement('div');
    agentEl.addEventListener('nexus-flow:event', function (e) {
      if ((e.detail || {}).type === 'visitor-mode') {
        agentMode(false);
      }
    });
    shadow.appendChild(agentCss);
    shadow.appendChild(agentEl);
    agentLoading = import(asset('__NF_AGENT_JS__'))
      .then(function (app) {
        return app.default({ module_or_path: asset('__NF_AGENT_WASM__') }).then(function () {
          app.mount_agent_embedded(agentEl, {
            site: data.site,
            server: server,
            open: open,
            position: data.position || null
          });
        });
      })
      .catch(function (e) {
        agentLoading = null;
        agentMode(false);
        agentEl.remove();
        agentCss.remove();
        agentEl = null;
        console.error('Nexus Flow: could not load agent mode.', e);
        emit('error', { type: 'error', error: e });
      });
    return agentLoading;
  }

  function svg(pathData) {
    var ns = 'http://www.w3.org/2000/svg';
    var s = d.createElementNS(ns, 'svg');
    var p = d.createElementNS(ns, 'path');
    s.setAttribute('viewBox', '0 0 24 24');
    s.setAttribute('aria-hidden', 'true');
    p.setAttribute('d', pathData);
    s.appendChild(p);
    return s;
  }

  function draw() {
    // A custom element, not a div: page rules for `div` (even `display: none !important`)
    // do not match it, and the stylesheet's :host rules outrank the rest.
    var host = d.createElement('nexus-flow-widget');
    host.id = 'nexus-flow-root';
    if (data.color) {
      host.style.setProperty('--nf-color', data.color);
    }
    shadow = host.attachShadow({ mode: 'open' });
    var link = d.createElement('link');
    link.rel = 'stylesheet';
    link.href = asset('__NF_CSS__');
    mountEl = d.createElement('div');
    mountEl.className = 'nf-mount';
    // Unstyled, the launcher would flash as a bare button: show it with its stylesheet.
    mountEl.hidden = true;
    link.onload = link.onerror = function () {
      mountEl.hidden = false;
    };
    launcherRoot = d.createElement('div');
    launcherRoot.className = data.position === 'left' ? 'nf-root nf-left' : 'nf-root';
    launcher = d.createElement('button');
    launcher.type = 'button';
    launcher.className = 'nf-launcher';
    launcher.setAttribute('data-testid', 'launcher');
    launcher.setAttribute('aria-label', 'Open chat');
    launcher.setAttribute('aria-expanded', 'false');
    launcher.appendChild(svg('M4 5h16v11H9l-5 4z'));
    launcher.addEventListener('click', function () {
      wantOpen = true;
      load();
    });
    launcherRoot.appendChild(launcher);
    mountEl.appendChild(launcherRoot);
    mountEl.addEventListener('nexus-flow:event', function (e) {
      var detail = e.detail || {};
      if (detail.type === 'open' || detail.type === 'close') {
        wantOpen = detail.type === 'open';
      }
      if (detail.type === 'agent-mode') {
        agentMode(true, true);
      }
      emit(detail.type, detail);
    });
    shadow.appendChild(link);
    shadow.appendChild(mountEl);
    d.body.appendChild(host);
    if (data.open !== undefined && data.open !== 'false') {
      wantOpen = true;
    }
    var token = null;
    try {
      token = localStorage.getItem(agentKey);
    } catch (e) {}
    if (token) {
      agentMode(true, false);
    } else if (wantOpen) {
      load();
    } else if (data.preload !== undefined && data.preload !== 'false') {
      // Fetch and start the app when the browser has nothing better to do.
      var idle = w.requestIdleCallback || function (fn) {
        return setTimeout(fn, 1500);
      };
      idle(function () {
        load();
      }, { timeout: 4000 });
    }
  }

  w.NexusFlow = {
    open: function () {
      wantOpen = true;
      return mountEl ? load() : Promise.resolve();
    },
    close: function () {
      wantOpen = false;
      if (ready) {
        command('close');
      }
    },
    // {id, name, email, hash}: hash is the hex HMAC-SHA256 of id with the site's identity
    // secret, computed by the site's server. A connected chat reconnects as that person.
    identify: function (user) {
      identity = user && user.id ? {
        id: String(user.id),
        name: user.name ? String(user.name) : null,
        email: user.email ? String(user.email) : null,
        hash: user.hash ? String(user.hash) : null
      } : null;
      if (ready) {
        mountEl.dispatchEvent(new CustomEvent('nexus-flow:identify', { detail: identity }));
      }
    },
    // Switches the widget to agent mode: the team's sign-in, then their inbox.
    agentMode: function () {
      return agentMode(true, true);
    },
    on: function (type, fn) {
      (handlers[type] = handlers[type] || []).push(fn);
      return function () {
        handlers[type] = (handlers[type] || []).filter(function (f) {
          return f !== fn;
        });
      };
    }
  };

  if (d.body) {
    draw();
  } else {
    d.addEventListener('DOMContentLoaded', draw);
  }
})();
