// Floe console: a hash-routed page over the agent's public API. No framework:
// every value reaches the DOM through createElement / textContent, never HTML.
'use strict';

const TOKEN_KEY = 'floe-token';
const PAGE_SIZE = 100;       // records per page
const REFRESH_MS = 5000;     // overview and group sampling period
const WINDOW_MS = 5 * 60e3;  // overview rates: at most the last 5 minutes
const TAIL_ROWS = 500;       // live tail rows kept in the page
const LAG_SAMPLES = 120;     // group lag chart: 10 minutes at 5 s
// S3 Standard (us-east-1) request prices, dollars per request.
const PRICE = { put: 0.005 / 1000, get: 0.0004 / 1000, list: 0.005 / 1000 };
const KINDS = ['log', 'segments', 'snapshots', 'other'];
const OPS = ['put', 'get', 'list', 'delete'];
const SVG_NS = 'http://www.w3.org/2000/svg';

const main = document.getElementById('main');
let view = 'text'; // how keys, values and header values are shown: text | json | hex

// ---------------------------------------------------------------- DOM helpers

// h('a', {href: '#/'}, 'text', child…): attributes are set as attributes,
// `on…` functions become listeners, strings become text nodes.
function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}
function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}
// Replaces el's children; null and false children are skipped, as in h().
function fill(el, ...children) {
  el.replaceChildren();
  return build(el, null, children);
}
// fill() for a region redrawn on a timer: keyboard focus stays on the same link.
function refill(el, ...children) {
  const a = document.activeElement;
  const href = el.contains(a) ? a.getAttribute('href') : null;
  fill(el, ...children);
  if (href) el.querySelector(`a[href="${CSS.escape(href)}"]`)?.focus();
}
function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c != null && c !== false) el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

// A table inside a horizontally scrolling box (phones). rows: <tr>s, or a
// <tbody> the caller keeps to redraw.
function table(attrs, headers, rows) {
  const body = rows instanceof HTMLTableSectionElement ? rows : h('tbody', {}, rows);
  return h('div', { class: 'table-wrap' },
    h('table', attrs, h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))), body));
}

function dl(pairs, attrs) {
  return h('dl', attrs, pairs.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v))));
}

// A labelled control, with an optional hint tied to it.
function field(label, input, hint) {
  if (hint) input.setAttribute('aria-describedby', `${input.id}-hint`);
  return h('div', { class: 'field' }, h('label', { for: input.id }, label), input,
    hint ? h('span', { class: 'hint', id: `${input.id}-hint` }, hint) : null);
}

function section(title, ...content) {
  return h('section', {}, h('h2', {}, title), content);
}

// The page's status area: errors and confirmations are announced from here.
function statusEl(id = 'status') {
  return h('div', { id, class: 'status', role: 'status', 'aria-live': 'polite' });
}

function errorEl(e) {
  const code = e instanceof ApiError ? e.code : 'client_error';
  return h('p', { class: 'error' }, h('strong', { class: 'code' }, code), ': ', e.message || String(e));
}

function showError(box, e) {
  if (!(e instanceof ApiError)) console.error(e);
  fill(box, errorEl(e));
}

function note(box, text) {
  fill(box, h('p', { class: 'ok' }, text));
}

function crumbs(...items) {
  return h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
    h('ol', {}, items.map(([label, href]) =>
      h('li', {}, href ? h('a', { href }, label) : h('span', { 'aria-current': 'page' }, label)))));
}

const enc = encodeURIComponent;
const topicHref = (t) => `#/topics/${enc(t)}`;
const recordsHref = (t, p, q = '') => `${topicHref(t)}/partitions/${p}${q}`;

// ---------------------------------------------------------------- formatting

function fmtBytes(n) {
  if (n == null) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return i ? `${n.toFixed(1)} ${units[i]}` : `${Math.round(n)} B`;
}

function fmtDuration(ms) {
  if (ms == null || ms < 0) return 'unlimited';
  for (const [name, size] of [['d', 864e5], ['h', 36e5], ['min', 6e4], ['s', 1e3], ['ms', 1]]) {
    if (ms >= size) {
      const v = ms / size;
      return `${Number.isInteger(v) ? v : v.toFixed(1)} ${name}`;
    }
  }
  return '0 ms';
}

const fmtLimit = (b) => (b == null || b < 0 ? 'unlimited' : fmtBytes(b));
const fmtNum = (n) => (n == null ? '—' : Number(n).toLocaleString('en-US'));
const fmtRate = (r) => (r == null ? '—' : r < 10 ? r.toFixed(2) : r.toFixed(0));
const fmtDollars = (d) => `$${d >= 1 ? d.toFixed(2) : d.toPrecision(3)}`;

function isoTime(ms) {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString();
}

// A datetime-local input's value (local time, seconds) for epoch milliseconds.
function localInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60e3);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString().slice(0, 19);
}

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

const quiet = (e) => e && e.name === 'AbortError';
const gone = () => new DOMException('the page was left', 'AbortError');

