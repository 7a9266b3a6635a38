//! The registry of business numbers: the default one (the environment's `WHATSAPP_*`) kept in
//! step at start, the ones admins add, which number a send goes from, and a number's state as
//! the sender sees it (a circuit opened by a bad token shows here as `paused`, with the reason).

use chrono::{DateTime, Utc};
use heydoc_entity::{business_number, contact};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
};

use crate::{Conn, Result, StoreError};

pub use business_number::Model as Number;

pub const ACTIVE: &str = heydoc_domain::NumberState::Active.as_str();
pub const PAUSED: &str = heydoc_domain::NumberState::Paused.as_str();
pub const DISABLED: &str = heydoc_domain::NumberState::Disabled.as_str();

/// The environment's number, as the registry's default: created or brought in step (its
/// rate and display number follow the environment, its token stays the environment's).
pub async fn ensure_default(
    db: &impl ConnectionTrait,
    phone_number_id: &str,
    waba_id: &str,
    mps: u32,
    now: DateTime<Utc>,
) -> Result<()> {
    business_number::Entity::update_many()
        .col_expr(business_number::Column::IsDefault, Expr::value(false))
        .filter(business_number::Column::PhoneNumberId.ne(phone_number_id))
        .filter(business_number::Column::IsDefault.eq(true))
        .exec(db)
        .await?;
    let row = business_number::ActiveModel {
        phone_number_id: Set(phone_number_id.to_string()),
        display_number: Set(phone_number_id.to_string()),
        waba_id: Set(waba_id.trim().to_string()),
        access_token: Set(None),
        mps: Set(i32::try_from(mps).unwrap_or(i32::MAX)),
        is_default: Set(true),
        state: Set(ACTIVE.into()),
        state_reason: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    business_number::Entity::insert(row)
        .on_conflict(
            OnConflict::column(business_number::Column::PhoneNumberId)
                .update_columns(
                    [
                        business_number::Column::Mps,
                        business_number::Column::IsDefault,
                        business_number::Column::UpdatedAt,
                    ]
                    .into_iter()
                    // A process that does not know the account (the sender) leaves it alone.
                    .chain((!waba_id.trim().is_empty()).then_some(business_number::Column::WabaId)),
                )
                .to_owned(),
        )
        .exec(db)
        .await?;
    Ok(())
}

/// Every number, the default first.
pub async fn all(db: &impl ConnectionTrait) -> Result<Vec<business_number::Model>> {
    Ok(business_number::Entity::find()
        .order_by_desc(business_number::Column::IsDefault)
        .order_by_asc(business_number::Column::Id)
        .all(db)
        .await?)
}

pub async fn find(
    db: &impl ConnectionTrait,
    phone_number_id: &str,
) -> Result<Option<business_number::Model>> {
    Ok(business_number::Entity::find()
        .filter(business_number::Column::PhoneNumberId.eq(phone_number_id))
        .one(db)
        .await?)
}

/// The number a message to this contact goes from when the request names none: the one the
/// contact last wrote to, while it can send; otherwise `default`.
pub async fn for_reply(
    db: &impl ConnectionTrait,
    contact: &contact::Model,
    default: &str,
) -> Result<String> {
    if let Some(last) = &contact.last_number {
        if let Some(n) = find(db, last).await? {
            if n.state != DISABLED {
                return Ok(n.phone_number_id);
            }
        }
    }
    Ok(default.to_string())
}

/// Records what the sender sees: `paused` with the reason while the number cannot send,
/// `active` again once it can (its hold, if any, is lifted). An admin's `disabled` is left
/// alone.
pub async fn set_state(
    db: &impl ConnectionTrait,
    phone_number_id: &str,
    paused: Option<&str>,
    now: DateTime<Utc>,
) -> Result<()> {
    let (state, reason) = match paused {
        Some(why) => (PAUSED, Some(why.chars().take(500).collect::<String>())),
        None => (ACTIVE, None),
    };
    let mut update = business_number::Entity::update_many()
        .col_expr(business_number::Column::State, Expr::value(state))
        .col_expr(business_number::Column::StateReason, Expr::value(reason))
        .col_expr(business_number::Column::UpdatedAt, Expr::value(now));
    if paused.is_none() {
        update = update.col_expr(
            business_number::Column::HeldUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        );
    }
    update
        .filter(business_number::Column::PhoneNumberId.eq(phone_number_id))
        .filter(business_number::Column::State.ne(DISABLED))
        .exec(db)
        .await?;
    Ok(())
}

/// The number cannot send (`why`: Meta's code and words, from a send's answer or a status
/// webhook): it is `paused` with the reason and nothing goes from it before `until`, in any
/// sender (each reads the hold on its relay tick). A longer hold already in place stays.
pub async fn hold(
    db: &impl ConnectionTrait,
    phone_number_id: &str,
    until: DateTime<Utc>,
    why: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let reason: String = why.chars().take(500).collect();
    business_number::Entity::update_many()
        .col_expr(business_number::Column::State, Expr::value(PAUSED))
        .col_expr(business_number::Column::StateReason, Expr::value(reason))
        .col_expr(business_number::Column::HeldUntil, Expr::value(until))
        .col_expr(business_number::Column::UpdatedAt, Expr::value(now))
        .filter(business_number::Column::PhoneNumberId.eq(phone_number_id))
        .filter(business_number::Column::State.ne(DISABLED))
        .filter(
            sea_orm::Condition::any()
                .add(business_number::Column::HeldUntil.is_null())
                .add(business_number::Column::HeldUntil.lt(until)),
        )
        .exec(db)
        .await?;
    Ok(())
}

/// The number's hold as the database has it: until when (if set) and why, and whether it
/// shows `paused`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub until: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    pub paused: bool,
}

