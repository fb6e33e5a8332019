// A small Node.js app that stands for an event-loop web worker behind tunerd (any HTTP app that
// serves many requests at once in one process: Node, Python asyncio, Go, ...).
// etc/examples/node.toml runs it; README.md says what each route does.
//
// Listens on the Unix socket tunerd hands it (the first argument, `{socket}` in the config), or
// on a TCP port (a number: `{port}`). No dependencies beyond Node's own modules.
'use strict';

const http = require('http');

// Upper bounds for the per-request knobs, so a typo cannot hold a worker for hours.
const MAX_CPU_MS = 60000;
const MAX_IO_MS = 600000;

// A whole number of milliseconds from the query, at most `upper`; `fallback` when absent, null
// when it is not a whole number >= 0.
function msArg(params, name, fallback, upper) {
  const text = params.get(name);
  if (text === null) return fallback;
  if (!/^\d{1,9}$/.test(text)) return null;
  return Math.min(Number(text), upper);
}

// Burns `ms` of this process's time on the event loop, like rendering a page: nothing else in
// this process runs meanwhile.
function burnCpu(ms) {
  const end = process.hrtime.bigint() + BigInt(ms) * 1000000n;
  let spins = 0;
  while (process.hrtime.bigint() < end) spins++;
  return spins;
}

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {'Content-Type': 'application/json',
                         'Content-Length': Buffer.byteLength(text)});
  res.end(text);
}

function handle(req, res) {
  let url;
  try {
    url = new URL(req.url, 'http://localhost');
  } catch (e) {
    return send(res, 400, {error: 'bad request target'});
  }
  const worker = process.env.TUNER_WORKER_ID || '';
  switch (url.pathname) {
    case '/':
      return send(res, 200, {hello: 'from node', worker, pid: process.pid});
    case '/health':
      return send(res, 200, {status: 'ok'});
    case '/cpu':
    case '/io':
    case '/work': {
      const p = url.searchParams;
      const cpuName = url.pathname === '/cpu' ? 'ms' : 'cpu_ms';
      const ioName = url.pathname === '/io' ? 'ms' : 'io_ms';
      const cpu = url.pathname === '/io' ? 0 : msArg(p, cpuName, 10, MAX_CPU_MS);
      const io = url.pathname === '/cpu' ? 0 : msArg(p, ioName, 50, MAX_IO_MS);
      if (cpu === null) return send(res, 400, {error: `${cpuName} must be a whole number of milliseconds`});
      if (io === null) return send(res, 400, {error: `${ioName} must be a whole number of milliseconds`});
      burnCpu(cpu);
      // Waiting, as on a database or an API: the event loop serves other requests meanwhile.
      setTimeout(() => send(res, 200, {cpu_ms: cpu, io_ms: io, worker, pid: process.pid}), io);
      return;
    }
    default:
      return send(res, 404, {error: 'no such route'});
  }
}

const where = process.argv[2] || process.env.TUNER_SOCKET || process.env.PORT;
if (!where) {
  console.error('usage: node server.js SOCKET_PATH|PORT');
  process.exit(64);
}
const server = http.createServer(handle);
// tunerd parks idle upstream connections for at most 1 s; Node's own 5 s keep-alive is longer.
server.keepAliveTimeout = 5000;
server.listen(/^\d+$/.test(where) ? {port: Number(where), host: '127.0.0.1'} : where, () => {
  console.log(`listening on ${where}, pid ${process.pid}`);
});
// tunerd sends SIGTERM only after the worker's requests are done (drain first); close anyway so
// a request that came in late still gets its answer.
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections();
});
