//! The adaptive-test loop: the engine decides, PostgreSQL records first,
//! Redis holds the hot state after. Keys stay in process memory.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::App;
use crate::engine::{self, Estimate, Estimator, NormalPrior};
use crate::store::StoreError;
use crate::store::pools::PoolBank;
use crate::store::redis::CasOutcome;
use crate::store::tests::{self as records, Answer, TestRecord, TestStatus};

/// What can go wrong in the test loop, by cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No test with that id.
    #[error("no test with id {0}")]
    TestNotFound(Uuid),
    /// No pool with that id.
    #[error("no pool with id {0}")]
    PoolNotFound(Uuid),
    /// `student_id` names no user.
    #[error("no user with id {0}")]
    StudentNotFound(Uuid),
    /// The pool has no items to serve.
    #[error("pool {0} has no items")]
    EmptyPool(Uuid),
    /// A configuration value out of range.
    #[error("{0}")]
    InvalidConfig(String),
    /// The test no longer takes answers.
    #[error("the test is {}; it takes no more answers", .0.as_str())]
    NotActive(TestStatus),
    /// The question answered is not the one being served.
    #[error("question {0:?} is not the question being served")]
    QuestionNotServed(String),
    /// This question's answer is already recorded.
    #[error("question {0:?} has already been answered")]
    AlreadyAnswered(String),
    /// The response is none of the question's options.
    #[error("response {response:?} is not one of the options of question {question:?}")]
    UnknownOption {
        /// Question answered.
        question: String,
        /// The response given.
        response: String,
    },
    /// Answers kept landing while the test was being ended.
    #[error("test {0} kept changing while it was being ended; try again")]
    Contended(Uuid),
    /// A backing service failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Which estimator updates θ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EstimatorKind {
    /// Expected a posteriori (default).
    Eap,
    /// Maximum a posteriori.
    Map,
    /// Maximum likelihood, bounded to ±6.
    Mle,
}

/// Which rule picks the next item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelectorKind {
    /// Maximum Fisher information at the current θ.
    MaxInfo,
}

/// The optional `config` of `POST /v1/tests`, as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestConfigInput {
    max_items: Option<u32>,
    min_items: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    se_target: Option<Option<f64>>,
    estimator: Option<EstimatorKind>,
    selector: Option<SelectorKind>,
    randomesque: Option<u32>,
}

// Tells an explicit `null` (Some(None)) from an absent field (None).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// The effective configuration of one test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestConfig {
    /// Stop after this many items.
    pub max_items: u32,
    /// Never stop before this many items.
    pub min_items: u32,
    /// Stop once the standard error is at or below this; `None` disables the rule.
    pub se_target: Option<f64>,
    /// θ estimator.
    pub estimator: EstimatorKind,
    /// Item selector.
    pub selector: SelectorKind,
    /// Choose at random among this many most informative items (1 = pure maximum information).
    pub randomesque: u32,
}

impl TestConfig {
    /// Applies defaults and checks ranges.
    pub fn resolve(input: TestConfigInput) -> Result<Self, Error> {
        let max_items = input.max_items.unwrap_or(20);
        let min_items = input.min_items.unwrap_or(5.min(max_items));
        let se_target = input.se_target.unwrap_or(Some(0.3));
        let randomesque = input.randomesque.unwrap_or(1);
        let bad = |msg: String| Err(Error::InvalidConfig(msg));
        if !(1..=200).contains(&max_items) {
            return bad(format!(
                "config.max_items must be from 1 to 200 (got {max_items})"
            ));
        }
        if min_items > max_items {
            return bad(format!(
                "config.min_items ({min_items}) must not exceed config.max_items ({max_items})"
            ));
        }
        if let Some(se) = se_target
            && !(0.05..=2.0).contains(&se)
        {
            return bad(format!(
                "config.se_target must be from 0.05 to 2 or null (got {se})"
            ));
        }
        if !(1..=20).contains(&randomesque) {
            return bad(format!(
                "config.randomesque must be from 1 to 20 (got {randomesque})"
            ));
        }
        Ok(Self {
            max_items,
            min_items,
            se_target,
            estimator: input.estimator.unwrap_or(EstimatorKind::Eap),
            selector: input.selector.unwrap_or(SelectorKind::MaxInfo),
            randomesque,
        })
    }

