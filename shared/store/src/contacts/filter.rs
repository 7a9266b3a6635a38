//! The inbox's and the export's filter over contacts, and keyset pages of them.

use chrono::{DateTime, Utc};
use heydoc_entity::contact;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::{Conn, Result};

use super::Contact;

/// The inbox's filter (the export uses it too): phone or name containing `q` (any case), and
/// carrying tag `tag`.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub q: Option<String>,
    pub tag: Option<i32>,
    /// Contacts that match whatever their name and phone (those whose messages contain `q`).
    pub said_by: Option<Vec<i32>>,
}

/// At most this many contacts are found by what they said (the first page of a search needs
/// 50; a word in every chat should not read them all).
const MAX_SAID_BY: u64 = 2000;

impl Filter {
    /// Contacts whose phone or name matches `q`.
    pub(crate) fn query(&self) -> sea_orm::Select<contact::Entity> {
        self.build()
    }

    /// The contacts (at most `MAX_SAID_BY`) with a message whose text contains `q`, when `q`
    /// is long enough to search text for (three characters: trigram indexes need them, and a
    /// shorter text would match nearly every message). One query of its own, so that
    /// PostgreSQL answers it from the trigram index on message text.
    pub async fn said_by(&self, db: &impl Conn) -> Result<Vec<i32>> {
        use heydoc_entity::message;
        use sea_orm::sea_query::{Func, LikeExpr};
        let Some(q) = self
            .q
            .as_deref()
            .map(str::trim)
            .filter(|q| q.chars().count() >= 3)
        else {
            return Ok(Vec::new());
        };
        let pattern = format!("%{}%", escape_like(&q.to_lowercase()));
        Ok(message::Entity::find()
            .select_only()
            .column(message::Column::ContactId)
            .distinct()
            .filter(
                Expr::expr(Func::lower(Expr::col(message::Column::MessageText)))
                    .like(LikeExpr::new(&pattern).escape('\\')),
            )
            .limit(MAX_SAID_BY)
            .into_tuple()
            .all(db)
            .await?)
    }

    /// As `query`, and the contacts in `said_by` (those whose messages contain `q`: the
    /// inbox's search, found first with `said_by`).
    pub(crate) fn query_with_text(&self, said_by: &[i32]) -> sea_orm::Select<contact::Entity> {
        Filter {
            said_by: Some(said_by.to_vec()),
            ..self.clone()
        }
        .build()
    }

    fn build(&self) -> sea_orm::Select<contact::Entity> {
        use sea_orm::sea_query::{Expr, Func, LikeExpr, Query};
        use sea_orm::Condition;
        let mut query = contact::Entity::find();
        if let Some(q) = self.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            let pattern = format!("%{}%", escape_like(&q.to_lowercase()));
            let like = || LikeExpr::new(&pattern).escape('\\');
            let mut any = Condition::any()
                .add(Expr::col(contact::Column::Phone).like(like()))
                .add(Expr::expr(Func::lower(Expr::col(contact::Column::Name))).like(like()));
            // A phone as people write it: "+91 98000-00002" finds 919800000002.
            if let Some(digits) = phone_digits(q) {
                any = any.add(
                    Expr::col(contact::Column::Phone)
                        .like(LikeExpr::new(format!("%{digits}%")).escape('\\')),
                );
            }
            if let Some(ids) = &self.said_by {
                any = any.add(contact::Column::Id.is_in(ids.iter().copied()));
            }
            query = query.filter(any);
        }
        if let Some(tag_id) = self.tag {
            query = query.filter(
                contact::Column::Id.in_subquery(
                    Query::select()
                        .column(heydoc_entity::contact_tag::Column::ContactId)
                        .from(heydoc_entity::contact_tag::Entity)
                        .and_where(heydoc_entity::contact_tag::Column::TagId.eq(tag_id))
                        .to_owned(),
                ),
            );
        }
        query
    }
}

/// The digits of a search that is a phone number written with `+`, spaces, dashes, dots or
/// parentheses; `None` for anything else (or a plain run of digits, which matches as it is).
fn phone_digits(q: &str) -> Option<String> {
    let digits: String = q.chars().filter(char::is_ascii_digit).collect();
    let only_phone_chars = q
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '.' | '(' | ')'));
    (only_phone_chars && !digits.is_empty() && digits != q).then_some(digits)
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Up to `limit` contacts matching `filter`, newest activity first, after the `(last_activity_at,
/// id)` of the previous page's last row.
pub async fn inbox_page(
    db: &impl Conn,
    filter: &Filter,
    after: Option<(DateTime<Utc>, i32)>,
    limit: u64,
) -> Result<Vec<Contact>> {
    use sea_orm::{Condition, QuerySelect};
    let mut query = filter.query();
    if let Some((at, id)) = after {
        query = query.filter(
            Condition::any()
                .add(contact::Column::LastActivityAt.lt(at))
                .add(
                    contact::Column::LastActivityAt
                        .eq(at)
                        .and(contact::Column::Id.lt(id)),
                ),
        );
    }
    Ok(query
        .order_by_desc(contact::Column::LastActivityAt)
        .order_by_desc(contact::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// Up to `limit` contacts matching `filter` with an id above `after`, by id (the export).
pub async fn by_id_after(
    db: &impl Conn,
    filter: &Filter,
    after: i32,
    limit: u64,
) -> Result<Vec<Contact>> {
    use sea_orm::QuerySelect;
    Ok(filter
        .query()
        .filter(contact::Column::Id.gt(after))
        .order_by_asc(contact::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phone_written_as_people_do_searches_by_its_digits() {
        assert_eq!(
            phone_digits("+91 98000 00002").as_deref(),
            Some("919800000002")
        );
        assert_eq!(
            phone_digits("(415) 555-0123").as_deref(),
            Some("4155550123")
        );
        assert_eq!(phone_digits("4155"), None);
        assert_eq!(phone_digits("Ana"), None);
        assert_eq!(phone_digits("Ana 2"), None);
        assert_eq!(phone_digits("+ -"), None);
    }

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(escape_like("50%_a\\"), "50\\%\\_a\\\\");
    }
}
