//! `ophion ai patterns`, offline on files: one row per input line, in
//! order, with the ids grouping the lines as their (known) templates do.

use std::{
    path::Path,
    process::{Command, Output},
};

/// Runs `ophion ai COMMAND [EXTRA...] --input INPUT --output OUTPUT`,
/// offline: the server address points nowhere and is never contacted.
fn ophion_ai(command: &str, extra: &[&str], input: &Path, output: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ophion"))
        .args(["ai", command])
        .args(extra)
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output)
        .env("OPHION_SERVER", "http://127.0.0.1:9")
        .output()
        .expect("ophion")
}

#[test]
fn patterns_writes_one_row_per_line_grouped_by_template() {
    let dir = tempfile::tempdir().expect("tmp");
    // Four events, interleaved, with numbers, addresses, hosts and an
    // optional variable part `(cache N% hit)`; the truth is kept beside
    // each line.
    let mut lines = Vec::new();
    let mut truth = Vec::new();
    for i in 0..200u32 {
        let (line, event) = match i % 4 {
            0 => (
                format!(
                    "Accepted password for root from 10.0.{}.{} port {} ssh2",
                    i % 7,
                    i % 250,
                    40000 + i
                ),
                0,
            ),
            1 => (
                format!(
                    "host{}.example.com:443 close, {} bytes sent, {} bytes received",
                    i % 9,
                    i * 3,
                    i * 7
                ),
                1,
            ),
            2 if i % 3 == 0 => (
                format!(
                    "worker {} finished job {} in {} ms (cache {}% hit)",
                    i % 5,
                    i,
                    i * 2,
                    i % 100
                ),
                2,
            ),
            2 => (
                format!("worker {} finished job {} in {} ms", i % 5, i, i * 2),
                2,
            ),
            _ => (
                format!(
                    "Disk /dev/sd{} is {}% full",
                    ["a", "b", "c"][(i % 3) as usize],
                    i % 100
                ),
                3,
            ),
        };
        lines.push(line);
        truth.push(event);
    }
    let input = dir.path().join("messages.txt");
    let output = dir.path().join("templates.csv");
    std::fs::write(&input, lines.join("\n")).expect("input");
    let out = ophion_ai("patterns", &[], &input, &output);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(&output).expect("output");
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "template_id,template");
    assert_eq!(rows.len(), lines.len() + 1, "one row per line");
    let ids: Vec<&str> = rows[1..]
        .iter()
        .map(|r| r.split(',').next().expect("id"))
        .collect();
    // Same event <=> same id.
    for i in 0..ids.len() {
        for j in 0..ids.len() {
            assert_eq!(
                ids[i] == ids[j],
                truth[i] == truth[j],
                "lines {i} and {j}: {} / {}",
                lines[i],
                lines[j]
            );
        }
    }
    // A template with a comma is quoted.
    assert!(
        rows[2].contains("\"<*> close, <*> bytes sent, <*> bytes received\""),
        "{}",
        rows[2]
    );
    // Every token with a digit is a variable, `ssh2` too.
    assert!(
        rows[1].ends_with(",Accepted password for root from <*> port <*> <*>"),
        "{}",
        rows[1]
    );
}

