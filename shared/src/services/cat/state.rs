//! The live state in Redis, and how PostgreSQL rebuilds it: everything in it
//! is also in `test_sessions` and `test_responses`.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Error;
use super::config::TestConfig;
use super::design::Mode;
use super::view::{Ended, Proficiency, classification, proficiency};
use crate::app::App;
use crate::services::auth::Caller;
use crate::services::pools;
use crate::store::StoreError;
use crate::store::pools::PoolBank;
use crate::store::tests::{self as records, Stored, TestRecord};
use lectern_engine::NormalPrior;

/// The hot state in Redis (`test:{<id>}:state`): item indexes, never keys or
/// texts. Its body is postcard (compact, ~300 bytes after 30 answers); storage
/// frames it with the `seq` the scripts compare.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct LiveState {
    /// Responses recorded; the compare-and-set token (kept in the frame).
    #[serde(skip)]
    pub(super) seq: u32,
    pub(super) pool_id: Uuid,
    pub(super) pool_version: i32,
    pub(super) student_id: Option<Uuid>,
    pub(super) seed: u64,
    pub(super) prior: (f64, f64),
    pub(super) theta: f64,
    pub(super) se: f64,
    pub(super) items: Vec<u32>,
    /// The score of each answer (0…m; 1/0 for a right/wrong item). Was
    /// `Vec<bool>` before polytomous items: postcard writes a bool and a u8 as
    /// the same single byte 0/1, so a state the older release wrote still
    /// decodes, to the same scores (pinned by a test below). A state this
    /// release wrote with a score above 1 does not decode for the older one,
    /// which rebuilds it from PostgreSQL as it does any unreadable state.
    pub(super) answers: Vec<u8>,
    /// The question being served; `None` once the stop rule fired.
    pub(super) current: Option<u32>,
    /// No answer counts after this (Unix milliseconds); fixed at start.
    pub(super) deadline: Option<i64>,
    pub(super) config: TestConfig,
}

impl LiveState {
    pub(super) fn prior(&self) -> NormalPrior {
        NormalPrior {
            mean: self.prior.0,
            sd: self.prior.1,
        }
    }

    pub(super) fn items(&self) -> Vec<usize> {
        self.items.iter().map(|&i| i as usize).collect()
    }

    /// The state PostgreSQL implies: same θ, same served question, same seed.
    pub(super) fn rebuild(r: &Replay) -> Result<Self, Error> {
        let t = &r.record;
        let current = match &t.current_question {
            Some(q) => Some(r.index_of(q)? as u32),
            None => None,
        };
        Ok(Self {
            seq: t.items_answered as u32,
            pool_id: t.pool_id,
            pool_version: t.pool_version,
            student_id: t.student_id,
            seed: t.seed,
            prior: (t.prior.mean, t.prior.sd),
            theta: t.estimate.theta,
            se: t.estimate.se,
            items: r.items()?.into_iter().map(|i| i as u32).collect(),
            answers: r.responses.iter().map(|x| x.score).collect(),
            current,
            deadline: t.deadline.map(millis),
            config: r.config.clone(),
        })
    }

    /// Whether the deadline has passed.
    pub(super) fn overdue(&self) -> bool {
        self.deadline
            .is_some_and(|d| millis(time::OffsetDateTime::now_utc()) > d)
    }

    /// The body storage keeps beside the `seq`.
    pub(super) fn body(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("live state serialises")
    }

    /// Reads what [`LiveState::body`] wrote; `Err` names what is wrong.
    pub(super) fn decode(stored: &Stored) -> Result<Self, String> {
        let Stored::Framed { seq, body } = stored else {
            return Err("shorter than its frame".into());
        };
        let mut state: Self = postcard::from_bytes(body).map_err(|e| e.to_string())?;
        state.seq = *seq;
        Ok(state)
    }
}

