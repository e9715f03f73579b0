//! The audit trail (table `audit_log`, V17): one append-only row per
//! recorded action, written by [`record`] on the connection or transaction of
//! the change itself, so an entry exists exactly when its change committed.
//! Who did it, from where and in which request reach [`record`] through a
//! task-local [`Context`] set around each request (as the idempotency claim
//! does), so services need no extra parameter; outside a request (the
//! sweeper, a calibration worker) the actor is the system (NULL).

use deadpool_postgres::{GenericClient, Pool};
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;

/// The request being handled: who, from where, which request.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The signed-in caller, if any.
    pub actor: Option<Uuid>,
    /// The client address.
    pub ip: Option<String>,
    /// API Gateway's request id (a new UUID locally).
    pub request_id: String,
    /// The route, as `METHOD /path/{id}` (a read's entry names it).
    pub route: String,
}

tokio::task_local! {
    static CONTEXT: Context;
}

/// Runs `f` with `context` as the request's audit context.
pub async fn with_context<F: Future>(context: Context, f: F) -> F::Output {
    CONTEXT.scope(context, f).await
}

/// The current request's context (empty outside a request).
pub fn context() -> Context {
    CONTEXT.try_with(Context::clone).unwrap_or_default()
}

/// One action to record.
#[derive(Debug, Clone)]
pub struct Entry {
    action: &'static str,
    resource_type: &'static str,
    resource_id: Option<String>,
    organization: Option<Uuid>,
    subject: Option<Uuid>,
    actor: Option<Option<Uuid>>,
    detail: Value,
}

impl Entry {
    /// `action` (`<resource>.<verb>`) on the resource `resource_type` `resource_id`.
    pub fn new(
        action: &'static str,
        resource_type: &'static str,
        resource_id: impl ToString,
    ) -> Self {
        Self {
            action,
            resource_type,
            resource_id: Some(resource_id.to_string()),
            organization: None,
            subject: None,
            actor: None,
            detail: Value::Object(Default::default()),
        }
    }

    /// `action` on a resource without an id (a failed sign-in's session).
    pub fn of(action: &'static str, resource_type: &'static str) -> Self {
        Self {
            resource_id: None,
            ..Self::new(action, resource_type, "")
        }
    }

    /// The resource's organization.
    pub fn org(mut self, org: Option<Uuid>) -> Self {
        self.organization = org;
        self
    }

    /// The person the entry is about.
    pub fn subject(mut self, subject: Uuid) -> Self {
        self.subject = Some(subject);
        self
    }

    /// Who did it, when not the signed-in caller (a sign-in: the user who
    /// signed in; `None`: nobody known).
    pub fn actor(mut self, actor: Option<Uuid>) -> Self {
        self.actor = Some(actor);
        self
    }

    /// What changed (never a secret, a token or an answer key).
    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }
}

const INSERT: &str = "INSERT INTO audit_log (actor_id, action, resource_type, resource_id,
                                             organization_id, subject_id, ip, request_id, detail)
                      VALUES ($1, $2, $3, $4, $5, $6, $7::text::inet, $8, $9)";

/// Records `entry` on `client`: pass the transaction of the change it records.
pub async fn record(client: &impl GenericClient, entry: Entry) -> Result<(), StoreError> {
    let context = context();
    let actor = entry.actor.unwrap_or(context.actor);
    let request_id = (!context.request_id.is_empty()).then_some(context.request_id);
    let statement = client.prepare_cached(INSERT).await?;
    client
        .execute(
            &statement,
            &[
                &actor,
                &entry.action,
                &entry.resource_type,
                &entry.resource_id,
                &entry.organization,
                &entry.subject,
                &context.ip,
                &request_id,
                &entry.detail,
            ],
        )
        .await?;
    Ok(())
}

/// Records `entry` on its own (an action that changes nothing else: a read,
/// a failed sign-in, a cache operation).
pub async fn record_alone(db: &Pool, entry: Entry) -> Result<(), StoreError> {
    let client = db.get().await?;
    record(&client, entry).await
}

