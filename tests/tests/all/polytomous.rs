//! Polytomous items (GRM, GPCM, PCM) through the API: pools take them beside
//! right/wrong items and refuse bad ones naming the field; a practice test
//! scores each option (partial credit), stores the score, and estimates θ
//! from the scores exactly as the engine does; an exam hides the scores; the
//! option scores never reach Redis; a lost live state is rebuilt from
//! PostgreSQL's scores.

use axum::http::{Method, StatusCode};
use lectern::engine::{EstimatorKind, Item, ItemBank, ItemParams, NormalPrior};
use lectern::services::auth::Role;
use lectern::store::keys::Keys;
use lectern_tests::{Resp, TestEnv, openapi};
use serde_json::{Value, json};
use uuid::Uuid;

/// One item of the test pool: its body, options, each option's score, and
/// the option this test answers with.
struct Def {
    body: Value,
    options: Vec<String>,
    scores: Vec<u8>,
    pick: usize,
}

impl Def {
    fn id(&self) -> &str {
        self.body["id"].as_str().unwrap()
    }

    fn top(&self) -> u8 {
        *self.scores.iter().max().unwrap()
    }
}

/// Long unique option texts, so that a key showing up in Redis can be searched for.
fn tokens(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("option-{i}-{}", Uuid::new_v4().simple()))
        .collect()
}

/// Twelve items: three each of GRM Likert (options are the categories),
/// GPCM multiple choice with partial credit, PCM with partial credit, and 2PL.
fn defs() -> Vec<Def> {
    let likert = [
        "Strongly disagree",
        "Disagree",
        "Neutral",
        "Agree",
        "Strongly agree",
    ]
    .map(String::from)
    .to_vec();
    let mut defs = Vec::new();
    for (i, (a, b, pick)) in [
        (1.4, [-1.6, -0.6, 0.3, 1.2], 3),
        (1.1, [-1.0, -0.2, 0.6, 1.5], 2),
        (0.9, [-2.0, -0.9, 0.1, 0.9], 4),
    ]
    .into_iter()
    .enumerate()
    {
        defs.push(Def {
            body: json!({ "id": format!("grm-{i}"), "content": format!("Statement {i}"),
                          "options": likert, "model": "grm", "concepts": ["attitude"],
                          "a": a, "b": b }),
            options: likert.clone(),
            scores: vec![0, 1, 2, 3, 4],
            pick,
        });
    }
    for (i, (a, b, scores, pick)) in [
        (0.9, [-0.3, 0.6], [2, 0, 1, 1, 0], 2),
        (1.3, [0.4, -0.5], [0, 1, 2, 0, 1], 4),
        (0.7, [0.0, 0.8], [1, 0, 0, 2, 1], 3),
    ]
    .into_iter()
    .enumerate()
    {
        let options = tokens(5);
        defs.push(Def {
            body: json!({ "id": format!("gpcm-{i}"), "content": format!("Multiple choice {i}"),
                          "options": options, "model": "gpcm", "option_scores": scores,
                          "concepts": ["fractions"], "a": a, "b": b }),
            options,
            scores: scores.to_vec(),
            pick,
        });
    }
    for (i, (b, scores, pick)) in [
        ([0.2, -0.4, 0.8], [3, 1, 0, 2, 0], 1),
        ([-0.6, 0.1, 0.5], [0, 2, 3, 1, 1], 3),
        ([0.9, 0.3, -0.2], [1, 3, 0, 0, 2], 4),
    ]
    .into_iter()
    .enumerate()
    {
        let options = tokens(5);
        defs.push(Def {
            body: json!({ "id": format!("pcm-{i}"), "content": format!("Worked problem {i}"),
                          "options": options, "model": "pcm", "option_scores": scores,
                          "concepts": ["algebra"], "b": b }),
            options,
            scores: scores.to_vec(),
            pick,
        });
    }
    for (i, (a, b, pick)) in [(1.2, 0.3, 1), (0.8, -0.7, 0), (1.6, 0.1, 2)]
        .into_iter()
        .enumerate()
    {
        let options = tokens(4);
        defs.push(Def {
            body: json!({ "id": format!("twopl-{i}"), "content": format!("Right or wrong {i}"),
                          "options": options, "model": "2pl", "correct_answer": options[1],
                          "concepts": ["algebra"], "a": a, "b": b }),
            options,
            scores: vec![0, 1, 0, 0],
            pick,
        });
    }
    defs
}

