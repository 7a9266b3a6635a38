//! The sandbox's HTTP side: the Cloud API's send endpoint with Meta's answers and errors,
//! and the knobs, stats and inbound injection a test or a trial drives it with.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::payload::{ErrorData, ErrorResponse, GraphError};
use crate::webhook::{ChangeValue, Metadata};

use super::*;

pub(super) fn graph_error(status: StatusCode, code: i64, message: &str, details: &str) -> Response {
    let body = ErrorResponse {
        error: GraphError {
            message: message.to_string(),
            kind: "OAuthException".into(),
            code,
            error_subcode: None,
            error_data: Some(ErrorData {
                messaging_product: Some("whatsapp".into()),
                details: details.to_string(),
            }),
            fbtrace_id: format!("SANDBOX{}", uuid::Uuid::new_v4().simple()),
        },
    };
    (status, Json(body)).into_response()
}

/// Meta's title and details for an error code, as its answers and status webhooks carry them.
pub(super) fn error_text(code: i64) -> (&'static str, &'static str) {
    match code {
        130429 => ("Rate limit hit", "Cloud API message throughput has been reached."),
        131056 => ("(Business Account, Consumer Account) pair rate limit hit", "Too many messages sent from the sender phone number to the same recipient phone number in a short period of time."),
        131047 => ("Re-engagement message", "More than 24 hours have passed since the recipient last replied to the sender number."),
        131050 => ("User has stopped marketing messages", "Unable to deliver the marketing message. The user has chosen to stop receiving marketing messages."),
        131026 => ("Message undeliverable", "Unable to deliver message."),
        190 => ("Invalid OAuth access token - Cannot parse access token", ""),
        131042 => ("Business eligibility payment issue", "Message failed to send because there were one or more errors related to your payment method."),
        368 => ("Temporarily blocked for policies violations", "The WhatsApp Business Account associated with the app has been restricted or disabled for violating a platform policy."),
        132000 => ("Number of parameters does not match the expected number of params", "The number of variable parameter values included in the request did not match the number of variable parameters defined in the template."),
        132001 => ("Template name does not exist in the translation", "The template does not exist in the specified language or the template has not been approved."),
        132015 => ("Template is Paused", "Template is paused due to low quality so it cannot be sent in a template message."),
        131053 => ("Media upload error", "Unable to upload the media used in the message."),
        132016 => ("Template is Disabled", "Template has been paused too many times due to low quality and is now permanently disabled."),
        100 => ("Invalid parameter", "Parameter value is not valid"),
        _ => ("Sandbox error", "forced by the sandbox's error_rates"),
    }
}

