//! Every Redis key's format lives here (DESIGN §4). Braces are Redis Cluster
//! hash tags: all keys of one test share a slot, so one script can touch them.

use uuid::Uuid;

/// What a key under the prefix holds (for counting keys by kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `test:{<id>}:state`.
    TestState,
    /// `test:{<id>}:lock:<question>`.
    TestLock,
    /// `question:{<id>}`.
    Question,
    /// `pool:{<id>}:v<version>:e<encoding>`.
    Pool,
    /// `auth:session:<hash>`.
    AuthSession,
    /// `teaching:session:{<id>}:*`.
    TeachingSession,
    /// `teaching:ws:<connection>`.
    WsConnection,
    /// Anything else (cache, AI, indexes, throttles, …).
    Other,
}

/// Builds keys under an optional deployment-wide prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (may be empty).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix every key starts with (used to scope scans and clean-up).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The kind of a key built here (the prefix, when present, is skipped).
    pub fn kind_of(&self, key: &str) -> KeyKind {
        let key = key.strip_prefix(&self.prefix).unwrap_or(key);
        if key.starts_with("test:{") && key.ends_with("}:state") {
            KeyKind::TestState
        } else if key.starts_with("test:{") && key.contains("}:lock:") {
            KeyKind::TestLock
        } else if key.starts_with("question:{") {
            KeyKind::Question
        } else if key.starts_with("pool:{") {
            KeyKind::Pool
        } else if key.starts_with("auth:session:") {
            KeyKind::AuthSession
        } else if key.starts_with("teaching:session:{") {
            KeyKind::TeachingSession
        } else if key.starts_with("teaching:ws:") {
            KeyKind::WsConnection
        } else {
            KeyKind::Other
        }
    }

    /// `test:{<id>}:state`: the hot state of an active adaptive test.
    pub fn test_state(&self, test: Uuid) -> String {
        format!("{}test:{{{test}}}:state", self.prefix)
    }

    /// SCAN pattern matching every test state under this prefix.
    pub fn test_state_pattern(&self) -> String {
        format!("{}test:{{*}}:state", self.prefix)
    }

    /// The test a [`Keys::test_state`] key belongs to.
    pub fn test_of_state_key(&self, key: &str) -> Option<Uuid> {
        key.strip_prefix(&self.prefix)?
            .strip_prefix("test:{")?
            .strip_suffix("}:state")?
            .parse()
            .ok()
    }

    /// `test:{<id>}:lock:<question_id>`: held while one answer to that question is recorded.
    pub fn test_lock(&self, test: Uuid, question_id: &str) -> String {
        format!("{}test:{{{test}}}:lock:{question_id}", self.prefix)
    }

    /// `question:{<id>}`: a question as served, without its key.
    pub fn question(&self, question_id: &str) -> String {
        format!("{}question:{{{question_id}}}", self.prefix)
    }

    /// `pool:{<id>}:v<version>:e<encoding>`: the item parameters of one pool
    /// version, in form [`BANK_ENCODING`](super::pools::BANK_ENCODING) (a
    /// release never reads a bank another release encoded differently).
    pub fn pool(&self, pool: Uuid, version: i32) -> String {
        let encoding = super::pools::BANK_ENCODING;
        format!("{}pool:{{{pool}}}:v{version}:e{encoding}", self.prefix)
    }

    /// `teaching:session:{<id>}:context`: a tutoring session's TeachingContext.
    pub fn teaching_context(&self, session: Uuid) -> String {
        format!("{}teaching:session:{{{session}}}:context", self.prefix)
    }

    /// `teaching:session:{<id>}:history`: its last transitions, newest first.
    pub fn teaching_history(&self, session: Uuid) -> String {
        format!("{}teaching:session:{{{session}}}:history", self.prefix)
    }

    /// `teaching:session:{<id>}:metrics`: its counters (a hash).
    pub fn teaching_metrics(&self, session: Uuid) -> String {
        format!("{}teaching:session:{{{session}}}:metrics", self.prefix)
    }

    /// `teaching:session:{<id>}:connections`: the WebSocket connections following it (a set).
    pub fn teaching_connections(&self, session: Uuid) -> String {
        format!("{}teaching:session:{{{session}}}:connections", self.prefix)
    }

    /// `teaching:sessions`: live tutoring sessions scored by when their state expires.
    pub fn teaching_sessions(&self) -> String {
        format!("{}teaching:sessions", self.prefix)
    }

    /// `teaching:ws:<connection id>`: who a WebSocket connection is, and the session it follows.
    pub fn ws_connection(&self, connection: &str) -> String {
        format!("{}teaching:ws:{connection}", self.prefix)
    }

    /// `idem:<route>:<scope>:<sha256(key)>`: what became of the first request
    /// carrying `Idempotency-Key: <key>` on a creating route (`tests`,
    /// `users`, `pools`, `assessments`, `assignments`) from `scope` (the
    /// caller's user id; `sign-up` for `POST /v1/users`). The client's key is
    /// hashed: any printable ASCII, fixed length here.
    pub fn idempotency(&self, route: &str, scope: &str, key_hash: &str) -> String {
        format!("{}idem:{route}:{scope}:{key_hash}", self.prefix)
    }

    /// `auth:session:<sha256(token)>`: one auth session; the raw token is never stored.
    pub fn auth_session(&self, token_hash: &str) -> String {
        format!("{}auth:session:{token_hash}", self.prefix)
    }

    /// `auth:user:{<id>}:sessions`: a user's sessions (token hashes) scored by expiry.
    pub fn user_sessions(&self, user: Uuid) -> String {
        format!("{}auth:user:{{{user}}}:sessions", self.prefix)
    }

    /// `auth:{index}:sessions`: every session (token hash) scored by expiry, for
    /// counts without KEYS. The three global indexes share the `{index}` hash
    /// tag, so one ZINTERCARD (and one pipeline) can reach them in a cluster.
    pub fn all_sessions(&self) -> String {
        format!("{}auth:{{index}}:sessions", self.prefix)
    }

    /// `auth:{index}:seen`: every session scored by when it was last used.
    pub fn sessions_seen(&self) -> String {
        format!("{}auth:{{index}}:seen", self.prefix)
    }

    /// `auth:{index}:users`: every user with a session, scored by their latest expiry.
    pub fn users_signed_in(&self) -> String {
        format!("{}auth:{{index}}:users", self.prefix)
    }

    /// `auth:throttle:account:<sha256(email)>`: recent failed sign-ins to one account.
    pub fn login_throttle_account(&self, email_hash: &str) -> String {
        format!("{}auth:throttle:account:{email_hash}", self.prefix)
    }

    /// `auth:throttle:ip:<address>`: recent failed sign-ins from one client address.
    pub fn login_throttle_ip(&self, ip: &str) -> String {
        format!("{}auth:throttle:ip:{ip}", self.prefix)
    }

    /// `oauth:state:<state>`: one pending OpenID Connect sign-in, used once.
    pub fn oauth_state(&self, state: &str) -> String {
        format!("{}oauth:state:{state}", self.prefix)
    }

    /// SCAN pattern matching every user's session index.
    pub fn user_sessions_pattern(&self) -> String {
        format!("{}auth:user:{{*}}:sessions", self.prefix)
    }

    /// `cache:{<ns>}:version`: the namespace's version; bumping it invalidates
    /// every entry of the namespace at once.
    pub fn cache_version(&self, ns: &str) -> String {
        format!("{}cache:{{{ns}}}:version", self.prefix)
    }

    /// `cache:{<ns>}:entry:<key>`: one cached value, stored with the namespace
    /// version it was computed under.
    pub fn cache_entry(&self, ns: &str, key: &str) -> String {
        format!("{}cache:{{{ns}}}:entry:{key}", self.prefix)
    }

    /// `cache:{<ns>}:lease:<key>`: held by the one container computing a missing entry.
    pub fn cache_lease(&self, ns: &str, key: &str) -> String {
        format!("{}cache:{{{ns}}}:lease:{key}", self.prefix)
    }

    /// SCAN pattern matching every key of every cache namespace.
    pub fn cache_pattern(&self) -> String {
        format!("{}cache:{{*", self.prefix)
    }

    /// The namespace and the part after it (`version`, `entry:<key>`, `lease:<key>`)
    /// of a key made by one of the `cache_*` builders.
    pub fn cache_key_parts<'k>(&self, key: &'k str) -> Option<(&'k str, &'k str)> {
        let rest = key.strip_prefix(&self.prefix)?.strip_prefix("cache:{")?;
        let (ns, tail) = rest.split_once("}:")?;
        Some((ns, tail))
    }

    /// `cache:stats`: hit and miss counters per namespace kind, and the AI counters.
    pub fn cache_stats(&self) -> String {
        format!("{}cache:stats", self.prefix)
    }

    /// `semantic:{<course>:<version>:<segment>}:generation`: bumped by every
    /// answer added to (or evicted from) one segment's semantic answer set, so
    /// each process knows when its copy of the set is behind.
    pub fn semantic_generation(&self, course: Uuid, version: i32, segment: &str) -> String {
        format!(
            "{}semantic:{{{course}:{version}:{segment}}}:generation",
            self.prefix
        )
    }

    /// `ai:<op>:<model>:<sha256>`: one cached AI response (content-addressed,
    /// so never invalidated; it ages out).
    pub fn ai_response(&self, op: &str, model: &str, hash: &str) -> String {
        format!("{}ai:{op}:{model}:{hash}", self.prefix)
    }

    /// `ai:<op>:<model>:<sha256>:lease`: held by the one container asking upstream.
    pub fn ai_lease(&self, op: &str, model: &str, hash: &str) -> String {
        format!("{}ai:{op}:{model}:{hash}:lease", self.prefix)
    }

    /// SCAN pattern matching every cached AI response (and lease).
    pub fn ai_pattern(&self) -> String {
        format!("{}ai:*", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_state_key_has_prefix_and_hash_tag() {
        let id = Uuid::nil();
        assert_eq!(
            Keys::new("dev:").test_state(id),
            format!("dev:test:{{{id}}}:state")
        );
        assert_eq!(Keys::new("").test_state(id), format!("test:{{{id}}}:state"));
    }

    #[test]
    fn every_key_of_a_test_shares_its_hash_tag() {
        let id = Uuid::new_v4();
        let keys = Keys::new("p:");
        let tag = format!("{{{id}}}");
        assert!(keys.test_state(id).contains(&tag));
        assert_eq!(keys.test_lock(id, "q7"), format!("p:test:{tag}:lock:q7"));
        assert_eq!(keys.question("q7"), "p:question:{q7}");
        assert_eq!(keys.pool(id, 3), format!("p:pool:{tag}:v3:e3"));
        for key in [
            keys.teaching_context(id),
            keys.teaching_history(id),
            keys.teaching_metrics(id),
            keys.teaching_connections(id),
        ] {
            assert!(
                key.starts_with(&format!("p:teaching:session:{tag}:")),
                "{key}"
            );
        }
    }

    #[test]
    fn cache_keys_share_their_namespace_tag_and_parse_back() {
        let keys = Keys::new("p:");
        let ns = "user:42";
        assert_eq!(keys.cache_version(ns), "p:cache:{user:42}:version");
        let entry = keys.cache_entry(ns, "tests:20:0");
        assert_eq!(entry, "p:cache:{user:42}:entry:tests:20:0");
        assert_eq!(keys.cache_key_parts(&entry), Some((ns, "entry:tests:20:0")));
        assert_eq!(
            keys.cache_key_parts(&keys.cache_lease(ns, "k")),
            Some((ns, "lease:k"))
        );
        assert_eq!(keys.cache_key_parts(&keys.cache_stats()), None);
        assert_eq!(keys.cache_key_parts("q:cache:{user:42}:version"), None);
    }

    #[test]
    fn a_state_key_names_its_test() {
        let id = Uuid::new_v4();
        let keys = Keys::new("p:");
        assert_eq!(keys.test_of_state_key(&keys.test_state(id)), Some(id));
        assert_eq!(keys.test_of_state_key(&keys.test_lock(id, "q")), None);
        assert_eq!(
            Keys::new("other:").test_of_state_key(&keys.test_state(id)),
            None
        );
    }

    #[test]
    fn every_key_built_here_is_counted_under_its_kind() {
        let k = Keys::new("p:");
        let id = Uuid::new_v4();
        assert_eq!(k.kind_of(&k.test_state(id)), KeyKind::TestState);
        assert_eq!(k.kind_of(&k.test_lock(id, "q1")), KeyKind::TestLock);
        assert_eq!(k.kind_of(&k.question("q1")), KeyKind::Question);
        assert_eq!(k.kind_of(&k.pool(id, 3)), KeyKind::Pool);
        assert_eq!(k.kind_of(&k.auth_session("ab")), KeyKind::AuthSession);
        assert_eq!(k.kind_of(&k.teaching_context(id)), KeyKind::TeachingSession);
        assert_eq!(
            k.kind_of(&k.teaching_connections(id)),
            KeyKind::TeachingSession
        );
        assert_eq!(k.kind_of(&k.ws_connection("c1")), KeyKind::WsConnection);
        assert_eq!(k.kind_of(&k.cache_version("pools")), KeyKind::Other);
    }
}
