//! `lectern-cat calibrate`: item parameters from recorded responses, by
//! marginal maximum likelihood (see `lectern_engine::calibrate`).

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use lectern_engine::calibrate::{
    self, Calibration, Config, DataError, ItemSpec, Model, Outcome, Responses,
};
use lectern_engine::{Item, MAX_CATEGORIES, PolyModel};
use serde::Serialize;
use serde_json::Value;

use crate::bank::{self, id_of};
use crate::error::{Error, Place, json_message, read_text};
use crate::positive;

/// Extra help text of `calibrate`.
pub const AFTER_HELP: &str = "\
Responses, in one of three forms (a missing response means the item was not
given to that person, never that it was answered wrong):
  JSON lines (any name but *.csv):  {\"person\": \"p1\", \"item\": \"q7\", \"score\": 1}
  long CSV (columns person, item, score):  p1,q7,1
  wide CSV (a person column, then one column per item; blank = not given):
    person,q1,q2,q3
    p1,1,,0
Scores are integers 0..m (1/0 for right/wrong items).

Models: every item is calibrated under --model (default 2pl), unless --bank
gives it one (its `model` field, or the smallest dichotomous model its
parameters fit). Items of --fixed keep their parameters and set the scale
(fixed-item calibration); the latent mean and SD are then estimated. Without
fixed items the latent distribution is N(0, 1), except that its SD is
estimated when no free item has a slope (1pl, pcm only). A polytomous item has
as many categories as its --bank entry, else its highest score + 1. Items that
the data cannot identify (one score only, an empty category) are skipped and
listed.

Output: one JSON object (iterations, converged, log_likelihood, aic, bic,
parameters, persons, responses, items, fixed, skipped, latent, wall_seconds).
--out FILE writes the estimated items as a bank (the JSON that `estimate` and
`simulate` read), each with its standard errors (\"se\") and response count.
Results are identical for any --threads.

Example:
  lectern-cat calibrate --responses responses.csv --model 2pl --out bank.json
  lectern-cat calibrate --responses pretest.jsonl --fixed operational.json \\
      --model grm --out new-items.json";

/// The models on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelName {
    /// One-parameter logistic (Rasch): a = 1.
    #[value(name = "1pl")]
    OnePl,
    /// Two-parameter logistic.
    #[value(name = "2pl")]
    TwoPl,
    /// Three-parameter logistic, with a Beta prior on c (--c-prior).
    #[value(name = "3pl")]
    ThreePl,
    /// Graded response model.
    Grm,
    /// Generalized partial credit model.
    Gpcm,
    /// Partial credit model (a = 1).
    Pcm,
}

impl From<ModelName> for Model {
    fn from(m: ModelName) -> Model {
        match m {
            ModelName::OnePl => Model::OnePl,
            ModelName::TwoPl => Model::TwoPl,
            ModelName::ThreePl => Model::ThreePl,
            ModelName::Grm => Model::Poly(PolyModel::Grm),
            ModelName::Gpcm => Model::Poly(PolyModel::Gpcm),
            ModelName::Pcm => Model::Poly(PolyModel::Pcm),
        }
    }
}

/// Options of `calibrate`.
#[derive(Debug, Clone, Args)]
pub struct CalibrateArgs {
    /// Response file (JSON lines, long CSV or wide CSV; see below).
    #[arg(long, value_name = "FILE")]
    pub responses: String,
    /// Model of every item that --bank does not name.
    #[arg(long, value_enum, default_value_t = ModelName::TwoPl)]
    pub model: ModelName,
    /// A bank giving some items their model (and category count); its
    /// parameters are not used.
    #[arg(long, value_name = "BANK")]
    pub bank: Option<String>,
    /// A bank of items to keep fixed: they anchor the scale.
    #[arg(long, value_name = "BANK")]
    pub fixed: Option<String>,
    /// Quadrature points on [-6, 6].
    #[arg(long, value_name = "N", default_value_t = calibrate::DEFAULT_QUADRATURE as u32,
          value_parser = clap::value_parser!(u32).range(5..=1001))]
    pub quadrature: u32,
    /// Stop when no parameter moves more than this in one EM iteration.
    #[arg(long, value_name = "X", default_value_t = 1e-4, value_parser = positive)]
    pub tolerance: f64,
    /// Most EM iterations.
    #[arg(long, value_name = "N", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_iter: u64,
    /// Beta(α, β) prior on the 3PL's lower asymptote c.
    #[arg(long, value_name = "α,β", default_value = "5,17", value_parser = beta_prior)]
    pub c_prior: (f64, f64),
    /// Worker threads (0: one per core). Results do not depend on it.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
    /// Write the estimated items, with standard errors, to this bank file (JSON).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// "α,β" with both ≥ 1.
