// The dashboard as a département's viewer sees it, in headless Chromium (Debian's package),
// driven by playwright-core. Run by run.sh, which starts parc-server with demo data and sets:
//   WEB_URL        https://localhost:<port>/
//   VIEWER_TOKEN   an operator token with role viewer and scope departement:31
//   DEVICE_34      the id of a device of département 34 (out of the viewer's scope)
//   ROLLOUT_ID     a running rollout
//   SCREENSHOTS    where to save screenshots (optional)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { chromium } from 'playwright-core';

const web = process.env.WEB_URL;
const token = process.env.VIEWER_TOKEN;
let browser, context, page;

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic',
           '--no-first-run', '--disable-background-networking', '--disable-component-update',
           '--disable-sync'],
  });
  // The demo server's certificate comes from its private CA.
  context = await browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true,
                                       viewport: { width: 820, height: 1100 } });
  page = await context.newPage();
});

after(async () => { await browser?.close(); });

async function shot(name) {
  if (process.env.SCREENSHOTS) {
    await page.screenshot({ path: `${process.env.SCREENSHOTS}/${name}.png`, fullPage: true });
  }
}

test('an unauthenticated visit is sent to the login page', async () => {
  const response = await page.goto(web + 'departement/31');
  assert.equal(response.status(), 200);
  assert.match(page.url(), /\/connexion\?suite=%2Fdepartement%2F31$/);
  assert.equal(await page.locator('h1').textContent(), 'Connexion');
});

test('a wrong token is refused', async () => {
  await page.fill('#jeton', 'o000000000000.' + '0'.repeat(64));
  await page.click('button[type=submit]');
  assert.match(page.url(), /erreur=1/);
  assert.match(await page.locator('[role=alert]').textContent(), /Jeton refusé/);
});

test('the viewer logs in and lands where it was going', async () => {
  await page.fill('#jeton', token);
  await page.click('button[type=submit]');
  assert.match(page.url(), /\/departement\/31$/);
  const cookies = await context.cookies();
  const session = cookies.find(c => c.name === 'parc_session');
  assert.ok(session.httpOnly && session.secure && session.sameSite === 'Strict');
});

test('the overview shows charts and only the viewer\'s département', async () => {
  await page.goto(web);
  assert.equal(await page.locator('h1').textContent(), "Vue d'ensemble");
  assert.ok(await page.locator('figure svg rect.bar').count() >= 2);
  const rows = await page.locator('table tbody tr').allTextContents();
  assert.equal(rows.length, 1);
  assert.match(rows[0], /31 Haute-Garonne/);
  assert.doesNotMatch(await page.content(), /Hérault/);
  await shot('overview');
});

test('the département page lists only its establishments, sortable', async () => {
  await page.goto(web + 'departement/31');
  const text = await page.locator('table').textContent();
  assert.match(text, /Lycée Pierre de Fermat/);
  assert.match(text, /Collège Jean Jaurès/);
  assert.doesNotMatch(text, /Joffre/);
  await page.click('th a:has-text("Établissement")');
  const first = await page.locator('tbody tr th').first().textContent();
  assert.equal(first, 'Collège Jean Jaurès');
  await page.click('th a:has-text("Établissement")');
  assert.notEqual(await page.locator('tbody tr th').first().textContent(), 'Collège Jean Jaurès');
  const other = await page.goto(web + 'departement/34');
  assert.equal(other.status(), 404);
  await shot('departement');
});

test('an establishment shows its devices and downloads as CSV', async () => {
  await page.goto(web + 'departement/31');
  await page.click('a:has-text("Lycée Pierre de Fermat")');
  assert.equal(await page.locator('h1').textContent(), 'Lycée Pierre de Fermat');
  // A summary by kind and state, then the device list (paged by the server).
  const summary = await page.locator('table').first().textContent();
  assert.match(summary, /Tous types/);
  const devices = await page.locator('table').last().textContent();
  assert.match(devices, /5CD1234ABC/);
  assert.match(devices, /à jour/);
  await shot('etablissement');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.click('a:has-text("liste complète (CSV)")'),
  ]);
  assert.match(download.suggestedFilename(), /^appareils-0310036W\.csv$/);
  const csv = await readFile(await download.path());
  assert.deepEqual([...csv.subarray(0, 3)], [0xef, 0xbb, 0xbf]);  // UTF-8 for Excel
  const text = csv.toString('utf8').slice(1);
  const [header, ...lines] = text.trim().split('\r\n');
  assert.equal(header, 'Appareil;Type;Modèle;N° de série;Dernier contact;État du lot;Dernière erreur');
  assert.ok(lines.some(l => l.includes('5CD1234ABC') && l.includes('à jour')));
});

