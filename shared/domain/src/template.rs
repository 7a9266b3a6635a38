//! Personalisation: `{{name}}`, `{{phone}}` and `{{attributes.KEY}}` in a message's text and in
//! a template's parameters are filled from each recipient's contact, and `{{name|there}}` gives
//! a fallback for a contact without that value. A message is checked when it is saved (an
//! unknown or unclosed placeholder is refused), filled when its recipient is known, and never
//! sent with a placeholder left in it: a recipient without a value and no fallback is refused
//! (a single send) or skipped with the reason (a campaign delivery).

use std::fmt;

use serde_json::Value;

/// How a template is named to people (a campaign's pause reason, a log line): `name
/// (language)`, or "of the campaign" when the message does not say which.
pub fn label(template: Option<(&str, &str)>) -> String {
    match template {
        Some((name, language)) => format!("{name} ({language})"),
        None => "of the campaign".to_string(),
    }
}

/// What a placeholder can name.
pub struct ContactFields<'a> {
    pub name: &'a str,
    pub phone: &'a str,
    pub attributes: &'a Value,
}

impl ContactFields<'_> {
    fn lookup(&self, field: &Field) -> Option<String> {
        let value = match field {
            Field::Name => self.name.to_string(),
            Field::Phone => self.phone.to_string(),
            Field::Attribute(key) => match self.attributes.get(key)? {
                Value::String(s) => s.clone(),
                Value::Null => return None,
                other => other.to_string(),
            },
        };
        (!value.trim().is_empty()).then_some(value)
    }
}

/// A contact field a placeholder names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    Name,
    Phone,
    Attribute(String),
}

impl Field {
    fn parse(key: &str) -> Option<Field> {
        match key {
            "name" => Some(Field::Name),
            "phone" => Some(Field::Phone),
            _ => {
                let attr = key.strip_prefix("attributes.")?.trim();
                (!attr.is_empty()).then(|| Field::Attribute(attr.to_string()))
            }
        }
    }
}

/// Why a message cannot be personalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceholderError {
    /// `{{nmae}}`: not a field a contact has.
    Unknown(String),
    /// `{{name` without its `}}`.
    Unclosed(String),
    /// The recipient has no value for it and it gives no fallback.
    Missing(String),
}

impl fmt::Display for PlaceholderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlaceholderError::Unknown(p) => write!(
                f,
                "placeholder {p} cannot be filled: use {{{{name}}}}, {{{{phone}}}} or {{{{attributes.KEY}}}}, with a fallback after | if you like ({{{{name|there}}}})"
            ),
            PlaceholderError::Unclosed(p) => {
                write!(f, "placeholder {p} is not closed with }}}}")
            }
            PlaceholderError::Missing(p) => write!(
                f,
                "the contact has no value for {p} and it gives no fallback (write it as {}|...}}}})",
                p.trim_end_matches("}}")
            ),
        }
    }
}

impl std::error::Error for PlaceholderError {}

/// One `{{...}}` of a text, as written.
struct Placeholder<'a> {
    raw: &'a str,
    field: Option<Field>,
    fallback: Option<&'a str>,
}

/// Splits `text` into literal parts and placeholders; `Err` for an unclosed one.
fn pieces(text: &str) -> Result<Vec<Result<&str, Placeholder<'_>>>, PlaceholderError> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push(Ok(&rest[..start]));
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            let shown: String = rest[start..].chars().take(40).collect();
            return Err(PlaceholderError::Unclosed(shown));
        };
        let inner = &after[..end];
        let (key, fallback) = match inner.split_once('|') {
            Some((key, fallback)) => (key.trim(), Some(fallback.trim())),
            None => (inner.trim(), None),
        };
        out.push(Err(Placeholder {
            raw: &rest[start..start + 2 + end + 2],
            field: Field::parse(key),
            fallback,
        }));
        rest = &after[end + 2..];
    }
    out.push(Ok(rest));
    Ok(out)
}

/// Refuses a text with an unknown or unclosed placeholder; says nothing about values.
pub fn check_text(text: &str) -> Result<(), PlaceholderError> {
    if !text.contains("{{") {
        return Ok(());
    }
    for piece in pieces(text)? {
        if let Err(p) = piece {
            if p.field.is_none() {
                return Err(PlaceholderError::Unknown(p.raw.to_string()));
            }
        }
    }
    Ok(())
}

/// `check_text` for every string inside a template's components.
pub fn check(components: &Value) -> Result<(), PlaceholderError> {
    match components {
        Value::String(s) => check_text(s),
        Value::Array(items) => items.iter().try_for_each(check),
        Value::Object(map) => map.values().try_for_each(check),
        _ => Ok(()),
    }
}

/// Whether a text names a contact field (and so needs its recipient to be sent).
pub fn has_placeholders(text: &str) -> bool {
    text.contains("{{")
        && pieces(text).is_ok_and(|p| {
            p.iter()
                .any(|piece| matches!(piece, Err(p) if p.field.is_some()))
        })
}

