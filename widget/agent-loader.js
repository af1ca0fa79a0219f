// Nexus Flow agent app loader (served as /widget/agent.js), used by the server's /agent page:
//   <div id="nexus-agent" data-site="demo"></div>
//   <script type="module" src="/widget/agent.js"></script>
// `cargo xtask widget` replaces the __NF_…__ names with the content-hashed file names and
// strips comment lines and indentation: keep every statement on lines of its own.
(function () {
  'use strict';
  var d = document;
  var root = d.getElementById('nexus-agent');
  if (!root) {
    console.error('Nexus Flow: the agent page needs an element with id="nexus-agent".');
    return;
  }
  var script = d.querySelector('script[src$="agent.js"]');
  var base = new URL('./', script ? script.src : location.href).href;
  function asset(name) {
    return new URL(name, base).href;
  }
  var link = d.createElement('link');
  link.rel = 'stylesheet';
  link.href = asset('__NF_CSS__');
  d.head.appendChild(link);
  import(asset('__NF_JS__'))
    .then(function (app) {
      return app.default({ module_or_path: asset('__NF_WASM__') }).then(function () {
        root.textContent = '';
        app.mount_agent(root, {
          site: root.dataset.site || 'demo',
          server: location.origin
        });
      });
    })
    .catch(function (e) {
      root.textContent = 'The agent app could not be loaded. Reload the page to try again.';
      console.error('Nexus Flow: could not load the agent app.', e);
    });
})();
