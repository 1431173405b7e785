//! `--config FILE` and `--print-config`: settings from a TOML file, below
//! flags and the environment, checked as flags are.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::process::Command;

fn agent(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_floe-agent"))
        .args(args)
        .env_remove("FLOE_FLUSH_INTERVAL_MS")
        .env_remove("FLOE_COMPACTOR")
        .envs(env.iter().copied())
        .output()
        .expect("run floe-agent");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_config_file_sets_what_flags_and_the_environment_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("floe.toml");
    std::fs::write(
        &file,
        "flush_interval_ms = 1234\ncompactor = \"off\"\ncommit_lease = true\nmerge_min_batches = 7\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();

    let (ok, printed, err) = agent(&["--config", f, "--print-config"], &[]);
    assert!(ok, "{err}");
    for line in [
        "flush_interval_ms = 1234",
        "compactor = \"off\"",
        "commit_lease = true",
        "merge_min_batches = 7",
        "max_uploads = 4",
    ] {
        assert!(printed.lines().any(|l| l == line), "{line} in:\n{printed}");
    }
    // The environment, then a flag, win over the file.
    let (_, printed, _) = agent(&["--config", f, "--print-config"], &[("FLOE_FLUSH_INTERVAL_MS", "55")]);
    assert!(printed.lines().any(|l| l == "flush_interval_ms = 55"), "{printed}");
    let (_, printed, _) =
        agent(&["--config", f, "--flush-interval-ms", "9", "--print-config"], &[("FLOE_FLUSH_INTERVAL_MS", "55")]);
    assert!(printed.lines().any(|l| l == "flush_interval_ms = 9"), "{printed}");
    // What --print-config prints is itself a config file.
    let again = dir.path().join("again.toml");
    std::fs::write(&again, &printed).unwrap();
    let (ok, reprinted, err) = agent(&["--config", again.to_str().unwrap(), "--print-config"], &[]);
    assert!(ok, "{err}");
    assert_eq!(reprinted, printed);
}

#[test]
fn bad_settings_in_a_config_file_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("flush_intervall_ms = 5\n", "flush_intervall_ms"),
        ("flush_interval_ms = \"soon\"\n", "--flush-interval-ms"),
        ("commit_lease = \"yes\"\n", "commit_lease"),
        ("not toml at all", "config file"),
    ];
    for (text, named) in cases {
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, text).unwrap();
        let (ok, _, err) = agent(&["--config", file.to_str().unwrap(), "--print-config"], &[]);
        assert!(!ok, "{text} was accepted");
        assert!(err.contains(named), "{text}: the error names {named}: {err}");
    }
}
