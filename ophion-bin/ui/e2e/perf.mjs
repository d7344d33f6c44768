// Browser performance of the dashboard (benches/dashboard_ui.rs starts the
// server and fills it). Env: OPHION_URL, OPHION_TOKEN, MID_TRACE,
// LARGE_TRACE, SERVICES (rows the services page must show), CHROMIUM.
// The logs explorer is scrolled through every page of `q=shipped`.
// Prints one line per measure, then the medians as one JSON line.
import { chromium } from "playwright-core";

const base = process.env.OPHION_URL;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
page.setDefaultTimeout(60_000);
await page.goto(base + "/");
await page.evaluate((token) => localStorage.setItem("ophion.session", JSON.stringify({ token, refresh: "" })), process.env.OPHION_TOKEN);

// The API answers the services page depends on, once, timed: the list
// must answer (a failure names it rather than timing out on an empty
// page); the map's answer is reported (its failure shows on the page, not
// in the table this bench times).
for (const [path, required] of [["/api/v1/services?from=now-2h", true], ["/api/v1/service-graph?from=now-2h", false]]) {
  const t = Date.now();
  const r = await fetch(base + path, { headers: { authorization: `Bearer ${process.env.OPHION_TOKEN}` } });
  const text = await r.text();
  if (!r.ok && required) throw new Error(`${path}: ${r.status} ${text.slice(0, 500)}`);
  console.log(`${path}: HTTP ${r.status} in ${Date.now() - t} ms${r.ok ? "" : `: ${text.slice(0, 200)}`}`);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Milliseconds from navigation to `ready` holding. */
async function timeTo(url, ready) {
  const t = Date.now();
  await page.goto(url);
  await ready();
  return Date.now() - t;
}

/**
 * Scrolls the element top to bottom, a step a frame, the longest frame (ms).
 * A list that loads pages as it is read (`data-complete="false"`) is
 * followed until it has loaded them all; the frames spent waiting for a
 * page count too.
 */
async function longestFrame(selector) {
  return page.evaluate(async (sel) => {
    const el = document.querySelector(sel);
    const gaps = [];
    let last = performance.now();
    const step = Math.max(200, el.scrollHeight / 300);
    const more = () => el.dataset.complete === "false";
    const deadline = Date.now() + 300_000;
    while ((el.scrollTop + el.clientHeight < el.scrollHeight - 1 || more()) && Date.now() < deadline) {
      el.scrollTop += step;
      await new Promise((r) => requestAnimationFrame(r));
      const now = performance.now();
      gaps.push(now - last);
      last = now;
    }
    return Math.max(...gaps);
  }, selector);
}

const runs = { services_ms: [], mid_ms: [], large_ms: [], large_frame_ms: [], logs_frame_ms: [], logs_rows: [] };
for (let i = 0; i < 3; i++) {
  runs.services_ms.push(
    await timeTo(`${base}/services?from=now-2h`, () =>
      page.waitForFunction((n) => document.querySelectorAll('[data-testid="services"] tbody tr').length >= n, Number(process.env.SERVICES ?? 1)),
    ),
  );
  runs.mid_ms.push(await timeTo(`${base}/traces/${process.env.MID_TRACE}`, () => page.getByTestId("waterfall").locator(".vrow").first().waitFor()));
  runs.large_ms.push(await timeTo(`${base}/traces/${process.env.LARGE_TRACE}`, () => page.getByTestId("waterfall").locator(".vrow").first().waitFor()));
  runs.large_frame_ms.push(await longestFrame('[data-testid="waterfall"]'));
  await page.goto(`${base}/logs?q=shipped&from=now-2h`);
  const list = page.getByTestId("log-list");
  await list.locator(".vrow").first().waitFor();
  runs.logs_frame_ms.push(await longestFrame('[data-testid="log-list"]'));
  runs.logs_rows.push(Number(await list.getAttribute("data-rows")));
  console.log(`run ${i + 1}: ${JSON.stringify(Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, Math.round(v[i])])))}`);
}
await browser.close();
console.log(JSON.stringify(Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, median(v)]))));
