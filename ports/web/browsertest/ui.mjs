// Drives Meshlet's management page in Chromium for ports/web's browser test.
// It is started by TestPageInChromium with the product's address, the
// tokens, the meshlet binary and data directory (to ask `meshlet asof`
// independently of the page), what `meshlet history` counted, and where to
// write screenshots. It prints one JSON line of results and exits 1 on the
// first failed check, naming it.
import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`ui.mjs: ${k} is not set`);
  return v;
};
const base = env("MESHLET_URL");
const artifacts = env("MESHLET_SCREENSHOTS");
const key = env("MESHLET_ENTITY");
const wantVersions = Number(env("MESHLET_HISTORY_VERSIONS"));
const auditor = env("MESHLET_AUDITOR_TOKEN"), consumer = env("MESHLET_CONSUMER_TOKEN");
const meshlet = env("MESHLET_BIN"), dataDir = env("MESHLET_DATA");
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

const results = { screenshots: [], checks: [] };
function check(ok, what, detail) {
  results.checks.push(what);
  if (!ok) throw new Error(`check failed: ${what}${detail === undefined ? "" : ": " + (typeof detail === "string" ? detail : JSON.stringify(detail))}`);
}

const userDataDir = mkdtempSync(join(tmpdir(), "meshlet-chromium-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
  viewport: { width: 1360, height: 1000 },
});
let failed = null;
try {
  await run(context.pages()[0] || (await context.newPage()));
} catch (e) {
  failed = e;
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
console.log(JSON.stringify({ ok: !failed, error: failed ? String(failed.stack || failed) : undefined, ...results }));
process.exit(failed ? 1 : 0);

async function shot(page, name) {
  const path = join(artifacts, name);
  await page.screenshot({ path, fullPage: true });
  results.screenshots.push(path);
}

async function run(page) {
  const origin = new URL(base).origin;
  const foreign = [], problems = [], requests = [];
  page.on("request", (r) => {
    requests.push(r.url());
    if (new URL(r.url()).origin !== origin) foreign.push(r.url());
  });
  page.on("console", (m) => { if (m.type() === "error") problems.push(m.text()); });
  page.on("pageerror", (e) => problems.push(String(e)));
  page.setDefaultTimeout(15000);

  // Signed out: the open routes only.
  await page.goto(base + "/ui/");
  await page.locator("#manifest dd", { hasText: "urn:dataproduct:inventory:products" }).waitFor();
  await page.locator("#changelog tr[data-log]").first().waitFor();
  check(await page.locator("#dead").innerText().then((t) => t.includes("sign in as auditor")), "signed out, dead letters are not shown");
  await shot(page, "product-signed-out.png");

  // The auditor signs in with the keyboard alone.
  await page.locator("#token").focus();
  await page.keyboard.type(auditor);
  await page.keyboard.press("Enter");
  await page.locator("#who-text", { hasText: "(auditor)" }).waitFor();
  await page.locator("#health .badge").first().waitFor();
  await page.locator("#quality table").first().waitFor();
  const dead = page.locator("#dead tr.dead-letter");
  await dead.first().waitFor();
  const deadText = await dead.first().innerText();
  check(deadText.includes("malformed") && deadText.includes("dbserver1.inventory.products/"), "a dead letter shows its class and origin", deadText);
  const verified = await page.locator("#changelog tr[data-log] .badge").allInnerTexts();
  check(verified.length > 0 && verified.every((t) => t === "verified"), "every change log's latest checkpoint is verified", verified);
  await page.locator("#contract summary").first().click();
  check((await page.locator("#contract pre").first().innerText()).includes("apiVersion"), "the ODCS contract is shown");
  await page.locator("#verify-all").click();
  await page.locator("#verify-out .badge", { hasText: "every log verified" }).waitFor();
  await shot(page, "product-auditor.png");
  await axe(page, "product card");

  // Mesh view: the product is a node linking to its page.
  await page.locator("nav a", { hasText: "Mesh" }).click();
  await page.locator("#mesh-svg").waitFor();
  const link = page.locator('#mesh-svg a[href="#/product"]');
  check((await link.count()) === 1, "the product's node links to its page");
  check((await page.locator("#mesh-svg .node.topic").count()) >= 1, "the CDC topic is a node");
  check((await page.locator("#mesh-svg .edge").count()) >= 1, "ports are edges");
  await shot(page, "mesh.png");
  await axe(page, "mesh");

  // Entity explorer: search by key, then the chart.
  await page.locator("nav a", { hasText: "Entities" }).click();
  await page.locator("#q").fill(key.slice(0, 2));
  const hit = page.locator(`#results[data-q="${key.slice(0, 2)}"] button`, { hasText: key });
  await hit.waitFor();
  await hit.click();
  await page.locator("#chart").waitFor();
  const rects = await page.locator("#chart rect.version").count();
  check(rects === wantVersions, `the chart draws one rectangle per version meshlet history lists (${wantVersions})`, rects);
  await page.locator("#asof-row[data-state=ready]").waitFor();

  // Hover shows a version's fields.
  await page.locator("#chart rect.version").first().hover();
  const tipText = await page.locator("#tooltip").innerText();
  check(!(await page.locator("#tooltip").isHidden()) && tipText.includes("valid") && tipText.includes("name"), "hovering a version shows its fields", tipText);
  await shot(page, "entity-auditor.png");

  // The as-of sliders, moved with the keyboard over every position; each
  // row shown must be what meshlet asof says.
  const tMax = Number(await page.locator("#asof-t").getAttribute("max"));
  const vMax = Number(await page.locator("#asof-v").getAttribute("max"));
  let compared = 0, absent = 0;
  for (let t = 0; t <= Math.min(tMax, 6); t++) {
    for (let v = 0; v <= Math.min(vMax, 6); v++) {
      await setSlider(page, "#asof-t", t, tMax);
      await setSlider(page, "#asof-v", v, vMax);
      const T = await page.locator("#asof-t-out").innerText(), V = await page.locator("#asof-v-out").innerText();
      const row = page.locator(`#asof-row[data-state=ready][data-as-of="${T}"][data-valid-at="${V}"]`);
      await row.waitFor();
      const shown = {};
      for (const cell of await page.locator("#asof-table td[data-field]").all()) shown[await cell.getAttribute("data-field")] = await cell.innerText();
      const cli = JSON.parse(execFileSync(meshlet, ["asof", dataDir, "--system", T, "--valid", V, "--json", key], { encoding: "utf8" }));
      const want = {};
      for (const [k, x] of Object.entries((cli.rows[0] || {}).fields || {})) want[k] = x === null ? "null" : typeof x === "object" ? JSON.stringify(x) : String(x);
      check(JSON.stringify(shown) === JSON.stringify(sortKeys(want)), `as of ${T}, valid ${V}: the row shown is the row meshlet asof gives`, { shown, want });
      const believed = await page.locator("#chart rect.version.believed").evaluateAll((rs) => rs.map((r) => r.dataset.seq));
      const wantSeq = cli.rows[0] ? [String(cli.rows[0].seq)] : [];
      check(JSON.stringify(believed) === JSON.stringify(wantSeq), `as of ${T}, valid ${V}: the rectangle marked believed is asof's entry`, { believed, wantSeq });
      if (cli.rows.length) compared++; else absent++;
    }
  }
  check(compared >= 2, "the slider reached at least two believed rows", { compared, absent });
  results.asof = { compared, absent };

  // Corrections between two system times.
  await page.locator("#corr-form button").click();
  await page.locator("#corr-out p, #corr-out table").first().waitFor();
  await page.locator("#versions-table").evaluate((t) => t.closest("details").open = true);
  await shot(page, "entity-auditor-asof.png");
  await axe(page, "entity explorer (auditor)");
  await keyboardWalk(page);

  // The consumer sees current state and no chart, and never asks for the past.
  await page.locator("#logout").click();
  await page.locator("#token").fill(consumer);
  await page.locator("#login button").click();
  await page.locator("#who-text", { hasText: "(consumer)" }).waitFor();
  const since = requests.length;
  await page.goto(base + "/ui/#/entities?key=" + encodeURIComponent(key));
  await page.locator("#current-row td[data-field]").first().waitFor();
  await page.waitForLoadState("networkidle");
  check((await page.locator("#chart").count()) === 0 && (await page.locator("#asof-t").count()) === 0, "the consumer sees no chart and no as-of slider");
  const past = requests.slice(since).filter((u) => u.includes("/history") || /[?&](asOf|validAt)=/.test(u) || u.includes("/v1/corrections"));
  check(past.length === 0, "the consumer's page asks no question about the past", past);
  check((await page.locator("#entities-need").innerText()).includes("current state only"), "the consumer is told why");
  await shot(page, "entity-consumer.png");
  await axe(page, "entity explorer (consumer)");

  check(foreign.length === 0, "the page fetches nothing from another origin", foreign);
  check(problems.length === 0, "no console errors (CSP violations included)", problems);
}

function sortKeys(o) { return Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]])); }

