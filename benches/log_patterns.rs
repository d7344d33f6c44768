//! Log template mining on loghub-2k: feeds each dataset's `Content` column
//! to `ophion_ai::patterns::TemplateMiner` (default configuration), writes
//! one `template_id` per line for `../shared/tools/log_ga.py`, and reports
//! throughput.
//!
//! Run: `cargo bench -p ophion-benches --bench log_patterns -- --loghub ../shared/data/loghub-2k --out /tmp/ga`
//! then `python3 ../shared/tools/log_ga.py --loghub ../shared/data/loghub-2k --results /tmp/ga`.
//! `--config '{"similarity":0.6}'` tries other settings; `--text FILE --out
//! FILE.csv` mines one message a line (what `other_logs.py` sweeps with).
//! Without `--loghub` (as in `cargo test --all-targets`) it mines a small
//! built-in sample and checks the grouping.

use std::{io::Write as _, path::PathBuf, time::Instant};

use ophion_ai::patterns::{MinerConfig, TemplateMiner};
use ophion_benches::{LOGHUB_SYSTEMS, loghub_contents as contents};

fn main() {
    let mut loghub: Option<PathBuf> = None;
    let mut text: Option<PathBuf> = None;
    let mut config = MinerConfig::default();
    let mut out = std::env::temp_dir().join("ophion-log-ga");
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--loghub" => loghub = it.next().map(PathBuf::from),
            "--text" => text = it.next().map(PathBuf::from),
            "--out" => out = it.next().map(PathBuf::from).unwrap_or(out),
            "--config" => {
                let json = it.next().expect("--config takes a JSON object");
                config = serde_json::from_str(&json).expect("--config: a MinerConfig as JSON");
            }
            _ => {}
        }
    }
    if let Some(text) = text {
        // One message a line in, one template id a line out: how
        // `benches/other_logs.py --sweep` tries settings.
        let messages = std::fs::read_to_string(&text).expect("read --text");
        let mut miner = TemplateMiner::new(config);
        let ids: Vec<u32> = messages.lines().map(|m| miner.add(m)).collect();
        let mut f = std::fs::File::create(&out).expect("out file");
        writeln!(f, "template_id").expect("write");
        for id in ids {
            writeln!(f, "{}", miner.resolve(id)).expect("write");
        }
        return;
    }
    let Some(loghub) = loghub else {
        smoke();
        return;
    };
    std::fs::create_dir_all(&out).expect("out dir");
    let (mut lines, mut secs) = (0usize, 0f64);
    // Every system is required: a mean over what happens to be present
    // would not be the benchmark's figure.
    for name in LOGHUB_SYSTEMS {
        let csv = loghub
            .join(name)
            .join(format!("{name}_2k.log_structured.csv"));
        assert!(
            csv.exists(),
            "loghub-2k is incomplete: {} is missing",
            csv.display()
        );
        let messages = contents(&csv);
        let started = Instant::now();
        let mut miner = TemplateMiner::new(config.clone());
        let ids: Vec<u32> = messages.iter().map(|m| miner.add(m)).collect();
        secs += started.elapsed().as_secs_f64();
        lines += messages.len();
        let mut f = std::fs::File::create(out.join(format!("{name}.csv"))).expect("out file");
        writeln!(f, "template_id").expect("write");
        // Each line under the template it ended in: templates that merged
        // once a position proved variable are one group.
        for id in ids {
            writeln!(f, "{}", miner.resolve(id)).expect("write");
        }
        println!(
            "{name}: {} lines, {} templates",
            messages.len(),
            miner.len()
        );
    }
    println!(
        "{lines} lines in {:.3} s of mining = {:.0} lines/s (one core)",
        secs,
        lines as f64 / secs.max(1e-9)
    );
}

/// A built-in sample: three templates with variables in several forms.
fn smoke() {
    let mut miner = TemplateMiner::default();
    let lines = [
        "Accepted password for root from 10.1.2.3 port 22 ssh2",
        "Failed password for invalid user admin from 10.9.8.7 port 4242 ssh2",
        "Accepted password for alice from 192.168.0.1 port 51234 ssh2",
        "Failed password for invalid user oracle from 10.0.0.9 port 1 ssh2",
        "session opened for user root by (uid=0)",
        "session opened for user bob by (uid=1000)",
    ];
    let ids: Vec<u32> = lines.iter().map(|l| miner.add(l)).collect();
    assert_eq!(ids[0], ids[2]);
    assert_eq!(ids[1], ids[3]);
    assert_eq!(ids[4], ids[5]);
    assert_ne!(ids[0], ids[1]);
    println!(
        "log pattern smoke: {} templates from {} lines",
        miner.len(),
        lines.len()
    );
}
