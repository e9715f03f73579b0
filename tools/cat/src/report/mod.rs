//! The simulation report: SVG plots, a self-contained HTML page, and the raw results.

mod html;
mod plots;
mod raw;

use std::path::Path;

use crate::error::Error;
use crate::simulate::Outcome;

pub(crate) use raw::bank_csv;

/// Conditional statistics: this many equal bins of true θ over [`COND_LO`], [`COND_HI`].
const COND_BINS: usize = 12;
const COND_LO: f64 = -3.0;
const COND_HI: f64 = 3.0;

/// Creates the report directory.
pub fn prepare(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(dir.display().to_string(), "create directory", e))
}

fn write_file(dir: &Path, name: &str, content: &[u8]) -> Result<(), Error> {
    let path = dir.join(name);
    std::fs::write(&path, content).map_err(|e| Error::io(path.display().to_string(), "write", e))
}

/// `x` with 4 decimals, or a dash when it is undefined (NaN).
fn num(x: f64) -> String {
    num_places(x, 4)
}

fn num_places(x: f64, places: usize) -> String {
    if x.is_finite() {
        format!("{x:.places$}")
    } else {
        "–".to_owned()
    }
}

/// Writes the report into `dir` (which [`prepare`] created).
pub fn write(dir: &Path, outcome: &Outcome) -> Result<(), Error> {
    let bins = outcome.sim.conditional(COND_LO, COND_HI, COND_BINS);
    let plots = plots::render(outcome, &bins)?;
    for plot in &plots {
        write_file(dir, plot.file, plot.svg.as_bytes())?;
    }
    write_file(
        dir,
        "index.html",
        html::page(outcome, &bins, &plots).as_bytes(),
    )?;
    raw::write(dir, outcome, &bins)
}
