//! The business numbers HeyDoc sends from (admins): list them with their state, add one, change
//! its rate, display number, token or state. The environment's `WHATSAPP_*` number is the
//! default one. An access token is a secret: stored, never returned (`has_token` says whether
//! the number has its own or uses the environment's).

use chrono::{DateTime, Utc};
use heydoc_store::numbers::{self as store, Number, ACTIVE, DISABLED};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::auth::AuthUser;
use crate::core::audit;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Meta allows up to 1,000 messages per second for an upgraded number.
const MAX_MPS: i32 = 1_000;

/// A business number as the API shows it: never its token.
#[derive(Debug, Serialize, ToSchema)]
pub struct NumberOut {
    /// Meta's phone number id: the Cloud API path, and what `from` names.
    pub phone_number_id: String,
    /// The number as people see it.
    pub display_number: String,
    /// The WhatsApp Business Account it belongs to.
    pub waba_id: String,
    /// Messages per second it may send.
    pub mps: i32,
    /// The environment's number, used when a send names none.
    pub is_default: bool,
    /// `active`, `paused` (it cannot send now: `state_reason` says why) or `disabled`.
    pub state: String,
    pub state_reason: Option<String>,
    /// Whether it has a token of its own (otherwise the environment's is used).
    pub has_token: bool,
    /// The account's messaging limit as Meta last reported it: `TIER_250`, `TIER_2K`,
    /// `TIER_10K`, `TIER_100K` or `TIER_UNLIMITED` unique recipients per rolling 24 hours.
    pub messaging_limit: Option<String>,
    /// The number's quality as Meta rates it: `GREEN`, `YELLOW` or `RED`.
    pub quality: Option<String>,
    /// The business name Meta verified for the number, and its throughput level
    /// (`STANDARD`, `HIGH`), as Meta last described the number (read when it is added and
    /// daily).
    pub verified_name: Option<String>,
    pub throughput: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl From<Number> for NumberOut {
    fn from(n: Number) -> Self {
        Self {
            phone_number_id: n.phone_number_id,
            display_number: n.display_number,
            waba_id: n.waba_id,
            mps: n.mps,
            is_default: n.is_default,
            state: n.state,
            state_reason: n.state_reason,
            has_token: n.access_token.is_some(),
            messaging_limit: n.messaging_limit,
            quality: n.quality,
            verified_name: n.verified_name,
            throughput: n.throughput,
            updated_at: n.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewNumber {
    #[schema(example = "106540352242922", pattern = "^[0-9]{5,32}$")]
    pub phone_number_id: String,
    #[schema(
        example = "+91 98000 00001",
        min_length = 1,
        max_length = 32,
        pattern = r"\S"
    )]
    pub display_number: String,
    #[serde(default)]
    #[schema(example = "102290129340398")]
    pub waba_id: String,
    /// The number's Cloud API access token (a system user's). Stored, never shown again.
    #[schema(pattern = r"^\s*[^\s\u0000]{1,1024}\s*$")]
    pub access_token: String,
    /// Messages per second (default 80, Meta's default; at most 1,000).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000)]
    pub mps: Option<i32>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NumberChanges {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 32, pattern = r"\S")]
    pub display_number: Option<String>,
    #[serde(default)]
    pub waba_id: Option<String>,
    /// A new token (the old one is replaced).
    #[serde(default)]
    #[schema(pattern = r"^\s*[^\s\u0000]{1,1024}\s*$")]
    pub access_token: Option<String>,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000)]
    pub mps: Option<i32>,
    /// `active` (also re-enables a disabled number) or `disabled` (nothing is sent from it;
    /// its messages wait).
    #[serde(default)]
    pub state: Option<String>,
}

/// A number a send may name: registered, and not disabled by an admin.
pub async fn usable(state: &AppState, from: &str) -> ApiResult<()> {
    match store::find(&state.db, from.trim()).await? {
        Some(n) if n.state != DISABLED => Ok(()),
        Some(_) => Err(ApiError::validation(format!(
            "from: business number {from} is disabled"
        ))),
        // A reference to something that does not exist: 404, as for tags.
        None => Err(ApiError::not_found(format!(
            "from: {from:?} is not a registered business number (see GET /api/numbers)"
        ))),
    }
}

fn check_mps(mps: i32) -> ApiResult<i32> {
    if (1..=MAX_MPS).contains(&mps) {
        Ok(mps)
    } else {
        Err(ApiError::validation(format!(
            "mps must be between 1 and {MAX_MPS}"
        )))
    }
}

fn check_token(token: &str) -> ApiResult<String> {
    let token = token.trim();
    if token.is_empty() || token.chars().count() > 1024 || token.chars().any(char::is_whitespace) {
        return Err(ApiError::validation(
            "access_token must be 1 to 1024 characters without spaces",
        ));
    }
    Ok(token.to_string())
}

fn check_display(display: &str) -> ApiResult<String> {
    let display = display.trim();
    if display.is_empty() || display.chars().count() > 32 {
        return Err(ApiError::validation(
            "display_number must be 1 to 32 characters",
        ));
    }
    Ok(display.to_string())
}

pub async fn list(state: &AppState, me: &AuthUser) -> ApiResult<Vec<NumberOut>> {
    me.require_admin()?;
    let numbers = store::all(&state.db).await?;
    Ok(numbers.into_iter().map(NumberOut::from).collect())
}

