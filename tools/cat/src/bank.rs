//! Item bank files (JSON or CSV) and generated banks.
//!
//! JSON: an array of objects `{"id", "model", "a", "b", "c", "d", "concepts",
//! "exposure"}`, where `b` is a number for a dichotomous item and a list of
//! thresholds (GRM) or steps (GPCM, PCM) for a polytomous one. CSV: a header
//! naming the columns `id` and `b` or `b1`…`bm`, and optionally `model`, `a`,
//! `c`, `d`, `concepts` (names separated by `;`) and `exposure`; a dichotomous
//! row fills `b`, a polytomous one `b1`…`bm` (blank cells after its last
//! threshold). Other columns and fields are ignored.
//!
//! `model` is one of `1pl`, `2pl`, `3pl`, `4pl`, `grm`, `gpcm`, `pcm`; without
//! it, an item with a number `b` is dichotomous (as `4pl`), and one with
//! thresholds is refused. A model fixes some parameters (`1pl`: a = 1, c = 0,
//! d = 1; `2pl`: c = 0, d = 1; `3pl`: d = 1; `grm`, `gpcm`: c = 0, d = 1;
//! `pcm`: a = 1, c = 0, d = 1): they may be left out, and another value is an
//! error. Otherwise `c` defaults to 0, `d` to 1, `exposure` (the
//! Sympson–Hetter parameter) to 1.

use std::collections::HashMap;

use lectern_engine::{Item, ItemBank, ItemParams, MAX_CATEGORIES, PolyModel, PolyParams};
use serde::{Deserialize, Serialize};
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

    /// How many items of each model the bank holds, in [`MODELS`] order (models
    /// with no item left out); a dichotomous item counts under the smallest
    /// model that fits its parameters ([`Item::model_name`]).
    pub fn model_counts(&self) -> Vec<(&'static str, usize)> {
        let mut counts = [0usize; MODELS.len()];
        for i in 0..self.bank.len() {
            let name = self.bank.item(i).model_name();
            if let Some(k) = MODELS.iter().position(|m| *m == name) {
                counts[k] += 1;
            }
        }
        MODELS
            .into_iter()
            .zip(counts)
            .filter(|&(_, n)| n > 0)
            .collect()
    }
}

/// The model names a bank may use, in the order reports list them.
pub const MODELS: [&str; 7] = ["1pl", "2pl", "3pl", "4pl", "grm", "gpcm", "pcm"];

/// An item's model as a bank file names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Model {
    OnePl,
    TwoPl,
    ThreePl,
    FourPl,
    Poly(PolyModel),
}

impl Model {
    fn parse(name: &str) -> Option<Model> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "1pl" => Model::OnePl,
            "2pl" => Model::TwoPl,
            "3pl" => Model::ThreePl,
            "4pl" => Model::FourPl,
            "grm" => Model::Poly(PolyModel::Grm),
            "gpcm" => Model::Poly(PolyModel::Gpcm),
            "pcm" => Model::Poly(PolyModel::Pcm),
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Model::OnePl => "1pl",
            Model::TwoPl => "2pl",
            Model::ThreePl => "3pl",
            Model::FourPl => "4pl",
            Model::Poly(m) => m.name(),
        }
    }

    /// The values the model fixes for a, c and d (`None`: free).
    fn fixed(self) -> [Option<f64>; 3] {
        match self {
            Model::OnePl | Model::Poly(PolyModel::Pcm) => [Some(1.0), Some(0.0), Some(1.0)],
            Model::TwoPl | Model::Poly(_) => [None, Some(0.0), Some(1.0)],
            Model::ThreePl => [None, None, Some(1.0)],
            Model::FourPl => [None, None, None],
        }
    }
}

/// The file format of a bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
}

