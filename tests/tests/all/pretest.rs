//! Pretest items through the API: pools take them with or without
//! provisional parameters and refuse bad ones naming the field; a test whose
//! design asks for k of them serves them at the positions its seed gives,
//! exactly like any question, records them flagged and scored, and counts
//! them in nothing (θ, SE, stop rule, results); staff see which they were, the
//! examinee never; a lost live state comes back from PostgreSQL with the same
//! schedule, as an uninterrupted twin runs; concurrent submits of a pretest
//! item record once; their keys never reach Redis.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use lectern::engine::{EstimatorKind, ItemBank, ItemParams, NormalPrior, PretestPlan};
use lectern::services::auth::Role;
use lectern::store::keys::Keys;
use lectern_tests::{Resp, TestEnv, openapi};
use serde_json::{Value, json};
use uuid::Uuid;

/// Long unique option texts, so that a key showing up in Redis can be searched for.
fn tokens(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("option-{i}-{}", Uuid::new_v4().simple()))
        .collect()
}

/// One item of a test pool: its body, its options and each option's score.
struct Def {
    body: Value,
    options: Vec<String>,
    scores: Vec<u8>,
}

impl Def {
    fn id(&self) -> &str {
        self.body["id"].as_str().unwrap()
    }

    fn top(&self) -> u8 {
        *self.scores.iter().max().unwrap()
    }

    fn pretest(&self) -> bool {
        self.body["pretest"] == true
    }
}

/// A right/wrong 2PL operational item.
fn operational(i: usize) -> Def {
    let options = tokens(4);
    let right = i % 4;
    let concept = ["algebra", "geometry"][i % 2];
    let mut scores = vec![0; 4];
    scores[right] = 1;
    Def {
        body: json!({ "id": format!("op-{i:02}"), "content": format!("Question {i}"),
                      "options": options, "correct_answer": options[right],
                      "concepts": [concept],
                      "a": 0.8 + (i % 5) as f64 * 0.3, "b": (i as f64 - 12.0) / 6.0 }),
        options,
        scores,
    }
}

/// The pretest items a pool may carry: a right/wrong one with provisional
/// parameters, a GRM one without (partial credit), a right/wrong one
/// without, and a GPCM one with provisional parameters.
fn pretest_defs() -> Vec<Def> {
    let opts: Vec<Vec<String>> = (0..4).map(|_| tokens(4)).collect();
    vec![
        Def {
            body: json!({ "id": "pre-0", "content": "A new question", "options": opts[0],
                          "correct_answer": opts[0][2], "concepts": ["algebra"],
                          "a": 1.1, "b": 0.2, "pretest": true }),
            options: opts[0].clone(),
            scores: vec![0, 0, 1, 0],
        },
        Def {
            body: json!({ "id": "pre-1", "content": "A worked problem", "options": opts[1],
                          "model": "grm", "option_scores": [0, 2, 1, 0], "concepts": ["geometry"],
                          "pretest": true }),
            options: opts[1].clone(),
            scores: vec![0, 2, 1, 0],
        },
        Def {
            body: json!({ "id": "pre-2", "content": "Another new question", "options": opts[2],
                          "correct_answer": opts[2][0], "concepts": ["algebra"], "pretest": true }),
            options: opts[2].clone(),
            scores: vec![1, 0, 0, 0],
        },
        Def {
            body: json!({ "id": "pre-3", "content": "Partial credit, provisionally", "options": opts[3],
                          "model": "gpcm", "option_scores": [1, 0, 2, 0], "concepts": ["geometry"],
                          "a": 0.9, "b": [-0.2, 0.7], "pretest": true }),
            options: opts[3].clone(),
            scores: vec![1, 0, 2, 0],
        },
    ]
}

/// 24 operational items with the first `pretest` pretest items placed among
/// them (so pool order and pretest order differ from creation order of kinds).
fn defs(pretest: usize) -> Vec<Def> {
    let mut defs: Vec<Def> = (0..24).map(operational).collect();
    for (k, def) in pretest_defs().into_iter().take(pretest).enumerate() {
        defs.insert(3 + 5 * k, def);
    }
    defs
}

async fn create_pool(env: &TestEnv, defs: &[Def]) -> Uuid {
    let items: Vec<&Value> = defs.iter().map(|d| &d.body).collect();
    let body = json!({ "organization_id": env.org, "name": "With pretest items", "items": items });
    assert_eq!(openapi::request_violation("POST", "/v1/pools", &body), None);
    let created = env.post("/v1/pools", body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["item_count"], defs.len());
    created.body["pool_id"].as_str().unwrap().parse().unwrap()
}

