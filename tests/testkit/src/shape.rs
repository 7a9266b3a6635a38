//! Assertions on JSON shapes: the exact field names and types a client relies on.

use serde_json::Value;

/// Asserts that `value` is an object with exactly these fields (no more, no fewer) of these
/// types: `string`, `integer`, `boolean`, `array`, `object`, or `T|null`.
#[track_caller]
pub fn assert_fields(value: &Value, spec: &[(&str, &str)]) {
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("expected an object, got {value}"));
    for (field, kind) in spec {
        let v = object
            .get(*field)
            .unwrap_or_else(|| panic!("missing field {field:?} in {value}"));
        assert!(is_kind(v, kind), "field {field:?} should be {kind}, is {v}");
    }
    let extra: Vec<&String> = object
        .keys()
        .filter(|k| !spec.iter().any(|(f, _)| f == k))
        .collect();
    assert!(extra.is_empty(), "unexpected fields {extra:?} in {value}");
}

/// Asserts that `value` has at least these fields of these types (more are allowed).
#[track_caller]
pub fn assert_has_fields(value: &Value, spec: &[(&str, &str)]) {
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("expected an object, got {value}"));
    for (field, kind) in spec {
        let v = object
            .get(*field)
            .unwrap_or_else(|| panic!("missing field {field:?} in {value}"));
        assert!(is_kind(v, kind), "field {field:?} should be {kind}, is {v}");
    }
}

fn is_kind(v: &Value, kind: &str) -> bool {
    kind.split('|').any(|k| match k {
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        "datetime" => v.as_str().is_some_and(chrono_like),
        other => panic!("unknown kind {other}"),
    })
}

/// RFC 3339 in UTC, as the seed shows (`2024-01-15T10:30:00Z`).
fn chrono_like(s: &str) -> bool {
    s.len() >= 20 && s.ends_with('Z') && s.as_bytes().get(10) == Some(&b'T')
}
