// The dashboard in Debian's Chromium, driven by playwright-core, against a
// running ophion-server filled by ophion-bin/tests/dashboard.rs.
// Env: OPHION_URL, OPHION_USER, OPHION_PASSWORD, BIG_TRACE (a trace id of
// at least 1,000 spans), OPHION_OTLP_HTTP (where the live tail's record is
// sent), INCIDENT_FROM_MS and INCIDENT_TO_MS (an injected fault's window)
// with ROOT_SERVICE (where it was injected), OPHION_SCREENSHOTS (a
// directory), CHROMIUM (the browser, default /usr/bin/chromium).
// Fails on any console error, page error, failed request or API error.
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const base = process.env.OPHION_URL;
const shots = process.env.OPHION_SCREENSHOTS ?? "screenshots";
const big = process.env.BIG_TRACE;
mkdirSync(shots, { recursive: true });

const problems = [];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(20_000);
page.on("console", (m) => m.type() === "error" && problems.push(`console: ${m.text()}`));
page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
page.on("requestfailed", (r) => {
  const why = r.failure()?.errorText ?? "";
  // A request cut short by leaving the page is not a failure.
  if (!why.includes("ERR_ABORTED")) problems.push(`request failed: ${r.url()} ${why}`);
});
page.on("response", (r) => r.status() >= 400 && problems.push(`HTTP ${r.status()}: ${r.url()}`));

let step = 0;
async function check(name, fn) {
  step += 1;
  const t = Date.now();
  try {
    await fn();
  } catch (e) {
    await page.screenshot({ path: `${shots}/failed-${step}.png`, fullPage: true }).catch(() => undefined);
    console.log(`FAIL ${step}. ${name}: ${e.message}`);
    await browser.close();
    process.exit(1);
  }
  if (problems.length) {
    console.log(`FAIL ${step}. ${name}: ${problems.join("; ")}`);
    await browser.close();
    process.exit(1);
  }
  console.log(`ok ${step}. ${name} (${Date.now() - t} ms)`);
}

const nav = (name) => page.getByRole("navigation", { name: "Main" }).getByRole("link", { name, exact: true }).click();

// The page renders after events (a scroll, a fetch), so the text is awaited
// the way Playwright's own assertions do: read again until it matches or
// five seconds pass, and fail with the last text read.
const expectText = async (locator, re) => {
  const deadline = Date.now() + 5_000;
  for (;;) {
    await locator.first().waitFor();
    const text = await locator.first().innerText();
    if (re.test(text)) return;
    if (Date.now() > deadline) throw new Error(`expected ${re} in: ${text.slice(0, 300)}`);
    await page.waitForTimeout(50);
  }
};

await check("sign in", async () => {
  await page.goto(base + "/");
  await page.getByLabel("User name").fill(process.env.OPHION_USER);
  await page.getByLabel("Password").fill(process.env.OPHION_PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/\/services/);
});

await check("services and the service map", async () => {
  await expectText(page.getByTestId("services"), /frontend/);
  await expectText(page.getByTestId("services"), /checkout/);
  const map = page.getByTestId("service-map");
  await map.waitFor();
  if ((await map.locator("circle").count()) < 5) throw new Error("fewer than 5 services on the map");
  if ((await map.locator("line").count()) < 4) throw new Error("fewer than 4 calls on the map");
});

await check("search traces", async () => {
  await nav("Traces");
  await page.getByLabel("Service").fill("frontend");
  await page.getByRole("button", { name: "Search" }).click();
  await page.waitForURL(/service=frontend/);
  await expectText(page.getByTestId("traces"), /frontend/);
  await page.getByTestId("chart").first().locator("canvas").waitFor();
});

await check("a trace of 1,200 spans as a waterfall", async () => {
  const t = Date.now();
  await page.goto(`${base}/traces/${big}`);
  const wf = page.getByTestId("waterfall");
  await wf.locator(".vrow").first().waitFor();
  const ms = Date.now() - t;
  await expectText(page.locator("main p").first(), /1200 spans/);
  const rows = await wf.locator(".vrow").count();
  if (rows >= 1200) throw new Error(`${rows} rows in the DOM: not virtualised`);
  // The root is on the critical path, drawn outlined.
  if (!(await wf.locator(".vrow").first().locator(".crit").count())) throw new Error("no critical path drawn");
  await wf.evaluate((el) => (el.scrollTop = el.scrollHeight));
  await page.waitForTimeout(200);
  await wf.locator(".vrow").last().click();
  await page.getByTestId("span-details").waitFor();
  // Collapse the root: one row left.
  await wf.evaluate((el) => (el.scrollTop = 0));
  await wf.getByRole("button", { name: "Collapse" }).first().click();
  if ((await wf.locator(".vrow").count()) !== 1) throw new Error("collapsing the root leaves more than one row");
  console.log(`   waterfall shown in ${ms} ms`);
});

