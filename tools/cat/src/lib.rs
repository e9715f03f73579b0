//! `lectern-cat`: lectern's psychometric engine on the command line.
//!
//! - `estimate`: ability estimates (θ, SE) for response patterns read from a file;
//! - `simulate`: Monte Carlo simulation of an adaptive test design on a bank, with
//!   an optional HTML report;
//! - `calibrate`: item parameters from recorded responses (marginal maximum
//!   likelihood by EM).
//!
//! Everything is computed by `lectern_engine`; this crate reads files, checks
//! them (every error is one line naming the file, the row or line, and the
//! problem), and writes JSON, SVG and HTML.

pub mod bank;
pub mod calibrate;
pub mod error;
pub mod estimate;
pub mod exposure;
pub mod report;
pub mod responses;
pub mod simulate;

use clap::{Args, Parser, Subcommand, ValueEnum};
use lectern_engine::{Eap, Estimator, EstimatorKind, NormalPrior};

pub use error::Error;

/// lectern-cat: IRT ability estimation and adaptive-test simulation on an item bank.
///
/// A bank mixes dichotomous items (1PL–4PL, P(θ) = c + (d − c) / (1 + exp(−a(θ −
/// b)))) and polytomous ones (graded response, generalized and plain partial
/// credit; scores 0…m). Parameters are read on the logistic metric (D = 1); banks
/// calibrated with D = 1.702 are read with `--scale 1.702`.
#[derive(Debug, Parser)]
#[command(name = "lectern-cat", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Estimate θ and its standard error for each response pattern of a file.
    ///
    /// Prints one JSON line {"theta": θ, "se": SE} per pattern, in input order.
    /// Nothing is printed if any line of the file is wrong.
    #[command(after_help = estimate::AFTER_HELP)]
    Estimate(estimate::EstimateArgs),
    /// Simulate adaptive tests on a bank and print the recovery statistics as JSON.
    ///
    /// Examinees' true θ are drawn from N(--theta-mean, --theta-sd²); each answers
    /// by the model; the test runs with the chosen estimator, selector and stop
    /// rule. The same seed gives the same results, whatever the thread count.
    #[command(after_help = simulate::AFTER_HELP)]
    Simulate(Box<simulate::SimulateArgs>),
    /// Estimate item parameters from responses by marginal maximum likelihood (EM).
    ///
    /// Bock–Aitkin EM on a quadrature grid, for 1PL, 2PL, 3PL, GRM, GPCM and PCM
    /// items, mixed freely; sparse (adaptive-test) data is read as it is: an item
    /// a person was not given is missing, not wrong. Prints a JSON summary.
    #[command(after_help = calibrate::AFTER_HELP)]
    Calibrate(Box<calibrate::CalibrateArgs>),
    /// Calibrate Sympson–Hetter exposure parameters for a target maximum exposure rate.
    ///
    /// Runs the Sympson–Hetter (1985) procedure by simulation: each iteration
    /// simulates the design with the current parameters and lowers those of the
    /// items selected more often than the target; then writes the bank with its
    /// parameters (--out) and prints a JSON summary.
    #[command(after_help = exposure::AFTER_HELP)]
    CalibrateExposure(Box<exposure::CalibrateExposureArgs>),
}

/// The ability estimators, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EstimatorName {
    /// Expected a posteriori: posterior mean on a quadrature grid; SE = posterior SD.
    Eap,
    /// Maximum a posteriori (Bayes modal); SE from the posterior information.
    Map,
    /// Maximum likelihood, bounded to [-6, 6]; SE = 1/√I(θ̂).
    Mle,
    /// Warm's weighted likelihood (bias-corrected MLE); SE = 1/√I(θ̂).
    Wle,
}

impl From<EstimatorName> for EstimatorKind {
    fn from(name: EstimatorName) -> Self {
        match name {
            EstimatorName::Eap => EstimatorKind::Eap,
            EstimatorName::Map => EstimatorKind::Map,
            EstimatorName::Mle => EstimatorKind::Mle,
            EstimatorName::Wle => EstimatorKind::Wle,
        }
    }
}