fn beta_prior(s: &str) -> Result<(f64, f64), String> {
    let (a, b) = s
        .split_once(',')
        .ok_or_else(|| format!("expected α,β such as 5,17 (got {s:?})"))?;
    let a = crate::finite(a)?;
    let b = crate::finite(b)?;
    if a >= 1.0 && b >= 1.0 {
        Ok((a, b))
    } else {
        Err(format!("α and β must be ≥ 1 (got {a}, {b})"))
    }
}

/// Responses as read: ids in order of first appearance.
#[derive(Debug, Default)]
pub struct ResponseFile {
    /// The file's name.
    pub name: String,
    /// Person ids, by index.
    pub persons: Vec<String>,
    /// Item ids, by index.
    pub items: Vec<String>,
    /// (person, item, score).
    pub triples: Vec<(u32, u32, u8)>,
    /// Where each triple was read.
    pub places: Vec<Place>,
    person_index: HashMap<String, u32>,
    item_index: HashMap<String, u32>,
    seen: HashSet<(u32, u32)>,
}

impl ResponseFile {
    fn push(&mut self, person: String, item: String, score: u8, place: Place) -> Result<(), Error> {
        let next = self.persons.len() as u32;
        let p = *self.person_index.entry(person.clone()).or_insert_with(|| {
            self.persons.push(person.clone());
            next
        });
        let next = self.items.len() as u32;
        let i = *self.item_index.entry(item.clone()).or_insert_with(|| {
            self.items.push(item.clone());
            next
        });
        if !self.seen.insert((p, i)) {
            return Err(Error::at(
                &self.name,
                place,
                format!("person {person:?} answered item {item:?} twice"),
            ));
        }
        self.triples.push((p, i, score));
        self.places.push(place);
        Ok(())
    }
}

/// A score cell: an integer 0…9.
fn parse_score(text: &str) -> Option<u8> {
    let x: f64 = text.trim().parse().ok()?;
    (x.fract() == 0.0 && (0.0..MAX_CATEGORIES as f64).contains(&x)).then_some(x as u8)
}

const SCORE_RULE: &str = "an integer from 0 to 9";

/// Reads a response file in any of its three forms.
pub fn read_responses(path: &str) -> Result<ResponseFile, Error> {
    let (name, text) = read_text(path)?;
    let mut file = ResponseFile {
        name: name.clone(),
        ..ResponseFile::default()
    };
    if path.to_ascii_lowercase().ends_with(".csv") {
        read_csv(&mut file, &text)?;
    } else {
        read_json_lines(&mut file, &text)?;
    }
    if file.triples.is_empty() {
        return Err(Error::file(&name, "no responses"));
    }
    Ok(file)
}

fn read_json_lines(file: &mut ResponseFile, text: &str) -> Result<(), Error> {
    let name = file.name.clone();
    for (k, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let place = Place::Line(k as u64 + 1);
        let at = |m: String| Error::at(&name, place.clone(), m);
        let value: Value = serde_json::from_str(line)
            .map_err(|e| at(format!("invalid JSON: {}", json_message(&e))))?;
        let field = |key: &str| value.get(key).ok_or_else(|| at(format!("no \"{key}\"")));
        let person = id_of(field("person")?)
            .ok_or_else(|| at("\"person\" must be a string or a number".into()))?;
        let item = id_of(field("item")?)
            .ok_or_else(|| at("\"item\" must be a string or a number".into()))?;
        let raw = field("score")?;
        let score = raw
            .as_f64()
            .and_then(|x| parse_score(&x.to_string()))
            .ok_or_else(|| at(format!("\"score\" must be {SCORE_RULE} (got {raw})")))?;
        file.push(person, item, score, place)?;
    }
    Ok(())
}

