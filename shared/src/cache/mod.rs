//! The cache layer over Redis: get-or-load with single flight, namespaces
//! invalidated in O(1), TTL classes, hit and miss counters, and a bypass when
//! Redis is out of reach.
//!
//! - **Versioned namespaces.** Every entry belongs to a [`Namespace`] (one
//!   user's profile, one student's history or proficiency, one pool, the pool list). An entry is stored with the
//!   namespace's version at the time it was read; a write bumps the version
//!   (one `INCR`) and every older entry stops counting at once, in every
//!   container, then ages out by its TTL. Django's versioned cache keys, with
//!   the version inside the value rather than the key, so a lookup is one plain
//!   pipeline (`GET version`, `GET entry`) and never a script.
//! - **Single flight.** Concurrent misses on one entry in one process share one
//!   load (moka). Across containers, the first to miss takes a short lease
//!   (`SET NX PX`) and loads; the others poll briefly for its result, and read
//!   the source themselves if it does not come within the lease.
//! - **Atomic TTLs.** Every value is written with `SET … PX`, never SET then EXPIRE.
//! - **Counters.** `cache:stats` counts lookups and misses (source loads) per
//!   namespace kind; hits are lookups that needed no load. Both ride on round
//!   trips the cache makes anyway.
//! - **Redis down.** Lookups and fills that fail are skipped: the source
//!   serves, with one warning per interval. Invalidations that fail are kept and
//!   sent with this process's next cache round trip.

pub mod admin;
pub mod ai;
pub mod semantic;

use std::any::{Any, TypeId};
use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::config::CacheConfig;
use crate::store::cache::{self as stored, Bump, Fill, Versioned};
use crate::store::redis::RedisStore;
use crate::store::{Keys, StoreError};

/// What a namespace holds, for TTLs and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// One user's profile (TTL class: user data).
    User,
    /// One student's test history, every page (TTL class: user data).
    History,
    /// One student's long-term proficiency (TTL class: user data).
    Proficiency,
    /// One pool with its items (TTL class: static data).
    Pool,
    /// The list of pools (TTL class: dynamic lists).
    Pools,
    /// AI responses (TTL class: AI, or the operation's own).
    Ai,
    /// Versions of one course (TTL class: static data; versions never change).
    Course,
    /// Embeddings of texts (TTL class: AI).
    Embedding,
}

impl Kind {
    /// Every kind, in the order stats show them.
    pub const ALL: [Kind; 8] = [
        Kind::User,
        Kind::History,
        Kind::Proficiency,
        Kind::Pool,
        Kind::Pools,
        Kind::Ai,
        Kind::Course,
        Kind::Embedding,
    ];

    /// The name in keys and stats.
    pub fn name(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::History => "history",
            Kind::Proficiency => "proficiency",
            Kind::Pool => "pool",
            Kind::Pools => "pools",
            Kind::Ai => "ai",
            Kind::Course => "course",
            Kind::Embedding => "embedding",
        }
    }

    /// The kind a namespace name (`user:<id>`, `pools`, …) belongs to.
    pub fn of(ns: &str) -> Option<Kind> {
        let name = ns.split_once(':').map_or(ns, |(kind, _)| kind);
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// How long this kind's entries live.
    pub fn ttl(self, config: &CacheConfig) -> Duration {
        match self {
            Kind::User | Kind::History | Kind::Proficiency => config.user_ttl,
            Kind::Pool | Kind::Course => config.static_ttl,
            Kind::Pools => config.list_ttl,
            Kind::Ai | Kind::Embedding => config.ai_ttl,
        }
    }

    /// How long one container may hold the right to fill a missing entry.
    pub fn lease(self, config: &CacheConfig) -> Duration {
        match self {
            Kind::Ai | Kind::Embedding => config.ai_lease,
            _ => config.lease,
        }
    }

    /// The `cache:stats` field counting lookups.
    pub fn lookups_field(self) -> String {
        format!("{}:lookups", self.name())
    }

    /// The `cache:stats` field counting loads from the source.
    pub fn misses_field(self) -> String {
        format!("{}:misses", self.name())
    }
}

/// The operation name embeddings are kept under (`ai:embedding:<model>:<sha256>`).
pub const EMBEDDING_OP: &str = "embedding";

