//! `lectern-cat calibrate-exposure`: Sympson–Hetter exposure parameters for a
//! target maximum exposure rate, by iterated simulation (Sympson & Hetter 1985).
//!
//! The engine's [`SympsonHetter`] selector draws the lottery; the selections are
//! counted by [`Counting`], a transparent selector placed between it and the
//! inner selector, so every pick before the lottery is seen. The counts are
//! integers summed across threads, so the results do not depend on the thread
//! count.

use std::fs::{File, OpenOptions};
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::Args;
use lectern_engine::sim::Summary;
use lectern_engine::{Candidates, ItemBank, Selector, SympsonHetter};
use rand::RngCore;
use serde::Serialize;

use crate::bank;
use crate::error::Error;
use crate::simulate::{self, Config, Design, DesignArgs};
use crate::{finite, report};

/// Extra help text of `calibrate-exposure`.
pub const AFTER_HELP: &str = "\
Sympson–Hetter control: the item the selector picks is administered with
probability k, its exposure parameter; otherwise it is set aside for that
pick and the selector picks again. Each iteration simulates the design
(--examinees tests, the same examinees every time: same --seed) with the
current parameters, counts for each item how often per examinee it was
selected, P(S), and administered, P(A), and sets k = r / P(S) where
P(S) > r, else k = 1 (r = --target-exposure; k kept to 6 significant
digits). It stops once the largest P(A) is at most r + --tolerance (by
default the larger of 0.01 and 3 sqrt(r (1 - r) / N), see below), or
after --iterations. The first iteration has every k = 1 (with --resume, the
bank's exposure column). Every pick before the lottery is a selection, also
that of an item set aside earlier in the same test, so P(A) = k P(S) on
average.

Two limits: no rate can stay below the average, mean test length / bank
size; and a rate near r varies by chance by about sqrt(r (1 - r) / N)
among N examinees, so the largest of many items held to r lands 2 to 3
times that above it (r = 0.25, N = 1000: 0.014, so about 0.28). Choose
--examinees and --tolerance accordingly; max_expected_exposure, the largest
k P(S), shows the rate the parameters give apart from that chance.

--out FILE gets the bank with the parameters of the last iteration: JSON (as
`lectern-cat estimate --help` describes), CSV if FILE ends in .csv; ids,
models, parameters and concepts kept, on the D = 1 metric (every a already
multiplied by --scale). `lectern-cat simulate --bank FILE --exposure-control`
with the same design and seed replays the last iteration exactly.

Output: one JSON object with target, tolerance, iterations, converged, and
of the last iteration max_exposure, max_expected_exposure, bias, rmse,
overlap_rate and never_used; controlled_items (items with k < 1),
min_parameter (the smallest k), the same figures without exposure control
(unconstrained: every k = 1), out, wall_seconds, history (per iteration:
max_exposure, max_expected_exposure, rmse, controlled_items) and the
configuration. A calibration that does not converge writes its last
parameters anyway, with a warning on standard error.

Example:
  lectern-cat calibrate-exposure --generate 300 --examinees 2000 --seed 7 \\
      --max-items 30 --target-exposure 0.2 --tolerance 0.03 --out bank-sh.json";

/// Options of `calibrate-exposure`.
#[derive(Debug, Clone, Args)]
pub struct CalibrateExposureArgs {
    /// Target maximum exposure rate r, in (0, 1].
    #[arg(long, value_name = "R", value_parser = finite, allow_negative_numbers = true,
          help_heading = "Calibration")]
    pub target_exposure: f64,
    /// Converged once every exposure rate is at most r + X [default: the larger
    /// of 0.01 and 3·√(r(1 − r)/N), the chance spread of the largest rate
    /// held to r among N = --examinees].
    #[arg(long, value_name = "X", value_parser = finite, allow_negative_numbers = true,
          help_heading = "Calibration")]
    pub tolerance: Option<f64>,
    /// Most iterations (simulations with exposure control).
    #[arg(long, value_name = "N", default_value_t = 30, help_heading = "Calibration",
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub iterations: u64,
    /// Start from the exposure parameters of the --bank file instead of 1.
    #[arg(long, help_heading = "Calibration")]
    pub resume: bool,
    /// Where to write the bank with its exposure parameters (JSON; CSV if the
    /// name ends in .csv).
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub out: PathBuf,

    /// The design.
    #[command(flatten)]
    pub design: DesignArgs,
}

/// Passes the inner selector's picks through, counting them per item: under
/// [`SympsonHetter`], each pick is a selection, before the lottery.
struct Counting {
    inner: Box<dyn Selector>,
    counts: Arc<[AtomicU64]>,
}

