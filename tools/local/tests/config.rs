//! A bad setting stops the server at start with one line naming it.

use std::process::Command;

fn run_with(vars: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lectern-local"));
    cmd.env_remove("RUST_LOG")
        .env("LECTERN_ADDR", "127.0.0.1:0");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("lectern-local runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_setting_is_one_clear_line() {
    let (ok, stderr) = run_with(&[("DB_POOL_MAX", "many")]);
    assert!(!ok);
    assert_eq!(
        stderr.trim_end(),
        r#"configuration error: DB_POOL_MAX: must be a whole number from 1 to 64 (got "many")"#
    );
    let (ok, stderr) = run_with(&[("REDIS_URL", "http://nope")]);
    assert!(!ok);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("configuration error: REDIS_URL:"),
        "{stderr}"
    );
    let (ok, stderr) = run_with(&[("LECTERN_ADDR", "not an address")]);
    assert!(!ok);
    assert!(
        stderr.starts_with("configuration error: LECTERN_ADDR:"),
        "{stderr}"
    );
}