fn read_csv(file: &mut ResponseFile, text: &str) -> Result<(), Error> {
    let name = file.name.clone();
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| Error::at(&name, Place::Row(1), format!("unreadable header: {e}")))?
        .clone();
    let col = |n: &str| header.iter().position(|h| h.eq_ignore_ascii_case(n));
    let person = col("person")
        .ok_or_else(|| Error::at(&name, Place::Row(1), "the header has no \"person\" column"))?;
    let long = col("item").zip(col("score"));
    for (k, record) in reader.records().enumerate() {
        let row = k as u64 + 2;
        let place = Place::Row(row);
        let record = record.map_err(|e| Error::at(&name, place.clone(), e.to_string()))?;
        let at = |m: String| Error::at(&name, Place::Row(row), m);
        let who = record.get(person).unwrap_or("");
        if who.is_empty() {
            if record.iter().all(str::is_empty) {
                continue;
            }
            return Err(at("no person id".into()));
        }
        if let Some((item, score)) = long {
            let id = record.get(item).unwrap_or("");
            if id.is_empty() {
                return Err(at("no item id".into()));
            }
            let cell = record.get(score).unwrap_or("");
            let s = parse_score(cell)
                .ok_or_else(|| at(format!("score must be {SCORE_RULE} (got {cell:?})")))?;
            file.push(who.to_owned(), id.to_owned(), s, place)?;
        } else {
            for (c, cell) in record.iter().enumerate() {
                if c == person || cell.is_empty() {
                    continue;
                }
                let id = header.get(c).unwrap_or("");
                if id.is_empty() {
                    return Err(at(format!("column {} has a score but no item id", c + 1)));
                }
                let s = parse_score(cell).ok_or_else(|| {
                    at(format!(
                        "item {id:?}: score must be {SCORE_RULE} (got {cell:?})"
                    ))
                })?;
                file.push(who.to_owned(), id.to_owned(), s, place.clone())?;
            }
        }
    }
    Ok(())
}

/// What to do with each item of the responses, from the options.
fn specs(args: &CalibrateArgs, file: &ResponseFile) -> Result<Vec<ItemSpec>, Error> {
    let fixed = args
        .fixed
        .as_deref()
        .map(|p| bank::load(p, 1.0))
        .transpose()?;
    let named = args
        .bank
        .as_deref()
        .map(|p| bank::load(p, 1.0))
        .transpose()?;
    let lookup = |b: &Option<bank::Bank>, id: &str| -> Option<Item> {
        b.as_ref()
            .and_then(|b| b.index.get(id).map(|&i| b.bank.item(i)))
    };
    let specs = file
        .items
        .iter()
        .map(|id| {
            let pinned = lookup(&fixed, id);
            let model = lookup(&named, id);
            match (pinned, model) {
                (Some(_), Some(_)) => Err(Error::Options(format!(
                    "item {id:?} is in both --fixed and --bank"
                ))),
                (Some(item), None) => Ok(ItemSpec::Fixed(item)),
                (None, Some(item)) => {
                    let model = Model::from_name(item.model_name()).ok_or_else(|| {
                        Error::file(
                            args.bank.as_deref().unwrap_or_default(),
                            format!(
                                "item {id:?}: {} items cannot be calibrated (fix them with --fixed)",
                                item.model_name()
                            ),
                        )
                    })?;
                    let categories = matches!(model, Model::Poly(_)).then(|| item.categories());
                    Ok(ItemSpec::Free { model, categories })
                }
                (None, None) => Ok(ItemSpec::Free {
                    model: args.model.into(),
                    categories: None,
                }),
            }
        })
        .collect::<Result<Vec<_>, Error>>()?;
    if let Some(path) = &args.fixed
        && !specs.iter().any(|s| matches!(s, ItemSpec::Fixed(_)))
    {
        return Err(Error::file(
            path,
            "none of its items is in the responses, so it cannot anchor the scale",
        ));
    }
    Ok(specs)
}

/// One estimated item as written to --out.
#[derive(Debug, Serialize)]
struct OutItem<'a> {
    id: &'a str,
    model: &'static str,
    a: f64,
    b: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    c: Option<f64>,
    se: OutSe,
    responses: usize,
}

#[derive(Debug, Serialize)]
struct OutSe {
    #[serde(skip_serializing_if = "Option::is_none")]
    a: Option<f64>,
    b: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    c: Option<f64>,
}

/// The run's summary (printed as JSON).
#[derive(Debug, Serialize)]
pub struct Summary {
    /// EM iterations.
    pub iterations: usize,
    /// Whether the tolerance was met.
    pub converged: bool,
    /// Marginal log-likelihood.
    pub log_likelihood: f64,
    /// Akaike's information criterion.
    pub aic: f64,
    /// Bayesian information criterion.
    pub bic: f64,
    /// Free parameters.
    pub parameters: usize,
    /// Persons with responses used.
    pub persons: usize,
    /// Responses used.
    pub responses: usize,
    /// Items estimated.
    pub items: usize,
    /// Items kept fixed.
    pub fixed: usize,
    /// Items skipped, with the reason.
    pub skipped: Vec<Skipped>,
    /// The latent distribution.
    pub latent: Latent,
    /// Quadrature points.
    pub quadrature: usize,
    /// Wall-clock seconds of the fit (reading and writing files excluded).
    pub wall_seconds: f64,
}