await check("keyboard: the waterfall and the log list", async () => {
  await page.goto(`${base}/traces/${big}`);
  const wf = page.getByTestId("waterfall");
  await wf.locator(".vrow").first().waitFor();
  await wf.focus();
  await page.keyboard.press("Home");
  await expectText(page.getByTestId("span-details"), /edge: step-0-0/);
  await page.keyboard.press("ArrowLeft");
  if ((await wf.locator(".vrow").count()) !== 1) throw new Error("ArrowLeft on the root does not collapse it");
  await page.keyboard.press("ArrowRight");
  if ((await wf.locator(".vrow").count()) < 2) throw new Error("ArrowRight does not expand the root again");
  await page.keyboard.press("ArrowDown");
  const second = await wf.locator('[role="treeitem"][aria-selected="true"]').getAttribute("data-span");
  if (second !== "0000000000000002") throw new Error(`ArrowDown selected ${second}`);
  await page.keyboard.press("End");
  const scrolled = await wf.evaluate((el) => el.scrollTop);
  if (scrolled <= 0) throw new Error("End does not bring the last span into view");
  await page.goto(`${base}/logs?q=payment+declined&from=now-1h`);
  const list = page.getByTestId("log-list");
  await list.locator(".vrow").first().waitFor();
  await list.focus();
  await page.keyboard.press("ArrowDown");
  await expectText(page.getByTestId("log-details"), /payment declined for order 19/);
  await page.keyboard.press("End");
  await expectText(page.getByTestId("log-details"), /payment declined for order 0\b/);
  // Tab from the top of the page reaches the main navigation.
  await page.evaluate(() => document.activeElement?.blur());
  let inNav = false;
  for (let i = 0; i < 6 && !inNav; i++) {
    await page.keyboard.press("Tab");
    inNav = await page.evaluate(() => !!document.activeElement?.closest('nav[aria-label="Main"]'));
  }
  if (!inNav) throw new Error("Tab does not reach the main navigation");
});

await check("search logs and jump to their trace", async () => {
  await nav("Logs");
  await page.getByLabel("Text").fill("payment declined");
  await page.getByRole("button", { name: "Search" }).click();
  const list = page.getByTestId("log-list");
  await list.locator(".vrow").first().click();
  await page.getByTestId("log-details").waitFor();
  await page.getByRole("link", { name: /Open trace/ }).click();
  await page.waitForURL(new RegExp(`/traces/${big}`));
  await page.getByTestId("waterfall").locator(".vrow").first().waitFor();
  await expectText(page.getByTestId("trace-logs"), /payment declined/);
});

await check("4,500 log records, read page by page as the list is scrolled", async () => {
  await page.goto(`${base}/logs?q=bulk+record&from=now-1h`);
  const list = page.getByTestId("log-list");
  await list.locator(".vrow").first().waitFor();
  await expectText(page.getByRole("status").filter({ hasText: "records" }), /2,000 of 4,500 records/);
  const deadline = Date.now() + 30_000;
  while ((await list.getAttribute("data-complete")) !== "true" || (await list.getAttribute("data-rows")) !== "4500") {
    if (Date.now() > deadline) throw new Error(`stuck at ${await list.getAttribute("data-rows")} rows`);
    await list.evaluate((el) => (el.scrollTop = el.scrollHeight));
    await page.waitForTimeout(100);
  }
  // Newest first: the bottom row is the oldest record.
  await list.evaluate((el) => (el.scrollTop = el.scrollHeight));
  await expectText(list.locator(".vrow").last(), /bulk record 0$/);
  await expectText(page.getByRole("status").filter({ hasText: "records" }), /4,500 of 4,500 records/);
});

await check("live tail: a record sent now appears", async () => {
  await page.goto(`${base}/logs?q=tail-probe`);
  await page.getByRole("tab", { name: "Live tail" }).click();
  await page.getByText(/Following new records/).waitFor();
  // The stream is open once the page shows it; then send a matching record.
  await page.waitForTimeout(500);
  const r = await fetch(`${process.env.OPHION_OTLP_HTTP}/v1/logs`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      resourceLogs: [{ resource: { attributes: [{ key: "service.name", value: { stringValue: "tailer" } }] },
        scopeLogs: [{ logRecords: [{ timeUnixNano: String(Date.now() * 1e6), severityNumber: 13, body: { stringValue: "tail-probe reached the browser" } }] }] }],
    }),
  });
  if (!r.ok) throw new Error(`OTLP answered ${r.status}`);
  await expectText(page.getByTestId("log-list").locator(".vrow"), /tail-probe reached the browser/);
  await expectText(page.getByText(/Following new records/), /1 so far/);
});

