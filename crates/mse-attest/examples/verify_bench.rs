//! Verification latency of one SGX quote with offline collateral (the real dcap-qvl sample):
//! parse + full verification, repeated; prints the median and spread. Run via
//! `bench/attest_verify.sh`.

use std::time::{Duration, Instant, UNIX_EPOCH};

use mse_attest::{Collateral, Evidence, Policy, TrustAnchors, verify};

fn main() {
    let iterations: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("iterations must be a number"))
        .unwrap_or(1000);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/dcap");
    let quote = std::fs::read(format!("{dir}/sgx_quote")).expect("read quote");
    let collateral = Collateral::from_file(format!("{dir}/sgx_quote_collateral.json").as_ref())
        .expect("read collateral");
    let anchors = TrustAnchors::intel();
    let mut policy = Policy {
        // 2025-07-01T00:00:00Z, inside the collateral's validity window.
        now: Some(UNIX_EPOCH + Duration::from_secs(1_751_328_000)),
        ..Policy::default()
    };
    policy
        .accept_tcb(["ConfigurationAndSWHardeningNeeded"])
        .expect("known status");

    let once = || {
        let evidence = Evidence::parse(&quote).expect("parse");
        let report = verify(&evidence, &collateral, &anchors, &policy, None);
        assert!(report.trusted(), "{report}");
    };
    for _ in 0..iterations.min(50) {
        once();
    }
    let mut samples: Vec<Duration> = (0..iterations)
        .map(|_| {
            let start = Instant::now();
            once();
            start.elapsed()
        })
        .collect();
    samples.sort();
    let pct = |p: usize| samples[(samples.len() - 1) * p / 100];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "SGX quote verification (parse + verify, offline collateral), {iterations} runs: \
         median {:.3} ms, p10 {:.3} ms, p90 {:.3} ms, min {:.3} ms, max {:.3} ms, mean {:.3} ms",
        ms(pct(50)),
        ms(pct(10)),
        ms(pct(90)),
        ms(samples[0]),
        ms(samples[samples.len() - 1]),
        ms(mean),
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
