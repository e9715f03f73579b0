//! Data rights (issue 22): what PostgreSQL and Redis hold of one person, read
//! for their export, and removed when they are erased. PostgreSQL first, in
//! one transaction (V18 `erasures` records what Redis must still lose), Redis
//! after; [`purge`] is safe to repeat until `redis_cleared_at` is set.

use deadpool_postgres::Pool;
use serde_json::Value;
use uuid::Uuid;

use super::StoreError;
use super::audit::{self, Entry};
use super::outbox;
use super::redis::RedisStore;
use crate::digest::sha256_hex;

/// The parts of a person's data export PostgreSQL builds as JSON: their
/// account, organizations and classes, long-term proficiency and tutoring
/// sessions (with every transition and question), and their tests' ids
/// (oldest first) for the caller to report on.
pub struct Exported {
    pub account: Value,
    pub memberships: Value,
    pub classes: Value,
    pub proficiency: Value,
    pub tutoring_sessions: Value,
    pub course_progress: Value,
    pub tests: Vec<Uuid>,
}

/// `user`'s data, or `None` when there is no such user. One statement.
pub async fn export(db: &Pool, user: Uuid) -> Result<Option<Exported>, StoreError> {
    let client = db.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT jsonb_build_object(
                        'id', u.id, 'email', u.email, 'display_name', u.display_name,
                        'role', u.role, 'created_at', u.created_at, 'disabled_at', u.disabled_at,
                        'sign_in_providers', ARRAY(SELECT provider FROM user_identities
                                                   WHERE user_id = u.id ORDER BY provider)),
                    coalesce((SELECT jsonb_agg(jsonb_build_object(
                                  'organization_id', o.id, 'name', o.name, 'role', m.role,
                                  'joined_at', m.created_at) ORDER BY o.name, o.id)
                              FROM memberships m JOIN organizations o ON o.id = m.org_id
                              WHERE m.user_id = u.id), '[]'),
                    coalesce((SELECT jsonb_agg(jsonb_build_object(
                                  'class_id', c.id, 'organization_id', c.org_id, 'name', c.name)
                                  ORDER BY c.name, c.id)
                              FROM class_students s JOIN classes c ON c.id = s.class_id
                              WHERE s.user_id = u.id), '[]'),
                    coalesce((SELECT jsonb_agg(jsonb_build_object(
                                  'organization_id', p.org_id,
                                  'concept', nullif(p.concept, ''), 'theta', p.theta, 'se', p.se,
                                  'n', p.n, 'updated_at', p.updated_at)
                                  ORDER BY p.org_id, p.concept)
                              FROM student_proficiencies p WHERE p.student_id = u.id), '[]'),
                    coalesce((SELECT jsonb_agg(jsonb_build_object(
                                  'session_id', t.id, 'organization_id', t.org_id,
                                  'course_id', t.course_id, 'state', t.state,
                                  'progress', jsonb_build_object(
                                      'module_index', t.module_index,
                                      'sub_topic_index', t.sub_topic_index,
                                      'segment_index', t.segment_index,
                                      'total_segments', t.total_segments),
                                  'counts', jsonb_build_object(
                                      'inputs', t.inputs, 'questions_asked', t.questions_asked,
                                      'interruptions', t.interruptions, 'repeats', t.repeats,
                                      'skips', t.skips, 'confusions', t.confusions,
                                      'pauses', t.pauses),
                                  'started_at', t.started_at, 'updated_at', t.updated_at,
                                  'ended_at', t.ended_at,
                                  'transitions', coalesce((
                                      SELECT jsonb_agg(jsonb_build_object(
                                          'seq', r.seq, 'input', r.input, 'intent', r.intent,
                                          'from_state', r.from_state, 'to_state', r.to_state,
                                          'action', r.action, 'segment_index', r.segment_index,
                                          'confusion', r.confusion, 'at', r.at) ORDER BY r.seq)
                                      FROM teaching_transitions r WHERE r.session_id = t.id), '[]'),
                                  'questions', coalesce((
                                      SELECT jsonb_agg(jsonb_build_object(
                                          'seq', q.seq, 'question', q.question,
                                          'segment_index', q.segment_index, 'answer', q.answer,
                                          'asked_at', q.asked_at, 'answered_at', q.answered_at)
                                          ORDER BY q.seq)
                                      FROM teaching_questions q WHERE q.session_id = t.id), '[]'))
                                  ORDER BY t.started_at, t.id)
                              FROM teaching_sessions t WHERE t.user_id = u.id), '[]'),
                    coalesce((SELECT jsonb_agg(jsonb_build_object(
                                  'course_id', p.course_id, 'organization_id', p.org_id,
                                  'completed', p.completed, 'time_spent_ms', p.time_spent_ms,
                                  'questions_asked', p.questions_asked, 'sessions', p.sessions,
                                  'module_index', p.module_index,
                                  'sub_topic_index', p.sub_topic_index,
                                  'segment_index', p.segment_index,
                                  'started_at', p.started_at, 'updated_at', p.updated_at)
                                  ORDER BY p.started_at, p.course_id)
                              FROM course_progress p WHERE p.user_id = u.id), '[]'),
                    ARRAY(SELECT id FROM test_sessions WHERE student_id = u.id
                          ORDER BY started_at, id)
             FROM users u WHERE u.id = $1",
        )
        .await?;
    Ok(client
        .query_opt(&statement, &[&user])
        .await?
        .map(|row| Exported {
            account: row.get(0),
            memberships: row.get(1),
            classes: row.get(2),
            proficiency: row.get(3),
            tutoring_sessions: row.get(4),
            course_progress: row.get(5),
            tests: row.get(6),
        }))
}

