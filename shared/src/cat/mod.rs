//! The adaptive-test loop: the engine decides, PostgreSQL records first,
//! Redis holds the hot state after. Keys stay in process memory.

mod config;
mod state;
mod view;

use std::collections::BTreeMap;

use uuid::Uuid;

pub use config::{SelectorKind, TestConfig, TestConfigInput};
pub use view::{
    ConceptProficiency, Ended, Proficiency, Question, Report, ResponseView, Started, Submitted,
};

use crate::App;
use crate::engine::{Estimate, FromProficiency, Initializer, StopReason};
use crate::store::StoreError;
use crate::store::redis::CasOutcome;
use crate::store::tests::{self as records, Answer, TestStatus};
use state::{LiveState, Replay};
use view::{classification, proficiency, question};

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

/// Body of a start request after parsing.
pub struct StartRequest {
    /// Pool to draw from.
    pub pool_id: Uuid,
    /// The student, when known.
    pub student_id: Option<Uuid>,
    /// Effective configuration.
    pub config: TestConfig,
}

/// Starts a test: prior from the student's history (else N(0, 1)), first item by the selector.
pub async fn start(app: &App, req: StartRequest) -> Result<Started, Error> {
    let pool = crate::store::pools::summary_of(app.db(), req.pool_id)
        .await?
        .ok_or(Error::PoolNotFound(req.pool_id))?;
    let history = match req.student_id {
        None => None,
        Some(student) => records::student_prior(app.db(), student)
            .await?
            .ok_or(Error::StudentNotFound(student))?,
    };
    let prior = FromProficiency { history }.start().prior;
    let bank = app.bank(pool.id, pool.version).await?;
    req.config.check_against(&bank)?;
    let seed: u64 = rand::random();
    let cat = req.config.engine(prior, &bank);
    let step = cat.step(&bank.bank, &[], &[], seed);
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
        theta: step.estimate.theta,
        se: step.estimate.se,
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
            theta: step.estimate.theta,
            se: step.estimate.se,
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

/// After a refusal against the Redis state seen at `seen_seq`: an ended test is
/// reported as such; when Redis is behind PostgreSQL (a Redis write lost after a
/// commit, or a race just lost), the state is replaced by one rebuilt from
/// PostgreSQL and returned.
async fn refresh_if_stale(app: &App, id: Uuid, seen_seq: u32) -> Result<Option<LiveState>, Error> {
    let replay = Replay::load(app, id).await?;
    let status = replay.record.status;
    if matches!(status, TestStatus::Ended | TestStatus::Abandoned) {
        return Err(Error::NotActive(status));
    }
    if replay.record.items_answered as u32 <= seen_seq {
        return Ok(None);
    }
    let fresh = LiveState::rebuild(&replay)?;
    // Compare-and-set over the stale state only: a newer writer always wins.
    app.redis()
        .replace_test_state(id, seen_seq, &fresh.encode(), app.config().test_state_ttl)
        .await?;
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
    let cat = state.config.engine(state.prior(), &bank);
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
        // Lost a race, to a concurrent submit or to `end`: `submit` reads which from PostgreSQL.
        return Err(Error::AlreadyAnswered(question_id.into()));
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
        stop_reason: step.stop.map(StopReason::name),
    })
}

/// Ends a test: final results and long-term proficiency to PostgreSQL, live state
/// deleted. Ending an ended test returns the same results.
pub async fn end(app: &App, id: Uuid) -> Result<Ended, Error> {
    // A submit landing between our read and our write moves `items_answered`; read again then.
    for _ in 0..3 {
        let mut replay = Replay::load(app, id).await?;
        match replay.record.status {
            TestStatus::Ended => return Ok(replay.ended(replay.proficiency()?)),
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
        let overall = Estimate {
            theta: p.theta,
            se: p.se,
        };
        let finished = records::Final {
            overall,
            concepts: &concepts,
        };
        if let Some(ended_at) = records::finish(app.db(), &replay.record, &finished).await? {
            if let Err(e) = app.redis().delete_test_state(id).await {
                // The state expires on its own; PostgreSQL already refuses answers to an ended test.
                tracing::warn!(test = %id, error = %e, "live state not deleted at end");
            }
            replay.record.ended_at = Some(ended_at);
            return Ok(replay.ended(p));
        }
    }
    Err(Error::Contended(id))
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
        classification: classification(&config, &proficiency),
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