    fn estimator(&self, prior: NormalPrior) -> Box<dyn Estimator> {
        match self.estimator {
            EstimatorKind::Eap => Box::new(engine::Eap::new(prior)),
            EstimatorKind::Map => Box::new(engine::Map::new(prior)),
            EstimatorKind::Mle => Box::new(engine::Mle::default()),
        }
    }

    fn engine(&self, prior: NormalPrior) -> engine::Cat {
        let selector: Box<dyn engine::Selector> = match (self.selector, self.randomesque) {
            (SelectorKind::MaxInfo, 1) => Box::new(engine::MaxInfo),
            (SelectorKind::MaxInfo, k) => Box::new(engine::Randomesque { k: k as usize }),
        };
        engine::Cat {
            estimator: self.estimator(prior),
            selector,
            stop: engine::StopRule {
                max_items: self.max_items as usize,
                min_items: self.min_items as usize,
                se_target: self.se_target,
            },
        }
    }
}

/// θ and SE of one concept, from the answers to its items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConceptProficiency {
    /// Ability on this concept.
    pub theta: f64,
    /// Its standard error.
    pub se: f64,
    /// Items answered that are tagged with it.
    pub n: usize,
}

/// Overall and per-concept ability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proficiency {
    /// Overall ability.
    pub theta: f64,
    /// Its standard error.
    pub se: f64,
    /// By concept name.
    pub concepts: BTreeMap<String, ConceptProficiency>,
}

/// A question as served: never with its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Question {
    /// Question id.
    pub id: String,
    /// Question text.
    pub content: String,
    /// Answer choices.
    pub options: Vec<String>,
    /// Concept names.
    pub concepts: Vec<String>,
    /// 1-based position in this test.
    pub position: u32,
}

/// The hot state in Redis (`test:{<id>}:state`). Holds item indexes, never keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LiveState {
    /// Responses recorded; the compare-and-set token.
    seq: u32,
    pool_id: Uuid,
    pool_version: i32,
    seed: u64,
    prior: (f64, f64),
    theta: f64,
    se: f64,
    items: Vec<u32>,
    answers: Vec<bool>,
    /// The question being served; `None` once the stop rule fired.
    current: Option<u32>,
    config: TestConfig,
}

impl LiveState {
    fn prior(&self) -> NormalPrior {
        NormalPrior {
            mean: self.prior.0,
            sd: self.prior.1,
        }
    }

    fn items(&self) -> Vec<usize> {
        self.items.iter().map(|&i| i as usize).collect()
    }

    /// The state PostgreSQL implies: same θ, same served question, same seed.
    fn rebuild(r: &Replay) -> Result<Self, Error> {
        let t = &r.record;
        let current = match &t.current_question {
            Some(q) => Some(r.index_of(q)? as u32),
            None => None,
        };
        Ok(Self {
            seq: t.items_answered as u32,
            pool_id: t.pool_id,
            pool_version: t.pool_version,
            seed: t.seed,
            prior: (t.prior.mean, t.prior.sd),
            theta: t.estimate.theta,
            se: t.estimate.se,
            items: r.items()?.into_iter().map(|i| i as u32).collect(),
            answers: r.responses.iter().map(|x| x.correct).collect(),
            current,
            config: r.config.clone(),
        })
    }

    fn encode(&self) -> String {
        serde_json::to_string(self).expect("live state serialises")
    }
}

fn question(bank: &PoolBank, index: usize, position: u32) -> Question {
    let item = &bank.questions[index].item;
    Question {
        id: item.id.clone(),
        content: item.content.clone(),
        options: item.options.clone(),
        concepts: item.concepts.clone(),
        position,
    }
}

