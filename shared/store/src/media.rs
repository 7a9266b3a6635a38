//! Inbound media files: a row per media message, written with the message (`pending`), then
//! `stored` once the file is downloaded and checked, or `failed` with the reason. A row left
//! pending (a gateway stopped mid-download) is taken again by the sweep. A deleted contact's
//! files are listed in `media_removals` until the sweep has removed them from the store.

use chrono::{DateTime, Utc};
use heydoc_entity::{media_file, media_removal, message, upload};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};

use crate::Result;

pub use media_file::Model as MediaFile;

pub const PENDING: &str = "pending";
pub const STORED: &str = "stored";
pub const FAILED: &str = "failed";

/// What Meta announced about a message's file.
#[derive(Debug, Clone)]
pub struct Announced {
    pub meta_media_id: String,
    pub mime_type: String,
    pub sha256: Option<String>,
    pub filename: Option<String>,
}

pub async fn insert_pending(
    db: &impl ConnectionTrait,
    message_id: i64,
    media: &Announced,
    now: DateTime<Utc>,
) -> Result<()> {
    let cut = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    media_file::Entity::insert(media_file::ActiveModel {
        message_id: Set(message_id),
        meta_media_id: Set(cut(&media.meta_media_id, 128)),
        mime_type: Set(cut(&media.mime_type, 128)),
        sha256: Set(media.sha256.as_deref().map(|s| cut(s, 128))),
        size: Set(None),
        filename: Set(media.filename.as_deref().map(|f| cut(f, 256))),
        storage_key: Set(None),
        state: Set(PENDING.into()),
        error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    })
    .on_conflict(
        sea_orm::sea_query::OnConflict::column(media_file::Column::MessageId)
            .do_nothing()
            .to_owned(),
    )
    .do_nothing()
    .exec(db)
    .await?;
    Ok(())
}

pub async fn of_message(db: &impl ConnectionTrait, message_id: i64) -> Result<Option<MediaFile>> {
    Ok(media_file::Entity::find()
        .filter(media_file::Column::MessageId.eq(message_id))
        .one(db)
        .await?)
}

/// The media rows of these messages (a chat page's).
pub async fn of_messages(db: &impl ConnectionTrait, message_ids: &[i64]) -> Result<Vec<MediaFile>> {
    if message_ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(media_file::Entity::find()
        .filter(media_file::Column::MessageId.is_in(message_ids.iter().copied()))
        .all(db)
        .await?)
}

