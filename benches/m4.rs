//! Forecasting on M4 Hourly: `ophion_ai::forecast::forecast` (default
//! configuration) on each of the 414 training series, horizon 48; writes
//! the forecasts in the layout of `Hourly-test.csv` for
//! `../shared/tools/m4_score.py` and reports the 95% interval coverage on
//! the test values.
//!
//! Run (absolute data path: benches run in `benches/`):
//! `cargo bench -p ophion-benches --bench m4 -- --m4 $PWD/../shared/data/m4-hourly --out /tmp/m4.csv`
//! then `python3 ../shared/tools/m4_score.py --m4 ../shared/data/m4-hourly --forecasts /tmp/m4.csv`.
//! Without `--m4` (as in `cargo test --all-targets`) it forecasts a small
//! synthetic series and checks it.

use std::{io::Write as _, path::PathBuf, time::Instant};

use ophion_ai::forecast::{ForecastConfig, forecast};

const HORIZON: usize = 48;

/// `(id, values)` rows of an M4 CSV (quoted id, then values; blanks end a
/// series).
fn read(path: &std::path::Path) -> Vec<(String, Vec<f64>)> {
    let text = std::fs::read_to_string(path).expect("read csv");
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split(',').map(|x| x.trim_matches('"'));
            let id = f.next()?.to_owned();
            let v = f
                .filter(|x| !x.is_empty() && *x != "NA")
                .filter_map(|x| x.parse().ok())
                .collect();
            Some((id, v))
        })
        .collect()
}

fn main() {
    let mut m4: Option<PathBuf> = None;
    let mut out = std::env::temp_dir().join("ophion-m4.csv");
    let mut cfg = ForecastConfig::default();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--m4" => m4 = it.next().map(PathBuf::from),
            "--out" => out = it.next().map(PathBuf::from).unwrap_or(out),
            // Settings other than the defaults, as JSON (for exploring).
            "--config" => {
                cfg = serde_json::from_str(&it.next().unwrap_or_default()).expect("--config JSON")
            }
            _ => {}
        }
    }
    let Some(m4) = m4 else {
        smoke(&cfg);
        return;
    };
    let train = read(&m4.join("Hourly-train.csv"));
    let test = read(&m4.join("Hourly-test.csv"));
    let started = Instant::now();
    let forecasts: Vec<_> = train
        .iter()
        .map(|(_, y)| forecast(y, HORIZON, &cfg))
        .collect();
    let elapsed = started.elapsed();
    let mut w = std::io::BufWriter::new(std::fs::File::create(&out).expect("create"));
    let header: Vec<String> = (1..=HORIZON).map(|i| format!("F{i}")).collect();
    writeln!(w, "id,{}", header.join(",")).expect("write");
    let (mut inside, mut total) = (0usize, 0usize);
    let mut periods = std::collections::BTreeMap::new();
    for ((id, _), f) in train.iter().zip(&forecasts) {
        let row: Vec<String> = f.point.iter().map(|v| format!("{v:.4}")).collect();
        writeln!(w, "{id},{}", row.join(",")).expect("write");
        *periods.entry(f.period).or_insert(0) += 1;
        if let Some((_, actual)) = test.iter().find(|(t, _)| t == id) {
            for (h, a) in actual.iter().enumerate().take(HORIZON) {
                total += 1;
                inside += usize::from(f.lower[h] <= *a && *a <= f.upper[h]);
            }
        }
    }
    println!(
        "{} series in {:.2} s; 95% interval coverage {:.1}% ({inside} of {total} test values); periods found {periods:?}; forecasts in {}",
        train.len(),
        elapsed.as_secs_f64(),
        100.0 * inside as f64 / total.max(1) as f64,
        out.display()
    );
}

/// Four weeks of a daily cycle: the forecast follows the cycle.
fn smoke(cfg: &ForecastConfig) {
    let y: Vec<f64> = (0..24 * 28)
        .map(|i| 100.0 + 30.0 * ((i % 24) as f64 / 24.0 * std::f64::consts::TAU).sin())
        .collect();
    let f = forecast(&y, HORIZON, cfg);
    assert_eq!(f.period, Some(24));
    for (h, p) in f.point.iter().enumerate() {
        let truth = 100.0 + 30.0 * ((h % 24) as f64 / 24.0 * std::f64::consts::TAU).sin();
        assert!((p - truth).abs() < 1e-6, "step {h}: {p} against {truth}");
    }
    println!("smoke: a clean daily cycle is forecast exactly");
}
