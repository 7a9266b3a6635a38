//! The sandbox's template catalog: Meta's paged list, the knobs that approve, pause or
//! disable a template (each posting Meta's `message_template_status_update` webhook) or move
//! its quality, the check a template send goes through, and the `pricing` its statuses carry.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{lock, Sandbox, SANDBOX_WABA};
use crate::templates::{self, QualityScore, TemplateInfo};
use crate::webhook::{ChangeValue, Envelope, TemplateQualityUpdate, TemplateStatusUpdate};

fn template(name: &str, category: &str, header: Option<&str>, body: &str) -> TemplateInfo {
    let mut components = Vec::new();
    if let Some(h) = header {
        components.push(json!({"type": "HEADER", "format": "TEXT", "text": h}));
    }
    components.push(json!({"type": "BODY", "text": body}));
    components.push(json!({"type": "FOOTER", "text": "Reply STOP to opt out"}));
    TemplateInfo {
        id: format!("{}", 1_000_000 + name.len() * 7919 + body.len()),
        name: name.into(),
        language: "en_US".into(),
        category: category.into(),
        status: "APPROVED".into(),
        quality_score: Some(QualityScore {
            score: "GREEN".into(),
        }),
        components: Value::Array(components),
    }
}

/// What a new sandbox's account has approved.
pub(super) fn starter_templates() -> Vec<TemplateInfo> {
    vec![
        template("hello_world", "UTILITY", Some("Hello World"), "Welcome and congratulations!! This message demonstrates your ability to send a WhatsApp message notification from the Cloud API, hosted by Meta."),
        template("appointment_reminder", "UTILITY", None, "Hi {{1}}, this is a reminder of your appointment on {{2}}. Reply to this message if you need to change it."),
        template("visit_reminder", "UTILITY", None, "Hello {{1}}, we look forward to seeing you at {{2}}."),
        template("clinic_hours", "UTILITY", None, "Our opening hours have changed. Reply to this message to ask us anything."),
        template("health_checkup_offer", "MARKETING", Some("{{1}}"), "Hi {{1}}, book a health check-up this month and get {{2}} off."),
        template("login_code", "AUTHENTICATION", None, "{{1}} is your verification code."),
    ]
}

impl Sandbox {
    /// The catalog's verdict on a template send: its category, or Meta's error code.
    pub(super) fn check_template(
        &self,
        sent: &Value,
        enforce: bool,
    ) -> Result<Option<String>, i64> {
        let name = sent["name"].as_str().unwrap_or_default();
        let language = sent["language"]["code"].as_str().unwrap_or_default();
        let found = lock(&self.inner.templates)
            .iter()
            .find(|t| t.name == name && t.language == language)
            .cloned();
        let Some(t) = found else {
            return if enforce { Err(132001) } else { Ok(None) };
        };
        if enforce {
            match t.status.as_str() {
                "APPROVED" => {}
                "PAUSED" => return Err(132015),
                "DISABLED" => return Err(132016),
                _ => return Err(132001),
            }
            let given = templates::given_params(sent.get("components"), "BODY");
            if given != t.body_params() {
                return Err(132000);
            }
        }
        Ok(Some(t.category.to_ascii_lowercase()))
    }

    fn set_template_status(&self, name: &str, language: &str, status: &str) -> bool {
        let mut all = lock(&self.inner.templates);
        match all
            .iter_mut()
            .find(|t| t.name == name && t.language == language)
        {
            Some(t) => {
                t.status = status.to_string();
                true
            }
            None => false,
        }
    }
}

/// `pricing` as Meta reports it per message since July 2025: marketing and authentication
/// templates are charged per delivery, utility templates only outside the 24-hour window,
/// free-form messages (service) are free.
pub(super) fn pricing(template_category: Option<&str>, in_window: bool) -> Value {
    let (category, kind) = match template_category {
        Some(c @ ("marketing" | "authentication")) => (c, "regular"),
        Some("utility") if in_window => ("utility", "free_customer_service"),
        Some("utility") => ("utility", "regular"),
        Some(_) => ("utility", "regular"),
        None => ("service", "free_customer_service"),
    };
    json!({"billable": kind == "regular", "pricing_model": "PMP", "category": category, "type": kind})
}

#[derive(Debug, Deserialize)]
pub(super) struct ListParams {
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    after: Option<String>,
}