pub(super) fn error_for_code(code: i64) -> Response {
    let status = match code {
        190 => StatusCode::UNAUTHORIZED,
        c @ 500..=599 => {
            return (
                StatusCode::from_u16(c as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "upstream failure",
            )
                .into_response()
        }
        _ => StatusCode::BAD_REQUEST,
    };
    let (title, details) = error_text(code);
    graph_error(status, code, title, details)
}

/// Whether the request carries a bearer token (the sandbox takes any).
pub(super) fn bearer(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer ") && v.len() > 7)
}

pub(super) async fn send_message(
    State(sandbox): State<Sandbox>,
    Path((_version, phone_number_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(tp) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
        sandbox.note_traceparent(tp);
    }
    // Every call that reached the API, whatever becomes of it (a sender killed mid-call left
    // it here, or never sent it).
    if let Some(cb) = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|b| b["biz_opaque_callback_data"].as_str().map(str::to_string))
    {
        *lock(&sandbox.inner.stats)
            .stats
            .arrived
            .entry(cb)
            .or_default() += 1;
    }
    let knobs = sandbox.config().knobs;
    if knobs.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(knobs.latency_ms)).await;
    }
    if !bearer(&headers) {
        sandbox.count_error("190");
        return error_for_code(190);
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        sandbox.count_error("100");
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            "Invalid parameter",
            "the body is not JSON",
        );
    };
    if body["messaging_product"] != "whatsapp" {
        sandbox.count_error("100");
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            "Invalid parameter",
            "messaging_product must be whatsapp",
        );
    }
    // Read receipts for inbound messages.
    if body["status"] == "read" {
        if body["message_id"].as_str().unwrap_or_default().is_empty() {
            sandbox.count_error("100");
            return graph_error(
                StatusCode::BAD_REQUEST,
                100,
                "Invalid parameter",
                "message_id is required",
            );
        }
        let mut c = lock(&sandbox.inner.stats);
        c.stats.read_receipts += 1;
        if body.get("typing_indicator").is_some() {
            c.stats.typing_indicators += 1;
        }
        return Json(json!({"success": true})).into_response();
    }
    // A phone in `to`, or a business-scoped user id in `recipient`.
    let to = body["to"]
        .as_str()
        .or(body["recipient"].as_str())
        .unwrap_or_default()
        .to_string();
    let kind = body["type"].as_str().unwrap_or("text").to_string();
    let usable = (!to.is_empty() && to.bytes().all(|b| b.is_ascii_digit()))
        || crate::payload::is_user_id(&to);
    if !usable {
        sandbox.count_error("100");
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            "Invalid parameter",
            "to must be a phone number",
        );
    }
    if kind == "text" {
        let text = body["text"]["body"].as_str().unwrap_or_default();
        if text.is_empty() || text.chars().count() > 4096 {
            sandbox.count_error("100");
            return graph_error(
                StatusCode::BAD_REQUEST,
                100,
                "Invalid parameter",
                "text.body must be 1 to 4096 characters",
            );
        }
    }
    let callback = body["biz_opaque_callback_data"]
        .as_str()
        .map(str::to_string);

    if sandbox.over_throughput(&phone_number_id, knobs.max_mps) {
        sandbox.count_error("130429");
        return error_for_code(130429);
    }
    // Forced failures, in a stable order so that rates add up.
    let roll: f64 = rand::thread_rng().gen();
    let mut threshold = 0.0;
    for (code, rate) in &knobs.error_rates {
        threshold += rate;
        if roll < threshold {
            sandbox.count_error(code);
            return error_for_code(code.parse().unwrap_or(131000));
        }
    }
    if knobs.enforce_window && kind != "template" && !sandbox.in_window(&to) {
        sandbox.count_error("131047");
        return error_for_code(131047);
    }
    // A file sent by id must be one uploaded first.
    let media_id = body[kind.as_str()]["id"].as_str().map(str::to_string);
    if let Some(id) = &media_id {
        if !sandbox.has_media(id) {
            sandbox.count_error("131053");
            return error_for_code(131053);
        }
    }
    let mut category = None;
    if kind == "template" {
        match sandbox.check_template(&body["template"], knobs.enforce_templates) {
            Ok(c) => category = c,
            Err(code) => {
                sandbox.count_error(&code.to_string());
                return error_for_code(code);
            }
        }
    }
    let pricing = catalog::pricing(category.as_deref(), sandbox.in_window(&to));
    let wamid = format!("wamid.SBX{}", uuid::Uuid::new_v4().simple());
    // Accepted now, reported failed by status webhook later (as Meta does for an account's
    // payment or eligibility problem): a separate roll, in a stable order.
    let late: f64 = rand::thread_rng().gen();
    let mut sum = 0.0;
    let fails_later = knobs.status_failure_rates.iter().find_map(|(code, rate)| {
        sum += rate;
        (late < sum).then(|| code.parse::<i64>().unwrap_or(131000))
    });
    sandbox.count_accepted(&phone_number_id, &to, callback.as_deref());
    if let Some(text) = body["text"]["body"].as_str() {
        lock(&sandbox.inner.stats)
            .stats
            .texts
            .insert(to.clone(), text.to_string());
    }
    if let Some(id) = media_id {
        lock(&sandbox.inner.stats)
            .stats
            .media_sent
            .insert(to.clone(), id);
    }
    if kind == "template" {
        let params: Vec<String> = body["template"]["components"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["parameters"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| p["text"].as_str().map(str::to_string))
            .collect();
        lock(&sandbox.inner.stats)
            .stats
            .template_params
            .insert(to.clone(), params);
    }
    if roll < threshold + knobs.timeout_rate {
        // Accepted, but the answer never comes: the caller's timeout fires first.
        tokio::time::sleep(Duration::from_millis(knobs.timeout_hold_ms)).await;
    }
    sandbox.spawn_statuses(wamid.clone(), to.clone(), callback, pricing, fails_later);
    // Taken, and then the answer lost behind a bodyless error.
    let mut lost = threshold + knobs.timeout_rate;
    for (status, rate) in &knobs.lost_answer_rates {
        lost += rate;
        if roll < lost {
            let status = status
                .parse::<u16>()
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::BAD_GATEWAY);
            return status.into_response();
        }
    }
    // Meta answers a phone with its WhatsApp id, a business-scoped user id with itself.
    let contact = if body["recipient"].is_string() && body["to"].is_null() {
        json!({"input": to, "user_id": to})
    } else {
        json!({"input": to, "wa_id": to})
    };
    Json(json!({
        "messaging_product": "whatsapp",
        "contacts": [contact],
        "messages": [{"id": wamid, "message_status": "accepted"}]
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct InboundRequest {
    /// The user's phone; may be empty for a user known only by `user_id`.
    #[serde(default)]
    from: String,
    /// The business-scoped user id (and username) of a user who adopted a username.
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    name: Option<String>,
    /// The text; with `media`, its caption.
    #[serde(default)]
    text: String,
    /// A file the user sends instead of a text.
    #[serde(default)]
    media: Option<account::InboundFile>,
    /// The business number written to (its phone number id); default: the sandbox's own.
    #[serde(default)]
    to: Option<String>,
}

/// Pretends a user wrote to the business: posts Meta's inbound webhook and opens the window.
pub(super) async fn inject_inbound(
    State(sandbox): State<Sandbox>,
    Json(req): Json<InboundRequest>,
) -> Response {
    let user_id = req.user_id.clone().filter(|u| !u.is_empty());
    if user_id
        .as_deref()
        .is_some_and(|u| !crate::payload::is_user_id(u))
    {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": "user_id must look like US.13491208655302741918"})),
        )
            .into_response();
    }
    let digits = !req.from.is_empty() && req.from.bytes().all(|b| b.is_ascii_digit());
    let by_user_id = req.from.is_empty() && user_id.is_some();
    if !(digits || by_user_id) {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": "from must be digits (or empty, with a user_id)"})),
        )
            .into_response();
    }
    // The window opens for whatever a reply will be addressed to.
    for who in [
        Some(req.from.clone()).filter(|f| !f.is_empty()),
        user_id.clone(),
    ]
    .into_iter()
    .flatten()
    {
        lock(&sandbox.inner.inbound).insert(who, Instant::now());
    }
    let wamid = format!("wamid.SBXIN{}", uuid::Uuid::new_v4().simple());
    let metadata = match &req.to {
        Some(number) => Metadata::new(number, number),
        None => sandbox.metadata(),
    };
    let name = req.name.as_deref().unwrap_or_default();
    let value = match &req.media {
        Some(file) => match sandbox.keep_inbound_media(file, &req.text) {
            Ok((kind, media)) => ChangeValue::inbound_media(
                metadata,
                &req.from,
                name,
                &wamid,
                &kind,
                media,
                Utc::now().timestamp(),
            ),
            Err(why) => {
                return (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Json(json!({"error": why})),
                )
                    .into_response()
            }
        },
        None if req.text.is_empty() => {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"error": "give a text or a media file"})),
            )
                .into_response()
        }
        None => ChangeValue::inbound_text(
            metadata,
            &req.from,
            name,
            &wamid,
            &req.text,
            Utc::now().timestamp(),
        ),
    };
    let value = with_user_id(value, user_id.as_deref(), req.username.as_deref());
    sandbox.post_webhook(value).await;
    Json(json!({"wamid": wamid})).into_response()
}