fn proficiency(
    bank: &PoolBank,
    estimator: &dyn Estimator,
    overall: Estimate,
    items: &[usize],
    answers: &[bool],
) -> Proficiency {
    let concepts = engine::concept_estimates(estimator, &bank.bank, items, answers)
        .into_iter()
        .map(|(id, e, n)| {
            (
                bank.concept_names[id as usize].clone(),
                ConceptProficiency {
                    theta: e.theta,
                    se: e.se,
                    n,
                },
            )
        })
        .collect();
    Proficiency {
        theta: overall.theta,
        se: overall.se,
        concepts,
    }
}

/// A long-term SE below this would let one old test pin the next one's prior.
const MIN_PRIOR_SD: f64 = 0.5;

/// Body of a start request after parsing.
pub struct StartRequest {
    /// Pool to draw from.
    pub pool_id: Uuid,
    /// The student, when known.
    pub student_id: Option<Uuid>,
    /// Effective configuration.
    pub config: TestConfig,
}

/// A started test.
#[derive(Debug, Serialize)]
pub struct Started {
    /// New test id.
    pub test_id: Uuid,
    /// Always `active`.
    pub status: &'static str,
    /// First question.
    pub question: Question,
    /// The prior.
    pub proficiency: Proficiency,
    /// Always 0.
    pub items_answered: u32,
    /// Effective configuration.
    pub config: TestConfig,
}

/// Starts a test: prior from the student's history (else N(0, 1)), first item by the selector.
pub async fn start(app: &App, req: StartRequest) -> Result<Started, Error> {
    let pool = crate::store::pools::summary_of(app.db(), req.pool_id)
        .await?
        .ok_or(Error::PoolNotFound(req.pool_id))?;
    let prior = match req.student_id {
        None => NormalPrior::default(),
        Some(student) => match records::student_prior(app.db(), student).await? {
            None => return Err(Error::StudentNotFound(student)),
            Some(None) => NormalPrior::default(),
            Some(Some(e)) => NormalPrior {
                mean: e.theta,
                sd: e.se.clamp(MIN_PRIOR_SD, 1.0),
            },
        },
    };
    let bank = app.bank(pool.id, pool.version).await?;
    let seed: u64 = rand::random();
    let step = req.config.engine(prior).step(&bank.bank, &[], &[], seed);
    let first = step.next.ok_or(Error::EmptyPool(pool.id))?;
    let id = Uuid::new_v4();
    let config_json = serde_json::to_value(&req.config).expect("config serialises");
    records::insert(
        app.db(),
        &records::NewTest {
            id,
            pool_id: pool.id,
            pool_version: pool.version,
            student_id: req.student_id,
            config: &config_json,
            seed,
            prior,
            first_question: &bank.questions[first].item.id,
        },
    )
    .await?;
    let state = LiveState {
        seq: 0,
        pool_id: pool.id,
        pool_version: pool.version,
        seed,
        prior: (prior.mean, prior.sd),
        theta: prior.mean,
        se: prior.sd,
        items: vec![],
        answers: vec![],
        current: Some(first as u32),
        config: req.config.clone(),
    };
    app.redis()
        .put_test_state(id, &state.encode(), app.config().test_state_ttl)
        .await?;
    Ok(Started {
        test_id: id,
        status: TestStatus::Active.as_str(),
        question: question(&bank, first, 1),
        proficiency: Proficiency {
            theta: prior.mean,
            se: prior.sd,
            concepts: BTreeMap::new(),
        },
        items_answered: 0,
        config: req.config,
    })
}

/// Reads the live state, sliding its TTL. When it is gone (expired, evicted,
/// flushed) but the test is active, rebuilds it from PostgreSQL, which holds
/// everything it needs.
async fn live_state(app: &App, id: Uuid) -> Result<LiveState, Error> {
    let ttl = app.config().test_state_ttl;
    if let Some(raw) = app.redis().touch_test_state(id, ttl).await? {
        return serde_json::from_str(&raw)
            .map_err(|e| Error::Store(StoreError::Corrupt(format!("state of test {id}: {e}"))));
    }
    let replay = Replay::load(app, id).await?;
    if replay.record.status != TestStatus::Active {
        return Err(Error::NotActive(replay.record.status));
    }
    let state = LiveState::rebuild(&replay)?;
    tracing::info!(test = %id, seq = state.seq, "live state rebuilt from PostgreSQL");
    // NX: a concurrent rebuild wrote the same state, or a submit already moved it on.
    app.redis().put_test_state(id, &state.encode(), ttl).await?;
    Ok(state)
}

