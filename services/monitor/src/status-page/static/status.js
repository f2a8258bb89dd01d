// The infermesh status page: draws what the monitor sends on status/events (SSE), or, when
// it refuses live clients, what status/data answers every few seconds. No library, no build
// step. Every text from the server (model names come from worker heartbeats) is set with
// textContent or an attribute value, never parsed as HTML.
'use strict';

(function () {
  const SVG = 'http://www.w3.org/2000/svg';
  const POLL_MS = 5000;
  const CHART = { width: 320, height: 120, left: 46, right: 8, top: 8, bottom: 18 };
  /** Drift lines drawn beside the largest PSI: the features drifting most now. */
  const DRIFT_LINES = 5;

  // --- small DOM helpers --------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    for (const child of children) if (child !== null && child !== undefined) node.append(typeof child === 'string' ? document.createTextNode(child) : child);
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    setAttrs(node, attrs);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [name, value] of Object.entries(attrs || {})) if (value !== undefined && value !== null) node.setAttribute(name, String(value));
  }

  // --- formatting ---------------------------------------------------------------------------

  function num(v) {
    if (v === null || v === undefined || !Number.isFinite(v)) return '–';
    const a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toFixed(1) + 'M';
    if (a >= 1e4) return (v / 1e3).toFixed(1) + 'k';
    if (a >= 100 || Number.isInteger(v)) return v.toFixed(0);
    if (a >= 10) return v.toFixed(1);
    return v.toFixed(2);
  }

  const fmt = {
    rate: (v) => num(v) + '/s',
    ms: (v) => num(v) + ' ms',
    percent: (v) => (v === null || v === undefined ? '–' : (v * 100).toFixed(1) + '%'),
    psi: (v) => (v === null || v === undefined ? '–' : v.toFixed(3)),
  };

  function ago(ms) {
    if (ms < 1500) return 'just now';
    const s = Math.round(ms / 1000);
    if (s < 90) return s + ' s ago';
    const m = Math.round(s / 60);
    if (m < 90) return m + ' min ago';
    return Math.round(m / 60) + ' h ago';
  }

  /** 1, 2 or 5 times a power of ten, at least `v`: axis tops people read at a glance. */
  function niceCeil(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  // --- charts -------------------------------------------------------------------------------

  /**
   * A line chart over [from, to]: `series` is [{ label, values: [[atMs, value | null]] }]; a
   * null breaks the line. data-points says how many values the first series has (tests read it).
   */
  function lineChart({ name, title, series, from, to, format, yMax, guides, empty }) {
    const figure = el('figure', { class: 'chart', 'data-chart': name });
    figure.append(el('figcaption', null, title));
    const counts = series.map((s) => s.values.filter(([, v]) => v !== null).length);
    const root = svg('svg', {
      viewBox: `0 0 ${CHART.width} ${CHART.height}`, role: 'img', 'aria-label': title, 'data-points': counts[0] || 0,
    });
    figure.append(root);
    const plotW = CHART.width - CHART.left - CHART.right;
    const plotH = CHART.height - CHART.top - CHART.bottom;
    const all = series.flatMap((s) => s.values.map(([, v]) => v)).filter((v) => v !== null);
    const top = yMax !== undefined ? yMax : niceCeil(Math.max(0, ...all, ...(guides || []).map((g) => g.value)) * 1.05);
    const x = (t) => CHART.left + ((t - from) / Math.max(1, to - from)) * plotW;
    const y = (v) => CHART.top + plotH - (Math.min(v, top) / top) * plotH;

    root.append(svg('rect', { class: 'plot', x: CHART.left, y: CHART.top, width: plotW, height: plotH }));
    let labelledAt = Infinity;
    for (const g of guides || []) {
      if (g.value > top) continue;
      root.append(svg('line', { class: 'guide', x1: CHART.left, x2: CHART.left + plotW, y1: y(g.value), y2: y(g.value) }));
      // Guides squeezed together by a tall axis keep their lines; their labels would overlap.
      if (Math.abs(labelledAt - y(g.value)) < 10) continue;
      labelledAt = y(g.value);
      root.append(svg('text', { class: 'guide-label', x: CHART.left + plotW - 2, y: y(g.value) - 2, 'text-anchor': 'end' }, g.label));
    }
    root.append(svg('text', { class: 'axis', x: CHART.left - 4, y: CHART.top + 8, 'text-anchor': 'end' }, format(top)));
    root.append(svg('text', { class: 'axis', x: CHART.left - 4, y: CHART.top + plotH, 'text-anchor': 'end' }, format(0)));
    root.append(svg('text', { class: 'axis', x: CHART.left, y: CHART.height - 4 }, '−' + Math.round((to - from) / 60000) + ' min'));
    root.append(svg('text', { class: 'axis', x: CHART.left + plotW, y: CHART.height - 4, 'text-anchor': 'end' }, 'now'));

    if (all.length === 0) {
      root.append(svg('text', { class: 'no-data', x: CHART.left + plotW / 2, y: CHART.top + plotH / 2, 'text-anchor': 'middle' }, empty || 'no data in this window'));
    }
    series.forEach((s, i) => {
      let d = '';
      let pen = false;
      const dots = [];
      s.values.forEach(([t, v], j) => {
        if (v === null) {
          pen = false;
          return;
        }
        d += `${pen ? 'L' : 'M'}${x(t).toFixed(1)} ${y(v).toFixed(1)}`;
        // A value alone between gaps is a dot, or it would not show.
        const alone = !pen && (j + 1 >= s.values.length || s.values[j + 1][1] === null);
        if (alone) dots.push([t, v]);
        pen = true;
      });
      if (d) root.append(svg('path', { class: `line s${i % 8}`, d }));
      for (const [t, v] of dots) root.append(svg('circle', { class: `dot s${i % 8}`, cx: x(t), cy: y(v), r: 2 }));
    });

    const legend = el('ul', { class: 'legend' });
    series.forEach((s, i) => {
      const last = [...s.values].reverse().find(([, v]) => v !== null);
      legend.append(el('li', { class: `s${i % 8}` }, el('span', { class: 'swatch' }), s.label + ' ', el('b', null, last ? format(last[1]) : '–')));
    });
    figure.append(legend);
    return figure;
  }

  function note(text, cls) {
    const figure = el('figure', { class: `chart ${cls || ''}` });
    figure.append(el('p', { class: 'empty' }, text));
    return figure;
  }

  // --- sections -----------------------------------------------------------------------------

  function renderAlerts(data) {
    const box = document.getElementById('alerts');
    if (!data.measured.alerts) return box.replaceChildren(el('p', { class: 'empty' }, 'alerts are not evaluated by this monitor'));
    if (data.alerts.length === 0) return box.replaceChildren(el('p', { class: 'empty', 'data-empty': 'alerts' }, 'none firing'));
    const body = el('tbody');
    for (const a of data.alerts) {
      body.append(el('tr', { class: `alert ${a.severity === 'critical' ? 'critical' : 'warning'}`, 'data-alert-rule': a.rule, 'data-fingerprint': a.fingerprint },
        el('td', null, el('span', { class: 'badge' }, a.severity)),
        el('td', null, a.rule, el('div', { class: 'muted' }, a.kind)),
        el('td', null, a.model + (a.version ? ' ' + a.version : ''), a.feature ? el('div', { class: 'muted' }, a.feature) : null),
        el('td', { class: 'num' }, num(a.value) + ' / ' + num(a.threshold)),
        el('td', null, a.summary),
        el('td', { class: 'nowrap' }, a.startedMs > 0 ? ago(data.nowMs - a.startedMs) : '–'),
      ));
    }
    const more = data.alertsOmitted > 0 ? el('p', { class: 'muted' }, `${data.alertsOmitted} more not shown`) : null;
    box.replaceChildren(el('table', null,
      el('thead', null, el('tr', null, ...['severity', 'rule', 'model', 'value / threshold', 'summary', 'since'].map((h) => el('th', null, h)))),
      body), ...(more ? [more] : []));
  }

  function renderModels(data) {
    const box = document.getElementById('models');
    if (data.models.length === 0) return box.replaceChildren(el('p', { class: 'empty', 'data-empty': 'models' }, 'no predictions yet'));
    const cards = data.models.map((m) => modelCard(m, data));
    if (data.modelsOmitted > 0) cards.push(el('p', { class: 'muted' }, `${data.modelsOmitted} more model versions not shown (the page shows the first ${data.models.length} by name; /metrics has them all)`));
    box.replaceChildren(...cards);
  }

  function modelCard(m, data) {
    const from = data.sinceMs;
    const to = data.nowMs;
    const t = m.totals;
    const card = el('article', { class: 'model', 'data-model': m.model, 'data-version': m.version, 'data-requests': t.requests });
    card.append(el('h3', null, m.model + ' ', el('span', { class: 'version' }, 'version ' + m.version)));
    card.append(el('p', { class: 'totals' },
      `${num(t.requests)} requests · ${num(t.errors)} errors · ${num(t.items)} items · p50 ${fmt.ms(m.latencyMs.p50)} · p99 ${fmt.ms(m.latencyMs.p99)}`
        + (t.lastRequestMs > 0 ? ` · last request ${ago(data.nowMs - t.lastRequestMs)}` : '')));

    const charts = el('div', { class: 'charts' });
    if (data.measured.timeline) {
      const at = (p, key) => [p.atMs + m.stepMs / 2, p[key]];
      charts.append(lineChart({ name: 'throughput', title: 'Throughput (requests/s)', from, to, format: num, series: [{ label: 'req/s', values: m.points.map((p) => at(p, 'requestsPerS')) }] }));
      charts.append(lineChart({ name: 'latency', title: 'Latency (ms)', from, to, format: num, series: [
        { label: 'p50', values: m.points.map((p) => at(p, 'p50Ms')) },
        { label: 'p99', values: m.points.map((p) => at(p, 'p99Ms')) },
      ] }));
      charts.append(lineChart({ name: 'errors', title: 'Error rate', from, to, format: fmt.percent, series: [{ label: 'errors', values: m.points.map((p) => at(p, 'errorRate')) }] }));
    } else {
      charts.append(note('traffic over time is not measured by this monitor'));
    }
    charts.append(driftChart(m, data));
    charts.append(accuracyChart(m, data));
    card.append(charts);
    card.append(details(m));
    return card;
  }

  function driftChart(m, data) {
    if (!data.measured.drift) return note('drift is not measured by this monitor');
    if (!m.drift) return note('no drift profile for this version', 'drift');
    const d = m.drift;
    const drifting = [...d.features].sort((a, b) => b.psi - a.psi).slice(0, DRIFT_LINES).map((f) => f.feature);
    // A sample of too few inputs is not judged (no metric, no alert): it breaks the lines instead of drawing noise.
    const judged = (s, v) => (s.enoughInputs ? v : null);
    const series = [{ label: 'max PSI', values: d.history.map((s) => [s.atMs, judged(s, s.maxPsi)]) }]
      .concat(drifting.map((feature) => ({ label: feature, values: d.history.map((s) => [s.atMs, feature in s.psi ? judged(s, s.psi[feature]) : null]) })));
    const chart = lineChart({
      name: 'drift', title: 'Drift (PSI per feature)', from: data.sinceMs, to: data.nowMs, format: fmt.psi, series,
      guides: [{ value: 0.1, label: 'moderate' }, { value: 0.25, label: 'large' }],
    });
    if (!d.enoughInputs) chart.append(el('p', { class: 'muted' }, `${num(d.windowInputs)} inputs in the window: too few to judge`));
    return chart;
  }

  function accuracyChart(m, data) {
    if (!data.measured.accuracy) return note('accuracy is not measured by this monitor');
    if (!m.accuracy) return note('no feedback yet', 'accuracy');
    const a = m.accuracy;
    return lineChart({
      name: 'accuracy', title: `Accuracy (last ${num(a.recentLabelled)} labelled)`, from: data.sinceMs, to: data.nowMs, format: fmt.percent, yMax: 1,
      series: [{ label: 'recent', values: a.history.map((s) => [s.atMs, s.recentLabelled > 0 ? s.recentAccuracy : null]) }],
      empty: 'no labelled predictions in this window',
    });
  }

  function details(m) {
    const parts = el('div', { class: 'details' });
    if (m.drift && m.drift.features.length > 0) {
      const rows = [...m.drift.features].sort((a, b) => b.psi - a.psi).map((f) => el('tr', { 'data-feature': f.feature },
        el('td', null, f.feature),
        el('td', { class: 'num' }, fmt.psi(f.psi)),
        el('td', { class: 'bar' }, el('span', { class: f.psi >= 0.25 ? 'large' : f.psi >= 0.1 ? 'moderate' : 'small', 'data-width': Math.min(100, (f.psi / 0.5) * 100).toFixed(0) })),
      ));
      parts.append(el('table', { class: 'features' }, el('caption', null, `drift over the last ${Math.round(m.drift.windowMs / 60000)} min (${num(m.drift.windowInputs)} inputs)`),
        el('tbody', null, ...rows)));
    }
    const lines = [];
    if (m.accuracy) {
      const a = m.accuracy;
      lines.push(`${num(a.correct)} of ${num(a.labelled)} labelled inputs correct (${fmt.percent(a.labelled > 0 ? a.correct / a.labelled : null)} in all)`);
    }
    if (m.modelFeedback) {
      const f = m.modelFeedback;
      lines.push(`feedback for ${m.model}: ${num(f.applied)} applied, ${num(f.unknown)} unknown, ${num(f.expired)} expired, ${num(f.mismatched)} mismatched, ${num(f.ambiguous)} ambiguous`);
    }
    for (const s of m.shadows ?? []) {
      const agreement = s.compared > 0 ? `agreed ${fmt.percent(s.agreed / s.compared)} of ${num(s.compared)} compared` : 'agreement unknown (no predicted labels to compare)';
      lines.push(el('span', { 'data-shadow': s.version }, `shadow version ${s.version}: ${num(s.requests)} copies, ${agreement}, ${num(s.errors)} errors, p50 ${fmt.ms(s.latencyMs.p50)} · p99 ${fmt.ms(s.latencyMs.p99)}`));
    }
    if (lines.length > 0) parts.append(el('div', { class: 'feedback' }, ...lines.map((line) => el('p', null, line))));
    return parts;
  }

  function renderWorkers(data) {
    const box = document.getElementById('workers');
    if (data.workers.length === 0) return box.replaceChildren(el('p', { class: 'empty', 'data-empty': 'workers' }, 'no workers heard from in the last 5 s'));
    const body = el('tbody');
    for (const w of data.workers) {
      const models = w.models.slice(0, 12).map((m) => `${m.name} ${m.version}${m.ready ? '' : ' (loading)'}`).join(', ') + (w.models.length > 12 ? ` and ${w.models.length - 12} more` : '');
      body.append(el('tr', { 'data-worker': w.id, class: w.draining ? 'draining' : '' },
        el('td', null, w.id),
        el('td', null, w.device),
        el('td', null, w.provider),
        el('td', null, models),
        el('td', { class: 'num' }, num(w.queueDepth)),
        el('td', { class: 'num' }, num(w.inFlight)),
        el('td', { class: 'num nowrap', title: 'resident memory of the whole worker process, every model it holds' }, w.rssBytes == null ? '–' : `${(w.rssBytes / 1024 / 1024).toFixed(1)} MiB`),
        el('td', { class: 'nowrap' }, w.draining ? 'draining' : 'serving'),
        el('td', { class: 'nowrap' }, ago(data.nowMs - w.lastSeenMs)),
      ));
    }
    const more = data.workersOmitted > 0 ? el('p', { class: 'muted' }, `${data.workersOmitted} more not shown`) : null;
    box.replaceChildren(el('table', null,
      el('thead', null, el('tr', null, ...['worker', 'device', 'provider', 'models', 'queue', 'in flight', 'memory', 'state', 'last seen'].map((h) => el('th', null, h)))),
      body), ...(more ? [more] : []));
  }

  function render(data) {
    renderAlerts(data);
    renderModels(data);
    renderWorkers(data);
    // Bar widths are set here, not in a style attribute: the page's policy allows no inline styles.
    for (const bar of document.querySelectorAll('td.bar span[data-width]')) bar.style.width = bar.getAttribute('data-width') + '%';
    document.getElementById('updated').textContent = 'updated ' + new Date(data.nowMs).toLocaleTimeString();
    document.body.setAttribute('data-updated-at', String(data.nowMs));
  }

  // --- connection ---------------------------------------------------------------------------

  function connection(state, text) {
    const node = document.getElementById('connection');
    node.setAttribute('data-state', state);
    node.textContent = text;
  }

  function poll() {
    fetch('status/data', { cache: 'no-store' })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error('HTTP ' + r.status))))
      .then((data) => {
        connection('polling', 'polling every ' + POLL_MS / 1000 + ' s');
        render(data);
      })
      .catch(() => connection('down', 'monitor unreachable'))
      .finally(() => setTimeout(poll, POLL_MS));
  }

  function live() {
    const events = new EventSource('status/events');
    events.addEventListener('status', (event) => {
      connection('live', 'live');
      render(JSON.parse(event.data));
    });
    events.addEventListener('error', () => {
      // CLOSED: the server answered other than a stream (503 when it has too many live clients): poll instead.
      if (events.readyState === EventSource.CLOSED) poll();
      else connection('reconnecting', 'reconnecting…');
    });
  }

  live();
})();