/// A group of entries invalidated together.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// A user's profile.
    User(Uuid),
    /// A student's test history (changes with every start, answer and end).
    History(Uuid),
    /// A student's long-term proficiency (changes when a test ends).
    Proficiency(Uuid),
    /// A pool and its items.
    Pool(Uuid),
    /// The pool list (every page).
    Pools,
    /// A course's versions (immutable: never bumped).
    Course(Uuid),
    /// Embeddings by one model: content-addressed (the text's hash), so never
    /// invalidated.
    Embedding {
        /// The embedding model.
        model: String,
    },
    /// Responses of one AI operation with one model: content-addressed, so
    /// never invalidated (no version key).
    Ai {
        /// Operation (`explain`, `hint`, …).
        op: String,
        /// Model asked.
        model: String,
    },
}

impl Namespace {
    /// Every namespace of one user: what `POST /v1/admin/cache/invalidate/user/{id}` drops.
    pub fn all_of_user(id: Uuid) -> [Namespace; 3] {
        [
            Namespace::User(id),
            Namespace::History(id),
            Namespace::Proficiency(id),
        ]
    }

    /// What it holds.
    pub fn kind(&self) -> Kind {
        match self {
            Namespace::User(_) => Kind::User,
            Namespace::History(_) => Kind::History,
            Namespace::Proficiency(_) => Kind::Proficiency,
            Namespace::Pool(_) => Kind::Pool,
            Namespace::Pools => Kind::Pools,
            Namespace::Ai { .. } => Kind::Ai,
            Namespace::Course(_) => Kind::Course,
            Namespace::Embedding { .. } => Kind::Embedding,
        }
    }

    /// The name inside the key's hash tag (`user:<id>`, …); none for AI.
    pub fn name(&self) -> Option<String> {
        match self {
            Namespace::User(id) => Some(format!("user:{id}")),
            Namespace::History(id) => Some(format!("history:{id}")),
            Namespace::Proficiency(id) => Some(format!("proficiency:{id}")),
            Namespace::Pool(id) => Some(format!("pool:{id}")),
            Namespace::Pools => Some("pools".into()),
            Namespace::Course(id) => Some(format!("course:{id}")),
            Namespace::Ai { .. } | Namespace::Embedding { .. } => None,
        }
    }

    fn entry_key(&self, keys: &Keys, key: &str) -> String {
        match (self, self.name()) {
            (Namespace::Ai { op, model }, _) => keys.ai_response(op, model, key),
            (Namespace::Embedding { model }, _) => keys.ai_response(EMBEDDING_OP, model, key),
            (_, Some(ns)) => keys.cache_entry(&ns, key),
            (_, None) => unreachable!("every namespace but AI has a name"),
        }
    }

    fn lease_key(&self, keys: &Keys, key: &str) -> String {
        match (self, self.name()) {
            (Namespace::Ai { op, model }, _) => keys.ai_lease(op, model, key),
            (Namespace::Embedding { model }, _) => keys.ai_lease(EMBEDDING_OP, model, key),
            (_, Some(ns)) => keys.cache_lease(&ns, key),
            (_, None) => unreachable!("every namespace but AI has a name"),
        }
    }

    fn version_key(&self, keys: &Keys) -> Option<String> {
        self.name().map(|ns| keys.cache_version(&ns))
    }
}

/// Most invalidations a process keeps for retry while Redis is out of reach.
const MAX_RETRIES: usize = 10_000;

/// Entries decode with serde_json: readable in `redis-cli`, and a value from
/// an older deployment that no longer decodes is simply a miss.
type Shared = Arc<dyn Any + Send + Sync>;