await check("log patterns", async () => {
  await page.goto(`${base}/logs?from=now-1h`);
  await page.getByRole("tab", { name: "Patterns" }).click();
  await page.getByTestId("patterns").waitFor({ timeout: 60_000 });
});

await check("chart a metric and save it to a dashboard", async () => {
  await nav("Metrics");
  await page.getByLabel("Metric").selectOption("queue.depth");
  await page.getByTestId("chart").first().locator("canvas").waitFor();
  await page.getByLabel("Panel title").fill("Queue depth");
  await page.getByRole("button", { name: "Save to dashboard" }).click();
  await page.waitForURL(/\/dashboards\/\d+/);
  const panel = page.getByTestId("panel").first();
  await expectText(panel, /Queue depth/);
  await panel.locator("canvas").waitFor();
  await nav("Dashboards");
  await expectText(page.getByTestId("dashboards"), /Queue depth/);
});

await check("a dashboard panel built without SQL", async () => {
  await nav("Dashboards");
  await page.getByRole("link", { name: "Queue depth" }).click();
  await page.getByRole("button", { name: "Edit" }).click();
  await page.getByRole("button", { name: "Add panel" }).click();
  const last = page.locator(".details .row").filter({ has: page.getByLabel("Panel query") }).last();
  await last.getByLabel("Panel title").fill("Queue depth, max");
  await last.getByLabel("Chart").selectOption("timeseries");
  await last.getByLabel("Panel query").selectOption("metric");
  await last.getByLabel("Metric").selectOption("queue.depth");
  await last.getByLabel("Aggregation").selectOption("max");
  await page.getByRole("button", { name: "Save" }).click();
  const panel = page.getByTestId("panel").filter({ hasText: "Queue depth, max" });
  await panel.locator("canvas").waitFor();
  await expectText(panel, /max\(queue\.depth\)/);
  // Saved as a metric, not as SQL.
  const id = page.url().match(/dashboards\/(\d+)/)[1];
  const token = await page.evaluate(() => JSON.parse(localStorage.getItem("ophion.session")).token);
  const saved = await (await fetch(`${base}/api/v1/dashboards/${id}`, { headers: { authorization: `Bearer ${token}` } })).json();
  const built = saved.panels.find((p) => p.title === "Queue depth, max");
  if (built?.metric?.name !== "queue.depth" || built.metric.aggregation !== "max" || built.sql) throw new Error(`saved as ${JSON.stringify(built)}`);
});

await check("run SQL", async () => {
  await nav("SQL");
  await page.getByLabel("SQL").fill("SELECT service_name, count(*) AS spans FROM spans GROUP BY 1 ORDER BY 1");
  await page.getByRole("button", { name: /Run/ }).click();
  await expectText(page.getByTestId("result"), /checkout/);
});

await check("the injected anomaly marked on its chart", async () => {
  const deadline = Date.now() + 90_000;
  for (;;) {
    await page.goto(`${base}/insights`);
    const card = page.getByTestId("anomaly").filter({ hasText: "queue.depth" });
    try {
      await card.first().waitFor({ timeout: 5_000 });
      await card.first().locator("canvas").waitFor();
      await expectText(card, /expected/);
      break;
    } catch (e) {
      if (Date.now() > deadline) throw e;
    }
  }
});

await check("a forecast with its interval", async () => {
  await page.goto(`${base}/insights?fservice=checkout&fseries=requests`);
  const f = page.getByTestId("forecast");
  await f.locator("canvas").waitFor({ timeout: 30_000 });
  await expectText(f, /95% between/);
});

await check("root-cause candidates of an injected fault, with their evidence", async () => {
  const iso = (ms) => new Date(Number(ms)).toISOString();
  await page.goto(`${base}/insights?from=${iso(process.env.INCIDENT_FROM_MS)}&to=${iso(process.env.INCIDENT_TO_MS)}`);
  const cards = page.getByTestId("root-cause");
  await cards.first().waitFor({ timeout: 60_000 });
  await expectText(cards.first(), /^1\. /);
  if ((await cards.first().locator("ul.evidence li").count()) === 0) throw new Error("a candidate without evidence");
  if ((await cards.first().locator("meter").count()) !== 1) throw new Error("the score is not drawn");
  const all = await cards.allInnerTexts();
  if (!all.some((t) => t.includes(process.env.ROOT_SERVICE))) throw new Error(`${process.env.ROOT_SERVICE} not among ${all.map((t) => t.split("\n")[0]).join(" | ")}`);
  // The example traces in the evidence lead to their waterfalls.
  await cards.first().locator("ul.evidence a").first().click();
  await page.getByTestId("waterfall").locator(".vrow").first().waitFor();
});

