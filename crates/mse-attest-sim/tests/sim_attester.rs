//! Auto-detection with the simulated fallback: real interfaces win, the sim attester stands
//! in only when allowed and refuses to run next to real hardware; its sealing key.

#[path = "../../mse-attest/tests/vectors/mod.rs"]
mod vectors;
use vectors::fake_host;

use mse_attest::attester::{AttestError, HostProbe};
use mse_attest::{EvidenceKind, TeeKind};
use mse_attest_sim::{SimAttesterConfig, SimEnclave, detect_or_sim};

fn sim_config() -> SimAttesterConfig {
    SimAttesterConfig {
        seed: [1; 32],
        enclave: SimEnclave {
            mr_enclave: [2; 32],
            mr_signer: [3; 32],
            isv_prod_id: 0,
            isv_svn: 0,
            debug: false,
        },
    }
}

#[test]
fn detection_prefers_real_interfaces_and_falls_back_to_sim_only_when_allowed() {
    let gramine = fake_host(&["dev/attestation/quote"]);
    let a = detect_or_sim(&HostProbe::with_root(gramine.path()), Some(sim_config())).unwrap();
    assert_eq!(
        (a.kind(), a.tee_kind()),
        (TeeKind::GramineSgx, EvidenceKind::Sgx)
    );

    let tdx = fake_host(&["sys/kernel/config/tsm/report/", "dev/tdx_guest"]);
    let a = detect_or_sim(&HostProbe::with_root(tdx.path()), Some(sim_config())).unwrap();
    assert_eq!((a.kind(), a.tee_kind()), (TeeKind::Tdx, EvidenceKind::Tdx));

    let snp = fake_host(&["sys/kernel/config/tsm/report/", "dev/sev-guest"]);
    let a = detect_or_sim(&HostProbe::with_root(snp.path()), None).unwrap();
    assert_eq!(
        (a.kind(), a.tee_kind()),
        (TeeKind::SevSnp, EvidenceKind::SevSnp)
    );

    let plain = tempfile::tempdir().unwrap();
    let a = detect_or_sim(&HostProbe::with_root(plain.path()), Some(sim_config())).unwrap();
    assert_eq!((a.kind(), a.tee_kind()), (TeeKind::Sim, EvidenceKind::Sgx));
    let err = detect_or_sim(&HostProbe::with_root(plain.path()), None).unwrap_err();
    assert!(matches!(err, AttestError::NoTee));
    assert_eq!(
        err.to_string(),
        "no TEE interface found (neither Gramine's /dev/attestation nor configfs-tsm)"
    );

    // An SGX host without Gramine: no usable interface, and the sim refuses to stand in.
    let sgx = fake_host(&["dev/sgx_enclave"]);
    let err = detect_or_sim(&HostProbe::with_root(sgx.path()), Some(sim_config())).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "refusing to run the simulated TEE: a real TEE is present ({})",
            sgx.path().join("dev/sgx_enclave").display()
        )
    );
}

#[test]
fn sim_sealing_key_is_the_seed_and_measurement_one() {
    let cfg = sim_config();
    let plain = tempfile::tempdir().unwrap();
    let sim = detect_or_sim(&HostProbe::with_root(plain.path()), Some(cfg.clone())).unwrap();
    assert_eq!(
        sim.sealing_key().unwrap().as_slice(),
        mse_attest_sim::sealing_key(&cfg.seed, &cfg.enclave.mr_enclave).as_slice()
    );
}
