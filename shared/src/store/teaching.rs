//! Tutoring sessions: PostgreSQL (the session row, every transition, every
//! question) and their hot copy in Redis (context, last 20 transitions,
//! counters — three keys in one hash slot, refreshed to one TTL together).
//!
//! The context in Redis is framed like a test state (see [`super::framing`]:
//! `seq`, then JSON), so the scripts compare `seq` without decoding it.

use std::sync::LazyLock;
use std::time::Duration;

use deadpool_postgres::Pool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;
use super::framing::{frame, unframe};
use super::redis::{RedisStore, ttl_ms};
use lectern_orchestrator::{Decision, Intent, Metrics, State, TeachingContext, Transition};

/// Transitions kept in Redis (and shown by `GET /v1/teaching/sessions/{id}`).
pub const HISTORY_LEN: usize = 20;

/// A session as PostgreSQL has it: context, counters, the last transitions
/// (newest first) and when it ended — everything Redis holds, and more.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The context.
    pub context: TeachingContext,
    /// The counters.
    pub metrics: Metrics,
    /// The last [`HISTORY_LEN`] transitions, newest first.
    pub history: Vec<Transition>,
    /// When it ended, once it has.
    pub ended_at: Option<OffsetDateTime>,
}

impl Snapshot {
    /// A new session's snapshot: its context and first transition.
    pub fn new(d: &Decision) -> Self {
        Self {
            context: d.context.clone(),
            metrics: d.delta,
            history: vec![d.transition.clone()],
            ended_at: None,
        }
    }

    /// The snapshot after `d` (decided on this one) is applied.
    pub fn after(mut self, d: &Decision) -> Self {
        self.context = d.context.clone();
        self.metrics.add(&d.delta);
        self.history.insert(0, d.transition.clone());
        self.history.truncate(HISTORY_LEN);
        self
    }
}

fn ts(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn int(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn json(ctx: &TeachingContext) -> serde_json::Value {
    serde_json::to_value(ctx).expect("a context serialises")
}

/// The course a session teaches, as stored (sessions from before courses
/// were data have none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CourseRef {
    /// The course.
    pub id: Uuid,
    /// The version taught.
    pub version: i32,
}

/// What one transition changes in the student's progress through the course.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressStep {
    /// The course.
    pub course_id: Uuid,
    /// The key of the segment completed by this step, if one was.
    pub completed: Option<String>,
    /// Time since the previous transition, at most the idle limit (ms).
    pub time_ms: i64,
    /// Where the next session begins: module, sub-topic, segment.
    pub position: [i32; 3],
}

/// Records a new session, its first transition and (on a course) the
/// student's progress: one more session, begun where `d` begins (one statement).
pub async fn insert(
    db: &Pool,
    d: &Decision,
    org: Option<Uuid>,
    course: Option<CourseRef>,
) -> Result<(), StoreError> {
    let c = &d.context;
    let t = &d.transition;
    let client = db.get().await?;
    let statement = client
        .prepare_cached(
            "WITH s AS (
                 INSERT INTO teaching_sessions (id, user_id, course_id, module_index, sub_topic_index,
                     total_segments, segment_index, state, seq, context, started_at, updated_at, org_id,
                     course_version)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $13, $15)
                 RETURNING id),
             progress AS (
                 INSERT INTO course_progress (user_id, course_id, org_id, sessions, module_index,
                     sub_topic_index, segment_index, last_session_id, started_at, updated_at)
                 SELECT $2, $14, $13, 1, $4, $5, $7, id, $11, $11 FROM s WHERE $14::uuid IS NOT NULL
                 ON CONFLICT (user_id, course_id) DO UPDATE SET
                     sessions = course_progress.sessions + 1,
                     module_index = excluded.module_index, sub_topic_index = excluded.sub_topic_index,
                     segment_index = excluded.segment_index, last_session_id = excluded.last_session_id,
                     updated_at = excluded.updated_at)
             INSERT INTO teaching_transitions (session_id, seq, to_state, action, segment_index, confusion, at)
             SELECT id, $9, $8, $12, $7, 0, $11 FROM s",
        )
        .await?;
    client
        .execute(
            &statement,
            &[
                &c.session_id,
                &c.user_id,
                &c.course_id,
                &int(c.module_index),
                &int(c.sub_topic_index),
                &int(c.total_segments),
                &int(c.segment_index),
                &c.state.as_str(),
                &int(c.seq),
                &json(c),
                &ts(t.at_ms),
                &t.action.as_str(),
                &org,
                &course.map(|c| c.id),
                &course.map(|c| c.version),
            ],
        )
        .await?;
    Ok(())
}