impl Format {
    /// "Thresholds were given", as this format gives them.
    fn thresholds_given(self) -> &'static str {
        match self {
            Format::Json => "b is a list",
            Format::Csv => "b1…bm are given",
        }
    }

    /// Where this format puts thresholds.
    fn thresholds(self) -> &'static str {
        match self {
            Format::Json => "a list of thresholds b",
            Format::Csv => "thresholds b1…bm",
        }
    }
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
    let builder = Builder::new(name, scale, format);
    let bank = match format {
        Format::Json => parse_json(builder, text)?,
        Format::Csv => parse_csv(builder, text)?,
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
    format: Format,
    items: Vec<Item>,
    tags: Vec<Vec<u16>>,
    exposure: Vec<f64>,
    ids: Vec<String>,
    index: HashMap<String, usize>,
    /// Where each item was found, for "first at row N" messages.
    places: Vec<Place>,
    concepts: Vec<String>,
    concept_index: HashMap<String, u16>,
}

/// The `b` of an item as read: one number, or thresholds.
#[derive(Debug, Clone, PartialEq)]
enum B {
    One(f64),
    List(Vec<f64>),
}

/// One item as read from a file, before validation.
struct RawItem {
    id: String,
    model: Option<String>,
    a: Option<f64>,
    b: Option<B>,
    c: Option<f64>,
    d: Option<f64>,
    concepts: Vec<String>,
    exposure: Option<f64>,
}

