//! Scheduled messages and recurring campaigns: creating, listing, pausing, cancelling.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Extension;

use crate::auth::AuthUser;
use crate::core::audit;
use crate::core::schedules::{
    self, DeliveryOut, DeliveryParams, EstimateOut, EstimateRequest, NewSchedule, PageParams,
    PendingPageParams, PreviewOut, ScheduledDetail, ScheduledOut, StatusChange, TimingRequest,
};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::routes::{Ack, Envelope};
use crate::state::AppState;

/// Scheduled messages, newest first, a page at a time: the next page's cursor is in the
/// `X-Next-Cursor` header (absent on the last page).
#[utoipa::path(
    get, path = "/api/scheduled-messages", operation_id = "listScheduledMessages", tag = "scheduled messages", security(("bearer" = []), ("cookie" = [])),
    params(PageParams),
    responses((status = 200, body = Vec<ScheduledOut>, headers(("X-Next-Cursor" = String, description = "the cursor of the next page, when there is one"))),
              (status = 401, body = ErrorBody))
)]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<PageParams>,
) -> ApiResult<(HeaderMap, axum::Json<Vec<ScheduledOut>>)> {
    Ok(with_cursor(schedules::list(&state, params).await?))
}

/// Scheduled messages still waiting to fire (status `pending`), soonest first, a page at a
/// time (`X-Next-Cursor`).
#[utoipa::path(
    get, path = "/api/scheduled-messages/pending", operation_id = "listPendingScheduledMessages", tag = "scheduled messages", security(("bearer" = []), ("cookie" = [])),
    params(PendingPageParams),
    responses((status = 200, body = Vec<ScheduledOut>, headers(("X-Next-Cursor" = String, description = "the cursor of the next page, when there is one"))),
              (status = 401, body = ErrorBody))
)]
pub async fn pending(
    State(state): State<AppState>,
    Query(params): Query<PendingPageParams>,
) -> ApiResult<(HeaderMap, axum::Json<Vec<ScheduledOut>>)> {
    Ok(with_cursor(schedules::pending(&state, params).await?))
}

fn with_cursor((rows, next): schedules::Page) -> (HeaderMap, axum::Json<Vec<ScheduledOut>>) {
    let mut headers = HeaderMap::new();
    if let Some(v) = next.and_then(|n| axum::http::HeaderValue::from_str(&n).ok()) {
        headers.insert("x-next-cursor", v);
    }
    (headers, axum::Json(rows))
}

/// One scheduled message, with `next_run_at` and per-occurrence progress.
#[utoipa::path(
    get, path = "/api/scheduled-messages/{id}", operation_id = "getScheduledMessage", tag = "scheduled messages", security(("bearer" = []), ("cookie" = [])),
    params(("id" = i32, Path, description = "scheduled message id")),
    responses((status = 200, body = ScheduledDetail), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<i32>,
) -> ApiResult<axum::Json<ScheduledDetail>> {
    Ok(axum::Json(schedules::get(&state, id).await?))
}