impl Selector for Counting {
    fn choose(
        &self,
        bank: &ItemBank,
        theta: f64,
        candidates: &mut Candidates<'_>,
        rng: &mut dyn RngCore,
    ) -> Option<usize> {
        let pick = self.inner.choose(bank, theta, candidates, rng);
        if let Some(i) = pick {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        pick
    }
}

/// Significant digits kept of a computed parameter.
const DIGITS: usize = 6;

/// The Sympson–Hetter update: for each item, k = r / P(S) when its selection
/// rate P(S) exceeds the target `r`, else 1 (k kept to [`DIGITS`] significant
/// digits).
pub fn update(target: f64, selection_rates: &[f64]) -> Vec<f64> {
    selection_rates
        .iter()
        .map(|&s| {
            if s > target {
                let k = target / s;
                format!("{k:.prec$e}", prec = DIGITS - 1)
                    .parse()
                    .unwrap_or(k)
            } else {
                1.0
            }
        })
        .collect()
}

/// Whether a run with this largest exposure rate meets the target.
/// The tolerance unless one is given: what chance alone adds to the largest of
/// many rates held to r among N examinees (about 3 standard deviations), and
/// at least 0.01.
fn default_tolerance(target: f64, examinees: u64) -> f64 {
    let sd = (target * (1.0 - target) / examinees.max(1) as f64).sqrt();
    (3.0 * sd).max(0.01)
}

fn meets(max_exposure: f64, target: f64, tolerance: f64) -> bool {
    // A rate is a count over the examinees: the slack only absorbs rounding.
    max_exposure <= target + tolerance + 1e-12
}

/// The figures of one simulation that the output shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    /// Largest exposure rate: of administrations per examinee.
    pub max_exposure: f64,
    /// Largest k P(S): the exposure rate the parameters give, apart from the
    /// lottery's chance (for an item with k = 1, its exposure rate).
    pub max_expected_exposure: f64,
    /// Mean (θ̂ − θ).
    pub bias: f64,
    /// √mean((θ̂ − θ)²).
    pub rmse: f64,
    /// Mean share of a test that two examinees have in common.
    pub overlap_rate: f64,
    /// Items no examinee saw.
    pub never_used: usize,
}

impl Figures {
    fn new(s: &Summary, max_expected_exposure: f64) -> Self {
        Figures {
            max_exposure: s.max_exposure,
            max_expected_exposure,
            bias: s.bias,
            rmse: s.rmse,
            overlap_rate: s.overlap_rate,
            never_used: s.never_used,
        }
    }
}

/// Why a calibration did not converge, as the end of the warning.
fn not_converged(
    last: &Figures,
    target: f64,
    tolerance: f64,
    examinees: f64,
    mean_length: f64,
    items: usize,
) -> String {
    // Rounded for the message: 0.05 + 0.01 is 0.060000000000000005.
    let bound = (target + tolerance) * 1e9;
    let bound = bound.round() / 1e9;
    let mean_rate = mean_length / items as f64;
    if bound < mean_rate {
        return format!(
            ": tests of {mean_length} items on average from a bank of {items} give a mean exposure rate of {mean_rate:.4}, so no parameters can hold every rate to {bound}"
        );
    }
    if meets(last.max_expected_exposure, target, tolerance) {
        let sd = (target * (1.0 - target) / examinees).sqrt();
        return format!(
            ", though every expected rate k P(S) is at most {:.4}: a rate near {target} varies by about ±{sd:.4} by chance among {examinees} examinees, and the largest of many lands 2 to 3 times that above; use more --examinees or a larger --tolerance",
            last.max_expected_exposure
        );
    }
    format!(
        "; the largest expected rate k P(S) is {:.4}: more --iterations may help",
        last.max_expected_exposure
    )
}

/// One iteration of the procedure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Iteration {
    /// 1, 2, …
    pub iteration: usize,
    /// Largest exposure rate of its simulation.
    pub max_exposure: f64,
    /// Largest k P(S) of its simulation.
    pub max_expected_exposure: f64,
    /// RMSE of its simulation.
    pub rmse: f64,
    /// Items with k < 1 in its simulation.
    pub controlled_items: usize,
}

/// What `calibrate-exposure` prints.
#[derive(Debug, Serialize)]
pub struct Output {
    /// The target maximum exposure rate r.
    pub target: f64,
    /// The tolerance.
    pub tolerance: f64,
    /// Iterations run.
    pub iterations: usize,
    /// Whether the last iteration met r + tolerance.
    pub converged: bool,
    /// The last iteration's figures, as top-level fields.
    #[serde(flatten)]
    pub last: Figures,
    /// Items with k < 1 in the written bank.
    pub controlled_items: usize,
    /// The smallest k of the written bank.
    pub min_parameter: f64,
    /// The figures with every k = 1.
    pub unconstrained: Figures,
    /// The bank file written.
    pub out: String,
    /// Wall-clock time of the whole calibration, in seconds.
    pub wall_seconds: f64,
    /// Each iteration.
    pub history: Vec<Iteration>,
    /// The design.
    pub config: Config,
}

