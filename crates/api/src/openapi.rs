//! Replies checked against the OpenAPI document (`docs/openapi.json`): a small validator over
//! the subset of JSON Schema the document uses, for the tests that hold the daemon's replies
//! ([`crate::reply`]) and the document to each other.
//!
//! The subset: `$ref` (local, `#/...`), `type` (one or a list), `enum`, `const`, `required`,
//! `properties`, `additionalProperties` (a boolean or a schema), `items`, `oneOf`, `minimum`,
//! `maximum`, `minLength`, `maxLength`, and the annotations (`description`, `title`, `default`,
//! `examples`, `format`, `deprecated`). Any other keyword in a schema a reply is checked against
//! is an error, so the document never relies on one this check would silently skip.
//!
//! One rule is stricter than JSON Schema, because the document is the reference of a scripted
//! interface: an object schema that lists `properties` and says nothing of
//! `additionalProperties` is closed (a key it does not list is an error). A schema that means
//! to leave an object open says `"additionalProperties": true`.
//!
//! [`Coverage`] records which documented properties, `enum` values, types of a `type` list
//! (`["string", "null"]`) and `oneOf` branches the checked replies held, so a test can also ask
//! the other way round: what the document promises that no reply sent
//! ([`Document::unexercised`]): a property never sent, a value never taken, a field documented
//! as nullable that never is.

use std::collections::BTreeSet;

use serde_json::Value;

/// Keywords that only annotate.
const ANNOTATIONS: &[&str] = &[
    "description",
    "title",
    "default",
    "examples",
    "format",
    "deprecated",
];

/// Keywords this validator checks.
const CHECKED: &[&str] = &[
    "$ref",
    "type",
    "enum",
    "const",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "oneOf",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
];

/// The OpenAPI document, parsed.
#[derive(Debug, Clone)]
pub struct Document {
    doc: Value,
}

/// What checked replies exercised of the document: each property present and each `enum`
/// value taken, by the JSON pointer of its schema.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    seen: BTreeSet<String>,
}

impl Coverage {
    /// Adds what `other` saw.
    pub fn merge(&mut self, other: Coverage) {
        self.seen.extend(other.seen);
    }

    /// Whether a property or enum value (by its pointer, as [`Document::unexercised`] names
    /// them) was seen.
    pub fn saw(&self, what: &str) -> bool {
        self.seen.contains(what)
    }
}

/// Escapes a key for a JSON pointer (RFC 6901).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Whether `v` is of the JSON Schema type `t` (an integer is also a number).
fn is_type(v: &Value, t: &str) -> bool {
    let actual = type_name(v);
    actual == t || (t == "number" && actual == "integer")
}

/// An instance location for messages: `$` for the root.
fn at_key(at: &str, key: &str) -> String {
    format!("{at}.{key}")
}

impl Document {
    /// Parses the document's text.
    pub fn parse(text: &str) -> Result<Document, String> {
        let doc: Value =
            serde_json::from_str(text).map_err(|e| format!("the document is not JSON: {e}"))?;
        if !doc.get("paths").is_some_and(Value::is_object) {
            return Err("the document has no `paths` object".into());
        }
        Ok(Document { doc })
    }

