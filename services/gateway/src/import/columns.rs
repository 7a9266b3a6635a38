//! What a CSV's columns mean: `phone` (required), `name`, `tags` (separated by `;` or `|`),
//! `attributes` (a JSON object, as the export writes it), and any other column becomes a
//! custom attribute of that name. The export's read-only columns are ignored on the way back.

use heydoc_domain::{validate, Phone};
use heydoc_store::contact_import::ImportRow;
use serde_json::{Map, Value};

/// Tags one row may name: more is a spreadsheet mistake (or an attack on every inbox row).
pub const MAX_TAGS_PER_ROW: usize = 20;
/// Characters of one attribute's value.
pub const MAX_ATTRIBUTE_CHARS: usize = 1000;
/// Bytes of a contact's attributes as JSON (the API's limit too).
pub const MAX_ATTRIBUTES_BYTES: usize = 16 * 1024;

/// Columns the export writes that an import does not set.
const READ_ONLY: [&str; 3] = ["opted_out", "suppressed_reason", "last_message_at"];

/// Where each known column is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    phone: usize,
    name: Option<usize>,
    tags: Option<usize>,
    attributes: Option<usize>,
    /// Other columns: custom attributes, by header name.
    custom: Vec<(usize, String)>,
    width: usize,
}

impl Columns {
    /// Reads the header row; an error says what is wrong with it.
    pub fn from_header(header: &csv::StringRecord) -> Result<Self, String> {
        let names: Vec<String> = header
            .iter()
            .map(|h| h.trim().trim_start_matches('\u{feff}').to_string())
            .collect();
        let find = |wanted: &[&str]| {
            names
                .iter()
                .position(|n| wanted.iter().any(|w| n.eq_ignore_ascii_case(w)))
        };
        let phone = find(&["phone", "phone_number"]).ok_or_else(|| {
            format!(
                "the header needs a \"phone\" column; it has {}",
                names
                    .iter()
                    .map(|n| format!("{n:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        let name = find(&["name"]);
        let tags = find(&["tags"]);
        let attributes = find(&["attributes"]);
        let mut custom = Vec::new();
        for (i, n) in names.iter().enumerate() {
            if [Some(phone), name, tags, attributes].contains(&Some(i))
                || READ_ONLY.iter().any(|r| n.eq_ignore_ascii_case(r))
            {
                continue;
            }
            if n.is_empty() {
                return Err(format!("column {} has no name in the header", i + 1));
            }
            if custom.iter().any(|(_, c): &(usize, String)| c == n) {
                return Err(format!("the header names {n:?} twice"));
            }
            custom.push((i, n.clone()));
        }
        Ok(Self {
            phone,
            name,
            tags,
            attributes,
            custom,
            width: names.len(),
        })
    }

    /// One record as a contact row, or why it is refused.
    pub fn row(&self, line: u64, record: &csv::StringRecord) -> Result<ImportRow, String> {
        if record.len() > self.width {
            return Err(format!(
                "{} fields, but the header has {}",
                record.len(),
                self.width
            ));
        }
        let field = |i: usize| unguard(record.get(i).map(str::trim).unwrap_or_default());
        let raw_phone = field(self.phone);
        if raw_phone.is_empty() {
            return Err("phone is empty".into());
        }
        let phone = Phone::parse(raw_phone).map_err(|e| format!("phone: {e}"))?;
        let name = self
            .name
            .map(field)
            .filter(|n| !n.is_empty())
            .map(str::to_string);
        if let Some(n) = &name {
            validate::contact_name(n).map_err(|e| format!("name: {e}"))?;
        }
        let mut tags: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for t in self
            .tags
            .map(field)
            .unwrap_or_default()
            .split([';', '|'])
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            validate::tag_name(t).map_err(|e| format!("tags: {e} ({t:?})"))?;
            if seen.insert(t.to_lowercase()) {
                if tags.len() == MAX_TAGS_PER_ROW {
                    return Err(format!("tags: at most {MAX_TAGS_PER_ROW} per contact"));
                }
                tags.push(t.to_string());
            }
        }
        let mut attributes = Map::new();
        if let Some(json) = self.attributes.map(field).filter(|j| !j.is_empty()) {
            match serde_json::from_str::<Value>(json) {
                Ok(Value::Object(map)) => attributes.extend(map),
                _ => return Err("attributes: not a JSON object".into()),
            }
        }
        for (i, key) in &self.custom {
            let value = field(*i);
            if !value.is_empty() {
                attributes.insert(key.clone(), Value::String(value.to_string()));
            }
        }
        for (key, value) in &attributes {
            if value
                .as_str()
                .is_some_and(|v| v.chars().count() > MAX_ATTRIBUTE_CHARS)
            {
                return Err(format!("{key}: at most {MAX_ATTRIBUTE_CHARS} characters"));
            }
        }
        if Value::Object(attributes.clone()).to_string().len() > MAX_ATTRIBUTES_BYTES {
            return Err(format!(
                "attributes: at most {} KiB of JSON per contact",
                MAX_ATTRIBUTES_BYTES / 1024
            ));
        }
        Ok(ImportRow {
            line,
            phone,
            name,
            tags,
            attributes,
        })
    }
}

/// A row as the file had it, its cells joined by commas (for a rejected row's report).
pub fn row_text(record: &csv::StringRecord) -> String {
    let text = record.iter().collect::<Vec<_>>().join(",");
    text.chars().take(500).collect()
}

/// What the export guarded against spreadsheet formulas (`'=...`) reads back as written.
fn unguard(field: &str) -> &str {
    match field.strip_prefix('\'') {
        Some(rest) if crate::import::export::needs_guard(rest) => rest,
        _ => field,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(fields: &[&str]) -> csv::StringRecord {
        csv::StringRecord::from(fields.to_vec())
    }

    #[test]
    fn the_header_maps_known_and_custom_columns() {
        let c = Columns::from_header(&rec(&[
            "\u{feff}Phone",
            "Name",
            "tags",
            "City",
            "opted_out",
        ]))
        .expect("header");
        let row = c
            .row(
                2,
                &rec(&[
                    "+91 98000 00001",
                    " Anita ",
                    "Diabetes; VIP|Diabetes",
                    "Pune",
                    "true",
                ]),
            )
            .expect("row");
        assert_eq!(row.phone.as_str(), "919800000001");
        assert_eq!(row.name.as_deref(), Some("Anita"));
        assert_eq!(row.tags, vec!["Diabetes", "VIP"]);
        assert_eq!(
            Value::Object(row.attributes),
            serde_json::json!({"City": "Pune"})
        );
        // What the export guarded comes back as it was; other quotes stay.
        let guarded = c
            .row(
                3,
                &rec(&["919800000002", "'=HYPERLINK(1)", "", "'Pune", ""]),
            )
            .expect("row");
        assert_eq!(guarded.name.as_deref(), Some("=HYPERLINK(1)"));
        assert_eq!(
            Value::Object(guarded.attributes),
            serde_json::json!({"City": "'Pune"})
        );
    }

    #[test]
    fn bad_headers_and_rows_say_why() {
        assert!(Columns::from_header(&rec(&["name", "city"]))
            .unwrap_err()
            .contains("\"phone\" column"));
        assert!(Columns::from_header(&rec(&["phone", "city", "city"]))
            .unwrap_err()
            .contains("twice"));
        let c =
            Columns::from_header(&rec(&["phone", "name", "tags", "attributes"])).expect("header");
        let reason = |fields: &[&str]| c.row(9, &rec(fields)).unwrap_err();
        assert_eq!(reason(&["", "x"]), "phone is empty");
        assert!(reason(&["12ab", "x"]).starts_with("phone: "));
        assert!(reason(&["14155550001", &"x".repeat(300)]).starts_with("name: "));
        assert!(reason(&["14155550001", "x", &"t".repeat(65)]).starts_with("tags: "));
        assert_eq!(
            reason(&["14155550001", "", "", "[1]"]),
            "attributes: not a JSON object"
        );
        assert!(reason(&["14155550001", "", "", "", "extra"]).contains("5 fields"));
        // A short row is fine: missing columns are empty.
        assert!(c.row(3, &rec(&["14155550001"])).is_ok());
        let with_json = c
            .row(
                4,
                &rec(&["14155550001", "", "", r#"{"zip":"411001","n":2}"#]),
            )
            .expect("row");
        assert_eq!(
            Value::Object(with_json.attributes),
            serde_json::json!({"zip": "411001", "n": 2})
        );
    }
}