/// The process's side of the cache: shared by every request of the process.
pub struct Cache {
    redis: Arc<RedisStore>,
    config: CacheConfig,
    /// Loads in flight, by entry, version and type: a second miss waits for the first.
    flights: moka::future::Cache<(String, i64, TypeId), Shared>,
    /// Invalidations Redis did not take; retried with the next round trip.
    retry: Mutex<HashSet<Bump>>,
    started: Instant,
    next_warning_ms: AtomicU64,
    /// Entries this process found in Redis, and entries it loaded from the source.
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Cache {
    /// A cache over `redis`.
    pub fn new(redis: Arc<RedisStore>, config: CacheConfig) -> Self {
        Self {
            redis,
            config,
            flights: moka::future::Cache::builder()
                .max_capacity(10_000)
                // A finished load stays only long enough for its waiters to take it.
                .time_to_live(Duration::from_secs(1))
                .build(),
            retry: Mutex::new(HashSet::new()),
            started: Instant::now(),
            next_warning_ms: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Entries this process found in Redis and entries it loaded from the
    /// source (Redis unreachable included), since it started; nothing while
    /// the cache is off. The request metrics report the difference per request.
    pub fn hit_counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    fn tally(&self, hits: usize, misses: usize) {
        self.hits.fetch_add(hits as u64, Ordering::Relaxed);
        self.misses.fetch_add(misses as u64, Ordering::Relaxed);
    }

    /// The settings in force.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// The value under `key` in `ns`, else `load`'s, stored for the namespace's TTL class.
    pub async fn get_or_load<T, E, Fut>(
        &self,
        ns: &Namespace,
        key: &str,
        load: impl FnOnce() -> Fut,
    ) -> Result<Arc<T>, Arc<E>>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        E: Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>>,
    {
        let ttl = ns.kind().ttl(&self.config);
        self.get_or_load_with(ns, key, |_| Some(ttl), load).await
    }

    /// Like [`Cache::get_or_load`] for a thing that may not exist: its absence
    /// is remembered for the negative TTL (if any), its presence for the class TTL.
    pub async fn get_or_load_opt<T, E, Fut>(
        &self,
        ns: &Namespace,
        key: &str,
        load: impl FnOnce() -> Fut,
    ) -> Result<Arc<Option<T>>, Arc<E>>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        E: Send + Sync + 'static,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        let ttl = ns.kind().ttl(&self.config);
        let negative = Some(self.config.negative_ttl).filter(|t| !t.is_zero());
        self.get_or_load_with(
            ns,
            key,
            |v| if v.is_some() { Some(ttl) } else { negative },
            load,
        )
        .await
    }

    /// The general form: `ttl_of` says how long a loaded value is kept (`None`: not at all).
    pub async fn get_or_load_with<T, E, Fut>(
        &self,
        ns: &Namespace,
        key: &str,
        ttl_of: impl Fn(&T) -> Option<Duration>,
        load: impl FnOnce() -> Fut,
    ) -> Result<Arc<T>, Arc<E>>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        E: Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>>,
    {
        if !self.config.enabled {
            return load().await.map(Arc::new).map_err(Arc::new);
        }
        let keys = self.redis.keys();
        let entry = ns.entry_key(keys, key);
        let version_key = ns.version_key(keys);
        let Some(found) = self
            .lookup(ns, version_key.as_deref(), std::slice::from_ref(&entry))
            .await
        else {
            self.tally(0, 1);
            return load().await.map(Arc::new).map_err(Arc::new);
        };
        if let Some(value) = found.payloads[0].as_deref().and_then(decode::<T>) {
            self.tally(1, 0);
            return Ok(Arc::new(value));
        }
        self.tally(0, 1);
        let flight = (entry.clone(), found.version, TypeId::of::<T>());
        let shared = self
            .flights
            .try_get_with(flight, async {
                let filled = Filling {
                    cache: self,
                    ns,
                    entry: &entry,
                    lease_key: ns.lease_key(keys, key),
                    version_key: version_key.as_deref(),
                    version: found.version,
                };
                filled.run(ttl_of, load).await.map(|v| v as Shared)
            })
            .await?;
        Ok(shared
            .downcast::<T>()
            .expect("flights are keyed by type, so the value is a T"))
    }

    /// Several entries of one namespace at once: the values found, then `load`
    /// for the missing ones (one call, with their keys in order), then one fill.
    /// Misses are not coalesced: this is for batches, not hot single keys.
    pub async fn get_or_load_many<T, E, Fut>(
        &self,
        ns: &Namespace,
        keys: &[String],
        load: impl FnOnce(Vec<String>) -> Fut,
    ) -> Result<Vec<T>, E>
    where
        T: Serialize + DeserializeOwned,
        Fut: Future<Output = Result<Vec<T>, E>>,
    {
        let names = self.redis.keys();
        let version_key = ns.version_key(names);
        let entries: Vec<String> = keys.iter().map(|k| ns.entry_key(names, k)).collect();
        let found = if self.config.enabled && !keys.is_empty() {
            self.lookup(ns, version_key.as_deref(), &entries).await
        } else {
            None
        };
        let mut values: Vec<Option<T>> = match &found {
            Some(found) => found
                .payloads
                .iter()
                .map(|p| p.as_deref().and_then(decode))
                .collect(),
            None => keys.iter().map(|_| None).collect(),
        };
        let missing: Vec<usize> = (0..keys.len()).filter(|&i| values[i].is_none()).collect();
        if self.config.enabled {
            self.tally(keys.len() - missing.len(), missing.len());
        }
        if missing.is_empty() {
            return Ok(values.into_iter().flatten().collect());
        }
        let loaded = load(missing.iter().map(|&i| keys[i].clone()).collect()).await?;
        assert_eq!(
            loaded.len(),
            missing.len(),
            "load returns one value per key"
        );
        if let Some(found) = &found {
            let framed: Vec<(usize, Vec<u8>)> = missing
                .iter()
                .zip(&loaded)
                .filter_map(|(&i, v)| Some((i, encode(found.version, v)?)))
                .collect();
            let ttl = ns.kind().ttl(&self.config);
            let fills: Vec<Fill<'_>> = framed
                .iter()
                .map(|(i, value)| Fill {
                    key: &entries[*i],
                    value,
                    ttl,
                })
                .collect();
            let misses = ns.kind().misses_field();
            let version = version_key.as_deref().map(|key| Versioned { key, ttl });
            if let Err(e) = stored::fill(
                &self.redis,
                &fills,
                None,
                version,
                &[(&misses, missing.len() as i64)],
            )
            .await
            {
                self.bypassed(&e);
            }
        }
        for (i, value) in missing.into_iter().zip(loaded) {
            values[i] = Some(value);
        }
        Ok(values.into_iter().flatten().collect())
    }

    /// Invalidates namespaces (one round trip). If Redis does not take it, the
    /// bumps are kept and sent with this process's next cache round trip, and
    /// `false` is returned; entries then stay stale at most their TTL.
    pub async fn invalidate(&self, namespaces: &[Namespace]) -> bool {
        if !self.config.enabled {
            return true;
        }
        let bumps: Vec<Bump> = namespaces
            .iter()
            .filter_map(|ns| {
                Some(Bump {
                    version_key: ns.version_key(self.redis.keys())?,
                    ttl: ns.kind().ttl(&self.config),
                })
            })
            .collect();
        match stored::invalidate(&self.redis, &bumps).await {
            Ok(()) => true,
            Err(e) => {
                self.bypassed(&e);
                let mut retry = self.retry.lock().expect("retry set");
                // Past the cap an invalidation is lost: its entries stay stale at most their TTL.
                let room = MAX_RETRIES.saturating_sub(retry.len());
                retry.extend(bumps.into_iter().take(room));
                false
            }
        }
    }

    /// Adds to counters in `cache:stats` (best effort).
    pub async fn count(&self, counts: &[(&str, i64)]) {
        if let Err(e) = stored::add_counts(&self.redis, counts).await {
            self.bypassed(&e);
        }
    }

    /// Reads entries and their namespace's version (one round trip, carrying
    /// any invalidation still owed); `None` when Redis does not answer.
    async fn lookup(
        &self,
        ns: &Namespace,
        version_key: Option<&str>,
        entries: &[String],
    ) -> Option<stored::Found> {
        let retry = self.pending();
        let lookups = ns.kind().lookups_field();
        match stored::lookup(&self.redis, version_key, entries, &lookups, &retry).await {
            Ok(found) => {
                self.sent(&retry);
                Some(found)
            }
            Err(e) => {
                self.bypassed(&e);
                None
            }
        }
    }

    /// Invalidations still waiting for Redis.
    fn pending(&self) -> Vec<Bump> {
        self.retry
            .lock()
            .expect("retry set")
            .iter()
            .cloned()
            .collect()
    }

    /// Forgets invalidations Redis has now taken.
    fn sent(&self, bumps: &[Bump]) {
        if !bumps.is_empty() {
            let mut retry = self.retry.lock().expect("retry set");
            for b in bumps {
                retry.remove(b);
            }
        }
    }

    /// Notes that Redis failed and the source served: one warning per interval.
    fn bypassed(&self, e: &StoreError) {
        let now = self.started.elapsed().as_millis() as u64;
        let due = self.next_warning_ms.load(Ordering::Relaxed);
        let next = now + self.config.warn_interval.as_millis() as u64;
        if now >= due
            && self
                .next_warning_ms
                .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                error = %e,
                "cache bypassed: Redis unreachable; reads go to the source, invalidations are retried"
            );
        }
    }
}