/// `ophion ai detect`: every input row comes back, in order, with a score
/// in [0, 1]; the injected spike scores highest; bad input is refused with
/// the line that is wrong.
#[test]
fn detect_scores_every_row_in_order_and_finds_the_spike() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut csv = String::from("timestamp,value\n");
    let mut state = 99u64;
    for i in 0..3000u64 {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let noise = ((state >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 0.3;
        let day = (i as f64 / 288.0 * std::f64::consts::TAU).sin() * 2.0;
        let spike = if i == 2500 { 9.0 } else { 0.0 };
        let t = 1_700_000_000 + i * 300;
        // Unix seconds and ISO 8601 mixed, as files from different tools are.
        let ts = if i % 2 == 0 {
            t.to_string()
        } else {
            let s = t % 86_400;
            let days = t / 86_400;
            // 1_700_000_000 is 2023-11-14 22:13:20 UTC; days after it stay in November.
            format!(
                "2023-11-{:02}T{:02}:{:02}:{:02}Z",
                days - 19_675 + 14,
                s / 3600,
                s % 3600 / 60,
                s % 60
            )
        };
        csv.push_str(&format!("{ts},{:.4}\n", 50.0 + day + noise + spike));
    }
    let input = dir.path().join("series.csv");
    let output = dir.path().join("scores.csv");
    std::fs::write(&input, &csv).expect("input");
    let run = |input: &Path| ophion_ai("detect", &[], input, &output);
    let out = run(&input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = std::fs::read_to_string(&output).expect("output");
    let rows: Vec<&str> = written.lines().collect();
    let inputs: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "timestamp,value,anomaly_score");
    assert_eq!(rows.len(), inputs.len(), "one row per input row");
    let mut best = (0usize, -1.0f64);
    for (i, (row, line)) in rows.iter().zip(&inputs).enumerate().skip(1) {
        let (kept, score) = row.rsplit_once(',').expect("score column");
        assert_eq!(kept, *line, "row {i} keeps the input and its order");
        let score: f64 = score.parse().expect("number");
        assert!((0.0..=1.0).contains(&score), "row {i}: {score}");
        if score > best.1 {
            best = (i - 1, score);
        }
    }
    assert!((2500..2504).contains(&best.0), "top score at {best:?}");

    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "timestamp,value\n1700000000,1\nlater,2\n").expect("bad");
    let out = run(&bad);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3") && err.contains("later"), "{err}");
    std::fs::write(&bad, "time,value\n1700000000,1\n").expect("bad");
    let out = run(&bad);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`timestamp`"));
}

/// `ophion ai forecast`: `step,forecast,lower,upper` for each step, the
/// daily cycle continued, intervals around the points; bad input refused.
#[test]
fn forecast_continues_the_cycle_with_intervals() {
    let dir = tempfile::tempdir().expect("tmp");
    let truth = |i: usize| 200.0 + 50.0 * ((i % 24) as f64 / 24.0 * std::f64::consts::TAU).cos();
    let mut csv = String::from("timestamp,value\n");
    for i in 0..24 * 21 {
        // A little deterministic noise so the intervals have width.
        let noise = ((i * 7919) % 11) as f64 - 5.0;
        csv.push_str(&format!(
            "{},{:.3}\n",
            1_700_000_000 + i * 3600,
            truth(i) + noise
        ));
    }
    let input = dir.path().join("series.csv");
    let output = dir.path().join("forecast.csv");
    std::fs::write(&input, &csv).expect("input");
    let run = |input: &Path, horizon: &str| {
        ophion_ai("forecast", &["--horizon", horizon], input, &output)
    };
    let out = run(&input, "36");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("period 24"));
    let written = std::fs::read_to_string(&output).expect("output");
    let rows: Vec<&str> = written.lines().collect();
    assert_eq!(rows[0], "step,forecast,lower,upper");
    assert_eq!(rows.len(), 37);
    for (h, row) in rows[1..].iter().enumerate() {
        let v: Vec<f64> = row.split(',').map(|x| x.parse().expect("number")).collect();
        assert_eq!(v[0] as usize, h + 1);
        let expected = truth(24 * 21 + h);
        assert!(
            (v[1] - expected).abs() < 12.0,
            "step {}: {} against {expected}",
            h + 1,
            v[1]
        );
        assert!(v[2] <= v[1] && v[1] <= v[3] && v[3] - v[2] > 0.0, "{row}");
    }

    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "value\n1\nlots\n").expect("bad");
    let out = run(&bad, "5");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 3"));
    let out = run(&input, "soon");
    assert_eq!(out.status.code(), Some(2), "usage error");
}