fn pool_body(env: &TestEnv, defs: &[Def]) -> Value {
    let items: Vec<&Value> = defs.iter().map(|d| &d.body).collect();
    json!({ "organization_id": env.org, "name": "Mixed models", "items": items })
}

async fn create_pool(env: &TestEnv, defs: &[Def]) -> Uuid {
    let body = pool_body(env, defs);
    assert_eq!(openapi::request_violation("POST", "/v1/pools", &body), None);
    let created = env.post("/v1/pools", body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["item_count"], defs.len());
    created.body["pool_id"].as_str().unwrap().parse().unwrap()
}

/// The pool's items as PostgreSQL stores them, in engine order: (ids, bank).
async fn stored_bank(env: &TestEnv, pool: Uuid) -> (Vec<String>, ItemBank) {
    let rows = env
        .sql()
        .await
        .query(
            "SELECT id, model, a, b, c, d, thresholds FROM questions WHERE pool_id = $1 ORDER BY position",
            &[&pool],
        )
        .await
        .unwrap();
    let mut ids = Vec::new();
    let mut items = Vec::new();
    for r in &rows {
        ids.push(r.get::<_, String>("id"));
        let a: f64 = r.get("a");
        let thresholds = || r.get::<_, Vec<f64>>("thresholds");
        items.push(match r.get::<_, Option<&str>>("model") {
            None => ItemParams::new(a, r.get("b"), r.get("c"), r.get("d"))
                .unwrap()
                .into(),
            Some("grm") => Item::grm(a, thresholds()).unwrap(),
            Some("gpcm") => Item::gpcm(a, thresholds()).unwrap(),
            Some("pcm") => Item::pcm(thresholds()).unwrap(),
            Some(other) => panic!("model {other}"),
        });
    }
    (ids, ItemBank::without_concepts(items))
}

/// θ of the default estimator (EAP, N(0, 1) prior: a student with no history)
/// on these answers, computed by the engine alone.
fn engine_theta(bank: &ItemBank, ids: &[String], answered: &[(String, u8)]) -> f64 {
    let items: Vec<usize> = answered
        .iter()
        .map(|(q, _)| ids.iter().position(|id| id == q).unwrap())
        .collect();
    let scores: Vec<u8> = answered.iter().map(|&(_, s)| s).collect();
    EstimatorKind::Eap
        .build(NormalPrior::new(0.0, 1.0))
        .estimate(bank, &items, &scores)
        .theta
}

/// A question as an examinee sees it: exactly these fields, no score, model or parameter.
fn assert_public(question: &Value) {
    let mut fields: Vec<&str> = question
        .as_object()
        .unwrap_or_else(|| panic!("a question: {question}"))
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        ["concepts", "content", "id", "options", "position"],
        "{question}"
    );
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

async fn state_of(env: &TestEnv, test: &str) -> Option<Vec<u8>> {
    let key = Keys::new(env.prefix.as_str()).test_state(test.parse().unwrap());
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut env.redis().await)
        .await
        .unwrap()
}