// Every call to the agent. Adds the token; a 401 replaces the page with the
// sign-in form; other errors throw ApiError with the agent's code and message.
// opts: { signal, headers, raw } (raw: return the Response, for streams).
async function api(method, path, body, opts = {}) {
  const headers = { ...opts.headers };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body != null) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method, headers, signal: opts.signal, cache: 'no-store',
      body: body == null ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    if (quiet(e)) throw e;
    throw new ApiError(0, 'network_error', `could not reach the agent (${e.message})`);
  }
  if (!res.ok) {
    let err = { code: `http_${res.status}`, message: res.statusText || 'request failed' };
    try { err = { ...err, ...(await res.json()).error }; } catch { /* not JSON */ }
    if (res.status === 401) {
      if (token) sessionStorage.removeItem(TOKEN_KEY);
      if (main.dataset.page !== 'signin') {
        showSignin(token ? `The token was refused (${err.message}).` : null);
      }
    }
    throw new ApiError(res.status, err.code, err.message, err);
  }
  if (opts.raw) return res;
  return res.status === 204 ? null : res.json();
}

// ---------------------------------------------------------------- page lifecycle

let current = null;

// Starts a page: ends the previous one (its fetches, streams and timers),
// clears <main>, and returns the new page's context.
function begin(page) {
  if (current) current.end();
  const ctl = new AbortController();
  const cleanups = [];
  const ctx = {
    alive: true,
    signal: ctl.signal,
    end() {
      if (!ctx.alive) return;
      ctx.alive = false;
      ctl.abort();
      cleanups.splice(0).forEach((f) => f());
    },
    onEnd(f) { cleanups.push(f); },
    // api() bound to this page: once the page is left, nothing it started
    // resolves (it throws AbortError), so stale data is never drawn.
    async api(method, path, body, opts = {}) {
      try {
        const r = await api(method, path, body, { signal: ctl.signal, ...opts });
        if (!ctx.alive) throw gone();
        return r;
      } catch (e) {
        throw ctx.alive ? e : gone();
      }
    },
    // Runs fn now and then every `ms` after each run finishes (no overlap).
    poll(ms, fn) {
      let timer = null;
      const tick = async () => {
        try { await fn(); } catch (e) { if (!quiet(e)) console.error(e); }
        if (ctx.alive) timer = setTimeout(tick, ms);
      };
      cleanups.push(() => clearTimeout(timer));
      tick();
    },
    ready() { if (ctx.alive) main.dataset.ready = 'true'; },
  };
  current = ctx;
  fill(main);
  main.dataset.page = page;
  delete main.dataset.ready;
  return ctx;
}

// A page that threw: its error goes in its status area, in place of the data.
function fail(ctx, e) {
  if (quiet(e) || !ctx.alive) return;
  let box = main.querySelector('#status');
  if (!box) main.append(box = statusEl());
  showError(box, e);
  main.dataset.ready = 'error';
}

// Waits ms, or rejects when signal aborts.
function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); reject(gone()); }, { once: true });
  });
}

// ---------------------------------------------------------------- routing

const ROUTES = [
  [/^\/$/, 'overview', overviewPage],
  [/^\/topics$/, 'topics', topicsPage],
  [/^\/topics\/([^/]+)$/, 'topic', topicPage],
  [/^\/topics\/([^/]+)\/partitions\/(\d+)$/, 'records', recordsPage],
  [/^\/groups$/, 'groups', groupsPage],
  [/^\/groups\/([^/]+)$/, 'group', groupPage],
];

function parseHash() {
  const raw = location.hash.replace(/^#/, '');
  const q = raw.indexOf('?');
  let path = q < 0 ? raw : raw.slice(0, q);
  if (!path.startsWith('/')) path = `/${path}`;
  if (path.length > 1) path = path.replace(/\/+$/, '');
  return { path, query: new URLSearchParams(q < 0 ? '' : raw.slice(q + 1)) };
}

function route() {
  const { path, query } = parseHash();
  document.getElementById('signout').hidden = !sessionStorage.getItem(TOKEN_KEY);
  for (const [re, name, page] of ROUTES) {
    const m = re.exec(path);
    if (!m) continue;
    let args;
    try { args = m.slice(1).map(decodeURIComponent); } catch { break; }
    const ctx = begin(name);
    markNav(name);
    Promise.resolve().then(() => page(ctx, ...args, query)).catch((e) => fail(ctx, e));
    return;
  }
  const ctx = begin('notfound');
  markNav(null);
  document.title = 'Not found · Floe';
  main.append(h('h1', {}, 'Not found'), h('p', {}, 'No page here. ', h('a', { href: '#/' }, 'Go to the overview.')));
  ctx.ready();
}

function markNav(page) {
  const section = page === 'topic' || page === 'records' ? 'topics' : page === 'group' ? 'groups' : page;
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === section) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

// Goes to hash, re-rendering even when it is already the current one.
function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

// ---------------------------------------------------------------- sign-in

function showSignin(message) {
  const ctx = begin('signin');
  markNav(null);
  document.title = 'Sign in · Floe';
  document.getElementById('signout').hidden = true;
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true });
  const status = statusEl();
  if (message) status.append(h('p', { class: 'error' }, message));
  const form = h('form', {
    id: 'signin',
    onsubmit: (e) => {
      e.preventDefault();
      const token = input.value.trim();
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      route();
    },
  },
  field('Token', input), h('button', { type: 'submit' }, 'Sign in'));
  main.append(h('h1', {}, 'Sign in'), status,
    h('p', {}, 'This agent needs a bearer token. It is kept in this tab only (session storage).'), form);
  ctx.ready();
  input.focus();
}

// ---------------------------------------------------------------- overview

