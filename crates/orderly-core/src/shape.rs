//! Request shapes declared once, as Rust types.
//!
//! A request body is a struct declared with [`shape!`](crate::shape!): each field has a
//! JSON name, a Rust type and a doc comment. Every field type implements [`Wire`], which
//! says how to read it from JSON (with our wording for each problem) and what its JSON
//! Schema is. From that one declaration come:
//!
//! - the parser ([`Shape::parse`]): it walks the whole body and reports every field error
//!   at once, by path (`items[1].qty`), in the order the fields are declared;
//! - the JSON Schema (2020-12, the dialect of OpenAPI 3.1) the HTTP edge puts in the
//!   OpenAPI document ([`Shape::schema`], [`Shape::components`]);
//! - the draft-04 model API Gateway validates with ([`Shape::gateway_model`]), derived from
//!   the same schema by [`to_draft04`], which only ever loosens it (patterns and
//!   `multipleOf` are left to the code), so the gateway never refuses a body the code
//!   accepts.
//!
//! The value types' own rules stay with the types ([`UserId`], [`Email`], [`Money`], ...);
//! this module only maps them to and from JSON.
//!
//! Why not the usual crates: serde's derive stops at the first error, so a body with a
//! wrong type in one field and a missing other field would get one answer, not both
//! (`serde_path_to_error` names that one error's path, still one); validation crates
//! (`validator`, `garde`) run on a struct that has already deserialized, so they never
//! see a type error; `schemars` and utoipa's derive describe a struct but not our rules
//! (an id's pattern, money's two decimals, an email's byte limits, one of `productId` and
//! `sku`), and neither writes the draft-04 dialect API Gateway needs. Each would still need
//! the rules said a second time. Here a field's type says them once, and the parse walks a
//! `serde_json::Value` so that every field is looked at whatever the others hold.

use std::borrow::Cow;
use std::collections::HashMap;
use std::str::FromStr;

use serde_json::{Map, Value, json};

use crate::error::{Error, FieldError};
use crate::money::{CURRENCY, MAX_MINOR, Money};
use crate::status::OrderStatus;
use crate::types::{Email, InvalidValue, ProductId, Qty, UserId};

/// The text of each number at the top level of a JSON object, as the client wrote it, so
/// that amounts are read exactly rather than through a binary float. A repeated key keeps
/// its last value, as `serde_json::Value` does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NumberTexts(HashMap<String, String>);

