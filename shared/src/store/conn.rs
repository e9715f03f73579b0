//! The Redis connection: one server (or a primary with replicas) through a
//! self-reconnecting `ConnectionManager`, or a Redis Cluster (ElastiCache
//! cluster mode) through redis-rs's cluster client. Callers see one type that
//! sends commands, pipelines and scripts the same way.
//!
//! In a cluster every key lives in one of 16384 hash slots, and Redis refuses a
//! command, script or transaction whose keys are in different slots. lectern's
//! keys put the braces (hash tags) where one request must reach several keys
//! (see `keys.rs`). A plain (non-transactional) pipeline promises no atomicity,
//! so [`Conn`] splits one that spans slots into one pipeline per slot, sent
//! concurrently, and puts the replies back in order; a transaction that spans
//! slots still fails, as Redis says it must.

use std::time::Duration;

use futures_util::future::try_join_all;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, IntoConnectionInfo, Pipeline, RedisFuture, RedisResult, Value};

/// Where Redis is and how to talk to it.
#[derive(Clone)]
pub struct Target {
    /// `redis://` or `rediss://` (TLS); for a cluster, any node.
    pub url: String,
    /// A Redis Cluster, not one server.
    pub cluster: bool,
    /// How long to wait for a connection, and for each reply.
    pub timeout: Duration,
}

/// A connection to one Redis or to a cluster. Cheap to clone (a handle).
#[derive(Clone)]
pub enum Conn {
    /// One server.
    Single(ConnectionManager),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
}

/// A SCAN cursor over a cluster holds the node's index in its top byte and
/// that node's own cursor below (a node's cursor indexes its hash table, far
/// below 2^56).
const NODE_SHIFT: u32 = 56;

impl Conn {
    /// Connects, authenticating with `password` (the AUTH token) when given.
    pub async fn connect(target: &Target, password: Option<&str>) -> RedisResult<Self> {
        // rediss:// builds its rustls configuration from the process's provider.
        crate::tls::install_provider();
        if target.cluster {
            let mut builder = redis::cluster::ClusterClientBuilder::new(vec![target.url.as_str()])
                .connection_timeout(target.timeout)
                .response_timeout(target.timeout)
                .retries(1);
            if let Some(password) = password {
                builder = builder.password(password);
            }
            let conn = builder.build()?.get_async_connection().await?;
            return Ok(Self::Cluster(conn));
        }
        let mut info = target.url.as_str().into_connection_info()?;
        if let Some(password) = password {
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(target.timeout))
            .set_response_timeout(Some(target.timeout))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_with_config(redis::Client::open(info)?, config).await?;
        Ok(Self::Single(conn))
    }

    /// The primaries of a cluster (`host`, `port`), in a stable order; empty for one server.
    pub async fn primaries(&mut self) -> RedisResult<Vec<(String, u16)>> {
        let Self::Cluster(conn) = self else {
            return Ok(Vec::new());
        };
        // CLUSTER SLOTS names each range's primary first, as the cluster client addresses it.
        let ranges: Vec<Vec<Value>> = redis::cmd("CLUSTER").arg("SLOTS").query_async(conn).await?;
        let mut primaries: Vec<(String, u16)> = ranges
            .iter()
            .filter_map(|range| match range.get(2)? {
                Value::Array(node) => {
                    let host: String = redis::from_redis_value_ref(node.first()?).ok()?;
                    let port: u16 = redis::from_redis_value_ref(node.get(1)?).ok()?;
                    Some((host, port))
                }
                _ => None,
            })
            .collect();
        primaries.sort();
        primaries.dedup();
        Ok(primaries)
    }

    /// Runs `cmd` on every primary (on the one server when not a cluster), replies in order.
    pub async fn on_each_primary(&mut self, cmd: &Cmd) -> RedisResult<Vec<Value>> {
        let primaries = self.primaries().await?;
        match self {
            Self::Single(conn) => Ok(vec![cmd.query_async(conn).await?]),
            Self::Cluster(conn) => {
                let mut replies = Vec::with_capacity(primaries.len());
                for (host, port) in primaries {
                    let route = SingleNodeRoutingInfo::ByAddress { host, port };
                    replies.push(
                        conn.route_command(cmd.clone(), RoutingInfo::SingleNode(route))
                            .await?,
                    );
                }
                Ok(replies)
            }
        }
    }

