//! Item bank files (JSON or CSV) and generated banks.
//!
//! JSON: an array of objects `{"id", "a", "b", "c", "d", "concepts", "exposure"}`;
//! CSV: a header naming the columns `id`, `a`, `b` and optionally `c`, `d`,
//! `concepts` (names separated by `;`) and `exposure`. Other columns and fields
//! are ignored. `c` defaults to 0, `d` to 1, `exposure` (the Sympson–Hetter
//! parameter) to 1.

use std::collections::HashMap;

use lectern_engine::{ItemBank, ItemParams};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Place, json_message, read_text};

/// An item bank with the names that files use for items and concepts.
#[derive(Debug, Clone)]
pub struct Bank {
    /// The engine's bank (parameters on the D = 1 metric, after `--scale`).
    pub bank: ItemBank,
    /// Item ids, by item index.
    pub ids: Vec<String>,
    /// Item index of each id.
    pub index: HashMap<String, usize>,
    /// Concept names, by concept id (in order of first appearance in the file).
    pub concepts: Vec<String>,
    /// True when at least one item has an exposure parameter below 1.
    pub has_exposure: bool,
}

impl Bank {
    /// Concept id of a concept name.
    pub fn concept_id(&self, name: &str) -> Option<u16> {
        self.concepts
            .iter()
            .position(|c| c == name)
            .and_then(|i| u16::try_from(i).ok())
    }
}

/// The file format of a bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
}

/// Picks the format from the extension (`.json`, `.csv`), else from the content:
/// a first non-blank character `[` means JSON.
fn format_of(path: &str, text: &str) -> Format {
    let ext = std::path::Path::new(path)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("json") => Format::Json,
        Some("csv") => Format::Csv,
        _ if text.trim_start().starts_with('[') => Format::Json,
        _ => Format::Csv,
    }
}

/// Loads a bank file; every item's `a` is multiplied by `scale` (the constant D).
pub fn load(path: &str, scale: f64) -> Result<Bank, Error> {
    let (name, text) = read_text(path)?;
    parse(&name, &text, scale, format_of(path, &text))
}

fn parse(name: &str, text: &str, scale: f64, format: Format) -> Result<Bank, Error> {
    let bank = match format {
        Format::Json => parse_json(name, text, scale)?,
        Format::Csv => parse_csv(name, text, scale)?,
    };
    if bank.ids.is_empty() {
        return Err(Error::file(name, "the bank has no items"));
    }
    Ok(bank)
}

/// Collects validated items, in file order.
struct Builder<'a> {
    file: &'a str,
    scale: f64,
    items: Vec<ItemParams>,
    tags: Vec<Vec<u16>>,
    exposure: Vec<f64>,
    ids: Vec<String>,
    index: HashMap<String, usize>,
    /// Where each item was found, for "first at row N" messages.
    places: Vec<Place>,
    concepts: Vec<String>,
    concept_index: HashMap<String, u16>,
}

/// One item as read from a file, before validation.
struct RawItem {
    id: String,
    a: f64,
    b: f64,
    c: Option<f64>,
    d: Option<f64>,
    concepts: Vec<String>,
    exposure: Option<f64>,
}

impl<'a> Builder<'a> {
    fn new(file: &'a str, scale: f64) -> Self {
        Builder {
            file,
            scale,
            items: Vec::new(),
            tags: Vec::new(),
            exposure: Vec::new(),
            ids: Vec::new(),
            index: HashMap::new(),
            places: Vec::new(),
            concepts: Vec::new(),
            concept_index: HashMap::new(),
        }
    }

    fn push(&mut self, place: Place, raw: RawItem) -> Result<(), Error> {
        let fail = |message: String| Error::at(self.file, place.clone(), message);
        if raw.id.is_empty() {
            return Err(fail("the item id is empty".into()));
        }
        if let Some(&first) = self.index.get(&raw.id) {
            let first = match &self.places[first] {
                Place::Item(n, _) => format!("item {n}"),
                other => other.to_string(),
            };
            return Err(fail(format!(
                "duplicate item id {:?} (first at {first})",
                raw.id
            )));
        }
        let params = ItemParams::new(raw.a, raw.b, raw.c.unwrap_or(0.0), raw.d.unwrap_or(1.0))
            .and_then(|p| p.scaled(self.scale))
            .map_err(|e| fail(e.to_string()))?;
        let exposure = raw.exposure.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&exposure) {
            return Err(fail(format!("exposure must be in [0, 1] (got {exposure})")));
        }
        let mut tags = Vec::new();
        for concept in raw.concepts {
            let concept = concept.trim();
            if concept.is_empty() {
                continue;
            }
            let id = match self.concept_index.get(concept) {
                Some(&id) => id,
                None => {
                    let id = u16::try_from(self.concepts.len())
                        .map_err(|_| fail("more than 65,536 distinct concepts".into()))?;
                    self.concepts.push(concept.to_owned());
                    self.concept_index.insert(concept.to_owned(), id);
                    id
                }
            };
            if !tags.contains(&id) {
                tags.push(id);
            }
        }
        self.index.insert(raw.id.clone(), self.ids.len());
        self.ids.push(raw.id);
        self.items.push(params);
        self.tags.push(tags);
        self.exposure.push(exposure);
        self.places.push(place);
        Ok(())
    }

    fn finish(self) -> Bank {
        let has_exposure = self.exposure.iter().any(|&k| k < 1.0);
        let bank = ItemBank::new(self.items, self.tags).with_exposure(self.exposure);
        Bank {
            bank,
            ids: self.ids,
            index: self.index,
            concepts: self.concepts,
            has_exposure,
        }
    }
}