/// What Redis must lose of an erased person (beyond their auth sessions,
/// which the auth store finds by its own index).
#[derive(Debug, Clone, Default)]
pub struct RedisHalf {
    /// Their tests: each one's live state.
    pub tests: Vec<Uuid>,
    /// Their tutoring sessions: each one's state and sockets.
    pub teaching_sessions: Vec<Uuid>,
}

/// The result of [`erase`].
#[derive(Debug)]
pub enum Erasure {
    /// Erased now: the report, the revoked sessions' token hashes, the
    /// address's hash for the sign-in throttle, and what Redis must lose.
    Done {
        report: Value,
        token_hashes: Vec<String>,
        email_hash: String,
        redis: RedisHalf,
    },
    /// Erased before (a retry): the first erasure's report, whether Redis's
    /// half is still to do, and the organizations the person belonged to.
    Before {
        report: Value,
        erased_by: Option<Uuid>,
        organizations: Vec<Uuid>,
        redis: Option<RedisHalf>,
    },
    /// Not a student (staff of an organization, or a platform admin).
    NotStudent,
    /// No such user, now or before.
    NoUser,
}

/// Erases `user` in one transaction: their tests are kept, pseudonymised
/// (owner and idempotency key removed; the active ones abandoned); their
/// tutoring sessions (free text they wrote) deleted; their sessions,
/// identities, memberships, enrolments, assignments, accommodations and
/// proficiency deleted with the account; the addresses of the audit entries
/// by or about them blanked and their id taken out of queued events. One
/// `account.erased` audit entry per organization they belonged to and one
/// `user.erased` event are written; `erasures` keeps what Redis must lose.
pub async fn erase(db: &Pool, user: Uuid, erased_by: Uuid) -> Result<Erasure, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let Some(row) = tx
        .query_opt(
            "SELECT email, role = 'student'
                        AND NOT EXISTS (SELECT 1 FROM memberships
                                        WHERE user_id = $1 AND role <> 'student')
             FROM users WHERE id = $1 FOR UPDATE",
            &[&user],
        )
        .await?
    else {
        drop(tx);
        return before(&client, user).await;
    };
    if !row.get::<_, bool>(1) {
        return Ok(Erasure::NotStudent);
    }
    // What the sign-in throttle keys the address by.
    let email_hash = sha256_hex(row.get(0));
    let organizations: Vec<Uuid> = tx
        .query_one(
            "SELECT ARRAY(SELECT org_id FROM memberships WHERE user_id = $1 ORDER BY org_id)",
            &[&user],
        )
        .await?
        .get(0);
    let tests: Vec<Uuid> = first_column(
        &tx,
        "UPDATE test_sessions
             SET student_id = NULL, idempotency_key = NULL, idempotency_hash = NULL,
                 status = CASE WHEN status = 'active' THEN 'abandoned' ELSE status END,
                 ended_at = CASE WHEN status = 'active' THEN now() ELSE ended_at END,
                 updated_at = now()
             WHERE student_id = $1
             RETURNING id",
        user,
    )
    .await?;
    let teaching_sessions: Vec<Uuid> = first_column(
        &tx,
        "DELETE FROM teaching_sessions WHERE user_id = $1 RETURNING id",
        user,
    )
    .await?;
    let token_hashes: Vec<String> = first_column(
        &tx,
        "DELETE FROM auth_sessions WHERE user_id = $1 RETURNING token_hash",
        user,
    )
    .await?;
    // The audit trail keeps its entries (who did what stays provable), not
    // where the person was: the one write to existing entries.
    let addresses = tx
        .execute(
            "UPDATE audit_log SET ip = NULL
             WHERE (actor_id = $1 OR subject_id = $1) AND ip IS NOT NULL",
            &[&user],
        )
        .await?;
    tx.execute(
        "UPDATE outbox SET detail = detail - 'student_id' WHERE detail->>'student_id' = ($1::uuid)::text",
        &[&user],
    )
    .await?;
    tx.execute("DELETE FROM users WHERE id = $1", &[&user])
        .await?;
    let report = serde_json::json!({
        "user_id": user,
        "tests_pseudonymised": tests.len(),
        "tutoring_sessions_deleted": teaching_sessions.len(),
        "sessions_revoked": token_hashes.len(),
        "audit_addresses_removed": addresses,
    });
    let orgs: Vec<Option<Uuid>> = if organizations.is_empty() {
        vec![None]
    } else {
        organizations.iter().copied().map(Some).collect()
    };
    for org in orgs {
        let entry = Entry::new("account.erased", "account", user)
            .org(org)
            .subject(user)
            .detail(report.clone());
        audit::record(&tx, entry).await?;
    }
    outbox::user_erased(&tx, user).await?;
    tx.execute(
        "INSERT INTO erasures (user_id, erased_by, organizations, report, tests, teaching_sessions)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &user,
            &erased_by,
            &organizations,
            &report,
            &tests,
            &teaching_sessions,
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(Erasure::Done {
        report,
        token_hashes,
        email_hash,
        redis: RedisHalf {
            tests,
            teaching_sessions,
        },
    })
}

