//! `lectern-cat simulate`: Monte Carlo simulation of an adaptive test design;
//! the design options and their engine, which `calibrate-exposure` shares.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use clap::{ArgGroup, Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use lectern_engine::sim::{SimConfig, Simulation, Summary, simulate};
use lectern_engine::{
    Cat, Classify, ContentBalanced, EstimatorKind, FixedTheta, Initializer, ItemBank,
    MAX_CATEGORIES, MaxInfo, PolyModel, Randomesque, Selector, StopRule, SympsonHetter,
};
use serde::Serialize;

use crate::bank::{self, Bank};
use crate::error::Error;
use crate::{EstimatorArgs, EstimatorName, finite, positive, probability};

/// Extra help text of `simulate`.
pub const AFTER_HELP: &str = "\
--generate N draws a reproducible bank from --seed, with ids g001, g002, ...
and no concepts. --model 3pl (the default): a ~ U(0.8, 2.0),
b ~ N(0, 1.2²) clipped to [-3.5, 3.5], c ~ U(0.05, 0.25), d = 1.
--model grm, gpcm or pcm with --categories K (2 to 10, default 5): location
β ~ N(0, 1) clipped to [-2.5, 2.5], the K - 1 thresholds (steps) β plus
offsets evenly spaced over [-1.5, 1.5] plus N(0, 0.15²) jitter, sorted and
at least 0.15 apart, a ~ U(0.8, 2.2) (1 for pcm).
A --bank may mix dichotomous and polytomous items (see `lectern-cat estimate
--help` for the formats); every answer is a score drawn from the item's model.

Selection: maximum information, or randomesque (uniform among the K most
informative items); --content-balance picks, before each item, the concept
furthest below its target share; --exposure-control adds Sympson–Hetter
control with each item's exposure parameter (bank column `exposure`;
`lectern-cat calibrate-exposure` computes them for a target rate).
They combine: Sympson–Hetter over content balancing over the base selector.

Output: one JSON object with bias, rmse, mean_se, correlation, mean_length,
min_length, max_length, max_exposure, overlap_rate, never_used, wall_seconds,
the count of each stop reason and the configuration (with the number of items
of each model). --report DIR also writes DIR/index.html with plots (SVG;
among them the category response curves of one item, --curves-item, and the
bank's information by model), summary.json (with conditional statistics by
true θ), examinees.csv, responses.jsonl (the scores) and bank.csv (model, a,
b or b1..bm, c, d); `lectern-cat estimate --bank DIR/bank.csv --responses
DIR/responses.jsonl` reproduces the estimates.

Examples:
  lectern-cat simulate --generate 300 --examinees 1000 --seed 7 \\
      --max-items 30 --se-target 0.3 --randomesque 5 --report sim-report
  lectern-cat simulate --generate 300 --model grm --categories 5 \\
      --examinees 1000 --seed 7 --max-items 15 --report grm-report";

/// The models of a generated bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GeneratedModel {
    /// Three-parameter logistic (right/wrong) items.
    #[value(name = "3pl")]
    ThreePl,
    /// Graded response model.
    Grm,
    /// Generalized partial credit model.
    Gpcm,
    /// Partial credit model (a = 1).
    Pcm,
}

impl GeneratedModel {
    fn poly(self) -> Option<PolyModel> {
        match self {
            GeneratedModel::ThreePl => None,
            GeneratedModel::Grm => Some(PolyModel::Grm),
            GeneratedModel::Gpcm => Some(PolyModel::Gpcm),
            GeneratedModel::Pcm => Some(PolyModel::Pcm),
        }
    }
}

/// Default number of categories of a generated polytomous bank.
const DEFAULT_CATEGORIES: usize = 5;

/// The base item selectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SelectorName {
    /// The item with the most Fisher information at the current θ̂.
    MaxInfo,
    /// Uniformly among the K most informative items (Kingsbury & Zara), K from
    /// --randomesque (default 5).
    Randomesque,
}

impl SelectorName {
    fn name(self) -> &'static str {
        match self {
            SelectorName::MaxInfo => "max-info",
            SelectorName::Randomesque => "randomesque",
        }
    }
}

/// Default K of randomesque selection.
const DEFAULT_RANDOMESQUE: usize = 5;