/// Per-recipient results of a scheduled message, newest first.
#[utoipa::path(
    get, path = "/api/scheduled-messages/{id}/deliveries", operation_id = "listScheduledMessageDeliveries", tag = "scheduled messages", security(("bearer" = []), ("cookie" = [])),
    params(("id" = i32, Path, description = "scheduled message id"), DeliveryParams),
    responses((status = 200, body = Vec<DeliveryOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn deliveries_of(
    State(state): State<AppState>,
    Path(id): Path<i32>,
    Query(params): Query<DeliveryParams>,
) -> ApiResult<axum::Json<Vec<DeliveryOut>>> {
    Ok(axum::Json(
        schedules::deliveries_of(&state, id, params).await?,
    ))
}

/// Schedules a message, once or recurring.
#[utoipa::path(
    post, path = "/api/scheduled-messages", operation_id = "createScheduledMessage", tag = "scheduled messages", security(("bearer" = []), ("cookie" = [])),
    request_body = NewSchedule,
    responses(
        (status = 201, body = Envelope<ScheduledOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, description = "A tag id in tag_ids, or the number in from, does not exist", body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Json(body): Json<NewSchedule>,
) -> ApiResult<(StatusCode, axum::Json<Envelope<ScheduledOut>>)> {
    let created = schedules::create(&state, &me, body).await?;
    audit::record(
        &state,
        &me,
        audit::action::CAMPAIGN_CREATE,
        created.id.to_string(),
        None,
    )
    .await;
    Ok((
        StatusCode::CREATED,
        axum::Json(Envelope::ok(
            created,
            "Scheduled message created successfully",
        )),
    ))
}

/// What a campaign to this audience would likely cost, who it would skip (opted out,
/// suppressed), and whether it fits the account's messaging limit: before it is saved.
#[utoipa::path(
    post, path = "/api/scheduled-messages/estimate", operation_id = "estimateScheduledMessage", tag = "scheduled messages", security(("bearer" = []), ("cookie" = [])),
    request_body = EstimateRequest,
    responses(
        (status = 200, body = EstimateOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, description = "A tag id in tag_ids, or the number in from, does not exist", body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
    )
)]
pub async fn estimate(
    State(state): State<AppState>,
    Json(body): Json<EstimateRequest>,
) -> ApiResult<axum::Json<EstimateOut>> {
    Ok(axum::Json(schedules::estimate(&state, body).await?))
}

/// Checks a schedule's timing as `POST /api/scheduled-messages` would and answers with its next
/// runs, saving nothing: what the dashboard shows before "Schedule". The rest of a create
/// body may be sent along; it is ignored.
#[utoipa::path(
    post, path = "/api/scheduled-messages/preview", operation_id = "previewScheduledMessage", tag = "scheduled messages", security(("bearer" = []), ("cookie" = [])),
    request_body = TimingRequest,
    responses(
        (status = 200, body = PreviewOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, description = "A tag id in tag_ids, or the number in from, does not exist", body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
    )
)]
pub async fn preview(
    State(state): State<AppState>,
    Json(body): Json<TimingRequest>,
) -> ApiResult<axum::Json<PreviewOut>> {
    Ok(axum::Json(schedules::preview(&state, body).await?))
}

/// Deletes a scheduled message; deliveries already made stay in the chat log, and those not
/// sent yet are skipped ("the campaign was deleted").
#[utoipa::path(
    delete, path = "/api/scheduled-messages/{id}", operation_id = "deleteScheduledMessage", tag = "scheduled messages", security(("bearer" = []), ("cookie" = [])),
    params(("id" = i32, Path, description = "scheduled message id")),
    responses((status = 200, body = Ack), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn delete(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path(id): Path<i32>,
) -> ApiResult<axum::Json<Ack>> {
    schedules::delete(&state, id).await?;
    audit::record(
        &state,
        &me,
        audit::action::CAMPAIGN_DELETE,
        id.to_string(),
        None,
    )
    .await;
    Ok(axum::Json(Ack::new(
        "Scheduled message deleted successfully",
    )))
}

/// Pauses, resumes (`pending`), cancels, or marks a schedule as sent. `sent` (the seed's flow:
/// the client sent the message itself) ends any schedule, recurring ones too: nothing more is
/// sent, and it leaves `/pending`.
#[utoipa::path(
    put, path = "/api/scheduled-messages/{id}/status", operation_id = "updateScheduledMessageStatus", tag = "scheduled messages", security(("bearer" = []), ("cookie" = [])),
    params(("id" = i32, Path, description = "scheduled message id")),
    request_body = StatusChange,
    responses(
        (status = 200, body = Envelope<ScheduledOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
pub async fn update_status(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path(id): Path<i32>,
    Json(body): Json<StatusChange>,
) -> ApiResult<axum::Json<Envelope<ScheduledOut>>> {
    let (out, changed) = schedules::update_status(&state, id, body).await?;
    if let Some(next) = changed {
        let detail = serde_json::json!({"status": next.to_string()});
        audit::record(
            &state,
            &me,
            audit::action::CAMPAIGN_STATUS,
            id.to_string(),
            Some(detail),
        )
        .await;
    }
    let message = match changed {
        Some(next) => format!("Status changed to {next}"),
        None => "Status unchanged".to_string(),
    };
    Ok(axum::Json(Envelope::ok(out, message)))
}

/// Every recipient's result of a scheduled message as CSV (UTF-8 with a byte order mark, so
/// that spreadsheets read names in any script): run, phone, name, status, error code and
/// reason, last change. Newest first, read a page at a time.
#[utoipa::path(
    get, path = "/api/scheduled-messages/{id}/deliveries.csv", operation_id = "exportScheduledMessageDeliveries", tag = "scheduled messages", security(("bearer" = []), ("cookie" = [])),
    params(("id" = i32, Path, description = "scheduled message id")),
    responses(
        (status = 200, description = "The results as CSV", content_type = "text/csv", body = String,
            headers(("Content-Disposition" = String, description = "attachment; filename=\"campaign-{id}-results.csv\""))),
        (status = 400, description = "Not an id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such scheduled message", body = ErrorBody),
    )
)]
pub async fn deliveries_csv(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path(id): Path<i32>,
) -> ApiResult<axum::response::Response> {
    use crate::import::export::csv_line;
    use axum::response::IntoResponse;
    // Read first, so that a missing campaign is a 404 rather than an empty file.
    let first = schedules::deliveries_of(
        &state,
        id,
        DeliveryParams {
            limit: Some(500),
            before: None,
            occurrence_id: None,
        },
    )
    .await?;
    // Every recipient's phone and name leave the system: in the audit log, as the contact export.
    audit::record(
        &state,
        &me,
        audit::action::DELIVERIES_EXPORT,
        format!("campaign {id}"),
        None,
    )
    .await;
    let header = [
        "run",
        "phone",
        "name",
        "status",
        "error_code",
        "error_reason",
        "updated_at",
    ];
    let mut head = b"\xEF\xBB\xBF".to_vec();
    head.extend_from_slice(&csv_line(header.iter().map(|s| (*s).to_string()))?);
    let lines = |rows: &[DeliveryOut]| -> ApiResult<Vec<u8>> {
        let mut out = Vec::new();
        for d in rows {
            out.extend_from_slice(&csv_line([
                d.occurrence_id.to_string(),
                d.phone.clone(),
                crate::import::export::guard_cell(d.name.clone()),
                d.status.clone(),
                d.error_code.map(|c| c.to_string()).unwrap_or_default(),
                crate::import::export::guard_cell(d.error_reason.clone().unwrap_or_default()),
                d.updated_at.to_rfc3339(),
            ])?);
        }
        Ok(out)
    };
    head.extend_from_slice(&lines(&first)?);
    let next = (first.len() == 500)
        .then(|| first.last().map(|d| d.id))
        .flatten();
    let pages = futures_util::stream::unfold(next, move |before| {
        let state = state.clone();
        async move {
            let before = before?;
            let page = schedules::deliveries_of(
                &state,
                id,
                DeliveryParams {
                    limit: Some(500),
                    before: Some(before),
                    occurrence_id: None,
                },
            )
            .await;
            match page.and_then(|rows| Ok((lines(&rows)?, rows))) {
                Ok((bytes, rows)) if !rows.is_empty() => {
                    let next = (rows.len() == 500)
                        .then(|| rows.last().map(|d| d.id))
                        .flatten();
                    Some((Ok(axum::body::Bytes::from(bytes)), next))
                }
                Ok(_) => None,
                Err(e) => {
                    tracing::error!(error = %e, "results export stopped");
                    Some((Err(std::io::Error::other(e.to_string())), None))
                }
            }
        }
    });
    let body = axum::body::Body::from_stream(futures_util::StreamExt::chain(
        futures_util::stream::once(async move {
            Ok::<_, std::io::Error>(axum::body::Bytes::from(head))
        }),
        pages,
    ));
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/csv; charset=utf-8".to_string(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"campaign-{id}-results.csv\""),
            ),
        ],
        body,
    )
        .into_response())
}
