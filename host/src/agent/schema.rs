//! Validation of tool arguments against the tool's JSON Schema: a documented subset of JSON
//! Schema (draft 2020-12 semantics), enough for tool-call arguments, with no dependencies.
//!
//! Why not the `jsonschema` crate: it brings a regex engine, a `$ref` resolver (with remote
//! fetching to keep disabled) and a dozen crates more to the daemon's 2-core builds, for
//! keywords tool schemas rarely use. The tool validates its own input anyway (`invalid-args`);
//! this check exists to give agents a clear 400 before anything runs.
//!
//! Supported: `type` (one or a list: `object`, `array`, `string`, `integer`, `number`,
//! `boolean`, `null`), `properties`, `required`, `additionalProperties` (bool or schema),
//! `enum`, `const`, `minLength`/`maxLength` (characters), `minimum`/`maximum`/
//! `exclusiveMinimum`/`exclusiveMaximum`, `items` (one schema), `minItems`/`maxItems`,
//! `minProperties`/`maxProperties`, `allOf`/`anyOf`/`oneOf`/`not`. Everything else (`$ref`,
//! `pattern`, `format`, annotations) is ignored: the schema may say more than is checked here,
//! never less.

use serde_json::Value;

/// Every way `value` breaks `schema`, each as `"<json pointer>: <what>"` (empty: valid).
pub fn validate(schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, value, "", &mut errors);
    errors
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(want: &str, v: &Value) -> bool {
    let have = type_name(v);
    have == want || (want == "number" && have == "integer")
}

fn at(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
}

