//! The local server: every function's routes in one process, migrations
//! applied and the demo data loaded at start.

use std::net::SocketAddr;

use crate::app::App;
use crate::config::Config;
use crate::services::{demo, events, sweep};
use crate::{api, store};

/// Local defaults, used where the environment says nothing.
const LOCAL_DEFAULTS: [(&str, &str); 4] = [
    ("REDIS_URL", "redis://127.0.0.1:6379"),
    ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/lectern"),
    ("DB_POOL_MAX", "16"),
    ("LECTERN_ADDR", "127.0.0.1:3000"),
];

fn setting(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .or_else(|| {
            LOCAL_DEFAULTS
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
}

/// The app on the local settings, its database migrated (the local server and
/// `lectern-admin` start here).
pub async fn app() -> Result<App, String> {
    let config = Config::from_lookup(setting).map_err(|e| e.to_string())?;
    let app = App::new(config).map_err(|e| e.to_string())?;
    let applied = store::db::migrate(app.db())
        .await
        .map_err(|e| format!("cannot migrate PostgreSQL: {e}"))?;
    tracing::info!(?applied, "migrations applied");
    Ok(app)
}

/// Runs until Ctrl-C; returns the one line to print on failure.
pub async fn run() -> Result<(), String> {
    crate::telemetry::init();
    let addr: SocketAddr = setting("LECTERN_ADDR")
        .unwrap_or_default()
        .parse()
        .map_err(|e| format!("configuration error: LECTERN_ADDR: not a socket address ({e})"))?;
    let app = app().await?;
    let demo = demo::ensure(app.db())
        .await
        .map_err(|e| format!("cannot load the demo pool: {e}"))?;
    tracing::info!(
        pool_id = %demo.pool.id, student_id = %demo.student_id, items = demo.pool.item_count, created = demo.created,
        "demo pool ready"
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    tracing::info!(
        "lectern listening on http://{addr} (tutoring WebSocket: ws://{addr}{})",
        api::teach_ws::local::PATH
    );
    // What the sweeper Lambda does on its schedule; the task ends with the process.
    tokio::spawn(sweep_every(app.clone(), sweep::PERIOD));
    // What the events function does on its schedule (writes also drain at once).
    tokio::spawn(drain_every(app.clone(), events::PERIOD));
    // The peer address is the client address sign-in throttling counts by.
    let service = api::local_router(app).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| format!("server error: {e}"))
}

/// Sweeps now and then every `period`; a failed sweep is logged and retried at
/// the next tick (the local server keeps serving either way).
async fn sweep_every(app: App, period: std::time::Duration) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        // `sweep` logs its report and any error itself.
        let _ = sweep::sweep(&app).await;
    }
}

/// Drains the outbox now and then every `period` (to the log unless
/// `EVENT_BUS_NAME` names a bus, e.g. a loopback sink at `EVENTS_ENDPOINT`).
async fn drain_every(app: App, period: std::time::Duration) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(error) = events::drain(&app).await {
            tracing::warn!(%error, "drain failed");
        }
    }
}