function overviewPage(ctx) {
  document.title = 'Overview · Floe';
  const status = statusEl();
  const [cluster, agents, buffer, cache, rates] = Array.from({ length: 5 }, () => h('div'));
  const cost = h('div', { id: 'cost' });
  main.append(h('h1', {}, 'Overview'), status,
    section('Cluster', cluster), section('Agents', agents),
    h('div', { class: 'cols' }, section('Write buffer', buffer), section('Read cache', cache)),
    section('Object-store requests', rates),
    section('Object-store cost', cost,
      h('p', { class: 'hint' }, 'Prices: Amazon S3 Standard (us-east-1): PUT, COPY, POST and LIST $0.005 per 1,000 requests; ',
        'GET $0.0004 per 1,000; DELETE free. Storage and data transfer are not counted. ',
        'Cost per GiB = (PUTs + GETs + LISTs, of every kind) ÷ GiB of segments written, over the window.')));

  const samples = []; // { t, stats }, oldest first
  ctx.poll(REFRESH_MS, async () => {
    const [c, st] = await Promise.allSettled([ctx.api('GET', '/v1/cluster'), ctx.api('GET', '/v1/stats')]);
    if (!ctx.alive) return;
    const errors = [c, st].filter((r) => r.status === 'rejected').map((r) => r.reason);
    fill(status, ...errors.map(errorEl));
    if (c.status === 'fulfilled') renderCluster(c.value, cluster, agents);
    if (st.status === 'fulfilled') {
      const now = performance.now();
      const prev = samples[samples.length - 1];
      // Counters went down: the agent restarted; start the window again.
      if (prev && st.value.store.segments.put < prev.stats.store.segments.put) samples.length = 0;
      samples.push({ t: now, stats: st.value });
      while (samples.length > 2 && now - samples[0].t > WINDOW_MS) samples.shift();
      renderStats(samples, { buffer, cache, rates, cost });
    }
    if (errors.length === 2 && !main.dataset.ready) main.dataset.ready = 'error';
    else ctx.ready();
  });
}

function renderCluster(c, box, agentsBox) {
  fill(box, dl([
    ['Cluster id', c.cluster_id],
    ['Store', c.store ?? '(shown to admins)'],
    ['Log position (applied)', String(c.applied)],
    ['This agent', c.this_agent],
  ], { id: 'cluster' }));
  fill(agentsBox, table({ id: 'agents', 'aria-label': 'Agents' }, ['Agent', 'Roles'],
    c.agents.map((a) => h('tr', { 'data-agent': a.url },
      h('td', {}, a.url, a.url === c.this_agent ? h('span', { class: 'tag' }, 'this agent') : null),
      h('td', {}, a.roles.length ? a.roles.join(', ') : '—')))));
}

function renderStats(samples, box) {
  const last = samples[samples.length - 1].stats;
  const { held_bytes: held, budget_bytes: budget } = last.writer;
  const pct = budget ? (100 * held) / budget : 0;
  fill(box.buffer,
    h('label', { for: 'buffer' }, `Held: ${fmtBytes(held)} of ${fmtBytes(budget)} (${pct.toFixed(1)} %)`),
    h('meter', { id: 'buffer', min: 0, max: budget || 1, value: held, low: budget * 0.5, high: budget * 0.8, optimum: 0 }));
  const k = last.cache;
  fill(box.cache, dl([
    ['In memory', `${fmtBytes(k.bytes)} in ${fmtNum(k.entries)} entries`],
    ['On disk', `${fmtBytes(k.disk_bytes)} in ${fmtNum(k.disk_entries)} entries`],
    ['Lookups', fmtNum(k.lookups)],
    ['Loads from the store', `${fmtNum(k.loads)} (${fmtBytes(k.fetched_bytes)})`],
    ['Disk hits', fmtNum(k.disk_hits)],
  ], { id: 'cache' }));

  const first = samples[0].stats;
  const secs = (samples[samples.length - 1].t - samples[0].t) / 1000;
  if (samples.length < 2 || secs <= 0) {
    const wait = 'Collecting: rates appear after the next sample (every 5 s).';
    fill(box.rates, h('p', { class: 'hint' }, wait));
    fill(box.cost, h('p', { class: 'hint' }, wait));
    return;
  }
  const delta = (kind, field) => last.store[kind][field] - first.store[kind][field];
  const total = (field) => KINDS.reduce((sum, kind) => sum + delta(kind, field), 0);
  const row = (label, get) => h('tr', { 'data-kind': label },
    h('th', { scope: 'row' }, label),
    OPS.map((op) => h('td', { class: op }, fmtRate(get(op) / secs))),
    h('td', {}, `${fmtBytes(get('put_bytes') / secs)}/s`),
    h('td', {}, `${fmtBytes(get('get_bytes') / secs)}/s`));
  fill(box.rates,
    h('p', { class: 'hint' }, `Requests per second over the last ${Math.round(secs)} s.`),
    table({ id: 'store-rates', 'aria-label': 'Object-store requests per second' },
      ['Kind', 'PUT/s', 'GET/s', 'LIST/s', 'DELETE/s', 'Written', 'Read'],
      [...KINDS.map((kind) => row(kind, (f) => delta(kind, f))), row('all', total)]));

  const puts = total('put'), gets = total('get'), lists = total('list');
  const dollars = puts * PRICE.put + gets * PRICE.get + lists * PRICE.list;
  const gib = delta('segments', 'put_bytes') / 2 ** 30;
  fill(box.cost,
    h('p', { class: 'big' }, h('output', { id: 'cost-per-gib' }, gib > 0 ? fmtDollars(dollars / gib) : '—'), ' per GiB written'),
    h('p', {}, `Over the last ${Math.round(secs)} s: ${fmtNum(puts)} PUTs, ${fmtNum(gets)} GETs, ${fmtNum(lists)} LISTs `,
      `= ${fmtDollars(dollars)}; ${fmtBytes(gib * 2 ** 30)} of segments written.`,
      gib > 0 ? '' : ' No segments written in the window, so no cost per GiB yet.'));
}

