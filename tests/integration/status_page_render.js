// Runs the status page's script under Node.js against a running tunerd, with a minimal DOM in
// place of a browser's, once with TOKEN in its session storage and once without, and prints
// what the page would show each time as JSON (for operations_test.cpp,
// StatusPage.TheScriptShowsWhatTheApiSays).
//   node status_page_render.js PAGE.html ADMIN_HOST:PORT TOKEN
// Every getElementById must name an element of the page; the script's own fetch() calls go to
// the admin listener through Node's fetch.
'use strict';
const fs = require('fs');
const vm = require('vm');

const [page_file, admin, token] = process.argv.slice(2);
const html = fs.readFileSync(page_file, 'utf8');
const script = /<script nonce="[0-9a-f]+">([\s\S]*?)<\/script>/.exec(html)[1];
const ids = new Set([...html.matchAll(/ id="([^"]+)"/g)].map((m) => m[1]));

class Element {
  constructor(id) {
    this.id = id;
    this.text = '';
    this.className = '';
    this.hidden = id === 'auth' && /<div id="auth" hidden>/.test(html);
    this.style = {};
    this.attributes = {};
    this.children = [];
    this.listeners = {};
    this.value = '';
  }
  // As in a browser: whatever is assigned becomes a string (null and undefined the empty one).
  get textContent() { return this.text; }
  set textContent(v) { this.text = v === null || v === undefined ? '' : String(v); }
  get firstChild() { return this.children[0] || null; }
  removeChild(c) { this.children.splice(this.children.indexOf(c), 1); }
  appendChild(c) { this.children.push(c); return c; }
  setAttribute(k, v) { this.attributes[k] = String(v); }
  addEventListener(kind, f) { this.listeners[kind] = f; }
  insertRow() { return this.appendChild(new Element('tr')); }
  insertCell() { return this.appendChild(new Element('td')); }
}
// One page load: a fresh DOM and session storage; resolves with what the page shows once its
// first refresh is done (or after 5 s).
function render(token) {
  const elements = {};
  const document = {
    getElementById(id) {
      if (!ids.has(id)) throw new Error('no element with id ' + id + ' in the page');
      return elements[id] || (elements[id] = new Element(id));
    },
    createElementNS(ns, name) { return new Element(name); },
  };
  const storage = {};
  const sessionStorage = {
    getItem: (k) => (k in storage ? storage[k] : null),
    setItem: (k, v) => { storage[k] = String(v); },
  };
  if (token) sessionStorage.setItem('tunerd-token', token);
  const fetches = [];
  function pageFetch(path, options) {
    if (!path.startsWith('/')) throw new Error('the page fetched an absolute URL: ' + path);
    fetches.push(path);
    return fetch('http://' + admin + path, options);
  }
  const context = vm.createContext({
    document, sessionStorage, fetch: pageFetch, setInterval: () => 0, console, Promise,
    Math, String, Error, isFinite, Date, Number, Array,
  });
  vm.runInContext(script, context, {filename: 'status_page.html'});

  const text = (id) => (elements[id] ? elements[id].textContent : '');
  const points = (id) => {
    const svg = elements[id];
    return svg ? svg.children.map((line) => line.attributes.points || '') : [];
  };
  const deadline = Date.now() + 5000;
  return new Promise((resolve) => {
    (function wait() {
      if (!text('updated') && !/^no answer/.test(text('status')) && Date.now() < deadline) {
        setTimeout(wait, 10);
        return;
      }
      const rows = elements.decisions ? elements.decisions.children : [];
      resolve({
        status: text('status'),
        updated: text('updated'),
        auth_hidden: elements.auth ? elements.auth.hidden : true,
        workers_ready: text('workers-ready'),
        workers_target: text('workers-target'),
        rps: text('rps'),
        latency: text('latency'),
        queue: text('queue'),
        memory: text('memory'),
        memory_bar: elements['memory-bar'] ? elements['memory-bar'].style.width || '' : '',
        cpu: text('cpu'),
        decisions: rows.map((r) => r.children.map((c) => c.textContent)),
        workers_graph: points('g-workers'),
        fetches,
      });
    })();
  });
}

(async () => {
  const with_token = await render(token);
  const without_token = await render(null);
  // Not waiting for kept-alive connections to time out.
  process.stdout.write(JSON.stringify({with_token, without_token}) + '\n', () => process.exit(0));
})();
