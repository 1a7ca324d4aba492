"use strict";
// Two small chart kinds drawn on <canvas>: a time-series line chart and a bar chart. Each
// draw sets data-points on the canvas to how many values it plotted (0: only the frame),
// and a line chart data-max to the largest.
var OrderlyCharts = (function () {
  var FONT = "11px system-ui, -apple-system, 'Segoe UI', sans-serif";
  var AXIS = "#8a93a3";
  var GRID = "#e6e9ef";
  var TEXT = "#5b6475";

  // Sizes the backing store to the element's CSS size and the screen's pixel ratio;
  // answers a context drawing in CSS pixels, and the size.
  function setup(canvas) {
    var ratio = window.devicePixelRatio || 1;
    var w = canvas.clientWidth || canvas.width;
    var h = canvas.clientHeight || canvas.height;
    if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
      canvas.width = Math.round(w * ratio);
      canvas.height = Math.round(h * ratio);
    }
    var ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.font = FONT;
    return { ctx: ctx, w: w, h: h };
  }

  // 1, 2 or 5 times a power of ten, at least max/4: the y grid step.
  function niceStep(max) {
    var raw = max / 4;
    var p = Math.pow(10, Math.floor(Math.log10(raw)));
    var steps = [1, 2, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * p >= raw) return steps[i] * p;
    return 10 * p;
  }

  function fmt(v) {
    if (v === 0) return "0";
    if (Math.abs(v) >= 100) return v.toFixed(0);
    if (Math.abs(v) >= 10) return v.toFixed(1).replace(/\.0$/, "");
    if (Math.abs(v) >= 1) return v.toFixed(2).replace(/\.?0+$/, "");
    return v.toPrecision(2);
  }

  function message(ctx, w, h, text) {
    ctx.fillStyle = TEXT;
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText(text, w / 2, h / 2);
  }

  function yAxis(ctx, box, max) {
    var step = niceStep(max);
    var top = Math.ceil(max / step) * step;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (var v = 0; v <= top + step / 2; v += step) {
      var y = box.bottom - (v / top) * (box.bottom - box.top);
      ctx.strokeStyle = GRID;
      ctx.beginPath();
      ctx.moveTo(box.left, y);
      ctx.lineTo(box.right, y);
      ctx.stroke();
      ctx.fillStyle = TEXT;
      ctx.fillText(fmt(v), box.left - 4, y);
    }
    ctx.strokeStyle = AXIS;
    ctx.beginPath();
    ctx.moveTo(box.left, box.top);
    ctx.lineTo(box.left, box.bottom);
    ctx.lineTo(box.right, box.bottom);
    ctx.stroke();
    return top;
  }

  // opts: {series: [{name, color, points: [{t: ms, v: number|null}]}], windowMs, now, empty}
  function line(canvas, opts) {
    var c = setup(canvas);
    var ctx = c.ctx;
    var box = { left: 40, right: c.w - 8, top: 20, bottom: c.h - 18 };
    var now = opts.now;
    var from = now - opts.windowMs;
    var max = 0;
    var plotted = 0;
    opts.series.forEach(function (s) {
      s.points.forEach(function (p) {
        if (p.v !== null && p.t >= from) {
          max = Math.max(max, p.v);
          plotted++;
        }
      });
    });
    canvas.dataset.points = String(plotted);
    canvas.dataset.max = String(max);
    if (plotted === 0) {
      yAxis(ctx, box, 1);
      message(ctx, c.w, c.h, opts.empty || "waiting for data");
      return;
    }
    var top = yAxis(ctx, box, max > 0 ? max : 1);
    var x = function (t) {
      return box.left + ((t - from) / opts.windowMs) * (box.right - box.left);
    };
    var y = function (v) {
      return box.bottom - (v / top) * (box.bottom - box.top);
    };
    ctx.fillStyle = TEXT;
    ctx.textBaseline = "alphabetic";
    ctx.textAlign = "left";
    ctx.fillText("-" + Math.round(opts.windowMs / 1000) + " s", box.left, c.h - 4);
    ctx.textAlign = "right";
    ctx.fillText("now", box.right, c.h - 4);
    var legendX = box.left + 4;
    opts.series.forEach(function (s) {
      ctx.strokeStyle = s.color;
      ctx.fillStyle = s.color;
      ctx.lineWidth = 2;
      ctx.beginPath();
      var open = false;
      var last = null;
      s.points.forEach(function (p) {
        if (p.t < from || p.v === null) {
          open = false;
          return;
        }
        if (open) ctx.lineTo(x(p.t), y(p.v));
        else ctx.moveTo(x(p.t), y(p.v));
        open = true;
        last = p;
      });
      ctx.stroke();
      if (last) {
        ctx.beginPath();
        ctx.arc(x(last.t), y(last.v), 2.5, 0, 2 * Math.PI);
        ctx.fill();
      }
      ctx.lineWidth = 1;
      ctx.textAlign = "left";
      ctx.textBaseline = "middle";
      var label = s.name + (last ? " " + fmt(last.v) : "");
      ctx.fillRect(legendX, 7, 10, 3);
      ctx.fillStyle = TEXT;
      ctx.fillText(label, legendX + 14, 9);
      legendX += ctx.measureText(label).width + 28;
    });
  }

  // opts: {bars: [{name, color, value: number|null}], empty}
  function bars(canvas, opts) {
    var c = setup(canvas);
    var ctx = c.ctx;
    var box = { left: 40, right: c.w - 8, top: 14, bottom: c.h - 20 };
    var known = opts.bars.filter(function (b) {
      return b.value !== null;
    });
    canvas.dataset.points = String(known.length);
    var max = 0;
    known.forEach(function (b) {
      max = Math.max(max, b.value);
    });
    var top = yAxis(ctx, box, max > 0 ? max : 1);
    if (known.length === 0) {
      message(ctx, c.w, c.h, opts.empty || "waiting for data");
      return;
    }
    var slot = (box.right - box.left) / opts.bars.length;
    opts.bars.forEach(function (b, i) {
      var cx = box.left + slot * i + slot / 2;
      var bw = Math.min(48, slot * 0.6);
      ctx.fillStyle = TEXT;
      ctx.textAlign = "center";
      ctx.textBaseline = "alphabetic";
      ctx.fillText(b.name, cx, c.h - 5);
      if (b.value === null) return;
      var hgt = (b.value / top) * (box.bottom - box.top);
      ctx.fillStyle = b.color;
      ctx.fillRect(cx - bw / 2, box.bottom - hgt, bw, hgt);
      ctx.fillStyle = TEXT;
      ctx.fillText(fmt(b.value), cx, box.bottom - hgt - 3);
    });
  }

  return { line: line, bars: bars };
})();
