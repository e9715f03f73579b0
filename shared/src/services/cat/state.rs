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
use lectern_engine::{NormalPrior, PretestPlan};

/// The hot state in Redis (`test:{<id>}:state`): item indexes, never keys or
/// texts. Its body is postcard (compact, ~300 bytes after 30 answers); storage
/// frames it with the `seq` the scripts compare.
///
/// Fields are only ever added at the end (a new field of the configuration,
/// which comes last, goes before the state's own new fields, so both sit at
/// the end of the bytes), each one of a type whose zero value postcard
/// writes as a single 0 byte (an integer 0, an empty list, `None`, `false`):
/// so a state an older release wrote reads as this release's with those
/// bytes appended (see [`LiveState::decode`]), and an older release reads
/// this release's states of tests that use none of the new fields exactly
/// (postcard ignores what follows the fields it knows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct LiveState {
    /// Responses recorded, pretest ones included; the compare-and-set token
    /// (kept in the frame). The next question's position is `seq + 1`.
    #[serde(skip)]
    pub(super) seq: u32,
    pub(super) pool_id: Uuid,
    pub(super) pool_version: i32,
    pub(super) student_id: Option<Uuid>,
    pub(super) seed: u64,
    pub(super) prior: (f64, f64),
    pub(super) theta: f64,
    pub(super) se: f64,
    /// The operational items answered, as engine indexes, in order.
    pub(super) items: Vec<u32>,
    /// The score of each answer to `items` (0…m; 1/0 for a right/wrong item). Was
    /// `Vec<bool>` before polytomous items: postcard writes a bool and a u8 as
    /// the same single byte 0/1, so a state the older release wrote still
    /// decodes, to the same scores (pinned by a test below). A state this
    /// release wrote with a score above 1 does not decode for the older one,
    /// which rebuilds it from PostgreSQL as it does any unreadable state.
    pub(super) answers: Vec<u8>,
    /// The operational item the engine serves next; `None` once the stop
    /// rule fired. A pretest item due at the next position comes first.
    pub(super) current: Option<u32>,
    /// No answer counts after this (Unix milliseconds); fixed at start.
    pub(super) deadline: Option<i64>,
    pub(super) config: TestConfig,
    /// The score of each answer to a pretest item, in order (which items, and
    /// at which positions, the test's [`PretestPlan`] says).
    pub(super) pretest_answers: Vec<u8>,
}

/// Fields added to [`LiveState`] since the oldest layout still read: the
/// configuration's `pretest_items`, then `pretest_answers`.
const ADDED_FIELDS: usize = 2;

/// What a test serves at its next position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Serving {
    /// An operational item (engine index).
    Item(usize),
    /// A pretest item (pretest index).
    Pretest(usize),
}

impl Serving {
    /// The question id served.
    pub(super) fn id(self, bank: &PoolBank) -> &str {
        match self {
            Serving::Item(i) => &bank.ids[i],
            Serving::Pretest(j) => &bank.pretest_ids[j],
        }
    }
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

    /// Where this test serves its pretest items.
    pub(super) fn plan(&self, bank: &PoolBank) -> PretestPlan {
        self.config.pretest_plan(self.seed, bank)
    }

    /// What the test serves at its next position (`None`: it is over): the
    /// pretest item due there, if any, else the engine's next item.
    pub(super) fn serving(&self, plan: &PretestPlan) -> Option<Serving> {
        let current = self.current? as usize;
        Some(match plan.item_at(self.seq + 1) {
            Some(j) => Serving::Pretest(j),
            None => Serving::Item(current),
        })
    }

    /// Whether `question_id` was served to this test before its next position.
    pub(super) fn answered(&self, bank: &PoolBank, plan: &PretestPlan, question_id: &str) -> bool {
        if let Some(i) = bank.index_of(question_id) {
            return self.items.contains(&(i as u32));
        }
        bank.pretest_index_of(question_id)
            .and_then(|j| plan.position_of(j))
            .is_some_and(|p| p <= self.seq)
    }

    /// Every answer in order, as (what was served, its score): the
    /// operational ones and the pretest ones merged at the plan's positions.
    pub(super) fn sequence(&self, plan: &PretestPlan) -> Vec<(Serving, u8)> {
        let (mut op, mut pre) = (
            self.items.iter().zip(&self.answers),
            self.pretest_answers.iter(),
        );
        (1..=self.seq)
            .map_while(|position| match plan.item_at(position) {
                Some(j) => pre.next().map(|&s| (Serving::Pretest(j), s)),
                None => op.next().map(|(&i, &s)| (Serving::Item(i as usize), s)),
            })
            .collect()
    }