/// Applies `d` if the session is still at `from_seq` (the seq it was decided
/// on); false, and nothing written, when another input got there first. The
/// session row, the transition and (for a question) the question are written
/// in one statement: one round trip, one implicit transaction. So is the
/// student's progress through the course (`progress`): it moves exactly when
/// the transition is recorded, however many inputs race.
pub async fn apply(
    db: &Pool,
    from_seq: u32,
    d: &Decision,
    progress: Option<&ProgressStep>,
) -> Result<bool, StoreError> {
    let c = &d.context;
    let t = &d.transition;
    let m = &d.delta;
    // Every question is answered (answer_question): it gets a row of its own.
    let question = (t.intent == Some(Intent::Question))
        .then_some(t.input.as_deref())
        .flatten();
    let client = db.get().await?;
    let statement = client
        .prepare_cached(
            "WITH moved AS (
                 UPDATE teaching_sessions SET
                     segment_index = $3, state = $4, seq = $5, context = $6,
                     inputs = inputs + $7, questions_asked = questions_asked + $8,
                     interruptions = interruptions + $9, repeats = repeats + $10,
                     skips = skips + $11, confusions = confusions + $12, pauses = pauses + $13,
                     updated_at = $14,
                     ended_at = CASE WHEN $4 = 'ended' THEN $14 ELSE ended_at END
                 WHERE id = $1 AND seq = $2
                 RETURNING id),
             transition AS (
                 INSERT INTO teaching_transitions (session_id, seq, input, intent, from_state,
                     to_state, action, segment_index, confusion, at)
                 SELECT id, $5, $15, $16, $17, $4, $18, $3, $19, $14 FROM moved
                 RETURNING session_id),
             question AS (
                 INSERT INTO teaching_questions (session_id, seq, question, segment_index, asked_at)
                 SELECT session_id, $5, $20, $3, $14 FROM transition WHERE $20::text IS NOT NULL),
             progress AS (
                 UPDATE course_progress SET
                     completed = CASE WHEN $22::text IS NULL OR $22::text = ANY(completed)
                                      THEN completed ELSE completed || $22::text END,
                     time_spent_ms = time_spent_ms + $23, questions_asked = questions_asked + $8,
                     module_index = $24, sub_topic_index = $25, segment_index = $26,
                     last_session_id = $1, updated_at = $14
                 WHERE user_id = $27 AND course_id = $21 AND EXISTS (SELECT 1 FROM moved))
             SELECT count(*) FROM moved",
        )
        .await?;
    let row = client
        .query_one(
            &statement,
            &[
                &c.session_id,
                &int(from_seq),
                &int(c.segment_index),
                &c.state.as_str(),
                &int(c.seq),
                &json(c),
                &int(m.inputs),
                &int(m.questions_asked),
                &int(m.interruptions),
                &int(m.repeats),
                &int(m.skips),
                &int(m.confusions),
                &int(m.pauses),
                &ts(t.at_ms),
                &t.input,
                &t.intent.map(|i| i.as_str()),
                &t.from.map(State::as_str),
                &t.action.as_str(),
                &i16::from(t.confusion),
                &question,
                &progress.map(|p| p.course_id),
                &progress.and_then(|p| p.completed.as_deref()),
                &progress.map_or(0, |p| p.time_ms),
                &progress.map_or(0, |p| p.position[0]),
                &progress.map_or(0, |p| p.position[1]),
                &progress.map_or(0, |p| p.position[2]),
                &c.user_id,
            ],
        )
        .await?;
    Ok(row.get::<_, i64>(0) == 1)
}