/// Adds a username user's business-scoped id (and username) to an inbound change, as Meta's
/// 2026 webhooks carry them; without a phone, `from` and `wa_id` are left out.
fn with_user_id(
    mut value: ChangeValue,
    user_id: Option<&str>,
    username: Option<&str>,
) -> ChangeValue {
    let Some(user_id) = user_id else {
        return value;
    };
    for m in &mut value.messages {
        m["from_user_id"] = json!(user_id);
        if m["from"].as_str().is_some_and(str::is_empty) {
            if let Some(obj) = m.as_object_mut() {
                obj.remove("from");
            }
        }
    }
    for c in &mut value.contacts {
        c.user_id = Some(user_id.to_string());
        if let Some(p) = c.profile.as_mut() {
            p.username = username.map(str::to_string);
        }
    }
    value
}

pub(super) async fn stats(State(sandbox): State<Sandbox>) -> Json<SandboxStats> {
    Json(sandbox.stats())
}

pub(super) async fn get_knobs(State(sandbox): State<Sandbox>) -> Json<SandboxKnobs> {
    Json(sandbox.config().knobs)
}

pub(super) async fn put_knobs(
    State(sandbox): State<Sandbox>,
    Json(knobs): Json<SandboxKnobs>,
) -> Json<SandboxKnobs> {
    sandbox.set_knobs(knobs.clone());
    Json(knobs)
}

pub(super) async fn reset(State(sandbox): State<Sandbox>) -> StatusCode {
    *lock(&sandbox.inner.stats) = Counters::default();
    StatusCode::NO_CONTENT
}
