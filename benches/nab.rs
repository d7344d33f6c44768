//! Anomaly detection on the Numenta Anomaly Benchmark: runs
//! `ophion_ai::anomaly::Detector` (default configuration, one detector per
//! file, streaming) over every NAB data file, writes
//! `timestamp,value,anomaly_score` per file for `../shared/tools/nab_score.py`,
//! and reports streaming throughput.
//!
//! Run: `cargo bench -p ophion-benches --bench nab -- --nab ../shared/data/nab --out /tmp/nab`
//! then `python3 ../shared/tools/nab_score.py --nab ../shared/data/nab --results /tmp/nab`.
//! Without `--nab` (as in `cargo test --all-targets`) it scores a small
//! synthetic series and checks that its spike is found.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    time::Instant,
};

use ophion_ai::{
    anomaly::{Detector, DetectorConfig},
    series::parse_timestamp,
};

/// `(timestamp text, seconds, value)` rows of a NAB CSV.
fn read_series(path: &Path) -> Vec<(String, i64, f64)> {
    let text = std::fs::read_to_string(path).expect("read csv");
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let (t, v) = l.split_once(',')?;
            Some((t.to_owned(), parse_timestamp(t)?, v.trim().parse().ok()?))
        })
        .collect()
}

fn csv_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            csv_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "csv") {
            out.push(p);
        }
    }
}

fn main() {
    let mut nab: Option<PathBuf> = None;
    let mut out = std::env::temp_dir().join("ophion-nab");
    let mut cfg = DetectorConfig::default();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--nab" => nab = it.next().map(PathBuf::from),
            "--out" => out = it.next().map(PathBuf::from).unwrap_or(out),
            // Settings other than the defaults, as JSON (for exploring).
            "--config" => {
                cfg = serde_json::from_str(&it.next().unwrap_or_default()).expect("--config JSON")
            }
            _ => {}
        }
    }
    let Some(nab) = nab else {
        smoke(&cfg);
        return;
    };
    let data = nab.join("data");
    let mut files = Vec::new();
    csv_files(&data, &mut files);
    let series: Vec<_> = files.iter().map(|f| (f, read_series(f))).collect();
    let points: usize = series.iter().map(|(_, s)| s.len()).sum();

    // Throughput: detection only, all files, best of three passes.
    let mut best = f64::INFINITY;
    let mut checksum = 0.0;
    for _ in 0..3 {
        let started = Instant::now();
        for (_, s) in &series {
            let mut d = Detector::new(cfg.clone());
            for (_, t, v) in s {
                checksum += d.update(*t, *v).score;
            }
        }
        best = best.min(started.elapsed().as_secs_f64());
    }
    std::hint::black_box(checksum);

    for (path, s) in &series {
        let rel = path.strip_prefix(&data).expect("under data");
        let target = out.join(rel);
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        let mut w = std::io::BufWriter::new(std::fs::File::create(&target).expect("create"));
        writeln!(w, "timestamp,value,anomaly_score").expect("write");
        let mut d = Detector::new(cfg.clone());
        for (text, t, v) in s {
            let p = d.update(*t, *v);
            writeln!(w, "{text},{v},{:.9}", p.score).expect("write");
        }
    }
    println!(
        "{} files, {points} points; streaming {:.2} M points/s on one core ({:.0} ns/point); results in {}",
        series.len(),
        points as f64 / best / 1e6,
        best * 1e9 / points as f64,
        out.display()
    );
}

/// A daily sine with noise and one spike: the spike scores highest.
fn smoke(cfg: &DetectorConfig) {
    let mut d = Detector::new(cfg.clone());
    let mut top = (0usize, 0.0f64);
    let mut state = 12345u64;
    for i in 0..4000usize {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let noise = ((state >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 0.2;
        let day = (i as f64 / 288.0 * std::f64::consts::TAU).sin();
        let v = 10.0 + day + noise + if i == 3000 { 8.0 } else { 0.0 };
        let s = d.update(i as i64 * 300, v).score;
        assert!((0.0..=1.0).contains(&s));
        if s > top.1 {
            top = (i, s);
        }
    }
    assert!((3000..3010).contains(&top.0), "top score at {top:?}");
    println!(
        "smoke: the spike at 3000 scores {:.3} (point {})",
        top.1, top.0
    );
}
