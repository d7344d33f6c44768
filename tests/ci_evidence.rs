//! CI cannot pass without its evidence: under `CI=true`, the AI score step
//! fails when a data set or a scorer is missing, instead of skipping.

use std::process::Command;

fn ai_scores(shared: &std::path::Path) -> std::process::Output {
    Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/ai-scores"))
        .env("CI", "true")
        .env("OPHION_SHARED", shared)
        .output()
        .expect("bash")
}

#[test]
fn missing_benchmark_data_fails_the_ci_step() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = ai_scores(dir.path());
    assert!(!out.status.success(), "nothing there: fails");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("FAILED") && err.contains("data/nab"), "{err}");

    // One data set missing among the others: still a failure, naming it.
    for d in ["data/nab", "data/m4-hourly", "tools"] {
        std::fs::create_dir_all(dir.path().join(d)).expect("dir");
    }
    for f in ["nab_score.py", "log_ga.py", "m4_score.py"] {
        std::fs::write(dir.path().join("tools").join(f), "").expect("file");
    }
    let out = ai_scores(dir.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("data/loghub-2k") && !err.contains("data/nab "),
        "{err}"
    );
}