/// One miss being filled: by us if the lease is ours (or its holder gives up).
struct Filling<'a> {
    cache: &'a Cache,
    ns: &'a Namespace,
    entry: &'a str,
    lease_key: String,
    version_key: Option<&'a str>,
    version: i64,
}

impl Filling<'_> {
    async fn run<T, E, Fut>(
        self,
        ttl_of: impl Fn(&T) -> Option<Duration>,
        load: impl FnOnce() -> Fut,
    ) -> Result<Arc<T>, E>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>>,
    {
        let redis = &self.cache.redis;
        let lease = self.ns.kind().lease(&self.cache.config);
        let holder = match stored::lease(redis, &self.lease_key, lease).await {
            Ok(holder) => holder,
            Err(e) => {
                self.cache.bypassed(&e);
                return load().await.map(Arc::new);
            }
        };
        if !holder && let Some(value) = self.wait::<T>().await {
            return Ok(Arc::new(value));
        }
        let loaded = load().await;
        let framed = match &loaded {
            Ok(v) => ttl_of(v).and_then(|ttl| Some((encode(self.version, v)?, ttl))),
            Err(_) => None,
        };
        let fills: Vec<Fill<'_>> = framed
            .iter()
            .map(|(value, ttl)| Fill {
                key: self.entry,
                value,
                ttl: *ttl,
            })
            .collect();
        let kind = self.ns.kind();
        let misses = kind.misses_field();
        let version = self.version_key.map(|key| Versioned {
            key,
            ttl: kind.ttl(&self.cache.config),
        });
        if let Err(e) = stored::fill(
            redis,
            &fills,
            holder.then_some(self.lease_key.as_str()),
            version,
            &[(&misses, 1)],
        )
        .await
        {
            self.cache.bypassed(&e);
        }
        loaded.map(Arc::new)
    }

    /// Waits for the lease holder's value: `None` if the holder gives up (its
    /// lease ends without a value) or takes longer than a lease.
    async fn wait<T: DeserializeOwned>(&self) -> Option<T> {
        let deadline = Instant::now() + self.ns.kind().lease(&self.cache.config);
        let mut pause = Duration::from_millis(5);
        while Instant::now() < deadline {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
            match stored::poll(
                &self.cache.redis,
                self.version_key,
                self.entry,
                &self.lease_key,
            )
            .await
            {
                Ok((Some(payload), _)) => return decode(&payload),
                Ok((None, true)) => continue,
                Ok((None, false)) => return None,
                Err(e) => {
                    self.cache.bypassed(&e);
                    return None;
                }
            }
        }
        None
    }
}

fn decode<T: DeserializeOwned>(payload: &[u8]) -> Option<T> {
    serde_json::from_slice(payload).ok()
}

fn encode<T: Serialize>(version: i64, value: &T) -> Option<Vec<u8>> {
    serde_json::to_vec(value)
        .ok()
        .map(|payload| stored::frame(version, &payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names_carry_their_kind() {
        let id = Uuid::new_v4();
        for ns in [
            Namespace::User(id),
            Namespace::History(id),
            Namespace::Proficiency(id),
            Namespace::Pool(id),
            Namespace::Pools,
        ] {
            let name = ns.name().unwrap();
            assert_eq!(Kind::of(&name), Some(ns.kind()), "{name}");
        }
        assert_eq!(Kind::of("teaching:1"), None);
        let ai = Namespace::Ai {
            op: "explain".into(),
            model: "m".into(),
        };
        assert_eq!(ai.name(), None);
        let keys = Keys::new("p:");
        assert_eq!(ai.entry_key(&keys, "abc"), "p:ai:explain:m:abc");
        assert_eq!(ai.version_key(&keys), None);
        assert_eq!(
            Namespace::User(id).entry_key(&keys, "profile"),
            format!("p:cache:{{user:{id}}}:entry:profile")
        );
    }
}
