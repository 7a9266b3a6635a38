//! `src/defaults.toml` is the one configuration reference; the README's configuration table
//! must say the same: every variable in it sets a key that exists, every key is in it, and a
//! default it shows as a literal (`` `80` ``, or the word "empty") is the embedded one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Variables the table documents that set no key: the file's own name, and what
/// heydoc-telemetry reads from the environment itself.
fn not_a_key(var: &str) -> bool {
    var == "HEYDOC_CONFIG" || var == "RUST_LOG" || var.starts_with("OTEL_")
}

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every key of `defaults.toml` as `section.key` (top-level keys bare), with its value as
/// written: strings without their quotes, anything else without a trailing comment.
fn defaults() -> BTreeMap<String, String> {
    let text = read("src/defaults.toml");
    let mut lines = text.lines().map(str::trim);
    let (mut keys, mut section) = (BTreeMap::new(), String::new());
    while let Some(line) = lines.next() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = format!("{}.", name.trim());
            continue;
        }
        let (key, raw) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("defaults.toml: cannot read the line `{line}`"));
        let mut raw = raw.trim().to_string();
        while raw.starts_with('[') && !raw.ends_with(']') {
            raw = format!("{raw} {}", lines.next().expect("an array is never closed"));
        }
        keys.insert(format!("{section}{}", key.trim()), value(&raw));
    }
    keys
}

fn value(raw: &str) -> String {
    match raw.chars().next() {
        Some(quote @ ('"' | '\'')) => {
            let inner = &raw[1..];
            assert!(!inner.contains('\\'), "escapes are not read here: {raw}");
            inner.split(quote).next().unwrap_or_default().to_string()
        }
        _ => raw.split(" #").next().unwrap_or(raw).trim().to_string(),
    }
}

/// `WELL_KNOWN_ENV` in `src/lib.rs`: the unprefixed variables and the keys they set, read from
/// the source so that this test cannot drift from it.
fn well_known() -> BTreeMap<String, String> {
    let lib = read("src/lib.rs");
    let (_, block) = lib
        .split_once("const WELL_KNOWN_ENV")
        .expect("no WELL_KNOWN_ENV");
    let block = block.split("];").next().unwrap_or_default();
    let map: BTreeMap<String, String> = block
        .lines()
        .filter_map(|line| {
            let pair = line.trim().strip_prefix("(\"")?.strip_suffix("\"),")?;
            let (var, key) = pair.split_once("\", \"")?;
            Some((var.to_string(), key.to_string()))
        })
        .collect();
    assert!(
        map.contains_key("DATABASE_URL"),
        "cannot read WELL_KNOWN_ENV in src/lib.rs (one `(\"VAR\", \"key\"),` per line)"
    );
    map
}

/// The key a variable sets, as `Settings::load_from` maps it: a well-known name, or
/// `HEYDOC_<SECTION>__<KEY>` lowercased with `__` as the dot (`HEYDOC_SENDER__MPS`: `sender.mps`).
fn key_of(var: &str, well_known: &BTreeMap<String, String>) -> Option<String> {
    if let Some(key) = well_known.get(var) {
        return Some(key.clone());
    }
    let rest = var.strip_prefix("HEYDOC_")?;
    Some(rest.to_lowercase().replace("__", "."))
}

/// The texts between backticks.
fn ticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The table's rows: the variables a row names, and its default cell.
fn table() -> Vec<(Vec<String>, String)> {
    let readme = read("../../README.md");
    let (_, after) = readme
        .split_once("| variable | default | meaning |")
        .expect("README.md: no configuration table (`| variable | default | meaning |`)");
    after
        .lines()
        .skip(2) // the end of the header line, and `| --- | --- | --- |`
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').splitn(3, '|').collect();
            assert_eq!(cells.len(), 3, "README.md: not three cells: {line}");
            (ticked(cells[0]), cells[1].trim().to_string())
        })
        .collect()
}

/// The defaults a cell shows as literals, one per variable of its row: `` `5`, `100` ``, or
/// "empty". `None` for words ("generated", "SQLite at ..."), which are not compared.
fn literals(cell: &str) -> Option<Vec<String>> {
    if cell == "empty" {
        return Some(vec![String::new()]);
    }
    let words = cell.split('`').step_by(2);
    let only_ticks = words
        .map(|s| s.replace(',', ""))
        .all(|s| s.trim().is_empty());
    (cell.contains('`') && only_ticks).then(|| ticked(cell))
}

fn check(what: &str, problems: Vec<String>) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

#[test]
fn every_variable_in_the_readme_sets_a_key_of_defaults_toml() {
    let (defaults, well_known) = (defaults(), well_known());
    let mut problems = Vec::new();
    let vars = table().into_iter().flat_map(|(vars, _)| vars);
    for var in vars.filter(|v| !not_a_key(v)) {
        match key_of(&var, &well_known) {
            None => problems.push(format!(
                "{var}: neither HEYDOC_* nor a well-known name (WELL_KNOWN_ENV in src/lib.rs)"
            )),
            Some(key) if !defaults.contains_key(&key) => problems.push(format!(
                "{var}: sets `{key}`, which src/defaults.toml does not have"
            )),
            Some(_) => {}
        }
    }
    check("README.md names variables that set no key", problems);
}

#[test]
fn every_key_of_defaults_toml_is_in_the_readme() {
    let well_known = well_known();
    let documented: BTreeSet<String> = table()
        .into_iter()
        .flat_map(|(vars, _)| vars)
        .filter_map(|var| key_of(&var, &well_known))
        .collect();
    let problems = defaults()
        .into_keys()
        .filter(|key| !documented.contains(key))
        .map(|key| {
            let var = format!("HEYDOC_{}", key.to_uppercase().replace('.', "__"));
            format!("{var} (`{key}` in src/defaults.toml) is not in README.md's table")
        })
        .collect();
    check("keys missing from README.md's table", problems);
}

#[test]
fn defaults_shown_in_the_readme_are_the_embedded_ones() {
    let (defaults, well_known) = (defaults(), well_known());
    let mut problems = Vec::new();
    for (vars, cell) in table() {
        if vars.iter().all(|v| not_a_key(v)) {
            continue;
        }
        let Some(shown) = literals(&cell) else {
            continue;
        };
        if shown.len() != vars.len() {
            problems.push(format!("{}: not one default per variable", vars.join(", ")));
            continue;
        }
        for (var, shown) in vars.iter().zip(shown) {
            let key = key_of(var, &well_known).unwrap_or_default();
            if let Some(embedded) = defaults.get(&key).filter(|embedded| **embedded != shown) {
                problems.push(format!(
                    "{var}: README.md shows {shown:?}, src/defaults.toml has {embedded:?}"
                ));
            }
        }
    }
    check("README.md's defaults are not defaults.toml's", problems);
}
