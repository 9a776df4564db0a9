//! Random corruption anywhere in real evidence (signature, QE report, certificate chain,
//! trailing bytes) never panics, and evidence is trusted only if its signed part is intact.

use mse_attest::{Collateral, Evidence};

mod vectors;
use vectors::{at_accepting_config, data, verify_intel};

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_corruption_never_panics_and_never_forges() {
    let policy = at_accepting_config(1_751_328_000);
    let cases = [
        (
            "dcap/sgx_quote",
            "dcap/sgx_quote_collateral.json",
            48 + 384,
            400,
        ),
        (
            "dcap/tdx_quote",
            "dcap/tdx_quote_collateral.json",
            48 + 584,
            400,
        ),
    ];
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    for (quote, collateral, signed_len, rounds) in cases {
        // The SNP report is stored as hex; corrupt its binary form.
        let original = Evidence::parse(&data(quote)).unwrap().raw().to_vec();
        let collateral = Collateral::from_bytes(&data(collateral)).unwrap();
        for round in 0..rounds {
            let mut raw = original.clone();
            // 1 to 4 corrupted bytes, anywhere; sometimes also a truncation.
            for _ in 0..=rng.below(4) {
                let pos = rng.below(raw.len());
                raw[pos] ^= (rng.below(255) + 1) as u8;
            }
            if rng.below(8) == 0 {
                raw.truncate(rng.below(raw.len()) + 1);
            }
            let Ok(evidence) = Evidence::parse(&raw) else {
                continue;
            };
            let report = verify_intel(&evidence, &collateral, &policy);
            if report.trusted() {
                assert_eq!(
                    raw[..signed_len],
                    original[..signed_len],
                    "{quote}: round {round} trusted with a changed signed part"
                );
            }
        }
    }
}
