// End-to-end test of the dashboard (GET /) in headless Chromium, driven by playwright-core.
// scripts/e2e-dashboard.sh starts the server and sets:
//   ORDERLY_URL          the server, e.g. http://127.0.0.1:40123
//   ORDERLY_ADMIN_KEY    an admin API key
//   ORDERLY_CUSTOMER_KEY a customer's API key
//   ORDERLY_E2E_MODULES  the directory where npm ci installed e2e/package-lock.json
//   ORDERLY_E2E_OUT      where the screenshot goes (created if missing)
//   CHROMIUM             the browser (default /usr/bin/chromium)
// The server must decline payments over 50.00 and have a mail server that refuses, so that
// some orders fail and notifications dead-letter. Every step prints what it checks; the
// first failure stops the run with a non-zero exit.

import { createRequire } from "node:module";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

function env(name, fallback) {
  const v = process.env[name] ?? fallback;
  if (v === undefined || v === "") {
    console.error(`dashboard.test.mjs: ${name} is not set (run scripts/e2e-dashboard.sh)`);
    process.exit(2);
  }
  return v;
}

const BASE = env("ORDERLY_URL").replace(/\/$/, "");
const KEY = env("ORDERLY_ADMIN_KEY");
const CUSTOMER_KEY = env("ORDERLY_CUSTOMER_KEY");
const MODULES = env("ORDERLY_E2E_MODULES");
const OUT = resolve(env("ORDERLY_E2E_OUT", "target/e2e"));
const CHROMIUM = env("CHROMIUM", "/usr/bin/chromium");
const { chromium } = createRequire(join(MODULES, "package.json"))("playwright-core");

const FULFILLED_EVENTS = [
  "OrderCreated",
  "InventoryReserved",
  "PaymentCompleted",
  "OrderConfirmed",
  "OrderPlaced",
  "FulfillmentCompleted",
];
const FAILED_EVENTS = [
  "OrderCreated",
  "InventoryReserved",
  "PaymentFailed",
  "InventoryReleased",
  "OrderFailed",
];
// The charts' series colours (charts are drawn by crates/orderly-http/src/dashboard).
const BLUE = [47, 111, 222];
const GREEN = [31, 138, 76];
const AMBER = [184, 116, 26];
const RED = [194, 59, 59];

let passed = 0;
let failed = 0;

class CheckFailed extends Error {}

function assert(cond, message) {
  if (!cond) throw new CheckFailed(message);
}

function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

async function step(name, fn) {
  const started = Date.now();
  process.stdout.write(`- ${name} ... `);
  try {
    const note = await fn();
    passed++;
    console.log(`ok (${Date.now() - started} ms)${note ? ": " + note : ""}`);
  } catch (e) {
    failed++;
    console.log("FAILED");
    throw e;
  }
}