/// When Redis holds an older state than PostgreSQL (a Redis write lost after a
/// commit), replaces it with one rebuilt from PostgreSQL and returns that.
async fn refresh_if_stale(app: &App, id: Uuid, seen_seq: u32) -> Result<Option<LiveState>, Error> {
    let replay = Replay::load(app, id).await?;
    if replay.record.items_answered as u32 <= seen_seq {
        return Ok(None);
    }
    let fresh = LiveState::rebuild(&replay)?;
    if fresh.current.is_some() {
        // Compare-and-set over the stale state only: a newer writer always wins.
        app.redis()
            .replace_test_state(id, seen_seq, &fresh.encode(), app.config().test_state_ttl)
            .await?;
    }
    Ok(Some(fresh))
}

/// The question currently served.
pub async fn current_question(app: &App, id: Uuid) -> Result<Question, Error> {
    let state = live_state(app, id).await?;
    let current = state
        .current
        .ok_or(Error::NotActive(TestStatus::Completed))?;
    let bank = app.bank(state.pool_id, state.pool_version).await?;
    Ok(question(&bank, current as usize, state.seq + 1))
}

/// The outcome of one answer.
#[derive(Debug, Serialize)]
pub struct Submitted {
    /// Whether the answer was the key.
    pub correct: bool,
    /// Updated ability.
    pub proficiency: Proficiency,
    /// Responses recorded so far.
    pub items_answered: u32,
    /// `active` or `completed`.
    pub status: &'static str,
    /// The next question, unless the stop rule fired.
    pub next_question: Option<Question>,
}

/// Records one answer to the question being served, exactly once.
pub async fn submit(
    app: &App,
    id: Uuid,
    question_id: &str,
    response: &str,
) -> Result<Submitted, Error> {
    let state = live_state(app, id).await?;
    let seen_seq = state.seq;
    let result = record(app, id, state, question_id, response).await;
    // Refused against what Redis holds, which may be behind PostgreSQL: check, and
    // retry once on the state rebuilt from PostgreSQL.
    if matches!(
        result,
        Err(Error::QuestionNotServed(_) | Error::AlreadyAnswered(_))
    ) && let Some(fresh) = refresh_if_stale(app, id, seen_seq).await?
    {
        return record(app, id, fresh, question_id, response).await;
    }
    result
}

async fn record(
    app: &App,
    id: Uuid,
    mut state: LiveState,
    question_id: &str,
    response: &str,
) -> Result<Submitted, Error> {
    let current = state
        .current
        .ok_or(Error::NotActive(TestStatus::Completed))? as usize;
    let bank = app.bank(state.pool_id, state.pool_version).await?;
    match bank.index_of(question_id) {
        Some(i) if i == current => {}
        Some(i) if state.items.contains(&(i as u32)) => {
            return Err(Error::AlreadyAnswered(question_id.into()));
        }
        _ => return Err(Error::QuestionNotServed(question_id.into())),
    }
    let served = &bank.questions[current];
    if !served.item.options.iter().any(|o| o == response) {
        return Err(Error::UnknownOption {
            question: question_id.into(),
            response: response.into(),
        });
    }
    let correct = response == served.correct_answer;
    let before = Estimate {
        theta: state.theta,
        se: state.se,
    };
    let mut items = state.items();
    items.push(current);
    state.answers.push(correct);
    let cat = state.config.engine(state.prior());
    let step = cat.step(&bank.bank, &items, &state.answers, state.seed);
    let status = if step.next.is_some() {
        TestStatus::Active
    } else {
        TestStatus::Completed
    };
    let next_id = step.next.map(|i| bank.questions[i].item.id.as_str());
    let answer = Answer {
        question_id,
        response,
        correct,
        before,
        after: step.estimate,
        status,
        next_question: next_id,
    };
    if !records::record_answer(app.db(), id, state.seq as i32, &answer).await? {
        // Lost a race: to a concurrent submit of the same answer, or to `end`.
        return Err(match records::get(app.db(), id).await?.map(|t| t.status) {
            Some(s @ (TestStatus::Ended | TestStatus::Abandoned)) => Error::NotActive(s),
            _ => Error::AlreadyAnswered(question_id.into()),
        });
    }
    let expected_seq = state.seq;
    state.seq += 1;
    state.items.push(current as u32);
    state.theta = step.estimate.theta;
    state.se = step.estimate.se;
    state.current = step.next.map(|i| i as u32);
    // PostgreSQL already holds the answer; a failed Redis write only costs a rebuild later.
    match app
        .redis()
        .replace_test_state(
            id,
            expected_seq,
            &state.encode(),
            app.config().test_state_ttl,
        )
        .await
    {
        Ok(CasOutcome::Written) => {}
        Ok(outcome) => {
            tracing::warn!(test = %id, ?outcome, "live state not replaced after a recorded answer")
        }
        Err(e) => {
            tracing::warn!(test = %id, error = %e, "live state not replaced after a recorded answer")
        }
    }
    Ok(Submitted {
        correct,
        proficiency: proficiency(
            &bank,
            cat.estimator.as_ref(),
            step.estimate,
            &items,
            &state.answers,
        ),
        items_answered: state.seq,
        status: status.as_str(),
        next_question: step.next.map(|i| question(&bank, i, state.seq + 1)),
    })
}