// ---------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct JsonItem {
    id: Value,
    a: f64,
    b: f64,
    #[serde(default)]
    c: Option<f64>,
    #[serde(default)]
    d: Option<f64>,
    #[serde(default)]
    concepts: Option<Vec<String>>,
    #[serde(default)]
    exposure: Option<f64>,
}

/// An id given as a JSON string or number.
pub fn id_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn parse_json(name: &str, text: &str, scale: f64) -> Result<Bank, Error> {
    let items: Vec<JsonItem> = serde_json::from_str(text).map_err(|e| {
        Error::at(
            name,
            Place::LineColumn(e.line() as u64, e.column() as u64),
            json_message(&e),
        )
    })?;
    let mut builder = Builder::new(name, scale);
    for (k, item) in items.into_iter().enumerate() {
        let n = k + 1;
        let Some(id) = id_of(&item.id) else {
            return Err(Error::at(
                name,
                Place::Item(n, None),
                format!("id must be a string or a number (got {})", item.id),
            ));
        };
        let raw = RawItem {
            id: id.clone(),
            a: item.a,
            b: item.b,
            c: item.c,
            d: item.d,
            concepts: item.concepts.unwrap_or_default(),
            exposure: item.exposure,
        };
        builder.push(Place::Item(n, Some(id)), raw)?;
    }
    Ok(builder.finish())
}

// ---------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------

/// Column positions in a CSV header.
struct Columns {
    id: usize,
    a: usize,
    b: usize,
    c: Option<usize>,
    d: Option<usize>,
    concepts: Option<usize>,
    exposure: Option<usize>,
}

/// The line (1-based) on which the record at `pos` starts.
///
/// The csv crate's own line count skips blank lines and its byte offset may point
/// at the line breaks before the record, so the line is counted here from the
/// first byte that is not a line break.
fn row_of(text: &str, pos: &csv::Position) -> u64 {
    let bytes = text.as_bytes();
    let mut start = usize::try_from(pos.byte()).map_or(bytes.len(), |b| b.min(bytes.len()));
    while start < bytes.len() && matches!(bytes[start], b'\r' | b'\n') {
        start += 1;
    }
    1 + bytes[..start].iter().filter(|&&b| b == b'\n').count() as u64
}

fn csv_error(name: &str, text: &str, e: &csv::Error) -> Error {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            pos: Some(pos),
            expected_len,
            len,
        } => Error::at(
            name,
            Place::Row(row_of(text, pos)),
            format!("expected {expected_len} fields as in the header, found {len}"),
        ),
        _ => match e.position() {
            Some(pos) => Error::at(name, Place::Row(row_of(text, pos)), e.to_string()),
            None => Error::file(name, e.to_string()),
        },
    }
}

fn columns(name: &str, header: &csv::StringRecord) -> Result<Columns, Error> {
    let mut found: HashMap<String, usize> = HashMap::new();
    for (i, h) in header.iter().enumerate() {
        let key = h.trim().to_ascii_lowercase();
        if found.insert(key.clone(), i).is_some() && !key.is_empty() {
            return Err(Error::at(
                name,
                Place::Row(1),
                format!("column {key:?} appears twice in the header"),
            ));
        }
    }
    let required = |col: &str| {
        found.get(col).copied().ok_or_else(|| {
            Error::at(
                name,
                Place::Row(1),
                format!(
                    "the header has no {col:?} column (it needs id, a and b; c, d, concepts and exposure are optional)"
                ),
            )
        })
    };
    Ok(Columns {
        id: required("id")?,
        a: required("a")?,
        b: required("b")?,
        c: found.get("c").copied(),
        d: found.get("d").copied(),
        concepts: found.get("concepts").copied(),
        exposure: found.get("exposure").copied(),
    })
}

