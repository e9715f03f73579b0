//! `lectern-local`: every route in one process, for development.

#[tokio::main]
async fn main() {
    if let Err(line) = lectern::local::run().await {
        eprintln!("{line}");
        std::process::exit(1);
    }
}
