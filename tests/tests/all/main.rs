//! The integration tests, one binary of modules: linked once against the whole
//! stack instead of once per file (each module's doc says what it covers).

mod access;
mod adaptive_test;
mod ai_cache;
mod ai_client;
mod assessments;
mod audit;
mod auth;
mod cache;
mod calibration;
mod chaos;
mod contract;
mod data_rights;
mod emulator;
mod events;
mod exports;
mod history;
mod idempotency;
mod item_stats;
mod lambda;
mod lifecycle;
mod load;
mod oidc;
mod outages;
mod polytomous;
mod pools;
mod pretest;
mod redis_conn;
mod retries;
mod revocation;
mod scoping;
mod secrets;
mod sweeper;
mod teaching;
mod teaching_ws;
mod tenancy;