// ---------------------------------------------------------------- topics

async function topicsPage(ctx) {
  document.title = 'Topics · Floe';
  const [status, list] = [statusEl(), h('div')];
  main.append(h('h1', {}, 'Topics'), status, list, createTopicForm(ctx));
  const { topics } = await ctx.api('GET', '/v1/topics');
  const retention = (t) => fmtDuration(t.retention_ms) + (t.retention_bytes > 0 ? ` or ${fmtBytes(t.retention_bytes)}` : '');
  fill(list,
    table({ id: 'topics', 'aria-label': 'Topics' }, ['Name', 'Partitions', 'Size', 'Retention'],
      topics.map((t) => h('tr', { 'data-topic': t.name },
        h('td', { class: 'name' }, h('a', { href: topicHref(t.name) }, t.name)),
        h('td', { class: 'partitions num' }, String(t.partitions)),
        h('td', { class: 'size num' }, fmtBytes(t.bytes)),
        h('td', { class: 'retention' }, retention(t))))),
    topics.length ? null : h('p', { class: 'hint' }, 'No topics yet.'));
  ctx.ready();
}

function createTopicForm(ctx) {
  const status = statusEl('create-status');
  const input = (id, attrs) => h('input', { id, name: id, ...attrs });
  return h('form', {
    id: 'create-topic',
    onsubmit: async (e) => {
      e.preventDefault();
      const f = e.target.elements;
      const name = f['new-topic-name'].value.trim();
      const partitions = Number(f['new-topic-partitions'].value);
      const ms = f['new-topic-retention'].value.trim();
      const body = { name, partitions, retention_ms: ms === '' ? null : Number(ms) };
      const what = `Create topic "${name}" with ${partitions} partition(s), retention ${ms === '' ? '7 d (default)' : fmtDuration(body.retention_ms)}?`;
      if (!confirm(what)) return;
      try {
        await ctx.api('POST', '/v1/topics', body);
        go(topicHref(name));
      } catch (err) { if (!quiet(err)) showError(status, err); }
    },
  },
  h('h2', {}, 'Create a topic'),
  field('Name', input('new-topic-name', { required: true, autocomplete: 'off', spellcheck: 'false' })),
  field('Partitions', input('new-topic-partitions', { type: 'number', min: 1, max: 10000, step: 1, value: 1, required: true })),
  field('Retention (ms)', input('new-topic-retention', { type: 'number', min: -1, step: 1 }), 'Empty: 7 days. -1: unlimited.'),
  h('button', { type: 'submit' }, 'Create topic'), status);
}

async function topicPage(ctx, name) {
  document.title = `${name} · Topics · Floe`;
  const [status, summary, parts] = [statusEl(), h('div'), h('div')];
  const formStatus = statusEl('retention-status');
  const msIn = h('input', { id: 'retention-ms', type: 'number', min: -1, step: 1, required: true });
  const bytesIn = h('input', { id: 'retention-bytes', type: 'number', min: -1, step: 1, required: true });
  const render = (t) => {
    fill(summary, dl([
      ['Retention by time', fmtDuration(t.retention_ms)],
      ['Retention by size', fmtLimit(t.retention_bytes)],
    ]));
    fill(parts, table({ id: 'partitions', 'aria-label': 'Partitions' },
      ['Partition', 'Log start', 'High watermark', 'Records', 'Size'],
      t.partitions.map((p) => h('tr', { 'data-partition': p.partition },
        h('td', { class: 'partition' }, h('a', { href: recordsHref(name, p.partition) }, `Partition ${p.partition}`)),
        h('td', { class: 'log-start num' }, String(p.log_start_offset)),
        h('td', { class: 'high-watermark num' }, String(p.high_watermark)),
        h('td', { class: 'count num' }, String(p.high_watermark - p.log_start_offset)),
        h('td', { class: 'size num' }, fmtBytes(p.bytes))))));
    msIn.value = String(t.retention_ms);
    bytesIn.value = String(t.retention_bytes);
  };
  const form = h('form', {
    id: 'retention',
    onsubmit: async (e) => {
      e.preventDefault();
      const body = { retention_ms: Number(msIn.value), retention_bytes: Number(bytesIn.value) };
      if (!confirm(`Set the retention of "${name}" to ${fmtDuration(body.retention_ms)} and ${fmtLimit(body.retention_bytes)}?`)) return;
      try {
        render(await ctx.api('PATCH', `/v1/topics/${enc(name)}`, body));
        note(formStatus, 'Retention updated.');
      } catch (err) { if (!quiet(err)) showError(formStatus, err); }
    },
  },
  h('h2', {}, 'Retention'),
  field('Time (ms)', msIn, '-1: unlimited.'), field('Size (bytes)', bytesIn, '-1: unlimited.'),
  h('button', { type: 'submit' }, 'Save retention'), formStatus);
  main.append(crumbs(['Topics', '#/topics'], [name]), h('h1', {}, name), status, summary,
    section('Partitions', parts), form);
  render(await ctx.api('GET', `/v1/topics/${enc(name)}`));
  ctx.ready();
}

// ---------------------------------------------------------------- records