/// The options of a simulated design, shared by `simulate` and
/// `calibrate-exposure`: the bank, the examinees, the stop rule, the item
/// selection (without exposure control), the estimator and the threads.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["bank", "generate"])))]
pub struct DesignArgs {
    /// Item bank file (JSON or CSV; see `lectern-cat estimate --help`).
    #[arg(long, value_name = "BANK", help_heading = "Bank")]
    pub bank: Option<String>,
    /// Generate a reproducible bank of N items from --seed (see below).
    #[arg(long, value_name = "N", help_heading = "Bank",
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub generate: Option<u64>,
    /// Model of the generated bank [default: 3pl].
    #[arg(long, value_enum, conflicts_with = "bank", help_heading = "Bank")]
    pub model: Option<GeneratedModel>,
    /// Categories of each generated polytomous item, 2 to 10 [default: 5].
    #[arg(long, value_name = "K", conflicts_with = "bank", value_parser = categories,
          help_heading = "Bank")]
    pub categories: Option<usize>,
    /// Scaling constant D for --bank: every a is multiplied by it.
    #[arg(long, value_name = "D", default_value_t = 1.0, value_parser = positive,
          conflicts_with = "generate", help_heading = "Bank")]
    pub scale: f64,

    /// Number of simulated examinees.
    #[arg(long, value_name = "N", help_heading = "Examinees",
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub examinees: u64,
    /// Seed of everything random (bank generation, abilities, answers, selection).
    #[arg(long, value_name = "S", help_heading = "Examinees")]
    pub seed: u64,
    /// Mean of the examinees' true θ distribution.
    #[arg(long, value_name = "θ", default_value_t = 0.0, value_parser = finite,
          allow_negative_numbers = true, help_heading = "Examinees")]
    pub theta_mean: f64,
    /// Standard deviation of the examinees' true θ distribution (0: everyone at --theta-mean).
    #[arg(long, value_name = "SD", default_value_t = 1.0, value_parser = non_negative,
          help_heading = "Examinees")]
    pub theta_sd: f64,

    /// Longest test (items).
    #[arg(long, value_name = "N", default_value_t = 20, help_heading = "Stop rule",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_items: u64,
    /// No test stops before this many items, for any reason.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        help_heading = "Stop rule"
    )]
    pub min_items: u64,
    /// Stop once the standard error is at or below X (variable-length test).
    #[arg(long, value_name = "X", value_parser = positive, help_heading = "Stop rule")]
    pub se_target: Option<f64>,
    /// Stop once the confidence interval θ̂ ± z·SE excludes this cut score
    /// (classification test).
    #[arg(long, value_name = "θ", value_parser = finite, allow_negative_numbers = true,
          help_heading = "Stop rule")]
    pub cut_score: Option<f64>,
    /// Two-sided confidence level of the classification [default: 0.95].
    #[arg(long, value_name = "LEVEL", value_parser = probability, requires = "cut_score",
          help_heading = "Stop rule")]
    pub confidence: Option<f64>,
    /// θ at which the first item is chosen [default: the estimator's start: the
    /// prior mean for EAP and MAP, 0 for MLE and WLE].
    #[arg(long, value_name = "θ", value_parser = finite, allow_negative_numbers = true,
          help_heading = "Stop rule")]
    pub start_theta: Option<f64>,

    /// Base item selector [default: randomesque if --randomesque is given, else max-info].
    #[arg(long, value_enum, help_heading = "Item selection")]
    pub selector: Option<SelectorName>,
    /// Randomesque selection among the K most informative items (implies --selector randomesque).
    #[arg(long, value_name = "K", help_heading = "Item selection",
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub randomesque: Option<u64>,
    /// Content balancing toward target proportions of the bank's concepts, e.g.
    /// "algebra=0.5,geometry=0.5" (proportions are rescaled to sum to 1).
    #[arg(long, value_name = "SPEC", help_heading = "Item selection")]
    pub content_balance: Option<String>,

    #[command(flatten)]
    pub estimator: EstimatorArgs,

    /// Worker threads (0: one per core). Results do not depend on it.
    #[arg(long, value_name = "N", default_value_t = 0, help_heading = "Output")]
    pub threads: usize,
}

/// Options of `simulate`.
#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// The design.
    #[command(flatten)]
    pub design: DesignArgs,
    /// Sympson–Hetter exposure control with the bank's `exposure` parameters.
    #[arg(long, help_heading = "Item selection")]
    pub exposure_control: bool,
    /// Write an HTML report with SVG plots (and the raw results) into DIR.
    #[arg(long, value_name = "DIR", help_heading = "Output")]
    pub report: Option<PathBuf>,
    /// The item whose category response curves the report draws [default: the
    /// most exposed polytomous item, else the most exposed item].
    #[arg(long, value_name = "ID", requires = "report", help_heading = "Output")]
    pub curves_item: Option<String>,
}