    /// One step of `SCAN cursor MATCH pattern COUNT count [TYPE kind]`: the next
    /// cursor (0 at the end) and the keys found. On a cluster the scan walks
    /// every primary in turn, and the cursor says where it is.
    pub async fn scan_step(
        &mut self,
        cursor: u64,
        pattern: &str,
        count: usize,
        kind: Option<&str>,
    ) -> RedisResult<(u64, Vec<String>)> {
        let scan = |cursor: u64| {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(count);
            if let Some(kind) = kind {
                cmd.arg("TYPE").arg(kind);
            }
            cmd
        };
        if let Self::Single(conn) = self {
            return scan(cursor).query_async(conn).await;
        }
        let primaries = self.primaries().await?;
        let Self::Cluster(conn) = self else {
            unreachable!("checked above")
        };
        let node = (cursor >> NODE_SHIFT) as usize;
        let Some((host, port)) = primaries.get(node).cloned() else {
            return Ok((0, Vec::new()));
        };
        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
        let reply = conn
            .route_command(scan(cursor & ((1 << NODE_SHIFT) - 1)), route)
            .await?;
        let (next, keys): (u64, Vec<String>) = redis::from_redis_value(reply)?;
        let next = match (next, node + 1 < primaries.len()) {
            (0, true) => ((node + 1) as u64) << NODE_SHIFT,
            (0, false) => 0,
            (next, _) => ((node as u64) << NODE_SHIFT) | next,
        };
        Ok((next, keys))
    }
}

/// The hash slot of a command's first key, as a route (`None`: no key, e.g. INFO).
///
/// redis-rs keeps its command table private; this knows where the first key
/// is in the commands lectern pipelines (after `numkeys` for scripts and the
/// multi-key sorted-set reads, second otherwise).
fn route(cmd: &Cmd) -> Option<Route> {
    let args: Vec<&[u8]> = cmd
        .args_iter()
        .filter_map(|arg| match arg {
            redis::Arg::Simple(bytes) => Some(bytes),
            _ => None,
        })
        .collect();
    let name = args.first()?.to_ascii_uppercase();
    let at = match name.as_slice() {
        b"INFO" | b"PING" | b"SCAN" | b"CLUSTER" | b"SCRIPT" | b"DBSIZE" | b"TIME" => return None,
        b"EVAL" | b"EVALSHA" | b"EVAL_RO" | b"EVALSHA_RO" | b"FCALL" => 3,
        b"ZINTERCARD" | b"ZINTER" | b"ZUNION" | b"ZDIFF" | b"SINTERCARD" => 2,
        _ => 1,
    };
    Some(Route::with_key(args.get(at)?, SlotAddr::Master))
}

/// Sends a pipeline that spans slots as one pipeline per slot (a command
/// without a key goes with the first key's), concurrently, and puts the
/// replies back in the original order.
fn split_by_slot<'a>(
    conn: &ClusterConnection,
    pipeline: &'a Pipeline,
) -> RedisFuture<'a, Vec<Value>> {
    let first = pipeline.cmd_iter().find_map(route);
    let mut groups: Vec<(Option<Route>, Pipeline, Vec<usize>)> = Vec::new();
    for (index, cmd) in pipeline.cmd_iter().enumerate() {
        let at = route(cmd).or(first);
        let group = match groups.iter().position(|(r, _, _)| *r == at) {
            Some(group) => group,
            None => {
                groups.push((at, Pipeline::new(), Vec::new()));
                groups.len() - 1
            }
        };
        groups[group].1.add_command(cmd.clone());
        groups[group].2.push(index);
    }
    let conn = conn.clone();
    Box::pin(async move {
        let sent = groups.iter().map(|(_, sub, _)| {
            let mut conn = conn.clone();
            async move { conn.req_packed_commands(sub, 0, sub.len()).await }
        });
        let replies = try_join_all(sent).await?;
        let mut ordered = vec![Value::Nil; pipeline.len()];
        for ((_, _, indices), values) in groups.iter().zip(replies) {
            for (&index, value) in indices.iter().zip(values) {
                ordered[index] = value;
            }
        }
        Ok(ordered)
    })
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => {
                let mut routes = pipeline.cmd_iter().filter_map(route);
                let first = routes.next();
                if pipeline.is_transaction() || routes.all(|r| Some(r) == first) {
                    conn.req_packed_commands(pipeline, offset, count)
                } else {
                    split_by_slot(conn, pipeline)
                }
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}