// Bytes of a key, value or header value as fetched with encoding=base64 (or,
// where the agent names another encoding beside it, as that).
function toBytes(v, encoding) {
  if (v == null) return null;
  if (typeof v !== 'string') return new TextEncoder().encode(JSON.stringify(v));
  if (encoding && encoding !== 'base64') return new TextEncoder().encode(v);
  try { return Uint8Array.from(atob(v), (c) => c.charCodeAt(0)); } catch { return new TextEncoder().encode(v); }
}

function decodeRecord(r) {
  return {
    offset: r.offset,
    timestamp: r.timestamp,
    key: toBytes(r.key, r.key_encoding),
    value: toBytes(r.value, r.value_encoding) || new Uint8Array(),
    headers: Object.entries(r.headers || {}).map(([k, v]) => [k, toBytes(v, 'base64')]),
  };
}

const utf8 = new TextDecoder(); // not fatal: invalid bytes become U+FFFD

function showBytes(bytes) {
  if (view === 'hex') return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');
  const text = utf8.decode(bytes);
  if (view === 'json') { try { return prettyJson(text); } catch { /* not JSON: as text */ } }
  return text;
}

// Re-indents JSON text without going through numbers, so that integers beyond
// 2^53 are shown as written. Throws (via JSON.parse) when text is not JSON.
function prettyJson(text) {
  JSON.parse(text);
  const ws = (c) => c === ' ' || c === '\t' || c === '\n' || c === '\r';
  let out = '', depth = 0;
  const nl = () => `\n${'  '.repeat(depth)}`;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (ws(c)) continue;
    if (c === '"') { // copy a string through, escapes included
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j;
    } else if (c === '{' || c === '[') {
      let j = i + 1;
      while (ws(text[j])) j++;
      if (text[j] === (c === '{' ? '}' : ']')) { out += c + text[j]; i = j; } // {} and []
      else { depth++; out += c + nl(); }
    } else if (c === '}' || c === ']') { depth--; out += nl() + c; }
    else if (c === ',') out += `,${nl()}`;
    else if (c === ':') out += ': ';
    else out += c;
  }
  return out;
}

function recordRow(r) {
  return h('tr', { 'data-offset': r.offset },
    h('td', { class: 'offset num' }, String(r.offset)),
    h('td', { class: 'timestamp' }, isoTime(r.timestamp)),
    h('td', { class: 'key' }, r.key ? showBytes(r.key) : h('span', { class: 'none' }, '(no key)')),
    h('td', { class: 'value' }, showBytes(r.value)),
    h('td', { class: 'headers' }, r.headers.map(([k, v]) =>
      h('div', { class: 'header' }, h('span', { class: 'hname' }, k), ': ', h('span', { class: 'hvalue' }, showBytes(v))))));
}

const RECORD_COLUMNS = ['Offset', 'Timestamp', 'Key', 'Value', 'Headers'];