    /// The state PostgreSQL implies: same θ, same served question, same seed,
    /// the pretest answers where the plan puts them.
    pub(super) fn rebuild(r: &Replay) -> Result<Self, Error> {
        let t = &r.record;
        let current = match &t.current_question {
            Some(q) => Some(r.index_of(q)? as u32),
            None => None,
        };
        let plan = r.config.pretest_plan(t.seed, &r.bank);
        let (mut items, mut answers, mut pretest_answers) = (Vec::new(), Vec::new(), Vec::new());
        for x in &r.responses {
            let due = plan.item_at(x.seq as u32);
            if x.pretest {
                if due.is_none() || due != r.bank.pretest_index_of(&x.question_id) {
                    return Err(r.corrupt(format!(
                        "response {} answers pretest item {} where the plan puts {:?}",
                        x.seq, x.question_id, due
                    )));
                }
                pretest_answers.push(x.score);
            } else {
                if due.is_some() {
                    return Err(r.corrupt(format!(
                        "response {} answers {} where the plan puts pretest item {:?}",
                        x.seq, x.question_id, due
                    )));
                }
                items.push(r.index_of(&x.question_id)? as u32);
                answers.push(x.score);
            }
        }
        Ok(Self {
            seq: t.items_answered as u32,
            pool_id: t.pool_id,
            pool_version: t.pool_version,
            student_id: t.student_id,
            seed: t.seed,
            prior: (t.prior.mean, t.prior.sd),
            theta: t.estimate.theta,
            se: t.estimate.se,
            items,
            answers,
            current,
            deadline: t.deadline.map(millis),
            config: r.config.clone(),
            pretest_answers,
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

    /// Reads what [`LiveState::body`] wrote, this release or an older one
    /// (which stopped short of the fields added since: read as their zero
    /// values, so such a test has no pretest items); `Err` names what is wrong.
    pub(super) fn decode(stored: &Stored) -> Result<Self, String> {
        let Stored::Framed { seq, body } = stored else {
            return Err("shorter than its frame".into());
        };
        let mut state: Self = match postcard::from_bytes(body) {
            Ok(state) => state,
            Err(postcard::Error::DeserializeUnexpectedEnd) => {
                let mut padded = body.clone();
                padded.extend([0; ADDED_FIELDS]);
                postcard::from_bytes(&padded).map_err(|e| e.to_string())?
            }
            Err(e) => return Err(e.to_string()),
        };
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

    /// This test's record is not what it should be.
    fn corrupt(&self, what: String) -> Error {
        Error::Store(StoreError::Corrupt(format!(
            "test {}: {what}",
            self.record.id
        )))
    }

    /// Engine index of a recorded (operational) question.
    pub(super) fn index_of(&self, question_id: &str) -> Result<usize, Error> {
        self.bank.index_of(question_id).ok_or_else(|| {
            Error::Store(StoreError::Corrupt(format!(
                "question {question_id} is not an operational item of version {} of pool {}",
                self.record.pool_version, self.record.pool_id
            )))
        })
    }

    /// The scored responses: those to operational items.
    fn scored(&self) -> impl Iterator<Item = &records::ResponseRecord> {
        self.responses.iter().filter(|r| !r.pretest)
    }

    /// Engine indexes of the operational questions answered, in order.
    pub(super) fn items(&self) -> Result<Vec<usize>, Error> {
        self.scored()
            .map(|r| self.index_of(&r.question_id))
            .collect()
    }

    /// Ability from the scored answers alone (pretest answers never count).
    pub(super) fn proficiency(&self) -> Result<Proficiency, Error> {
        let items = self.items()?;
        let answers: Vec<u8> = self.scored().map(|r| r.score).collect();
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

    /// The results of this (ended) test, given its final proficiency, as `who`
    /// may see them: of the scored answers alone.
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
                total_questions: t.scored() as u32,
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
            total_questions: t.scored() as u32,
            correct_responses: Some(t.correct_count as u32),
            accuracy: Some(if t.scored() == 0 {
                0.0
            } else {
                f64::from(t.correct_count) / f64::from(t.scored())
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

    /// The live state as the release before polytomous items wrote it, but
    /// its configuration (see the test).
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
        };
        // Its configuration as that release wrote it: without the last field,
        // `pretest_items`, which came later.
        let mut body = postcard::to_stdvec(&before).unwrap();
        let config_now = postcard::to_stdvec(&config).unwrap();
        assert_eq!(config_now.last(), Some(&0), "pretest_items 0, last");
        body.extend(&config_now[..config_now.len() - 1]);
        let state = LiveState::decode(&Stored::Framed { seq: 3, body }).unwrap();
        assert_eq!(state.answers, [1, 0, 1]);
        assert_eq!((state.seq, state.items.as_slice()), (3, &[4, 9, 2][..]));
        assert_eq!(
            (state.theta, state.current, state.config),
            (0.25, Some(7), config)
        );
        assert!(state.pretest_answers.is_empty());
    }

    /// Bytes the release before pretest items (7ff5b9a) wrote for a test of
    /// an exam design (blueprint, enemies, levels, scale, deadline), scores
    /// above 1 included.
    const BEFORE_PRETEST: [&str; 5] = [
        "100b7a4a529d8e4c1f8d0c5a1e2b3c4d5e0401106f1c1c643b1e4a559b0e0d8f6b1f2a10ef9bafcdf8acd191019a9999",
        "999999b93fcdccccccccccec3f000000000000d03f333333333333e33f030409c8010301000301070180a0d5edee660c",
        "0600000003010207616c6765627261000000000000e83f096672616374696f6e73000000000000d03f0100cdcccccccc",
        "ccec3f01000000000000e03f0101096672616374696f6e730204010203712d3103712d3501e01202034c6f7700044869",
        "676801000000000000d03f0100000000000049400000000000407f400000000000000069400000000000008940",
    ];

    fn before_pretest() -> Vec<u8> {
        let hex = BEFORE_PRETEST.concat();
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn a_state_the_release_before_pretest_items_wrote_still_decodes() {
        let body = before_pretest();
        let state = LiveState::decode(&Stored::Framed {
            seq: 3,
            body: body.clone(),
        })
        .unwrap();
        assert_eq!(state.seq, 3);
        assert_eq!(state.pool_version, 2);
        assert_eq!(state.seed, 0x0123_4567_89ab_cdef);
        assert_eq!(
            (state.prior, state.theta, state.se),
            ((0.1, 0.9), 0.25, 0.6)
        );
        assert_eq!(state.items, [4, 9, 200]);
        assert_eq!(state.answers, [1, 0, 3]);
        assert_eq!(
            (state.current, state.deadline),
            (Some(7), Some(1_767_225_600_000))
        );
        let c = &state.config;
        assert_eq!((c.max_items, c.min_items, c.randomesque), (12, 6, 3));
        assert_eq!(c.mode, Mode::Exam);
        assert_eq!(c.enemies, [["q-1", "q-5"]]);
        assert_eq!((c.levels.len(), c.time_limit_s), (2, Some(1200)));
        assert_eq!(c.scale.map(|s| s.max), Some(800.0));
        assert_eq!((c.pretest_items, state.pretest_answers.len()), (0, 0));
        // Written again, it is the old bytes and the new fields' zeros, which
        // the release before reads as it wrote them (postcard ignores the rest).
        let mut expected = body;
        expected.extend([0; ADDED_FIELDS]);
        assert_eq!(state.body(), expected);
    }

    #[test]
    fn a_state_with_pretest_answers_reads_back_and_a_cut_one_does_not() {
        let mut config = TestConfig::resolve(TestConfigInput::default()).unwrap();
        config.pretest_items = 2;
        let state = LiveState {
            seq: 4,
            pool_id: Uuid::new_v4(),
            pool_version: 1,
            student_id: None,
            seed: 9,
            prior: (0.0, 1.0),
            theta: -0.3,
            se: 0.8,
            items: vec![1, 5, 3],
            answers: vec![1, 1, 0],
            current: Some(2),
            deadline: None,
            config,
            pretest_answers: vec![2],
        };
        let body = state.body();
        let framed = |body: Vec<u8>| Stored::Framed { seq: 4, body };
        assert_eq!(LiveState::decode(&framed(body.clone())).unwrap(), state);
        assert!(LiveState::decode(&framed(body[..10].to_vec())).is_err());
        assert!(LiveState::decode(&Stored::Garbled).is_err());
    }
}
