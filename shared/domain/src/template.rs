//! Per-recipient template parameters: `{{name}}`, `{{phone}}` and `{{attributes.KEY}}` in a
//! template's text parameters are filled from the contact when the message is sent.

use serde_json::Value;

/// What a placeholder can name.
pub struct ContactFields<'a> {
    pub name: &'a str,
    pub phone: &'a str,
    pub attributes: &'a Value,
}

impl ContactFields<'_> {
    fn lookup(&self, key: &str) -> Option<String> {
        match key {
            "name" => Some(self.name.to_string()),
            "phone" => Some(self.phone.to_string()),
            _ => {
                let attr = key.strip_prefix("attributes.")?;
                match self.attributes.get(attr)? {
                    Value::String(s) => Some(s.clone()),
                    Value::Null => None,
                    other => Some(other.to_string()),
                }
            }
        }
    }
}

/// A copy of `components` with every string's placeholders filled. An unknown placeholder, or
/// an attribute the contact lacks, becomes empty.
pub fn fill(components: &Value, fields: &ContactFields<'_>) -> Value {
    match components {
        Value::String(s) if s.contains("{{") => Value::String(fill_str(s, fields)),
        Value::Array(items) => Value::Array(items.iter().map(|v| fill(v, fields)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), fill(v, fields)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn fill_str(s: &str, fields: &ContactFields<'_>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let key = after[..end].trim();
                out.push_str(&fields.lookup(key).unwrap_or_default());
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fills_name_phone_and_attributes() {
        let attributes = json!({"clinic": "Pune", "visits": 3});
        let fields = ContactFields {
            name: "Ana",
            phone: "14155550123",
            attributes: &attributes,
        };
        let components = json!([{"type": "body", "parameters": [
            {"type": "text", "text": "Hi {{name}}"},
            {"type": "text", "text": "{{ attributes.clinic }} visit #{{attributes.visits}}"},
            {"type": "text", "text": "{{attributes.missing}}|{{phone}}|{{unclosed"}
        ]}]);
        let filled = fill(&components, &fields);
        let p = &filled[0]["parameters"];
        assert_eq!(p[0]["text"], "Hi Ana");
        assert_eq!(p[1]["text"], "Pune visit #3");
        assert_eq!(p[2]["text"], "|14155550123|{{unclosed");
    }
}