async function recordsPage(ctx, topic, partition, query) {
  const p = Number(partition);
  const base = `/v1/topics/${enc(topic)}/partitions/${p}`;
  document.title = `${topic}/${p} · Records · Floe`;
  const status = statusEl();
  const [shown, tailed] = [[], []]; // decoded records: the page's, the live tail's
  const [recordsBody, tailBody] = [h('tbody'), h('tbody')];
  const redraw = () => {
    fill(recordsBody, ...shown.map(recordRow));
    fill(tailBody, ...tailed.map(recordRow));
  };
  const byTime = query.has('timestamp');

  // Where to read from.
  const offsetIn = h('input', { id: 'seek-offset', type: 'number', min: 0, step: 1, value: query.get('offset') });
  const timeIn = h('input', { id: 'seek-time', type: 'datetime-local', step: 1,
    value: byTime ? localInput(Number(query.get('timestamp'))) : null });
  const fromOffset = h('input', { type: 'radio', name: 'from', id: 'from-offset', value: 'offset', checked: !byTime });
  const fromTime = h('input', { type: 'radio', name: 'from', id: 'from-time', value: 'time', checked: byTime });
  offsetIn.addEventListener('input', () => { fromOffset.checked = true; });
  timeIn.addEventListener('input', () => { fromTime.checked = true; });
  const seekStatus = statusEl('seek-status');
  const seek = h('form', {
    id: 'seek', onsubmit: (e) => {
      e.preventDefault();
      if (fromTime.checked) {
        const ms = new Date(timeIn.value).getTime(); // datetime-local: local time
        if (Number.isNaN(ms)) { fill(seekStatus, h('p', { class: 'error' }, 'Pick a date and time.')); return; }
        go(recordsHref(topic, p, `?timestamp=${ms}`));
      } else {
        const n = offsetIn.value.trim();
        go(recordsHref(topic, p, n === '' ? '' : `?offset=${Number(n)}`));
      }
    },
  },
  // Each choice: a radio, its label, and its input (labelled for screen readers).
  h('fieldset', {}, h('legend', {}, 'Read from'),
    h('div', { class: 'seek-opt' }, fromOffset, h('label', { for: 'from-offset' }, 'an offset'),
      h('label', { for: 'seek-offset', class: 'sr-only' }, 'Offset'), offsetIn),
    h('div', { class: 'seek-opt' }, fromTime, h('label', { for: 'from-time' }, 'a time (local)'),
      h('label', { for: 'seek-time', class: 'sr-only' }, 'Time, local'), timeIn),
    h('button', { type: 'submit' }, 'Read')), seekStatus);

  const viewSel = h('select', { id: 'view', onchange: (e) => { view = e.target.value; redraw(); } },
    [['text', 'Text (UTF-8)'], ['json', 'JSON, pretty'], ['hex', 'Hex']].map(([v, label]) =>
      h('option', { value: v, selected: v === view }, label)));
  const older = h('button', { type: 'button', id: 'older', disabled: true }, '← Older');
  const newer = h('button', { type: 'button', id: 'newer', disabled: true }, 'Newer →');
  const where = h('p', { class: 'hint', id: 'range', 'aria-live': 'polite' });

  main.append(
    crumbs(['Topics', '#/topics'], [topic, topicHref(topic)], [`Partition ${p}`]),
    h('h1', {}, `${topic} / partition ${p}`),
    seek,
    h('div', { class: 'field inline' }, h('label', { for: 'view' }, 'Show keys, values and headers as'), viewSel),
    status,
    h('section', { 'aria-labelledby': 'records-h' }, h('h2', { id: 'records-h' }, 'Records'),
      where, table({ id: 'records', 'aria-labelledby': 'records-h' }, RECORD_COLUMNS, recordsBody),
      h('div', { class: 'pager' }, older, newer)),
    tailSection(ctx, base, topic, p, tailed, tailBody),
    produceForm(ctx, topic, p));

  // Resolve the start: a time, an offset, or else the last page.
  let offset;
  if (byTime) {
    const ts = Number(query.get('timestamp'));
    offset = (await ctx.api('GET', `${base}/offsets?timestamp=${enc(ts)}`)).offset;
  } else if (query.has('offset')) {
    if (!/^\d+$/.test(query.get('offset'))) throw new ApiError(400, 'invalid_offset', 'the offset must be a whole number');
    offset = Number(query.get('offset'));
  } else {
    const t = await ctx.api('GET', `/v1/topics/${enc(topic)}`);
    const part = t.partitions.find((x) => x.partition === p);
    if (!part) throw new ApiError(404, 'partition_not_found', `topic ${topic} has no partition ${p}`);
    offset = Math.max(part.log_start_offset, part.high_watermark - PAGE_SIZE);
  }
  offsetIn.value = String(offset);

  let r;
  try {
    r = await ctx.api('GET', `${base}/records?offset=${offset}&max_records=${PAGE_SIZE}&encoding=base64`);
  } catch (e) {
    if (!(e instanceof ApiError) || e.code !== 'offset_out_of_range' || e.details.high_watermark == null) throw e;
    // Offer the ends of the partition instead.
    fill(status, errorEl(e), h('p', {}, 'Read from ',
      h('a', { href: recordsHref(topic, p, `?offset=${e.details.log_start_offset}`) }, `the log start (${e.details.log_start_offset})`),
      ' or ', h('a', { href: recordsHref(topic, p) }, 'the latest records'), '.'));
    main.dataset.ready = 'error';
    return;
  }
  shown.push(...r.records.map(decodeRecord));
  redraw();
  const lo = Math.max(r.log_start_offset ?? 0, offset - PAGE_SIZE);
  where.textContent = r.records.length
    ? `Offsets ${r.records[0].offset}–${r.records[r.records.length - 1].offset}; log start ${r.log_start_offset}, high watermark ${r.high_watermark}.`
    : `No records from offset ${offset}; log start ${r.log_start_offset}, high watermark ${r.high_watermark}.`;
  older.disabled = offset <= (r.log_start_offset ?? 0);
  newer.disabled = r.next_offset >= r.high_watermark;
  older.addEventListener('click', () => go(recordsHref(topic, p, `?offset=${lo}`)));
  newer.addEventListener('click', () => go(recordsHref(topic, p, `?offset=${r.next_offset}`)));
  ctx.ready();
}

// The live tail: server-sent events read through fetch(), so that the
// Authorization header goes with them (EventSource cannot send it).
function tailSection(ctx, base, topic, p, tailed, body) {
  const start = h('button', { type: 'button', id: 'tail-start' }, 'Start live tail');
  const stop = h('button', { type: 'button', id: 'tail-stop', disabled: true }, 'Stop');
  const status = statusEl('tail-status');
  let ctl = null;
  ctx.onEnd(() => ctl && ctl.abort());

  const add = (rec) => {
    const r = decodeRecord(rec);
    tailed.push(r);
    body.append(recordRow(r));
    if (tailed.length > TAIL_ROWS) { tailed.shift(); body.firstElementChild.remove(); }
  };

  start.addEventListener('click', async () => {
    ctl = new AbortController();
    const { signal } = ctl;
    [start.disabled, stop.disabled] = [true, false];
    note(status, 'Connecting…');
    try {
      // Start at the high watermark: only records written from now on.
      const t = await ctx.api('GET', `/v1/topics/${enc(topic)}`, null, { signal });
      const part = t.partitions.find((x) => x.partition === p);
      if (!part) throw new ApiError(404, 'partition_not_found', `no partition ${p}`);
      let next = part.high_watermark;
      // The agent ends the stream after an error event or when it stops; the
      // tail then resumes from the next offset. A refusal (4xx) ends the tail.
      for (;;) {
        try {
          const res = await ctx.api('GET', `${base}/records?offset=${next}&encoding=base64`, null,
            { signal, raw: true, headers: { Accept: 'text/event-stream' } });
          note(status, `Following from offset ${next}…`);
          await readEvents(res, (ev) => {
            if (ev.event === 'error') {
              let err = {};
              try { err = JSON.parse(ev.data); } catch { /* keep the raw text */ }
              throw new ApiError(0, err.code || 'tail_error', err.message || ev.data);
            }
            const rec = JSON.parse(ev.data);
            add(rec);
            next = /^\d+$/.test(ev.id || '') ? Number(ev.id) : rec.offset + 1; // the id is the next offset
          });
          note(status, 'The stream ended; reconnecting…');
        } catch (e) {
          // TypeError: the connection broke mid-stream.
          const transient = e instanceof TypeError || (e instanceof ApiError && (e.status === 0 || e.status >= 500));
          if (quiet(e) || !transient) throw e;
          fill(status, errorEl(e), h('p', {}, 'Reconnecting…'));
        }
        await sleep(2000, signal);
      }
    } catch (e) {
      if (!quiet(e)) showError(status, e);
      else if (ctx.alive) note(status, 'Stopped.');
    } finally {
      if (ctx.alive) { start.disabled = false; stop.disabled = true; }
    }
  });
  stop.addEventListener('click', () => ctl && ctl.abort());

  return h('section', { 'aria-labelledby': 'tail-h' }, h('h2', { id: 'tail-h' }, 'Live tail'),
    h('p', { class: 'hint' }, 'Shows records as they are written, from the high watermark on (the last ', String(TAIL_ROWS), ' are kept).'),
    h('div', { class: 'pager' }, start, stop), status,
    table({ id: 'tail', 'aria-labelledby': 'tail-h' }, RECORD_COLUMNS, body));
}