/// `has_placeholders` for any string inside a JSON value.
pub fn value_has_placeholders(value: &Value) -> bool {
    match value {
        Value::String(s) => has_placeholders(s),
        Value::Array(items) => items.iter().any(value_has_placeholders),
        Value::Object(map) => map.values().any(value_has_placeholders),
        _ => false,
    }
}

/// The text as this recipient will read it. An unknown placeholder or an unclosed `{{` is
/// left as written (it was refused when the message was saved, so it can only be a value that
/// itself looks like one); a field the contact lacks takes its fallback, or is an error.
pub fn fill_text(text: &str, fields: &ContactFields<'_>) -> Result<String, PlaceholderError> {
    if !text.contains("{{") {
        return Ok(text.to_string());
    }
    let Ok(pieces) = pieces(text) else {
        return Ok(text.to_string());
    };
    let mut out = String::with_capacity(text.len() + 16);
    for piece in pieces {
        match piece {
            Ok(literal) => out.push_str(literal),
            Err(Placeholder {
                raw, field: None, ..
            }) => out.push_str(raw),
            Err(Placeholder {
                raw,
                field: Some(field),
                fallback,
            }) => match (fields.lookup(&field), fallback) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(fallback)) if !fallback.is_empty() => out.push_str(fallback),
                (None, _) => return Err(PlaceholderError::Missing(raw.to_string())),
            },
        }
    }
    Ok(out)
}

/// A copy of `components` with every string filled for this recipient.
pub fn fill(components: &Value, fields: &ContactFields<'_>) -> Result<Value, PlaceholderError> {
    Ok(match components {
        Value::String(s) => Value::String(fill_text(s, fields)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| fill(v, fields))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), fill(v, fields)?)))
                .collect::<Result<_, PlaceholderError>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ana(attributes: &Value) -> ContactFields<'_> {
        ContactFields {
            name: "Ana",
            phone: "14155550123",
            attributes,
        }
    }

    #[test]
    fn fills_name_phone_and_attributes() {
        let attributes = json!({"clinic": "Pune", "visits": 3});
        let components = json!([{"type": "body", "parameters": [
            {"type": "text", "text": "Hi {{name}}"},
            {"type": "text", "text": "{{ attributes.clinic }} visit #{{attributes.visits}}"},
            {"type": "text", "text": "{{attributes.missing|soon}}|{{phone}}"}
        ]}]);
        let filled = fill(&components, &ana(&attributes)).expect("filled");
        let p = &filled[0]["parameters"];
        assert_eq!(p[0]["text"], "Hi Ana");
        assert_eq!(p[1]["text"], "Pune visit #3");
        assert_eq!(p[2]["text"], "soon|14155550123");
    }

    #[test]
    fn free_text_is_personalised_with_fallbacks() {
        let none = json!({});
        let nameless = ContactFields {
            name: "  ",
            phone: "919800000001",
            attributes: &none,
        };
        let text = "Namaste {{name|there}}! Your number is {{ phone }}.";
        assert_eq!(
            fill_text(text, &ana(&none)).expect("filled"),
            "Namaste Ana! Your number is 14155550123."
        );
        assert_eq!(
            fill_text(text, &nameless).expect("filled"),
            "Namaste there! Your number is 919800000001."
        );
        assert_eq!(
            fill_text("Namaste {{name}}!", &nameless),
            Err(PlaceholderError::Missing("{{name}}".into()))
        );
        assert_eq!(
            fill_text("Hi {{ attributes.city }}", &nameless),
            Err(PlaceholderError::Missing("{{ attributes.city }}".into()))
        );
        assert_eq!(
            fill_text("no placeholders", &nameless).expect("same"),
            "no placeholders"
        );
    }

    #[test]
    fn unknown_and_unclosed_placeholders_are_refused_when_saved() {
        assert_eq!(check_text("Hi {{name}} and {{phone|x}}"), Ok(()));
        assert_eq!(
            check_text("Hi {{nmae}}"),
            Err(PlaceholderError::Unknown("{{nmae}}".into()))
        );
        assert_eq!(
            check_text("Hi {{attributes.}}"),
            Err(PlaceholderError::Unknown("{{attributes.}}".into()))
        );
        assert!(matches!(
            check_text("Hi {{name"),
            Err(PlaceholderError::Unclosed(_))
        ));
        assert!(check(&json!([{"parameters": [{"text": "{{bad}}"}]}])).is_err());
        let message = PlaceholderError::Unknown("{{nmae}}".into()).to_string();
        assert!(
            message.contains("{{nmae}}") && message.contains("{{name}}"),
            "{message}"
        );
    }

    #[test]
    fn a_value_that_looks_like_a_placeholder_is_sent_as_written() {
        let none = json!({});
        let odd = ContactFields {
            name: "{{weird}}",
            phone: "1",
            attributes: &none,
        };
        let once = fill_text("Hi {{name}}", &odd).expect("filled");
        assert_eq!(once, "Hi {{weird}}");
        assert!(!has_placeholders(&once));
        assert_eq!(fill_text(&once, &odd).expect("again"), "Hi {{weird}}");
        assert!(has_placeholders("Hi {{ name | you }}"));
        assert!(value_has_placeholders(&json!({"a": ["{{phone}}"]})));
    }
}