/// Registers a number: an admin's session only (a number's token sends as the business, so
/// an API key, which can leak with the system it serves, may not add or change one).
pub async fn create(state: &AppState, me: &AuthUser, body: NewNumber) -> ApiResult<NumberOut> {
    me.require_admin_session()?;
    let id = body.phone_number_id.trim();
    if !(5..=32).contains(&id.len()) || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::validation(
            "phone_number_id must be Meta's id: 5 to 32 digits",
        ));
    }
    let display = check_display(&body.display_number)?;
    let token = check_token(&body.access_token)?;
    let mps = check_mps(body.mps.unwrap_or(80))?;
    if body.waba_id.len() > 64 {
        return Err(ApiError::validation("waba_id is at most 64 characters"));
    }
    if store::find(&state.db, id).await?.is_some() {
        return Err(ApiError::Conflict(format!(
            "business number {id} is already registered"
        )));
    }
    let new = store::NewNumber {
        phone_number_id: id.to_string(),
        display_number: display,
        waba_id: body.waba_id.trim().to_string(),
        access_token: token,
        mps,
    };
    let created = store::insert(&state.db, new, Utc::now()).await?;
    tracing::info!(phone_number_id = %created.phone_number_id, by = %me.username, "business number registered");
    audit::record(
        state,
        me,
        audit::action::NUMBER_CREATE,
        created.phone_number_id.clone(),
        Some(json!({"display_number": created.display_number, "mps": created.mps, "token": created.access_token.is_some()})),
    )
    .await;
    // What Meta says of it (its display number, name, quality, limit) fills in shortly.
    let (state, number) = (state.clone(), created.clone());
    tokio::spawn(async move { refresh_profile(&state, &number).await });
    Ok(created.into())
}

pub async fn update(
    state: &AppState,
    me: &AuthUser,
    phone_number_id: &str,
    body: NumberChanges,
) -> ApiResult<NumberOut> {
    me.require_admin_session()?;
    let existing = store::find(&state.db, phone_number_id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("business number {phone_number_id} not found"))
        })?;
    let mut changes = store::NumberChanges::default();
    if let Some(d) = &body.display_number {
        changes.display_number = Some(check_display(d)?);
    }
    if let Some(w) = &body.waba_id {
        if w.len() > 64 {
            return Err(ApiError::validation("waba_id is at most 64 characters"));
        }
        changes.waba_id = Some(w.trim().to_string());
    }
    if let Some(t) = &body.access_token {
        changes.access_token = Some(check_token(t)?);
    }
    if let Some(mps) = body.mps {
        if existing.is_default {
            return Err(ApiError::validation(
                "the default number's rate is WHATSAPP_MPS in the environment",
            ));
        }
        changes.mps = Some(check_mps(mps)?);
    }
    changes.state = match body.state.as_deref().map(str::trim) {
        None => None,
        Some(s) if s == ACTIVE => Some((ACTIVE, None)),
        Some(s) if s == DISABLED => Some((DISABLED, Some(format!("disabled by {}", me.username)))),
        Some(other) => {
            return Err(ApiError::validation(format!(
                "state {other:?} must be active or disabled"
            )))
        }
    };
    // What changed, for the audit log (a token only as "replaced", never its value).
    let detail = json!({
        "display_number": changes.display_number,
        "waba_id": changes.waba_id,
        "token_replaced": changes.access_token.is_some(),
        "mps": changes.mps,
        "state": changes.state.as_ref().map(|(s, _)| *s),
    });
    let updated = store::update(&state.db, existing, changes, Utc::now()).await?;
    audit::record(
        state,
        me,
        audit::action::NUMBER_UPDATE,
        updated.phone_number_id.clone(),
        Some(detail),
    )
    .await;
    Ok(updated.into())
}

/// Reads the number's own fields from Meta (`GET /{phone-number-id}`) and records them: the
/// display number Meta's webhooks name it by, its verified name, quality, messaging limit tier
/// and throughput. A failure is logged; the next daily round tries again.
pub async fn refresh_profile(state: &AppState, number: &Number) {
    let Some(token) = state.token_for(Some(number)) else {
        return;
    };
    match state
        .graph
        .number_info(&number.phone_number_id, &token)
        .await
    {
        Ok(info) => {
            let profile = store::Profile {
                display_phone_number: info.display_phone_number,
                verified_name: info.verified_name,
                quality: info.quality_rating.filter(|q| q != "NA" && q != "UNKNOWN"),
                messaging_limit: info.messaging_limit_tier,
                throughput: info.throughput.and_then(|t| t.level),
            };
            if let Err(e) =
                store::set_profile(&state.db, &number.phone_number_id, &profile, Utc::now()).await
            {
                tracing::warn!(error = %e, "cannot record the number's profile");
            }
        }
        Err(e) => {
            tracing::warn!(number = %number.phone_number_id, error = %e.message, "Meta did not describe the number")
        }
    }
}

/// Every registered number's profile, read again (the daily account upkeep).
pub async fn refresh_profiles(state: &AppState) {
    match store::all(&state.db).await {
        Ok(numbers) => {
            for n in numbers.iter().filter(|n| n.state != DISABLED) {
                refresh_profile(state, n).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot list the numbers to describe"),
    }
}