// Parses a text/event-stream body, calling onEvent({event, data, id}) per
// event; resolves when the stream ends. A throw from onEvent stops reading.
async function readEvents(res, onEvent) {
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '', data = [], event = '', id = null;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value;
      // A trailing \r may be half of \r\n: keep it for the next chunk.
      const cut = buf.endsWith('\r') ? buf.length - 1 : buf.length;
      const lines = buf.slice(0, cut).split(/\r\n|\r|\n/);
      buf = lines.pop() + buf.slice(cut);
      for (const line of lines) {
        if (line === '') { // a blank line dispatches the event
          if (data.length) onEvent({ event: event || 'message', data: data.join('\n'), id });
          [data, event] = [[], ''];
          continue;
        }
        if (line.startsWith(':')) continue; // a comment (keep-alive)
        const colon = line.indexOf(':');
        const name = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? '' : line.slice(colon + 1);
        if (val.startsWith(' ')) val = val.slice(1);
        if (name === 'data') data.push(val);
        else if (name === 'event') event = val;
        else if (name === 'id' && !val.includes('\0')) id = val;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

function produceForm(ctx, topic, p) {
  const status = statusEl('produce-status');
  const produced = h('output', { id: 'produced', for: 'produce-value' });
  const result = h('p', { class: 'ok', hidden: true }, 'Written at offset ', produced, '.');
  return h('form', {
    id: 'produce',
    onsubmit: async (e) => {
      e.preventDefault();
      const f = e.target.elements;
      fill(status);
      const headers = {};
      const lines = f['produce-headers'].value.split(/\r?\n/);
      for (const [i, line] of lines.entries()) {
        if (!line.trim()) continue;
        const eq = line.indexOf('=');
        if (eq <= 0) { status.append(h('p', { class: 'error' }, `Headers, line ${i + 1}: expected name=value.`)); return; }
        headers[line.slice(0, eq).trim()] = line.slice(eq + 1);
      }
      const record = { value: f['produce-value'].value, partition: p, headers };
      if (f['produce-key'].value !== '') record.key = f['produce-key'].value;
      try {
        const r = await ctx.api('POST', `/v1/topics/${enc(topic)}/records`, { records: [record] });
        produced.textContent = String(r.offsets[0].offset);
        result.hidden = false;
      } catch (err) { if (!quiet(err)) showError(status, err); }
    },
  },
  h('h2', {}, 'Produce a record'),
  field('Key', h('input', { id: 'produce-key', name: 'produce-key', autocomplete: 'off' }), 'Empty: no key.'),
  field('Value', h('textarea', { id: 'produce-value', name: 'produce-value', rows: 4 })),
  field('Headers', h('textarea', { id: 'produce-headers', name: 'produce-headers', rows: 2 }), 'Optional, one name=value per line.'),
  h('button', { type: 'submit' }, `Produce to partition ${p}`), status, result);
}

// ---------------------------------------------------------------- groups

async function groupsPage(ctx) {
  document.title = 'Groups · Floe';
  const [status, list] = [statusEl(), h('div')];
  main.append(h('h1', {}, 'Consumer groups'), status, list);
  const { groups } = await ctx.api('GET', '/v1/groups');
  fill(list,
    table({ id: 'groups', 'aria-label': 'Groups' }, ['Group', 'Coordinator'],
      groups.map((g) => h('tr', { 'data-group': g.group },
        h('td', { class: 'name' }, h('a', { href: `#/groups/${enc(g.group)}` }, g.group)),
        h('td', { class: 'coordinator' }, g.coordinator || 'none (no members)')))),
    groups.length ? null : h('p', { class: 'hint' }, 'No groups yet.'));
  ctx.ready();
}

function groupPage(ctx, name) {
  document.title = `${name} · Groups · Floe`;
  const [status, summary, members, offsets] = [statusEl(), h('div'), h('div'), h('div')];
  const chart = h('div', { class: 'chart' });
  main.append(crumbs(['Groups', '#/groups'], [name]), h('h1', {}, name), status, summary,
    section('Members', members), section('Committed offsets and lag', offsets),
    section('Total lag per topic', chart));

  const history = []; // { t, lag: Map topic → total lag }
  ctx.poll(REFRESH_MS, async () => {
    let g;
    try {
      g = await ctx.api('GET', `/v1/groups/${enc(name)}`);
    } catch (e) {
      if (quiet(e)) throw e;
      showError(status, e); // keep what was shown; try again next tick
      if (!main.dataset.ready) main.dataset.ready = 'error';
      return;
    }
    fill(status);
    fill(summary, dl([['Coordinator', g.coordinator || 'none (no members)'], ['Generation', String(g.generation)]]));
    refill(members,
      table({ id: 'members', 'aria-label': 'Members' }, ['Member', 'Topics', 'Assignments'],
        g.members.map((m) => h('tr', { 'data-member': m.member_id },
          h('td', { class: 'member' }, m.member_id),
          h('td', { class: 'topics' }, m.topics.join(', ')),
          h('td', { class: 'assignments' }, m.assignments.map((a) => `${a.topic}/${a.partition}`).join(', ') || '—')))),
      g.members.length ? null : h('p', { class: 'hint' }, 'No members.'));
    refill(offsets,
      table({ id: 'group-offsets', 'aria-label': 'Committed offsets' },
        ['Topic', 'Partition', 'Committed offset', 'High watermark', 'Lag'],
        g.offsets.map((o) => h('tr', { 'data-topic': o.topic, 'data-partition': o.partition },
          h('td', {}, h('a', { href: topicHref(o.topic) }, o.topic)),
          h('td', {}, h('a', { href: recordsHref(o.topic, o.partition, `?offset=${o.offset}`) }, String(o.partition))),
          h('td', { class: 'offset num' }, String(o.offset)),
          h('td', { class: 'high-watermark num' }, String(o.high_watermark)),
          h('td', { class: 'lag num' }, String(o.lag))))),
      g.offsets.length ? null : h('p', { class: 'hint' }, 'No committed offsets.'));

    const lag = new Map();
    for (const o of g.offsets) lag.set(o.topic, (lag.get(o.topic) || 0) + o.lag);
    history.push({ t: Date.now(), lag });
    if (history.length > LAG_SAMPLES) history.shift();
    fill(chart, lagChart(history));
    ctx.ready();
  });
}

// A small hand-drawn line chart: one polyline per topic, min/max labels.
function lagChart(history) {
  const topics = [...new Set(history.flatMap((x) => [...x.lag.keys()]))].sort();
  if (!topics.length) return h('p', { class: 'hint' }, 'No committed offsets, so no lag to draw.');
  const W = 600, H = 180, L = 56, R = 12, T = 12, B = 24;
  const values = history.flatMap((x) => [...x.lag.values()]);
  const lo = Math.min(...values);
  const hi = Math.max(...values) === lo ? lo + 1 : Math.max(...values);
  const t0 = history[0].t;
  const span = history[history.length - 1].t - t0 || 1;
  const x = (t) => (L + ((t - t0) / span) * (W - L - R)).toFixed(1);
  const y = (v) => (T + (1 - (v - lo) / (hi - lo)) * (H - T - B)).toFixed(1);
  const clock = (t) => new Date(t).toLocaleTimeString();
  const last = history[history.length - 1];
  const summary = topics.map((t) => `${t}: ${last.lag.get(t) ?? 0}`).join(', ');
  const svg = s('svg', { id: 'lag-chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': 'lag-chart-title' },
    s('title', { id: 'lag-chart-title' }, `Total lag per topic since ${clock(t0)}; now ${summary}`),
    s('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }),
    s('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }),
    s('text', { class: 'label', x: L - 6, y: T + 4, 'text-anchor': 'end' }, String(hi)),
    s('text', { class: 'label', x: L - 6, y: H - B, 'text-anchor': 'end' }, String(lo)),
    s('text', { class: 'label', x: L, y: H - 6 }, clock(t0)),
    s('text', { class: 'label', x: W - R, y: H - 6, 'text-anchor': 'end' }, clock(last.t)),
    topics.map((topic, i) => {
      const pts = history.filter((p) => p.lag.has(topic)).map((p) => `${x(p.t)},${y(p.lag.get(topic))}`);
      const [cx, cy] = pts[pts.length - 1].split(',');
      return s('g', { class: `series s${i % 6}` },
        s('polyline', { points: pts.join(' ') }), s('circle', { cx, cy, r: 3 }));
    }));
  return h('figure', {}, svg,
    h('figcaption', {}, h('ul', { class: 'legend' }, topics.map((t, i) =>
      h('li', {}, h('span', { class: `swatch s${i % 6}`, 'aria-hidden': 'true' }), `${t}: ${last.lag.get(t) ?? 0}`)))));
}

// ---------------------------------------------------------------- start

let lastPath = null;
window.addEventListener('hashchange', () => {
  route();
  // A new page (not just a new offset) takes focus, as a page load would.
  const { path } = parseHash();
  if (path !== lastPath && main.dataset.page !== 'signin') {
    window.scrollTo(0, 0);
    main.focus({ preventScroll: true });
  }
  lastPath = path;
});
// The skip link must not change the hash: the hash is the route.
document.getElementById('skip').addEventListener('click', (e) => {
  e.preventDefault();
  main.focus();
});
document.getElementById('signout').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  route();
});
lastPath = parseHash().path;
route();
