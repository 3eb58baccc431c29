// sitepower NOC dashboard: renders the daemon's state document, pushed over
// server-sent events. Battery bands count down locally between pushes, at the
// daemon clock's rate (which is warped in drills).
'use strict';
let state = null;
let clockRate = 1;  // daemon ms per browser ms
let anchor = null;  // {daemonMs, perfMs}

const $ = (sel) => document.querySelector(sel);
const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));

function daemonNow() {
  if (!anchor) return Date.now();
  return anchor.daemonMs + (performance.now() - anchor.perfMs) * clockRate;
}
function hhmm(ms) {
  if (!ms) return '--:--';
  const d = new Date(ms + (state ? state.offset_min : 0) * 60000);
  return d.toISOString().substring(11, 16);
}
function dur(min) {
  if (min === null || min === undefined || !isFinite(min)) return '–';
  const m = Math.round(min);
  if (Math.abs(m) < 60) return m + ' min';
  return (m < 0 ? '-' : '') + Math.floor(Math.abs(m) / 60) + ' h ' + String(Math.abs(m) % 60).padStart(2, '0');
}

function onState(s) {
  const perf = performance.now();
  if (anchor && state && s.now_unix_ms > state.now_unix_ms) {
    const dd = s.now_unix_ms - anchor.daemonMs, dp = perf - anchor.perfMs;
    if (dp > 200) clockRate = Math.max(0.1, dd / dp);
  }
  if (!anchor || perf - anchor.perfMs > 200) anchor = {daemonMs: s.now_unix_ms, perfMs: perf};
  if (s.speed) clockRate = s.speed;
  state = s;
  render();
}

function bandLeft(rt) {
  if (!rt) return null;
  const elapsed = (daemonNow() - rt.at_unix_ms) / 60000;
  return {p10: rt.p10 - elapsed, p50: rt.p50 - elapsed, p90: rt.p90 - elapsed};
}

function renderQueue() {
  const sites = Object.fromEntries(state.sites.map((x) => [x.id, x]));
  const rows = state.queue.map((q) => {
    const running = q.status === 'generator_running';
    const b = running ? null : bandLeft(sites[q.site] && sites[q.site].runtime);
    const margin = (q.deadline_unix_ms - q.running_unix_ms) / 60000;
    const cls = running ? '' : margin < 0 ? 'margin-neg' : margin < 15 ? 'margin-thin' : '';
    const rt = sites[q.site] && sites[q.site].runtime;
    const flagged = rt && rt.basis && rt.basis.includes('telemetry ');
    const band = running ? 'on generator' : b ? `<span class="band${flagged ? ' flagged' : ''}" title="${esc(rt.basis)}">${dur(b.p10)} / <b>${dur(b.p50)}</b> / ${dur(b.p90)}${flagged ? ' ⚠' : ''}</span>` : '–';
    return `<tr class="${q.tier}" data-task="${esc(q.task_id)}" data-site="${esc(q.site)}"><td>${esc(q.crew)}</td><td>${q.order}</td>
      <td title="${esc(q.site_name)}">${esc(q.site)}</td><td class="tier-${q.tier}">${esc(q.tier)}</td><td>${band}</td>
      <td>${esc(q.status.replace('_', ' '))}</td><td>${hhmm(q.eta_unix_ms)}</td><td>${hhmm(q.running_unix_ms)}</td>
      <td class="${cls}">${running ? '–' : dur(margin)}</td><td class="reason">${esc(q.reason)}</td></tr>`;
  });
  $('#queue tbody').innerHTML = rows.join('') || '<tr><td colspan="10">No tasks: every site is on mains or served.</td></tr>';
}

function renderSites() {
  const order = {down: 0, stale: 1, on_battery: 2, on_generator: 3, unknown: 4, on_mains: 5};
  const sorted = [...state.sites].sort((a, b) => (order[a.state] - order[b.state]) || a.id.localeCompare(b.id));
  $('#sites tbody').innerHTML = sorted.map((x) => {
    const b = bandLeft(x.runtime);
    const num = (v, d) => (v === null || v === undefined) ? '–' : Number(v).toFixed(d);
    const implausible = x.problems && x.problems.length
      ? ` <span class="margin-neg" title="${esc(x.problems.join('; '))}">⚠ implausible</span>` : '';
    const absent = x.absent_points ? ` <span title="${esc(x.absent_points)}">⊘ points absent</span>` : '';
    return `<tr data-site="${esc(x.id)}"><td title="${esc(x.device || '')}">${esc(x.id)}</td><td>${esc(x.name)}</td><td>${esc(x.grid)}</td>
      <td class="tier-${x.tier}">${esc(x.tier)}</td><td><span class="state ${x.state}">${esc(x.state.replace('_', ' '))}</span>${implausible}${absent}</td>
      <td>${num(x.ac_v, 0)}</td><td>${num(x.battery_v, 1)}</td><td>${num(x.battery_a, 1)}</td><td>${num(x.soc_pct, 0)}</td>
      <td title="${esc(x.runtime ? x.runtime.basis : '')}">${b && x.state === 'on_battery' ? dur(b.p50) + (x.telemetry && x.telemetry !== 'ok' ? ' ⚠ ' + esc(x.telemetry) : '') : '–'}</td><td>${esc(x.override || '')}${x.alert ? ` <span class="margin-neg" title="${esc(x.alert)}">⚠ report contradicted</span>` : ''}</td></tr>`;
  }).join('');
  const counts = {};
  for (const x of state.sites) counts[x.state] = (counts[x.state] || 0) + 1;
  $('#counts').innerHTML = ['on_battery', 'on_generator', 'down', 'stale', 'unknown', 'on_mains']
    .map((k) => `<span><span class="dot ${k}"></span>${counts[k] || 0} ${k.replace('_', ' ')}</span>`).join('');
  $('#site-ids').innerHTML = state.sites.map((x) => `<option value="${esc(x.id)}">`).join('');
  $('#crew-ids').innerHTML = state.crews.map((c) => `<option value="${esc(c.id)}">`).join('');
}