/// A time as Unix milliseconds.
pub(super) fn millis(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The TTL a rebuilt state gets: the sliding TTL, or longer if an administrator
/// extended the test.
pub(super) fn ttl_for(app: &App, record: &TestRecord) -> Duration {
    let sliding = app.config().test_state_ttl;
    let now = time::OffsetDateTime::now_utc();
    match record.keep_until {
        Some(until) if until > now => (until - now).unsigned_abs().max(sliding),
        _ => sliding,
    }
}

/// Everything needed to recompute a test's ability from PostgreSQL alone.
pub(super) struct Replay {
    pub(super) record: TestRecord,
    pub(super) config: TestConfig,
    pub(super) responses: Vec<records::ResponseRecord>,
    pub(super) bank: Arc<PoolBank>,
}

impl Replay {
    pub(super) async fn load(app: &App, id: Uuid) -> Result<Self, Error> {
        let (record, responses) = records::snapshot(app.db(), id)
            .await?
            .ok_or(Error::TestNotFound(id))?;
        let config: TestConfig = serde_json::from_value(record.config.clone())
            .map_err(|e| Error::Store(StoreError::Corrupt(format!("config of test {id}: {e}"))))?;
        let bank = pools::bank(app, record.pool_id, record.pool_version).await?;
        Ok(Self {
            record,
            config,
            responses,
            bank,
        })
    }

    /// Engine index of a recorded question.
    pub(super) fn index_of(&self, question_id: &str) -> Result<usize, Error> {
        self.bank.index_of(question_id).ok_or_else(|| {
            Error::Store(StoreError::Corrupt(format!(
                "question {question_id} is not in version {} of pool {}",
                self.record.pool_version, self.record.pool_id
            )))
        })
    }

    /// Engine indexes of the questions answered, in order.
    pub(super) fn items(&self) -> Result<Vec<usize>, Error> {
        self.responses
            .iter()
            .map(|r| self.index_of(&r.question_id))
            .collect()
    }

    pub(super) fn proficiency(&self) -> Result<Proficiency, Error> {
        let items = self.items()?;
        let answers: Vec<u8> = self.responses.iter().map(|r| r.score).collect();
        let estimator = self.config.estimator.build(self.record.prior);
        let overall = estimator.estimate(&self.bank.bank, &items, &answers);
        Ok(proficiency(
            &self.bank,
            estimator.as_ref(),
            overall,
            &items,
            &answers,
        ))
    }

    /// Whether the deadline has passed.
    pub(super) fn overdue(&self) -> bool {
        self.record
            .deadline
            .is_some_and(|d| time::OffsetDateTime::now_utc() > d)
    }

    /// Whether `who` (`None`: the examinee's own request) must not see this
    /// test's results yet: an exam's student, before staff release them.
    pub(super) fn sealed_for(&self, who: Option<&Caller>) -> bool {
        self.config.mode == Mode::Exam
            && !self.record.released
            && who.is_none_or(|w| Some(w.user_id) == self.record.student_id)
    }

    /// The results of this (ended) test, given its final proficiency, as `who` may see them.
    pub(super) fn ended(&self, proficiency: Proficiency, who: Option<&Caller>) -> Ended {
        let t = &self.record;
        let end = t.ended_at.unwrap_or(t.started_at);
        let duration_s = (end - t.started_at).as_seconds_f64();
        let exam = (self.config.mode == Mode::Exam).then_some(t.released);
        if self.sealed_for(who) {
            return Ended {
                test_id: t.id,
                status: t.status.as_str(),
                proficiency: None,
                total_questions: t.items_answered as u32,
                correct_responses: None,
                accuracy: None,
                duration_s,
                classification: None,
                level: None,
                scale_score: None,
                released: exam,
            };
        }
        let classification = classification(&self.config, &proficiency);
        Ended {
            test_id: t.id,
            status: t.status.as_str(),
            level: self.config.level(proficiency.theta).map(str::to_owned),
            scale_score: self
                .config
                .scale
                .map(|s| s.score(proficiency.theta, proficiency.se)),
            proficiency: Some(proficiency),
            total_questions: t.items_answered as u32,
            correct_responses: Some(t.correct_count as u32),
            accuracy: Some(if t.items_answered == 0 {
                0.0
            } else {
                f64::from(t.correct_count) / f64::from(t.items_answered)
            }),
            duration_s,
            classification,
            released: exam,
        }
    }
}

#[cfg(test)]
mod unit {
    use super::*;
    use crate::services::cat::TestConfigInput;

    /// The live state as the release before polytomous items wrote it.
    #[derive(Serialize)]
    struct Before {
        pool_id: Uuid,
        pool_version: i32,
        student_id: Option<Uuid>,
        seed: u64,
        prior: (f64, f64),
        theta: f64,
        se: f64,
        items: Vec<u32>,
        answers: Vec<bool>,
        current: Option<u32>,
        deadline: Option<i64>,
        config: TestConfig,
    }

    #[test]
    fn a_state_the_release_before_scores_wrote_still_decodes() {
        let config = TestConfig::resolve(TestConfigInput::default()).unwrap();
        let before = Before {
            pool_id: Uuid::new_v4(),
            pool_version: 3,
            student_id: Some(Uuid::new_v4()),
            seed: 42,
            prior: (0.1, 0.9),
            theta: 0.25,
            se: 0.6,
            items: vec![4, 9, 2],
            answers: vec![true, false, true],
            current: Some(7),
            deadline: None,
            config: config.clone(),
        };
        let body = postcard::to_stdvec(&before).unwrap();
        let state = LiveState::decode(&Stored::Framed { seq: 3, body }).unwrap();
        assert_eq!(state.answers, [1, 0, 1]);
        assert_eq!((state.seq, state.items.as_slice()), (3, &[4, 9, 2][..]));
        assert_eq!(
            (state.theta, state.current, state.config),
            (0.25, Some(7), config)
        );
    }
}
