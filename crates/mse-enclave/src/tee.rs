//! The attester for the launch spec's TEE, and the sealing key of the app's storage.

use std::path::Path;

use anyhow::{Context, bail};
use mse_attest::attester::{Attester, GramineAttester, HostProbe, TsmAttester};
use mse_attest_sim::{SimAttester, SimEnclave, SimSnpAttester};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use mse_attest::evidence::EvidenceKind;
use mse_launch::TeeKind;

/// Salt of the $HOME key derivation (HKDF-SHA256, info = the measurement).
const HOME_KEY_SALT: &[u8] = b"mse-enclave-home-key-v1";

/// Read the node's sim seed: exactly 32 raw bytes, or 64 hex characters (surrounding
/// whitespace allowed).
pub fn read_sim_seed(path: &Path) -> anyhow::Result<Zeroizing<[u8; 32]>> {
    let bytes = Zeroizing::new(
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
    );
    let mut seed = Zeroizing::new([0u8; 32]);
    if bytes.len() == 32 {
        seed.copy_from_slice(&bytes);
        return Ok(seed);
    }
    let text = bytes.trim_ascii();
    if text.len() == 64 && hex::decode_to_slice(text, seed.as_mut_slice()).is_ok() {
        return Ok(seed);
    }
    bail!(
        "{}: a sim seed is 32 raw bytes or 64 hex characters ({} bytes found)",
        path.display(),
        bytes.len()
    )
}

/// The sim enclave's MRSIGNER: a fixed, documented value (the sim TEE has no signing key).
pub fn sim_mr_signer() -> [u8; 32] {
    Sha256::digest(b"mse-enclave sim signer v1").into()
}

/// Where a sim-snp guest keeps the launch digest the launcher handed over (96 hex characters),
/// next to the sim seed: what a real SNP firmware would have measured.
pub const SNP_MEASUREMENT_FILE: &str = "snp-measurement";

/// The attester for `tee`; the sim one reports `measurement` (the spec hash) as MRENCLAVE, the
/// sim-snp one the launcher's launch digest as MEASUREMENT and `measurement` as HOST_DATA.
pub fn attester(
    tee: TeeKind,
    sim_seed: Option<&Path>,
    measurement: [u8; 32],
) -> anyhow::Result<Box<dyn Attester>> {
    let probe = HostProbe::system();
    Ok(match tee {
        TeeKind::SimSnp => {
            let path = sim_seed.context("TEE sim-snp: only a VM launched by mse-launch has it")?;
            let seed = read_sim_seed(path)?;
            let file = path.with_file_name(SNP_MEASUREMENT_FILE);
            let text = std::fs::read_to_string(&file).with_context(|| {
                format!(
                    "TEE sim-snp: cannot read {} (only a VM launched by mse-launch has it)",
                    file.display()
                )
            })?;
            let mut launch_digest = [0u8; 48];
            hex::decode_to_slice(text.trim_ascii(), &mut launch_digest)
                .with_context(|| format!("{}: not 96 hex characters", file.display()))?;
            Box::new(SimSnpAttester::with_probe(
                &probe,
                &seed,
                launch_digest,
                measurement,
            )?)
        }
        TeeKind::Sim => {
            let path = sim_seed.context("the sim TEE needs --sim-seed")?;
            let seed = read_sim_seed(path)?;
            let enclave = SimEnclave {
                mr_enclave: measurement,
                mr_signer: sim_mr_signer(),
                isv_prod_id: 1,
                isv_svn: 1,
                debug: false,
            };
            Box::new(SimAttester::with_probe(&probe, &seed, enclave)?)
        }
        TeeKind::GramineSgx => {
            if !probe.has_gramine() {
                bail!("TEE gramine-sgx: Gramine's /dev/attestation is not available here");
            }
            Box::new(GramineAttester::new(probe.gramine_dir()))
        }
        TeeKind::SevSnp | TeeKind::Tdx => {
            let want = if tee == TeeKind::Tdx {
                EvidenceKind::Tdx
            } else {
                EvidenceKind::SevSnp
            };
            match probe.tsm_tee() {
                Some(found) if found == want => Box::new(TsmAttester::new(probe.tsm_dir(), found)),
                Some(found) => bail!("TEE {tee}: this guest's configfs-tsm provider is {found}"),
                None => bail!("TEE {tee}: no configfs-tsm guest interface here"),
            }
        }
    })
}

/// The key of the app's sealed $HOME: HKDF(platform sealing key, measurement), so that another
/// code version (another measurement) derives an unrelated key.
pub fn home_key(attester: &dyn Attester, measurement: &[u8; 32]) -> anyhow::Result<[u8; 32]> {
    let platform = attester
        .sealing_key()
        .context("cannot get the platform sealing key")?;
    Ok(mse_crypto::derive_key(
        &platform,
        HOME_KEY_SALT,
        measurement,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_forms() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        std::fs::write(&raw, [7u8; 32]).unwrap();
        assert_eq!(*read_sim_seed(&raw).unwrap(), [7u8; 32]);
        let hexf = dir.path().join("hex");
        std::fs::write(&hexf, format!("{}\n", "07".repeat(32))).unwrap();
        assert_eq!(*read_sim_seed(&hexf).unwrap(), [7u8; 32]);
        let bad = dir.path().join("bad");
        std::fs::write(&bad, "xyz").unwrap();
        assert_eq!(
            read_sim_seed(&bad).unwrap_err().to_string(),
            format!(
                "{}: a sim seed is 32 raw bytes or 64 hex characters (3 bytes found)",
                bad.display()
            )
        );
    }

    #[test]
    fn sim_snp_reports_the_launch_digest_and_binds_the_spec() {
        let dir = tempfile::tempdir().unwrap();
        let seed = dir.path().join("sim-seed");
        std::fs::write(&seed, "07".repeat(32)).unwrap();
        let err = attester(TeeKind::SimSnp, Some(&seed), [9; 32])
            .err()
            .unwrap();
        assert!(
            err.to_string().starts_with(&format!(
                "TEE sim-snp: cannot read {}",
                dir.path().join(SNP_MEASUREMENT_FILE).display()
            )),
            "{err}"
        );
        std::fs::write(dir.path().join(SNP_MEASUREMENT_FILE), "ab".repeat(48)).unwrap();
        let a = attester(TeeKind::SimSnp, Some(&seed), [9; 32]).unwrap();
        let evidence = a.evidence(&[5; 64]).unwrap();
        let mse_attest::Evidence::SevSnp(r) = mse_attest::Evidence::parse(&evidence).unwrap()
        else {
            panic!("not an SNP report")
        };
        assert_eq!(
            (r.measurement, r.host_data, r.report_data),
            ([0xab; 48], [9; 32], [5; 64])
        );
    }
}
