//! `lectern-coldstart`: see `lectern-coldstart --help`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use lambda_emulator::{FUNCTIONS, Launch};

/// Cold starts of every lectern Lambda function: each binary found in --dir is
/// started --runs times under the Lambda Runtime API emulator the tests use,
/// and the time from the spawn to its first `GET /runtime/invocation/next`
/// (Lambda's init phase, less the sandbox's own start and the download of the
/// code) is measured, one process at a time, each killed once it polls.
///
/// The configuration needs no network: REDIS_URL and DATABASE_URL name a
/// closed port on loopback, as nothing may connect before the first request;
/// a function that exits or reports an init error instead is listed as failed
/// (exit status 1).
///
/// A binary is looked up in --dir as `lectern-<name>` (cargo's output) or
/// `lectern-<name>/bootstrap` (cargo lambda's, e.g. target/lambda). Measure
/// release builds (`cargo build --release --bins`) to compare with Lambda.
#[derive(Parser)]
#[command(name = "lectern-coldstart", version)]
struct Cli {
    /// Directory of the function binaries [default: this program's own, e.g.
    /// target/release for `cargo run --release`].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Starts per function.
    #[arg(long, short = 'n', default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Only these functions (repeatable), e.g. --function health.
    #[arg(long = "function", value_name = "NAME")]
    functions: Vec<String>,
}

/// One function's binary and what its starts took.
struct Measured {
    name: &'static str,
    path: PathBuf,
    bytes: u64,
    inits: Vec<Duration>,
    failure: Option<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let dir = cli.dir.unwrap_or_else(lambda_emulator::profile_dir);
    for f in &cli.functions {
        if !FUNCTIONS.contains(&f.as_str()) {
            eprintln!(
                "unknown function {f:?}; the functions: {}",
                FUNCTIONS.join(", ")
            );
            return ExitCode::from(2);
        }
    }
    let mut measured: Vec<Measured> = Vec::new();
    for &name in FUNCTIONS {
        if !cli.functions.is_empty() && !cli.functions.iter().any(|f| f == name) {
            continue;
        }
        let Some(path) = find(&dir, name) else {
            eprintln!(
                "no binary for {name} in {} (build with `cargo build --release --bins`)",
                dir.display()
            );
            continue;
        };
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        measured.push(Measured {
            name,
            path,
            bytes,
            inits: Vec::new(),
            failure: None,
        });
    }
    if measured.is_empty() {
        eprintln!("no function binaries in {}", dir.display());
        return ExitCode::from(2);
    }

    // Round-robin over the functions, so that a change in the machine's load
    // during the run spreads over all of them instead of skewing one.
    for _ in 0..cli.runs {
        for m in measured.iter_mut().filter(|m| m.failure.is_none()) {
            match start_once(m.name, &m.path).await {
                Ok(init) => m.inits.push(init),
                Err(e) => m.failure = Some(e),
            }
        }
    }

    println!(
        "{} runs per function, binaries in {}",
        cli.runs,
        dir.display()
    );
    println!();
    println!(
        "| {:<12} | {:>12} | {:>7} | {:>15} | {:>12} |",
        "function", "bytes", "MB", "init median ms", "init p95 ms"
    );
    println!(
        "|{:-<14}|{:->14}|{:->9}|{:->17}|{:->14}|",
        "", "", "", "", ""
    );
    let mut failed = false;
    for m in &mut measured {
        let mb = m.bytes as f64 / 1_000_000.0;
        match &m.failure {
            Some(why) => {
                failed = true;
                println!(
                    "| {:<12} | {:>12} | {:>7.2} | failed: {why}",
                    m.name, m.bytes, mb
                );
            }
            None => {
                m.inits.sort_unstable();
                println!(
                    "| {:<12} | {:>12} | {:>7.2} | {:>15.2} | {:>12.2} |",
                    m.name,
                    m.bytes,
                    mb,
                    ms(median(&m.inits)),
                    ms(percentile(&m.inits, 0.95)),
                );
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The function's binary in `dir`: cargo's layout, then cargo lambda's.
fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    [
        dir.join(format!("lectern-{name}")),
        dir.join(format!("lectern-{name}")).join("bootstrap"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// One cold start: spawn, wait for the first poll, kill.
async fn start_once(name: &str, path: &Path) -> Result<Duration, String> {
    let function = Launch::binary(name, path)
        // A closed port: any connection at start would fail, not hang.
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .env("DATABASE_URL", "postgres://x@127.0.0.1:1/x")
        .timeout(Duration::from_secs(30))
        .try_start()
        .await
        .map_err(|e| format!("cannot start {}: {e}", path.display()))?;
    let init = function.ready().await.map_err(|e| {
        let stderr = function.stderr();
        format!("{e}: {}", stderr.last().map(String::as_str).unwrap_or(""))
    })?;
    // Dropping it kills and reaps the process before the next one starts.
    drop(function);
    Ok(init)
}

fn median(sorted: &[Duration]) -> Duration {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    }
}

/// Nearest rank: the smallest value with at least `p` of the values at or below it.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