    /// Reads and parses the document at `path`.
    pub fn load(path: &std::path::Path) -> Result<Document, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        Document::parse(&text)
    }

    /// The value at a local reference (`#/components/schemas/Status`).
    fn resolve(&self, reference: &str) -> Option<&Value> {
        let pointer = reference.strip_prefix('#')?;
        self.doc.pointer(pointer)
    }

    /// The pointer of the JSON schema of `method path`'s answer with `status`
    /// (`("GET", "/v1/status", 200)`): an error when the document does not list that status
    /// for the route, or gives it no `application/json` schema.
    pub fn response_schema(&self, method: &str, path: &str, status: u16) -> Result<String, String> {
        let pointer = format!(
            "#/paths/{}/{}/responses/{status}/content/application~1json/schema",
            escape(path),
            method.to_ascii_lowercase()
        );
        match self.resolve(&pointer) {
            Some(_) => Ok(pointer),
            None => Err(format!(
                "{method} {path}: the document has no JSON schema for a {status} answer"
            )),
        }
    }

    /// Checks `body`, the answer to `method path` with `status`, against the document; what
    /// it exercised goes to `coverage`. Every disagreement is listed, with where in the body.
    pub fn check(
        &self,
        method: &str,
        path: &str,
        status: u16,
        body: &Value,
        coverage: &mut Coverage,
    ) -> Result<(), Vec<String>> {
        let pointer = self
            .response_schema(method, path, status)
            .map_err(|e| vec![e])?;
        let mut errors = Vec::new();
        self.validate(&pointer, body, "$", coverage, &mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors
                .into_iter()
                .map(|e| format!("{method} {path} ({status}): {e}"))
                .collect())
        }
    }

    /// Checks `instance` (found at `at` in the body) against the schema at `pointer`.
    fn validate(
        &self,
        pointer: &str,
        instance: &Value,
        at: &str,
        coverage: &mut Coverage,
        errors: &mut Vec<String>,
    ) {
        let Some(schema) = self.resolve(pointer) else {
            errors.push(format!("{at}: no schema at {pointer}"));
            return;
        };
        let Some(schema) = schema.as_object() else {
            errors.push(format!("{at}: the schema at {pointer} is not an object"));
            return;
        };
        for k in schema.keys() {
            if !CHECKED.contains(&k.as_str()) && !ANNOTATIONS.contains(&k.as_str()) {
                errors.push(format!(
                    "{at}: the schema at {pointer} uses `{k}`, which this check does not know"
                ));
            }
        }
        if let Some(r) = schema.get("$ref") {
            match r.as_str() {
                Some(r) if r.starts_with("#/") => self.validate(r, instance, at, coverage, errors),
                _ => errors.push(format!("{at}: {pointer}: only local $refs are followed")),
            }
        }
        if let Some(t) = schema.get("type") {
            let types: Vec<&str> = match t {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            match types.iter().find(|t| is_type(instance, t)) {
                Some(t) if types.len() > 1 => {
                    coverage.seen.insert(format!("{pointer}/type {t}"));
                }
                Some(_) => {}
                None => errors.push(format!(
                    "{at}: a {} where the document ({pointer}) says {}",
                    type_name(instance),
                    types.join(" or ")
                )),
            }
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            if values.contains(instance) {
                coverage.seen.insert(format!("{pointer}/enum {instance}"));
            } else {
                errors.push(format!(
                    "{at}: {instance} is not among the values the document lists ({pointer}: {})",
                    Value::Array(values.clone())
                ));
            }
        }
        if let Some(c) = schema.get("const") {
            if c != instance {
                errors.push(format!("{at}: {instance} where the document says {c}"));
            }
        }
        self.bounds(schema, pointer, instance, at, errors);
        match instance {
            Value::Object(map) => self.object(schema, pointer, map, at, coverage, errors),
            Value::Array(items) if schema.contains_key("items") => {
                let item = format!("{pointer}/items");
                for (i, v) in items.iter().enumerate() {
                    self.validate(&item, v, &format!("{at}[{i}]"), coverage, errors);
                }
            }
            _ => {}
        }
        if let Some(branches) = schema.get("oneOf").and_then(Value::as_array) {
            self.one_of(pointer, branches.len(), instance, at, coverage, errors);
        }
    }

    /// `minimum`, `maximum`, `minLength`, `maxLength`.
    fn bounds(
        &self,
        schema: &serde_json::Map<String, Value>,
        pointer: &str,
        instance: &Value,
        at: &str,
        errors: &mut Vec<String>,
    ) {
        if let Some(n) = instance.as_f64() {
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
                if n < min {
                    errors.push(format!("{at}: {n} is below {pointer}'s minimum {min}"));
                }
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
                if n > max {
                    errors.push(format!("{at}: {n} is above {pointer}'s maximum {max}"));
                }
            }
        }
        if let Some(s) = instance.as_str() {
            let len = s.chars().count() as u64;
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
                if len < min {
                    errors.push(format!("{at}: shorter than {pointer}'s minLength {min}"));
                }
            }
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
                if len > max {
                    errors.push(format!("{at}: longer than {pointer}'s maxLength {max}"));
                }
            }
        }
    }

    /// `required`, `properties`, `additionalProperties` (closed when `properties` are listed
    /// and it is absent).
    fn object(
        &self,
        schema: &serde_json::Map<String, Value>,
        pointer: &str,
        map: &serde_json::Map<String, Value>,
        at: &str,
        coverage: &mut Coverage,
        errors: &mut Vec<String>,
    ) {
        for r in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !map.contains_key(r) {
                errors.push(format!(
                    "{at}: `{r}` is missing; the document ({pointer}) requires it"
                ));
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        for (k, v) in map {
            if properties.is_some_and(|p| p.contains_key(k)) {
                let p = format!("{pointer}/properties/{}", escape(k));
                coverage.seen.insert(p.clone());
                self.validate(&p, v, &at_key(at, k), coverage, errors);
                continue;
            }
            match additional {
                Some(Value::Bool(true)) => {}
                Some(Value::Object(_)) => {
                    let p = format!("{pointer}/additionalProperties");
                    self.validate(&p, v, &at_key(at, k), coverage, errors);
                }
                None if properties.is_none() => {}
                _ => errors.push(format!(
                    "{at}: `{k}` is sent but not documented (properties of {pointer})"
                )),
            }
        }
    }

    /// `oneOf`: exactly one branch holds; only its coverage counts.
    fn one_of(
        &self,
        pointer: &str,
        n: usize,
        instance: &Value,
        at: &str,
        coverage: &mut Coverage,
        errors: &mut Vec<String>,
    ) {
        let mut held = Vec::new();
        let mut why = Vec::new();
        for i in 0..n {
            let branch = format!("{pointer}/oneOf/{i}");
            if let Some(tag) = self.other_tag(&branch, instance) {
                why.push(format!("not {tag}"));
                continue;
            }
            let mut c = Coverage::default();
            let mut e = Vec::new();
            self.validate(&branch, instance, at, &mut c, &mut e);
            if e.is_empty() {
                c.seen.insert(branch);
                held.push(c);
            } else {
                why.push(format!("as {branch}: {}", e.join("; ")));
            }
        }
        match held.len() {
            1 => coverage.merge(held.remove(0)),
            0 => {
                // Branches told apart by a tag the instance does not carry say no more.
                let told: Vec<&String> = why.iter().filter(|w| w.starts_with("as ")).collect();
                errors.push(if told.is_empty() {
                    format!(
                        "{at}: matches none of {pointer}'s oneOf ({})",
                        why.join(", ")
                    )
                } else {
                    format!(
                        "{at}: matches none of {pointer}'s oneOf ({})",
                        told.iter()
                            .map(|w| w.as_str())
                            .collect::<Vec<_>>()
                            .join(" | ")
                    )
                });
            }
            k => errors.push(format!("{at}: matches {k} of {pointer}'s oneOf, not one")),
        }
    }

    /// When the schema at `pointer` (through `$ref`s) is of another type than `instance`, or
    /// tags its objects with a property of one value (`"decision": {"enum": ["act"]}`) and
    /// `instance` carries another: what it is instead (a branch of a `oneOf` that says no more).
    fn other_tag(&self, pointer: &str, instance: &Value) -> Option<String> {
        let mut schema = self.resolve(pointer)?;
        while let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            schema = self.resolve(r)?;
        }
        if let Some(t) = schema.get("type").and_then(Value::as_str) {
            if !is_type(instance, t) {
                return Some(t.to_owned());
            }
        }
        let map = instance.as_object()?;
        schema
            .get("properties")?
            .as_object()?
            .iter()
            .find_map(|(k, p)| match p.get("enum").and_then(Value::as_array) {
                Some(one) if one.len() == 1 && map.get(k).is_some_and(|v| *v != one[0]) => {
                    Some(format!("{k} {}", one[0]))
                }
                _ => None,
            })
    }

    /// Every property, `enum` value, type of a `type` list and `oneOf` branch of the JSON
    /// schemas of every route's answers (followed through `$ref`, `items`, `oneOf` and
    /// `additionalProperties`) that `coverage` never saw: what the document promises and no
    /// checked reply held.
    pub fn unexercised(&self, coverage: &Coverage) -> Vec<String> {
        let mut all = BTreeSet::new();
        let mut visited = BTreeSet::new();
        let paths = self.doc.get("paths").and_then(Value::as_object);
        for (path, ops) in paths.into_iter().flatten() {
            for (method, op) in ops.as_object().into_iter().flatten() {
                let responses = op.get("responses").and_then(Value::as_object);
                for (status, r) in responses.into_iter().flatten() {
                    if r.pointer("/content/application~1json/schema").is_some() {
                        let p = format!(
                            "#/paths/{}/{method}/responses/{status}/content/application~1json/schema",
                            escape(path)
                        );
                        self.promises(&p, &mut all, &mut visited);
                    }
                }
            }
        }
        all.into_iter().filter(|p| !coverage.saw(p)).collect()
    }

    /// Collects what the schema at `pointer` promises.
    fn promises(&self, pointer: &str, all: &mut BTreeSet<String>, visited: &mut BTreeSet<String>) {
        if !visited.insert(pointer.to_owned()) {
            return;
        }
        let Some(schema) = self.resolve(pointer).and_then(Value::as_object) else {
            return;
        };
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            self.promises(r, all, visited);
        }
        for v in schema
            .get("enum")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            all.insert(format!("{pointer}/enum {v}"));
        }
        if let Some(types) = schema.get("type").and_then(Value::as_array) {
            for t in types.iter().filter_map(Value::as_str) {
                all.insert(format!("{pointer}/type {t}"));
            }
        }
        for k in schema
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|p| p.keys())
        {
            let p = format!("{pointer}/properties/{}", escape(k));
            all.insert(p.clone());
            self.promises(&p, all, visited);
        }
        if schema.contains_key("items") {
            self.promises(&format!("{pointer}/items"), all, visited);
        }
        if schema
            .get("additionalProperties")
            .is_some_and(Value::is_object)
        {
            self.promises(&format!("{pointer}/additionalProperties"), all, visited);
        }
        let branches = schema
            .get("oneOf")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        for i in 0..branches {
            let branch = format!("{pointer}/oneOf/{i}");
            all.insert(branch.clone());
            self.promises(&branch, all, visited);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn doc() -> Document {
        let d = json!({
            "paths": {"/x": {"get": {"responses": {"200": {"content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/X"}
            }}}}}}},
            "components": {"schemas": {
                "X": {
                    "type": "object",
                    "required": ["a"],
                    "properties": {
                        "a": {"type": "integer", "minimum": 0},
                        "b": {"type": ["string", "null"], "enum": ["p", "q", null]},
                        "c": {"type": "array", "items": {"oneOf": [
                            {"type": "object", "required": ["t"], "properties": {"t": {"const": 1}}},
                            {"type": "string"}
                        ]}},
                        "m": {"type": "object", "additionalProperties": {"type": "integer"}},
                        "o": {"type": "object", "properties": {"k": {"type": "string"}}, "additionalProperties": true}
                    }
                }
            }}
        });
        Document::parse(&d.to_string()).unwrap()
    }

    #[test]
    fn a_reply_in_the_documented_shape_passes_and_is_covered() {
        let d = doc();
        let mut c = Coverage::default();
        let body =
            json!({"a": 1, "b": "p", "c": [{"t": 1}, "s"], "m": {"x": 2}, "o": {"k": "v", "z": 0}});
        d.check("GET", "/x", 200, &body, &mut c).unwrap();
        let left = d.unexercised(&c);
        assert_eq!(
            left,
            [
                "#/components/schemas/X/properties/b/enum \"q\"",
                "#/components/schemas/X/properties/b/enum null",
                "#/components/schemas/X/properties/b/type null",
            ]
        );
    }

    #[test]
    fn every_disagreement_is_named_with_where() {
        let d = doc();
        let mut c = Coverage::default();
        let body = json!({"b": "r", "c": [{"t": 2}, 3], "m": {"x": "y"}, "extra": true, "a2": 1});
        let errors = d
            .check("GET", "/x", 200, &body, &mut c)
            .unwrap_err()
            .join("\n");
        for says in [
            "$: `a` is missing",
            "$.b: \"r\" is not among",
            "$.c[0]: matches none",
            "$.c[1]: matches none",
            "$.m.x: a string where the document",
            "$: `extra` is sent but not documented",
            "$: `a2` is sent but not documented",
        ] {
            assert!(errors.contains(says), "{says}\n{errors}");
        }
        let e = d.check("GET", "/x", 404, &body, &mut c).unwrap_err();
        assert!(e[0].contains("no JSON schema for a 404"), "{e:?}");
        let e = d
            .check("GET", "/x", 200, &json!({"a": -1}), &mut c)
            .unwrap_err();
        assert!(e[0].contains("below"), "{e:?}");
    }

    #[test]
    fn unknown_keywords_are_refused_not_skipped() {
        let d = Document::parse(
            &json!({"paths": {"/x": {"get": {"responses": {"200": {"content": {"application/json": {
                "schema": {"type": "string", "pattern": "^a"}
            }}}}}}}})
            .to_string(),
        )
        .unwrap();
        let e = d
            .check("GET", "/x", 200, &json!("b"), &mut Coverage::default())
            .unwrap_err();
        assert!(e[0].contains("`pattern`"), "{e:?}");
    }
}