/// A numeric cell: `None` when the column is absent or the cell empty.
fn number(
    name: &str,
    row: u64,
    record: &csv::StringRecord,
    col: Option<usize>,
    label: &str,
) -> Result<Option<f64>, Error> {
    let Some(cell) = col.and_then(|c| record.get(c)) else {
        return Ok(None);
    };
    if cell.is_empty() {
        return Ok(None);
    }
    cell.parse::<f64>().map(Some).map_err(|_| {
        Error::at(
            name,
            Place::Row(row),
            format!("{label} is not a number (got {cell:?})"),
        )
    })
}

fn required_number(
    name: &str,
    row: u64,
    record: &csv::StringRecord,
    col: usize,
    label: &str,
) -> Result<f64, Error> {
    number(name, row, record, Some(col), label)?
        .ok_or_else(|| Error::at(name, Place::Row(row), format!("{label} is empty")))
}

fn parse_csv(name: &str, text: &str, scale: f64) -> Result<Bank, Error> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| csv_error(name, text, &e))?
        .clone();
    if header.iter().all(str::is_empty) {
        return Err(Error::file(
            name,
            "the file is empty (expected a CSV header)",
        ));
    }
    let cols = columns(name, &header)?;
    let mut builder = Builder::new(name, scale);
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(name, text, &e))?;
        let row = record.position().map_or(0, |p| row_of(text, p));
        let id = record.get(cols.id).unwrap_or_default().to_owned();
        let raw = RawItem {
            id,
            a: required_number(name, row, &record, cols.a, "a")?,
            b: required_number(name, row, &record, cols.b, "b")?,
            c: number(name, row, &record, cols.c, "c")?,
            d: number(name, row, &record, cols.d, "d")?,
            concepts: cols
                .concepts
                .and_then(|c| record.get(c))
                .map(|cell| cell.split(';').map(str::to_owned).collect())
                .unwrap_or_default(),
            exposure: number(name, row, &record, cols.exposure, "exposure")?,
        };
        builder.push(Place::Row(row), raw)?;
    }
    Ok(builder.finish())
}

// ---------------------------------------------------------------------------
// Generated banks
// ---------------------------------------------------------------------------

pub use lectern_engine::sim::GENERATED_RECIPE;

/// A reproducible bank of `n` items drawn from `seed` (the engine's
/// [`generate_bank`](lectern_engine::sim::generate_bank), see [`GENERATED_RECIPE`]),
/// with ids `g001`, `g002`, … and no concepts.
pub fn generate(n: usize, seed: u64) -> Bank {
    let width = n.to_string().len();
    let ids: Vec<String> = (1..=n).map(|i| format!("g{i:0width$}")).collect();
    Bank {
        bank: lectern_engine::sim::generate_bank(n, seed),
        index: ids
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, id)| (id, i))
            .collect(),
        ids,
        concepts: Vec::new(),
        has_exposure: false,
    }
}

#[cfg(test)]
mod tests {
    fn dich(bank: &lectern_engine::ItemBank, i: usize) -> ItemParams {
        match bank.item(i) {
            lectern_engine::Item::Dichotomous(p) => p,
            other => panic!("not dichotomous: {other:?}"),
        }
    }

    use super::*;

    fn csv(text: &str) -> Result<Bank, Error> {
        parse("bank.csv", text, 1.0, Format::Csv)
    }

    fn json(text: &str) -> Result<Bank, Error> {
        parse("bank.json", text, 1.0, Format::Json)
    }

    #[test]
    fn csv_with_optional_columns() {
        let bank = csv("id,a,b,c,d,concepts,exposure,text\n\
             q1,1.2,-0.5,0.2,,algebra;geometry,0.5,ignored\n\
             q2, 0.8 ,1,,0.9,geometry,,\n")
        .unwrap();
        assert_eq!(bank.ids, ["q1", "q2"]);
        assert_eq!(
            dich(&bank.bank, 0),
            ItemParams::new(1.2, -0.5, 0.2, 1.0).unwrap()
        );
        assert_eq!(
            dich(&bank.bank, 1),
            ItemParams::new(0.8, 1.0, 0.0, 0.9).unwrap()
        );
        assert_eq!(bank.concepts, ["algebra", "geometry"]);
        assert_eq!(bank.bank.concepts(0), &[0, 1]);
        assert_eq!(bank.bank.concepts(1), &[1]);
        assert_eq!(bank.bank.exposure(0), 0.5);
        assert_eq!(bank.bank.exposure(1), 1.0);
        assert!(bank.has_exposure);
        assert_eq!(bank.concept_id("geometry"), Some(1));
        assert_eq!(bank.concept_id("history"), None);
    }