/// A skipped item.
#[derive(Debug, Serialize)]
pub struct Skipped {
    /// Its id.
    pub id: String,
    /// Why.
    pub reason: String,
}

/// The latent distribution N(mean, sd²).
#[derive(Debug, Serialize)]
pub struct Latent {
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub sd: f64,
    /// Whether they were estimated.
    pub estimated: bool,
}

/// Runs `calibrate`.
pub fn run(args: &CalibrateArgs, out: &mut dyn Write) -> Result<(), Error> {
    let file = read_responses(&args.responses)?;
    let specs = specs(args, &file)?;
    let data = Responses::new(file.persons.len(), file.items.len(), file.triples.clone())
        .map_err(|e| data_error(&file, e))?;
    let config = Config {
        quadrature: args.quadrature as usize,
        tolerance: args.tolerance,
        max_iter: args.max_iter as usize,
        threads: args.threads,
        c_prior: args.c_prior,
    };
    let bar = ProgressBar::new(args.max_iter);
    if let Ok(style) =
        ProgressStyle::with_template("calibrating {spinner} iteration {pos}, largest change {msg}")
    {
        bar.set_style(style);
    }
    let started = Instant::now();
    let fit = calibrate::calibrate(&data, &specs, &config, &mut |iteration, change| {
        bar.set_position(iteration as u64);
        bar.set_message(format!("{change:.2e}"));
    })
    .map_err(|e| data_error(&file, e))?;
    let wall = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    if let Some(path) = &args.out {
        write_bank(path, &file.items, &fit)?;
    }
    let summary = summarize(&file, &fit, config.quadrature, wall);
    serde_json::to_writer_pretty(&mut *out, &summary)
        .map_err(|e| Error::io("<stdout>", "write", e.into()))?;
    writeln!(out).map_err(|e| Error::io("<stdout>", "write", e))
}

/// The engine's complaint about the data, with the file, place and ids.
fn data_error(file: &ResponseFile, e: DataError) -> Error {
    match e {
        DataError::Score { item, score, max } => {
            let place = file
                .triples
                .iter()
                .position(|t| t.1 as usize == item && t.2 == score)
                .map(|k| file.places[k].clone());
            let message = format!(
                "item {:?}: score {score} is above its highest score {max}",
                file.items[item]
            );
            match place {
                Some(p) => Error::at(&file.name, p, message),
                None => Error::file(&file.name, message),
            }
        }
        DataError::Categories { item, categories } => Error::file(
            &file.name,
            format!(
                "item {:?}: scores up to {} make {categories} categories (at most {MAX_CATEGORIES})",
                file.items[item],
                categories - 1
            ),
        ),
        other => Error::file(&file.name, other.to_string()),
    }
}

fn summarize(file: &ResponseFile, fit: &Calibration, quadrature: usize, wall: f64) -> Summary {
    let count = |f: fn(&Outcome) -> bool| fit.items.iter().filter(|o| f(o)).count();
    Summary {
        iterations: fit.iterations,
        converged: fit.converged,
        log_likelihood: fit.log_likelihood,
        aic: fit.aic(),
        bic: fit.bic(),
        parameters: fit.parameters,
        persons: fit.persons,
        responses: fit.responses,
        items: count(|o| matches!(o, Outcome::Estimated { .. })),
        fixed: count(|o| matches!(o, Outcome::Fixed { .. })),
        skipped: fit
            .items
            .iter()
            .zip(&file.items)
            .filter_map(|(o, id)| match o {
                Outcome::Skipped(why) => Some(Skipped {
                    id: id.clone(),
                    reason: why.to_string(),
                }),
                _ => None,
            })
            .collect(),
        latent: Latent {
            mean: fit.latent_mean,
            sd: fit.latent_sd,
            estimated: fit.latent_free.0 || fit.latent_free.1,
        },
        quadrature,
        wall_seconds: wall,
    }
}

/// A number, or a list when `many`.
fn one_or_list(values: &[f64], many: bool) -> Value {
    if many {
        Value::from(values.to_vec())
    } else {
        Value::from(values[0])
    }
}