impl<'a> Builder<'a> {
    fn new(file: &'a str, scale: f64, format: Format) -> Self {
        Builder {
            file,
            scale,
            format,
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

    /// The item `raw` describes, on the D = 1 metric, or what is wrong with it.
    fn item(&self, raw: &RawItem) -> Result<Item, String> {
        let model = match (&raw.model, &raw.b) {
            (Some(name), _) => Model::parse(name).ok_or_else(|| {
                format!(
                    "unknown model {name:?} (expected one of {})",
                    MODELS.join(", ")
                )
            })?,
            (None, Some(B::List(_))) => {
                return Err(format!(
                    "{}: say which polytomous model it is (grm, gpcm or pcm)",
                    self.format.thresholds_given()
                ));
            }
            (None, _) => Model::FourPl,
        };
        let fixed = model.fixed();
        let param = |k: usize, label: &str, given: Option<f64>| match (given, fixed[k]) {
            (Some(x), Some(f)) if x != f => Err(format!(
                "a {} item has {label} = {f} (got {x})",
                model.name()
            )),
            _ => Ok(fixed[k].or(given)),
        };
        let (a, c, d) = (
            param(0, "a", raw.a)?,
            param(1, "c", raw.c)?,
            param(2, "d", raw.d)?,
        );
        let a = a.ok_or("a is missing")?;
        let item = match (model, &raw.b) {
            (Model::Poly(m), Some(B::List(b))) => PolyParams::new(m, a, b.clone()).map(Item::from),
            (Model::Poly(m), Some(B::One(_))) => {
                return Err(format!(
                    "a {m} item needs {} (got a single b)",
                    self.format.thresholds()
                ));
            }
            (Model::Poly(m), None) => {
                return Err(format!("a {m} item needs {}", self.format.thresholds()));
            }
            (_, Some(B::One(b))) => {
                ItemParams::new(a, *b, c.unwrap_or(0.0), d.unwrap_or(1.0)).map(Item::from)
            }
            (_, Some(B::List(b))) => {
                return Err(format!(
                    "a {} item has a single b (got a list of {})",
                    model.name(),
                    b.len()
                ));
            }
            (_, None) => return Err("b is missing".into()),
        };
        item.and_then(|i| i.scaled(self.scale))
            .map_err(|e| e.to_string())
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
        let item = self.item(&raw).map_err(fail)?;
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
        self.items.push(item);
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
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    a: Option<f64>,
    #[serde(default)]
    b: Option<Value>,
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

/// A JSON `b`: a number, or a list of numbers.
fn b_of(value: &Value) -> Option<B> {
    match value {
        Value::Number(n) => n.as_f64().map(B::One),
        Value::Array(xs) => xs
            .iter()
            .map(Value::as_f64)
            .collect::<Option<_>>()
            .map(B::List),
        _ => None,
    }
}

fn parse_json(mut builder: Builder<'_>, text: &str) -> Result<Bank, Error> {
    let name = builder.file;
    let items: Vec<JsonItem> = serde_json::from_str(text).map_err(|e| {
        Error::at(
            name,
            Place::LineColumn(e.line() as u64, e.column() as u64),
            json_message(&e),
        )
    })?;
    for (k, item) in items.into_iter().enumerate() {
        let n = k + 1;
        let Some(id) = id_of(&item.id) else {
            return Err(Error::at(
                name,
                Place::Item(n, None),
                format!("id must be a string or a number (got {})", item.id),
            ));
        };
        let place = Place::Item(n, Some(id.clone()));
        let b = match &item.b {
            None => None,
            Some(value) => Some(b_of(value).ok_or_else(|| {
                Error::at(
                    name,
                    place.clone(),
                    format!("b must be a number or a list of numbers (got {value})"),
                )
            })?),
        };
        let raw = RawItem {
            id,
            model: item.model,
            a: item.a,
            b,
            c: item.c,
            d: item.d,
            concepts: item.concepts.unwrap_or_default(),
            exposure: item.exposure,
        };
        builder.push(place, raw)?;
    }
    Ok(builder.finish())
}

// ---------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------

/// Column positions in a CSV header.
struct Columns {
    id: usize,
    model: Option<usize>,
    a: Option<usize>,
    b: Option<usize>,
    /// The columns b1, b2, … in order.
    thresholds: Vec<usize>,
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

/// The k of a threshold column name `bk` (`b1`, `b2`, …; also `b0`, `b10`, …
/// so that they can be refused).
fn threshold_column(key: &str) -> Option<usize> {
    let k: usize = key.strip_prefix('b')?.parse().ok()?;
    (key == format!("b{k}")).then_some(k)
}

fn columns(name: &str, header: &csv::StringRecord) -> Result<Columns, Error> {
    let at_header = |message: String| Error::at(name, Place::Row(1), message);
    let mut found: HashMap<String, usize> = HashMap::new();
    let mut thresholds: Vec<Option<usize>> = Vec::new();
    for (i, h) in header.iter().enumerate() {
        let key = h.trim().to_ascii_lowercase();
        if found.insert(key.clone(), i).is_some() && !key.is_empty() {
            return Err(at_header(format!(
                "column {key:?} appears twice in the header"
            )));
        }
        if let Some(k) = threshold_column(&key) {
            if !(1..MAX_CATEGORIES).contains(&k) {
                return Err(at_header(format!(
                    "column {key:?}: an item has at most {} thresholds, b1…b{} ({MAX_CATEGORIES} categories)",
                    MAX_CATEGORIES - 1,
                    MAX_CATEGORIES - 1
                )));
            }
            thresholds.resize(thresholds.len().max(k), None);
            thresholds[k - 1] = Some(i);
        }
    }
    let thresholds = thresholds
        .iter()
        .enumerate()
        .map(|(k, col)| {
            col.ok_or_else(|| {
                at_header(format!(
                    "the header has b{} but no b{}",
                    thresholds.len(),
                    k + 1
                ))
            })
        })
        .collect::<Result<Vec<usize>, Error>>()?;
    let id = found.get("id").copied();
    let b = found.get("b").copied();
    if id.is_none() || (b.is_none() && thresholds.is_empty()) {
        let missing = if id.is_none() {
            "\"id\""
        } else {
            "\"b\" or \"b1\""
        };
        return Err(at_header(format!(
            "the header has no {missing} column (it needs id, and b or b1…bm; model, a, c, d, concepts and exposure are optional)"
        )));
    }
    Ok(Columns {
        id: id.expect("checked above"),
        model: found.get("model").copied(),
        a: found.get("a").copied(),
        b,
        thresholds,
        c: found.get("c").copied(),
        d: found.get("d").copied(),
        concepts: found.get("concepts").copied(),
        exposure: found.get("exposure").copied(),
    })
}

/// A CSV data row, for reading its cells.
struct Row<'r> {
    file: &'r str,
    row: u64,
    record: &'r csv::StringRecord,
}

impl Row<'_> {
    fn fail(&self, message: String) -> Error {
        Error::at(self.file, Place::Row(self.row), message)
    }

    /// A cell: `None` when the column is absent or the cell empty.
    fn cell(&self, col: Option<usize>) -> Option<&str> {
        col.and_then(|c| self.record.get(c))
            .filter(|cell| !cell.is_empty())
    }

    /// A numeric cell: `None` when the column is absent or the cell empty.
    fn number(&self, col: Option<usize>, label: &str) -> Result<Option<f64>, Error> {
        self.cell(col)
            .map(|cell| {
                cell.parse::<f64>()
                    .map_err(|_| self.fail(format!("{label} is not a number (got {cell:?})")))
            })
            .transpose()
    }

    /// `b`, or the thresholds `b1`…`bm` (filled from b1 on, without gaps).
    fn b(&self, cols: &Columns) -> Result<Option<B>, Error> {
        let mut list = Vec::new();
        let mut gap = None;
        for (k, &col) in cols.thresholds.iter().enumerate() {
            match (self.number(Some(col), &format!("b{}", k + 1))?, gap) {
                (Some(_), Some(g)) => {
                    return Err(self.fail(format!(
                        "b{g} is empty but b{} is not (thresholds fill b1, b2, … in order)",
                        k + 1
                    )));
                }
                (Some(x), None) => list.push(x),
                (None, _) => gap = gap.or(Some(k + 1)),
            }
        }
        match (self.number(cols.b, "b")?, list.is_empty()) {
            (Some(_), false) => Err(self.fail(
                "both b and b1…bm are given (b for a dichotomous item, b1…bm for a polytomous one)"
                    .into(),
            )),
            (Some(b), true) => Ok(Some(B::One(b))),
            (None, false) => Ok(Some(B::List(list))),
            (None, true) => Ok(None),
        }
    }
}

fn parse_csv(mut builder: Builder<'_>, text: &str) -> Result<Bank, Error> {
    let name = builder.file;
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
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(name, text, &e))?;
        let row = Row {
            file: name,
            row: record.position().map_or(0, |p| row_of(text, p)),
            record: &record,
        };
        let raw = RawItem {
            id: record.get(cols.id).unwrap_or_default().to_owned(),
            model: row.cell(cols.model).map(str::to_owned),
            a: row.number(cols.a, "a")?,
            b: row.b(&cols)?,
            c: row.number(cols.c, "c")?,
            d: row.number(cols.d, "d")?,
            concepts: row
                .cell(cols.concepts)
                .map(|cell| cell.split(';').map(str::to_owned).collect())
                .unwrap_or_default(),
            exposure: row.number(cols.exposure, "exposure")?,
        };
        builder.push(Place::Row(row.row), raw)?;
    }
    Ok(builder.finish())
}

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

/// An item as [`to_json`] writes it.
#[derive(Serialize)]
struct OutItem<'a> {
    id: &'a str,
    model: &'static str,
    a: f64,
    b: OutB<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    c: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    d: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    concepts: Vec<&'a str>,
    exposure: f64,
}

