//! Contacts out as CSV: every contact matching the inbox's filter, a page at a time, with
//! formula-looking cells guarded (the import removes the guard, so an export imports back).

use axum::body::Bytes;
use heydoc_store::contacts::Filter;

use crate::core::contacts::tags_of;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Contacts per page of an export.
const EXPORT_PAGE: u64 = 1000;

/// A cell starting with one of these is a formula to a spreadsheet (the full-width forms
/// too: some spreadsheets fold them): the export writes it with a leading `'` (which the
/// import removes), so a contact's name cannot run in Excel.
pub const FORMULA_STARTS: [char; 10] = [
    '=', '+', '-', '@', '\t', '\r', '\u{ff1d}', '\u{ff0b}', '\u{ff0d}', '\u{ff20}',
];

/// Whether a spreadsheet could read `cell` as a formula: it starts with a formula character,
/// after any spaces, or one of its lines does.
pub fn needs_guard(cell: &str) -> bool {
    cell.split(['\n', '\r'])
        .any(|line| line.trim_start_matches(' ').starts_with(FORMULA_STARTS))
        || cell.starts_with(FORMULA_STARTS)
}

/// `cell`, with a leading `'` when a spreadsheet would run it as a formula.
pub fn guard_cell(cell: String) -> String {
    if needs_guard(&cell) {
        format!("'{cell}")
    } else {
        cell
    }
}

/// The columns of an export; an import reads them back (the last three are read-only).
pub const EXPORT_HEADER: [&str; 7] = [
    "phone",
    "name",
    "tags",
    "attributes",
    "opted_out",
    "suppressed_reason",
    "last_message_at",
];

/// One page of the export after contact id `after`, and where the next starts.
pub async fn export_page(
    state: &AppState,
    q: Option<&str>,
    tag: Option<i32>,
    after: i32,
) -> ApiResult<(Bytes, Option<i32>)> {
    let filter = Filter {
        q: q.map(str::to_string),
        tag,
        said_by: None,
    };
    let rows = heydoc_store::contacts::by_id_after(&state.db, &filter, after, EXPORT_PAGE).await?;
    let ids: Vec<i32> = rows.iter().map(|c| c.id).collect();
    let mut tags = tags_of(&state.db, &ids).await?;
    let next = (rows.len() as u64 == EXPORT_PAGE)
        .then(|| ids.last().copied())
        .flatten();
    let mut out = Vec::new();
    for c in rows {
        let names: Vec<String> = tags
            .remove(&c.id)
            .unwrap_or_default()
            .into_iter()
            .map(|t| t.name)
            .collect();
        let attributes = match &c.attributes {
            serde_json::Value::Object(m) if m.is_empty() => String::new(),
            other => other.to_string(),
        };
        out.extend_from_slice(&csv_line(
            [
                c.phone,
                c.name,
                names.join(";"),
                attributes,
                c.opted_out_at.is_some().to_string(),
                c.suppressed_reason.unwrap_or_default(),
                c.last_message_at
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default(),
            ]
            .map(guard_cell),
        )?);
    }
    Ok((Bytes::from(out), next))
}

pub fn csv_line(fields: impl IntoIterator<Item = String>) -> ApiResult<Bytes> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer
        .write_record(fields)
        .map_err(|e| ApiError::Internal(format!("cannot write CSV: {e}")))?;
    writer
        .into_inner()
        .map(Bytes::from)
        .map_err(|e| ApiError::Internal(format!("cannot write CSV: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_way_a_cell_can_become_a_formula_is_guarded() {
        for hostile in [
            "=HYPERLINK(\"http://x\")",
            "+1+2",
            "-2+3",
            "@SUM(A1)",
            "  =1+1",
            "Ana\n=cmd|' /C calc'!A0",
            "\u{ff1d}1+1",
            "\tx",
        ] {
            assert!(
                guard_cell(hostile.to_string()).starts_with('\''),
                "{hostile:?}"
            );
        }
        for plain in ["Ana", "14155550123", "a=b", "x-ray", "e-mail@x"] {
            assert_eq!(guard_cell(plain.to_string()), plain);
        }
    }
}