/// Reads `phone_number_id`'s hold (one indexed row); `None` when it is not registered.
pub async fn hold_of(db: &impl ConnectionTrait, phone_number_id: &str) -> Result<Option<Hold>> {
    Ok(find(db, phone_number_id).await?.map(|n| Hold {
        until: n.held_until,
        reason: n.state_reason,
        paused: n.state == PAUSED,
    }))
}

/// What Meta says of a number itself (`GET /{phone-number-id}`); `None` leaves a field alone.
#[derive(Debug, Default, Clone)]
pub struct Profile {
    pub display_phone_number: Option<String>,
    pub verified_name: Option<String>,
    pub quality: Option<String>,
    pub messaging_limit: Option<String>,
    pub throughput: Option<String>,
}

/// Records Meta's own view of a number (its display number, verified name, quality, limit and
/// throughput), read when it is added and daily.
pub async fn set_profile(
    db: &impl ConnectionTrait,
    phone_number_id: &str,
    profile: &Profile,
    now: DateTime<Utc>,
) -> Result<()> {
    let mut update = business_number::Entity::update_many()
        .col_expr(business_number::Column::UpdatedAt, Expr::value(now))
        .filter(business_number::Column::PhoneNumberId.eq(phone_number_id));
    let fields = [
        (
            business_number::Column::DisplayNumber,
            &profile.display_phone_number,
        ),
        (
            business_number::Column::VerifiedName,
            &profile.verified_name,
        ),
        (business_number::Column::Quality, &profile.quality),
        (
            business_number::Column::MessagingLimit,
            &profile.messaging_limit,
        ),
        (business_number::Column::Throughput, &profile.throughput),
    ];
    for (column, value) in fields {
        if let Some(v) = value {
            update = update.col_expr(column, Expr::value(v.chars().take(256).collect::<String>()));
        }
    }
    update.exec(db).await?;
    Ok(())
}

/// The display number a webhook names one of our numbers by, kept while none is known (the
/// environment's number starts with its id in that place, until Meta describes it).
pub async fn learn_display_number(
    db: &impl ConnectionTrait,
    phone_number_id: &str,
    display: &str,
) -> Result<()> {
    let display = display.trim();
    if display.is_empty() || display == phone_number_id {
        return Ok(());
    }
    business_number::Entity::update_many()
        .col_expr(
            business_number::Column::DisplayNumber,
            Expr::value(display.chars().take(256).collect::<String>()),
        )
        .filter(business_number::Column::PhoneNumberId.eq(phone_number_id))
        .filter(business_number::Column::DisplayNumber.eq(phone_number_id))
        .exec(db)
        .await?;
    Ok(())
}