/// A session from PostgreSQL: row and last transitions in one statement (one snapshot).
pub async fn load(db: &Pool, id: Uuid) -> Result<Option<Snapshot>, StoreError> {
    let client = db.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT s.context, s.inputs, s.questions_asked, s.interruptions, s.repeats, s.skips,
                    s.confusions, s.pauses, s.ended_at,
                    (SELECT coalesce(json_agg(json_build_object(
                         'seq', t.seq, 'at_ms', (extract(epoch FROM t.at) * 1000)::bigint,
                         'input', t.input, 'intent', t.intent, 'from', t.from_state,
                         'to', t.to_state, 'action', t.action, 'segment_index', t.segment_index,
                         'confusion', t.confusion) ORDER BY t.seq DESC), '[]'::json)
                     FROM (SELECT * FROM teaching_transitions WHERE session_id = s.id
                           ORDER BY seq DESC LIMIT 20) t) AS history
             FROM teaching_sessions s WHERE s.id = $1",
        )
        .await?;
    let Some(row) = client.query_opt(&statement, &[&id]).await? else {
        return Ok(None);
    };
    let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("teaching session {id}: {e}"));
    let count = |i: usize| u32::try_from(row.get::<_, i32>(i)).unwrap_or(0);
    Ok(Some(Snapshot {
        context: serde_json::from_value(row.get("context")).map_err(corrupt)?,
        metrics: Metrics {
            inputs: count(1),
            questions_asked: count(2),
            interruptions: count(3),
            repeats: count(4),
            skips: count(5),
            confusions: count(6),
            pauses: count(7),
        },
        ended_at: row.get("ended_at"),
        history: serde_json::from_value(row.get("history")).map_err(corrupt)?,
    }))
}

/// Records the answer generated for the question asked at `seq`.
pub async fn set_answer(
    db: &Pool,
    id: Uuid,
    seq: u32,
    answer: &str,
    model: &str,
    cached: bool,
) -> Result<(), StoreError> {
    let client = db.get().await?;
    let statement = client
        .prepare_cached(
            "UPDATE teaching_questions SET answer = $3, model = $4, cached = $5, answered_at = now()
             WHERE session_id = $1 AND seq = $2",
        )
        .await?;
    client
        .execute(&statement, &[&id, &int(seq), &answer, &model, &cached])
        .await?;
    Ok(())
}

/// Sessions started since a time, as `GET /v1/admin/teaching/stats` shows them.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Aggregates {
    /// Sessions started.
    pub sessions: i64,
    /// Of them, ended.
    pub ended: i64,
    /// Questions asked per session.
    pub avg_questions_per_session: f64,
    /// Interruptions per input, over all their inputs.
    pub interruption_rate: f64,
    /// Mean length of the ended ones, in seconds.
    pub avg_duration_s: f64,
}

/// The aggregates over sessions started at or after `since`.
pub async fn aggregates(db: &Pool, since: OffsetDateTime) -> Result<Aggregates, StoreError> {
    let client = db.get().await?;
    let row = client
        .query_one(
            "SELECT count(*),
                    count(ended_at),
                    coalesce(avg(questions_asked), 0)::float8,
                    coalesce(sum(interruptions)::float8 / nullif(sum(inputs), 0), 0)::float8,
                    coalesce(avg(extract(epoch FROM ended_at - started_at)), 0)::float8
             FROM teaching_sessions WHERE started_at >= $1",
            &[&since],
        )
        .await?;
    Ok(Aggregates {
        sessions: row.get(0),
        ended: row.get(1),
        avg_questions_per_session: row.get(2),
        interruption_rate: row.get(3),
        avg_duration_s: row.get(4),
    })
}