/// Staff see each item's model and parameters (a list of thresholds for a
/// polytomous one) and never a key; a new version takes polytomous items too.
#[tokio::test]
async fn polytomous_pool_is_stored_and_shown_without_keys() {
    let env = TestEnv::new().await;
    let defs = defs();
    let pool = create_pool(&env, &defs).await;

    let shown = env.get(&format!("/v1/pools/{pool}")).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    let items = shown.body["items"].as_array().unwrap();
    let by_id = |id: &str| items.iter().find(|it| it["id"] == id).unwrap();
    let grm = by_id("grm-0");
    assert_eq!(
        (&grm["model"], &grm["a"], &grm["b"]),
        (&json!("grm"), &json!(1.4), &json!([-1.6, -0.6, 0.3, 1.2]))
    );
    assert!(grm.get("c").is_none() && grm.get("d").is_none(), "{grm}");
    assert_eq!(by_id("gpcm-1")["b"], json!([0.4, -0.5]));
    assert_eq!(
        (&by_id("pcm-0")["model"], &by_id("pcm-0")["a"]),
        (&json!("pcm"), &json!(1.0))
    );
    let twopl = by_id("twopl-0");
    assert_eq!(
        (&twopl["model"], &twopl["b"], &twopl["c"], &twopl["d"]),
        (&json!("2pl"), &json!(0.3), &json!(0.0), &json!(1.0))
    );
    let text = shown.body.to_string();
    assert!(
        !text.contains("option_scores") && !text.contains("correct_answer"),
        "{text}"
    );

    // The key rows: scores beside the (absent) correct answer, and the reverse.
    let sql = env.sql().await;
    let row = sql
        .query_one(
            "SELECT model, b, thresholds, correct_answer, option_scores FROM questions WHERE id = 'gpcm-0'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<&str>>(0), Some("gpcm"));
    assert_eq!(row.get::<_, Option<f64>>(1), None);
    assert_eq!(row.get::<_, Vec<f64>>(2), [-0.3, 0.6]);
    assert_eq!(row.get::<_, Option<String>>(3), None);
    assert_eq!(row.get::<_, Vec<i16>>(4), [2, 0, 1, 1, 0]);
    let likert: Vec<i16> = sql
        .query_one(
            "SELECT option_scores FROM questions WHERE id = 'grm-2'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        likert,
        [0, 1, 2, 3, 4],
        "options are the categories, in order"
    );

    let more = json!({ "items": [{ "id": "pcm-new", "content": "One more", "options": ["no", "half", "yes"],
                                   "model": "pcm", "concepts": ["algebra"], "b": [0.0, 0.5] }] });
    let added = env.post(&format!("/v1/pools/{pool}/items"), more).await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    assert_eq!(
        (&added.body["version"], &added.body["item_count"]),
        (&json!(2), &json!(13))
    );
    let shown = env.get(&format!("/v1/pools/{pool}")).await;
    assert_eq!(shown.body["items"][12]["b"], json!([0.0, 0.5]));
    env.assert_redis_clean().await;
}

/// Each bad polytomous item: 422 naming the field, and no pool row.
#[tokio::test]
async fn bad_polytomous_items_are_refused_naming_the_field() {
    let env = TestEnv::new().await;
    let good = || defs().into_iter().map(|d| d.body).collect::<Vec<_>>();
    let with = |at: usize, changes: Value| {
        let mut items = good();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                items[at].as_object_mut().unwrap().remove(k);
            } else {
                items[at][k] = v.clone();
            }
        }
        items
    };
    let ten: Vec<f64> = (0..10).map(|k| f64::from(k) / 2.0 - 2.0).collect();
    // (items, detail, whether the spec can say so too)
    let cases = [
        (
            with(1, json!({ "b": [0.5, 0.5, 1.0, 2.0] })),
            "items[1].b: graded-response thresholds must be strictly increasing (b2 is not above b1)",
            false,
        ),
        (
            with(0, json!({ "b": ten })),
            "items[0].b: a polytomous item has 2 to 10 categories, i.e. 1 to 9 thresholds (got 11 categories)",
            true,
        ),
        (
            with(
                2,
                json!({ "b": [-1.0, 0.0, 0.5, 1.0], "option_scores": [0, 1, 5, 2, 3] }),
            ),
            "items[2].option_scores[2]: 5 is above the item's highest score 4",
            false,
        ),
        (
            with(1, json!({ "model": "rasch2" })),
            "items[1].model: unknown model \"rasch2\" (one of 1pl, 2pl, 3pl, 4pl, grm, gpcm, pcm)",
            true,
        ),
        (
            with(4, json!({ "correct_answer": "whatever" })),
            "items[4].correct_answer: a gpcm item has no correct answer; give each option's score in option_scores",
            true,
        ),
        (
            with(3, json!({ "option_scores": [2, 0, 1] })),
            "items[3].option_scores must give one score per option (5 options, got 3 scores)",
            false,
        ),
        (
            with(6, json!({ "option_scores": null })),
            "items[6].option_scores is required: the item has 5 options and scores 0…3 (leave it out only when the options are the categories, in order)",
            false,
        ),
        (
            with(7, json!({ "a": 1.5 })),
            "items[7].a: a pcm item's a is 1 (got 1.5); a gpcm item has a discrimination of its own",
            true,
        ),
        (
            with(9, json!({ "option_scores": [0, 1, 0, 0] })),
            "items[9].option_scores: only polytomous items (model grm, gpcm or pcm) have option scores; a right/wrong item has a correct_answer",
            true,
        ),
        (
            with(10, json!({ "model": "1pl" })),
            "items[10].model: a 1pl item has a = 1, c = 0 and d = 1 (got a = 0.8, c = 0, d = 1)",
            true,
        ),
        (
            with(0, json!({ "c": 0.2 })),
            "items[0].c: a grm item has no c (only right/wrong items do)",
            true,
        ),
        (
            with(5, json!({ "b": 0.4 })),
            "items[5].b: a gpcm item's b is the list of its thresholds b1…bm",
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
    // A negative score is refused while reading the body, at its place.
    let r = env
        .post(
            "/v1/pools",
            json!({ "organization_id": env.org, "name": "bad",
                    "items": with(3, json!({ "option_scores": [2, -1, 1, 1, 0] })) }),
        )
        .await;
    assert!(
        r.problem(422).contains("items[3].option_scores[1]"),
        "{}",
        r.body
    );
    assert_eq!(env.count("item_pools").await, 0);
    assert_eq!(env.count("questions").await, 0);
}

/// A practice test on the mixed pool answered with partial-credit options:
/// each submit reports its score, PostgreSQL stores it, θ is the engine's on
/// the scores; a lost state comes back from PostgreSQL the same; Redis holds
/// no option score; staff see the scores.
#[tokio::test]
async fn a_practice_test_scores_partial_credit_and_rebuilds_from_postgres() {
    let env = TestEnv::new().await;
    let defs = defs();
    let pool = create_pool(&env, &defs).await;
    let (ids, bank) = stored_bank(&env, pool).await;
    let student = env.student().await;
    let token = env.admin_token();
    let started = env
        .post(
            "/v1/tests",
            json!({ "pool_id": pool, "student_id": student,
                    "config": { "max_items": 8, "min_items": 8, "se_target": null } }),
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let test = started.body["test_id"].as_str().unwrap().to_owned();
    let mut question = started.body["question"].clone();
    let mut answered: Vec<(String, u8)> = Vec::new();
    let mut tops = 0;
    let mut last = Value::Null;
    while !question.is_null() {
        assert_public(&question);
        let def = defs.iter().find(|d| d.id() == question["id"]).unwrap();
        assert_eq!(question["options"], json!(def.options));
        let score = def.scores[def.pick];
        let r = answer_as(&env, &token, &test, def.id(), &def.options[def.pick]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["score"], score, "{}", r.body);
        assert_eq!(r.body["correct"], score == def.top(), "{}", r.body);
        answered.push((def.id().to_owned(), score));
        tops += usize::from(score == def.top());
        let theta = r.body["proficiency"]["theta"].as_f64().unwrap();
        let expected = engine_theta(&bank, &ids, &answered);
        assert!((theta - expected).abs() < 1e-12, "θ {theta} ≠ {expected}");
        question = r.body["next_question"].clone();

        if answered.len() == 4 {
            // The state lost: rebuilt from PostgreSQL's scores, byte for byte.
            let before = state_of(&env, &test).await.expect("a live state");
            env.assert_redis_clean().await;
            let key = Keys::new(env.prefix.as_str()).test_state(test.parse().unwrap());
            let _: i64 = redis::cmd("DEL")
                .arg(key)
                .query_async(&mut env.redis().await)
                .await
                .unwrap();
            let next = env.get(&format!("/v1/tests/{test}/next")).await;
            assert_eq!(next.status, StatusCode::OK, "{}", next.body);
            assert_eq!(next.body, question);
            assert_public(&next.body);
            assert_eq!(state_of(&env, &test).await, Some(before));
            let sides = env.get(&format!("/v1/admin/tests/{test}")).await;
            assert_eq!(sides.status, StatusCode::OK, "{}", sides.body);
            assert_eq!(sides.body["divergent"], false, "{}", sides.body);
            let scores: Vec<u8> = answered.iter().map(|&(_, s)| s).collect();
            assert_eq!(sides.body["redis"]["scores"], json!(scores));
            assert_eq!(sides.body["postgres"]["scores"], json!(scores));
            assert_eq!(sides.body["redis"]["theta"], theta);
        }
        last = r.body;
    }
    assert_eq!(answered.len(), 8);
    assert_eq!(last["status"], "completed");
    let partial = answered
        .iter()
        .filter(|(q, s)| {
            let def = defs.iter().find(|d| d.id() == q).unwrap();
            *s > 0 && *s < def.top()
        })
        .count();
    assert!(partial >= 2, "partial credit given: {answered:?}");
    // The scores matter: θ on right/wrong alone would differ.
    let dichotomized: Vec<(String, u8)> = answered
        .iter()
        .map(|(q, s)| {
            let top = defs.iter().find(|d| d.id() == q).unwrap().top();
            (q.clone(), u8::from(*s == top))
        })
        .collect();
    let theta = engine_theta(&bank, &ids, &answered);
    assert!((engine_theta(&bank, &ids, &dichotomized) - theta).abs() > 1e-3);

    let rows = env
        .sql()
        .await
        .query(
            "SELECT question_id, score, correct FROM test_responses ORDER BY seq",
            &[],
        )
        .await
        .unwrap();
    let stored: Vec<(String, u8)> = rows
        .iter()
        .map(|r| (r.get(0), r.get::<_, i16>(1) as u8))
        .collect();
    assert_eq!(stored, answered);
    let correct: Vec<bool> = rows.iter().map(|r| r.get(2)).collect();
    assert_eq!(
        correct,
        dichotomized
            .iter()
            .map(|(_, s)| *s == 1)
            .collect::<Vec<_>>()
    );
    env.assert_redis_clean().await;

    let report = env.get(&format!("/v1/tests/{test}")).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    let shown: Vec<(String, u8)> = report.body["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["question_id"].as_str().unwrap().to_owned(),
                r["score"].as_u64().unwrap() as u8,
            )
        })
        .collect();
    assert_eq!(shown, answered);

    let ended = env.post(&format!("/v1/tests/{test}/end"), json!({})).await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
    assert_eq!(ended.body["correct_responses"], tops);
    assert_eq!(ended.body["accuracy"], tops as f64 / 8.0);
    let final_theta = ended.body["proficiency"]["theta"].as_f64().unwrap();
    assert!((final_theta - theta).abs() < 1e-12);
    assert_eq!(ended.body["proficiency"], last["proficiency"]);
}

