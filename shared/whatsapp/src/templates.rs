//! Message templates as Meta lists them (`GET /{WABA-ID}/message_templates`) and as a send
//! names them: how many variables a template's header and body have, and how many a send's
//! `components` fill, so a mismatch is refused before anything is queued instead of failing
//! every recipient with 132000.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One template of a business account, as Meta's list reports it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TemplateInfo {
    #[serde(default)]
    pub id: String,
    pub name: String,
    pub language: String,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality_score: Option<QualityScore>,
    #[serde(default)]
    pub components: Value,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct QualityScore {
    #[serde(default)]
    pub score: String,
}

/// One page of Meta's list.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TemplatePage {
    #[serde(default)]
    pub data: Vec<TemplateInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paging: Option<Paging>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Paging {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursors: Option<Cursors>,
    /// The next page's whole URL; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Cursors {
    #[serde(default)]
    pub before: String,
    #[serde(default)]
    pub after: String,
}

impl TemplateInfo {
    /// Variables in the header's text (a media header takes one media parameter instead).
    pub fn header_params(&self) -> usize {
        component(&self.components, "HEADER").map_or(0, |h| {
            match h.get("format").and_then(Value::as_str) {
                Some(f) if !f.eq_ignore_ascii_case("TEXT") => 1,
                _ => variables(h.get("text").and_then(Value::as_str).unwrap_or_default()),
            }
        })
    }

    /// Variables in the body's text.
    pub fn body_params(&self) -> usize {
        component(&self.components, "BODY").map_or(0, |b| {
            variables(b.get("text").and_then(Value::as_str).unwrap_or_default())
        })
    }

    /// The body's text, as a preview shows it.
    pub fn body_text(&self) -> String {
        component(&self.components, "BODY")
            .and_then(|b| b.get("text").and_then(Value::as_str))
            .unwrap_or_default()
            .to_string()
    }

    pub fn quality(&self) -> Option<String> {
        self.quality_score
            .as_ref()
            .map(|q| q.score.clone())
            .filter(|s| !s.is_empty())
    }
}

/// The component of `kind` (`HEADER`, `BODY`, ...) of a template or a send, case ignored.
pub fn component<'a>(components: &'a Value, kind: &str) -> Option<&'a Value> {
    components.as_array()?.iter().find(|c| {
        c.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case(kind))
    })
}

/// The distinct `{{1}}` / `{{first_name}}` variables of a template text.
pub fn variables(text: &str) -> usize {
    let mut seen: Vec<&str> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let name = after[..end].trim();
        if !name.is_empty() && !seen.contains(&name) {
            seen.push(name);
        }
        rest = &after[end + 2..];
    }
    seen.len()
}

/// How many parameters a send's `components` give the component of `kind`.
pub fn given_params(components: Option<&Value>, kind: &str) -> usize {
    components
        .and_then(|c| component(c, kind))
        .and_then(|c| c.get("parameters"))
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_the_variables_meta_would() {
        let t: TemplateInfo = serde_json::from_value(json!({
            "name": "visit", "language": "en_US", "status": "APPROVED", "category": "UTILITY",
            "id": "1", "quality_score": {"score": "GREEN"},
            "components": [
                {"type": "HEADER", "format": "TEXT", "text": "Hi {{1}}"},
                {"type": "BODY", "text": "See you {{1}} at {{2}}, {{1}}."},
                {"type": "FOOTER", "text": "Clinic"}
            ]
        }))
        .unwrap();
        assert_eq!((t.header_params(), t.body_params()), (1, 2));
        assert_eq!(t.quality().as_deref(), Some("GREEN"));
        let image: TemplateInfo = serde_json::from_value(json!({
            "name": "x", "language": "en", "components": [{"type": "HEADER", "format": "IMAGE"},
            {"type": "BODY", "text": "Named {{first_name}} and {{ day }}"}]
        }))
        .unwrap();
        assert_eq!((image.header_params(), image.body_params()), (1, 2));
        let send = json!([{"type": "body", "parameters": [{"type": "text", "text": "a"}]}]);
        assert_eq!(given_params(Some(&send), "BODY"), 1);
        assert_eq!(given_params(Some(&send), "HEADER"), 0);
        assert_eq!(given_params(None, "BODY"), 0);
    }
}