impl NumberTexts {
    /// The top-level numbers of `raw` (empty when it is not a JSON object).
    pub fn of(raw: &[u8]) -> NumberTexts {
        let Ok(fields) =
            serde_json::from_slice::<HashMap<String, &serde_json::value::RawValue>>(raw)
        else {
            return NumberTexts::default();
        };
        NumberTexts(
            fields
                .into_iter()
                .filter(|(_, v)| {
                    v.get()
                        .starts_with(|c: char| c == '-' || c.is_ascii_digit())
                })
                .map(|(k, v)| (k, v.get().to_owned()))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// How a JSON value's type is named in an error.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// How a key is named in a field error: itself, or `""` for the empty key, which would
/// otherwise name no field at all.
pub fn key_name(key: &str) -> &str {
    if key.is_empty() { "\"\"" } else { key }
}

/// Where a value is being read: its path (kept as its parent's path and the step from it,
/// and spelled out only when a problem is recorded or a child needs it), the errors found
/// so far and, for a field of the top-level object, the text the client wrote for its
/// number.
#[derive(Debug)]
pub struct Cx<'a> {
    /// What a member of an object is called in errors: a field, or a query parameter.
    noun: &'static str,
    parent: &'a str,
    step: Step<'a>,
    errors: &'a mut Vec<FieldError>,
    numbers: Option<&'a NumberTexts>,
    text: Option<&'a str>,
}

#[derive(Debug, Clone, Copy)]
enum Step<'a> {
    Here,
    Key(&'a str),
    Index(usize),
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

impl<'a> Cx<'a> {
    /// The path of the value being read (`items[1].qty`; empty for the body itself).
    pub fn path(&self) -> Cow<'a, str> {
        match self.step {
            Step::Here => Cow::Borrowed(self.parent),
            Step::Key(k) if self.parent.is_empty() => Cow::Borrowed(k),
            Step::Key(k) => Cow::Owned(format!("{}.{k}", self.parent)),
            Step::Index(i) => Cow::Owned(format!("{}[{i}]", self.parent)),
        }
    }

    /// Records a problem with the value being read.
    pub fn fail(&mut self, reason: impl Into<String>) {
        let path = self.path();
        let field = if path.is_empty() {
            "body".to_owned()
        } else {
            path.into_owned()
        };
        self.errors.push(FieldError::new(field, reason));
    }

    /// Records a problem found by a type's own parser, which names the field itself
    /// (from [`Cx::path`]).
    pub fn push(&mut self, error: FieldError) {
        self.errors.push(error);
    }

    /// The number's text as the client wrote it, when known.
    pub fn text(&self) -> Option<&str> {
        self.text
    }

    /// Reads the inside of the value being read (an object's fields, a list's elements)
    /// with `f`, its path spelled out once for all of them.
    pub fn inside<R>(&mut self, f: impl FnOnce(&mut Scope<'_>) -> R) -> R {
        let here = self.path();
        let mut scope = Scope {
            noun: self.noun,
            path: &here,
            errors: self.errors,
            numbers: self.numbers,
        };
        f(&mut scope)
    }
}

/// The inside of an object or a list being read: its children are read from here.
#[derive(Debug)]
pub struct Scope<'a> {
    noun: &'static str,
    path: &'a str,
    errors: &'a mut Vec<FieldError>,
    numbers: Option<&'a NumberTexts>,
}

impl Scope<'_> {
    /// Records a problem with the field `name` of the object being read.
    pub fn fail_at(&mut self, name: &str, reason: impl Into<String>) {
        let field = join(self.path, name);
        self.errors.push(FieldError::new(field, reason));
    }

    /// Records a problem at this path followed by `suffix` (`[3].sku` for a list's
    /// element).
    pub fn fail_in(&mut self, suffix: &str, reason: impl Into<String>) {
        let field = format!("{}{suffix}", self.path);
        self.errors.push(FieldError::new(field, reason));
    }

    /// Reads the field `name` of `obj` as a `T` (absent and `null` are the same).
    pub fn field<T: Wire>(&mut self, obj: &Map<String, Value>, name: &str) -> Option<T> {
        let text = self.numbers.and_then(|n| n.get(name));
        let mut cx = Cx {
            noun: self.noun,
            parent: self.path,
            step: Step::Key(name),
            errors: self.errors,
            numbers: None,
            text,
        };
        match obj.get(name).filter(|v| !v.is_null()) {
            Some(v) => T::read(v, &mut cx),
            None => match T::absent() {
                Ok(t) => Some(t),
                Err(reason) => {
                    cx.fail(reason);
                    None
                }
            },
        }
    }

    /// Reads element `i` of a list.
    pub fn element<T: Wire>(&mut self, v: &Value, i: usize) -> Option<T> {
        let mut cx = Cx {
            noun: self.noun,
            parent: self.path,
            step: Step::Index(i),
            errors: self.errors,
            numbers: None,
            text: None,
        };
        T::read(v, &mut cx)
    }

    /// Records every key of `obj` not in `known`.
    pub fn reject_unknown(&mut self, obj: &Map<String, Value>, known: &[&str]) {
        if obj.keys().all(|k| known.contains(&k.as_str())) {
            return;
        }
        let mut unknown: Vec<&String> = obj
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .collect();
        unknown.sort();
        for k in unknown {
            let reason = format!(
                "is not a known {} (expected one of: {})",
                self.noun,
                known.join(", ")
            );
            self.fail_at(key_name(k), reason);
        }
    }

    /// Records the problem when not exactly one of the fields `a` and `b` is given: `a` is
    /// required when neither is, `b` refused when both are.
    pub fn exactly_one_of(&mut self, obj: &Map<String, Value>, a: &str, b: &str) {
        let given = |k: &str| obj.get(k).is_some_and(|v| !v.is_null());
        match (given(a), given(b)) {
            (false, false) => self.fail_at(a, "is required"),
            (true, true) => self.fail_at(b, format!("must not be given together with {a}")),
            _ => {}
        }
    }
}

/// A type a request field may have: how it is read from JSON and what its schema is.
pub trait Wire: Sized {
    /// Reads a present, non-null value, recording every problem in `cx`.
    fn read(v: &Value, cx: &mut Cx<'_>) -> Option<Self>;

    /// The value of an absent (or `null`) field, or why it may not be absent.
    fn absent() -> Result<Self, &'static str> {
        Err("is required")
    }

    /// The JSON Schema (2020-12) of a present value.
    fn schema() -> Value;