/// In an exam the examinee learns no score (nor correctness) of a polytomous
/// answer, in the submit nor in the report, while PostgreSQL records it.
#[tokio::test]
async fn an_exam_hides_the_scores() {
    let env = TestEnv::new().await;
    let defs = defs();
    let pool = create_pool(&env, &defs).await;
    let (_, teacher) = env.user(Role::Teacher).await;
    let (_, student) = env.user(Role::Student).await;
    let design = json!({ "organization_id": env.org, "name": "Attitudes", "pool_id": pool,
                         "mode": "exam", "config": { "max_items": 4, "min_items": 4, "se_target": null } });
    let r = env
        .call_as(
            Some(&teacher),
            Method::POST,
            "/v1/assessments",
            Some(design),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let closes = time::OffsetDateTime::now_utc() + time::Duration::days(1);
    let assignment = json!({ "assessment_id": r.body["id"], "class_id": env.class,
        "closes_at": closes.format(&time::format_description::well_known::Rfc3339).unwrap() });
    let r = env
        .call_as(
            Some(&teacher),
            Method::POST,
            "/v1/assignments",
            Some(assignment),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let started = env
        .call_as(
            Some(&student),
            Method::POST,
            "/v1/tests",
            Some(json!({ "assignment_id": r.body["id"] })),
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let test = started.body["test_id"].as_str().unwrap().to_owned();
    let mut question = started.body["question"].clone();
    let mut scores = Vec::new();
    while !question.is_null() {
        assert_public(&question);
        let def = defs.iter().find(|d| d.id() == question["id"]).unwrap();
        let r = answer_as(&env, &student, &test, def.id(), &def.options[def.pick]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        for hidden in ["score", "correct", "proficiency"] {
            assert!(r.body.get(hidden).is_none(), "{hidden} in {}", r.body);
        }
        scores.push(i16::from(def.scores[def.pick]));
        question = r.body["next_question"].clone();
    }
    assert_eq!(scores.len(), 4);
    let report = env
        .call_as(
            Some(&student),
            Method::GET,
            &format!("/v1/tests/{test}"),
            None,
        )
        .await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    for r in report.body["responses"].as_array().unwrap() {
        assert!(
            r.get("score").is_none() && r.get("correct").is_none(),
            "{r}"
        );
    }
    let stored: Vec<i16> = env
        .sql()
        .await
        .query("SELECT score FROM test_responses ORDER BY seq", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(stored, scores);
    // Staff see them.
    let staff = env
        .call_as(
            Some(&teacher),
            Method::GET,
            &format!("/v1/tests/{test}"),
            None,
        )
        .await;
    let shown: Vec<i64> = staff.body["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["score"].as_i64().unwrap())
        .collect();
    assert_eq!(
        shown,
        scores.iter().map(|&s| i64::from(s)).collect::<Vec<_>>()
    );
    env.assert_redis_clean().await;
}
