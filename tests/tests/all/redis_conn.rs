//! The Redis connection lectern uses, on whatever the test Redis is: one server
//! or, with `LECTERN_TEST_REDIS_CLUSTER=true`, a Redis Cluster. Keys spread
//! over many hash slots must still behave as on one server.

use lectern_tests::{TestEnv, keys_under, redis_cluster};

/// Keys whose hash tags put them in (almost surely) different slots.
fn spread(env: &TestEnv, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{}spread:{{{i}}}", env.prefix))
        .collect()
}

#[tokio::test]
async fn a_pipeline_over_many_slots_answers_in_order() {
    let env = TestEnv::new().await;
    let keys = spread(&env, 12);
    let mut conn = env.redis().await;
    let mut pipe = redis::pipe();
    for (i, key) in keys.iter().enumerate() {
        pipe.cmd("SET")
            .arg(key)
            .arg(i)
            .arg("PX")
            .arg(60_000)
            .ignore();
        pipe.cmd("INCR").arg(key);
    }
    pipe.cmd("PING");
    let (incremented, pong): (Vec<i64>, String) = {
        let mut replies: Vec<redis::Value> = pipe.query_async(&mut conn).await.unwrap();
        let pong = redis::from_redis_value(replies.pop().unwrap()).unwrap();
        (
            redis::from_redis_value(redis::Value::Array(replies)).unwrap(),
            pong,
        )
    };
    assert_eq!(incremented, (1..=12).collect::<Vec<i64>>());
    assert_eq!(pong, "PONG");
}

#[tokio::test]
async fn a_scan_finds_keys_on_every_node() {
    let env = TestEnv::new().await;
    let keys = spread(&env, 30);
    let mut conn = env.redis().await;
    let mut pipe = redis::pipe();
    for key in &keys {
        pipe.cmd("SET")
            .arg(key)
            .arg(1)
            .arg("PX")
            .arg(60_000)
            .ignore();
    }
    let () = pipe.query_async(&mut conn).await.unwrap();
    let mut found = keys_under(&mut conn, &format!("{}spread:", env.prefix))
        .await
        .unwrap();
    found.sort();
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(found, expected);
    // The stats endpoint scans the same way.
    let stats = lectern::store::redis_stats::stats(env.app.redis(), 10_000)
        .await
        .unwrap();
    assert!(stats.keys.complete);
    assert!(stats.keys.other >= 30, "{:?}", stats.keys);
    assert!(stats.used_memory_bytes > 0);
}

#[tokio::test]
async fn a_transaction_must_keep_to_one_slot_on_a_cluster() {
    let env = TestEnv::new().await;
    let keys = spread(&env, 4);
    let mut conn = env.redis().await;
    let outcome: redis::RedisResult<()> = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg(&keys[0])
        .arg(1)
        .ignore()
        .cmd("SET")
        .arg(&keys[3])
        .arg(1)
        .ignore()
        .query_async(&mut conn)
        .await;
    let primaries = conn.primaries().await.unwrap();
    if redis_cluster() {
        assert!(outcome.is_err(), "MULTI across slots is refused");
        assert_eq!(primaries.len(), 3, "{primaries:?}");
    } else {
        outcome.unwrap();
        assert!(primaries.is_empty());
    }
}
