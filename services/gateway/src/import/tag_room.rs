//! HeyDoc holds at most `MAX_TAGS` tags. Rows whose new tags would pass that are refused, by the
//! import and by its preview alike.

use std::collections::HashSet;

use heydoc_store::contact_import::ImportRow;
use heydoc_store::tags::MAX_TAGS;
use heydoc_store::{Db, StoreError};

/// Why such a row is refused.
pub fn reason() -> String {
    format!("tags: HeyDoc holds at most {MAX_TAGS} tags; use existing ones or delete some first")
}

/// The lines of `rows` that would create tags beyond the limit (new tags are allowed in the
/// order of their names until the room runs out).
pub async fn lines_over(db: &Db, rows: &[ImportRow]) -> Result<HashSet<u64>, StoreError> {
    let mut names: Vec<String> = rows
        .iter()
        .flat_map(|r| r.tags.iter().map(|t| t.to_lowercase()))
        .collect();
    names.sort_unstable();
    names.dedup();
    let unknown = heydoc_store::tags::unknown_names(db, &names).await?;
    if unknown.is_empty() {
        return Ok(HashSet::new());
    }
    let room = MAX_TAGS.saturating_sub(heydoc_store::tags::count(db).await?);
    // The new tags past the room (`unknown` is in name order).
    let beyond: HashSet<&str> = unknown
        .iter()
        .skip(usize::try_from(room).unwrap_or(usize::MAX))
        .map(String::as_str)
        .collect();
    if beyond.is_empty() {
        return Ok(HashSet::new());
    }
    Ok(rows
        .iter()
        .filter(|r| {
            r.tags
                .iter()
                .any(|t| beyond.contains(t.to_lowercase().as_str()))
        })
        .map(|r| r.line)
        .collect())
}
