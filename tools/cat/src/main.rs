//! `lectern-cat`: see `lectern-cat --help`.

use clap::Parser;

fn main() {
    if let Err(e) = lectern_cat::run(lectern_cat::Cli::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
