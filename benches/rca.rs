//! Root-cause ranking on the fault-injection shop (`ophion_ai::rca_sim`):
//! AC@1 and Avg@5 on the development seeds and on the held-out seeds.
//!
//! - `cargo bench -p ophion-benches --bench rca -- --full`: both seed
//!   ranges with the default settings (the settings the server runs);
//! - `-- --sweep`: the grid of settings tried on the development seeds
//!   only, best first, then the best one's held-out score;
//! - without arguments (as in `cargo test --all-targets`): twenty
//!   development seeds, a smoke check.

use ophion_ai::{
    rca::{RcaConfig, rank},
    rca_sim::{self, Case, DEVELOPMENT_SEEDS, HELD_OUT_SEEDS},
};

/// (AC@1, Avg@5) of `cfg` on `cases`.
fn score(cases: &[Case], cfg: &RcaConfig) -> (f64, f64) {
    let ranks: Vec<Option<usize>> = cases
        .iter()
        .map(|c| {
            rank(&c.spans, c.incident.0, c.incident.1, cfg)
                .iter()
                .position(|x| x.service == c.root_service)
        })
        .collect();
    let at = |k: usize| {
        ranks.iter().filter(|r| r.is_some_and(|r| r < k)).count() as f64 / ranks.len() as f64
    };
    (at(1), (1..=5).map(at).sum::<f64>() / 5.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    let defaults = RcaConfig::default();
    if has("--sweep") {
        let dev: Vec<Case> = DEVELOPMENT_SEEDS.map(rca_sim::generate).collect();
        let mut results = Vec::new();
        for z_low in [1.0, 1.5, 2.0, 2.5] {
            for z_high in [3.0, 4.0, 5.0] {
                for errors_per_doubling in [0.05, 0.1, 0.2] {
                    for impact_weight in [0.3, 0.5, 0.7] {
                        let cfg = RcaConfig {
                            z_low,
                            z_high,
                            errors_per_doubling,
                            impact_weight,
                            ..defaults.clone()
                        };
                        let (ac1, avg5) = score(&dev, &cfg);
                        results.push((ac1, avg5, cfg));
                    }
                }
            }
        }
        results.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.total_cmp(&a.1)));
        for (ac1, avg5, c) in results.iter().take(10) {
            println!(
                "development AC@1 {ac1:.2} Avg@5 {avg5:.2}: z_low {} z_high {} errors_per_doubling {} impact_weight {}",
                c.z_low, c.z_high, c.errors_per_doubling, c.impact_weight
            );
        }
        let held: Vec<Case> = HELD_OUT_SEEDS.map(rca_sim::generate).collect();
        let (ac1, avg5) = score(&held, &results[0].2);
        println!("the best on held-out seeds: AC@1 {ac1:.2} Avg@5 {avg5:.2}");
        return;
    }
    if has("--full") {
        for (name, seeds) in [
            ("development", DEVELOPMENT_SEEDS),
            ("held-out", HELD_OUT_SEEDS),
        ] {
            let cases: Vec<Case> = seeds.map(rca_sim::generate).collect();
            let (ac1, avg5) = score(&cases, &defaults);
            println!(
                "{name} seeds ({} cases): AC@1 {ac1:.2} Avg@5 {avg5:.2}",
                cases.len()
            );
        }
        return;
    }
    let cases: Vec<Case> = (0..20).map(rca_sim::generate).collect();
    let (ac1, avg5) = score(&cases, &defaults);
    println!("smoke, 20 development seeds: AC@1 {ac1:.2} Avg@5 {avg5:.2}");
    assert!(ac1 >= 0.6, "AC@1 {ac1:.2} on twenty development seeds");
}
