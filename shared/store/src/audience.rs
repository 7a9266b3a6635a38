//! Who a campaign would reach, counted before it starts (the campaign form's estimate): each
//! contact once, whether tagged or listed. Tagged audiences are counted by the database in one
//! grouped query, so a tag with 100,000 contacts costs one pass, not 100,000 rows in memory.

use std::collections::{BTreeMap, HashSet};

use heydoc_entity::{contact, contact_tag};
use sea_orm::sea_query::{Expr, Query, SelectStatement};
use sea_orm::{
    AccessMode, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, IsolationLevel,
    QueryFilter, QuerySelect, TransactionTrait,
};

use crate::{Conn, Db, Result};

#[derive(Debug, Default, Clone)]
pub struct AudienceSummary {
    /// Contacts (and listed numbers not yet contacts) it would reach.
    pub reachable: i64,
    /// Left out: opted out of campaigns, or suppressed (WhatsApp will not deliver to them).
    pub opted_out: i64,
    pub suppressed: i64,
    /// Reachable recipients by the first four digits of their number (for per-country rates):
    /// `(prefix, recipients, of which in the US)`.
    pub by_prefix: Vec<(String, i64, i64)>,
}

/// Reachable recipients so far by prefix: `(recipients, of which in the US)`.
type Prefixes = BTreeMap<String, (i64, i64)>;

const OPTED_OUT: &str = "opted_out";
const SUPPRESSED: &str = "suppressed";

/// Counts the audience of `tag_ids` and `phones` as a fan-out would resolve it now, from one
/// snapshot (on PostgreSQL a read-only repeatable-read transaction, so that a contact tagged
/// between the grouped query and the listed numbers is still counted once; SQLite's
/// transactions are serializable already).
pub async fn summary(db: &Db, tag_ids: &[i32], phones: &[String]) -> Result<AudienceSummary> {
    let txn = match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            db.begin_with_config(
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            )
            .await?
        }
        _ => db.begin().await?,
    };
    let summary = count(&txn, tag_ids, phones).await?;
    txn.commit().await?;
    Ok(summary)
}

async fn count(db: &impl Conn, tag_ids: &[i32], phones: &[String]) -> Result<AudienceSummary> {
    let mut summary = AudienceSummary::default();
    let mut prefixes = Prefixes::new();
    if !tag_ids.is_empty() {
        count_tagged(db, tag_ids, &mut summary, &mut prefixes).await?;
    }
    let listed: Vec<&String> = phones.iter().collect::<HashSet<_>>().into_iter().collect();
    for chunk in listed.chunks(1_000) {
        count_listed(db, tag_ids, chunk, &mut summary, &mut prefixes).await?;
    }
    summary.by_prefix = prefixes
        .into_iter()
        .map(|(prefix, (n, us))| (prefix, n, us))
        .collect();
    Ok(summary)
}

fn tagged(tag_ids: &[i32]) -> SelectStatement {
    Query::select()
        .column(contact_tag::Column::ContactId)
        .from(contact_tag::Entity)
        .and_where(contact_tag::Column::TagId.is_in(tag_ids.iter().copied()))
        .to_owned()
}