/// Advances the Redis copy from `from_seq` by one transition: sets the
/// context, pushes the transition (keeping 20), adds the counters' changes,
/// and refreshes the TTL of all three. Returns 1 written, 0 something missing
/// (rebuild), -1 Redis is already past `from_seq` (a rebuild included this
/// transition), -2 Redis is behind (rebuild).
static ADVANCE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local cur = redis.call('GET', KEYS[1])
        if not cur or redis.call('EXISTS', KEYS[2]) == 0 or redis.call('EXISTS', KEYS[3]) == 0 then
            return 0
        end
        local seq = struct.unpack('>I4', cur)
        local want = tonumber(ARGV[1])
        if seq > want then return -1 end
        if seq < want then return -2 end
        redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4])
        redis.call('LPUSH', KEYS[2], ARGV[3])
        redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[5]) - 1)
        for i = 6, #ARGV, 2 do
            redis.call('HINCRBY', KEYS[3], ARGV[i], ARGV[i + 1])
        end
        redis.call('PEXPIRE', KEYS[2], ARGV[4])
        redis.call('PEXPIRE', KEYS[3], ARGV[4])
        return 1
        ",
    )
});

/// Writes a whole snapshot unless Redis already holds this seq or a later one
/// (racing rebuilds and late writers never roll a session back). ARGV: seq,
/// context, ttl, number of transitions, the transitions (newest first), then
/// counter name/value pairs. Returns 1 written, 0 left alone.
static REPLACE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local cur = redis.call('GET', KEYS[1])
        if cur and struct.unpack('>I4', cur) >= tonumber(ARGV[1])
            and redis.call('EXISTS', KEYS[2]) == 1 and redis.call('EXISTS', KEYS[3]) == 1 then
            return 0
        end
        redis.call('DEL', KEYS[2], KEYS[3])
        redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
        local n = tonumber(ARGV[4])
        redis.call('RPUSH', KEYS[2], unpack(ARGV, 5, 4 + n))
        redis.call('HSET', KEYS[3], unpack(ARGV, 5 + n, #ARGV))
        redis.call('PEXPIRE', KEYS[2], ARGV[3])
        redis.call('PEXPIRE', KEYS[3], ARGV[3])
        return 1
        ",
    )
});

/// What [`advance`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advanced {
    /// Written.
    Written,
    /// Redis already had this transition (a rebuild got there first).
    Ahead,
    /// Redis is missing the session or is behind: rebuild it.
    NeedsRebuild,
}

/// The session's copy in Redis, as read: context, history, counters.
#[derive(Debug, Clone, PartialEq)]
pub struct Hot {
    /// The context.
    pub context: TeachingContext,
    /// The last transitions, newest first.
    pub history: Vec<Transition>,
    /// The counters.
    pub metrics: Metrics,
}

fn encode(ctx: &TeachingContext) -> Vec<u8> {
    frame(
        ctx.seq,
        &serde_json::to_vec(ctx).expect("a context serialises"),
    )
}

fn decode(raw: &[u8]) -> Option<TeachingContext> {
    let (_, body) = unframe(raw)?;
    serde_json::from_slice(body).ok()
}

fn transition_json(t: &Transition) -> Vec<u8> {
    serde_json::to_vec(t).expect("a transition serialises")
}

/// The context alone (what an input decides on; `None`: not in Redis, or
/// unreadable), noting the session in the live index in the same round trip.
pub async fn context(
    store: &RedisStore,
    id: Uuid,
    now_ms: i64,
    ttl: Duration,
) -> Result<Option<TeachingContext>, StoreError> {
    let key = store.keys().teaching_context(id);
    let mut pipe = redis::pipe();
    pipe.cmd("GET").arg(&key);
    index_into(&mut pipe, store, id, now_ms, ttl);
    let (raw,): (Option<Vec<u8>>,) = store
        .round_trip(async |c| pipe.query_async(c).await)
        .await?;
    Ok(raw.as_deref().and_then(decode))
}