/// The first column of every row `sql` (about `user`, its `$1`) returns.
async fn first_column<T: for<'a> tokio_postgres::types::FromSql<'a>>(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &str,
    user: Uuid,
) -> Result<Vec<T>, StoreError> {
    Ok(tx
        .query(sql, &[&user])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// The erasure of `user` recorded before ([`Erasure::Before`]), else [`Erasure::NoUser`].
pub async fn erased(db: &Pool, user: Uuid) -> Result<Erasure, StoreError> {
    before(&**db.get().await?, user).await
}

async fn before(client: &tokio_postgres::Client, user: Uuid) -> Result<Erasure, StoreError> {
    let Some(row) = client
        .query_opt(
            "SELECT report, erased_by, organizations, tests, teaching_sessions,
                    redis_cleared_at IS NULL
             FROM erasures WHERE user_id = $1",
            &[&user],
        )
        .await?
    else {
        return Ok(Erasure::NoUser);
    };
    Ok(Erasure::Before {
        report: row.get(0),
        erased_by: row.get(1),
        organizations: row.get(2),
        redis: row.get::<_, bool>(5).then(|| RedisHalf {
            tests: row.get(3),
            teaching_sessions: row.get(4),
        }),
    })
}

/// Whether `caller` is an org admin of any of `orgs`.
pub async fn administers_any(db: &Pool, caller: Uuid, orgs: &[Uuid]) -> Result<bool, StoreError> {
    let client = db.get().await?;
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM memberships
                            WHERE user_id = $1 AND org_id = ANY($2) AND role = 'org_admin')",
            &[&caller, &orgs],
        )
        .await?
        .get(0))
}