// Polls `probe` (async; answers a value) until `ok(value)`, or fails with `what` and the
// last value seen.
async function eventually(what, probe, ok, timeoutMs = 20000, intervalMs = 200) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await probe();
    if (ok(last)) return last;
    if (Date.now() > deadline) {
      throw new CheckFailed(`${what}: not within ${timeoutMs} ms; last seen ${JSON.stringify(last)}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

async function api(method, path, body) {
  const headers = { "x-api-key": KEY };
  if (body !== undefined) headers["content-type"] = "application/json";
  const resp = await fetch(BASE + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: resp.status, json, text };
}

async function main() {
  mkdirSync(OUT, { recursive: true });
  const profile = mkdtempSync(join(tmpdir(), "orderly-e2e-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      // Nothing may leave the machine (scripts/egress.sh checks). Every request but those
      // to loopback (where the page is) goes to a proxy at 127.0.0.1:9, where nothing
      // listens: it fails there, without a name lookup.
      "--proxy-server=http://127.0.0.1:9",
      "--disable-features=DnsOverHttps,AsyncDns,OptimizationHints,MediaRouter,Translate",
      "--dns-prefetch-disable",
      "--no-pings",
      "--disable-domain-reliability",
      "--disable-client-side-phishing-detection",
    ],
    viewport: { width: 1440, height: 1000 },
  });
  try {
    await run(context);
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

async function run(context) {
  const page = context.pages()[0] ?? (await context.newPage());
  try {
    await checks(page);
  } catch (e) {
    const shot = join(OUT, "dashboard-failure.png");
    await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
    console.error(`the page at the failure: ${shot}`);
    throw e;
  }
}

async function checks(page) {
  const problems = [];
  const apiRequests = [];
  page.on("pageerror", (e) => problems.push(`uncaught: ${e.message}`));
  page.on("console", (m) => {
    const text = m.text();
    if (/Content Security Policy|Refused to (load|execute|apply|connect)/i.test(text)) {
      problems.push(`CSP: ${text}`);
    }
  });
  page.on("request", (r) => {
    const url = new URL(r.url());
    if (url.origin !== BASE) {
      problems.push(`request to another origin: ${r.url()}`);
      return;
    }
    if (url.pathname === "/" || url.pathname.startsWith("/dashboard/") || url.pathname === "/ready") return;
    apiRequests.push({ path: url.pathname + url.search, key: r.headers()["x-api-key"] ?? null });
  });

  const rowIds = () =>
    page.$$eval("#orders-body tr", (rows) =>
      rows.map((r) => ({ id: r.getAttribute("data-order-id"), status: r.getAttribute("data-status") })),
    );
  const eventTypes = () =>
    page.$$eval("#events li", (items) => items.map((li) => li.getAttribute("data-detail-type")));

  await step("GET / serves the page with its own Content-Security-Policy", async () => {
    const resp = await page.goto(BASE + "/");
    assert(resp && resp.status() === 200, `status ${resp && resp.status()}`);
    const csp = resp.headers()["content-security-policy"] || "";
    assert(csp.includes("script-src 'self'") && csp.includes("connect-src 'self'"), `CSP: ${csp}`);
    assert(!csp.includes("unsafe"), `CSP allows unsafe code: ${csp}`);
    assert((await page.title()) === "Orderly dashboard", `title ${await page.title()}`);
    await page.locator("#login-form").waitFor({ state: "visible" });
    assert(await page.locator("#app").isHidden(), "the dashboard shows before signing in");
    return "login form shown, data hidden";
  });

  await step("a wrong key is refused with the 401 message", async () => {
    await page.fill("#key", "oly_nosuchkey_0000000000000000");
    await page.click("#login-submit");
    const error = page.locator("#login-error");
    await error.waitFor({ state: "visible", timeout: 10000 });
    const text = await error.textContent();
    assert(/401/.test(text), `error text: ${text}`);
    assert(await page.locator("#app").isHidden(), "the dashboard opened with a wrong key");
    const stored = await page.evaluate(() => sessionStorage.getItem("orderly.apiKey"));
    assert(stored === null, "a refused key was kept in sessionStorage");
    return JSON.stringify(text);
  });

  await step("a customer's key is refused too: the dashboard is for admins (403)", async () => {
    await page.fill("#key", CUSTOMER_KEY);
    await page.click("#login-submit");
    await eventually("the 403 message", () => page.textContent("#login-error"), (t) => /403/.test(t), 10000);
    assert(await page.locator("#app").isHidden(), "the dashboard opened with a customer's key");
    return JSON.stringify(await page.textContent("#login-error"));
  });

  await step("the admin key signs in and is kept in sessionStorage", async () => {
    await page.fill("#key", KEY);
    await page.click("#login-submit");
    await page.locator("#app").waitFor({ state: "visible", timeout: 10000 });
    assert(await page.locator("#login").isHidden(), "login form still shown");
    const stored = await page.evaluate(() => sessionStorage.getItem("orderly.apiKey"));
    assert(stored === KEY, "the key is not in sessionStorage");
    const who = await page.textContent("#who");
    assert(!who.includes(KEY.split("_").slice(2).join("_")), "the key's secret is shown");
    return JSON.stringify(who);
  });

  await step("a reload keeps the session (no second sign-in)", async () => {
    await page.reload();
    await page.locator("#app").waitFor({ state: "visible", timeout: 10000 });
    assert(await page.locator("#login").isHidden(), "login form shown after reload");
  });

  const user = `e2e-${Date.now().toString(36)}`;
  await step(`the user filter shows no orders yet for ${user}`, async () => {
    await page.fill("#filter-user", user);
    await page.press("#filter-user", "Enter");
    await page.locator("#orders-empty").waitFor({ state: "visible", timeout: 10000 });
    assert((await rowIds()).length === 0, "rows shown for a new user");
  });

  // Four orders under the 50.00 decline limit, two over it.
  const plan = [
    { productId: "PROD-001", expect: "FULFILLED" },
    { productId: "PROD-002", expect: "FAILED" },
    { productId: "PROD-008", expect: "FULFILLED" },
    { productId: "PROD-010", expect: "FULFILLED" },
    { productId: "PROD-005", expect: "FAILED" },
    { productId: "PROD-004", expect: "FULFILLED" },
  ];
  const created = [];
  await step(`${plan.length} orders created through the API (Node fetch with the key)`, async () => {
    for (const p of plan) {
      const r = await api("POST", "/orders", {
        userId: user,
        customerEmail: "e2e@example.com",
        items: [{ productId: p.productId, qty: 1 }],
      });
      assert(r.status === 201, `POST /orders answered ${r.status}: ${r.text}`);
      created.push({ id: r.json.orderId, expect: p.expect });
      await new Promise((res) => setTimeout(res, 5));
    }
    return created.map((c) => c.id.slice(-12)).join(", ");
  });
  const newestFirst = created.map((c) => c.id).reverse();

  await step("they appear in the table without a reload and reach their terminal status", async () => {
    await page.selectOption("#filter-limit", "20");
    const expected = Object.fromEntries(created.map((c) => [c.id, c.expect]));
    const rows = await eventually(
      "rows with terminal statuses",
      rowIds,
      (rs) => rs.length === created.length && rs.every((r) => r.status === expected[r.id]),
    );
    assert(same(rows.map((r) => r.id), newestFirst), "the table is not newest first");
    return rows.map((r) => r.status).join(", ");
  });

  await step("the status filter shows only FAILED orders", async () => {
    await page.selectOption("#filter-status", "FAILED");
    const want = created.filter((c) => c.expect === "FAILED").map((c) => c.id).reverse();
    await eventually("only failed rows", rowIds, (rs) => same(rs.map((r) => r.id), want), 10000);
    await page.selectOption("#filter-status", "");
    await eventually("all rows again", rowIds, (rs) => rs.length === created.length, 10000);
    return `${want.length} rows`;
  });

  await step("paging with nextCursor: 5 per page, Older, Newest", async () => {
    await page.selectOption("#filter-limit", "5");
    await eventually("first page of 5", rowIds, (rs) => same(rs.map((r) => r.id), newestFirst.slice(0, 5)), 10000);
    assert(await page.isEnabled("#page-next"), "Older is disabled with more orders");
    await page.click("#page-next");
    await eventually("second page", rowIds, (rs) => same(rs.map((r) => r.id), newestFirst.slice(5)), 10000);
    await eventually("Older disabled on the last page", () => page.isDisabled("#page-next"), (d) => d, 5000);
    await page.click("#page-first");
    await eventually("first page again", rowIds, (rs) => same(rs.map((r) => r.id), newestFirst.slice(0, 5)), 10000);
    await page.selectOption("#filter-limit", "20");
    await eventually("all rows again", rowIds, (rs) => rs.length === created.length, 10000);
    return "pages of 5 + 1";
  });

  const fulfilled = created.find((c) => c.expect === "FULFILLED");
  const failedOrder = created.find((c) => c.expect === "FAILED");
  await step("a failed order's timeline shows the compensation events", async () => {
    await page.click(`#orders-body tr[data-order-id="${failedOrder.id}"]`);
    const types = await eventually("failed timeline", eventTypes, (t) => same(t, FAILED_EVENTS), 10000);
    const summary = await page.textContent("#order-summary");
    assert(summary.includes(failedOrder.id), "summary does not name the order");
    assert(/Failure/.test(summary), `no failure reason in ${summary}`);
    const fromApi = await api("GET", `/orders/${failedOrder.id}/events`);
    assert(same(fromApi.json.items.map((e) => e.detailType), types), "the page and the API disagree");
    return types.join(" > ");
  });

  await step("a fulfilled order's timeline shows every saga event with times and details", async () => {
    await page.click(`#orders-body tr[data-order-id="${fulfilled.id}"]`);
    const types = await eventually("fulfilled timeline", eventTypes, (t) => same(t, FULFILLED_EVENTS), 10000);
    const times = await page.$$eval("#events .event-time", (ts) => ts.map((t) => t.getAttribute("title")));
    assert(times.length === types.length && times.every((t) => !isNaN(Date.parse(t))), `times ${times}`);
    const summary = await page.textContent("#order-summary");
    assert(/Tracking/.test(summary), `no tracking id in ${summary}`);
    const selected = await page.getAttribute(`#orders-body tr[data-order-id="${fulfilled.id}"]`, "class");
    assert(selected === "selected", "the clicked row is not highlighted");
    return types.join(" > ");
  });

  const dlqRows = () =>
    page.$$eval("#dlq-body tr", (rows) =>
      rows.map((r) => ({ id: r.getAttribute("data-id"), queue: r.children[1].textContent })),
    );

  await step("notifications to the refusing mail server show up as dead letters", async () => {
    const rows = await eventually("dead letters listed", dlqRows, (rs) => rs.length >= 2, 45000, 300);
    const fromApi = await api("GET", "/admin/dlq");
    assert(fromApi.status === 200, `GET /admin/dlq answered ${fromApi.status}`);
    const count = await page.textContent("#dlq-count");
    return `${rows.length} rows (count badge ${count}), queues ${[...new Set(rows.map((r) => r.queue))].join(", ")}`;
  });

  await step("Replay on one row moves that dead letter back (the row leaves the list)", async () => {
    const [first] = await dlqRows();
    const [resp] = await Promise.all([
      page.waitForResponse((r) => r.url() === BASE + "/admin/dlq/replay" && r.request().method() === "POST"),
      page.click(`#dlq-body button[data-replay="${first.id}"]`),
    ]);
    assert(resp.status() === 200, `replay answered ${resp.status()}`);
    const sent = resp.request().postDataJSON();
    assert(same(sent, { ids: [first.id] }), `the button sent ${JSON.stringify(sent)}`);
    const body = await resp.json();
    assert(same(body.replayed, [first.id]), `replayed ${JSON.stringify(body)}`);
    // The page removes the row as it handles the answer: both are seen in one evaluation.
    await page.waitForFunction(
      (id) =>
        document.getElementById("dlq-message").textContent.includes(id) &&
        !document.querySelector(`#dlq-body tr[data-id="${CSS.escape(id)}"]`),
      first.id,
      { timeout: 5000 },
    );
    return `dead letter ${first.id} replayed`;
  });

  await step("Replay all moves every listed dead letter back", async () => {
    const before = await eventually("dead letters to replay", dlqRows, (rs) => rs.length >= 1, 30000, 300);
    const [resp] = await Promise.all([
      page.waitForResponse((r) => r.url() === BASE + "/admin/dlq/replay" && r.request().method() === "POST"),
      page.click("#dlq-replay-all"),
    ]);
    assert(resp.status() === 200, `replay all answered ${resp.status()}`);
    const body = await resp.json();
    const moved = new Set(body.replayed);
    assert(before.every((r) => moved.has(r.id)), `listed ${JSON.stringify(before)}, replayed ${JSON.stringify(body)}`);
    await page.waitForFunction(
      (ids) =>
        /^Replayed \d+ dead letter/.test(document.getElementById("dlq-message").textContent) &&
        ids.every((id) => !document.querySelector(`#dlq-body tr[data-id="${CSS.escape(id)}"]`)),
      before.map((r) => r.id),
      { timeout: 5000 },
    );
    return `${body.replayed.length} replayed`;
  });

  await step("alarms: listed as GET /admin/alarms answers (or its absence shown)", async () => {
    const r = await api("GET", "/admin/alarms");
    if (r.status === 404) {
      await eventually("404 note", () => page.textContent("#alarms-note"), (t) => t.includes("404"), 10000);
      return "the server has no alarms endpoint (404), and the page says so";
    }
    assert(r.status === 200, `GET /admin/alarms answered ${r.status}`);
    const names = r.json.items.map((a) => a.name).sort();
    const shown = await eventually(
      "alarm rows",
      () => page.$$eval("#alarms li", (li) => li.map((l) => l.getAttribute("data-name")).sort()),
      (s) => same(s, names),
      10000,
    );
    const states = await page.$$eval("#alarms li", (li) => li.map((l) => l.getAttribute("data-state")));
    return `${shown.length} alarms (${shown.map((n, i) => `${n}=${states[i]}`).join(", ")})`;
  });

  const canvasStats = (id, colors) =>
    page.evaluate(
      ([id, colors]) => {
        const c = document.getElementById(id);
        const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        let painted = 0;
        const hits = colors.map(() => 0);
        for (let i = 0; i < d.length; i += 4) {
          if (d[i + 3] === 0) continue;
          painted++;
          colors.forEach((col, j) => {
            if (d[i + 3] > 200 && col.every((v, k) => Math.abs(d[i + k] - v) < 40)) hits[j]++;
          });
        }
        return {
          painted,
          hits,
          points: Number(c.dataset.points || 0),
          max: Number(c.dataset.max || 0),
          size: c.width * c.height,
        };
      },
      [id, colors],
    );

  await step("the charts' canvases are drawn from /metrics", async () => {
    const metrics = await api("GET", "/metrics");
    const charts = [
      ["chart-throughput", [BLUE]],
      ["chart-latency", [GREEN, AMBER]],
      ["chart-outcomes", [GREEN, RED]],
    ];
    const notes = [];
    for (const [id, colors] of charts) {
      if (metrics.status !== 200) {
        const s = await canvasStats(id, colors);
        assert(s.painted > 100, `${id} is blank`);
        notes.push(`${id}: frame only`);
        continue;
      }
      const s = await eventually(
        `${id} plotted with its series colours`,
        () => canvasStats(id, colors),
        // Orders were created and pages fetched since the page's first scrape: the rate
        // and the latency went above zero at least once. Three values make a line.
        (s) =>
          s.hits.every((h) => h >= 10) &&
          (id === "chart-outcomes" ? s.points === 3 : s.points >= 3 && s.max > 0),
        15000,
        500,
      );
      const max = id === "chart-outcomes" ? "" : `, max ${s.max.toPrecision(3)}`;
      notes.push(`${id}: ${s.points} values${max}, ${s.painted} of ${s.size} pixels painted`);
    }
    if (metrics.status !== 200) notes.push(`GET /metrics answered ${metrics.status}`);
    return notes.join("; ");
  });

  await step(`screenshot saved to ${join(OUT, "dashboard.png")}`, async () => {
    await page.click(`#orders-body tr[data-order-id="${fulfilled.id}"]`);
    await eventually("timeline", eventTypes, (t) => same(t, FULFILLED_EVENTS), 10000);
    await page.screenshot({ path: join(OUT, "dashboard.png"), fullPage: true });
  });

  await step("every API call of the page carried the key as x-api-key", async () => {
    assert(apiRequests.length > 0, "no API requests seen");
    const tried = ["oly_nosuchkey_0000000000000000", CUSTOMER_KEY];
    const wrong = apiRequests.filter((r) => r.key !== KEY && !tried.includes(r.key));
    assert(wrong.length === 0, `without the key: ${JSON.stringify(wrong.slice(0, 5))}`);
    const paths = new Set(apiRequests.map((r) => r.path.split("?")[0]));
    for (const p of ["/orders", "/admin/dlq", "/metrics", "/admin/alarms"]) {
      assert(paths.has(p), `never called ${p}`);
    }
    return `${apiRequests.length} requests to ${[...paths].filter((p) => !p.startsWith("/orders/")).join(", ")} and order pages`;
  });

  await step("signing out forgets the key", async () => {
    await page.click("#logout");
    await page.locator("#login-form").waitFor({ state: "visible" });
    assert(await page.locator("#app").isHidden(), "data still shown");
    const stored = await page.evaluate(() => sessionStorage.getItem("orderly.apiKey"));
    assert(stored === null, "the key is still in sessionStorage");
  });

  await step("no script error and no Content-Security-Policy violation", async () => {
    assert(problems.length === 0, problems.join("\n"));
  });
}

const started = Date.now();
let finished = false;
try {
  await main();
  finished = true;
} catch (e) {
  console.error(e instanceof CheckFailed ? `check failed: ${e.message}` : e);
}
console.log(`dashboard e2e: ${((Date.now() - started) / 1000).toFixed(1)} s`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(finished && failed === 0 && passed > 0 ? 0 : 1);