/// The output file, opened (not truncated) before the simulations so that a
/// bad path fails fast.
fn open_out(path: &Path) -> Result<File, Error> {
    let name = path.display().to_string();
    if path.is_dir() {
        return Err(Error::io(
            name,
            "write",
            std::io::Error::from(std::io::ErrorKind::IsADirectory),
        ));
    }
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io(name, "write", e))
}

/// Writes `content` over whatever `file` held.
fn replace_content(file: &mut File, name: &str, content: &[u8]) -> Result<(), Error> {
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(content))
        .and_then(|()| file.flush())
        .map_err(|e| Error::io(name, "write", e))
}

/// Runs the procedure described by `args`, writes the bank, and returns the summary.
pub fn execute(args: &CalibrateExposureArgs) -> Result<Output, Error> {
    let started = Instant::now();
    let target = args.target_exposure;
    let tolerance = args
        .tolerance
        .unwrap_or_else(|| default_tolerance(target, args.design.examinees));
    if !(target > 0.0 && target <= 1.0) {
        return Err(Error::Options(format!(
            "--target-exposure must be in (0, 1] (got {target})"
        )));
    }
    if tolerance < 0.0 {
        return Err(Error::Options(format!(
            "--tolerance must be >= 0 (got {tolerance})"
        )));
    }
    if args.resume && args.design.bank.is_none() {
        return Err(Error::Options(
            "--resume starts from the parameters of a --bank file (a generated bank has none)"
                .into(),
        ));
    }
    let mut design = Design::new(&args.design)?;
    let out_name = args.out.display().to_string();
    let mut out_file = open_out(&args.out)?;

    let n = design.bank.bank.len();
    let counts: Arc<[AtomicU64]> = (0..n).map(|_| AtomicU64::new(0)).collect();
    let counter = Arc::clone(&counts);
    design.wrap_selector(move |inner| {
        Box::new(SympsonHetter::new(Box::new(Counting {
            inner,
            counts: counter,
        })))
    });
    design.config.exposure_control = true;
    let examinees = design.sim.examinees as f64;
    let max_iterations = args.iterations as usize;
    // One simulation with parameters `k`: its summary, each item's selection
    // rate P(S), and the largest k P(S).
    let run = |k: &[f64], label: &str| {
        for c in counts.iter() {
            c.store(0, Ordering::Relaxed);
        }
        let bank = design.bank.bank.clone().with_exposure(k.to_vec());
        let sim = simulate::run(&design.cat, &bank, &design.sim, label);
        let rates: Vec<f64> = counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed) as f64 / examinees)
            .collect();
        let expected = k.iter().zip(&rates).map(|(k, s)| k * s).fold(0.0, f64::max);
        let summary = sim.summary();
        (Figures::new(&summary, expected), summary.mean_length, rates)
    };

    let ones = vec![1.0; n];
    let mut k: Vec<f64> = if args.resume {
        (0..n).map(|i| design.bank.bank.exposure(i)).collect()
    } else {
        ones.clone()
    };
    let mut unconstrained = (k != ones).then(|| run(&ones, "unconstrained").0);
    let mut history = Vec::new();
    let (last, converged) = loop {
        let iteration = history.len() + 1;
        let label = format!("iteration {iteration}/{max_iterations}");
        let (figures, mean_length, rates) = run(&k, &label);
        unconstrained.get_or_insert_with(|| figures.clone());
        history.push(Iteration {
            iteration,
            max_exposure: figures.max_exposure,
            max_expected_exposure: figures.max_expected_exposure,
            rmse: figures.rmse,
            controlled_items: k.iter().filter(|&&x| x < 1.0).count(),
        });
        let converged = meets(figures.max_exposure, target, tolerance);
        if converged || iteration == max_iterations {
            if !converged {
                let why = not_converged(&figures, target, tolerance, examinees, mean_length, n);
                eprintln!(
                    "warning: not converged after {iteration} iterations (max exposure {} > {target} + {tolerance}){why}",
                    figures.max_exposure
                );
            }
            break (figures, converged);
        }
        k = update(target, &rates);
    };

    design.bank.bank = design.bank.bank.clone().with_exposure(k.clone());
    design.bank.has_exposure = k.iter().any(|&x| x < 1.0);
    let content = if is_csv(&args.out) {
        report::bank_csv(&design.bank)?
    } else {
        bank::to_json(&design.bank).into_bytes()
    };
    replace_content(&mut out_file, &out_name, &content)?;
    Ok(Output {
        target,
        tolerance,
        iterations: history.len(),
        converged,
        last,
        controlled_items: k.iter().filter(|&&x| x < 1.0).count(),
        min_parameter: k.iter().copied().fold(1.0, f64::min),
        unconstrained: unconstrained.expect("the first iteration or a run with k = 1"),
        out: out_name,
        wall_seconds: started.elapsed().as_secs_f64(),
        history,
        config: design.config,
    })
}

