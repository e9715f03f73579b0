//! `lectern-cat estimate`: θ and SE for each response pattern of a file.

use std::io::Write;

use clap::Args;
use serde::Serialize;

use crate::error::{Error, read_text};
use crate::{EstimatorArgs, bank, positive, responses};

/// Extra help text of `estimate`.
pub const AFTER_HELP: &str = "\
Bank: JSON, an array of items such as
  {\"id\": \"q1\", \"model\": \"3pl\", \"a\": 1.2, \"b\": -0.5, \"c\": 0.2, \"concepts\": [\"algebra\"]}
  {\"id\": \"q2\", \"model\": \"grm\", \"a\": 1.4, \"b\": [-1.2, -0.1, 0.9, 2.0]}
or CSV with a header naming its columns, e.g.
  id,model,a,b,b1,b2,b3,b4,c,d,concepts,exposure
  q1,3pl,1.2,-0.5,,,,,0.2,,algebra,
  q2,grm,1.4,,-1.2,-0.1,0.9,2.0,,,,0.8
model is 1pl, 2pl, 3pl, 4pl (P = c + (d - c) / (1 + exp(-a(θ - b)))), grm
(graded response, thresholds strictly increasing), gpcm (generalized
partial credit, steps in any order) or pcm (partial credit, a = 1). A
dichotomous item has one number b; a polytomous one m = 1 to 9 thresholds
(2 to 10 categories, scores 0..m): a list b in JSON, b1..bm in CSV (blank
cells after its last). Without model, a number b means a dichotomous item
(c defaults to 0, d to 1). 1pl fixes a = 1, c = 0, d = 1; 2pl c = 0, d = 1;
3pl d = 1; grm and gpcm c = 0, d = 1; pcm a = 1, c = 0, d = 1: such a
parameter may be left out, another value is an error. exposure is the
Sympson-Hetter parameter (default 1); concepts are separated by ';' in CSV.

Response file: one JSON object per line, e.g.
  {\"items\": [\"q1\", \"q7\", \"q3\"], \"answers\": [1, 0, 3]}
answers are scores paired with items in order: 0 to the item's highest
(0/1 or false/true for a dichotomous item); blank lines are skipped; other
fields are ignored. Use '-' to read standard input.

Example:
  $ lectern-cat estimate --bank bank.csv --responses answers.jsonl --estimator map
  {\"theta\":-0.4741753619222586,\"se\":0.8166510262656113}";

/// Options of `estimate`.
#[derive(Debug, Clone, Args)]
pub struct EstimateArgs {
    /// Item bank: JSON array of {"id", "model", "a", "b", "c", "d", "concepts",
    /// "exposure"}, or CSV with header columns id and b or b1..bm, and optionally
    /// model,a,c,d,concepts,exposure (see below). The format follows the
    /// extension (.json or .csv), else the content ('[' first means JSON).
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
        let e = estimator.estimate(&bank.bank, &p.items, &p.answers);
        let line = serde_json::to_string(&Line {
            theta: e.theta,
            se: e.se,
        })
        .expect("two numbers serialize");
        writeln!(out, "{line}").map_err(|e| Error::io("<stdout>", "write", e))?;
    }
    Ok(())
}