// setSlider moves a range input to i with the keyboard: Home, then
// ArrowRight i times, as a keyboard user would.
async function setSlider(page, sel, i, max) {
  const s = page.locator(sel);
  await s.focus();
  if (i === max) { await page.keyboard.press("End"); return; }
  await page.keyboard.press("Home");
  for (let k = 0; k < i; k++) await page.keyboard.press("ArrowRight");
  const got = Number(await s.inputValue());
  check(got === i, `${sel} moves with the keyboard`, { got, want: i });
}

// axe runs axe-core over the page as it stands and fails on any
// violation of WCAG 2.1 A/AA or axe's best practices.
async function axe(page, where) {
  if (!(await page.evaluate(() => !!window.axe))) await page.evaluate(axeSource); // evaluated by the debugger, not the page's CSP
  const r = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] },
  }));
  const v = r.violations.map((x) => ({ id: x.id, help: x.help, nodes: x.nodes.map((n) => n.target.join(" ")).slice(0, 5) }));
  check(v.length === 0, `accessibility (axe-core) on ${where}`, v);
  results.axe = (results.axe || 0) + r.passes.length;
}

// keyboardWalk tabs through the page: every control must be reached in
// document order, show a focus indicator, and have a name.
async function keyboardWalk(page) {
  await page.reload(); // focus then starts at the top of the document
  await page.locator("#asof-row[data-state=ready]").waitFor();
  const controls = await page.evaluate(() => [...document.querySelectorAll("a[href], button, input, select, textarea, summary, [tabindex]")]
    .filter((e) => e.tabIndex >= 0 && !e.disabled && e.getClientRects().length > 0 && getComputedStyle(e).visibility !== "hidden")
    .map((e) => e.id || e.outerHTML.slice(0, 80)));
  const seen = [];
  for (let i = 0; i < controls.length + 5; i++) {
    await page.keyboard.press("Tab");
    const f = await page.evaluate(() => {
      const e = document.activeElement;
      if (!e || e === document.body) return null;
      const s = getComputedStyle(e);
      const label = e.labels && e.labels.length ? e.labels[0].innerText : e.getAttribute("aria-label") || e.innerText || e.getAttribute("aria-labelledby") || "";
      return { id: e.id || e.outerHTML.slice(0, 80), outline: s.outlineStyle !== "none" && parseFloat(s.outlineWidth) > 0, label: label.trim(),
        pos: [...document.querySelectorAll("*")].indexOf(e) };
    });
    if (!f) break;
    if (seen.length && f.id === seen[0].id) break;
    seen.push(f);
  }
  const missing = controls.filter((c) => !seen.some((s) => s.id === c));
  check(missing.length === 0, "Tab reaches every control", missing);
  const outOfOrder = seen.filter((f, i) => i > 0 && f.pos < seen[i - 1].pos).map((f) => f.id);
  check(outOfOrder.length === 0, "focus moves in document order", outOfOrder);
  const noRing = seen.filter((f) => !f.outline).map((f) => f.id);
  check(noRing.length === 0, "every focused control shows a focus ring", noRing);
  const noName = seen.filter((f) => !f.label).map((f) => f.id);
  check(noName.length === 0, "every focusable control has a name", noName);
  results.tabStops = seen.length;
  writeFileSync(join(artifacts, "tab-order.json"), JSON.stringify(seen, null, 2));
}
