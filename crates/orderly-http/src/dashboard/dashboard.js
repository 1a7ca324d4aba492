"use strict";
// The Orderly dashboard: sign in with an admin API key, then orders (live), an order's
// timeline, dead letters with replay, alarms and charts from /metrics. Every value from the
// server is inserted as text (textContent), never as HTML.
(function () {
  var STORAGE_KEY = "orderly.apiKey";
  var ORDERS_MS = 1500;
  var DLQ_MS = 2000;
  var ALARMS_MS = 3000;
  var METRICS_MS = 2000;
  var WINDOW_MS = 120000;
  var TERMINAL = { FULFILLED: true, FAILED: true, CANCELLED: true };
  var COLORS = { blue: "#2f6fde", red: "#c23b3b", green: "#1f8a4c", grey: "#8a93a3", amber: "#b8741a" };

  var key = null;
  // Bumped at every sign-in and sign-out: loops of an older session stop.
  var session = 0;
  var orders = { cursors: [null], next: null, signature: "", selected: null };
  var timeline = { signature: "" };
  // Bumped around every replay: a list fetched before the replay answered is stale.
  var dlqGeneration = 0;
  var dlqSignature = "";
  var metrics = { prev: null, throughput: [], p50: [], p99: [], outcomes: null, note: "" };

  function $(id) {
    return document.getElementById(id);
  }

  // el("td", {class: "x", title: "y"}, "text", childNode, ...): text children become text.
  function el(tag, attrs) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "class") node.className = attrs[k];
      else if (k.indexOf("data-") === 0) node.setAttribute(k, String(attrs[k]));
      else node[k] = attrs[k];
    });
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined) continue;
      node.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function show(node, text) {
    node.textContent = text || "";
    node.hidden = !text;
  }

  function pad(n) {
    return n < 10 ? "0" + n : String(n);
  }

  // Local time: "14:03:07", with the date when it is not today.
  function when(iso) {
    if (!iso) return "";
    var d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    var t = pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
    var today = new Date();
    if (d.toDateString() === today.toDateString()) return t;
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + t;
  }

  function money(amount, currency) {
    var n = Number(amount);
    return (isNaN(n) ? String(amount) : n.toFixed(2)) + (currency ? " " + currency : "");
  }

  function badge(text) {
    return el("span", { class: "badge " + String(text).replace(/[^A-Z_]/g, "") }, text);
  }

  // ---- the API ---------------------------------------------------------------------------

  // Calls the API with the key. Answers {status, ok, json, text, message}; a network failure
  // is status 0. A 401 while signed in ends the session.
  function api(path, options, withKey) {
    var opts = options || {};
    var headers = { "x-api-key": withKey || key || "" };
    if (opts.json !== undefined) headers["content-type"] = "application/json";
    var mine = session;
    return fetch(path, {
      method: opts.method || "GET",
      headers: headers,
      body: opts.json !== undefined ? JSON.stringify(opts.json) : undefined,
      cache: "no-store",
      credentials: "omit",
    })
      .then(function (resp) {
        return resp.text().then(function (text) {
          var json = null;
          try {
            json = JSON.parse(text);
          } catch (e) {
            json = null;
          }
          var message = json && typeof json.message === "string" ? json.message : "";
          return { status: resp.status, ok: resp.ok, json: json, text: text, message: message };
        });
      })
      .catch(function (e) {
        return { status: 0, ok: false, json: null, text: "", message: "the server does not answer (" + e.message + ")" };
      })
      .then(function (r) {
        if (r.status === 401 && !withKey && key && mine === session) {
          signOut("Signed out: the key was refused (401): " + (r.message || "unauthorized"));
        }
        return r;
      });
  }

  function describe(r) {
    if (r.status === 0) return r.message;
    return r.status + (r.message ? ": " + r.message : "");
  }

  // Runs fn (which answers a promise) now and every ms while this session lasts; skipped
  // while the tab is hidden.
  function every(ms, fn) {
    var mine = session;
    function loop() {
      if (mine !== session) return;
      Promise.resolve()
        .then(function () {
          return document.hidden ? null : fn();
        })
        .catch(function (e) {
          show($("app-error"), "Dashboard error: " + e.message);
        })
        .then(function () {
          if (mine === session) setTimeout(loop, ms);
        });
    }
    loop();
  }

  // ---- signing in --------------------------------------------------------------------------

  function checkKey(candidate) {
    return api("/orders?limit=1", null, candidate).then(function (r) {
      if (r.status === 401) return "The key was refused (401 Unauthorized): " + (r.message || "unknown key");
      if (!r.ok) return "Sign-in failed (" + describe(r) + ")";
      return api("/admin/dlq?limit=1", null, candidate).then(function (a) {
        if (a.status === 403) return "This key is not an admin's (403 Forbidden): " + (a.message || "forbidden");
        if (!a.ok) return "Sign-in failed (" + describe(a) + ")";
        return null;
      });
    });
  }

  function signIn(candidate, remember) {
    $("login-submit").disabled = true;
    return checkKey(candidate).then(function (problem) {
      $("login-submit").disabled = false;
      if (problem) {
        sessionStorage.removeItem(STORAGE_KEY);
        showLogin(problem);
        return;
      }
      if (remember) sessionStorage.setItem(STORAGE_KEY, candidate);
      start(candidate);
    });
  }

  function showLogin(problem) {
    $("app").hidden = true;
    $("logout").hidden = true;
    $("login").hidden = false;
    show($("login-error"), problem);
    $("who").textContent = "";
    $("key").focus();
  }

  function signOut(problem) {
    session++;
    key = null;
    sessionStorage.removeItem(STORAGE_KEY);
    orders = { cursors: [null], next: null, signature: "", selected: null };
    timeline = { signature: "" };
    metrics = { prev: null, throughput: [], p50: [], p99: [], outcomes: null, note: "" };
    dlqSignature = "";
    clear($("orders-body"));
    clear($("events"));
    clear($("dlq-body"));
    clear($("alarms"));
    $("order-summary").hidden = true;
    $("key").value = "";
    showLogin(problem || "");
  }

  function start(k) {
    session++;
    key = k;
    $("login").hidden = true;
    $("app").hidden = false;
    $("logout").hidden = false;
    show($("login-error"), "");
    show($("app-error"), "");
    // The key's id only (oly_<id>_<secret>): the secret is never shown.
    var parts = k.split("_");
    $("who").textContent = "signed in with key " + (parts.length >= 3 ? parts[0] + "_" + parts[1] : "(custom)");
    drawCharts();
    every(ORDERS_MS, function () {
      return refreshOrders().then(refreshTimeline);
    });
    every(DLQ_MS, refreshDlq);
    every(ALARMS_MS, refreshAlarms);
    every(METRICS_MS, scrapeMetrics);
    every(5000, refreshHealth);
  }

  function refreshHealth() {
    return fetch("/ready", { cache: "no-store", credentials: "omit" })
      .then(function (r) {
        return r.ok ? "ready" : "not ready (" + r.status + ")";
      })
      .catch(function () {
        return "unreachable";
      })
      .then(function (text) {
        $("health").textContent = "server " + text;
      });
  }

  // ---- orders ------------------------------------------------------------------------------

  function ordersQuery() {
    var q = new URLSearchParams();
    q.set("limit", $("filter-limit").value);
    var status = $("filter-status").value;
    if (status) q.set("status", status);
    var user = $("filter-user").value.trim();
    if (user) q.set("userId", user);
    var cursor = orders.cursors[orders.cursors.length - 1];
    if (cursor) q.set("cursor", cursor);
    return "/orders?" + q.toString();
  }

  function refreshOrders() {
    var mine = session;
    var query = ordersQuery();
    return api(query).then(function (r) {
      if (mine !== session || query !== ordersQuery()) return;
      if (!r.ok) {
        show($("orders-error"), "Orders: " + describe(r));
        return;
      }
      show($("orders-error"), "");
      var items = (r.json && r.json.items) || [];
      orders.next = (r.json && r.json.nextCursor) || null;
      $("page-next").disabled = !orders.next;
      $("page-first").disabled = orders.cursors.length === 1;
      $("page-info").textContent = "page " + orders.cursors.length;
      $("orders-updated").textContent = "updated " + when(new Date().toISOString());
      var signature = JSON.stringify([
        orders.selected,
        items.map(function (o) {
          return [o.orderId, o.status, o.version];
        }),
      ]);
      if (signature === orders.signature) return;
      orders.signature = signature;
      renderOrders(items);
    });
  }

  function renderOrders(items) {
    var body = $("orders-body");
    clear(body);
    $("orders-empty").hidden = items.length > 0;
    items.forEach(function (o) {
      var qty = (o.items || []).reduce(function (n, i) {
        return n + (Number(i.qty) || 0);
      }, 0);
      var id = String(o.orderId);
      var tr = el(
        "tr",
        { "data-order-id": id, "data-status": o.status, class: id === orders.selected ? "selected" : "" },
        // Ids are UUIDv7: the start is a timestamp shared by neighbours, the end tells apart.
        el("td", { class: "id", title: id }, "…" + id.slice(-12)),
        el("td", {}, o.userId),
        el("td", { class: "status" }, badge(o.status)),
        el("td", { class: "num" }, money(o.totalAmount, o.currency)),
        el("td", { class: "num" }, qty),
        el("td", { class: "time", title: o.createdAt }, when(o.createdAt)),
        el("td", { class: "time", title: o.updatedAt }, when(o.updatedAt))
      );
      tr.addEventListener("click", function () {
        selectOrder(id);
      });
      body.appendChild(tr);
    });
  }

  function resetPaging() {
    orders.cursors = [null];
    orders.signature = "";
    return refreshOrders();
  }

  // ---- an order's timeline -----------------------------------------------------------------

  function selectOrder(id) {
    orders.selected = id;
    timeline.signature = "";
    Array.prototype.forEach.call($("orders-body").children, function (tr) {
      tr.className = tr.getAttribute("data-order-id") === id ? "selected" : "";
    });
    orders.signature = "";
    return refreshTimeline();
  }

  var EVENT_CLASS = {
    PaymentFailed: "bad",
    InventoryReleased: "bad",
    PaymentRefunded: "bad",
    OrderFailed: "bad",
    OrderCancelled: "bad",
    OrderConfirmed: "good",
    FulfillmentCompleted: "good",
  };

  // The interesting fields of an event's detail, as "name: value" text.
  function detailText(detail) {
    return Object.keys(detail || {})
      .filter(function (k) {
        return k !== "orderId";
      })
      .map(function (k) {
        var v = detail[k];
        if (Array.isArray(v)) {
          var lines = v.every(function (x) {
            return x && typeof x === "object" && x.productId !== undefined;
          });
          if (lines && v.length) {
            return k + ": " + v.map(function (x) {
              return x.productId + (x.qty !== undefined ? " × " + x.qty : "");
            }).join(", ");
          }
          return k + ": " + v.length + (v.length === 1 ? " entry" : " entries");
        }
        if (v !== null && typeof v === "object") v = JSON.stringify(v);
        var s = String(v);
        return k + ": " + (s.length > 80 ? s.slice(0, 79) + "…" : s);
      })
      .join(" · ");
  }

  function refreshTimeline() {
    var id = orders.selected;
    if (!id) return Promise.resolve();
    var path = "/orders/" + encodeURIComponent(id);
    var mine = session;
    return Promise.all([api(path), api(path + "/events")]).then(function (rs) {
      if (id !== orders.selected || mine !== session) return;
      var order = rs[0];
      var events = rs[1];
      if (!order.ok || !events.ok) {
        show($("timeline-error"), "Timeline: " + describe(order.ok ? events : order));
        return;
      }
      show($("timeline-error"), "");
      var items = (events.json && events.json.items) || [];
      var signature = JSON.stringify([id, order.json.version, items.length]);
      if (signature === timeline.signature) return;
      timeline.signature = signature;
      renderTimeline(order.json, items);
    });
  }

  function renderTimeline(o, events) {
    $("timeline-hint").hidden = true;
    var dl = $("order-summary");
    clear(dl);
    function row(label, value) {
      if (value === null || value === undefined || value === "") return;
      dl.appendChild(el("dt", {}, label));
      dl.appendChild(el("dd", {}, value));
    }
    row("Order", el("span", { class: "mono" }, o.orderId));
    row("Status", badge(o.status));
    row("User", o.userId);
    row("Email", o.customerEmail);
    row("Total", money(o.totalAmount, o.currency));
    row(
      "Items",
      (o.items || [])
        .map(function (i) {
          return i.productId + " × " + i.qty + " @ " + money(i.unitPrice);
        })
        .join(", ")
    );
    row("Failure", o.failureReason);
    row("Tracking", o.trackingId);
    row("Created", when(o.createdAt));
    row("Updated", when(o.updatedAt));
    dl.hidden = false;
    var list = $("events");
    clear(list);
    events.forEach(function (e) {
      var text = detailText(e.detail);
      list.appendChild(
        el(
          "li",
          { "data-detail-type": e.detailType, class: EVENT_CLASS[e.detailType] || "" },
          el("span", { class: "event-type" }, e.detailType),
          el("span", { class: "event-time", title: e.time }, when(e.time)),
          text ? el("div", { class: "event-detail" }, text) : null
        )
      );
    });
    if (!events.length) list.appendChild(el("li", {}, "No events yet."));
  }

  // ---- dead letters ------------------------------------------------------------------------

  function refreshDlq() {
    var generation = dlqGeneration;
    var mine = session;
    return api("/admin/dlq?limit=100").then(function (r) {
      if (generation !== dlqGeneration || mine !== session) return;
      if (!r.ok) {
        show($("dlq-error"), "Dead letters: " + describe(r));
        return;
      }
      show($("dlq-error"), "");
      var items = (r.json && r.json.items) || [];
      var signature = JSON.stringify(
        items.map(function (d) {
          return [d.id, d.receiveCount, d.deadAt, d.lastError];
        })
      );
      if (signature === dlqSignature) return;
      dlqSignature = signature;
      renderDlq(items);
    });
  }

  function setDlqCount(n) {
    var c = $("dlq-count");
    c.textContent = String(n);
    c.className = n > 0 ? "count nonzero" : "count";
    $("dlq-empty").hidden = n > 0;
    $("dlq-replay-all").disabled = n === 0;
  }

  function renderDlq(items) {
    var body = $("dlq-body");
    clear(body);
    setDlqCount(items.length);
    items.forEach(function (d) {
      var id = String(d.id);
      var button = el("button", { type: "button", class: "small", "data-replay": id }, "Replay");
      button.addEventListener("click", function () {
        replay([id]);
      });
      var bodyText = String(d.body === undefined ? "" : d.body);
      body.appendChild(
        el(
          "tr",
          { "data-id": id },
          el("td", { class: "id" }, id),
          el("td", {}, d.queue),
          el("td", { class: "num" }, d.receiveCount),
          el("td", { class: "error-text" }, el("div", { class: "clip", title: d.lastError || "" }, d.lastError || "")),
          el("td", { class: "body" }, el("div", { class: "clip", title: bodyText }, bodyText)),
          el("td", { class: "time", title: d.enqueuedAt }, when(d.enqueuedAt)),
          el("td", { class: "time", title: d.deadAt }, when(d.deadAt)),
          el("td", {}, button)
        )
      );
    });
  }

  // Replays the given ids (null: all), then removes what moved from the list at once.
  function replay(ids) {
    dlqGeneration++;
    var buttons = document.querySelectorAll("#dlq-body button, #dlq-replay-all");
    Array.prototype.forEach.call(buttons, function (b) {
      b.disabled = true;
    });
    var request = ids ? { ids: ids } : {};
    return api("/admin/dlq/replay", { method: "POST", json: request }).then(function (r) {
      dlqGeneration++;
      Array.prototype.forEach.call(buttons, function (b) {
        b.disabled = false;
      });
      if (!r.ok) {
        show($("dlq-error"), "Replay failed: " + describe(r));
        return;
      }
      show($("dlq-error"), "");
      var moved = (r.json && r.json.replayed) || [];
      var gone = {};
      moved.forEach(function (id) {
        gone[String(id)] = true;
      });
      var body = $("dlq-body");
      Array.prototype.slice.call(body.children).forEach(function (tr) {
        if (gone[tr.getAttribute("data-id")]) body.removeChild(tr);
      });
      setDlqCount(body.children.length);
      dlqSignature = "";
      $("dlq-message").textContent = moved.length
        ? "Replayed " + moved.length + " dead letter" + (moved.length === 1 ? "" : "s") + ": " + moved.join(", ")
        : "Nothing to replay: already gone.";
    });
  }

  // ---- alarms ------------------------------------------------------------------------------

  function refreshAlarms() {
    var mine = session;
    return api("/admin/alarms").then(function (r) {
      if (mine !== session) return;
      var list = $("alarms");
      if (r.status === 404) {
        clear(list);
        show($("alarms-error"), "");
        $("alarms-note").textContent = "This server has no alarms endpoint (GET /admin/alarms answered 404).";
        return;
      }
      if (!r.ok) {
        show($("alarms-error"), "Alarms: " + describe(r));
        return;
      }
      show($("alarms-error"), "");
      var items = ((r.json && r.json.items) || []).slice();
      items.sort(function (a, b) {
        return (a.state === "ALARM" ? 0 : 1) - (b.state === "ALARM" ? 0 : 1);
      });
      var firing = items.filter(function (a) {
        return a.state === "ALARM";
      }).length;
      $("alarms-note").textContent = items.length
        ? firing + " of " + items.length + " firing; updated " + when(new Date().toISOString())
        : "No alarms are defined.";
      clear(list);
      items.forEach(function (a) {
        var fields = [];
        ["value", "threshold", "since"].forEach(function (k) {
          if (a[k] === undefined || a[k] === null) return;
          fields.push(k + ": " + (k === "since" ? when(a[k]) : OrderlyProm.alarmValue(a.name, a[k])));
        });
        Object.keys(a).forEach(function (k) {
          if (["name", "state", "value", "threshold", "since", "description"].indexOf(k) >= 0) return;
          var v = a[k];
          fields.push(k + ": " + (v !== null && typeof v === "object" ? JSON.stringify(v) : String(v)));
        });
        list.appendChild(
          el(
            "li",
            { "data-name": a.name, "data-state": a.state },
            badge(a.state || "?"),
            el("span", { class: "alarm-name" }, a.name),
            a.description ? el("div", {}, a.description) : null,
            fields.length ? el("div", { class: "alarm-fields" }, fields.join(" · ")) : null
          )
        );
      });
    });
  }

  // ---- metrics and charts ------------------------------------------------------------------

  function trim(points, now) {
    while (points.length && points[0].t < now - WINDOW_MS) points.shift();
  }

  function scrapeMetrics() {
    var mine = session;
    return api("/metrics").then(function (r) {
      if (mine !== session) return;
      var now = Date.now();
      if (!r.ok) {
        metrics.note =
          r.status === 404
            ? "This server does not expose /metrics (404): no charts."
            : "Metrics: " + describe(r);
        metrics.prev = null;
        drawCharts();
        return;
      }
      var P = OrderlyProm;
      var samples = P.parse(r.text);
      var base = "orderly_http_request_duration_seconds";
      var cur = {
        t: now,
        created: P.sum(samples, "orderly_orders_created_total"),
        hist: P.histogram(samples, base),
      };
      var prev = metrics.prev;
      if (prev) {
        var dt = (now - prev.t) / 1000;
        // A counter absent from the previous scrape but present now was born in between.
        var before = prev.created === null && cur.created !== null ? 0 : prev.created;
        metrics.throughput.push({ t: now, v: P.rate(cur.created, before, dt) });
        var p50 = null;
        var p99 = null;
        if (cur.hist) {
          var delta = P.histogramDelta(cur.hist, prev.hist);
          p50 = P.quantile(0.5, delta);
          p99 = P.quantile(0.99, delta);
        } else {
          p50 = P.summaryQuantile(samples, base, 0.5);
          p99 = P.summaryQuantile(samples, base, 0.99);
        }
        metrics.p50.push({ t: now, v: p50 === null ? null : p50 * 1000 });
        metrics.p99.push({ t: now, v: p99 === null ? null : p99 * 1000 });
      }
      [metrics.throughput, metrics.p50, metrics.p99].forEach(function (s) {
        trim(s, now);
      });
      var outcomes = P.byLabel(samples, "orderly_saga_duration_seconds_count", "outcome");
      var names = ["fulfilled", "failed", "cancelled"];
      var fallback = {
        fulfilled: P.sum(samples, "orderly_orders_fulfilled_total"),
        failed: P.sum(samples, "orderly_orders_failed_total"),
        cancelled: P.sum(samples, "orderly_orders_cancelled_total"),
      };
      var anyHist = Object.keys(outcomes).length > 0;
      var anyFallback = names.some(function (n) {
        return fallback[n] !== null;
      });
      metrics.outcomes = names.map(function (n) {
        if (anyHist) return outcomes[n] || 0;
        if (anyFallback) return fallback[n] || 0;
        return null;
      });
      metrics.prev = cur;
      var missing = [];
      if (cur.created === null) missing.push("orders created");
      if (!cur.hist && P.summaryQuantile(samples, base, 0.5) === null) missing.push("HTTP latency");
      if (!anyHist && !anyFallback) missing.push("saga outcomes");
      metrics.note =
        "Scraped " + samples.length + " samples at " + when(new Date(now).toISOString()) +
        (missing.length ? "; not exposed yet: " + missing.join(", ") : "") + ".";
      drawCharts();
    });
  }

  // The x axis spans what has been seen, from 30 s up to WINDOW_MS.
  function chartWindow(now) {
    var first = metrics.p50.length ? metrics.p50[0].t : now;
    return Math.min(WINDOW_MS, Math.max(30000, now - first));
  }

  function drawCharts() {
    var now = Date.now();
    var windowMs = chartWindow(now);
    var empty = metrics.note && !metrics.prev ? "no data" : "waiting for data";
    OrderlyCharts.line($("chart-throughput"), {
      now: now,
      windowMs: windowMs,
      empty: empty,
      series: [{ name: "created/s", color: COLORS.blue, points: metrics.throughput }],
    });
    OrderlyCharts.line($("chart-latency"), {
      now: now,
      windowMs: windowMs,
      empty: empty,
      series: [
        { name: "p50", color: COLORS.green, points: metrics.p50 },
        { name: "p99", color: COLORS.amber, points: metrics.p99 },
      ],
    });
    var o = metrics.outcomes || [null, null, null];
    OrderlyCharts.bars($("chart-outcomes"), {
      empty: empty,
      bars: [
        { name: "fulfilled", color: COLORS.green, value: o[0] },
        { name: "failed", color: COLORS.red, value: o[1] },
        { name: "cancelled", color: COLORS.grey, value: o[2] },
      ],
    });
    $("metrics-note").textContent = metrics.note;
  }

  // ---- wiring ------------------------------------------------------------------------------

  function init() {
    $("login-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var candidate = $("key").value.trim();
      if (!candidate) {
        show($("login-error"), "Paste an API key first.");
        return;
      }
      signIn(candidate, true);
    });
    $("logout").addEventListener("click", function () {
      signOut("");
    });
    $("filters").addEventListener("submit", function (ev) {
      ev.preventDefault();
      resetPaging();
    });
    $("filter-status").addEventListener("change", resetPaging);
    $("filter-limit").addEventListener("change", resetPaging);
    $("page-first").addEventListener("click", resetPaging);
    $("page-next").addEventListener("click", function () {
      if (!orders.next) return;
      orders.cursors.push(orders.next);
      orders.signature = "";
      refreshOrders();
    });
    $("dlq-replay-all").addEventListener("click", function () {
      replay(null);
    });
    window.addEventListener("resize", function () {
      if (key) drawCharts();
    });
    var saved = sessionStorage.getItem(STORAGE_KEY);
    if (saved) signIn(saved, false);
    else showLogin("");
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
