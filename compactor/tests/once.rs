//! `floe-compactor --once` as scripts use it: one cycle, then one line of
//! JSON saying what it did (`floe-bench --compact-first` reads it).

use std::process::Command;

#[test]
fn once_prints_its_cycle_as_one_json_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_floe-compactor"))
        .arg("--once")
        .arg("--store")
        .arg(format!("file://{}", dir.path().display()))
        .env("FLOE_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let report: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    // An empty bucket: nothing to merge, and every count the bench reads is there.
    for field in ["merged_runs", "merged_batches", "failed_runs"] {
        assert_eq!(report[field], 0, "{field} in {stdout}");
    }
    assert!(report["gc"]["deleted"].is_u64(), "{stdout}");
    // And what the cycle cost in requests for segments: none to merge, no GETs.
    assert_eq!(report["segment_requests"]["get"], 0, "{stdout}");
}
