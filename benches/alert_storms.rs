//! Smart Alerts on the storm generator (`ophion_ai::storm_sim`):
//! alert-to-notification compression, pairwise grouping F1 and the
//! root-cause alert first, on the development and the held-out seeds.
//!
//! - `cargo bench -p ophion-benches --bench alert_storms -- --full`: both
//!   seed ranges with the defaults (what the server runs);
//! - `-- --sweep`: settings tried on the development seeds only, best
//!   first, then the best one's held-out score;
//! - without arguments (as in `cargo test --all-targets`): ten development
//!   seeds, a smoke check.

use ophion_ai::{
    incidents::{CorrelateConfig, Policy},
    storm_sim::{DEVELOPMENT_SEEDS, HELD_OUT_SEEDS, Score, score},
};

fn show(name: &str, s: &Score) {
    println!(
        "{name}: storms {} alerts' state changes {} notifications {} compression {:.3} F1 {:.3} (precision {:.3} recall {:.3}) root first {:.3} (at the first message {:.3})",
        s.storms,
        s.raw,
        s.sent,
        s.compression(),
        s.f1(),
        s.true_pairs as f64 / s.predicted_pairs.max(1) as f64,
        s.true_pairs as f64 / s.truth_pairs.max(1) as f64,
        s.root_first_rate(),
        s.root_first_at_first_message as f64 / s.storms.max(1) as f64
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    let policy = Policy::default();
    let defaults = CorrelateConfig::default();
    if has("--sweep") {
        let mut results = Vec::new();
        for window_secs in [300, 600, 900, 1800] {
            for max_hops in [1, 2, 3] {
                for hop_decay in [0.6, 0.8] {
                    for min_score in [0.4, 0.5, 0.7] {
                        let cfg = CorrelateConfig {
                            window_secs,
                            max_hops,
                            hop_decay,
                            min_score,
                            ..defaults.clone()
                        };
                        let s = score(DEVELOPMENT_SEEDS, &cfg, &policy);
                        results.push((s.f1() + s.compression() + s.root_first_rate(), s, cfg));
                    }
                }
            }
        }
        results.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (_, s, c) in results.iter().take(10) {
            show(
                &format!(
                    "development window {} hops {} decay {} min_score {}",
                    c.window_secs, c.max_hops, c.hop_decay, c.min_score
                ),
                s,
            );
        }
        if let Some((_, _, best)) = results.first() {
            show(
                "held-out, best development setting",
                &score(HELD_OUT_SEEDS, best, &policy),
            );
        }
        return;
    }
    if has("--full") {
        show("development", &score(DEVELOPMENT_SEEDS, &defaults, &policy));
        show("held-out", &score(HELD_OUT_SEEDS, &defaults, &policy));
        // A channel with a digest of low-priority incidents (opt-in):
        // the period is chosen on the development seeds, reported on both.
        for digest_secs in [600, 900, 1800] {
            let p = Policy {
                digest_secs,
                ..policy
            };
            show(
                &format!("development, digest {digest_secs} s"),
                &score(DEVELOPMENT_SEEDS, &defaults, &p),
            );
            show(
                &format!("held-out, digest {digest_secs} s"),
                &score(HELD_OUT_SEEDS, &defaults, &p),
            );
        }
        return;
    }
    let s = score(0..10, &defaults, &policy);
    show("smoke (development seeds 0..10)", &s);
    assert!(s.storms > 0 && s.sent < s.raw, "{s:?}");
}