/// One grouped query: how many tagged contacts are opted out, suppressed, or reachable by
/// their first four digits and their number's length (all `is_us` needs to know).
async fn count_tagged(
    db: &impl Conn,
    tag_ids: &[i32],
    summary: &mut AudienceSummary,
    prefixes: &mut Prefixes,
) -> Result<()> {
    let state = Expr::cust(format!(
        "CASE WHEN opted_out_at IS NOT NULL THEN '{OPTED_OUT}' \
              WHEN suppressed_reason IS NOT NULL THEN '{SUPPRESSED}' ELSE 'reachable' END"
    ));
    let prefix = Expr::cust("substr(phone, 1, 4)");
    let length = Expr::cust("CAST(length(phone) AS BIGINT)");
    let groups: Vec<(String, String, i64, i64)> = contact::Entity::find()
        .select_only()
        .expr_as(state.clone(), "state")
        .expr_as(prefix.clone(), "prefix")
        .expr_as(length.clone(), "length")
        .expr_as(Expr::cust("COUNT(*)"), "n")
        .filter(contact::Column::Id.in_subquery(tagged(tag_ids)))
        .group_by(state)
        .group_by(prefix)
        .group_by(length)
        .into_tuple()
        .all(db)
        .await?;
    for (state, prefix, length, n) in groups {
        match state.as_str() {
            OPTED_OUT => summary.opted_out += n,
            SUPPRESSED => summary.suppressed += n,
            _ => {
                let us = like_us(&prefix, length);
                add_reachable(summary, prefixes, prefix, n, us);
            }
        }
    }
    Ok(())
}

/// `n` more reachable recipients whose numbers start with `prefix` (`us`: in the US).
fn add_reachable(
    summary: &mut AudienceSummary,
    prefixes: &mut Prefixes,
    prefix: String,
    n: i64,
    us: bool,
) {
    summary.reachable += n;
    let entry = prefixes.entry(prefix).or_default();
    entry.0 += n;
    if us {
        entry.1 += n;
    }
}

/// Whether numbers starting with `prefix` and `length` characters long are in the US: a
/// stand-in number of that shape asks `is_us` (which reads only the first four characters,
/// the length and that the rest are digits, as stored numbers are).
fn like_us(prefix: &str, length: i64) -> bool {
    let rest = usize::try_from(length)
        .unwrap_or(0)
        .saturating_sub(prefix.chars().count());
    heydoc_domain::phone::is_us(&format!("{prefix}{}", "0".repeat(rest)))
}

/// Listed numbers: contacts counted by their state unless a tag already counted them; numbers
/// that are not contacts yet are reachable.
async fn count_listed(
    db: &impl Conn,
    tag_ids: &[i32],
    chunk: &[&String],
    summary: &mut AudienceSummary,
    prefixes: &mut Prefixes,
) -> Result<()> {
    let found = contact::Entity::find()
        .filter(contact::Column::Phone.is_in(chunk.iter().map(|p| p.as_str())))
        .all(db)
        .await?;
    let already: HashSet<i32> = if tag_ids.is_empty() || found.is_empty() {
        HashSet::new()
    } else {
        contact_tag::Entity::find()
            .select_only()
            .column(contact_tag::Column::ContactId)
            .filter(contact_tag::Column::TagId.is_in(tag_ids.iter().copied()))
            .filter(contact_tag::Column::ContactId.is_in(found.iter().map(|c| c.id)))
            .into_tuple::<i32>()
            .all(db)
            .await?
            .into_iter()
            .collect()
    };
    let known: HashSet<&str> = found.iter().map(|c| c.phone.as_str()).collect();
    let reachable = |phone: &str, summary: &mut AudienceSummary, prefixes: &mut Prefixes| {
        let us = heydoc_domain::phone::is_us(phone);
        add_reachable(summary, prefixes, phone.chars().take(4).collect(), 1, us);
    };
    for phone in chunk.iter().filter(|p| !known.contains(p.as_str())) {
        reachable(phone.as_str(), summary, prefixes);
    }
    for c in found.iter().filter(|c| !already.contains(&c.id)) {
        if c.opted_out_at.is_some() {
            summary.opted_out += 1;
        } else if c.suppressed_reason.is_some() {
            summary.suppressed += 1;
        } else {
            reachable(&c.phone, summary, prefixes);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::like_us;

    #[test]
    fn a_prefix_and_a_length_say_whether_numbers_are_in_the_us() {
        assert!(like_us("1415", 11));
        assert!(!like_us("1416", 11), "Toronto");
        assert!(!like_us("1415", 12), "not a +1 number's length");
        assert!(!like_us("9198", 12));
        assert!(like_us("US.1", 23));
    }
}
