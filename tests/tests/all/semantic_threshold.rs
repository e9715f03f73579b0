//! The semantic answer cache's threshold, measured: the paraphrase set of
//! `docs/semantic-cache/paraphrases.json` embedded through the real client
//! against the fake API's embeddings (a hashed bag of words, not a neural
//! model), and [`lectern::semantic::DEFAULT_THRESHOLD`] checked to be the
//! lowest threshold serving no wrong answer there. Also the embeddings
//! endpoint itself: counted apart from chat, retried, the key kept out of
//! errors. Needs neither Redis nor PostgreSQL.

use std::collections::{HashMap, HashSet};

use lectern::ai::{AiConfig, Client, Error};
use lectern::semantic::DEFAULT_THRESHOLD;
use lectern_tests::fake_ai::{EMBEDDING_DIMENSIONS, EMBEDDING_MODEL, FakeAi};
use lectern_tests::semantic_threshold::{ParaphraseSet, THRESHOLDS, choose, measure};

/// The hit rate measured at [`DEFAULT_THRESHOLD`] on the fake embedder when
/// it was chosen (32 of 96 paraphrases).
const MEASURED_HIT_RATE: f64 = 32.0 / 96.0;
/// How far the hit rate may fall below that before the test fails.
const MARGIN: f64 = 0.03;

fn client(ai: &FakeAi, extra: &[(&'static str, &str)]) -> Client {
    let mut map: HashMap<&str, String> = HashMap::from([("AI_RETRY_BASE_MS", "1".to_owned())]);
    map.extend(ai.vars());
    map.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    Client::new(AiConfig::from_lookup(&|k| map.get(k).cloned()).expect("AI config"))
}

#[test]
fn semantic_threshold_set_is_complete() {
    let set = ParaphraseSet::bundled();
    assert!(set.groups.len() >= 30, "{} groups", set.groups.len());
    assert!(
        set.different.len() >= 30,
        "{} different",
        set.different.len()
    );
    let segments: HashSet<&str> = set.groups.iter().map(|g| g.segment.as_str()).collect();
    let mut texts = HashSet::new();
    for g in &set.groups {
        assert_eq!(g.paraphrases.len(), 3, "{}", g.question);
        for q in std::iter::once(&g.question).chain(&g.paraphrases) {
            assert!(texts.insert(q.to_lowercase()), "twice: {q}");
        }
    }
    for d in &set.different {
        assert!(segments.contains(d.segment.as_str()), "{}", d.segment);
        assert!(
            texts.insert(d.question.to_lowercase()),
            "twice: {}",
            d.question
        );
    }
}

#[tokio::test]
async fn semantic_threshold_default_is_the_lowest_with_precision_one() {
    let ai = FakeAi::start().await;
    let client = client(&ai, &[]);
    let set = ParaphraseSet::bundled();
    let rows = measure(&client, &set, &THRESHOLDS).await.unwrap();
    let table = lectern_tests::semantic_threshold::markdown(&rows);
    assert_eq!(choose(&rows), Some(DEFAULT_THRESHOLD), "\n{table}");
    let at = rows
        .iter()
        .find(|r| r.threshold == DEFAULT_THRESHOLD)
        .expect("DEFAULT_THRESHOLD is one of THRESHOLDS");
    assert_eq!(at.precision, 1.0, "\n{table}");
    assert_eq!((at.false_hits, at.wrong_group_hits), (0, 0), "\n{table}");
    assert!(
        at.hit_rate >= MEASURED_HIT_RATE - MARGIN,
        "hit rate {} < {MEASURED_HIT_RATE} - {MARGIN}\n{table}",
        at.hit_rate
    );
    // Lower thresholds hit more (and the lowest more than the highest).
    for w in rows.windows(2) {
        assert!(w[0].threshold < w[1].threshold);
        assert!(w[0].hit_rate >= w[1].hit_rate, "\n{table}");
        assert!(w[0].hits >= w[1].hits, "\n{table}");
    }
    assert!(
        rows[0].hit_rate > rows[rows.len() - 1].hit_rate,
        "\n{table}"
    );
    // Each distinct text embedded once, through the embeddings endpoint only.
    let distinct: HashSet<&str> = set
        .groups
        .iter()
        .flat_map(|g| std::iter::once(&g.question).chain(&g.paraphrases))
        .chain(set.different.iter().map(|d| &d.question))
        .map(String::as_str)
        .collect();
    assert_eq!(client.embedding_calls(), distinct.len() as u64);
    assert_eq!(ai.embedding_calls(), distinct.len());
    assert_eq!((client.upstream_calls(), ai.calls()), (0, 0));
}

#[tokio::test]
async fn semantic_threshold_embeddings_are_retried_and_keep_the_key_out() {
    let ai = FakeAi::start().await;
    let client = client(&ai, &[]);
    assert_eq!(client.embedding_model(), EMBEDDING_MODEL);
    let e = client.embed("Why is x^0 equal to 1?").await.unwrap();
    assert_eq!(e.vector.len(), EMBEDDING_DIMENSIONS);
    assert_eq!(
        e.vector,
        lectern_tests::fake_ai::embed("Why is x^0 equal to 1?")
    );
    assert_eq!((e.model.as_str(), e.tokens), (EMBEDDING_MODEL, 6));
    // A 503 then a 429 are retried; the scripted failures are the embeddings' too.
    ai.fail_next(503, 1, None);
    ai.fail_next(429, 1, Some(0));
    let again = client.embed("Why is x^0 equal to 1?").await.unwrap();
    assert_eq!(again, e);
    assert_eq!((client.embedding_calls(), ai.embedding_calls()), (4, 4));
    assert_eq!((client.upstream_calls(), ai.calls()), (0, 0));
    // A 400 is not retried.
    ai.fail_next(400, 1, None);
    assert!(matches!(
        client.embed("hello").await,
        Err(Error::Upstream { status: 400, .. })
    ));
    assert_eq!(client.embedding_calls(), 5);
    // A wrong key: refused at once, and not in the error although the API echoes it.
    let wrong = client_with_key(&ai, "sk-wrong-key-do-not-show");
    let err = wrong.embed("hello").await.unwrap_err();
    assert!(matches!(err, Error::Upstream { status: 401, .. }), "{err}");
    assert!(!err.to_string().contains("do-not-show"), "{err}");
    assert_eq!(wrong.embedding_calls(), 1);
    // Bad input costs no call.
    assert!(matches!(
        client.embed(" ").await,
        Err(Error::InvalidRequest(_))
    ));
    assert_eq!(ai.embedding_calls(), 6);
}

fn client_with_key(ai: &FakeAi, key: &str) -> Client {
    client(ai, &[("AI_API_KEY", key)])
}