test('hostile strings from a device are shown as text, never run', async () => {
  const dialogs = [];
  page.on('dialog', async d => { dialogs.push(d.message()); await d.dismiss(); });
  for (const path of ['etablissement/0310036W', 'appareil/' + process.env.HOSTILE_DEVICE]) {
    await page.goto(web + path);
    await page.waitForTimeout(500);  // what a meta refresh of 0 s would need to navigate
    assert.equal(page.url(), web + path, 'no redirect from device-supplied markup');
    assert.equal(await page.locator('main script, main img, main iframe, main meta').count(), 0);
    const text = await page.locator('main').textContent();
    assert.match(text, /<meta http-equiv="refresh"/);
    assert.match(text, /=HYPERLINK/);
  }
  assert.match(await page.locator('h1').textContent(), /<script>alert\(2\)<\/script>/);
  assert.deepEqual(dialogs, []);
  await shot('appareil-hostile');
  // The CSV export keeps the formula as text for Calc and Excel.
  await page.goto(web + 'etablissement/0310036W');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.click('a:has-text("liste complète (CSV)")'),
  ]);
  const csv = (await readFile(await download.path())).toString('utf8');
  assert.match(csv, /'=HYPERLINK/);
  assert.doesNotMatch(csv, /;=HYPERLINK|;"=HYPERLINK/);
});

test('a device of another département does not exist for the viewer', async () => {
  const response = await page.goto(web + 'appareil/' + process.env.DEVICE_34);
  assert.equal(response.status(), 404);
});

test('a viewer gets no pause button, and a forged cross-site POST is refused', async () => {
  await page.goto(web + 'deploiements');
  assert.equal(await page.locator('button:has-text("Mettre en pause")').count(), 0);
  await shot('deploiements');
  const url = `${web}deploiements/${process.env.ROLLOUT_ID}/pause`;
  // The session cookie rides along, but the request comes from another site without the
  // form's CSRF token.
  const forged = await page.request.post(url, {
    form: { csrf: 'guess' }, headers: { Origin: 'https://evil.example' }, maxRedirects: 0,
  });
  assert.equal(forged.status(), 403);
  const tokenless = await page.request.post(url, { form: {}, maxRedirects: 0 });
  assert.equal(tokenless.status(), 403);
  await page.goto(web + 'deploiements');
  assert.match(await page.locator('main').textContent(), /en cours/);
});

test('fleet health: overview, département, one establishment\'s to-do list, CSV', async () => {
  await page.goto(web);
  await page.click('nav a:has-text("Santé du parc")');
  assert.equal(await page.locator('h1').textContent(), 'Santé du parc');
  const overview = await page.locator('main').textContent();
  assert.match(overview, /31 Haute-Garonne/);
  assert.doesNotMatch(overview, /Hérault/);
  await shot('sante');
  await page.click('a:has-text("31 Haute-Garonne")');
  assert.equal(await page.locator('h1').textContent(), 'Santé du parc — 31 Haute-Garonne');
  const area = await page.locator('main').textContent();
  assert.match(area, /Collège Jean Jaurès/);
  assert.doesNotMatch(area, /Joffre/);
  // Saint-Sernin has no device: a dash, not "0 %".
  const sernin = await page.locator('tr:has-text("Lycée Saint-Sernin")').last().textContent();
  assert.match(sernin, /—/);
  assert.doesNotMatch(sernin, /0 %/);
  await shot('sante-departement');
  await page.click('a:has-text("Collège Jean Jaurès")');
  assert.match(await page.locator('h1').textContent(), /Collège Jean Jaurès/);
  // The classroom display enrolled but never checked in: the one device unseen for 30 days.
  await page.click('a:has-text("Non vu depuis 30 jours")');
  assert.match(page.url(), /indicateur=unseen-30$/);
  assert.match(await page.locator('h2').last().textContent(), /1 appareil/);
  assert.equal(await page.locator('table tbody tr').count(), 1);
  await shot('sante-etablissement');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.click('a:has-text("Télécharger la liste (CSV)")'),
  ]);
  assert.equal(download.suggestedFilename(), 'sante-0311234Y-unseen-30.csv');
  const csv = (await readFile(await download.path())).toString('utf8').slice(1);
  const [header, ...lines] = csv.trim().split('\r\n');
  assert.match(header, /^Appareil;Type;Modèle;N° de série;Batterie \(%\);/);
  assert.equal(lines.length, 1);
  assert.match(lines[0], /jamais/);
  // Another département's pages do not exist for this viewer.
  assert.equal((await page.goto(web + 'sante/departement/34')).status(), 404);
  assert.equal((await page.goto(web + 'sante/etablissement/0340001S')).status(), 404);
});

test('logging out ends the session', async () => {
  await page.click('button:has-text("Se déconnecter")');
  assert.match(page.url(), /\/connexion$/);
  await page.goto(web);
  assert.match(page.url(), /\/connexion/);
});
