"use strict";
// Renders the OpenAPI document at ./openapi.json: operations by tag, their parameters,
// bodies and answers, then every schema. Text is always inserted as text (never as HTML).
(function () {
  var METHODS = ["get", "put", "post", "delete", "patch"];
  var spec = null;

  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        if (k === "text") node.textContent = attrs[k];
        else node.setAttribute(k, attrs[k]);
      });
    }
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined) continue;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  // A small subset of Markdown: paragraphs, `code` and **bold**.
  function prose(text) {
    var box = el("div");
    String(text || "").split(/\n\s*\n/).forEach(function (para) {
      var p = el("p");
      para.split(/(`[^`]*`|\*\*[^*]*\*\*)/).forEach(function (part) {
        if (/^`[^`]*`$/.test(part)) p.appendChild(el("code", { text: part.slice(1, -1) }));
        else if (/^\*\*[^*]*\*\*$/.test(part)) p.appendChild(el("strong", { text: part.slice(2, -2) }));
        else if (part) p.appendChild(document.createTextNode(part));
      });
      box.appendChild(p);
    });
    return box;
  }

  function refName(ref) {
    return ref.split("/").pop();
  }

  function resolve(obj, kind) {
    if (obj && obj.$ref) {
      var found = ((spec.components || {})[kind] || {})[refName(obj.$ref)];
      return found || {};
    }
    return obj || {};
  }

  function schemaLink(name) {
    return el("a", { href: "#schema-" + name, class: "mono", text: name });
  }

  // One line describing a schema: its type(s), references and constraints.
  function typeLabel(schema) {
    var box = el("span");
    if (!schema || typeof schema !== "object") {
      box.textContent = schema === false ? "nothing" : "any";
      return box;
    }
    if (schema.$ref) {
      box.appendChild(schemaLink(refName(schema.$ref)));
    } else if (schema.oneOf || schema.anyOf || schema.allOf) {
      var key = schema.oneOf ? "oneOf" : schema.anyOf ? "anyOf" : "allOf";
      var sep = key === "allOf" ? " and " : " | ";
      if (key === "oneOf") box.appendChild(document.createTextNode("exactly one of: "));
      if (key === "anyOf") box.appendChild(document.createTextNode("any of: "));
      schema[key].forEach(function (s, i) {
        if (i) box.appendChild(document.createTextNode(sep));
        box.appendChild(typeLabel(s));
      });
    } else {
      var types = schema.type === undefined ? [] : [].concat(schema.type);
      var parts = types.map(function (t) {
        if (t === "array") {
          var wrap = el("span", null, "array of ");
          wrap.appendChild(typeLabel(schema.items));
          return wrap;
        }
        if (t === "object" && schema.required && schema.required.length && !schema.additionalProperties) {
          return el("span", { class: "mono", text: "object with " + schema.required.join(", ") });
        }
        return el("span", { class: "mono", text: t });
      });
      if (!parts.length) parts.push(el("span", { text: schema.properties ? "object" : "any" }));
      parts.forEach(function (p, i) {
        if (i) box.appendChild(document.createTextNode(" | "));
        box.appendChild(p);
      });
    }
    var notes = [];
    if (schema.format) notes.push("format " + schema.format);
    if (schema.enum) notes.push("one of " + schema.enum.map(function (v) { return JSON.stringify(v); }).join(", "));
    if (schema.minimum !== undefined) notes.push(">= " + schema.minimum);
    if (schema.exclusiveMinimum !== undefined) notes.push("> " + schema.exclusiveMinimum);
    if (schema.maximum !== undefined) notes.push("<= " + schema.maximum);
    if (schema.multipleOf !== undefined) notes.push("multiple of " + schema.multipleOf);
    if (schema.minLength !== undefined) notes.push("length >= " + schema.minLength);
    if (schema.maxLength !== undefined) notes.push("length <= " + schema.maxLength);
    if (schema.minItems !== undefined) notes.push(">= " + schema.minItems + " items");
    if (schema.maxItems !== undefined) notes.push("<= " + schema.maxItems + " items");
    if (schema.pattern) notes.push("pattern " + schema.pattern);
    if (schema.default !== undefined) notes.push("default " + JSON.stringify(schema.default));
    if (schema.readOnly) notes.push("read-only");
    if (schema.deprecated) notes.push("deprecated");
    if (schema.additionalProperties === false) notes.push("no other fields");
    if (notes.length) box.appendChild(el("span", { class: "constraint", text: " (" + notes.join("; ") + ")" }));
    return box;
  }

  // A table of an object schema's fields (following allOf parts), or a one-line label.
  function schemaView(schema) {
    var box = el("div");
    var parts = schema && schema.allOf ? schema.allOf : [schema];
    var rows = [];
    parts.forEach(function (part) {
      var s = part || {};
      if (!s.properties) return;
      var required = s.required || [];
      Object.keys(s.properties).forEach(function (name) {
        var prop = s.properties[name];
        rows.push(el("tr", null,
          el("td", { class: "mono" }, name, required.indexOf(name) >= 0 ? el("span", { class: "req", text: " required" }) : null),
          el("td", null, typeLabel(prop)),
          el("td", null, prose(prop.description || ""))));
      });
    });
    if (schema && schema.description) box.appendChild(prose(schema.description));
    if (rows.length) {
      var table = el("table", null, el("tr", null, el("th", { text: "Field" }), el("th", { text: "Type" }), el("th", { text: "Description" })));
      rows.forEach(function (r) { table.appendChild(r); });
      box.appendChild(table);
      parts.forEach(function (part) {
        var s = part || {};
        if (!s.properties) box.appendChild(el("p", { class: "constraint" }, "Also: ", typeLabel(s)));
        else if (s.additionalProperties === false) box.appendChild(el("p", { class: "constraint", text: "No other fields are accepted." }));
      });
    } else {
      box.appendChild(el("p", null, typeLabel(schema)));
    }
    var example = schema && (schema.examples ? schema.examples[0] : schema.example);
    if (example !== undefined) {
      box.appendChild(el("details", null, el("summary", { text: "Example" }), el("pre", { text: JSON.stringify(example, null, 2) })));
    }
    return box;
  }

  function contentView(content) {
    var box = el("div");
    Object.keys(content || {}).forEach(function (type) {
      var media = content[type];
      box.appendChild(el("p", null, el("code", { text: type }), " ", media.schema ? typeLabel(media.schema) : ""));
      if (media.example !== undefined) {
        box.appendChild(el("details", null, el("summary", { text: "Example" }), el("pre", { text: JSON.stringify(media.example, null, 2) })));
      }
    });
    return box;
  }

  function operationView(path, method, op) {
    var id = "op-" + (op.operationId || method + path);
    var section = el("section", { class: "op", id: id },
      el("h3", null, el("span", { class: "method " + method, text: method.toUpperCase() }), path));
    if (op.summary) section.appendChild(el("p", { class: "summary", text: op.summary }));
    if (op.description) section.appendChild(prose(op.description));
    var auth = (op.security || []).map(function (req) { return Object.keys(req).join(" + "); });
    section.appendChild(el("p", { class: "auth", text: auth.length ? "Credential: " + auth.join(" or ") : "Public: no credential needed" }));

    var params = op.parameters || [];
    if (params.length) {
      section.appendChild(el("h4", { text: "Parameters" }));
      var table = el("table", null, el("tr", null, el("th", { text: "Name" }), el("th", { text: "In" }), el("th", { text: "Type" }), el("th", { text: "Description" })));
      params.forEach(function (raw) {
        var p = resolve(raw, "parameters");
        table.appendChild(el("tr", null,
          el("td", { class: "mono" }, p.name, p.required ? el("span", { class: "req", text: " required" }) : null),
          el("td", { text: p.in }),
          el("td", null, typeLabel(p.schema)),
          el("td", null, prose(p.description || ""))));
      });
      section.appendChild(table);
    }

    if (op.requestBody) {
      var body = resolve(op.requestBody, "requestBodies");
      section.appendChild(el("h4", { text: "Request body" + (body.required ? " (required)" : " (optional)") }));
      if (body.description) section.appendChild(prose(body.description));
      section.appendChild(contentView(body.content));
    }

    section.appendChild(el("h4", { text: "Responses" }));
    var rtable = el("table", null, el("tr", null, el("th", { text: "Status" }), el("th", { text: "Description" }), el("th", { text: "Body and headers" })));
    Object.keys(op.responses || {}).sort().forEach(function (status) {
      var r = resolve(op.responses[status], "responses");
      var cell = el("td", null, contentView(r.content));
      Object.keys(r.headers || {}).forEach(function (h) {
        var header = r.headers[h];
        var line = el("div", null, "Header ", el("code", { text: h }), ": ", typeLabel(header.schema));
        line.appendChild(prose(header.description || ""));
        cell.appendChild(line);
      });
      rtable.appendChild(el("tr", null,
        el("td", { class: "status s" + status.charAt(0), text: status }),
        el("td", null, prose(r.description || "")),
        cell));
    });
    section.appendChild(rtable);
    return section;
  }

  function render() {
    var info = spec.info || {};
    var meta = document.getElementById("meta");
    meta.textContent = (info.title || "API") + " " + (info.version || "") + " · OpenAPI " + spec.openapi + " · ";
    meta.appendChild(el("a", { href: "openapi.json", text: "openapi.json" }));
    var content = document.getElementById("content");
    var toc = document.getElementById("toc");
    content.appendChild(prose(info.description || ""));

    var byTag = {};
    var tagOrder = (spec.tags || []).map(function (t) { return t.name; });
    Object.keys(spec.paths || {}).forEach(function (path) {
      METHODS.forEach(function (method) {
        var op = spec.paths[path][method];
        if (!op) return;
        var tag = (op.tags && op.tags[0]) || "other";
        if (tagOrder.indexOf(tag) < 0) tagOrder.push(tag);
        (byTag[tag] = byTag[tag] || []).push([path, method, op]);
      });
    });
    tagOrder.forEach(function (tag) {
      var ops = byTag[tag];
      if (!ops) return;
      var tagInfo = (spec.tags || []).filter(function (t) { return t.name === tag; })[0] || {};
      content.appendChild(el("h2", { id: "tag-" + tag, text: tag }));
      if (tagInfo.description) content.appendChild(prose(tagInfo.description));
      toc.appendChild(el("h3", { text: tag }));
      ops.forEach(function (o) {
        var section = operationView(o[0], o[1], o[2]);
        content.appendChild(section);
        toc.appendChild(el("a", { href: "#" + section.id, text: o[1].toUpperCase() + " " + o[0] }));
      });
    });

    var schemes = (spec.components || {}).securitySchemes || {};
    if (Object.keys(schemes).length) {
      content.appendChild(el("h2", { id: "security", text: "Credentials" }));
      var stable = el("table", null, el("tr", null, el("th", { text: "Name" }), el("th", { text: "Kind" }), el("th", { text: "Description" })));
      Object.keys(schemes).forEach(function (name) {
        var s = schemes[name];
        var kind = s.type === "apiKey" ? "API key in " + s.in + " " + s.name : s.type + " " + (s.scheme || "") + (s.bearerFormat ? " (" + s.bearerFormat + ")" : "");
        stable.appendChild(el("tr", null, el("td", { class: "mono", text: name }), el("td", { text: kind }), el("td", null, prose(s.description || ""))));
      });
      content.appendChild(stable);
    }

    var schemas = (spec.components || {}).schemas || {};
    content.appendChild(el("h2", { id: "schemas", text: "Schemas" }));
    toc.appendChild(el("h3", { text: "schemas" }));
    Object.keys(schemas).sort().forEach(function (name) {
      var section = el("section", { class: "op", id: "schema-" + name }, el("h3", { text: name }));
      section.appendChild(schemaView(schemas[name]));
      content.appendChild(section);
      toc.appendChild(el("a", { href: "#schema-" + name, text: name }));
    });
    if (location.hash) {
      var target = document.getElementById(location.hash.slice(1));
      if (target) target.scrollIntoView();
    }
  }

  fetch("openapi.json", { headers: { Accept: "application/json" } })
    .then(function (resp) {
      if (!resp.ok) throw new Error("GET openapi.json answered " + resp.status);
      return resp.json();
    })
    .then(function (doc) {
      spec = doc;
      render();
    })
    .catch(function (e) {
      var meta = document.getElementById("meta");
      meta.className = "error";
      meta.textContent = "Could not load openapi.json: " + e.message;
    });
})();
