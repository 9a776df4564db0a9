//! Verification with attacker-chosen collateral against real evidence: the real Intel SGX, TDX
//! v4 and TDX v5 sample quotes with their real collateral, the sim SGX quote with the sim
//! PKI's collateral (TCB info and QE identity built from fuzzed fields and validly re-signed),
//! and the real Milan SEV-SNP report with its real VCEK; then any field (TCB info, QE
//! identity, their signatures and issuer chains, CRLs, PCK chain, VCEK, ASK/ARK chain)
//! replaced, cut or bit-flipped. The verifier must answer (trusted or not), never panic; an
//! untouched vector stays trusted.
#![no_main]

#[path = "../common/sim.rs"]
mod sim;

use std::sync::LazyLock;
use std::time::{Duration, UNIX_EPOCH};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mse_attest::evidence::Evidence;
use mse_attest::{Collateral, Policy, TrustAnchors, verify};
use sim::{SIM, Signed};

const JULY_2025: u64 = 1_751_328_000;
const MARCH_2026: u64 = 1_772_323_200;

struct Vector {
    evidence: Evidence,
    collateral: Collateral,
    now: u64,
    /// The verdict on the untouched vector (an unchanged input must get it again).
    trusted: bool,
}

macro_rules! data {
    ($p:literal) => {
        include_bytes!(concat!("../../crates/mse-attest/tests/data/", $p))
    };
}

static REAL: LazyLock<Vec<Vector>> = LazyLock::new(|| {
    let v = |e: &[u8], c: &[u8], now| {
        let mut v = Vector {
            evidence: Evidence::parse(e).expect("sample evidence"),
            collateral: Collateral::from_bytes(c).expect("sample collateral"),
            now,
            trusted: false,
        };
        let report = verify(
            &v.evidence,
            &v.collateral,
            &TrustAnchors::intel(),
            &policy(now, 0),
            None,
        );
        v.trusted = report.trusted();
        v
    };
    vec![
        v(
            data!("dcap/sgx_quote"),
            data!("dcap/sgx_quote_collateral.json"),
            JULY_2025,
        ),
        v(
            data!("dcap/tdx_quote"),
            data!("dcap/tdx_quote_collateral.json"),
            JULY_2025,
        ),
        v(
            data!("dcap/tdx_quote_outdated"),
            data!("dcap/tdx_quote_outdated_collateral.json"),
            MARCH_2026,
        ),
        v(
            data!("sev-snp/report_milan.hex"),
            data!("sev-snp/vcek_milan.der"),
            MARCH_2026,
        ),
    ]
});

#[derive(Arbitrary, Debug)]
enum Change {
    Replace(Vec<u8>),
    Truncate(u16),
    Flip { at: u16, mask: u8 },
}

impl Change {
    fn apply(&self, bytes: &mut Vec<u8>) {
        match self {
            Change::Replace(b) => *bytes = b.clone(),
            Change::Truncate(n) => bytes.truncate(usize::from(*n)),
            Change::Flip { at, mask } => {
                if !bytes.is_empty() {
                    let i = usize::from(*at) % bytes.len();
                    bytes[i] ^= mask;
                }
            }
        }
    }

    fn apply_str(&self, s: &mut String) {
        let mut b = std::mem::take(s).into_bytes();
        self.apply(&mut b);
        *s = String::from_utf8_lossy(&b).into_owned();
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// 0..=3: the real vectors; anything else: the sim quote.
    vector: u8,
    tcb_doc: Signed,
    qe_doc: Signed,
    changes: Vec<(u8, Change)>,
    /// Seconds added to the verification time.
    shift: i32,
}

fn apply(collateral: &mut Collateral, field: u8, change: &Change) {
    match collateral {
        Collateral::Dcap(c) => match field % 10 {
            0 => change.apply_str(&mut c.pck_crl_issuer_chain),
            1 => change.apply(&mut c.root_ca_crl),
            2 => change.apply(&mut c.pck_crl),
            3 => change.apply_str(&mut c.tcb_info_issuer_chain),
            4 => change.apply_str(&mut c.tcb_info),
            5 => change.apply(&mut c.tcb_info_signature),
            6 => change.apply_str(&mut c.qe_identity_issuer_chain),
            7 => change.apply_str(&mut c.qe_identity),
            8 => change.apply(&mut c.qe_identity_signature),
            _ => change.apply_str(c.pck_certificate_chain.get_or_insert_default()),
        },
        Collateral::SevSnp { vek_der, chain_der } => match field as usize % (chain_der.len() + 2) {
            0 => change.apply(vek_der),
            1 => chain_der.push(vek_der.clone()),
            i => change.apply(&mut chain_der[i - 2]),
        },
        Collateral::Unavailable(_) => {}
    }
}

fn policy(now: u64, shift: i32) -> Policy {
    Policy {
        allow_simulation: true,
        now: Some(UNIX_EPOCH + Duration::from_secs(now.saturating_add_signed(i64::from(shift)))),
        ..Policy::default()
    }
}

fuzz_target!(|input: Input| {
    let (evidence, mut collateral, now, anchors, baseline) =
        match REAL.get(usize::from(input.vector)) {
            Some(v) => (
                &v.evidence,
                v.collateral.clone(),
                v.now,
                TrustAnchors::intel(),
                Some(v.trusted),
            ),
            None => {
                let s = &*SIM;
                let mut c = s
                    .pki
                    .collateral(&Default::default())
                    .expect("sim collateral");
                (c.tcb_info, c.tcb_info_signature) = input.tcb_doc.document(true);
                (c.qe_identity, c.qe_identity_signature) = input.qe_doc.document(false);
                let real = matches!(
                    (&input.tcb_doc, &input.qe_doc),
                    (Signed::Real, Signed::Real)
                )
                .then_some(true);
                (
                    &s.evidence,
                    Collateral::Dcap(c),
                    1_767_225_600,
                    s.anchors.clone(),
                    real,
                )
            }
        };
    for (field, change) in input.changes.iter().take(4) {
        apply(&mut collateral, *field, change);
    }
    let report = verify(
        evidence,
        &collateral,
        &anchors,
        &policy(now, input.shift),
        None,
    );
    let _ = (report.trusted(), report.error(), report.to_string());
    if let Some(expected) = baseline
        && input.changes.is_empty()
        && input.shift == 0
    {
        // The sim vector with both documents as issued must verify; a real one as it did.
        assert_eq!(report.trusted(), expected, "{report}");
    }
});
