//! `lectern-cat estimate`: θ and SE for each response pattern of a file.

use std::io::Write;

use clap::Args;
use serde::Serialize;

use crate::error::{Error, read_text};
use crate::{EstimatorArgs, bank, positive, responses};

/// Extra help text of `estimate`.
pub const AFTER_HELP: &str = "\
Response file: one JSON object per line, e.g.
  {\"items\": [\"q1\", \"q7\", \"q3\"], \"answers\": [1, 0, 1]}
answers are 0/1 or false/true, paired with items in order; blank lines are
skipped; other fields are ignored. Use '-' to read standard input.

Example:
  $ lectern-cat estimate --bank bank.csv --responses answers.jsonl --estimator map
  {\"theta\":-0.4741753619222586,\"se\":0.8166510262656113}";

/// Options of `estimate`.
#[derive(Debug, Clone, Args)]
pub struct EstimateArgs {
    /// Item bank: JSON array of {"id", "a", "b", "c", "d", "concepts", "exposure"}, or
    /// CSV with header columns id,a,b and optionally c,d,concepts,exposure
    /// (concepts separated by ';'). The format follows the extension (.json or
    /// .csv), else the content ('[' first means JSON). c defaults to 0, d to 1.
    #[arg(long, value_name = "BANK")]
    pub bank: String,
    /// Scaling constant D: every a is multiplied by it (1.702 for parameters
    /// calibrated on the normal-ogive-like metric).
    #[arg(long, value_name = "D", default_value_t = 1.0, value_parser = positive)]
    pub scale: f64,
    /// Response patterns, as JSON lines (see below); '-' reads standard input.
    #[arg(long, value_name = "FILE")]
    pub responses: String,
    #[command(flatten)]
    pub estimator: EstimatorArgs,
}

/// One output line.
#[derive(Serialize)]
struct Line {
    theta: f64,
    se: f64,
}

/// Runs `estimate`, writing JSON lines to `out`.
pub fn run(args: &EstimateArgs, out: &mut dyn Write) -> Result<(), Error> {
    let estimator = args.estimator.build()?;
    let bank = bank::load(&args.bank, args.scale)?;
    let (name, text) = read_text(&args.responses)?;
    let patterns = responses::parse(&name, &text, &bank)?;
    for p in &patterns {
        let scores: Vec<u8> = p.answers.iter().map(|&u| u8::from(u)).collect();
        let e = estimator.estimate(&bank.bank, &p.items, &scores);
        let line = serde_json::to_string(&Line {
            theta: e.theta,
            se: e.se,
        })
        .expect("two numbers serialize");
        writeln!(out, "{line}").map_err(|e| Error::io("<stdout>", "write", e))?;
    }
    Ok(())
}
