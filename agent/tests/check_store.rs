//! `floe-agent check-store` says "safe" for stores that honour create-only
//! under a race. (The "unsafe" verdict is tested in `floe_broker::conformance`
//! with a wrapper that ignores the create mode.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::process::Command;

use floe_broker::testing::S3Target;

fn check_store(store: &str, env: &[(&str, String)]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_floe-agent"))
        .args(["check-store", "--store", store, "--rounds", "5", "--writers", "8"])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap())
}

#[test]
fn local_directory_is_safe() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = check_store(&format!("file://{}", dir.path().display()), &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(": safe: exactly one create-only PUT won each of 5 rounds"), "{out}");
    assert_eq!(out.matches("1 of 8 create-only PUTs won").count(), 5, "{out}");
}

#[test]
fn the_s3_test_server_is_safe() {
    let Some(s3) = S3Target::from_env() else { return };
    let (store, env) = s3.agent_store(&s3.fresh_prefix());
    let (code, out) = check_store(&store, &env);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(": safe:"), "{out}");
}

#[test]
fn an_unreadable_store_url_is_an_error_not_a_verdict() {
    let (code, out) = check_store("gs://nope", &[]);
    assert_eq!(code, 2, "{out}");
}