/// A written `b`: one number, or the thresholds.
#[derive(Serialize)]
#[serde(untagged)]
enum OutB<'a> {
    One(f64),
    List(&'a [f64]),
}

/// The bank as a JSON array that [`load`] reads back to the same bank (with
/// scale 1: the parameters are those in memory, on the D = 1 metric), one item
/// per line: id, model, a, b (a number, or the thresholds), c and d
/// (dichotomous items), concepts (when tagged), exposure.
pub fn to_json(bank: &Bank) -> String {
    let mut out = String::from("[\n");
    for (i, id) in bank.ids.iter().enumerate() {
        let item = bank.bank.item(i);
        let (b, c, d) = match &item {
            Item::Dichotomous(p) => (OutB::One(p.b), Some(p.c), Some(p.d)),
            Item::Polytomous(p) => (OutB::List(p.thresholds()), None, None),
        };
        let line = OutItem {
            id,
            model: item.model_name(),
            a: item.a(),
            b,
            c,
            d,
            concepts: bank
                .bank
                .concepts(i)
                .iter()
                .map(|&c| bank.concepts[usize::from(c)].as_str())
                .collect(),
            exposure: bank.bank.exposure(i),
        };
        out.push_str("  ");
        out.push_str(&serde_json::to_string(&line).expect("an item serializes"));
        out.push_str(if i + 1 < bank.ids.len() { ",\n" } else { "\n" });
    }
    out.push_str("]\n");
    out
}