/// A category count from 2 to [`MAX_CATEGORIES`].
fn categories(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(k) if (2..=MAX_CATEGORIES).contains(&k) => Ok(k),
        _ => Err(format!(
            "a polytomous item has 2 to {MAX_CATEGORIES} categories (got {s:?})"
        )),
    }
}

/// A finite number ≥ 0.
fn non_negative(s: &str) -> Result<f64, String> {
    match finite(s)? {
        x if x >= 0.0 => Ok(x),
        x => Err(format!("must be >= 0 (got {x})")),
    }
}

/// One content-balancing target.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// Concept name.
    pub concept: String,
    /// Target proportion (the targets sum to 1).
    pub proportion: f64,
}

/// The EAP quadrature grid.
#[derive(Debug, Clone, Serialize)]
pub struct Grid {
    /// Number of points.
    pub points: u32,
    /// Lowest point.
    pub min: f64,
    /// Highest point.
    pub max: f64,
}

/// The simulated design, as printed and reported.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// The bank file, or "generated".
    pub bank: String,
    /// How a generated bank was drawn.
    pub generated: Option<String>,
    /// Number of items in the bank.
    pub bank_items: usize,
    /// Number of items of each model (see [`Bank::model_counts`]).
    pub bank_models: BTreeMap<&'static str, usize>,
    /// Scaling constant applied to a.
    pub scale: f64,
    /// Number of examinees.
    pub examinees: usize,
    /// Seed.
    pub seed: u64,
    /// Mean of true θ.
    pub theta_mean: f64,
    /// SD of true θ.
    pub theta_sd: f64,
    /// Estimator name.
    pub estimator: &'static str,
    /// Prior mean (EAP, MAP).
    pub prior_mean: Option<f64>,
    /// Prior SD (EAP, MAP).
    pub prior_sd: Option<f64>,
    /// EAP grid.
    pub eap_grid: Option<Grid>,
    /// Base selector.
    pub selector: &'static str,
    /// K of randomesque selection.
    pub randomesque_k: Option<usize>,
    /// Content-balancing targets.
    pub content_balance: Option<Vec<Target>>,
    /// Sympson–Hetter exposure control on.
    pub exposure_control: bool,
    /// Longest test.
    pub max_items: usize,
    /// Shortest test.
    pub min_items: usize,
    /// SE stop target.
    pub se_target: Option<f64>,
    /// Classification cut score.
    pub cut_score: Option<f64>,
    /// Classification confidence level.
    pub confidence: Option<f64>,
    /// θ of the first item.
    pub start_theta: Option<f64>,
    /// Requested worker threads (0 = one per core).
    pub threads: usize,
}

/// What `simulate` prints: the summary's fields, the stop reasons, the design.
#[derive(Debug, Serialize)]
pub struct Output<'a> {
    /// The summary statistics, as top-level fields.
    #[serde(flatten)]
    pub summary: &'a Summary,
    /// How many tests ended for each reason.
    pub stop_reasons: BTreeMap<&'static str, usize>,
    /// The design.
    pub config: &'a Config,
}

/// Parses "name=proportion,name=proportion" against the bank's concepts.
fn content_targets(spec: &str, bank: &Bank) -> Result<Vec<(String, u16, f64)>, Error> {
    let fail = |m: String| Error::Options(format!("--content-balance: {m}"));
    let mut targets: Vec<(String, u16, f64)> = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, value)) = part.split_once('=') else {
            return Err(fail(format!("expected concept=proportion, got {part:?}")));
        };
        let name = name.trim();
        let value: f64 = value
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v > 0.0)
            .ok_or_else(|| {
                fail(format!(
                    "the proportion of {name:?} must be a number > 0 (got {:?})",
                    value.trim()
                ))
            })?;
        let Some(id) = bank.concept_id(name) else {
            let known = if bank.concepts.is_empty() {
                "the bank has no concepts".to_owned()
            } else {
                format!("the bank's concepts: {}", bank.concepts.join(", "))
            };
            return Err(fail(format!("unknown concept {name:?} ({known})")));
        };
        if targets.iter().any(|t| t.1 == id) {
            return Err(fail(format!("concept {name:?} is listed twice")));
        }
        targets.push((name.to_owned(), id, value));
    }
    if targets.is_empty() {
        return Err(fail("no concept given".into()));
    }
    Ok(targets)
}