function renderMap() {
  const pts = state.sites.map((x) => [x.lat, x.lon]).concat(state.crews.map((c) => [c.lat, c.lon]));
  if (!pts.length) return;
  const lats = pts.map((p) => p[0]), lons = pts.map((p) => p[1]);
  const minLat = Math.min(...lats), maxLat = Math.max(...lats), minLon = Math.min(...lons), maxLon = Math.max(...lons);
  const k = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180);
  const w = Math.max((maxLon - minLon) * k, 1e-4), h = Math.max(maxLat - minLat, 1e-4);
  const scale = Math.min(560 / w, 360 / h);
  const xy = (lat, lon) => [20 + (lon - minLon) * k * scale, 380 - (lat - minLat) * scale];
  const byId = Object.fromEntries(state.sites.map((x) => [x.id, x]));
  let svg = '';
  for (const x of state.sites) for (const f of x.feeds || []) {
    if (!byId[f]) continue;
    const [x1, y1] = xy(x.lat, x.lon), [x2, y2] = xy(byId[f].lat, byId[f].lon);
    svg += `<line x1="${x1}" y1="${y1}" x2="${x2}" y2="${y2}" stroke="#445" stroke-dasharray="3 3"/>`;
  }
  for (const q of state.queue) {
    const c = state.crews.find((c) => c.id === q.crew), s = byId[q.site];
    if (!c || !s || q.order !== 1 || q.status === 'generator_running') continue;
    const [x1, y1] = xy(c.lat, c.lon), [x2, y2] = xy(s.lat, s.lon);
    svg += `<line x1="${x1}" y1="${y1}" x2="${x2}" y2="${y2}" stroke="#58a6ff" stroke-width="1.5" opacity=".7"/>`;
  }
  for (const x of state.sites) {
    const [cx, cy] = xy(x.lat, x.lon);
    const r = x.tier === 'vip' ? 7 : x.tier === 'key' ? 6 : 4.5;
    svg += `<circle cx="${cx}" cy="${cy}" r="${r}" class="${x.state}" stroke="${x.tier === 'vip' ? '#ffa657' : '#000'}" stroke-width="1.5"><title>${esc(x.id)} ${esc(x.name)} (${esc(x.state)})</title></circle>
      <text x="${cx + 8}" y="${cy + 4}" fill="#8b98a5" font-size="10">${esc(x.id)}</text>`;
  }
  for (const c of state.crews) {
    const [cx, cy] = xy(c.lat, c.lon);
    svg += `<rect x="${cx - 5}" y="${cy - 5}" width="10" height="10" fill="${c.available ? '#fff' : '#f85149'}" transform="rotate(45 ${cx} ${cy})"><title>crew ${esc(c.id)}: ${c.generators_left} generators</title></rect>
      <text x="${cx + 8}" y="${cy - 6}" fill="#fff" font-size="11" font-weight="bold">${esc(c.id)}</text>`;
  }
  $('#map').innerHTML = svg;
}

function renderEvents() {
  const evs = [...state.events].reverse().slice(0, 150);
  $('#events').innerHTML = evs.map((e) => `<li><time>${hhmm(e.at_unix_ms)}</time><b>${esc(e.kind)}</b>
    ${esc([e.site, e.crew, e.task].filter(Boolean).join(' '))} — ${esc(e.message)}</li>`).join('');
}

function render() {
  if (!state) return;
  $('#scenario').textContent = state.scenario || '';
  const p = state.plan;
  $('#plan-summary').textContent = p ? `planned ${hhmm(p.planned_at_unix_ms)} · ${p.vip_down} VIP predicted down · weighted down ${Math.round(p.weighted_down_min)} min` : '';
  renderQueue(); renderSites(); renderMap(); renderEvents();
  $('#clock').textContent = hhmm(daemonNow());
}

function tick() {
  $('#clock').textContent = state ? hhmm(daemonNow()) : '--:--';
  if (state) { renderQueue(); }
}

function connect() {
  const es = new EventSource('/events');
  es.addEventListener('state', (ev) => { $('#conn').className = 'conn up'; $('#conn').textContent = 'live'; onState(JSON.parse(ev.data)); });
  es.onerror = async () => {
    $('#conn').className = 'conn down'; $('#conn').textContent = 'reconnecting…';
    // A session that ended (expired, logged out, daemon restarted) goes back to the login form.
    const res = await fetch('/api/session').catch(() => null);
    if (res && res.status === 401) { es.close(); location.href = '/login.html'; }
  };
}

// The session cookie (HttpOnly, set by the login form) authenticates every
// request below; the page never sees a token.
$('#override').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const body = Object.fromEntries([...f.entries()].filter(([, v]) => v !== ''));
  const res = await fetch('/api/override', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)});
  if (res.status === 401) { location.href = '/login.html'; return; }
  const out = await res.json().catch(() => ({}));
  const el = $('#override-result');
  if (res.ok) { el.className = 'ok'; el.textContent = out.message; }
  else { el.className = 'err'; el.textContent = (out.error || res.statusText); }
});

async function start() {
  const res = await fetch('/api/session').catch(() => null);
  if (res && res.status === 401) { location.href = '/login.html'; return; }
  if (res && res.ok) $('#operator').textContent = (await res.json()).operator;
  connect();
  setInterval(tick, 1000);
}
start();
