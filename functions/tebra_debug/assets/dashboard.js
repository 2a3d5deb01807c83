// tebra_debug dashboard: polls debug/redis with the admin token and draws
// live SVG charts. No libraries, no external requests, no storage: the token
// lives in the `token` variable of this closure and nowhere else.
'use strict';

(function () {
  const SVG = 'http://www.w3.org/2000/svg';
  const W = 640, H = 220, PAD = { left: 52, right: 12, top: 12, bottom: 26 };
  const MAX_SAMPLES = 120;
  const PROBE = 5;

  const params = new URLSearchParams(location.search);
  const wanted = parseInt(params.get('interval_ms') || '', 10);
  const INTERVAL = Number.isFinite(wanted) ? Math.min(Math.max(wanted, 250), 60000) : 2000;

  const main = document.getElementById('dashboard');
  const form = document.getElementById('login');
  const input = document.getElementById('token');
  const loginError = document.getElementById('login-error');
  const banner = document.getElementById('banner');
  const statusLine = document.getElementById('status-line');
  const pauseButton = document.getElementById('pause');
  const forgetButton = document.getElementById('forget');

  let token = null;
  let timer = null;
  let paused = false;
  let generation = 0;
  let previous = null;
  const samples = [];

  // Each chart: its series (label, how to read a value from a sample) and
  // how to format its axis.
  const CHARTS = {
    latency: {
      series: [
        { label: 'probe p50', get: (s) => s.probeP50 },
        { label: 'probe p99', get: (s) => s.probeP99 },
        { label: 'client p99 (60 s)', get: (s) => s.clientP99 },
      ],
      format: (v) => fixed(v, v < 10 ? 2 : 1),
    },
    ops: {
      series: [
        { label: 'server', get: (s) => s.serverOps },
        { label: 'this function', get: (s) => s.clientOps },
      ],
      format: (v) => fixed(v, v < 10 ? 1 : 0),
    },
    hit_rate: {
      series: [
        { label: 'since last sample', get: (s) => s.hitRateInterval },
        { label: 'since server start', get: (s) => s.hitRateLifetime },
      ],
      format: (v) => fixed(v, 1),
      fixedMax: 100,
    },
    memory: {
      series: [
        { label: 'used', get: (s) => s.memoryUsed },
        { label: 'maxmemory', get: (s) => s.memoryMax, limit: true },
      ],
      format: (v) => fixed(v, v < 10 ? 2 : 1),
    },
  };

  document.getElementById('interval').textContent =
    INTERVAL >= 1000 ? fixed(INTERVAL / 1000, INTERVAL % 1000 ? 2 : 0) + ' s' : INTERVAL + ' ms';

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const value = input.value.trim();
    input.value = '';
    if (!value) {
      loginError.textContent = 'Enter the ADMIN_TOKEN of this function.';
      return;
    }
    token = value;
    loginError.textContent = '';
    start();
  });

  pauseButton.addEventListener('click', () => {
    paused = !paused;
    pauseButton.textContent = paused ? 'Resume' : 'Pause';
    if (!paused) schedule(0);
    else clearTimeout(timer);
    setStatus(paused ? 'paused' : 'resuming…');
  });

  forgetButton.addEventListener('click', () => stop('Token forgotten.'));

  function start() {
    generation += 1;
    paused = false;
    pauseButton.textContent = 'Pause';
    pauseButton.disabled = false;
    forgetButton.disabled = false;
    main.dataset.state = 'connecting';
    setStatus('connecting…');
    schedule(0);
  }

  function stop(message) {
    token = null;
    generation += 1;
    clearTimeout(timer);
    pauseButton.disabled = true;
    forgetButton.disabled = true;
    main.dataset.state = 'login';
    loginError.textContent = message || '';
    setStatus('waiting for the admin token');
    input.focus();
  }

  function schedule(delay) {
    clearTimeout(timer);
    const mine = generation;
    timer = setTimeout(() => poll(mine), delay);
  }

  async function poll(mine) {
    if (token === null || paused || mine !== generation) return;
    const controller = new AbortController();
    const abort = setTimeout(() => controller.abort(), 15000);
    try {
      const response = await fetch('debug/redis?probe=' + PROBE, {
        headers: { Authorization: 'Bearer ' + token, Accept: 'application/json' },
        cache: 'no-store',
        credentials: 'omit',
        referrerPolicy: 'no-referrer',
        signal: controller.signal,
      });
      if (mine !== generation) return;
      if (response.status === 401) {
        stop('The token was rejected (401). Check ADMIN_TOKEN.');
        return;
      }
      if (response.status === 404) {
        stop('The admin endpoints are disabled on this function (ADMIN_TOKEN is unset).');
        return;
      }
      if (!response.ok) {
        let message = 'HTTP ' + response.status;
        try {
          const body = await response.json();
          if (body && body.error && body.error.message) message += ': ' + body.error.message;
        } catch (_) { /* not JSON */ }
        fail(message);
      } else {
        const report = await response.json();
        if (mine !== generation) return;
        record(report);
      }
    } catch (error) {
      if (mine === generation) fail('cannot reach the function (' + (error && error.name || 'error') + ')');
    } finally {
      clearTimeout(abort);
    }
    if (mine === generation && token !== null && !paused) schedule(INTERVAL);
  }

  function fail(message) {
    main.dataset.state = 'error';
    main.dataset.lastError = message;
    showBanner('Polling failed: ' + message);
    setStatus('error · retrying every ' + document.getElementById('interval').textContent);
  }

  function record(report) {
    const server = report.server;
    const client = report.client || {};
    const probe = report.probe || {};
    const t = report.sampled_at_ms || Date.now();
    const sample = {
      t,
      probeP50: probe.completed > 0 ? probe.latency.p50_ms : null,
      probeP99: probe.completed > 0 ? probe.latency.p99_ms : null,
      clientP99: client.latency && client.latency.count > 0 ? client.latency.p99_ms : null,
      serverOps: server && isNum(server.ops_per_sec) ? server.ops_per_sec : null,
      clientOps: null,
      hitRateInterval: null,
      hitRateLifetime: server && isNum(server.keyspace.hit_rate) ? server.keyspace.hit_rate * 100 : null,
      memoryUsed: server && isNum(server.memory.used_bytes) ? server.memory.used_bytes / 1048576 : null,
      memoryMax: server && isNum(server.memory.max_bytes) ? server.memory.max_bytes / 1048576 : null,
      operations: client.operations,
      hits: server ? server.keyspace.hits : null,
      misses: server ? server.keyspace.misses : null,
    };
    if (previous) {
      const seconds = (t - previous.t) / 1000;
      if (seconds > 0 && isNum(sample.operations) && isNum(previous.operations) &&
          sample.operations >= previous.operations) {
        sample.clientOps = (sample.operations - previous.operations) / seconds;
      }
      if ([sample.hits, sample.misses, previous.hits, previous.misses].every(isNum)) {
        const hits = sample.hits - previous.hits;
        const reads = hits + (sample.misses - previous.misses);
        if (reads > 0 && hits >= 0) sample.hitRateInterval = (100 * hits) / reads;
      }
    }
    previous = sample;
    samples.push(sample);
    while (samples.length > MAX_SAMPLES) samples.shift();

    main.dataset.state = report.status === 'ok' ? 'live' : 'degraded';
    main.dataset.samples = String(samples.length);
    main.dataset.lastSampleMs = String(t);
    delete main.dataset.lastError;
    if (server && server.version) main.dataset.redisVersion = server.version;
    if (report.server_error) {
      showBanner('Redis cannot be read: ' + report.server_error.message +
        ' (' + report.server_error.type + '). Client figures below are still live.');
    } else {
      hideBanner();
    }
    setStatus((report.status === 'ok' ? 'live' : 'degraded') + ' · updated ' +
      new Date(t).toLocaleTimeString());
    fill(report);
    for (const [name, chart] of Object.entries(CHARTS)) draw(name, chart);
  }

  function fill(report) {
    const server = report.server;
    const client = report.client || {};
    const probe = report.probe || {};
    const errors = client.errors || {};
    const ms = (v) => (isNum(v) ? fixed(v, v < 10 ? 3 : 1) + ' ms' : '—');
    field('target', report.target);
    if (server) {
      field('server.version', server.version ? 'Redis ' + server.version : '—');
      field('server.mode', server.mode);
      field('server.role', server.role);
      field('server.uptime', duration(server.uptime_secs));
      field('server.clients', count(server.clients.connected) + ' connected');
      field('server.blocked', count(server.clients.blocked));
      field('server.rejected', count(server.clients.rejected));
      field('server.memory', bytes(server.memory.used_bytes));
      field('server.maxmemory', isNum(server.memory.max_bytes) ? bytes(server.memory.max_bytes) : 'no limit');
      field('server.policy', server.memory.eviction_policy);
      field('server.ops', count(server.ops_per_sec));
      field('server.keys', count(server.keyspace.keys));
      field('server.commands', count(server.total_commands));
      field('server.hit_rate', isNum(server.keyspace.hit_rate) ? fixed(server.keyspace.hit_rate * 100, 1) + ' %' : 'no reads yet');
      field('server.hits', count(server.keyspace.hits));
      field('server.misses', count(server.keyspace.misses));
      field('server.evicted', count(server.keyspace.evicted_keys));
      field('server.expired', count(server.keyspace.expired_keys));
    }
    const circuit = client.circuit || {};
    const circuitField = field('client.circuit', 'circuit ' + (circuit.state || '—').replace('_', '-'));
    if (circuitField) circuitField.className = 'state-' + (circuit.state || 'unknown');
    field('client.pool', client.pool ? client.pool.open + '/' + client.pool.size + ' ' + client.pool.kind : '—');
    field('client.operations', count(client.operations));
    field('client.fallbacks', count(client.fallbacks));
    const total = ['connect', 'timeout', 'auth', 'other'].reduce((n, k) => n + (errors[k] || 0), 0);
    field('client.errors', count(total));
    field('client.errors_by_kind', ['connect', 'timeout', 'auth', 'other']
      .map((k) => k + ' ' + count(errors[k] || 0)).join(' · '));
    const lat = client.latency || {};
    field('client.latency', lat.count > 0
      ? [lat.p50_ms, lat.p95_ms, lat.p99_ms].map((v) => fixed(v, 2)).join(' / ') + ' ms'
      : 'no operations in 60 s');
    field('probe.p50', probe.completed > 0 ? ms(probe.latency.p50_ms) : (probe.type ? 'failed' : '—'));
    field('probe.p99', probe.completed > 0 ? ms(probe.latency.p99_ms) : '—');
  }

  function draw(name, chart) {
    const figure = document.querySelector('figure[data-chart="' + name + '"]');
    const svg = figure.querySelector('svg');
    const legend = figure.querySelector('.legend');
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    while (legend.firstChild) legend.removeChild(legend.firstChild);

    const points = samples.filter((s) => chart.series.some((c) => isNum(c.get(s))));
    figure.dataset.points = String(points.length);
    const last = [...samples].reverse().map((s) => chart.series[0].get(s)).find(isNum);
    figure.dataset.last = isNum(last) ? String(last) : '';

    const x0 = PAD.left, x1 = W - PAD.right, y0 = H - PAD.bottom, y1 = PAD.top;
    let max = chart.fixedMax || 0;
    if (!chart.fixedMax) {
      for (const s of samples) for (const c of chart.series) {
        const v = c.get(s);
        if (isNum(v) && v > max) max = v;
      }
      max = niceMax(max);
    }
    for (let i = 0; i <= 4; i++) {
      const y = y0 - ((y0 - y1) * i) / 4;
      svg.appendChild(el('line', { x1: x0, x2: x1, y1: y, y2: y, class: 'grid' }));
      const label = el('text', { x: x0 - 6, y: y + 4, 'text-anchor': 'end', class: 'axis' });
      label.textContent = chart.format((max * i) / 4);
      svg.appendChild(label);
    }
    // The last MAX_SAMPLES polls; a shorter history is spread over the
    // width (at least ten polls' worth) rather than squeezed at the right.
    const tEnd = samples.length ? samples[samples.length - 1].t : Date.now();
    const tFirst = samples.length ? samples[0].t : tEnd;
    const span = Math.max(tEnd - tFirst, INTERVAL * 10, 1);
    const tStart = tEnd - span;
    const xLabelLeft = el('text', { x: x0, y: H - 6, class: 'axis' });
    xLabelLeft.textContent = '−' + duration(Math.round(span / 1000));
    const xLabelRight = el('text', { x: x1, y: H - 6, 'text-anchor': 'end', class: 'axis' });
    xLabelRight.textContent = 'now';
    svg.appendChild(xLabelLeft);
    svg.appendChild(xLabelRight);
    if (!points.length) {
      const empty = el('text', { x: (x0 + x1) / 2, y: (y0 + y1) / 2, 'text-anchor': 'middle', class: 'empty' });
      empty.textContent = name === 'hit_rate' ? 'no key reads yet' : 'waiting for data…';
      svg.appendChild(empty);
    }
    const xOf = (t) => x0 + ((x1 - x0) * (t - tStart)) / span;
    const yOf = (v) => y0 - ((y0 - y1) * Math.min(v, max)) / (max || 1);

    chart.series.forEach((c, index) => {
      let segment = [];
      const segments = [segment];
      for (const s of samples) {
        const v = c.get(s);
        if (isNum(v)) segment.push([xOf(s.t), yOf(v)]);
        else if (segment.length) segments.push((segment = []));
      }
      for (const seg of segments) {
        if (seg.length === 1) {
          svg.appendChild(el('circle', { cx: seg[0][0], cy: seg[0][1], r: 2.5, class: 'c' + index, fill: 'currentColor' }));
        } else if (seg.length > 1) {
          svg.appendChild(el('polyline', {
            points: seg.map((p) => p[0].toFixed(1) + ',' + p[1].toFixed(1)).join(' '),
            class: 'series c' + index + (c.limit ? ' limit' : ''),
          }));
        }
      }
      const latest = [...samples].reverse().map(c.get).find(isNum);
      const item = document.createElement('span');
      item.className = 'c' + index;
      item.appendChild(document.createTextNode(c.label + ' '));
      const value = document.createElement('b');
      value.textContent = isNum(latest) ? chart.format(latest) : '—';
      item.appendChild(value);
      legend.appendChild(item);
    });
  }

  function el(tag, attributes) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, String(v));
    return node;
  }

  function field(name, value) {
    const node = document.querySelector('[data-field="' + name + '"]');
    if (node) node.textContent = value === null || value === undefined || value === '' ? '—' : String(value);
    return node;
  }

  function setStatus(text) { statusLine.textContent = text; }
  function showBanner(text) { banner.textContent = text; banner.hidden = false; }
  function hideBanner() { banner.hidden = true; banner.textContent = ''; }
  function isNum(v) { return typeof v === 'number' && Number.isFinite(v); }
  function fixed(v, digits) { return isNum(v) ? v.toFixed(digits) : '—'; }
  function count(v) { return isNum(v) ? Math.round(v).toLocaleString('en-US') : '—'; }

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    // Four grid steps: multiples whose quarter is a round number.
    for (const m of [1, 2, 4, 6, 8, 10]) if (v * 1.1 <= m * p) return m * p;
    return 10 * p;
  }

  function bytes(v) {
    if (!isNum(v)) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return fixed(v, i === 0 ? 0 : 1) + ' ' + units[i];
  }

  function duration(secs) {
    if (!isNum(secs)) return '—';
    if (secs < 60) return secs + ' s';
    if (secs < 3600) return Math.floor(secs / 60) + ' min';
    if (secs < 86400) return Math.floor(secs / 3600) + ' h ' + Math.floor((secs % 3600) / 60) + ' min';
    return Math.floor(secs / 86400) + ' d ' + Math.floor((secs % 86400) / 3600) + ' h';
  }

  for (const [name, chart] of Object.entries(CHARTS)) draw(name, chart);
  input.focus();
})();
