//! `ophion ai patterns`, offline on files: one row per input line, in
//! order, with the ids grouping the lines as their (known) templates do.

use std::process::Command;

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
    let out = Command::new(env!("CARGO_BIN_EXE_ophion"))
        .args(["ai", "patterns", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .env("OPHION_SERVER", "http://127.0.0.1:9") // never contacted
        .output()
        .expect("ophion");
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