    #[test]
    fn csv_errors_name_the_row() {
        let err = |text: &str| csv(text).unwrap_err().to_string();
        assert_eq!(
            err("id,a,b\nq1,1,0\n\nq2,-1,0\n"),
            "bank.csv: row 4: a must be finite and > 0 (got -1)"
        );
        assert_eq!(
            err("id,a,b\nq1,1,0\nq1,1,1\n"),
            "bank.csv: row 3: duplicate item id \"q1\" (first at row 2)"
        );
        assert_eq!(
            err("id,a,b\nq1,x,0\n"),
            "bank.csv: row 2: a is not a number (got \"x\")"
        );
        assert_eq!(err("id,a,b\nq1,,0\n"), "bank.csv: row 2: a is empty");
        assert_eq!(
            err("id,a,b\nq1,1\n"),
            "bank.csv: row 2: expected 3 fields as in the header, found 2"
        );
        assert!(err("id,b\nq1,1\n").starts_with("bank.csv: row 1: the header has no \"a\" column"));
        assert_eq!(err("id,a,b\n"), "bank.csv: the bank has no items");
        // Blank lines, Windows line ends and quoted line breaks still count.
        assert_eq!(
            err("id,a,b\r\nq1,1,0\r\n\r\n\r\nq2,0,0\r\n"),
            "bank.csv: row 5: a must be finite and > 0 (got 0)"
        );
        assert_eq!(
            err("id,a,b,concepts\nq1,1,0,\"x;\ny\"\n\nq2,1,nan,\n"),
            "bank.csv: row 5: b must be finite (got NaN)"
        );
        assert_eq!(
            err("id,a,b,exposure\nq1,1,0,1.5\n"),
            "bank.csv: row 2: exposure must be in [0, 1] (got 1.5)"
        );
        assert_eq!(
            err("id,a,b,c,d\nq1,1,0,0.5,0.4\n"),
            "bank.csv: row 2: c must be < d (got c = 0.5, d = 0.4)"
        );
    }

    #[test]
    fn json_bank_and_errors() {
        let bank = json(r#"[{"id": "q1", "a": 1, "b": 0}, {"id": 7, "a": 2, "b": 1, "c": 0.1, "concepts": ["x"]}]"#).unwrap();
        assert_eq!(bank.ids, ["q1", "7"]);
        assert_eq!(dich(&bank.bank, 1).c, 0.1);
        assert!(!bank.has_exposure);
        let err = |text: &str| json(text).unwrap_err().to_string();
        assert_eq!(
            err(r#"[{"id": "q1", "a": 1, "b": 0}, {"id": "q2", "a": 0, "b": 0}]"#),
            "bank.json: item 2 (\"q2\"): a must be finite and > 0 (got 0)"
        );
        assert_eq!(
            err("[\n{\"id\": \"q1\", \"b\": 0}\n]"),
            "bank.json: line 2, column 20: missing field `a`"
        );
        assert_eq!(
            err(r#"[{"id": ["q1"], "a": 1, "b": 0}]"#),
            "bank.json: item 1: id must be a string or a number (got [\"q1\"])"
        );
        assert_eq!(
            err(r#"[{"id": "q1", "a": 1, "b": 0}, {"id": "q1", "a": 1, "b": 0}]"#),
            "bank.json: item 2 (\"q1\"): duplicate item id \"q1\" (first at item 1)"
        );
    }

    #[test]
    fn scale_multiplies_a() {
        let bank = parse("b.csv", "id,a,b\nq,1.0,0.5\n", 1.702, Format::Csv).unwrap();
        assert!((dich(&bank.bank, 0).a - 1.702).abs() < 1e-15);
        assert_eq!(dich(&bank.bank, 0).b, 0.5);
    }

    #[test]
    fn format_by_extension_then_content() {
        assert_eq!(format_of("x.JSON", "id,a"), Format::Json);
        assert_eq!(format_of("x.csv", "[1]"), Format::Csv);
        assert_eq!(format_of("x.txt", "  \n[{}]"), Format::Json);
        assert_eq!(format_of("bank", "id,a,b"), Format::Csv);
    }

    #[test]
    fn generated_banks_are_reproducible() {
        let x = generate(500, 7);
        assert_eq!(x.bank, generate(500, 7).bank);
        assert_eq!(x.bank, lectern_engine::sim::generate_bank(500, 7));
        assert_ne!(x.bank, generate(500, 8).bank);
        assert_eq!((x.ids[0].as_str(), x.ids[499].as_str()), ("g001", "g500"));
        assert_eq!(x.index["g042"], 41);
    }
}