/// `GET /{version}/{waba-id}/message_templates`: Meta's page of `data` with `paging`.
pub(super) async fn list_templates(
    State(sandbox): State<Sandbox>,
    Query(params): Query<ListParams>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if !super::routes::bearer(&headers) {
        return super::routes::error_for_code(190);
    }
    let limit = params.limit.unwrap_or(25).clamp(1, 100);
    let start = match params.after.as_deref() {
        None => 0,
        Some(cursor) => match usize::from_str_radix(cursor, 16) {
            Ok(n) => n,
            Err(_) => {
                return super::routes::graph_error(
                    StatusCode::BAD_REQUEST,
                    100,
                    "Invalid parameter",
                    "after is not a cursor this API returned",
                )
            }
        },
    };
    let all = lock(&sandbox.inner.templates).clone();
    let page: Vec<&TemplateInfo> = all.iter().skip(start).take(limit).collect();
    let end = start + page.len();
    let mut paging =
        json!({"cursors": {"before": format!("{start:x}"), "after": format!("{end:x}")}});
    if end < all.len() {
        let host = headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1");
        paging["next"] = json!(format!(
            "http://{host}{}?limit={limit}&after={end:x}",
            uri.path()
        ));
    }
    Json(json!({"data": page, "paging": paging})).into_response()
}

pub(super) async fn get_templates(State(sandbox): State<Sandbox>) -> Json<Vec<TemplateInfo>> {
    Json(lock(&sandbox.inner.templates).clone())
}

/// Replaces the whole catalog (a test's 250 templates).
pub(super) async fn put_templates(
    State(sandbox): State<Sandbox>,
    Json(templates): Json<Vec<TemplateInfo>>,
) -> StatusCode {
    *lock(&sandbox.inner.templates) = templates;
    StatusCode::NO_CONTENT
}

/// Adds a template, or replaces the one with its name and language.
pub(super) async fn add_template(
    State(sandbox): State<Sandbox>,
    Json(template): Json<TemplateInfo>,
) -> StatusCode {
    let mut all = lock(&sandbox.inner.templates);
    all.retain(|t| !(t.name == template.name && t.language == template.language));
    all.push(template);
    StatusCode::NO_CONTENT
}

#[derive(Debug, Deserialize)]
pub(super) struct StatusChange {
    name: String,
    language: String,
    /// `APPROVED`, `PAUSED`, `DISABLED`, `REJECTED`.
    status: String,
    #[serde(default)]
    reason: Option<String>,
}

/// Meta approves, pauses, disables or rejects a template: the catalog changes and the
/// `message_template_status_update` webhook goes out.
pub(super) async fn set_status(
    State(sandbox): State<Sandbox>,
    Json(change): Json<StatusChange>,
) -> Response {
    let status = change.status.to_ascii_uppercase();
    if !sandbox.set_template_status(&change.name, &change.language, &status) {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such template"})),
        )
            .into_response();
    }
    let mut fields = json!({
        "event": status,
        "message_template_id": 1,
        "message_template_name": change.name,
        "message_template_language": change.language,
        "reason": change.reason.clone().unwrap_or_else(|| "NONE".into()),
    });
    if status == "PAUSED" {
        fields["other_info"] = json!({"title": "FIRST_PAUSE", "description": change.reason.unwrap_or_else(|| "Your template has been paused for 3 hours because of low quality.".into())});
    }
    sandbox
        .post_envelope(Envelope::of_field(
            SANDBOX_WABA,
            TemplateStatusUpdate::FIELD,
            ChangeValue::fields(fields),
        ))
        .await;
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct QualityChange {
    name: String,
    language: String,
    /// `GREEN`, `YELLOW`, `RED`, `UNKNOWN`.
    quality: String,
}

pub(super) async fn set_quality(
    State(sandbox): State<Sandbox>,
    Json(change): Json<QualityChange>,
) -> Response {
    let quality = change.quality.to_ascii_uppercase();
    let previous = {
        let mut all = lock(&sandbox.inner.templates);
        let Some(t) = all
            .iter_mut()
            .find(|t| t.name == change.name && t.language == change.language)
        else {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "no such template"})),
            )
                .into_response();
        };
        let previous = t.quality().unwrap_or_else(|| "UNKNOWN".into());
        t.quality_score = Some(QualityScore {
            score: quality.clone(),
        });
        previous
    };
    sandbox
        .post_envelope(Envelope::of_field(
            SANDBOX_WABA,
            TemplateQualityUpdate::FIELD,
            ChangeValue::fields(json!({
                "previous_quality_score": previous,
                "new_quality_score": quality,
                "message_template_id": 1,
                "message_template_name": change.name,
                "message_template_language": change.language,
            })),
        ))
        .await;
    StatusCode::NO_CONTENT.into_response()
}