/// The whole copy, refreshing the TTL of all three keys; `None` when any part
/// is missing or unreadable (then it is rebuilt from PostgreSQL).
pub async fn hot(store: &RedisStore, id: Uuid, ttl: Duration) -> Result<Option<Hot>, StoreError> {
    let keys = store.keys();
    let (ctx, hist, metrics) = (
        keys.teaching_context(id),
        keys.teaching_history(id),
        keys.teaching_metrics(id),
    );
    let ms = ttl_ms(ttl);
    // Context, transitions, counters as they come off the wire.
    type Raw = (Option<Vec<u8>>, Vec<Vec<u8>>, Vec<(String, u32)>);
    let (raw, history, fields): Raw = store
        .round_trip(async |c| {
            redis::pipe()
                .cmd("GET")
                .arg(&ctx)
                .cmd("LRANGE")
                .arg(&hist)
                .arg(0)
                .arg(HISTORY_LEN - 1)
                .cmd("HGETALL")
                .arg(&metrics)
                .cmd("PEXPIRE")
                .arg(&ctx)
                .arg(ms)
                .ignore()
                .cmd("PEXPIRE")
                .arg(&hist)
                .arg(ms)
                .ignore()
                .cmd("PEXPIRE")
                .arg(&metrics)
                .arg(ms)
                .ignore()
                .query_async(c)
                .await
        })
        .await?;
    let Some(context) = raw.as_deref().and_then(decode) else {
        return Ok(None);
    };
    if history.is_empty() || fields.is_empty() {
        return Ok(None);
    }
    let Ok(history) = history
        .iter()
        .map(|t| serde_json::from_slice(t))
        .collect::<Result<Vec<Transition>, _>>()
    else {
        return Ok(None);
    };
    Ok(Some(Hot {
        context,
        history,
        metrics: Metrics::from_fields(fields.iter().map(|(k, v)| (k.as_str(), *v))),
    }))
}

/// `script` on a session's three keys: context, history, metrics.
fn on_session<'s>(
    script: &'s redis::Script,
    store: &RedisStore,
    id: Uuid,
) -> redis::ScriptInvocation<'s> {
    let keys = store.keys();
    let mut invocation = script.key(keys.teaching_context(id));
    invocation
        .key(keys.teaching_history(id))
        .key(keys.teaching_metrics(id));
    invocation
}

/// Applies one decided transition to the Redis copy (see [`ADVANCE`]).
pub async fn advance(
    store: &RedisStore,
    from_seq: u32,
    d: &Decision,
    ttl: Duration,
) -> Result<Advanced, StoreError> {
    let mut invocation = on_session(&ADVANCE, store, d.context.session_id);
    invocation
        .arg(from_seq)
        .arg(encode(&d.context))
        .arg(transition_json(&d.transition))
        .arg(ttl_ms(ttl))
        .arg(HISTORY_LEN);
    for (name, value) in d.delta.fields() {
        if value != 0 {
            invocation.arg(name).arg(value);
        }
    }
    let outcome: i64 = store
        .round_trip(async |c| invocation.invoke_async(c).await)
        .await?;
    Ok(match outcome {
        1 => Advanced::Written,
        -1 => Advanced::Ahead,
        _ => Advanced::NeedsRebuild,
    })
}

/// Writes a whole snapshot to Redis unless it already holds this seq or a
/// later one; true when written.
pub async fn replace(store: &RedisStore, s: &Snapshot, ttl: Duration) -> Result<bool, StoreError> {
    let mut invocation = on_session(&REPLACE, store, s.context.session_id);
    invocation
        .arg(s.context.seq)
        .arg(encode(&s.context))
        .arg(ttl_ms(ttl))
        .arg(s.history.len());
    for t in &s.history {
        invocation.arg(transition_json(t));
    }
    for (name, value) in s.metrics.fields() {
        invocation.arg(name).arg(value);
    }
    let written: i64 = store
        .round_trip(async |c| invocation.invoke_async(c).await)
        .await?;
    Ok(written == 1)
}