/// The pool's operational items as PostgreSQL stores them, in engine order.
async fn operational_bank(env: &TestEnv, pool: Uuid) -> (Vec<String>, ItemBank) {
    let rows = env
        .sql()
        .await
        .query(
            "SELECT id, a, b, c, d FROM questions WHERE pool_id = $1 AND NOT pretest ORDER BY position",
            &[&pool],
        )
        .await
        .unwrap();
    let ids = rows.iter().map(|r| r.get::<_, String>("id")).collect();
    let items: Vec<lectern::engine::Item> = rows
        .iter()
        .map(|r| {
            ItemParams::new(r.get("a"), r.get("b"), r.get("c"), r.get("d"))
                .unwrap()
                .into()
        })
        .collect();
    (ids, ItemBank::without_concepts(items))
}

/// θ and SE of the default estimator (EAP, N(0, 1): a student with no
/// history) on these scored answers, by the engine alone.
fn engine_estimate(bank: &ItemBank, ids: &[String], answered: &[(String, u8)]) -> (f64, f64) {
    let items: Vec<usize> = answered
        .iter()
        .map(|(q, _)| ids.iter().position(|id| id == q).unwrap())
        .collect();
    let scores: Vec<u8> = answered.iter().map(|&(_, s)| s).collect();
    let e = EstimatorKind::Eap
        .build(NormalPrior::new(0.0, 1.0))
        .estimate(bank, &items, &scores);
    (e.theta, e.se)
}

/// The pretest items of the pool version, in pretest order (pool order).
fn pretest_ids(defs: &[Def]) -> Vec<&str> {
    defs.iter().filter(|d| d.pretest()).map(Def::id).collect()
}