fn check(schema: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
    let s = match schema {
        Value::Bool(true) => return,
        Value::Bool(false) => return errors.push(format!("{}: no value is allowed here", at(path))),
        Value::Object(s) => s,
        _ => return,
    };
    if let Some(t) = s.get("type") {
        let wanted: Vec<&str> = match t {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !wanted.is_empty() && !wanted.iter().any(|w| type_matches(w, v)) {
            errors.push(format!("{}: expected {}, found {}", at(path), wanted.join(" or "), type_name(v)));
            return; // the other keywords would only repeat the type error
        }
    }
    if let Some(Value::Array(options)) = s.get("enum")
        && !options.contains(v)
    {
        let list: Vec<String> = options.iter().map(Value::to_string).collect();
        errors.push(format!("{}: must be one of {}", at(path), list.join(", ")));
    }
    if let Some(c) = s.get("const")
        && c != v
    {
        errors.push(format!("{}: must be {c}", at(path)));
    }
    match v {
        Value::String(text) => strings(s, text, path, errors),
        Value::Number(_) => numbers(s, v, path, errors),
        Value::Array(items) => arrays(s, items, path, errors),
        Value::Object(map) => objects(s, map, path, errors),
        _ => {}
    }
    combinators(s, v, path, errors);
}

fn limit(s: &serde_json::Map<String, Value>, key: &str) -> Option<u64> {
    s.get(key).and_then(Value::as_u64)
}

fn strings(s: &serde_json::Map<String, Value>, text: &str, path: &str, errors: &mut Vec<String>) {
    let n = text.chars().count() as u64;
    if let Some(min) = limit(s, "minLength").filter(|m| n < *m) {
        errors.push(format!("{}: shorter than {min} characters", at(path)));
    }
    if let Some(max) = limit(s, "maxLength").filter(|m| n > *m) {
        errors.push(format!("{}: longer than {max} characters", at(path)));
    }
}

fn numbers(s: &serde_json::Map<String, Value>, v: &Value, path: &str, errors: &mut Vec<String>) {
    let Some(x) = v.as_f64() else { return };
    let bound = |k: &str| s.get(k).and_then(Value::as_f64);
    if let Some(m) = bound("minimum").filter(|m| x < *m) {
        errors.push(format!("{}: less than the minimum {m}", at(path)));
    }
    if let Some(m) = bound("maximum").filter(|m| x > *m) {
        errors.push(format!("{}: greater than the maximum {m}", at(path)));
    }
    if let Some(m) = bound("exclusiveMinimum").filter(|m| x <= *m) {
        errors.push(format!("{}: must be greater than {m}", at(path)));
    }
    if let Some(m) = bound("exclusiveMaximum").filter(|m| x >= *m) {
        errors.push(format!("{}: must be less than {m}", at(path)));
    }
}

fn arrays(s: &serde_json::Map<String, Value>, items: &[Value], path: &str, errors: &mut Vec<String>) {
    let n = items.len() as u64;
    if let Some(min) = limit(s, "minItems").filter(|m| n < *m) {
        errors.push(format!("{}: fewer than {min} items", at(path)));
    }
    if let Some(max) = limit(s, "maxItems").filter(|m| n > *m) {
        errors.push(format!("{}: more than {max} items", at(path)));
    }
    if let Some(item_schema) = s.get("items") {
        for (i, item) in items.iter().enumerate() {
            check(item_schema, item, &format!("{path}/{i}"), errors);
        }
    }
}

/// JSON Pointer escaping of one key.
fn pointer_key(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

fn objects(s: &serde_json::Map<String, Value>, map: &serde_json::Map<String, Value>, path: &str, errors: &mut Vec<String>) {
    if let Some(Value::Array(required)) = s.get("required") {
        for r in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(r) {
                errors.push(format!("{}: missing required property `{r}`", at(path)));
            }
        }
    }
    let n = map.len() as u64;
    if let Some(min) = limit(s, "minProperties").filter(|m| n < *m) {
        errors.push(format!("{}: fewer than {min} properties", at(path)));
    }
    if let Some(max) = limit(s, "maxProperties").filter(|m| n > *m) {
        errors.push(format!("{}: more than {max} properties", at(path)));
    }
    let props = s.get("properties").and_then(Value::as_object);
    for (k, val) in map {
        let child = format!("{path}/{}", pointer_key(k));
        match (props.and_then(|p| p.get(k)), s.get("additionalProperties")) {
            (Some(ps), _) => check(ps, val, &child, errors),
            (None, Some(Value::Bool(false))) => errors.push(format!("{}: unknown property `{k}`", at(path))),
            (None, Some(extra)) => check(extra, val, &child, errors),
            (None, None) => {}
        }
    }
}

fn combinators(s: &serde_json::Map<String, Value>, v: &Value, path: &str, errors: &mut Vec<String>) {
    let passes = |sub: &Value| validate_at(sub, v, path).is_empty();
    if let Some(Value::Array(all)) = s.get("allOf") {
        for sub in all {
            check(sub, v, path, errors);
        }
    }
    if let Some(Value::Array(any)) = s.get("anyOf")
        && !any.iter().any(passes)
    {
        errors.push(format!("{}: matches none of the allowed shapes (anyOf)", at(path)));
    }
    if let Some(Value::Array(one)) = s.get("oneOf") {
        let n = one.iter().filter(|sub| passes(sub)).count();
        if n != 1 {
            errors.push(format!("{}: must match exactly one shape (oneOf), matches {n}", at(path)));
        }
    }
    if let Some(not) = s.get("not")
        && passes(not)
    {
        errors.push(format!("{}: matches a shape that is not allowed (not)", at(path)));
    }
}

fn validate_at(schema: &Value, v: &Value, path: &str) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, v, path, &mut errors);
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "url": { "type": "string", "minLength": 8, "maxLength": 2048 },
                "max_bytes": { "type": "integer", "minimum": 1, "maximum": 262144 },
                "mode": { "enum": ["text", "json"] },
                "tags": { "type": "array", "items": { "type": "string" }, "maxItems": 2 }
            },
            "required": ["url"],
            "additionalProperties": false
        })
    }

    #[test]
    fn valid_arguments_pass() {
        assert!(validate(&schema(), &json!({"url": "https://example.com/", "max_bytes": 100, "mode": "text"})).is_empty());
        assert!(validate(&schema(), &json!({"url": "https://example.com/", "max_bytes": 100.0})).is_empty(), "100.0 is an integer");
    }

    #[test]
    fn every_mistake_is_reported_with_its_path() {
        let errors = validate(&schema(), &json!({"max_bytes": 0, "mode": "xml", "tags": ["a", 2, "c"], "extra": 1}));
        assert_eq!(
            errors,
            [
                "/: missing required property `url`",
                "/: unknown property `extra`",
                "/max_bytes: less than the minimum 1",
                "/mode: must be one of \"text\", \"json\"",
                "/tags: more than 2 items",
                "/tags/1: expected string, found integer",
            ],
        );
        assert_eq!(validate(&schema(), &json!("https://x")), ["/: expected object, found string"]);
    }

    #[test]
    fn combinators_and_type_lists() {
        let s = json!({"anyOf": [{"type": "string"}, {"type": "null"}]});
        assert!(validate(&s, &json!(null)).is_empty());
        assert_eq!(validate(&s, &json!(1)).len(), 1);
        let one = json!({"oneOf": [{"type": "number"}, {"type": "integer"}]});
        assert_eq!(validate(&one, &json!(1)).len(), 1, "1 is both a number and an integer");
        assert!(validate(&json!({"type": ["string", "integer"]}), &json!(3)).is_empty());
        assert_eq!(validate(&json!({"not": {"const": "x"}}), &json!("x")).len(), 1);
        assert!(validate(&json!(true), &json!({"anything": 1})).is_empty());
        assert_eq!(validate(&json!({"properties": {"a": false}}), &json!({"a": 1})), ["/a: no value is allowed here"]);
    }
}
