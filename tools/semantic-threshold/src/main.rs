//! `semantic-threshold`: see `semantic-threshold --help`.

use std::collections::HashMap;

use clap::Parser;
use lectern::ai::{AiConfig, Client};
use lectern_tests::fake_ai::{EMBEDDING_MODEL, FakeAi};
use lectern_tests::semantic_threshold::{
    BUNDLED, ParaphraseSet, THRESHOLDS, choose, markdown, score, tabulate,
};

/// Measures how well each similarity threshold of the semantic answer cache
/// separates paraphrases from near misses, on a paraphrase set
/// (`docs/semantic-cache/paraphrases.json` by default): embeds every question,
/// looks each paraphrase and each different question up among its segment's
/// questions, and prints hits, precision and hit rate per threshold as a
/// markdown table, then the lowest threshold with precision 1.
///
/// Without `--base-url` it measures the test suite's fake embedder (a hashed
/// bag of words on loopback, not a neural model); with it, a real
/// OpenAI-compatible provider, the key read from `AI_API_KEY`. Every model
/// has its own scale of similarities: measure the one you deploy.
#[derive(Debug, Parser)]
#[command(name = "semantic-threshold", version)]
struct Cli {
    /// Base URL of an OpenAI-compatible API (`https://api.openai.com/v1`);
    /// unset: the fake API, started on loopback.
    #[arg(long)]
    base_url: Option<String>,
    /// The embedding model to measure (with `--base-url`).
    #[arg(long, default_value = lectern::ai::DEFAULT_EMBEDDING_MODEL)]
    model: String,
    /// The API key (with `--base-url`).
    #[arg(long, env = "AI_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// A paraphrase set (JSON) instead of the bundled one.
    #[arg(long)]
    set: Option<std::path::PathBuf>,
    /// Also list the paraphrases scoring lowest and the different questions
    /// scoring highest (this many of each).
    #[arg(long, default_value_t = 5)]
    show: usize,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let set = match &cli.set {
        Some(path) => {
            let json = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            ParaphraseSet::parse(&json).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => ParaphraseSet::parse(BUNDLED).map_err(|e| e.to_string())?,
    };
    let mut fake = None;
    let vars: HashMap<&str, String> = match &cli.base_url {
        Some(url) => {
            let key = cli
                .api_key
                .clone()
                .ok_or("--base-url needs a key in AI_API_KEY (or --api-key)")?;
            HashMap::from([
                ("AI_BASE_URL", url.clone()),
                ("AI_API_KEY", key),
                ("AI_EMBEDDING_MODEL", cli.model.clone()),
                ("AI_MAX_RETRIES", "5".to_owned()),
            ])
        }
        None => {
            let ai = fake.insert(FakeAi::start().await);
            ai.vars().into_iter().collect()
        }
    };
    let config = AiConfig::from_lookup(&|k| vars.get(k).cloned()).map_err(|e| e.to_string())?;
    let client = Client::new(config);
    let model = if fake.is_some() {
        format!("{EMBEDDING_MODEL} (the fake embedder: a hashed bag of words, not a neural model)")
    } else {
        client.embedding_model().to_owned()
    };
    let queries: usize = set.groups.iter().map(|g| g.paraphrases.len()).sum();
    println!(
        "Course {:?}: {} groups ({} paraphrases), {} different questions; model {model}\n",
        set.course,
        set.groups.len(),
        queries,
        set.different.len()
    );
    let scored = score(&client, &set).await.map_err(|e| e.to_string())?;
    let rows = tabulate(&scored, &THRESHOLDS);
    print!("{}", markdown(&rows));
    println!("\n{} embedding calls.", client.embedding_calls());
    match choose(&rows) {
        Some(t) => println!("\nChosen threshold: {t:.2} (the lowest with precision 1.0)."),
        None => println!("\nNo threshold measured reaches precision 1.0 with a hit."),
    }
    if cli.show > 0 {
        let name = |g: Option<usize>| g.map_or("-".to_owned(), |g| set.groups[g].question.clone());
        println!(
            "\nParaphrases whose best match is another group's question (score, query -> match):"
        );
        for s in scored.iter().filter(|s| s.group.is_some() && !s.correct()) {
            println!("  {:.3}  {:?} -> {:?}", s.score, s.query, name(s.best));
        }
        let mut paraphrases: Vec<_> = scored.iter().filter(|s| s.correct()).collect();
        paraphrases.sort_by(|a, b| a.score.total_cmp(&b.score));
        println!("\nCorrectly matched paraphrases scoring lowest (score, query -> match):");
        for s in paraphrases.iter().take(cli.show) {
            println!("  {:.3}  {:?} -> {:?}", s.score, s.query, name(s.best));
        }
        let mut different: Vec<_> = scored.iter().filter(|s| s.group.is_none()).collect();
        different.sort_by(|a, b| b.score.total_cmp(&a.score));
        println!("\nDifferent questions scoring highest (score, query -> best match):");
        for s in different.iter().take(cli.show) {
            println!("  {:.3}  {:?} -> {:?}", s.score, s.query, name(s.best));
        }
    }
    Ok(())
}