/// A test's results.
#[derive(Debug, Serialize)]
pub struct Ended {
    /// Test id.
    pub test_id: Uuid,
    /// Always `ended`.
    pub status: &'static str,
    /// Final ability.
    pub proficiency: Proficiency,
    /// Responses recorded.
    pub total_questions: u32,
    /// Correct responses.
    pub correct_responses: u32,
    /// correct / total (0 with no responses).
    pub accuracy: f64,
    /// Seconds from start to end.
    pub duration_s: f64,
}

/// Everything needed to recompute a test's ability from PostgreSQL alone.
struct Replay {
    record: TestRecord,
    config: TestConfig,
    responses: Vec<records::ResponseRecord>,
    bank: std::sync::Arc<PoolBank>,
}

impl Replay {
    async fn load(app: &App, id: Uuid) -> Result<Self, Error> {
        let (record, responses) = records::snapshot(app.db(), id)
            .await?
            .ok_or(Error::TestNotFound(id))?;
        let config: TestConfig = serde_json::from_value(record.config.clone())
            .map_err(|e| Error::Store(StoreError::Corrupt(format!("config of test {id}: {e}"))))?;
        let bank = app.bank(record.pool_id, record.pool_version).await?;
        Ok(Self {
            record,
            config,
            responses,
            bank,
        })
    }

    /// Engine index of a recorded question.
    fn index_of(&self, question_id: &str) -> Result<usize, Error> {
        self.bank.index_of(question_id).ok_or_else(|| {
            Error::Store(StoreError::Corrupt(format!(
                "question {question_id} is not in version {} of pool {}",
                self.record.pool_version, self.record.pool_id
            )))
        })
    }

    /// Engine indexes of the questions answered, in order.
    fn items(&self) -> Result<Vec<usize>, Error> {
        self.responses
            .iter()
            .map(|r| self.index_of(&r.question_id))
            .collect()
    }

    fn proficiency(&self) -> Result<Proficiency, Error> {
        let items = self.items()?;
        let answers: Vec<bool> = self.responses.iter().map(|r| r.correct).collect();
        let estimator = self.config.estimator(self.record.prior);
        let overall = estimator.estimate(&self.bank.bank, &items, &answers);
        Ok(proficiency(
            &self.bank,
            estimator.as_ref(),
            overall,
            &items,
            &answers,
        ))
    }

    fn ended(&self) -> Result<Ended, Error> {
        let t = &self.record;
        let end = t.ended_at.unwrap_or(t.started_at);
        Ok(Ended {
            test_id: t.id,
            status: TestStatus::Ended.as_str(),
            proficiency: self.proficiency()?,
            total_questions: t.items_answered as u32,
            correct_responses: t.correct_count as u32,
            accuracy: if t.items_answered == 0 {
                0.0
            } else {
                f64::from(t.correct_count) / f64::from(t.items_answered)
            },
            duration_s: (end - t.started_at).as_seconds_f64(),
        })
    }
}