/// Erasures whose Redis half is still to do (oldest first, at most `limit`).
pub async fn pending(db: &Pool, limit: i64) -> Result<Vec<(Uuid, RedisHalf)>, StoreError> {
    let client = db.get().await?;
    Ok(client
        .query(
            "SELECT user_id, tests, teaching_sessions FROM erasures
             WHERE redis_cleared_at IS NULL ORDER BY erased_at LIMIT $1",
            &[&limit],
        )
        .await?
        .iter()
        .map(|r| {
            (
                r.get(0),
                RedisHalf {
                    tests: r.get(1),
                    teaching_sessions: r.get(2),
                },
            )
        })
        .collect())
}

/// Notes that Redis's half of `user`'s erasure is done.
pub async fn cleared(db: &Pool, user: Uuid) -> Result<(), StoreError> {
    let client = db.get().await?;
    client
        .execute(
            "UPDATE erasures SET redis_cleared_at = now() WHERE user_id = $1",
            &[&user],
        )
        .await?;
    Ok(())
}

/// Keys to SCAN and delete per step.
const SCAN_COUNT: usize = 1000;

/// Removes from Redis what it holds of `user` besides their auth sessions:
/// their tests' and tutoring sessions' state and sockets, the sign-in
/// throttle of their address (when known), and every key naming them (cached
/// profile, history and proficiency; idempotent replies of their requests),
/// found by one SCAN. Returns how many keys went.
pub async fn purge(
    store: &RedisStore,
    user: Uuid,
    half: &RedisHalf,
    email_hash: Option<&str>,
) -> Result<u64, StoreError> {
    let keys = store.keys();
    let mut pipe = redis::pipe();
    for &session in &half.teaching_sessions {
        pipe.cmd("SMEMBERS").arg(keys.teaching_connections(session));
    }
    let sockets: Vec<Vec<String>> = if half.teaching_sessions.is_empty() {
        Vec::new()
    } else {
        store
            .round_trip(async |c| pipe.query_async(c).await)
            .await?
    };
    let mut doomed: Vec<String> = half.tests.iter().map(|&t| keys.test_state(t)).collect();
    for &session in &half.teaching_sessions {
        doomed.extend([
            keys.teaching_context(session),
            keys.teaching_history(session),
            keys.teaching_metrics(session),
            keys.teaching_connections(session),
        ]);
    }
    doomed.extend(sockets.iter().flatten().map(|c| keys.ws_connection(c)));
    doomed.extend(email_hash.map(|h| keys.login_throttle_account(h)));
    let pattern = format!("{}*{user}*", keys.prefix());
    let mut cursor = 0;
    loop {
        let (next, found) = store.scan(&pattern, cursor, SCAN_COUNT, None).await?;
        doomed.extend(found);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    if doomed.is_empty() && half.teaching_sessions.is_empty() {
        return Ok(0);
    }
    let index = keys.teaching_sessions();
    // One DEL per key: in a cluster, the keys live in different slots.
    let mut pipe = redis::pipe();
    for key in &doomed {
        pipe.cmd("DEL").arg(key);
    }
    if !half.teaching_sessions.is_empty() {
        pipe.cmd("ZREM")
            .arg(&index)
            .arg(
                half.teaching_sessions
                    .iter()
                    .map(Uuid::to_string)
                    .collect::<Vec<_>>(),
            )
            .ignore();
    }
    let deleted: Vec<u64> = store
        .round_trip(async |c| pipe.query_async(c).await)
        .await?;
    Ok(deleted.iter().sum())
}