// ---------------------------------------------------------------------------
// Generated banks
// ---------------------------------------------------------------------------

/// How [`generate`] draws its items: `poly` as there.
pub fn recipe(poly: Option<(PolyModel, usize)>) -> String {
    use lectern_engine::sim::{GENERATED_POLYTOMOUS_RECIPE, GENERATED_RECIPE};
    match poly {
        None => GENERATED_RECIPE.to_owned(),
        Some((model, categories)) => format!(
            "{}, {categories} categories: {GENERATED_POLYTOMOUS_RECIPE}",
            model.name().to_uppercase()
        ),
    }
}

/// A reproducible bank of `n` items drawn from `seed`, with ids `g001`, `g002`,
/// … and no concepts: 3PL items (the engine's
/// [`generate_bank`](lectern_engine::sim::generate_bank)) when `poly` is
/// `None`, else items of that polytomous model with that many categories
/// ([`generate_polytomous_bank`](lectern_engine::sim::generate_polytomous_bank));
/// see [`recipe`].
pub fn generate(n: usize, seed: u64, poly: Option<(PolyModel, usize)>) -> Bank {
    let width = n.to_string().len();
    let ids: Vec<String> = (1..=n).map(|i| format!("g{i:0width$}")).collect();
    Bank {
        bank: match poly {
            None => lectern_engine::sim::generate_bank(n, seed),
            Some((model, categories)) => {
                lectern_engine::sim::generate_polytomous_bank(model, n, categories, seed)
            }
        },
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
    use super::*;

    fn csv(text: &str) -> Result<Bank, Error> {
        parse("bank.csv", text, 1.0, Format::Csv)
    }

    fn json(text: &str) -> Result<Bank, Error> {
        parse("bank.json", text, 1.0, Format::Json)
    }

    fn dich(a: f64, b: f64, c: f64, d: f64) -> Item {
        ItemParams::new(a, b, c, d).unwrap().into()
    }

    #[test]
    fn csv_with_optional_columns() {
        let bank = csv("id,a,b,c,d,concepts,exposure,text\n\
             q1,1.2,-0.5,0.2,,algebra;geometry,0.5,ignored\n\
             q2, 0.8 ,1,,0.9,geometry,,\n")
        .unwrap();
        assert_eq!(bank.ids, ["q1", "q2"]);
        assert_eq!(bank.bank.item(0), dich(1.2, -0.5, 0.2, 1.0));
        assert_eq!(bank.bank.item(1), dich(0.8, 1.0, 0.0, 0.9));
        assert_eq!(bank.concepts, ["algebra", "geometry"]);
        assert_eq!(bank.bank.concepts(0), &[0, 1]);
        assert_eq!(bank.bank.concepts(1), &[1]);
        assert_eq!(bank.bank.exposure(0), 0.5);
        assert_eq!(bank.bank.exposure(1), 1.0);
        assert!(bank.has_exposure);
        assert_eq!(bank.concept_id("geometry"), Some(1));
        assert_eq!(bank.concept_id("history"), None);
        assert_eq!(bank.model_counts(), [("3pl", 1), ("4pl", 1)]);
    }

    #[test]
    fn csv_polytomous_and_mixed() {
        let bank = csv("id,model,a,b,b1,b2,b3,b4,c,d\n\
             g,grm,1.5,,-1,0,1,2,,\n\
             p,PCM,,,0.5,-0.5,,,0,1\n\
             c,gpcm,0.8,,0.2,,,,,\n\
             r,1pl,,0.3,,,,,,\n\
             t,,1.1,0.4,,,,,0.2,\n")
        .unwrap();
        assert_eq!(
            bank.bank.item(0),
            Item::grm(1.5, vec![-1.0, 0.0, 1.0, 2.0]).unwrap()
        );
        assert_eq!(bank.bank.item(1), Item::pcm(vec![0.5, -0.5]).unwrap());
        assert_eq!(bank.bank.item(2), Item::gpcm(0.8, vec![0.2]).unwrap());
        assert_eq!(bank.bank.item(3), dich(1.0, 0.3, 0.0, 1.0));
        assert_eq!(bank.bank.item(4), dich(1.1, 0.4, 0.2, 1.0));
        assert_eq!(
            (0..5).map(|i| bank.bank.max_score(i)).collect::<Vec<_>>(),
            [4, 2, 1, 1, 1]
        );
        assert_eq!(
            bank.model_counts(),
            [("1pl", 1), ("3pl", 1), ("grm", 1), ("gpcm", 1), ("pcm", 1)]
        );
        // Thresholds alone, without a b column.
        let only = csv("id,model,a,b1,b2\nx,grm,1,0,1\n").unwrap();
        assert_eq!(only.bank.item(0), Item::grm(1.0, vec![0.0, 1.0]).unwrap());
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
        assert_eq!(err("id,a,b\nq1,,0\n"), "bank.csv: row 2: a is missing");
        assert_eq!(err("id,b\nq1,1\n"), "bank.csv: row 2: a is missing");
        assert_eq!(err("id,a,b\nq1,1,\n"), "bank.csv: row 2: b is missing");
        assert_eq!(
            err("id,a,b\nq1,1\n"),
            "bank.csv: row 2: expected 3 fields as in the header, found 2"
        );
        assert!(err("id,a\nq1,1\n").starts_with(
            "bank.csv: row 1: the header has no \"b\" or \"b1\" column (it needs id, and b or b1…bm;"
        ));
        assert!(err("a,b\n1,1\n").starts_with("bank.csv: row 1: the header has no \"id\" column"));
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
    fn csv_polytomous_errors_name_the_row() {
        let err = |text: &str| csv(text).unwrap_err().to_string();
        let head = "id,model,a,b,b1,b2,b3,c\n";
        for (row, message) in [
            (
                "g,grm,1,,0,1,0.5,",
                "graded-response thresholds must be strictly increasing (b3 is not above b2)",
            ),
            (
                "g,,1,,0,1,,",
                "b1…bm are given: say which polytomous model it is (grm, gpcm or pcm)",
            ),
            (
                "g,rasch,1,0,,,,",
                "unknown model \"rasch\" (expected one of 1pl, 2pl, 3pl, 4pl, grm, gpcm, pcm)",
            ),
            (
                "g,grm,1,0.5,,,,",
                "a grm item needs thresholds b1…bm (got a single b)",
            ),
            ("g,gpcm,1,,,,,", "a gpcm item needs thresholds b1…bm"),
            (
                "g,3pl,1,,0,1,,0.2",
                "a 3pl item has a single b (got a list of 2)",
            ),
            ("g,2pl,1,0,,,,0.2", "a 2pl item has c = 0 (got 0.2)"),
            ("g,1pl,1.5,0,,,,", "a 1pl item has a = 1 (got 1.5)"),
            ("g,pcm,2,,0,,,", "a pcm item has a = 1 (got 2)"),
            ("g,grm,1,,0,,,0.1", "a grm item has c = 0 (got 0.1)"),
            (
                "g,grm,1,,0,,1,",
                "b2 is empty but b3 is not (thresholds fill b1, b2, … in order)",
            ),
            (
                "g,grm,1,0,0,,,",
                "both b and b1…bm are given (b for a dichotomous item, b1…bm for a polytomous one)",
            ),
            ("g,grm,1,,0,x,,", "b2 is not a number (got \"x\")"),
        ] {
            assert_eq!(
                err(&format!("{head}ok,1pl,,0,,,,\n{row}\n")),
                format!("bank.csv: row 3: {message}"),
                "{row}"
            );
        }
        assert_eq!(
            err("id,a,b1,b10\nq,1,0,1\n"),
            "bank.csv: row 1: column \"b10\": an item has at most 9 thresholds, b1…b9 (10 categories)"
        );
        assert_eq!(
            err("id,a,b0\nq,1,0\n"),
            "bank.csv: row 1: column \"b0\": an item has at most 9 thresholds, b1…b9 (10 categories)"
        );
        assert_eq!(
            err("id,a,b1,b3\nq,1,0,1\n"),
            "bank.csv: row 1: the header has b3 but no b2"
        );
    }

    #[test]
    fn json_bank_and_errors() {
        let bank = json(r#"[{"id": "q1", "a": 1, "b": 0}, {"id": 7, "a": 2, "b": 1, "c": 0.1, "concepts": ["x"]}]"#).unwrap();
        assert_eq!(bank.ids, ["q1", "7"]);
        assert_eq!(bank.bank.item(1), dich(2.0, 1.0, 0.1, 1.0));
        assert!(!bank.has_exposure);
        let err = |text: &str| json(text).unwrap_err().to_string();
        assert_eq!(
            err(r#"[{"id": "q1", "a": 1, "b": 0}, {"id": "q2", "a": 0, "b": 0}]"#),
            "bank.json: item 2 (\"q2\"): a must be finite and > 0 (got 0)"
        );
        assert_eq!(
            err("[\n{\"id\": \"q1\", \"b\": 0}\n]"),
            "bank.json: item 1 (\"q1\"): a is missing"
        );
        assert_eq!(
            err("[\n{\"id\": \"q1\", \"a\": \"x\", \"b\": 0}\n]"),
            "bank.json: line 2, column 21: invalid type: string \"x\", expected f64"
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
    fn json_polytomous_and_errors() {
        let bank = json(
            r#"[{"id": "g", "model": "grm", "a": 1.4, "b": [-1, 0.5, 2]},
                {"id": "c", "model": "gpcm", "a": 0.9, "b": [0.4, -0.6], "concepts": ["x"]},
                {"id": "p", "model": "pcm", "b": [0.1, 0.2, 0.3]},
                {"id": "d", "model": "2pl", "a": 1.2, "b": 0.3, "c": 0, "d": 1}]"#,
        )
        .unwrap();
        assert_eq!(
            bank.bank.item(0),
            Item::grm(1.4, vec![-1.0, 0.5, 2.0]).unwrap()
        );
        assert_eq!(bank.bank.item(1), Item::gpcm(0.9, vec![0.4, -0.6]).unwrap());
        assert_eq!(bank.bank.item(2), Item::pcm(vec![0.1, 0.2, 0.3]).unwrap());
        assert_eq!(bank.bank.item(3), dich(1.2, 0.3, 0.0, 1.0));
        let err = |item: &str| {
            json(&format!(r#"[{{"id": "ok", "a": 1, "b": 0}}, {item}]"#))
                .unwrap_err()
                .to_string()
        };
        for (item, message) in [
            (
                r#"{"id": "x", "a": 1, "b": [0, 1]}"#,
                "b is a list: say which polytomous model it is (grm, gpcm or pcm)",
            ),
            (
                r#"{"id": "x", "model": "grm", "a": 1, "b": [0, 1, 1]}"#,
                "graded-response thresholds must be strictly increasing (b3 is not above b2)",
            ),
            (
                r#"{"id": "x", "model": "gpcm", "a": 1, "b": [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]}"#,
                "a polytomous item has 2 to 10 categories, i.e. 1 to 9 thresholds (got 11 categories)",
            ),
            (
                r#"{"id": "x", "model": "grm", "a": 1, "b": []}"#,
                "a polytomous item has 2 to 10 categories, i.e. 1 to 9 thresholds (got 1 category)",
            ),
            (
                r#"{"id": "x", "model": "nrm", "a": 1, "b": [0]}"#,
                "unknown model \"nrm\" (expected one of 1pl, 2pl, 3pl, 4pl, grm, gpcm, pcm)",
            ),
            (
                r#"{"id": "x", "model": "grm", "a": 1, "b": 0}"#,
                "a grm item needs a list of thresholds b (got a single b)",
            ),
            (
                r#"{"id": "x", "model": "4pl", "a": 1, "b": [0]}"#,
                "a 4pl item has a single b (got a list of 1)",
            ),
            (
                r#"{"id": "x", "model": "grm", "a": 1, "b": [0, "1"]}"#,
                "b must be a number or a list of numbers (got [0,\"1\"])",
            ),
            (
                r#"{"id": "x", "model": "3pl", "a": 1, "b": 0, "c": 0.2, "d": 0.9}"#,
                "a 3pl item has d = 1 (got 0.9)",
            ),
        ] {
            assert_eq!(
                err(item),
                format!("bank.json: item 2 (\"x\"): {message}"),
                "{item}"
            );
        }
    }

    #[test]
    fn written_json_reads_back_to_the_same_bank() {
        let mixed = csv("id,model,a,b,b1,b2,c,d,concepts,exposure\n\
             q1,3pl,1.3,-0.25,,,0.2,,x;y,0.42\n\
             q2,4pl,0.7,1.5,,,0.1,0.95,y,\n\
             q3,1pl,,0.1,,,,,,\n\
             q4,2pl,2.1,0.3,,,,,,1\n\
             g,grm,1.4,,-1,0.7,,,x,0.123456\n\
             p,pcm,,,0.4,-0.6,,,,\n")
        .unwrap();
        let generated = generate(30, 5, None);
        let poly = generate(12, 5, Some((PolyModel::Gpcm, 4)));
        for bank in [mixed, generated, poly] {
            let text = to_json(&bank);
            assert!(text.starts_with("[\n  {\"id\":"), "{text}");
            let back = json(&text).unwrap();
            // A generated bank stores no exposure parameters; a read one stores 1s.
            let k = (0..bank.bank.len())
                .map(|i| bank.bank.exposure(i))
                .collect();
            assert_eq!(back.bank, bank.bank.clone().with_exposure(k), "{text}");
            assert_eq!((&back.ids, &back.concepts), (&bank.ids, &bank.concepts));
            assert_eq!(back.has_exposure, bank.has_exposure);
        }
    }

    #[test]
    fn scale_multiplies_a() {
        let bank = parse(
            "b.csv",
            "id,model,a,b,b1,b2\nq,,1.0,0.5,,\ng,grm,1,,0,1\np,pcm,,,0,1\n",
            1.702,
            Format::Csv,
        )
        .unwrap();
        assert_eq!(bank.bank.item(0), dich(1.702, 0.5, 0.0, 1.0));
        assert_eq!(bank.bank.item(1), Item::grm(1.702, vec![0.0, 1.0]).unwrap());
        // A PCM item fixes a = 1, so scaled it is a GPCM item.
        assert_eq!(
            bank.bank.item(2),
            Item::gpcm(1.702, vec![0.0, 1.0]).unwrap()
        );
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
        let x = generate(500, 7, None);
        assert_eq!(x.bank, generate(500, 7, None).bank);
        assert_eq!(x.bank, lectern_engine::sim::generate_bank(500, 7));
        assert_ne!(x.bank, generate(500, 8, None).bank);
        assert_eq!((x.ids[0].as_str(), x.ids[499].as_str()), ("g001", "g500"));
        assert_eq!(x.index["g042"], 41);
        let grm = generate(40, 7, Some((PolyModel::Grm, 5)));
        assert_eq!(
            grm.bank,
            lectern_engine::sim::generate_polytomous_bank(PolyModel::Grm, 40, 5, 7)
        );
        assert_eq!(grm.model_counts(), [("grm", 40)]);
        assert!(recipe(Some((PolyModel::Grm, 5))).starts_with("GRM, 5 categories: location"));
    }
}
