//! The report's raw results: summary.json, examinees.csv, responses.jsonl and bank.csv.

use std::path::Path;

use lectern_engine::Item;
use lectern_engine::sim::{Bin, Simulation};
use serde::Serialize;

use super::write_file;
use crate::bank::Bank;
use crate::error::Error;
use crate::simulate::{Outcome, Output};

#[derive(Serialize)]
struct SummaryFile<'a> {
    #[serde(flatten)]
    output: Output<'a>,
    conditional: &'a [Bin],
}

fn csv_bytes(
    name: &str,
    fill: impl FnOnce(&mut csv::Writer<Vec<u8>>) -> csv::Result<()>,
) -> Result<Vec<u8>, Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    fill(&mut w).map_err(|e| Error::Options(format!("{name}: {e}")))?;
    w.into_inner()
        .map_err(|e| Error::Options(format!("{name}: {e}")))
}

fn examinees_csv(sim: &Simulation) -> Result<Vec<u8>, Error> {
    csv_bytes("examinees.csv", |w| {
        w.write_record(["examinee", "true_theta", "theta", "se", "length", "stop"])?;
        for (k, e) in sim.examinees.iter().enumerate() {
            w.write_record([
                (k + 1).to_string(),
                e.true_theta.to_string(),
                e.estimate.theta.to_string(),
                e.estimate.se.to_string(),
                e.items.len().to_string(),
                e.stop.name().to_owned(),
            ])?;
        }
        Ok(())
    })
}

/// The bank as `lectern-cat` reads it back: id, model, a, b (dichotomous) or
/// b1…bm (polytomous; as many columns as the most thresholds), c and d
/// (dichotomous), concepts, exposure.
pub(crate) fn bank_csv(bank: &Bank) -> Result<Vec<u8>, Error> {
    let items: Vec<Item> = (0..bank.bank.len()).map(|i| bank.bank.item(i)).collect();
    let width = items
        .iter()
        .map(|item| match item {
            Item::Dichotomous(_) => 0,
            Item::Polytomous(p) => p.thresholds().len(),
        })
        .max()
        .unwrap_or(0);
    csv_bytes("bank.csv", |w| {
        let mut header: Vec<String> = ["id", "model", "a", "b"].map(String::from).to_vec();
        header.extend((1..=width).map(|k| format!("b{k}")));
        header.extend(["c", "d", "concepts", "exposure"].map(String::from));
        w.write_record(&header)?;
        for (i, (id, item)) in bank.ids.iter().zip(&items).enumerate() {
            let mut thresholds = vec![String::new(); width];
            let (b, c, d) = match item {
                Item::Dichotomous(p) => (p.b.to_string(), p.c.to_string(), p.d.to_string()),
                Item::Polytomous(p) => {
                    for (cell, x) in thresholds.iter_mut().zip(p.thresholds()) {
                        *cell = x.to_string();
                    }
                    (String::new(), String::new(), String::new())
                }
            };
            let concepts: Vec<&str> = bank
                .bank
                .concepts(i)
                .iter()
                .map(|&c| bank.concepts[usize::from(c)].as_str())
                .collect();
            let mut record = vec![
                id.clone(),
                item.model_name().to_owned(),
                item.a().to_string(),
                b,
            ];
            record.extend(thresholds);
            record.extend([c, d, concepts.join(";"), bank.bank.exposure(i).to_string()]);
            w.write_record(&record)?;
        }
        Ok(())
    })
}

fn responses_jsonl(sim: &Simulation, bank: &Bank) -> String {
    #[derive(Serialize)]
    struct Line<'a> {
        items: Vec<&'a str>,
        answers: Vec<u8>,
    }
    let mut out = String::new();
    for e in &sim.examinees {
        let line = Line {
            items: e.items.iter().map(|&i| bank.ids[i].as_str()).collect(),
            answers: e.answers.clone(),
        };
        out.push_str(&serde_json::to_string(&line).expect("ids and answers serialize"));
        out.push('\n');
    }
    out
}

/// Writes the raw results into `dir`.
pub(super) fn write(dir: &Path, outcome: &Outcome, bins: &[Bin]) -> Result<(), Error> {
    let summary = SummaryFile {
        output: outcome.output(),
        conditional: bins,
    };
    let json = serde_json::to_string_pretty(&summary).expect("the summary serializes");
    write_file(dir, "summary.json", format!("{json}\n").as_bytes())?;
    write_file(dir, "examinees.csv", &examinees_csv(&outcome.sim)?)?;
    write_file(
        dir,
        "responses.jsonl",
        responses_jsonl(&outcome.sim, &outcome.bank).as_bytes(),
    )?;
    write_file(dir, "bank.csv", &bank_csv(&outcome.bank)?)?;
    Ok(())
}
