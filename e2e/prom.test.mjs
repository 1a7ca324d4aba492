// Unit tests of the dashboard's Prometheus text parsing and arithmetic
// (crates/orderly-http/src/dashboard/prom.js), run with `node --test e2e/prom.test.mjs`.
// prom.js is a browser script: it is evaluated here as one, in a fresh context (whose
// arrays have their own prototypes: results are copied with Array.from before comparing).

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { runInNewContext } from "node:vm";

const source = readFileSync(
  new URL("../crates/orderly-http/src/dashboard/prom.js", import.meta.url),
  "utf8",
);
const context = {};
runInNewContext(source, context);
const P = context.OrderlyProm;

const SCRAPE = `# HELP orderly_orders_created_total Orders accepted.
# TYPE orderly_orders_created_total counter
orderly_orders_created_total 7
orderly_saga_duration_seconds_count{outcome="fulfilled"} 5
orderly_saga_duration_seconds_count{outcome="failed"} 2
orderly_http_request_duration_seconds_bucket{route="/orders",method="POST",le="0.01"} 6
orderly_http_request_duration_seconds_bucket{route="/orders",method="POST",le="0.1"} 9
orderly_http_request_duration_seconds_bucket{route="/orders",method="POST",le="+Inf"} 10
orderly_http_request_duration_seconds_sum{route="/orders",method="POST"} 0.5
orderly_http_request_duration_seconds_count{route="/orders",method="POST"} 10
orderly_http_request_duration_seconds_bucket{route="/orders/{order_id}",method="GET",le="0.01"} 4
orderly_http_request_duration_seconds_bucket{route="/orders/{order_id}",method="GET",le="0.1"} 10
orderly_http_request_duration_seconds_bucket{route="/orders/{order_id}",method="GET",le="+Inf"} 10
orderly_http_request_duration_seconds_count{route="/orders/{order_id}",method="GET"} 10
weird_total{path="a\\"b\\\\c,d}",x="y"} 3 1712345678000
not a sample line
broken{a="unterminated 1
`;

test("samples, labels with escapes and timestamps are parsed; junk lines are skipped", () => {
  const s = P.parse(SCRAPE);
  assert.equal(s.length, 13);
  const weird = s.find((x) => x.name === "weird_total");
  assert.equal(weird.labels.path, 'a"b\\c,d}');
  assert.equal(weird.labels.x, "y");
  assert.equal(weird.value, 3);
  const inf = s.find((x) => x.labels.le === "+Inf");
  assert.ok(inf);
});

test("sums, groups and missing series", () => {
  const s = P.parse(SCRAPE);
  assert.equal(P.sum(s, "orderly_orders_created_total"), 7);
  assert.equal(P.sum(s, "orderly_orders_failed_total"), null);
  assert.equal(P.sum(s, "orderly_http_request_duration_seconds_count", { method: "GET" }), 10);
  assert.deepEqual({ ...P.byLabel(s, "orderly_saga_duration_seconds_count", "outcome") }, {
    fulfilled: 5,
    failed: 2,
  });
  assert.equal(P.histogram(s, "no_such_seconds"), null);
});

test("histograms are summed over label sets and their quantiles interpolated", () => {
  const h = P.histogram(P.parse(SCRAPE), "orderly_http_request_duration_seconds");
  assert.deepEqual(
    Array.from(h.buckets, (b) => [b.le, b.count]),
    [
      [0.01, 10],
      [0.1, 19],
      [Infinity, 20],
    ],
  );
  assert.equal(h.count, 20);
  // Rank 10 of 20 is the last observation of the first bucket: its upper bound.
  assert.equal(P.quantile(0.5, h), 0.01);
  // Rank 14 is 4 of the 9 in (0.01, 0.1].
  assert.ok(Math.abs(P.quantile(0.7, h) - (0.01 + 0.09 * (4 / 9))) < 1e-12);
  // Rank 19.8 falls in +Inf: the highest finite bound.
  assert.equal(P.quantile(0.99, h), 0.1);
  assert.equal(P.quantile(0.5, { buckets: [{ le: Infinity, count: 0 }], count: 0, sum: 0 }), null);
});

test("deltas between scrapes, and a restarted process", () => {
  const before = {
    buckets: [
      { le: 0.01, count: 10 },
      { le: Infinity, count: 12 },
    ],
    count: 12,
    sum: 1,
  };
  const now = {
    buckets: [
      { le: 0.01, count: 10 },
      { le: Infinity, count: 16 },
    ],
    count: 16,
    sum: 3,
  };
  const d = P.histogramDelta(now, before);
  assert.deepEqual(
    Array.from(d.buckets, (b) => b.count),
    [0, 4],
  );
  assert.equal(d.count, 4);
  // All four new observations are above 0.01: the quantile is that bound, not 0.
  assert.equal(P.quantile(0.5, d), 0.01);
  const restarted = { buckets: [{ le: 0.01, count: 1 }, { le: Infinity, count: 1 }], count: 1, sum: 0 };
  assert.equal(P.histogramDelta(restarted, before), restarted);
  assert.equal(P.histogramDelta(now, null), now);
});

test("rates, counter resets and summaries", () => {
  assert.equal(P.rate(14, 10, 2), 2);
  assert.equal(P.rate(3, 10, 2), 1.5);
  assert.equal(P.rate(null, 10, 2), null);
  assert.equal(P.rate(5, 4, 0), null);
  const s = P.parse(`lat{route="a",quantile="0.5"} 0.1
lat{route="b",quantile="0.5"} 0.4
lat_count{route="a"} 3
lat_count{route="b"} 1
`);
  assert.ok(Math.abs(P.summaryQuantile(s, "lat", 0.5) - 0.175) < 1e-12);
  assert.equal(P.summaryQuantile(s, "lat", 0.99), null);
});

test("alarm values read as a person reads them", () => {
  assert.equal(P.alarmValue("saga_failure_rate", 0.05333333333333334), "5.33 %");
  assert.equal(P.alarmValue("http_5xx_rate", 0.05), "5 %");
  assert.equal(P.alarmValue("http_5xx_rate", 0), "0 %");
  assert.equal(P.alarmValue("dlq_depth", 12), "12");
  assert.equal(P.alarmValue("other", 1.23456), "1.235");
  assert.equal(P.alarmValue("dlq_depth", null), "");
});