/// Notes the session as live until `ttl` from now in the index the admin
/// stats count (a key of its own slot, so never inside a session's script).
pub async fn index(
    store: &RedisStore,
    id: Uuid,
    now_ms: i64,
    ttl: Duration,
) -> Result<(), StoreError> {
    let mut pipe = redis::pipe();
    index_into(&mut pipe, store, id, now_ms, ttl);
    store
        .round_trip(async |c| pipe.query_async::<()>(c).await)
        .await
}

fn index_into(
    pipe: &mut redis::Pipeline,
    store: &RedisStore,
    id: Uuid,
    now_ms: i64,
    ttl: Duration,
) {
    let key = store.keys().teaching_sessions();
    pipe.cmd("ZADD")
        .arg(&key)
        .arg(now_ms + ttl_ms(ttl) as i64)
        .arg(id.to_string())
        .ignore()
        .cmd("PEXPIRE")
        .arg(&key)
        .arg(ttl_ms(ttl))
        .ignore();
}

/// Drops an ended session from Redis: its keys and its index entry.
pub async fn remove(store: &RedisStore, id: Uuid) -> Result<(), StoreError> {
    let keys = store.keys();
    let session_keys = [
        keys.teaching_context(id),
        keys.teaching_history(id),
        keys.teaching_metrics(id),
        keys.teaching_connections(id),
    ];
    let index = keys.teaching_sessions();
    store
        .round_trip(async |c| {
            redis::pipe()
                .cmd("DEL")
                .arg(&session_keys)
                .ignore()
                .cmd("ZREM")
                .arg(&index)
                .arg(id.to_string())
                .ignore()
                .query_async::<()>(c)
                .await
        })
        .await
}

/// Live sessions: the index's unexpired members (expired ones are pruned first).
pub async fn live_count(store: &RedisStore, now_ms: i64) -> Result<u64, StoreError> {
    let key = store.keys().teaching_sessions();
    let (count,): (u64,) = store
        .round_trip(async |c| {
            redis::pipe()
                .cmd("ZREMRANGEBYSCORE")
                .arg(&key)
                .arg("-inf")
                .arg(now_ms)
                .ignore()
                .cmd("ZCARD")
                .arg(&key)
                .query_async(c)
                .await
        })
        .await?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lectern_orchestrator::{self as orchestrator, Input, Lesson};

    #[test]
    fn a_snapshot_advances_as_the_decision_says() {
        let d0 = orchestrator::start(
            Uuid::nil(),
            Uuid::nil(),
            Lesson {
                course_id: "c".into(),
                module_index: 0,
                sub_topic_index: 0,
                total_segments: 30,
                segment_index: 0,
                course_version: None,
            },
            0,
        );
        let mut s = Snapshot::new(&d0);
        for i in 0..25 {
            let d = orchestrator::decide(&s.context, &Input::new("why?"), i).unwrap();
            s = s.after(&d);
        }
        assert_eq!(s.context.seq, 25);
        assert_eq!(s.metrics.questions_asked, 25);
        assert_eq!(s.history.len(), HISTORY_LEN);
        assert_eq!(s.history[0].seq, 25);
        assert_eq!(s.history[19].seq, 6);
    }

    #[test]
    fn contexts_frame_their_seq() {
        let d = orchestrator::start(
            Uuid::new_v4(),
            Uuid::new_v4(),
            Lesson {
                course_id: "c".into(),
                module_index: 0,
                sub_topic_index: 0,
                total_segments: 3,
                segment_index: 0,
                course_version: None,
            },
            5,
        );
        let raw = encode(&d.context);
        assert_eq!(unframe(&raw).unwrap().0, 0);
        assert_eq!(decode(&raw), Some(d.context));
        assert_eq!(decode(b"\0\0\0\0{"), None);
    }
}
