// The NOC dashboard in a real browser (Debian's chromium, driven by
// playwright-core) during a running Wuzhai drill: without a session the page
// sends the browser to the login form and the API refuses (401); a wrong token
// is refused on the form; the NOC token logs in (an HttpOnly, SameSite=Strict
// cookie the page's script cannot read); the dashboard sees the 18 sites and
// the live queue, an operator holds a site through the form, the plan changes
// (the held site's task leaves the queue), the override is in the event log
// under the operator's name, and a screenshot is saved.
//
//   node dashboard_test.mjs BIN_DIR SCENARIO_DIR SCREENSHOT.png
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const [bin, scenarios, shot] = process.argv.slice(2);
let failures = 0;
const check = (ok, what) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures++;
};

const drill = spawn(`${bin}/sitepower-drill`,
  [`${scenarios}/wuzhai-2020-03-08.yaml`, '--speed', '120', '--hold-s', '60', '--quiet'],
  { stdio: ['ignore', 'pipe', 'inherit'] });
let daemonPid = 0;
const cleanup = () => {
  try { drill.kill('SIGTERM'); } catch {}  // the drill stops its daemon and removes its temp dir
  try { if (daemonPid) process.kill(daemonPid, 'SIGTERM'); } catch {}
};
process.on('exit', cleanup);

let browser;
let workDir = '';
try {
  const info = await new Promise((resolve, reject) => {
    let out = '';
    drill.stdout.on('data', (d) => {
      out += d;
      const url = out.match(/dashboard: (http:\/\/\S+)/);
      const token = out.match(/noc token: (\S+)\s+\(work dir (\S+)\)/);
      if (url && token) resolve({ url: url[1], token: token[1], dir: token[2] });
    });
    drill.on('exit', (code) => reject(new Error(`drill exited (${code}) before the dashboard:\n${out}`)));
    setTimeout(() => reject(new Error('no dashboard line within 30 s')), 30000);
  });
  workDir = info.dir;
  try { daemonPid = JSON.parse(readFileSync(`${info.dir}/state.json`, 'utf8')).pid || 0; } catch {}
  check(/^http:\/\/127\.0\.0\.1:\d+\/$/.test(info.url), `drill printed the dashboard URL ${info.url}`);

  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu'] });
  const context = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(info.url);

  // No session: the dashboard sends the browser to the login form.
  await page.waitForURL(/\/login\.html$/, { timeout: 10000 });
  check(true, 'without a session the dashboard goes to the login form');
  const anonymous = await page.evaluate(async () => Promise.all(
    ['/api/state', '/api/session'].map(async (p) => (await fetch(p)).status)));
  check(anonymous.every((s) => s === 401), `the API refuses a browser without a session (${anonymous})`);
  const refused = await page.evaluate(async () => (await fetch('/api/override', {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ action: 'hold', site: 'WZ-01', why: 'no token' }),
  })).status);
  check(refused === 401, `an override without a NOC credential is refused (${refused})`);
  await page.fill('#login input[name=token]', 'not-the-token');
  await Promise.all([page.waitForNavigation(), page.click('#login button[type=submit]')]);
  check(/unknown token/.test(await page.textContent('#login-error').catch(() => '')),
    'a wrong token is refused on the login form');
  await page.fill('#login input[name=token]', info.token);
  await Promise.all([page.waitForNavigation(), page.click('#login button[type=submit]')]);
  check(new URL(page.url()).pathname === '/', `logged in, back on the dashboard (${page.url()})`);
  const cookie = (await context.cookies()).find((c) => c.name === 'sp_session');
  check(cookie && cookie.httpOnly && cookie.sameSite === 'Strict',
    `the session cookie is HttpOnly and SameSite=Strict (${JSON.stringify(cookie && { httpOnly: cookie.httpOnly, sameSite: cookie.sameSite })})`);
  check(!(await page.evaluate(() => document.cookie)).includes('sp_session'), 'the page script cannot read the session');
  await page.waitForFunction(() => document.querySelector('#operator').textContent.length > 0, null, { timeout: 10000 });
  check(true, `the operator is shown: ${await page.textContent('#operator')}`);

  await page.waitForFunction(() => document.querySelectorAll('#sites tbody tr').length === 18, null, { timeout: 20000 });
  check(true, 'the 18 Wuzhai sites are listed');
  // Mains fails at 08:30 (15 s of wall time at 120x): tasks arrive live.
  await page.waitForFunction(() => document.querySelectorAll('#queue tbody tr[data-task]').length >= 10, null, { timeout: 60000 });
  const queued = await page.$$eval('#queue tbody tr[data-task]', (rows) => rows.length);
  check(queued >= 10, `the live queue shows ${queued} tasks`);
  const band = await page.textContent('#queue tbody tr[data-task] .band');
  check(/\//.test(band || ''), `a battery band counts down in the queue: "${(band || '').trim()}"`);
  const svgSites = await page.$$eval('svg circle', (c) => c.length);
  check(svgSites >= 18, `the map draws sites and crews (${svgSites} marks)`);

  // Hold a site whose generator is not running yet, through the form.
  const target = await page.$$eval('#queue tbody tr[data-task]', (rows) => {
    const r = rows.find((x) => !/generator running|on site/.test(x.textContent));
    return r ? r.dataset.site : null;
  });
  check(!!target, `a site to hold: ${target}`);
  await page.selectOption('#override select[name=action]', 'hold');
  await page.fill('#override input[name=site]', target);
  await page.fill('#override input[name=why]', 'browser test: site under maintenance');
  await page.click('#override button[type=submit]');
  await page.waitForSelector('#override-result.ok', { timeout: 10000 });
  check(true, `override accepted: ${(await page.textContent('#override-result')).trim()}`);
  await page.waitForFunction((s) => ![...document.querySelectorAll('#queue tbody tr[data-task]')]
    .some((r) => r.dataset.site === s), target, { timeout: 20000 });
  check(true, `the plan changed: ${target}'s task left the queue`);
  const siteRow = await page.textContent(`#sites tbody tr[data-site="${target}"]`);
  check(/held/.test(siteRow), `the sites table shows ${target} held`);
  const events = await page.textContent('#events');
  check(/override/i.test(events) && events.includes(target), 'the override is in the event log');
  const operator = (await page.textContent('#operator')).trim();
  check(events.includes(`by ${operator}`), `the event log names the operator (${operator})`);

  await page.screenshot({ path: shot, fullPage: true });
  check(true, `screenshot saved to ${shot}`);
  check(errors.length === 0, `no script errors in the page${errors.length ? ': ' + errors.join('; ') : ''}`);
} catch (e) {
  check(false, String(e.stack || e));
} finally {
  if (browser) await browser.close();
  // SIGTERM to the drill alone: it stops its daemon itself and removes its
  // work dir (killing the daemon as well would stall the drill's last checks).
  const exited = new Promise((resolve) => {
    if (drill.exitCode !== null || drill.signalCode !== null) resolve();
    drill.on('exit', resolve);
    setTimeout(resolve, 60000);
  });
  try { drill.kill('SIGTERM'); } catch {}
  await exited;
  cleanup();
  if (workDir) check(!existsSync(workDir), `the drill removed its work dir on SIGTERM (${workDir})`);
}
console.log(`${failures} failure(s)`);
process.exit(failures ? 1 : 0);