/// The selector and the parts of the configuration that describe it.
struct Selection {
    selector: Box<dyn Selector>,
    base: SelectorName,
    k: Option<usize>,
    targets: Option<Vec<Target>>,
}

/// The base selector, under content balancing when asked (no exposure control).
fn selection(args: &DesignArgs, bank: &Bank) -> Result<Selection, Error> {
    let base = match (args.selector, args.randomesque) {
        (Some(SelectorName::MaxInfo), Some(_)) => {
            return Err(Error::Options(
                "--randomesque K needs --selector randomesque (or no --selector)".into(),
            ));
        }
        (Some(s), _) => s,
        (None, Some(_)) => SelectorName::Randomesque,
        (None, None) => SelectorName::MaxInfo,
    };
    let (mut selector, k): (Box<dyn Selector>, Option<usize>) = match base {
        SelectorName::MaxInfo => (Box::new(MaxInfo), None),
        SelectorName::Randomesque => {
            let k = args.randomesque.map_or(DEFAULT_RANDOMESQUE, |k| k as usize);
            (Box::new(Randomesque { k }), Some(k))
        }
    };
    let mut targets = None;
    if let Some(spec) = &args.content_balance {
        let named = content_targets(spec, bank)?;
        let balanced = ContentBalanced::new(named.iter().map(|t| (t.1, t.2)).collect(), selector)
            .map_err(|m| Error::Options(format!("--content-balance: {m}")))?;
        targets = Some(
            named
                .iter()
                .zip(balanced.targets())
                .map(|(t, &(_, p))| Target {
                    concept: t.0.clone(),
                    proportion: p,
                })
                .collect(),
        );
        selector = Box::new(balanced);
    }
    Ok(Selection {
        selector,
        base,
        k,
        targets,
    })
}

/// A design built from [`DesignArgs`]: the bank, the engine that runs each
/// test, what to simulate, and the configuration that describes them.
pub struct Design {
    /// The description (`exposure_control` false until a caller adds it).
    pub config: Config,
    /// The bank.
    pub bank: Bank,
    /// The engine; its selector is the base selector under content balancing,
    /// without exposure control (see [`Design::wrap_selector`]).
    pub cat: Cat,
    /// The examinees.
    pub sim: SimConfig,
}

impl Design {
    /// Checks the options, reads or generates the bank and builds the engine.
    pub fn new(args: &DesignArgs) -> Result<Design, Error> {
        if args.min_items > args.max_items {
            return Err(Error::Options(format!(
                "--min-items ({}) must not exceed --max-items ({})",
                args.min_items, args.max_items
            )));
        }
        let estimator = args.estimator.build()?;
        let poly = args.model.and_then(GeneratedModel::poly);
        if poly.is_none() && args.categories.is_some() {
            return Err(Error::Options(
                "--categories applies to a polytomous --model (grm, gpcm or pcm), not 3pl".into(),
            ));
        }
        let poly = poly.map(|m| (m, args.categories.unwrap_or(DEFAULT_CATEGORIES)));
        let (bank, source, generated) = match (&args.bank, args.generate) {
            (Some(path), _) => (bank::load(path, args.scale)?, path.clone(), None),
            (None, Some(n)) => (
                bank::generate(n as usize, args.seed, poly),
                "generated".to_owned(),
                Some(bank::recipe(poly)),
            ),
            (None, None) => unreachable!("clap requires --bank or --generate"),
        };
        let selection = selection(args, &bank)?;
        let stop = StopRule {
            max_items: args.max_items as usize,
            min_items: args.min_items as usize,
            se_target: args.se_target,
            classify: args
                .cut_score
                .map(|cut| Classify::new(cut, args.confidence.unwrap_or(0.95))),
            levels: None,
        };
        let mut cat = Cat::new(estimator, selection.selector, stop);
        cat.start = args.start_theta.map(|t| FixedTheta(t).start().theta);
        let bayesian = matches!(
            args.estimator.estimator,
            EstimatorName::Eap | EstimatorName::Map
        );
        let config = Config {
            bank: source,
            generated,
            bank_items: bank.ids.len(),
            bank_models: bank.model_counts().into_iter().collect(),
            scale: if args.bank.is_some() { args.scale } else { 1.0 },
            examinees: args.examinees as usize,
            seed: args.seed,
            theta_mean: args.theta_mean,
            theta_sd: args.theta_sd,
            estimator: EstimatorKind::from(args.estimator.estimator).name(),
            prior_mean: bayesian.then_some(args.estimator.prior_mean),
            prior_sd: bayesian.then_some(args.estimator.prior_sd),
            eap_grid: (args.estimator.estimator == EstimatorName::Eap).then_some(Grid {
                points: args.estimator.grid_points,
                min: args.estimator.grid_min,
                max: args.estimator.grid_max,
            }),
            selector: selection.base.name(),
            randomesque_k: selection.k,
            content_balance: selection.targets,
            exposure_control: false,
            max_items: stop.max_items,
            min_items: stop.min_items,
            se_target: stop.se_target,
            cut_score: args.cut_score,
            confidence: args.cut_score.map(|_| args.confidence.unwrap_or(0.95)),
            start_theta: cat.start,
            threads: args.threads,
        };
        let sim = SimConfig {
            examinees: config.examinees,
            seed: args.seed,
            theta_mean: args.theta_mean,
            theta_sd: args.theta_sd,
            threads: args.threads,
        };
        Ok(Design {
            config,
            bank,
            cat,
            sim,
        })
    }