/// Records the file kept under `key`. `false` when the row is gone: its contact was deleted
/// while the file downloaded, and the caller removes the file it just kept.
pub async fn stored(
    db: &impl ConnectionTrait,
    id: i64,
    key: &str,
    size: i64,
    now: DateTime<Utc>,
) -> Result<bool> {
    let result = media_file::Entity::update_many()
        .col_expr(media_file::Column::State, Expr::value(STORED))
        .col_expr(media_file::Column::StorageKey, Expr::value(key))
        .col_expr(media_file::Column::Size, Expr::value(size))
        .col_expr(
            media_file::Column::Error,
            Expr::value(Option::<String>::None),
        )
        .col_expr(media_file::Column::UpdatedAt, Expr::value(now))
        .filter(media_file::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// A failure: final (`failed`), or noted on a row left pending for the sweep.
pub async fn failed(
    db: &impl ConnectionTrait,
    id: i64,
    error: &str,
    final_: bool,
    now: DateTime<Utc>,
) -> Result<()> {
    let error: String = error.chars().take(500).collect();
    let mut update = media_file::Entity::update_many()
        .col_expr(media_file::Column::Error, Expr::value(error))
        .col_expr(media_file::Column::UpdatedAt, Expr::value(now))
        .filter(media_file::Column::Id.eq(id))
        .filter(media_file::Column::State.eq(PENDING));
    if final_ {
        update = update.col_expr(media_file::Column::State, Expr::value(FAILED));
    }
    update.exec(db).await?;
    Ok(())
}

/// Pending rows untouched since `before`, oldest first.
pub async fn stale_pending(
    db: &impl ConnectionTrait,
    before: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<MediaFile>> {
    Ok(media_file::Entity::find()
        .filter(media_file::Column::State.eq(PENDING))
        .filter(media_file::Column::UpdatedAt.lt(before))
        .order_by_asc(media_file::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// Takes a pending row for one attempt (its `updated_at` moves, so another replica's sweep
/// leaves it alone meanwhile). Answers whether this caller has it.
pub async fn take(
    db: &impl ConnectionTrait,
    id: i64,
    seen_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool> {
    let result = media_file::Entity::update_many()
        .col_expr(media_file::Column::UpdatedAt, Expr::value(now))
        .filter(media_file::Column::Id.eq(id))
        .filter(media_file::Column::State.eq(PENDING))
        .filter(media_file::Column::UpdatedAt.eq(seen_at))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

pub use upload::Model as Upload;

/// A file staff attached, as kept and as Meta knows it.
#[derive(Debug, Clone)]
pub struct NewUpload {
    pub phone_number_id: String,
    pub meta_media_id: String,
    pub kind: String,
    pub mime_type: String,
    pub filename: Option<String>,
    pub size: i64,
    pub sha256: String,
    pub storage_key: String,
    pub created_by: Option<i32>,
}

pub async fn insert_upload(
    db: &impl ConnectionTrait,
    new: NewUpload,
    now: DateTime<Utc>,
) -> Result<Upload> {
    Ok(upload::Entity::insert(upload::ActiveModel {
        phone_number_id: Set(new.phone_number_id),
        meta_media_id: Set(new.meta_media_id),
        kind: Set(new.kind),
        mime_type: Set(new.mime_type),
        filename: Set(new.filename),
        size: Set(new.size),
        sha256: Set(new.sha256),
        storage_key: Set(new.storage_key),
        created_by: Set(new.created_by),
        created_at: Set(now),
        ..Default::default()
    })
    .exec_with_returning(db)
    .await?)
}

pub async fn upload(db: &impl ConnectionTrait, id: i64) -> Result<Option<Upload>> {
    Ok(upload::Entity::find_by_id(id).one(db).await?)
}

/// Bytes `user_id` uploaded since `since` (the quota's window).
pub async fn uploaded_since(
    db: &impl ConnectionTrait,
    user_id: i32,
    since: DateTime<Utc>,
) -> Result<i64> {
    let total: Option<Option<i64>> = upload::Entity::find()
        .select_only()
        .column_as(
            Expr::col(upload::Column::Size)
                .sum()
                .cast_as(sea_orm::sea_query::Alias::new("BIGINT")),
            "total",
        )
        .filter(upload::Column::CreatedBy.eq(user_id))
        .filter(upload::Column::CreatedAt.gte(since))
        .into_tuple()
        .one(db)
        .await?;
    Ok(total.flatten().unwrap_or(0))
}

/// Uploads made before `before` leave: their files are listed for removal from the media
/// store (`media_removals`, as a deleted contact's) and their rows deleted, in one
/// transaction, at most `limit` at a time. Returns how many.
pub async fn expire_uploads(
    db: &impl TransactionTrait,
    before: DateTime<Utc>,
    limit: u64,
) -> Result<u64> {
    let txn = db.begin().await?;
    let old: Vec<(i64, String)> = upload::Entity::find()
        .select_only()
        .column(upload::Column::Id)
        .column(upload::Column::StorageKey)
        .filter(upload::Column::CreatedAt.lt(before))
        .order_by_asc(upload::Column::Id)
        .limit(limit)
        .into_tuple()
        .all(&txn)
        .await?;
    if old.is_empty() {
        return Ok(0);
    }
    let now = Utc::now();
    media_removal::Entity::insert_many(old.iter().map(|(_, key)| media_removal::ActiveModel {
        storage_key: Set(key.clone()),
        created_at: Set(now),
        ..Default::default()
    }))
    .exec(&txn)
    .await?;
    upload::Entity::delete_many()
        .filter(upload::Column::Id.is_in(old.iter().map(|(id, _)| *id)))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(old.len() as u64)
}

pub use media_removal::Model as MediaRemoval;

/// Lists the stored files of `contact_id`'s messages for removal from the media store. Called
/// in the transaction that deletes the contact (whose media rows then cascade away), so that
/// the list holds exactly the files nobody can reach any more.
///
/// The contact's media rows are locked first (PostgreSQL; SQLite writes one at a time
/// anyway): a download recording its file now (`stored`) commits before the list is read, so
/// its key is listed; one that records later finds its row gone and removes the file itself.
pub async fn remove_files_of_contact(
    db: &impl ConnectionTrait,
    contact_id: i32,
    now: DateTime<Utc>,
) -> Result<u64> {
    let messages = Query::select()
        .column(message::Column::Id)
        .from(message::Entity)
        .and_where(message::Column::ContactId.eq(contact_id))
        .to_owned();
    media_file::Entity::find()
        .select_only()
        .column(media_file::Column::Id)
        .filter(media_file::Column::MessageId.in_subquery(messages.clone()))
        .lock_exclusive()
        .into_tuple::<i64>()
        .all(db)
        .await?;
    let files = Query::select()
        .column(media_file::Column::StorageKey)
        .expr(Expr::value(now))
        .from(media_file::Entity)
        .and_where(media_file::Column::StorageKey.is_not_null())
        .and_where(media_file::Column::MessageId.in_subquery(messages))
        .to_owned();
    let insert = Query::insert()
        .into_table(media_removal::Entity)
        .columns([
            media_removal::Column::StorageKey,
            media_removal::Column::CreatedAt,
        ])
        .select_from(files)
        .map_err(|e| sea_orm::DbErr::Custom(e.to_string()))?
        .to_owned();
    let result = db.execute(db.get_database_backend().build(&insert)).await?;
    Ok(result.rows_affected())
}

/// The file of one message leaves: its storage key is listed for removal and its row goes (the
/// patient deleted the message). In the caller's transaction.
pub async fn remove_file_of_message(
    db: &impl ConnectionTrait,
    message_id: i64,
    now: DateTime<Utc>,
) -> Result<()> {
    let Some(file) = of_message(db, message_id).await? else {
        return Ok(());
    };
    if let Some(key) = file.storage_key.clone() {
        media_removal::Entity::insert(media_removal::ActiveModel {
            storage_key: Set(key),
            created_at: Set(now),
            ..Default::default()
        })
        .exec(db)
        .await?;
    }
    media_file::Entity::delete_by_id(file.id).exec(db).await?;
    Ok(())
}

/// Files waiting to leave the media store, oldest first.
pub async fn removals(db: &impl ConnectionTrait, limit: u64) -> Result<Vec<MediaRemoval>> {
    Ok(media_removal::Entity::find()
        .order_by_asc(media_removal::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// A file has left the media store: its removal is done.
pub async fn removed(db: &impl ConnectionTrait, id: i64) -> Result<()> {
    media_removal::Entity::delete_by_id(id).exec(db).await?;
    Ok(())
}