await check("alerts and settings", async () => {
  await nav("Alerts");
  await page.getByRole("tab", { name: "Rules" }).click();
  await page.getByText(/No rules/).waitFor();
  await nav("Settings");
  await expectText(page.getByTestId("users"), /admin/);
});

await check("auto-healing: approve a run, see its steps", async () => {
  const token = await page.evaluate(() => JSON.parse(localStorage.getItem("ophion.session")).token);
  const api = (path, body) =>
    fetch(`${base}${path}`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify(body) }).then(async (r) => {
      if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
      return r.json();
    });
  await api("/api/v1/playbooks", { name: "pause-it", mode: "approval", cooldown: "0s", steps: [{ type: "wait", duration: "1s" }] });
  const run = await api("/api/v1/heal/runs", { playbook: "pause-it", labels: { service: "checkout" } });
  await nav("Healing");
  const row = page.getByTestId("heal-runs").locator("tr").filter({ hasText: `#${run.id}` });
  await expectText(row, /awaiting approval/);
  await row.getByRole("button", { name: "Approve" }).click();
  // The list refreshes every 5 s: wait for the run to have run.
  await page.getByTestId("heal-runs").locator("tr").filter({ hasText: `#${run.id}` }).filter({ hasText: "succeeded" }).waitFor();
  await page.getByRole("link", { name: `#${run.id}` }).click();
  await expectText(page.getByTestId("heal-steps"), /step 1 · wait[\s\S]*succeeded[\s\S]*waited 1 s/);
  await page.getByRole("link", { name: "All runs" }).click();
  await page.getByRole("tab", { name: "Playbooks" }).click();
  await expectText(page.getByTestId("playbooks"), /pause-it/);
});

await check("ask the copilot: a streamed answer with its query", async () => {
  await nav("Copilot");
  await page.getByLabel("Question").fill("error rate of checkout in the last hour");
  await page.getByRole("button", { name: "Ask" }).click();
  const turn = page.getByTestId("turn").first();
  await turn.locator("pre.mono").first().waitFor({ timeout: 60_000 });
  await expectText(turn, /checkout/);
});

await check("screenshots of every page, 1280 and 390 px, light and dark", async () => {
  const pages = ["services", "traces?service=frontend", `traces/${big}`, "logs?q=payment", "explore?metric=queue.depth", "dashboards", "insights", "sql", "alerts", "heal", "copilot", "settings"];
  for (const theme of ["light", "dark"]) {
    await page.evaluate((t) => localStorage.setItem("ophion.theme", t), theme);
    for (const width of [1280, 390]) {
      await page.setViewportSize({ width, height: 900 });
      for (const p of pages) {
        await page.goto(`${base}/${p}`);
        await page.locator("main").waitFor();
        await page.waitForLoadState("networkidle");
        const name = p.split(/[/?]/)[0] + (p.includes("/") ? "-trace" : "");
        await page.screenshot({ path: `${shots}/${name}-${width}-${theme}.png`, fullPage: width > 400 });
      }
    }
  }
  await page.setViewportSize({ width: 1280, height: 900 });
});

await check("sign out while the page's queries are on their way", async () => {
  // The page's queries are held back half a second on their way to the
  // server, so the user signs out while they are under way (on a busy
  // machine they are): the server must refuse none of them.
  let held = 0;
  let answered = 0;
  const query = "**/api/v1/query";
  await page.route(query, async (route) => {
    held += 1;
    await new Promise((done) => setTimeout(done, 500));
    await route.continue();
  });
  const onResponse = (r) => r.url().endsWith("/api/v1/query") && (answered += 1);
  page.on("response", onResponse);
  // Sign out once the page has sent a query (held back above): clicking
  // as soon as the page loaded raced its first query on a busy machine.
  const sent = page
    .waitForRequest((r) => r.url().endsWith("/api/v1/query"), { timeout: 10_000 })
    .catch(() => null);
  await page.goto(`${base}/services`);
  await sent;
  const signedOut = page.waitForResponse("**/api/v1/auth/logout");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("button", { name: "Sign in" }).waitFor();
  await signedOut;
  const deadline = Date.now() + 10_000;
  while (answered < held && Date.now() < deadline) await new Promise((done) => setTimeout(done, 50));
  page.off("response", onResponse);
  await page.unroute(query);
  if (held === 0) throw new Error("the services page sent no query to hold back");
  if (answered < held) throw new Error(`${held - answered} of ${held} held queries never answered`);
});

await browser.close();
console.log(`all steps passed; screenshots in ${shots}`);
