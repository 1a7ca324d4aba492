"use strict";
// Reading the Prometheus text exposition format (what GET /metrics answers) and the bit of
// arithmetic the charts need: sums over label sets, rates between two scrapes, quantiles
// from histogram buckets. Pure functions, no DOM: e2e/prom.test.mjs runs them in Node.
var OrderlyProm = (function () {
  // A label block `{a="x",b="y\"z"}` starting at text[i] ("{"); answers [labels, next index].
  function parseLabels(text, i) {
    var labels = {};
    i++; // "{"
    for (;;) {
      while (text[i] === " " || text[i] === ",") i++;
      if (text[i] === "}") return [labels, i + 1];
      var eq = text.indexOf("=", i);
      if (eq < 0) return null;
      var name = text.slice(i, eq).trim();
      i = eq + 1;
      if (text[i] !== '"') return null;
      i++;
      var value = "";
      for (;;) {
        if (i >= text.length) return null;
        var c = text[i];
        if (c === "\\") {
          var n = text[i + 1];
          value += n === "n" ? "\n" : n;
          i += 2;
        } else if (c === '"') {
          i++;
          break;
        } else {
          value += c;
          i++;
        }
      }
      labels[name] = value;
    }
  }

  function parseNumber(s) {
    if (s === "+Inf" || s === "Inf") return Infinity;
    if (s === "-Inf") return -Infinity;
    if (s === "NaN") return NaN;
    var n = Number(s);
    return s === "" || isNaN(n) ? null : n;
  }

  // Every sample of the exposition: [{name, labels, value}]. Comments, blank lines and lines
  // that do not parse are skipped (a partial scrape still shows what it has).
  function parse(text) {
    var out = [];
    String(text || "").split("\n").forEach(function (raw) {
      var line = raw.trim();
      if (line === "" || line[0] === "#") return;
      var m = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
      if (!m) return;
      var name = m[0];
      var i = name.length;
      var labels = {};
      if (line[i] === "{") {
        var parsed = parseLabels(line, i);
        if (!parsed) return;
        labels = parsed[0];
        i = parsed[1];
      }
      var fields = line.slice(i).trim().split(/\s+/);
      var value = parseNumber(fields[0] || "");
      if (value === null) return;
      out.push({ name: name, labels: labels, value: value });
    });
    return out;
  }

  function matches(sample, name, filter) {
    if (sample.name !== name) return false;
    if (!filter) return true;
    return Object.keys(filter).every(function (k) {
      return sample.labels[k] === filter[k];
    });
  }

  // The sum of every series of `name` whose labels include `filter`; null if there is none.
  function sum(samples, name, filter) {
    var total = null;
    samples.forEach(function (s) {
      if (matches(s, name, filter) && !isNaN(s.value)) total = (total || 0) + s.value;
    });
    return total;
  }

  // {labelValue: sum} of `name` grouped by one label.
  function byLabel(samples, name, label) {
    var out = {};
    samples.forEach(function (s) {
      if (s.name !== name || isNaN(s.value)) return;
      var k = s.labels[label];
      if (k === undefined) return;
      out[k] = (out[k] || 0) + s.value;
    });
    return out;
  }

  // A histogram summed over its label sets: {buckets: [{le, count}] by le, count, sum}, or
  // null when the exposition has no `<base>_bucket` series.
  function histogram(samples, base, filter) {
    var byLe = {};
    var found = false;
    samples.forEach(function (s) {
      if (!matches(s, base + "_bucket", filter)) return;
      var le = parseNumber(s.labels.le || "");
      if (le === null || isNaN(le)) return;
      found = true;
      byLe[le] = (byLe[le] || 0) + s.value;
    });
    if (!found) return null;
    var buckets = Object.keys(byLe)
      .map(function (k) {
        return { le: Number(k), count: byLe[k] };
      })
      .sort(function (a, b) {
        return a.le - b.le;
      });
    var count = sum(samples, base + "_count", filter);
    if (count === null) count = buckets[buckets.length - 1].count;
    return { buckets: buckets, count: count, sum: sum(samples, base + "_sum", filter) || 0 };
  }

  // What happened between two scrapes of a histogram (`before` may be null: everything).
  // A counter that went down means the process restarted: then `now` is the difference.
  function histogramDelta(now, before) {
    if (!now) return null;
    if (!before) return now;
    var old = {};
    before.buckets.forEach(function (b) {
      old[b.le] = b.count;
    });
    var reset = now.count < before.count;
    var buckets = now.buckets.map(function (b) {
      var d = reset ? b.count : b.count - (old[b.le] || 0);
      if (d < 0) reset = true;
      return { le: b.le, count: d };
    });
    if (reset) return now;
    return {
      buckets: buckets,
      count: now.count - before.count,
      sum: now.sum - before.sum,
    };
  }

  // The q-quantile (0..1) of a histogram, interpolating linearly inside the bucket it falls
  // in, as Prometheus' histogram_quantile does; null without observations. A rank in the
  // +Inf bucket answers the highest finite bound.
  function quantile(q, hist) {
    if (!hist || !hist.buckets.length) return null;
    var b = hist.buckets;
    var total = b[b.length - 1].count;
    if (!(total > 0)) return null;
    var rank = q * total;
    var i = 0;
    while (i < b.length - 1 && b[i].count < rank) i++;
    if (b[i].le === Infinity) {
      return i > 0 ? b[i - 1].le : null;
    }
    var lower = i > 0 ? b[i - 1].le : 0;
    var below = i > 0 ? b[i - 1].count : 0;
    var inBucket = b[i].count - below;
    if (lower > b[i].le) lower = 0;
    if (inBucket <= 0) return b[i].le;
    return lower + (b[i].le - lower) * ((rank - below) / inBucket);
  }

  // For a summary (an exporter without buckets): the quantile label's values averaged over
  // the label sets, weighted by their counts. An approximation, and null if absent.
  function summaryQuantile(samples, base, q) {
    var weighted = 0;
    var weight = 0;
    samples.forEach(function (s) {
      if (s.name !== base || s.labels.quantile === undefined) return;
      if (Number(s.labels.quantile) !== q || isNaN(s.value)) return;
      var filter = {};
      Object.keys(s.labels).forEach(function (k) {
        if (k !== "quantile") filter[k] = s.labels[k];
      });
      var n = sum(samples, base + "_count", filter);
      var w = n === null ? 1 : n;
      weighted += s.value * w;
      weight += w;
    });
    return weight > 0 ? weighted / weight : null;
  }

  // Per-second rate of a counter between two readings `seconds` apart; a counter that went
  // down restarted from zero. Null when either reading is missing.
  function rate(now, before, seconds) {
    if (now === null || before === null || !(seconds > 0)) return null;
    var d = now >= before ? now - before : now;
    return d / seconds;
  }

  // An alarm's value or threshold as a person reads it: a rate (an alarm named *_rate) as a
  // percentage with at most two decimals, a count as a whole number, anything else with at
  // most three decimals. Null stays empty.
  function alarmValue(name, v) {
    if (v === null || v === undefined || typeof v !== "number" || !isFinite(v)) return "";
    var trim = function (x, digits) {
      return String(Number(x.toFixed(digits)));
    };
    if (/_rate$/.test(name)) return trim(v * 100, 2) + " %";
    if (Number.isInteger(v)) return String(v);
    return trim(v, 3);
  }

  return {
    alarmValue: alarmValue,
    parse: parse,
    sum: sum,
    byLabel: byLabel,
    histogram: histogram,
    histogramDelta: histogramDelta,
    quantile: quantile,
    summaryQuantile: summaryQuantile,
    rate: rate,
  };
})();