/// Ends a test: final results and long-term proficiency to PostgreSQL, live state
/// deleted. Ending an ended test returns the same results.
pub async fn end(app: &App, id: Uuid) -> Result<Ended, Error> {
    // A submit landing between our read and our write moves `items_answered`; read again then.
    for _ in 0..3 {
        let replay = Replay::load(app, id).await?;
        match replay.record.status {
            TestStatus::Ended => return replay.ended(),
            TestStatus::Abandoned => return Err(Error::NotActive(TestStatus::Abandoned)),
            TestStatus::Active | TestStatus::Completed => {}
        }
        let p = replay.proficiency()?;
        let concepts: Vec<(String, Estimate, usize)> = p
            .concepts
            .iter()
            .map(|(name, c)| {
                (
                    name.clone(),
                    Estimate {
                        theta: c.theta,
                        se: c.se,
                    },
                    c.n,
                )
            })
            .collect();
        let concepts_json = serde_json::to_value(&p.concepts).expect("concepts serialise");
        let done = records::finish(
            app.db(),
            &replay.record,
            &records::Final {
                overall: Estimate {
                    theta: p.theta,
                    se: p.se,
                },
                concepts: &concepts,
                concepts_json: &concepts_json,
            },
        )
        .await?;
        if done {
            if let Err(e) = app.redis().delete_test_state(id).await {
                // The state expires on its own; PostgreSQL already refuses answers to an ended test.
                tracing::warn!(test = %id, error = %e, "live state not deleted at end");
            }
            return Replay::load(app, id).await?.ended();
        }
    }
    Err(Error::Contended(id))
}

/// One recorded response, as reported.
#[derive(Debug, Serialize)]
pub struct ResponseView {
    /// 1-based order.
    pub seq: i32,
    /// The question answered.
    pub question_id: String,
    /// The option chosen.
    pub response: String,
    /// Whether it was the key.
    pub correct: bool,
    /// θ after this response.
    pub theta: f64,
    /// SE after this response.
    pub se: f64,
    /// When it was recorded.
    #[serde(with = "time::serde::rfc3339")]
    pub answered_at: time::OffsetDateTime,
}

/// A test as recorded in PostgreSQL.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Test id.
    pub test_id: Uuid,
    /// Pool id.
    pub pool_id: Uuid,
    /// Pool version the test uses.
    pub pool_version: i32,
    /// The student, when known.
    pub student_id: Option<Uuid>,
    /// Lifecycle state.
    pub status: &'static str,
    /// Effective configuration.
    pub config: TestConfig,
    /// Current (or final) ability.
    pub proficiency: Proficiency,
    /// Responses recorded.
    pub items_answered: i32,
    /// Correct responses.
    pub correct_responses: i32,
    /// Start time.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: time::OffsetDateTime,
    /// End time.
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<time::OffsetDateTime>,
    /// Every response in order.
    pub responses: Vec<ResponseView>,
}

/// A test and its responses, from PostgreSQL.
pub async fn report(app: &App, id: Uuid) -> Result<Report, Error> {
    let replay = Replay::load(app, id).await?;
    let proficiency = replay.proficiency()?;
    let Replay {
        record: t,
        config,
        responses,
        ..
    } = replay;
    Ok(Report {
        test_id: t.id,
        pool_id: t.pool_id,
        pool_version: t.pool_version,
        student_id: t.student_id,
        status: t.status.as_str(),
        config,
        proficiency,
        items_answered: t.items_answered,
        correct_responses: t.correct_count,
        started_at: t.started_at,
        ended_at: t.ended_at,
        responses: responses
            .into_iter()
            .map(|r| ResponseView {
                seq: r.seq,
                question_id: r.question_id,
                response: r.response,
                correct: r.correct,
                theta: r.after.theta,
                se: r.after.se,
                answered_at: r.answered_at,
            })
            .collect(),
    })
}