/// True when the file name ends in `.csv` (any case).
fn is_csv(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
}

/// Runs `calibrate-exposure`: the bank goes to `--out`, the JSON summary to `out`.
pub fn run(args: &CalibrateExposureArgs, out: &mut dyn Write) -> Result<(), Error> {
    let output = execute(args)?;
    let text = serde_json::to_string_pretty(&output).expect("the summary serializes");
    writeln!(out, "{text}").map_err(|e| Error::io("<stdout>", "write", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lectern_engine::sim::{SimConfig, generate_bank, simulate};
    use lectern_engine::{Cat, Eap, MaxInfo, StopRule};

    #[test]
    fn update_lowers_only_the_items_selected_too_often() {
        let k = update(0.25, &[0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 0.3]);
        assert_eq!(k, [1.0, 1.0, 1.0, 0.5, 0.25, 0.125, 0.833333]);
        // Kept to 6 significant digits, so the bank file stays readable.
        assert_eq!(update(0.2, &[0.3])[0].to_string(), "0.666667");
        assert_eq!(update(0.01, &[7.0])[0], 0.00142857);
        // A target of 1 never lowers anything: no item is selected more than once
        // per examinee without exposure control.
        assert_eq!(update(1.0, &[1.0, 0.2]), [1.0, 1.0]);
        assert!(update(0.3, &[]).is_empty());
    }

    #[test]
    fn default_tolerance_is_the_chance_spread_and_at_least_a_percent() {
        // r = 0.25 among 1,000 examinees: 3 × 0.0137.
        assert!((default_tolerance(0.25, 1000) - 0.041079).abs() < 1e-6);
        assert_eq!(default_tolerance(0.2, 1_000_000), 0.01);
    }

    #[test]
    fn meets_allows_the_tolerance_and_rounding() {
        assert!(meets(0.21, 0.2, 0.01));
        assert!(meets(0.3, 0.3, 0.0));
        assert!(!meets(0.2101, 0.2, 0.01));
    }

    /// The counts are the inner selector's picks: P(A) = k P(S) on average, and
    /// with every k = 1 the picks are the administrations.
    #[test]
    fn counting_sees_every_selection() {
        let n = 60;
        let counts: Arc<[AtomicU64]> = (0..n).map(|_| AtomicU64::new(0)).collect();
        let selector = SympsonHetter::new(Box::new(Counting {
            inner: Box::new(MaxInfo),
            counts: Arc::clone(&counts),
        }));
        let cat = Cat::new(
            Box::new(Eap::default()),
            Box::new(selector),
            StopRule {
                max_items: 10,
                ..StopRule::default()
            },
        );
        let cfg = SimConfig {
            examinees: 400,
            seed: 3,
            threads: 2,
            ..SimConfig::default()
        };
        let plain = generate_bank(n, 4);
        let sim = simulate(&cat, &plain, &cfg, &|_| {});
        let selected: Vec<u64> = counts
            .iter()
            .map(|c| c.swap(0, Ordering::Relaxed))
            .collect();
        let given: Vec<u64> = sim.exposure_counts().iter().map(|&c| c as u64).collect();
        assert_eq!(selected, given);

        // The most exposed item at k = 0.3: selected far more often than given.
        let top = (0..n).max_by_key(|&i| given[i]).unwrap();
        let mut k = vec![1.0; n];
        k[top] = 0.3;
        let sim = simulate(&cat, &plain.clone().with_exposure(k), &cfg, &|_| {});
        let selected: Vec<u64> = counts
            .iter()
            .map(|c| c.swap(0, Ordering::Relaxed))
            .collect();
        let given = sim.exposure_counts();
        for i in (0..n).filter(|&i| i != top) {
            assert!(selected[i] >= given[i] as u64, "item {i}");
        }
        let ratio = given[top] as f64 / selected[top] as f64;
        assert!((ratio - 0.3).abs() < 0.05, "{ratio}");
    }
}