/// The estimator options, shared by both subcommands.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Estimator")]
pub struct EstimatorArgs {
    /// Ability estimator.
    #[arg(long, value_enum, default_value_t = EstimatorName::Eap)]
    pub estimator: EstimatorName,
    /// Mean of the normal prior (EAP and MAP).
    #[arg(long, value_name = "MEAN", default_value_t = 0.0, value_parser = finite, allow_negative_numbers = true)]
    pub prior_mean: f64,
    /// Standard deviation of the normal prior (EAP and MAP).
    #[arg(long, value_name = "SD", default_value_t = 1.0, value_parser = positive)]
    pub prior_sd: f64,
    /// Number of evenly spaced EAP quadrature points.
    #[arg(long, value_name = "N", default_value_t = 61, value_parser = clap::value_parser!(u32).range(2..=100_000))]
    pub grid_points: u32,
    /// Lowest EAP quadrature point.
    #[arg(long, value_name = "θ", default_value_t = -6.0, value_parser = finite, allow_negative_numbers = true)]
    pub grid_min: f64,
    /// Highest EAP quadrature point.
    #[arg(long, value_name = "θ", default_value_t = 6.0, value_parser = finite, allow_negative_numbers = true)]
    pub grid_max: f64,
}

impl EstimatorArgs {
    /// The estimator these options describe.
    pub fn build(&self) -> Result<Box<dyn Estimator>, Error> {
        if self.grid_min >= self.grid_max {
            return Err(Error::Options(format!(
                "--grid-min ({}) must be below --grid-max ({})",
                self.grid_min, self.grid_max
            )));
        }
        let prior = NormalPrior::new(self.prior_mean, self.prior_sd);
        Ok(match self.estimator {
            EstimatorName::Eap => Box::new(Eap::with_grid(
                prior,
                self.grid_points as usize,
                self.grid_min,
                self.grid_max,
            )),
            other => EstimatorKind::from(other).build(prior),
        })
    }
}

/// A finite number.
fn finite(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        Ok(x) => Err(format!("must be a finite number (got {x})")),
        Err(_) => Err(format!("not a number: {s:?}")),
    }
}

/// A finite number > 0.
fn positive(s: &str) -> Result<f64, String> {
    match finite(s)? {
        x if x > 0.0 => Ok(x),
        x => Err(format!("must be > 0 (got {x})")),
    }
}

/// A number strictly between 0 and 1.
fn probability(s: &str) -> Result<f64, String> {
    match finite(s)? {
        x if x > 0.0 && x < 1.0 => Ok(x),
        x => Err(format!("must be strictly between 0 and 1 (got {x})")),
    }
}

/// Runs the tool; standard output gets the results, standard error the progress.
pub fn run(cli: Cli) -> Result<(), Error> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = match cli.command {
        Command::Estimate(args) => estimate::run(&args, &mut out),
        Command::Simulate(args) => simulate_and_report(&args, &mut out),
        Command::Calibrate(args) => calibrate::run(&args, &mut out),
        Command::CalibrateExposure(args) => exposure::run(&args, &mut out),
    };
    result
        .and_then(|()| {
            std::io::Write::flush(&mut out).map_err(|e| Error::io("<stdout>", "write", e))
        })
        .or_else(quiet_broken_pipe)
}

/// Runs `simulate`: the JSON summary goes to `out`, the report (if asked) to its directory.
fn simulate_and_report(
    args: &simulate::SimulateArgs,
    out: &mut dyn std::io::Write,
) -> Result<(), Error> {
    if let Some(dir) = &args.report {
        // Before the simulation, so that a bad directory fails fast.
        report::prepare(dir)?;
    }
    let outcome = simulate::execute(args)?;
    if let Some(dir) = &args.report {
        report::write(dir, &outcome)?;
    }
    simulate::print(&outcome, out)
}

/// A closed standard output (`lectern-cat … | head`) is not an error.
fn quiet_broken_pipe(e: Error) -> Result<(), Error> {
    match &e {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        _ => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn number_parsers() {
        assert_eq!(finite("-1.5"), Ok(-1.5));
        assert!(finite("nan").is_err());
        assert!(finite("x").is_err());
        assert_eq!(positive("1.702"), Ok(1.702));
        assert!(positive("0").is_err());
        assert!(probability("1").is_err());
        assert_eq!(probability("0.9"), Ok(0.9));
    }

    #[test]
    fn grid_must_increase() {
        let cli = Cli::try_parse_from([
            "lectern-cat",
            "estimate",
            "--bank",
            "b.csv",
            "--responses",
            "r.jsonl",
            "--grid-min",
            "2",
            "--grid-max",
            "-2",
        ])
        .unwrap();
        let Command::Estimate(args) = cli.command else {
            panic!("not estimate")
        };
        let err = args.estimator.build().err().unwrap();
        assert_eq!(
            err.to_string(),
            "--grid-min (2) must be below --grid-max (-2)"
        );
    }
}