    /// Replaces the engine's selector by `wrap` of it (e.g. exposure control).
    pub fn wrap_selector(&mut self, wrap: impl FnOnce(Box<dyn Selector>) -> Box<dyn Selector>) {
        let inner = std::mem::replace(&mut self.cat.selector, Box::new(MaxInfo));
        self.cat.selector = wrap(inner);
    }
}

/// Simulates `cfg` with `cat` on `bank`, with a progress bar on standard error
/// that starts with `label`.
pub fn run(cat: &Cat, bank: &ItemBank, cfg: &SimConfig, label: &str) -> Simulation {
    let bar = ProgressBar::new(cfg.examinees as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} {wide_bar} {pos}/{len} examinees, {eta} left")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label.to_owned());
    let sim = simulate(cat, bank, cfg, &|done| {
        bar.set_position(done as u64);
    });
    bar.finish_and_clear();
    sim
}

/// Everything `simulate` computed, for printing and reporting.
pub struct Outcome {
    /// The design.
    pub config: Config,
    /// The bank used.
    pub bank: Bank,
    /// The simulation.
    pub sim: Simulation,
    /// Its summary.
    pub summary: Summary,
    /// Tests per stop reason.
    pub stop_reasons: BTreeMap<&'static str, usize>,
    /// The item named by --curves-item.
    pub curves_item: Option<usize>,
}

impl Outcome {
    /// What `simulate` prints.
    pub fn output(&self) -> Output<'_> {
        Output {
            summary: &self.summary,
            stop_reasons: self.stop_reasons.clone(),
            config: &self.config,
        }
    }
}

/// Runs the simulation described by `args`, with a progress bar on standard error.
pub fn execute(args: &SimulateArgs) -> Result<Outcome, Error> {
    let mut design = Design::new(&args.design)?;
    let curves_item = args
        .curves_item
        .as_ref()
        .map(|id| {
            design.bank.index.get(id).copied().ok_or_else(|| {
                Error::Options(format!("--curves-item: the bank has no item {id:?}"))
            })
        })
        .transpose()?;
    if args.exposure_control {
        if !design.bank.has_exposure {
            eprintln!(
                "warning: --exposure-control: every item's exposure parameter is 1, so it changes nothing (give the bank an `exposure` column)"
            );
        }
        design.wrap_selector(|inner| Box::new(SympsonHetter::new(inner)));
        design.config.exposure_control = true;
    }
    let sim = run(&design.cat, &design.bank.bank, &design.sim, "simulating");
    let summary = sim.summary();
    let mut stop_reasons = BTreeMap::new();
    for e in &sim.examinees {
        *stop_reasons.entry(e.stop.name()).or_insert(0) += 1;
    }
    Ok(Outcome {
        config: design.config,
        bank: design.bank,
        sim,
        summary,
        stop_reasons,
        curves_item,
    })
}

/// Prints the JSON summary of `outcome` to `out`.
pub fn print(outcome: &Outcome, out: &mut dyn Write) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(&outcome.output()).expect("the summary serializes");
    writeln!(out, "{text}").map_err(|e| Error::io("<stdout>", "write", e))
}
