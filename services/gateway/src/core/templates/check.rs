//! The check a send or campaign naming a template passes, and the text the history shows.

use heydoc_domain::codes;
use heydoc_store::templates::{self as store, Template};
use heydoc_whatsapp::templates::given_params;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

use super::{waba_of, TemplateSpec, APPROVED};

/// A send or campaign from `number` naming `spec`: refused (422) when the account's synced
/// catalog does not have it approved in that language with that many parameters. An account
/// never synced is not checked (Meta's answer still pauses a campaign whose template fails).
pub async fn check(
    state: &AppState,
    number: Option<&str>,
    spec: &TemplateSpec,
) -> ApiResult<Option<Template>> {
    let waba_id = waba_of(state, number).await?;
    let synced = store::catalog(&state.db, &waba_id)
        .await?
        .is_some_and(|c| c.synced_at.is_some());
    if !synced {
        return Ok(None);
    }
    let name = spec.name.trim();
    let language = spec.language.trim();
    let Some(found) = store::find(&state.db, &waba_id, name, language).await? else {
        let languages: Vec<String> = store::list(&state.db, &waba_id, None)
            .await?
            .into_iter()
            .filter(|t| t.name == name)
            .map(|t| t.language)
            .collect();
        return Err(ApiError::field(
            "template",
            codes::TEMPLATE_UNUSABLE,
            if languages.is_empty() {
                format!("template.name: {name:?} is not a template of this WhatsApp Business Account (see GET /api/templates)")
            } else {
                format!(
                    "template.language: {name:?} has no {language:?} version; it has {}",
                    languages.join(", ")
                )
            },
        ));
    };
    if found.status != APPROVED {
        return Err(ApiError::field(
            "template",
            codes::TEMPLATE_UNUSABLE,
            format!(
                "template.name: {name:?} ({language}) is {} at Meta{} and cannot be sent",
                found.status,
                found
                    .reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ),
        ));
    }
    for (kind, wanted) in [("BODY", found.body_params), ("HEADER", found.header_params)] {
        let given = given_params(spec.components.as_ref(), kind);
        if i32::try_from(given).unwrap_or(i32::MAX) != wanted {
            return Err(ApiError::field("template", codes::TEMPLATE_UNUSABLE, format!(
                "template.components: {name:?} ({language}) takes {wanted} {} parameter{}; {given} given",
                kind.to_ascii_lowercase(),
                if wanted == 1 { "" } else { "s" }
            )));
        }
    }
    Ok(Some(found))
}

/// What the patient reads of a template send: the body with the send's parameters in place
/// of its variables (`{{1}}` is the first), and the header's text above it. The chat records
/// this as the message.
pub fn rendered(template: &Template, spec: &TemplateSpec) -> String {
    // One pass over the text: `{{1}}` is the first parameter, `{{name}}` the one with that
    // `parameter_name`; a value is never read again for variables.
    let fill = |kind: &str, text: &str| -> String {
        let given: Vec<(String, Option<String>)> = spec
            .components
            .as_ref()
            .and_then(|c| heydoc_whatsapp::templates::component(c, kind))
            .and_then(|c| c.get("parameters"))
            .and_then(|p| p.as_array())
            .map(|ps| {
                ps.iter()
                    .map(|p| {
                        let text = p.get("text").and_then(|t| t.as_str()).unwrap_or_default();
                        let name = p.get("parameter_name").and_then(|n| n.as_str());
                        (text.to_string(), name.map(str::to_string))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let Some(len) = rest[start + 2..].find("}}") else {
                break;
            };
            out.push_str(&rest[..start]);
            let key = rest[start + 2..start + 2 + len].trim();
            let value = match key.parse::<usize>() {
                Ok(n) if n >= 1 => given.get(n - 1).map(|(t, _)| t.as_str()),
                _ => given
                    .iter()
                    .find(|(_, name)| name.as_deref() == Some(key))
                    .map(|(t, _)| t.as_str()),
            };
            match value {
                Some(v) => out.push_str(v),
                None => out.push_str(&rest[start..start + 2 + len + 2]),
            }
            rest = &rest[start + 2 + len + 2..];
        }
        out.push_str(rest);
        out
    };
    let text_of = |kind: &str| {
        heydoc_whatsapp::templates::component(&template.components, kind)
            .and_then(|c| c.get("text"))
            .and_then(|t| t.as_str())
            .map(|t| fill(kind, t))
    };
    let mut parts = Vec::new();
    if let Some(header) = text_of("HEADER") {
        parts.push(header);
    }
    parts.push(text_of("BODY").unwrap_or_default());
    if let Some(footer) = text_of("FOOTER") {
        parts.push(footer);
    }
    parts.retain(|p| !p.is_empty());
    parts.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;

    fn template(components: serde_json::Value) -> Template {
        Template {
            id: 1,
            waba_id: "waba".into(),
            meta_id: None,
            name: "visit".into(),
            language: "en_US".into(),
            category: "UTILITY".into(),
            status: APPROVED.into(),
            quality: None,
            reason: None,
            components,
            header_params: 0,
            body_params: 2,
            synced_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn spec(parameters: serde_json::Value) -> TemplateSpec {
        serde_json::from_value(json!({"name": "visit", "language": "en_US",
            "components": [{"type": "body", "parameters": parameters}]}))
        .expect("spec")
    }

    #[test]
    fn the_history_shows_what_the_patient_reads() {
        let t = template(json!([
            {"type": "HEADER", "format": "TEXT", "text": "Clinic"},
            {"type": "BODY", "text": "Hi {{1}}, see you {{2}}. {{3}} stays."},
        ]));
        let text = rendered(
            &t,
            &spec(
                json!([{"type": "text", "text": "Ana {{2}}"}, {"type": "text", "text": "Monday"}]),
            ),
        );
        // A value is not read again for variables; a variable without a value stays.
        assert_eq!(text, "Clinic\nHi Ana {{2}}, see you Monday. {{3}} stays.");
        let named = template(json!([{"type": "BODY", "text": "Hello {{first_name}}"}]));
        let text = rendered(
            &named,
            &spec(json!([{"type": "text", "parameter_name": "first_name", "text": "Ravi"}])),
        );
        assert_eq!(text, "Hello Ravi");
    }
}