/// One recorded entry, as read back.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    /// Increasing with time; the paging cursor.
    pub id: i64,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who (`None`: anonymous or the system).
    pub actor_id: Option<Uuid>,
    /// What.
    pub action: String,
    /// Which resource.
    pub resource_type: String,
    /// Its id.
    pub resource_id: Option<String>,
    /// Its organization.
    pub organization_id: Option<Uuid>,
    /// Whom it concerns.
    pub subject_id: Option<Uuid>,
    /// From where.
    pub ip: Option<String>,
    /// Which request.
    pub request_id: Option<String>,
    /// The change.
    pub detail: Value,
}

/// What to read: every field narrows.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only entries an admin of this organization may read: the
    /// organization's own, and those of no organization about its members.
    pub organization: Option<Uuid>,
    /// By this actor.
    pub actor: Option<Uuid>,
    /// About this person.
    pub subject: Option<Uuid>,
    /// This action, or with a trailing `.`, every action of a resource (`pool.`).
    pub action: Option<String>,
    /// On this resource type.
    pub resource_type: Option<String>,
    /// On this resource.
    pub resource_id: Option<String>,
    /// At or after.
    pub since: Option<OffsetDateTime>,
    /// Before.
    pub until: Option<OffsetDateTime>,
    /// Older than this entry id (the previous page's last).
    pub before: Option<i64>,
}

/// Up to `limit` entries matching `filter`, newest first.
pub async fn list(db: &Pool, filter: &Filter, limit: i64) -> Result<Vec<Recorded>, StoreError> {
    let client = db.get().await?;
    let action_prefix = filter
        .action
        .as_deref()
        .filter(|a| a.ends_with('.'))
        .map(|a| format!("{}%", a.replace('_', "\\_")));
    let action_exact = filter.action.as_deref().filter(|a| !a.ends_with('.'));
    let rows = client
        .query(
            "SELECT id, at, actor_id, action, resource_type, resource_id, organization_id,
                    subject_id, host(ip), request_id, detail
             FROM audit_log
             WHERE ($1::uuid IS NULL
                    OR organization_id = $1
                    OR (organization_id IS NULL AND subject_id IN (
                          SELECT user_id FROM memberships WHERE org_id = $1)))
               AND ($2::uuid IS NULL OR actor_id = $2)
               AND ($3::uuid IS NULL OR subject_id = $3)
               AND ($4::text IS NULL OR action = $4)
               AND ($5::text IS NULL OR action LIKE $5)
               AND ($6::text IS NULL OR resource_type = $6)
               AND ($7::text IS NULL OR resource_id = $7)
               AND ($8::timestamptz IS NULL OR at >= $8)
               AND ($9::timestamptz IS NULL OR at < $9)
               AND ($10::bigint IS NULL OR id < $10)
             ORDER BY id DESC
             LIMIT $11",
            &[
                &filter.organization,
                &filter.actor,
                &filter.subject,
                &action_exact,
                &action_prefix,
                &filter.resource_type,
                &filter.resource_id,
                &filter.since,
                &filter.until,
                &filter.before,
                &limit,
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Recorded {
            id: r.get(0),
            at: r.get(1),
            actor_id: r.get(2),
            action: r.get(3),
            resource_type: r.get(4),
            resource_id: r.get(5),
            organization_id: r.get(6),
            subject_id: r.get(7),
            ip: r.get(8),
            request_id: r.get(9),
            detail: r.get(10),
        })
        .collect())
}

/// Partition upkeep: the partitions of this month and the next `ahead`
/// exist, and those wholly before `cutoff` are dropped (retention). Returns
/// (partitions made, partitions dropped).
pub async fn maintain(
    db: &Pool,
    ahead: i32,
    cutoff: OffsetDateTime,
) -> Result<(i64, i32), StoreError> {
    let client = db.get().await?;
    let made: i64 = client
        .query_one(
            "SELECT count(*) FILTER (WHERE made)
             FROM (SELECT audit_ensure_partition((now() + make_interval(months => m))::date) AS made
                   FROM generate_series(0, $1) AS m) AS months",
            &[&ahead],
        )
        .await?
        .get(0);
    let dropped: i32 = client
        .query_one("SELECT audit_drop_before($1)", &[&cutoff])
        .await?
        .get(0);
    Ok((made, dropped))
}