/// A number an admin registers.
#[derive(Debug)]
pub struct NewNumber {
    pub phone_number_id: String,
    pub display_number: String,
    pub waba_id: String,
    pub access_token: String,
    pub mps: i32,
}

pub async fn insert(db: &impl Conn, new: NewNumber, now: DateTime<Utc>) -> Result<Number> {
    let id = new.phone_number_id.clone();
    business_number::Entity::insert(business_number::ActiveModel {
        phone_number_id: Set(new.phone_number_id),
        display_number: Set(new.display_number),
        waba_id: Set(new.waba_id),
        access_token: Set(Some(new.access_token)),
        mps: Set(new.mps),
        is_default: Set(false),
        state: Set(ACTIVE.into()),
        state_reason: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    })
    .exec_with_returning(db)
    .await
    .map_err(|e| StoreError::unique_or_db(e, format!("business number {id} is already registered")))
}

/// What an admin changes on a number; `None` leaves a field alone.
#[derive(Debug, Default)]
pub struct NumberChanges {
    pub display_number: Option<String>,
    pub waba_id: Option<String>,
    pub access_token: Option<String>,
    pub mps: Option<i32>,
    /// The new state and its reason.
    pub state: Option<(&'static str, Option<String>)>,
}

pub async fn update(
    db: &impl Conn,
    existing: Number,
    changes: NumberChanges,
    now: DateTime<Utc>,
) -> Result<Number> {
    let mut model: business_number::ActiveModel = existing.into();
    if let Some(d) = changes.display_number {
        model.display_number = Set(d);
    }
    if let Some(w) = changes.waba_id {
        model.waba_id = Set(w);
    }
    if let Some(t) = changes.access_token {
        model.access_token = Set(Some(t));
    }
    if let Some(mps) = changes.mps {
        model.mps = Set(mps);
    }
    if let Some((state, reason)) = changes.state {
        model.state = Set(state.into());
        model.state_reason = Set(reason);
    }
    model.updated_at = Set(now);
    Ok(business_number::Entity::update(model).exec(db).await?)
}

/// Records Meta's messaging limit and quality of the numbers `display_phone_number` names (all
/// of the account's when it names none: the limit is the portfolio's).
pub async fn set_quality(
    db: &impl ConnectionTrait,
    waba_id: &str,
    display_phone_number: Option<&str>,
    messaging_limit: Option<&str>,
    quality: Option<&str>,
    now: DateTime<Utc>,
) -> Result<u64> {
    let mut update = business_number::Entity::update_many()
        .col_expr(business_number::Column::UpdatedAt, Expr::value(now))
        .filter(business_number::Column::WabaId.eq(waba_id));
    if let Some(limit) = messaging_limit {
        update = update.col_expr(business_number::Column::MessagingLimit, Expr::value(limit));
    }
    if let Some(q) = quality {
        update = update.col_expr(business_number::Column::Quality, Expr::value(q));
    }
    if let Some(display) = display_phone_number {
        // Meta names the number by its digits ("15550001111"); an admin may have typed it as
        // "+1 555-000-1111". The account's numbers are few: compare the digits here.
        let digits = only_digits(display);
        let named: Vec<i32> = business_number::Entity::find()
            .filter(business_number::Column::WabaId.eq(waba_id))
            .all(db)
            .await?
            .into_iter()
            .filter(|n| {
                only_digits(&n.display_number) == digits
                    || only_digits(&n.phone_number_id) == digits
            })
            .map(|n| n.id)
            .collect();
        if named.is_empty() {
            return Ok(0);
        }
        update = update.filter(business_number::Column::Id.is_in(named));
    }
    Ok(update.exec(db).await?.rows_affected)
}

fn only_digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}