async fn seed_of(env: &TestEnv, test: &str) -> u64 {
    let id: Uuid = test.parse().unwrap();
    env.sql()
        .await
        .query_one("SELECT seed FROM test_sessions WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get::<_, i64>(0) as u64
}

fn keys_of(body: &Value) -> Vec<String> {
    let mut keys: Vec<String> = body
        .as_object()
        .unwrap_or_else(|| panic!("an object: {body}"))
        .keys()
        .cloned()
        .collect();
    keys.sort_unstable();
    keys
}

/// A question as an examinee sees it: exactly these fields, whatever it is.
fn assert_public(question: &Value) {
    assert_eq!(
        keys_of(question),
        ["concepts", "content", "id", "options", "position"],
        "{question}"
    );
}

/// The option this suite answers at `position`: for an operational item, its
/// key on two positions of three; for a pretest item, the option at
/// `position` mod the number of options (partial credit included).
fn pick(def: &Def, position: u64) -> usize {
    if def.pretest() {
        return position as usize % def.options.len();
    }
    let right = def.scores.iter().position(|&s| s == 1).unwrap();
    if position % 3 == 0 {
        (right + 1) % def.options.len()
    } else {
        right
    }
}

async fn answer_as(env: &TestEnv, token: &str, test: &str, id: &str, option: &str) -> Resp {
    env.call_as(
        Some(token),
        Method::POST,
        &format!("/v1/tests/{test}/responses"),
        Some(json!({ "question_id": id, "response": option })),
    )
    .await
}

fn state_key(env: &TestEnv, test: &str) -> String {
    Keys::new(env.prefix.as_str()).test_state(test.parse().unwrap())
}

async fn state_of(env: &TestEnv, test: &str) -> Option<Vec<u8>> {
    redis::cmd("GET")
        .arg(state_key(env, test))
        .query_async(&mut env.redis().await)
        .await
        .unwrap()
}

async fn drop_state(env: &TestEnv, test: &str) {
    let _: i64 = redis::cmd("DEL")
        .arg(state_key(env, test))
        .query_async(&mut env.redis().await)
        .await
        .unwrap();
}

/// Staff see pretest items flagged, with provisional parameters when they
/// have some and no exposure; PostgreSQL has them flagged with their keys; a
/// new version takes pretest items too; no key reaches Redis.
#[tokio::test]
async fn pools_take_pretest_items_with_or_without_provisional_parameters() {
    let env = TestEnv::new().await;
    let defs = defs(3);
    let pool = create_pool(&env, &defs).await;

    let shown = env.get(&format!("/v1/pools/{pool}")).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    let items = shown.body["items"].as_array().unwrap();
    let by_id = |id: &str| items.iter().find(|it| it["id"] == id).unwrap().clone();
    let provisional = by_id("pre-0");
    assert_eq!(
        keys_of(&provisional),
        [
            "a", "b", "c", "concepts", "content", "d", "id", "model", "options", "pretest"
        ]
    );
    assert_eq!(
        (
            &provisional["pretest"],
            &provisional["model"],
            &provisional["a"],
            &provisional["b"]
        ),
        (&json!(true), &json!("2pl"), &json!(1.1), &json!(0.2))
    );
    let grm = by_id("pre-1");
    assert_eq!(
        keys_of(&grm),
        ["concepts", "content", "id", "model", "options", "pretest"]
    );
    assert_eq!(grm["model"], "grm");
    let pending = by_id("pre-2");
    assert_eq!(
        keys_of(&pending),
        ["concepts", "content", "id", "options", "pretest"]
    );
    let op = by_id("op-00");
    assert!(op.get("pretest").is_none() && op["exposure"] == 1.0, "{op}");
    let text = shown.body.to_string();
    assert!(
        !text.contains("option_scores") && !text.contains("correct_answer"),
        "{text}"
    );

    let sql = env.sql().await;
    let rows = sql
        .query(
            "SELECT id, pretest, a, exposure, model, correct_answer, option_scores
             FROM questions WHERE pretest ORDER BY position",
            &[],
        )
        .await
        .unwrap();
    // (id, a, exposure, model); every one flagged.
    type Row = (String, Option<f64>, Option<f64>, Option<String>);
    let stored: Vec<Row> = rows
        .iter()
        .map(|r| (r.get(0), r.get(2), r.get(3), r.get(4)))
        .collect();
    assert!(rows.iter().all(|r| r.get::<_, bool>(1)));
    assert_eq!(
        stored,
        [
            ("pre-0".into(), Some(1.1), None, None),
            ("pre-1".into(), None, None, Some("grm".into())),
            ("pre-2".into(), None, None, None),
        ]
    );
    assert_eq!(rows[1].get::<_, Vec<i16>>(6), [0, 2, 1, 0]);
    assert_eq!(rows[2].get::<_, String>(5), defs[13].options[0]);
    assert_eq!(
        sql.query_one("SELECT count(*) FROM questions WHERE NOT pretest", &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        24
    );

    // A new version with a pretest item of provisional partial-credit parameters.
    let more = json!({ "items": [pretest_defs().pop().unwrap().body] });
    assert_eq!(
        openapi::request_violation("POST", &format!("/v1/pools/{pool}/items"), &more),
        None
    );
    let added = env.post(&format!("/v1/pools/{pool}/items"), more).await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    assert_eq!(
        (&added.body["version"], &added.body["item_count"]),
        (&json!(2), &json!(28))
    );
    let shown = env.get(&format!("/v1/pools/{pool}")).await;
    let gpcm = &shown.body["items"][27];
    assert_eq!(
        (&gpcm["id"], &gpcm["pretest"], &gpcm["b"]),
        (&json!("pre-3"), &json!(true), &json!([-0.2, 0.7]))
    );
    // A student of the organization may not read a pool's items at all.
    let (_, student) = env.user(Role::Student).await;
    let r = env
        .call_as(
            Some(&student),
            Method::GET,
            &format!("/v1/pools/{pool}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    env.assert_redis_clean().await;
}

/// Each bad pretest item (and an operational one without parameters): 422
/// naming the field, and nothing written.
#[tokio::test]
async fn bad_pretest_items_are_refused_naming_the_field() {
    let env = TestEnv::new().await;
    let good = || defs(4).into_iter().map(|d| d.body).collect::<Vec<_>>();
    let at = |id: &str| good().iter().position(|b| b["id"] == id).unwrap();
    let with = |id: &str, changes: Value| {
        let mut items = good();
        let i = items.iter().position(|b| b["id"] == id).unwrap();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                items[i].as_object_mut().unwrap().remove(k);
            } else {
                items[i][k] = v.clone();
            }
        }
        items
    };
    let (p0, p1, p2, p3, op) = (
        at("pre-0"),
        at("pre-1"),
        at("pre-2"),
        at("pre-3"),
        at("op-05"),
    );
    // (items, detail, whether the spec can say so too)
    let cases = [
        (
            with("pre-0", json!({ "exposure": 0.5 })),
            format!(
                "items[{p0}].exposure: a pretest item is never selected, so it has no exposure parameter"
            ),
            true,
        ),
        (
            with("pre-0", json!({ "b": null })),
            format!(
                "items[{p0}].a: a pretest item's provisional parameters come with b: give b too, or leave a out"
            ),
            true,
        ),
        (
            with("pre-2", json!({ "model": "2pl" })),
            format!(
                "items[{p2}].model: a right/wrong pretest item without parameters has no model yet (it is chosen when the item is calibrated): leave model out, or give provisional parameters"
            ),
            true,
        ),
        (
            with("pre-1", json!({ "option_scores": [0, 0, 0, 0] })),
            format!(
                "items[{p1}].option_scores: a polytomous item's highest score is 1 to 9 (2 to 10 categories; got 0)"
            ),
            false,
        ),
        (
            with("pre-1", json!({ "correct_answer": "whatever" })),
            format!(
                "items[{p1}].correct_answer: a grm item has no correct answer; give each option's score in option_scores"
            ),
            true,
        ),
        (
            with("pre-2", json!({ "correct_answer": null })),
            format!("items[{p2}].correct_answer is required: the option that is right"),
            true,
        ),
        (
            with("pre-0", json!({ "b": 12.0 })),
            format!("items[{p0}].b: b must be from -10 to 10 (got 12)"),
            true,
        ),
        (
            with("pre-3", json!({ "b": [0.3] })),
            format!("items[{p3}].option_scores[2]: 2 is above the item's highest score 1"),
            false,
        ),
        (
            with("op-05", json!({ "b": null })),
            format!("items[{op}].b is required (only a pretest item may leave its parameters out)"),
            true,
        ),
        (
            with("pre-2", json!({ "pretest": false })),
            format!("items[{p2}].b is required (only a pretest item may leave its parameters out)"),
            true,
        ),
    ];
    for (items, detail, spec_refuses) in cases {
        let body = json!({ "organization_id": env.org, "name": "bad", "items": items });
        assert_eq!(
            openapi::request_violation("POST", "/v1/pools", &body).is_some(),
            spec_refuses,
            "{detail}"
        );
        let r = env.post("/v1/pools", body).await;
        assert_eq!(r.problem(422), detail);
        assert_eq!(r.slug(), "validation-failed");
    }
    // `pretest` is a boolean, not null.
    let mut items = good();
    items[p0]["pretest"] = Value::Null;
    let r = env
        .post(
            "/v1/pools",
            json!({ "organization_id": env.org, "name": "bad", "items": items }),
        )
        .await;
    assert!(r.problem(422).contains("pretest"), "{}", r.body);
    assert_eq!(env.count("item_pools").await, 0);
    assert_eq!(env.count("questions").await, 0);

    // Adding a bad pretest item to a pool leaves it as it was.
    let pool = create_pool(&env, &defs(0)).await;
    let bad = with("pre-0", json!({ "exposure": 1.0 }))[p0].clone();
    let r = env
        .post(
            &format!("/v1/pools/{pool}/items"),
            json!({ "items": [bad] }),
        )
        .await;
    assert!(r.problem(422).contains("items[0].exposure"), "{}", r.body);
    let shown = env.get(&format!("/v1/pools/{pool}")).await;
    assert_eq!(
        (&shown.body["version"], &shown.body["item_count"]),
        (&json!(1), &json!(24))
    );
    assert_eq!(env.count("questions").await, 24);
}

/// One test, answered to its end: every question served, its submit body,
/// and what the test said after each.
struct Run {
    /// (question as served, submit response body), in order.
    steps: Vec<(Value, Value)>,
}

impl Run {
    fn ids(&self) -> Vec<String> {
        self.steps
            .iter()
            .map(|(q, _)| q["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// Answers `test` from `question` on until it completes, with [`pick`]'s
/// options; `between` runs after each answer (given the number answered).
async fn run(
    env: &TestEnv,
    token: &str,
    defs: &[Def],
    test: &str,
    mut question: Value,
    mut between: impl AsyncFnMut(usize),
) -> Run {
    let mut steps = Vec::new();
    while !question.is_null() {
        assert_public(&question);
        let def = defs.iter().find(|d| d.id() == question["id"]).unwrap();
        assert_eq!(question["options"], json!(def.options));
        let position = question["position"].as_u64().unwrap();
        assert_eq!(position, steps.len() as u64 + 1);
        let option = &def.options[pick(def, position)];
        let r = answer_as(env, token, test, def.id(), option).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let next = r.body["next_question"].clone();
        steps.push((question, r.body));
        between(steps.len()).await;
        question = next;
    }
    Run { steps }
}

/// max_items 5 and two pretest items: seven questions, the pretest ones where
/// the seed puts them, served, answered and shown like any other; θ and SE
/// do not move on them and are the engine's on the operational answers; the
/// stop rule, the end's results and long-term ability count five answers;
/// staff see which were pretest, the student never.
#[tokio::test]
async fn pretest_items_are_served_at_seeded_positions_and_never_scored() {
    let env = TestEnv::new().await;
    let defs = defs(2);
    let pool = create_pool(&env, &defs).await;
    let (ids, bank) = operational_bank(&env, pool).await;
    let pretest = pretest_ids(&defs);
    let (student, student_token) = env.user(Role::Student).await;
    let started = env
        .post(
            "/v1/tests",
            json!({ "pool_id": pool, "student_id": student,
                    "config": { "max_items": 5, "min_items": 5, "se_target": null, "pretest_items": 2 } }),
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    assert_eq!(started.body["config"]["pretest_items"], 2);
    let test = started.body["test_id"].as_str().unwrap().to_owned();
    let plan = PretestPlan::new(seed_of(&env, &test).await, 2, 5, 2);
    assert_eq!(plan.len(), 2);

    let run = run(
        &env,
        &student_token,
        &defs,
        &test,
        started.body["question"].clone(),
        async |_| {},
    )
    .await;
    assert_eq!(
        run.steps.len(),
        7,
        "5 operational + 2 pretest: {:?}",
        run.ids()
    );
    let mut scored: Vec<(String, u8)> = Vec::new();
    let mut before = started.body["proficiency"].clone();
    let (mut corrects, mut operational_keys) = (0, None);
    for (question, body) in &run.steps {
        let position = question["position"].as_u64().unwrap() as u32;
        let id = question["id"].as_str().unwrap();
        let def = defs.iter().find(|d| d.id() == id).unwrap();
        let score = def.scores[pick(def, u64::from(position))];
        assert_eq!(body["score"], score, "{body}");
        assert_eq!(body["correct"], score == def.top(), "{body}");
        assert_eq!(body["items_answered"], position, "{body}");
        // Every submit body has the same fields (the last adds its stop reason).
        let mut keys = keys_of(body);
        keys.retain(|k| k != "stop_reason");
        assert_eq!(*operational_keys.get_or_insert_with(|| keys.clone()), keys);
        match plan.item_at(position) {
            Some(j) => {
                assert_eq!(id, pretest[j], "position {position}");
                assert_eq!(body["proficiency"], before, "θ moved on a pretest item");
                assert!(body.get("stop_reason").is_none());
            }
            None => {
                assert!(!def.pretest(), "{id} at {position}");
                scored.push((id.to_owned(), score));
                corrects += usize::from(score == 1);
                let (theta, se) = engine_estimate(&bank, &ids, &scored);
                assert!((body["proficiency"]["theta"].as_f64().unwrap() - theta).abs() < 1e-12);
                assert!((body["proficiency"]["se"].as_f64().unwrap() - se).abs() < 1e-12);
            }
        }
        before = body["proficiency"].clone();
    }
    let last = &run.steps[6].1;
    assert_eq!(
        (&last["status"], &last["stop_reason"]),
        (&json!("completed"), &json!("max_items"))
    );
    assert_eq!(scored.len(), 5);

    // PostgreSQL: flagged where the plan says, θ unchanged across each, counted apart.
    let sql = env.sql().await;
    let test_id: Uuid = test.parse().unwrap();
    let rows = sql
        .query(
            "SELECT seq, question_id, pretest, score, theta_before, theta_after, se_before, se_after
             FROM test_responses WHERE session_id = $1 ORDER BY seq",
            &[&test_id],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 7);
    for r in &rows {
        let seq: i32 = r.get(0);
        let flagged: bool = r.get(2);
        assert_eq!(flagged, plan.item_at(seq as u32).is_some(), "seq {seq}");
        if flagged {
            let (tb, ta, sb, sa): (f64, f64, f64, f64) = (r.get(4), r.get(5), r.get(6), r.get(7));
            assert_eq!((tb, sb), (ta, sa));
        }
    }
    let t = sql
        .query_one(
            "SELECT items_answered, pretest_answered, correct_count FROM test_sessions WHERE id = $1",
            &[&test_id],
        )
        .await
        .unwrap();
    assert_eq!(
        (t.get::<_, i32>(0), t.get::<_, i32>(1), t.get::<_, i32>(2)),
        (7, 2, corrects as i32)
    );

    // Staff see which responses were pretest; the student does not.
    let staff = env.get(&format!("/v1/tests/{test}")).await;
    assert_eq!(staff.status, StatusCode::OK, "{}", staff.body);
    assert_eq!(staff.body["items_answered"], 7);
    assert_eq!(staff.body["correct_responses"], corrects);
    let flags: Vec<bool> = staff.body["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.get("pretest") == Some(&json!(true)))
        .collect();
    let planned: Vec<bool> = (1..=7).map(|p| plan.item_at(p).is_some()).collect();
    assert_eq!(flags, planned);
    let own = env
        .call_as(
            Some(&student_token),
            Method::GET,
            &format!("/v1/tests/{test}"),
            None,
        )
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
    let responses = own.body["responses"].as_array().unwrap();
    assert_eq!(responses.len(), 7);
    // Every response has the same fields, none saying which was pretest.
    for r in responses {
        assert_eq!(
            keys_of(r),
            [
                "answered_at",
                "correct",
                "question_id",
                "response",
                "score",
                "se",
                "seq",
                "served_at",
                "theta"
            ],
            "{r}"
        );
    }
    env.assert_redis_clean().await;

    // The results are the five scored answers'.
    let ended = env
        .call_as(
            Some(&student_token),
            Method::POST,
            &format!("/v1/tests/{test}/end"),
            Some(json!({})),
        )
        .await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
    let (theta, se) = engine_estimate(&bank, &ids, &scored);
    assert_eq!(ended.body["total_questions"], 5);
    assert_eq!(ended.body["correct_responses"], corrects);
    assert_eq!(ended.body["accuracy"], corrects as f64 / 5.0);
    assert!((ended.body["proficiency"]["theta"].as_f64().unwrap() - theta).abs() < 1e-12);
    assert!((ended.body["proficiency"]["se"].as_f64().unwrap() - se).abs() < 1e-12);
    let concepts_n: u64 = ended.body["proficiency"]["concepts"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["n"].as_u64().unwrap())
        .sum();
    assert_eq!(concepts_n, 5, "{}", ended.body);
    let n: i32 = sql
        .query_one(
            "SELECT n FROM student_proficiencies WHERE student_id = $1 AND concept = ''",
            &[&student],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 5);
}

/// A test whose live state is lost twice (after a pretest answer, and just
/// before a pretest position) serves the same questions and reports the
/// same θ and SE after every answer as its twin (same seed, same prior,
/// same answers) whose state was never touched; each rebuilt state is the
/// one that was lost, byte for byte.
#[tokio::test]
async fn a_lost_live_state_is_rebuilt_with_its_pretest_schedule() {
    let env = TestEnv::new().await;
    let defs = defs(4);
    let pool = create_pool(&env, &defs).await;
    let pretest = pretest_ids(&defs);
    // Randomesque selection: the seed picks the operational items too.
    let config = json!({ "max_items": 6, "min_items": 6, "se_target": null,
                         "randomesque": 3, "pretest_items": 3 });
    let start = async |student: Uuid| {
        let r = env
            .post(
                "/v1/tests",
                json!({ "pool_id": pool, "student_id": student, "config": config }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body
    };
    let (lost_student, lost_token) = env.user(Role::Student).await;
    let (twin_student, twin_token) = env.user(Role::Student).await;
    let lost = start(lost_student).await;
    let twin = start(twin_student).await;
    let (lost_test, twin_test) = (
        lost["test_id"].as_str().unwrap().to_owned(),
        twin["test_id"].as_str().unwrap().to_owned(),
    );
    // The twin takes the other's seed and first question (which the seed chose).
    let sql = env.sql().await;
    let (lost_id, twin_id): (Uuid, Uuid) = (lost_test.parse().unwrap(), twin_test.parse().unwrap());
    sql.execute(
        "UPDATE test_sessions t SET seed = o.seed, current_question = o.current_question
         FROM test_sessions o WHERE t.id = $1 AND o.id = $2",
        &[&twin_id, &lost_id],
    )
    .await
    .unwrap();
    drop_state(&env, &twin_test).await;
    let seed = seed_of(&env, &lost_test).await;
    let plan = PretestPlan::new(seed, 3, 6, 4);
    let pretest_positions: Vec<u32> = plan.slots().map(|(p, _)| p).collect();
    let first_pretest = pretest_positions[0] as usize;

    let twin_run = run(
        &env,
        &twin_token,
        &defs,
        &twin_test,
        lost["question"].clone(),
        async |_| {},
    )
    .await;
    let mut rebuilds = 0;
    let lost_run = run(
        &env,
        &lost_token,
        &defs,
        &lost_test,
        lost["question"].clone(),
        async |answered| {
            // After the first pretest answer, and just before the last pretest position.
            let before_last = *pretest_positions.last().unwrap() as usize - 1;
            if answered != first_pretest && answered != before_last {
                return;
            }
            let kept = state_of(&env, &lost_test).await.expect("a live state");
            drop_state(&env, &lost_test).await;
            let next = env
                .call_as(
                    Some(&lost_token),
                    Method::GET,
                    &format!("/v1/tests/{lost_test}/next"),
                    None,
                )
                .await;
            assert_eq!(next.status, StatusCode::OK, "{}", next.body);
            assert_public(&next.body);
            assert_eq!(state_of(&env, &lost_test).await, Some(kept));
            let sides = env.get(&format!("/v1/admin/tests/{lost_test}")).await;
            assert_eq!(sides.status, StatusCode::OK, "{}", sides.body);
            assert_eq!(sides.body["divergent"], false, "{}", sides.body);
            assert_eq!(
                sides.body["redis"]["answered"].as_array().unwrap().len(),
                answered
            );
            rebuilds += 1;
        },
    )
    .await;
    assert_eq!(rebuilds, 2);
    assert_eq!(lost_run.ids(), twin_run.ids());
    assert_eq!(lost_run.steps.len(), 9, "6 operational + 3 pretest");
    for ((q, body), (twin_q, twin_body)) in lost_run.steps.iter().zip(&twin_run.steps) {
        assert_eq!(q, twin_q);
        assert_eq!(body, twin_body);
    }
    for (p, j) in plan.slots() {
        assert_eq!(lost_run.ids()[p as usize - 1], pretest[j]);
    }
    // The admin view of a finished pair agrees with PostgreSQL too.
    let sides = env.get(&format!("/v1/admin/tests/{lost_test}")).await;
    assert_eq!(sides.body["divergent"], false, "{}", sides.body);
    assert_eq!(sides.body["redis"]["answered"], json!(lost_run.ids()));
    env.assert_redis_clean().await;
}

/// Ten submits of the same pretest answer at once: one recorded, the others
/// 409 while it is, or its result after.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_submits_of_a_pretest_item_record_once() {
    let env = TestEnv::new().await;
    let defs = defs(2);
    let pool = create_pool(&env, &defs).await;
    let started = env
        .post(
            "/v1/tests",
            json!({ "pool_id": pool,
                    "config": { "max_items": 6, "se_target": null, "pretest_items": 1 } }),
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let test = started.body["test_id"].as_str().unwrap().to_owned();
    let token = env.admin_token();
    let mut question = started.body["question"].clone();
    // Up to the pretest item.
    loop {
        let def = defs.iter().find(|d| d.id() == question["id"]).unwrap();
        if def.pretest() {
            break;
        }
        let position = question["position"].as_u64().unwrap();
        let r = answer_as(
            &env,
            &token,
            &test,
            def.id(),
            &def.options[pick(def, position)],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        question = r.body["next_question"].clone();
    }
    let def = defs.iter().find(|d| d.id() == question["id"]).unwrap();
    let body = json!({ "question_id": def.id(), "response": def.options[1] });
    let path = format!("/v1/tests/{test}/responses");
    let env = Arc::new(env);
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (env, path, body) = (env.clone(), path.clone(), body.clone());
            tokio::spawn(async move { env.post(&path, body).await })
        })
        .collect();
    let (mut ok, mut conflicts) = (Vec::new(), 0);
    for t in tasks {
        let r = t.await.unwrap();
        match r.status.as_u16() {
            200 => ok.push(r.body),
            409 => {
                conflicts += 1;
                assert_eq!(r.slug(), "submit-in-progress", "{}", r.body);
            }
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    // One recorded; the rest turned away while it was, or given its result after.
    assert_eq!(ok.len() + conflicts, 10);
    assert!(!ok.is_empty());
    assert!(ok.iter().all(|b| *b == ok[0]), "{ok:?}");
    let test_id: Uuid = test.parse().unwrap();
    let sql = env.sql().await;
    let rows = sql
        .query(
            "SELECT score FROM test_responses WHERE session_id = $1 AND question_id = $2 AND pretest",
            &[&test_id, &def.id()],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i16>(0), i16::from(def.scores[1]));
    let pretest_answered: i32 = sql
        .query_one(
            "SELECT pretest_answered FROM test_sessions WHERE id = $1",
            &[&test_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(pretest_answered, 1);
    // Answered again later: the same result (a retry), nothing recorded; a
    // different response: already answered.
    let r = env.post(&path, body.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, ok[0]);
    let mut other = body;
    other["response"] = json!(def.options[0]);
    let r = env.post(&path, other).await;
    assert_eq!((r.status.as_u16(), r.slug()), (409, "already-answered"));
    assert_eq!(
        env.count("test_responses").await,
        question["position"].as_i64().unwrap()
    );
}

/// A design is checked against its pool's pretest items when written; an
/// exam reveals nothing of a pretest answer (nor of any other) and the
/// student's report does not mark them, while staff's does.
#[tokio::test]
async fn designs_ask_for_pretest_items_the_pool_has_and_exams_reveal_nothing() {
    let env = TestEnv::new().await;
    let defs = defs(2);
    let pool = create_pool(&env, &defs).await;
    let (_, teacher) = env.user(Role::Teacher).await;
    let (student, student_token) = env.user(Role::Student).await;
    let design = |config: Value| {
        json!({ "organization_id": env.org, "name": "With pretest", "pool_id": pool,
                "mode": "exam", "config": config })
    };
    let as_teacher = async |method: Method, path: &str, body: Option<Value>| {
        env.call_as(Some(&teacher), method, path, body).await
    };
    for (config, detail) in [
        (
            json!({ "max_items": 5, "pretest_items": 3 }),
            format!("config.pretest_items: version 1 of pool {pool} has 2 pretest items (asked for 3)"),
        ),
        (
            json!({ "pretest_items": 11 }),
            "config.pretest_items must be from 0 to 10 (got 11)".to_owned(),
        ),
        (
            json!({ "max_items": 1, "min_items": 1, "pretest_items": 1 }),
            "config.pretest_items needs config.max_items of at least 2: a pretest item never comes first, nor after the last operational item (max_items is 1)".to_owned(),
        ),
    ] {
        let r = as_teacher(Method::POST, "/v1/assessments", Some(design(config))).await;
        assert_eq!(r.problem(422), detail);
    }
    let enemies = json!({ "organization_id": env.org, "name": "Enemies", "pool_id": pool,
                          "enemies": [["op-01", "pre-1"]] });
    let r = as_teacher(Method::POST, "/v1/assessments", Some(enemies)).await;
    assert_eq!(
        r.problem(422),
        "enemies[0]: question \"pre-1\" is a pretest item (enemy sets are of operational items)"
    );
    assert_eq!(env.count("assessments").await, 0);
    // Staff starting a test with a design of their own are held to the same.
    let r = env
        .post(
            "/v1/tests",
            json!({ "pool_id": pool, "student_id": student, "config": { "pretest_items": 3 } }),
        )
        .await;
    assert!(
        r.problem(422)
            .starts_with("config.pretest_items: version 1"),
        "{}",
        r.body
    );
    assert_eq!(env.count("test_sessions").await, 0);

    let config = json!({ "max_items": 4, "min_items": 4, "se_target": null, "pretest_items": 2 });
    let r = as_teacher(Method::POST, "/v1/assessments", Some(design(config))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["config"]["pretest_items"], 2);
    let closes = time::OffsetDateTime::now_utc() + time::Duration::days(1);
    let assignment = json!({ "assessment_id": r.body["id"], "class_id": env.class,
        "closes_at": closes.format(&time::format_description::well_known::Rfc3339).unwrap() });
    let r = as_teacher(Method::POST, "/v1/assignments", Some(assignment)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let started = env
        .call_as(
            Some(&student_token),
            Method::POST,
            "/v1/tests",
            Some(json!({ "assignment_id": r.body["id"] })),
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let test = started.body["test_id"].as_str().unwrap().to_owned();
    let run = run(
        &env,
        &student_token,
        &defs,
        &test,
        started.body["question"].clone(),
        async |_| {},
    )
    .await;
    assert_eq!(run.steps.len(), 6);
    let served_pretest = run.ids().iter().filter(|id| id.starts_with("pre-")).count();
    assert_eq!(served_pretest, 2);
    for (_, body) in &run.steps {
        let mut keys = keys_of(body);
        keys.retain(|k| k != "next_question");
        assert_eq!(keys, ["items_answered", "status"], "{body}");
    }
    let own = env
        .call_as(
            Some(&student_token),
            Method::GET,
            &format!("/v1/tests/{test}"),
            None,
        )
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
    for r in own.body["responses"].as_array().unwrap() {
        assert_eq!(
            keys_of(r),
            ["answered_at", "question_id", "response", "seq", "served_at"],
            "{r}"
        );
    }
    let staff = as_teacher(Method::GET, &format!("/v1/tests/{test}"), None).await;
    let flagged: Vec<String> = staff.body["responses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r.get("pretest") == Some(&json!(true)))
        .map(|r| r["question_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(flagged.len(), 2);
    assert!(
        flagged.iter().all(|id| id.starts_with("pre-")),
        "{flagged:?}"
    );
    env.assert_redis_clean().await;
}