fn write_bank(path: &PathBuf, ids: &[String], fit: &Calibration) -> Result<(), Error> {
    let items: Vec<OutItem> = fit
        .items
        .iter()
        .zip(ids)
        .filter_map(|(o, id)| match o {
            Outcome::Estimated {
                model,
                item,
                se,
                responses,
            } => {
                let (a, b, c) = match item {
                    Item::Dichotomous(p) => (p.a, vec![p.b], p.c),
                    Item::Polytomous(p) => (p.a(), p.thresholds().to_vec(), 0.0),
                };
                let many = matches!(model, Model::Poly(_));
                let three = *model == Model::ThreePl;
                Some(OutItem {
                    id,
                    model: model.name(),
                    a,
                    b: one_or_list(&b, many),
                    c: three.then_some(c),
                    se: OutSe {
                        a: se.a,
                        b: one_or_list(&se.b, many),
                        c: se.c,
                    },
                    responses: *responses,
                })
            }
            _ => None,
        })
        .collect();
    let name = path.display().to_string();
    let text =
        serde_json::to_string_pretty(&items).map_err(|e| Error::io(&name, "write", e.into()))?;
    std::fs::write(path, text + "\n").map_err(|e| Error::io(&name, "write", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(name: &str, text: &str) -> Result<ResponseFile, Error> {
        let dir = std::env::temp_dir().join(format!("lectern-cal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let r = read_responses(path.to_str().unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
        r.map_err(|e| match e {
            Error::Input { place, message, .. } => Error::Input {
                file: name.into(),
                place,
                message,
            },
            e => e,
        })
    }

    #[test]
    fn the_three_forms_read_the_same_responses() {
        let jsonl = "{\"person\": \"p1\", \"item\": \"q1\", \"score\": 1}\n\n{\"person\": \"p1\", \"item\": 7, \"score\": 0}\n{\"person\": 2, \"item\": \"q1\", \"score\": 2}\n";
        let long = "person,item,score\np1,q1,1\np1,7,0\n2,q1,2\n";
        let wide = "person,q1,7\np1,1,0\n2,2,\n";
        for (name, text) in [("r.jsonl", jsonl), ("r.csv", long), ("w.csv", wide)] {
            let f = read(name, text).unwrap();
            assert_eq!(f.persons, ["p1", "2"], "{name}");
            assert_eq!(f.items, ["q1", "7"], "{name}");
            assert_eq!(f.triples, [(0, 0, 1), (0, 1, 0), (1, 0, 2)], "{name}");
        }
    }

    #[test]
    fn bad_files_name_the_place_and_the_problem() {
        let cases = [
            (
                "r.jsonl",
                "{\"person\": \"p\", \"item\": \"q\", \"score\": 1}\n{\"person\": \"p\", \"item\": \"q\", \"score\": 0}\n",
                "r.jsonl: line 2: person \"p\" answered item \"q\" twice",
            ),
            (
                "r.jsonl",
                "{\"person\": \"p\", \"item\": \"q\", \"score\": 1.5}\n",
                "r.jsonl: line 1: \"score\" must be an integer from 0 to 9 (got 1.5)",
            ),
            (
                "r.jsonl",
                "{\"person\": \"p\", \"score\": 1}\n",
                "r.jsonl: line 1: no \"item\"",
            ),
            (
                "r.jsonl",
                "{\"person\": \"p\",\n",
                "r.jsonl: line 1: invalid JSON: EOF while parsing a value",
            ),
            (
                "r.csv",
                "person,item,score\np,q,x\n",
                "r.csv: row 2: score must be an integer from 0 to 9 (got \"x\")",
            ),
            (
                "r.csv",
                "item,score\nq,1\n",
                "r.csv: row 1: the header has no \"person\" column",
            ),
            (
                "w.csv",
                "person,q1\np,1\n,1\n",
                "w.csv: row 3: no person id",
            ),
            (
                "w.csv",
                "person,q1\np,-1\n",
                "w.csv: row 2: item \"q1\": score must be an integer from 0 to 9 (got \"-1\")",
            ),
            ("w.csv", "person,q1\n", "w.csv: no responses"),
        ];
        for (name, text, want) in cases {
            let err = read(name, text).err().unwrap_or_else(|| panic!("{want}"));
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn c_prior_is_checked() {
        assert_eq!(beta_prior("5,17"), Ok((5.0, 17.0)));
        assert!(beta_prior("0.5,17").is_err());
        assert!(beta_prior("5").is_err());
    }
}