    /// The named schemas [`Wire::schema`] refers to, with their own.
    fn components(_: &mut Vec<(&'static str, Value)>) {}

    /// Rules across the elements of a list of this type that parsed (each with its index).
    fn check_list(_: &[(usize, &Self)], _: &mut Scope<'_>) {}
}

/// A request body: a struct declared with [`shape!`](crate::shape!).
pub trait Shape: Wire {
    /// The schema's name in the OpenAPI document.
    const NAME: &'static str;
    /// The JSON names of the fields, in declaration order.
    const FIELDS: &'static [&'static str];

    /// Parses a body, with `errors` found beforehand (such as a rule across the body and
    /// the path); every error is reported, in the order of the fields they concern.
    fn parse(body: &Value, numbers: &NumberTexts, errors: Vec<FieldError>) -> Result<Self, Error> {
        if !body.is_object() {
            let reason = format!("must be a JSON object, not {}", type_name(body));
            return Err(Error::invalid_field("body", reason));
        }
        Self::read_top(body, numbers, errors, "field")
    }

    /// Parses a query string's pairs, each parameter's text as a JSON string (the field
    /// types of a query shape read their values from text). A parameter given twice is
    /// refused, not read twice.
    fn parse_query(pairs: &[(String, String)]) -> Result<Self, Error> {
        let mut object = Map::new();
        let mut errors = Vec::new();
        for (k, v) in pairs {
            if object.contains_key(k) {
                errors.push(FieldError::new(key_name(k), "must be given at most once"));
            } else {
                object.insert(k.clone(), Value::String(v.clone()));
            }
        }
        let query = Value::Object(object);
        Self::read_top(&query, &NumberTexts::default(), errors, "query parameter")
    }

    /// Reads the top-level object and reports every error, in the order of the fields
    /// they concern.
    fn read_top(
        body: &Value,
        numbers: &NumberTexts,
        mut errors: Vec<FieldError>,
        noun: &'static str,
    ) -> Result<Self, Error> {
        let mut cx = Cx {
            noun,
            parent: "",
            step: Step::Here,
            errors: &mut errors,
            numbers: Some(numbers),
            text: None,
        };
        let parsed = Self::read(body, &mut cx);
        match parsed {
            Some(v) if errors.is_empty() => Ok(v),
            _ => {
                // Unknown fields first, then the fields in their order.
                let rank = |e: &FieldError| {
                    let head = e.field.split(['.', '[']).next().unwrap_or_default();
                    Self::FIELDS
                        .iter()
                        .position(|f| *f == head)
                        .map_or(0, |i| i + 1)
                };
                errors.sort_by_key(rank);
                Err(Error::invalid(errors))
            }
        }
    }

    /// The named schemas of the body and of the shapes it refers to, its own last.
    fn all_components() -> Vec<(&'static str, Value)> {
        let mut out = Vec::new();
        Self::components(&mut out);
        out
    }

    /// The body's own schema (the object, not a reference to it), from `components`.
    fn own_schema(components: &[(&'static str, Value)]) -> Value {
        components
            .iter()
            .find(|(n, _)| *n == Self::NAME)
            .map(|(_, s)| s.clone())
            .unwrap_or_default()
    }

    /// The draft-04 model of the body for API Gateway: [`to_draft04`] of its schema, with
    /// the references resolved.
    fn gateway_model() -> Value {
        let components = Self::all_components();
        let own = Self::own_schema(&components);
        let mut model = to_draft04(&own, &components);
        if let Value::Object(m) = &mut model {
            let mut out = Map::new();
            out.insert(
                "$schema".into(),
                json!("http://json-schema.org/draft-04/schema#"),
            );
            out.insert("title".into(), json!(Self::NAME));
            out.append(m);
            model = Value::Object(out);
        }
        model
    }
}

/// The description of a field or shape from its doc comment's lines: lines joined by
/// spaces, paragraphs by a blank line.
pub fn doc_text(lines: &[&str]) -> String {
    let mut out = String::new();
    let mut blank = false;
    for line in lines.iter().map(|l| l.trim()) {
        if line.is_empty() {
            blank = !out.is_empty();
            continue;
        }
        if blank {
            out.push_str("\n\n");
            blank = false;
        } else if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(line);
    }
    out
}

/// How one field of a shape appears in its schema, besides its type's own schema.
#[derive(Debug, Default, Clone)]
pub struct FieldMeta {
    pub example: Option<Value>,
    pub deprecated: bool,
    pub read_only: bool,
}

/// The schema of an object with `fields` (name, description, schema, required, meta),
/// closed to other fields; with `one_of`, exactly one of those two fields must be given.
pub fn object_schema(
    description: &str,
    fields: Vec<(&str, String, Value, bool, FieldMeta)>,
    one_of: Option<(&str, &str)>,
    example: Option<Value>,
) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for (name, doc, mut schema, needed, meta) in fields {
        if let Value::Object(s) = &mut schema {
            if !doc.is_empty() {
                s.insert("description".into(), json!(doc));
            }
            if let Some(e) = meta.example {
                s.insert("examples".into(), json!([e]));
            }
            if meta.deprecated {
                s.insert("deprecated".into(), json!(true));
            }
            if meta.read_only {
                s.insert("readOnly".into(), json!(true));
            }
        }
        properties.insert(name.into(), schema);
        if needed {
            required.push(json!(name));
        }
    }
    let mut object = json!({
        "type": "object",
        "properties": properties,
        "additionalProperties": false,
    });
    if !required.is_empty() {
        object["required"] = Value::Array(required);
    }
    let mut out = match one_of {
        None => object,
        Some((a, b)) => {
            let named = |k: &str| json!({"type": "object", "properties": {k: {"type": "string"}}, "required": [k]});
            json!({"allOf": [object, {"oneOf": [named(a), named(b)]}]})
        }
    };
    if !description.is_empty() {
        out["description"] = json!(description);
    }
    if let Some(e) = example {
        out["examples"] = json!([e]);
    }
    out
}

/// The schema of a value that may also be `null` (which a parse reads as absent).
pub fn nullable(mut schema: Value) -> Value {
    let Value::Object(s) = &mut schema else {
        return schema;
    };
    if let Some(list) = s.get_mut("enum").and_then(Value::as_array_mut) {
        list.push(Value::Null);
    }
    match s.get_mut("type") {
        Some(Value::String(t)) => {
            let t = std::mem::take(t);
            s.insert("type".into(), json!([t, "null"]));
        }
        Some(Value::Array(ts)) => ts.push(json!("null")),
        _ => {
            if let Some(any) = s.get_mut("anyOf").and_then(Value::as_array_mut) {
                any.push(json!({"type": "null"}));
            } else {
                return json!({"anyOf": [schema, {"type": "null"}]});
            }
        }
    }
    schema
}

/// A JSON Schema (2020-12) as draft-04, the dialect API Gateway models use: references to
/// `components` inlined, `integer` read as `number` (draft-04 does not count `2.0` as an
/// integer; the code does), a numeric `exclusiveMinimum`/`exclusiveMaximum` as a bound with
/// the boolean flag, and what only documents or only the code checks (`pattern`,
/// `multipleOf`, `examples`, `deprecated`, `readOnly`) left out, so the model is never
/// stricter than the code.
pub fn to_draft04(schema: &Value, components: &[(&'static str, Value)]) -> Value {
    match schema {
        Value::Object(s) => {
            if let Some(r) = s.get("$ref").and_then(Value::as_str) {
                let name = r.rsplit('/').next().unwrap_or_default();
                if let Some((_, target)) = components.iter().find(|(n, _)| *n == name) {
                    return to_draft04(target, components);
                }
            }
            let mut out = Map::new();
            for (k, v) in s {
                match k.as_str() {
                    "pattern" | "multipleOf" | "examples" | "deprecated" | "readOnly" => {}
                    "type" => {
                        let draft = |t: &Value| {
                            if t == "integer" {
                                json!("number")
                            } else {
                                t.clone()
                            }
                        };
                        let t = match v {
                            Value::Array(ts) => Value::Array(ts.iter().map(draft).collect()),
                            t => draft(t),
                        };
                        out.insert(k.clone(), t);
                    }
                    "exclusiveMinimum" | "exclusiveMaximum" if v.is_number() => {
                        let bound = if k == "exclusiveMinimum" {
                            "minimum"
                        } else {
                            "maximum"
                        };
                        out.insert(bound.into(), v.clone());
                        out.insert(k.clone(), json!(true));
                    }
                    "properties" => {
                        let props = v
                            .as_object()
                            .into_iter()
                            .flatten()
                            .map(|(name, p)| (name.clone(), to_draft04(p, components)))
                            .collect();
                        out.insert(k.clone(), Value::Object(props));
                    }
                    "items" | "allOf" | "anyOf" | "oneOf" | "not" => {
                        out.insert(k.clone(), to_draft04(v, components));
                    }
                    _ => {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|v| to_draft04(v, components)).collect()),
        other => other.clone(),
    }
}

// ---- Field types -------------------------------------------------------------------------

impl<T: Wire> Wire for Option<T> {
    fn read(v: &Value, cx: &mut Cx<'_>) -> Option<Self> {
        T::read(v, cx).map(Some)
    }
    fn absent() -> Result<Self, &'static str> {
        Ok(None)
    }
    fn schema() -> Value {
        nullable(T::schema())
    }
    fn components(out: &mut Vec<(&'static str, Value)>) {
        T::components(out);
    }
}

/// Reads a string and parses it with the type's own rules.
fn parsed<T: FromStr<Err = InvalidValue>>(v: &Value, cx: &mut Cx<'_>) -> Option<T> {
    let Value::String(s) = v else {
        cx.fail(format!("must be a string, not {}", type_name(v)));
        return None;
    };
    match s.parse() {
        Ok(t) => Some(t),
        Err(InvalidValue(reason)) => {
            cx.fail(reason);
            None
        }
    }
}

/// Reads a whole number in `min..=max`. JSON has one number type: `2.0` and `2e0` are the
/// integer 2.
fn whole(v: &Value, min: u64, max: u64, cx: &mut Cx<'_>) -> Option<u64> {
    let Value::Number(n) = v else {
        cx.fail(format!("must be an integer, not {}", type_name(v)));
        return None;
    };
    match n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= 9.0e15)
            .map(|f| f as u64)
    }) {
        Some(u) if u < min => cx.fail(format!("must be at least {min}")),
        Some(u) if u > max => cx.fail(format!("must be at most {max}")),
        Some(u) => return Some(u),
        None if n.as_i64().is_some() => cx.fail(format!("must be at least {min}")),
        None => cx.fail("must be a whole number"),
    }
    None
}

/// The schema of [`check_ident`](crate::types)'s identifiers of at most `max` characters.
fn ident_schema(max: usize) -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": max,
        "pattern": format!("^[A-Za-z0-9._:@-]{{1,{max}}}$"),
    })
}

impl Wire for OrderStatus {
    fn read(v: &Value, cx: &mut Cx<'_>) -> Option<Self> {
        parsed(v, cx)
    }
    fn schema() -> Value {
        let names: Vec<&str> = OrderStatus::ALL.iter().map(|s| s.as_str()).collect();
        json!({"type": "string", "enum": names})
    }
}

impl Wire for UserId {
    fn read(v: &Value, cx: &mut Cx<'_>) -> Option<Self> {
        parsed(v, cx)
    }
    fn schema() -> Value {
        ident_schema(UserId::MAX_LEN)
    }
}

impl Wire for ProductId {
    fn read(v: &Value, cx: &mut Cx<'_>) -> Option<Self> {
        parsed(v, cx)
    }
    fn schema() -> Value {
        ident_schema(ProductId::MAX_LEN)
    }
}

/// Any string, kept as given.
impl Wire for String {
    fn read(v: &Value, cx: &mut Cx<'_>) -> Option<Self> {
        match v {
            Value::String(s) => Some(s.clone()),
            other => {
                cx.fail(format!("must be a string, not {}", type_name(other)));
                None
            }
        }
    }
    fn schema() -> Value {
        json!({"type": "string"})
    }
}

impl Wire for bool {
    fn read(v: &Value, cx: &mut Cx<'_>) -> Option<Self> {
        match v {
            Value::Bool(b) => Some(*b),
            _ => {
                cx.fail("must be true or false");
                None
            }
        }
    }
    fn schema() -> Value {
        json!({"type": "boolean"})
    }
}

/// Text kept as given: at most `MAX` characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note<const MAX: usize>(pub String);

impl<const MAX: usize> Wire for Note<MAX> {
    fn read(v: &Value, cx: &mut Cx<'_>) -> Option<Self> {
        let s = String::read(v, cx)?;
        if s.chars().count() > MAX {
            cx.fail(format!("must be at most {MAX} characters"));
        } else if s.chars().any(char::is_control) {
            cx.fail("must not contain control characters");
        } else {
            return Some(Note(s));
        }
        None
    }
    fn schema() -> Value {
        json!({
            "type": "string",
            "maxLength": MAX,
            "pattern": format!("^[^{CONTROL}]*$"),
        })
    }
}

impl Wire for Qty {
    fn read(v: &Value, cx: &mut Cx<'_>) -> Option<Self> {
        let n = whole(v, 1, u64::from(Qty::MAX), cx)?;
        u32::try_from(n).ok().and_then(|n| Qty::new(n).ok())
    }
    fn schema() -> Value {
        json!({
            "type": "integer",
            "description": "A quantity of one product, a whole number.",
            "minimum": 1,
            "maximum": Qty::MAX,
            "examples": [2],
        })
    }
}

/// A query parameter's count from 1 to `MAX`, `DEFAULT` when absent, read from its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize<const DEFAULT: u32, const MAX: u32>(pub u32);

impl<const DEFAULT: u32, const MAX: u32> Wire for PageSize<DEFAULT, MAX> {
    fn read(v: &Value, cx: &mut Cx<'_>) -> Option<Self> {
        match v.as_str().and_then(|s| s.parse::<u32>().ok()) {
            Some(n) if (1..=MAX).contains(&n) => Some(PageSize(n)),
            _ => {
                cx.fail(format!("must be a whole number from 1 to {MAX}"));
                None
            }
        }
    }
    fn absent() -> Result<Self, &'static str> {
        Ok(PageSize(DEFAULT))
    }
    fn schema() -> Value {
        json!({"type": "integer", "minimum": 1, "maximum": MAX, "default": DEFAULT})
    }
}

/// A whole number from `MIN` to `MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Whole<const MIN: u64, const MAX: u64>(pub u64);

impl<const MIN: u64, const MAX: u64> Wire for Whole<MIN, MAX> {
    fn read(v: &Value, cx: &mut Cx<'_>) -> Option<Self> {
        whole(v, MIN, MAX, cx).map(Whole)
    }
    fn schema() -> Value {
        json!({"type": "integer", "minimum": MIN, "maximum": MAX})
    }
}

/// Characters Rust's `char::is_whitespace` (Unicode `White_Space`) accepts, as the inside
/// of a regular-expression class. Written out rather than `\s`, whose meaning differs
/// between regex dialects.
const WHITE_SPACE: &str = "\\t\\n\\u000b\\u000c\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
/// `White_Space` and the control characters (`char::is_control`), as a class's inside.
const SPACE_OR_CONTROL: &str =
    "\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
/// The control characters, as a class's inside.
const CONTROL: &str = "\\u0000-\\u001f\\u007f-\\u009f";

/// Text trimmed of surrounding white space, then non-blank, at most `MAX` characters and
/// free of control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text<const MAX: usize>(pub String);

impl<const MAX: usize> Wire for Text<MAX> {
    fn read(v: &Value, cx: &mut Cx<'_>) -> Option<Self> {
        let s = String::read(v, cx)?;
        let t = s.trim();
        if t.is_empty() {
            cx.fail("must not be blank");
        } else if t.chars().count() > MAX {
            cx.fail(format!("must be at most {MAX} characters"));
        } else if t.chars().any(char::is_control) {
            cx.fail("must not contain control characters");
        } else {
            return Some(Text(t.to_owned()));
        }
        None
    }
    fn schema() -> Value {
        let inner = MAX.saturating_sub(2);
        let pattern = format!(
            "^[{WHITE_SPACE}]*[^{SPACE_OR_CONTROL}](?:[^{CONTROL}]{{0,{inner}}}[^{SPACE_OR_CONTROL}])?[{WHITE_SPACE}]*$"
        );
        json!({"type": "string", "pattern": pattern})
    }
}

/// The pattern of [`Email`]'s checks: one `@`, a non-empty local part of at most
/// `local_max` characters, a domain of dot-separated non-empty labels (at least two) that
/// does not start with `-`, and no spaces, control characters, `<` or `>` anywhere; with
/// `ascii`, only printable ASCII characters.
fn email_pattern(local_max: usize, ascii: bool) -> String {
    let (c, label, first) = if ascii {
        // Printable ASCII but `<` `>` `@`; the domain's also not `.`, its first not `-`.
        (
            "[!-;=?A-~]".to_owned(),
            "[!-\\-/-;=?A-~]".to_owned(),
            "[!-,/-;=?A-~]".to_owned(),
        )
    } else {
        (
            format!("[^@<>{SPACE_OR_CONTROL}]"),
            format!("[^.@<>{SPACE_OR_CONTROL}]"),
            format!("[^.@<>\\-{SPACE_OR_CONTROL}]"),
        )
    };
    format!("^{c}{{1,{local_max}}}@{first}{label}*(?:\\.{label}+)+$")
}

/// An e-mail address as a schema: an ASCII address bounded exactly, or any address short
/// enough that its bytes are within the limits whatever its characters (the limits are in
/// bytes, a schema counts characters, and a character beyond ASCII takes up to 4 bytes).
impl Wire for Email {
    fn read(v: &Value, cx: &mut Cx<'_>) -> Option<Self> {
        parsed(v, cx)
    }
    fn schema() -> Value {
        json!({
            "description": "An e-mail address: one `@`, a local part of 1 to 64 bytes, a \
                dotted domain that neither starts with `.` or `-` nor ends with `.`, no spaces, \
                control characters, `<` or `>`; at most 254 bytes in all. The limits are in \
                bytes and a schema counts characters, so an address with characters beyond \
                ASCII (up to 4 bytes each) is described here as at most 16 characters before \
                the `@` and 63 in all, which always fit.",
            "anyOf": [
                {"type": "string", "maxLength": 254, "pattern": email_pattern(64, true)},
                {"type": "string", "maxLength": 63, "pattern": email_pattern(16, false)},
            ],
            "examples": ["ada@example.com"],
        })
    }
}

/// An amount: a JSON number read exactly from the client's text when known.
impl Wire for Money {
    fn read(v: &Value, cx: &mut Cx<'_>) -> Option<Self> {
        let exact = match (v, cx.text()) {
            (Value::Number(_), Some(text)) => Money::from_json_text(text),
            _ => Money::from_json(v),
        };
        match exact {
            Ok(m) => Some(m),
            Err(e) => {
                cx.fail(e.to_string());
                None
            }
        }
    }
    fn schema() -> Value {
        json!({
            "type": "number",
            "description": format!(
                "An amount in {CURRENCY} as a JSON number with at most 2 decimals (109.97), \
                 from 0 to {}.",
                Money::from_minor(MAX_MINOR).unwrap_or_default()
            ),
            "minimum": 0,
            "maximum": MAX_MINOR / 100,
            "multipleOf": 0.01,
            "examples": [109.97],
        })
    }
}

/// An amount greater than zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Positive(pub Money);

impl Wire for Positive {
    fn read(v: &Value, cx: &mut Cx<'_>) -> Option<Self> {
        let m = Money::read(v, cx)?;
        if m == Money::ZERO {
            cx.fail("must be greater than 0");
            return None;
        }
        Some(Positive(m))
    }
    fn schema() -> Value {
        let mut s = Money::schema();
        if let Value::Object(m) = &mut s {
            m.remove("minimum");
            m.remove("description");
            m.insert("exclusiveMinimum".into(), json!(0));
        }
        s
    }
}

/// The currency: only [`CURRENCY`] is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Currency;

impl Wire for Currency {
    fn read(v: &Value, cx: &mut Cx<'_>) -> Option<Self> {
        let s = String::read(v, cx)?;
        if s == CURRENCY {
            Some(Currency)
        } else {
            cx.fail(format!("must be {CURRENCY} (the only currency)"));
            None
        }
    }
    fn schema() -> Value {
        json!({"type": "string", "enum": [CURRENCY]})
    }
}

/// A list of any length.
impl<T: Wire> Wire for Vec<T> {
    fn read(v: &Value, cx: &mut Cx<'_>) -> Option<Self> {
        List::<T, 0, { usize::MAX }>::read(v, cx).map(|l| l.0)
    }
    fn schema() -> Value {
        json!({"type": "array", "items": T::schema()})
    }
    fn components(out: &mut Vec<(&'static str, Value)>) {
        T::components(out);
    }
}

/// A list of `MIN` to `MAX` elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List<T, const MIN: usize, const MAX: usize>(pub Vec<T>);

impl<T: Wire, const MIN: usize, const MAX: usize> Wire for List<T, MIN, MAX> {
    fn read(v: &Value, cx: &mut Cx<'_>) -> Option<Self> {
        let a = match v {
            Value::Array(a) => a,
            other => {
                cx.fail(format!("must be an array, not {}", type_name(other)));
                return None;
            }
        };
        if a.len() < MIN {
            let s = if MIN == 1 { "" } else { "s" };
            cx.fail(format!("must contain at least {MIN} item{s}"));
            return None;
        }
        if a.len() > MAX {
            cx.fail(format!("must contain at most {MAX} items"));
            return None;
        }
        cx.inside(|scope| {
            let read: Vec<Option<T>> = a
                .iter()
                .enumerate()
                .map(|(i, x)| scope.element::<T>(x, i))
                .collect();
            let good: Vec<(usize, &T)> = read
                .iter()
                .enumerate()
                .filter_map(|(i, t)| t.as_ref().map(|t| (i, t)))
                .collect();
            T::check_list(&good, scope);
            let all = good.len() == a.len();
            all.then(|| List(read.into_iter().flatten().collect()))
        })
    }
    fn schema() -> Value {
        json!({"type": "array", "items": T::schema(), "minItems": MIN, "maxItems": MAX})
    }
    fn components(out: &mut Vec<(&'static str, Value)>) {
        T::components(out);
    }
}

/// Declares a request body: a struct whose fields each have a JSON name and a [`Wire`]
/// type, with [`Wire`] and [`Shape`] implemented from that one declaration. Options per
/// field in braces (`example`, `deprecated`, `read_only`, as [`FieldMeta`]'s fields); after
/// the fields, `exactly_one_of(a, b);` and `check_list(f);` (a [`Wire::check_list`]) and
/// `example(json);` for the body.
#[macro_export]
macro_rules! shape {
    (
        $(#[doc = $doc:expr])*
        pub struct $name:ident as $title:literal {
            $(
                $(#[doc = $fdoc:expr])*
                $key:literal => $field:ident : $ty:ty $({ $($opt:ident : $val:expr),* $(,)? })?
            ),* $(,)?
        }
        $(exactly_one_of($a:literal, $b:literal);)?
        $(check_list($check:path);)?
        $(example($example:expr);)?
    ) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            $( $(#[doc = $fdoc])* pub $field: $ty, )*
        }

        impl $crate::shape::Wire for $name {
            fn read(
                v: &serde_json::Value,
                cx: &mut $crate::shape::Cx<'_>,
            ) -> Option<Self> {
                let Some(obj) = v.as_object() else {
                    cx.fail(format!("must be an object, not {}", $crate::shape::type_name(v)));
                    return None;
                };
                cx.inside(|scope| {
                    scope.reject_unknown(obj, <Self as $crate::shape::Shape>::FIELDS);
                    $( scope.exactly_one_of(obj, $a, $b); )?
                    $( let $field = scope.field::<$ty>(obj, $key); )*
                    Some(Self { $( $field: $field?, )* })
                })
            }
            fn schema() -> serde_json::Value {
                serde_json::json!({ "$ref": concat!("#/components/schemas/", $title) })
            }
            fn components(out: &mut Vec<(&'static str, serde_json::Value)>) {
                if out.iter().any(|(n, _)| *n == $title) {
                    return;
                }
                $( <$ty as $crate::shape::Wire>::components(out); )*
                let fields = vec![$(
                    (
                        $key,
                        $crate::shape::doc_text(&[$($fdoc),*]),
                        <$ty as $crate::shape::Wire>::schema(),
                        <$ty as $crate::shape::Wire>::absent().is_err(),
                        $crate::shape::FieldMeta { $($($opt: $val,)*)? ..Default::default() },
                    ),
                )*];
                #[allow(unused_mut, unused_assignments)]
                let mut one_of: Option<(&str, &str)> = None;
                $( one_of = Some(($a, $b)); )?
                #[allow(unused_mut, unused_assignments)]
                let mut example: Option<serde_json::Value> = None;
                $( example = Some($example); )?
                out.push((
                    $title,
                    $crate::shape::object_schema(
                        &$crate::shape::doc_text(&[$($doc),*]),
                        fields,
                        one_of,
                        example,
                    ),
                ));
            }
            $(
                fn check_list(items: &[(usize, &Self)], scope: &mut $crate::shape::Scope<'_>) {
                    $check(items, scope)
                }
            )?
        }

        impl $crate::shape::Shape for $name {
            const NAME: &'static str = $title;
            const FIELDS: &'static [&'static str] = &[$($key),*];
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nullable_adds_null_to_the_type_the_enum_or_the_alternatives() {
        assert_eq!(
            nullable(json!({"type": "string"})),
            json!({"type": ["string", "null"]})
        );
        assert_eq!(
            nullable(json!({"type": "string", "enum": ["USD"]})),
            json!({"type": ["string", "null"], "enum": ["USD", null]})
        );
        assert_eq!(
            nullable(json!({"anyOf": [{"type": "string"}]})),
            json!({"anyOf": [{"type": "string"}, {"type": "null"}]})
        );
        assert_eq!(
            nullable(json!({"$ref": "#/x"})),
            json!({"anyOf": [{"$ref": "#/x"}, {"type": "null"}]})
        );
    }

    #[test]
    fn draft04_only_loosens() {
        let components = vec![("Line", json!({"type": "integer", "multipleOf": 2}))];
        let s = json!({
            "type": "object",
            "properties": {
                "a": {"type": ["integer", "null"], "pattern": "x", "examples": [1]},
                "b": {"type": "number", "exclusiveMinimum": 0},
                "c": {"type": "array", "items": {"$ref": "#/components/schemas/Line"}},
            },
        });
        assert_eq!(
            to_draft04(&s, &components),
            json!({
                "type": "object",
                "properties": {
                    "a": {"type": ["number", "null"]},
                    "b": {"type": "number", "minimum": 0, "exclusiveMinimum": true},
                    "c": {"type": "array", "items": {"type": "number"}},
                },
            })
        );
    }

    #[test]
    fn doc_text_joins_lines_and_keeps_paragraphs() {
        assert_eq!(
            doc_text(&[" One", " two.", "", " Three."]),
            "One two.\n\nThree."
        );
        assert_eq!(doc_text(&[]), "");
    }
}
