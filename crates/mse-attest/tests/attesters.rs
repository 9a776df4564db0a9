//! Attesters against fake hosts: Gramine's /dev/attestation, configfs-tsm (an in-memory
//! kernel), and auto-detection of the real ones (the sim fallback is tested in mse-attest-sim).

mod vectors;
use vectors::fake_host;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mse_attest::attester::{
    AttestError, Attester, ConfigFs, GramineAttester, HostProbe, TsmAttester, detect,
};
use mse_attest::{EvidenceKind, TeeKind};

fn gramine_dir(kind: &str, quote: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("attestation_type"), kind).unwrap();
    std::fs::write(dir.path().join("quote"), quote).unwrap();
    std::fs::write(dir.path().join("user_report_data"), b"").unwrap();
    dir
}

#[test]
fn gramine_writes_report_data_and_reads_the_quote() {
    let dir = gramine_dir("dcap\n", b"QUOTE-BYTES");
    let attester = GramineAttester::new(dir.path());
    assert_eq!(attester.kind(), TeeKind::GramineSgx);
    assert_eq!(attester.evidence(&[9; 64]).unwrap(), b"QUOTE-BYTES");
    assert_eq!(
        std::fs::read(dir.path().join("user_report_data")).unwrap(),
        vec![9; 64]
    );
}

#[test]
fn gramine_refuses_non_dcap_and_reports_missing_files() {
    let epid = gramine_dir("epid", b"x");
    assert_eq!(
        GramineAttester::new(epid.path())
            .evidence(&[0; 64])
            .unwrap_err()
            .to_string(),
        "Gramine attestation type is \"epid\", expected \"dcap\""
    );
    let empty = gramine_dir("dcap", b"");
    assert_eq!(
        GramineAttester::new(empty.path())
            .evidence(&[0; 64])
            .unwrap_err()
            .to_string(),
        format!("{} is empty", empty.path().join("quote").display())
    );
    let missing = tempfile::tempdir().unwrap();
    let err = GramineAttester::new(missing.path())
        .evidence(&[0; 64])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "{}: ",
            missing.path().join("attestation_type").display()
        )),
        "{err}"
    );
}

/// An in-memory configfs-tsm: mkdir creates provider/generation, writing inblob bumps the
/// generation and produces outblob = provider ‖ inblob.
#[derive(Debug)]
struct FakeTsm {
    provider: &'static str,
    files: Mutex<HashMap<PathBuf, Vec<u8>>>,
    dirs: Mutex<Vec<PathBuf>>,
    /// Bump the generation when outblob is read (another writer raced us).
    racy: bool,
}

impl FakeTsm {
    fn new(provider: &'static str, racy: bool) -> Arc<FakeTsm> {
        Arc::new(FakeTsm {
            provider,
            files: Mutex::default(),
            dirs: Mutex::default(),
            racy,
        })
    }
}

impl ConfigFs for FakeTsm {
    fn create_dir(&self, path: &Path) -> std::io::Result<()> {
        let mut files = self.files.lock().unwrap();
        files.insert(
            path.join("provider"),
            format!("{}\n", self.provider).into_bytes(),
        );
        files.insert(path.join("generation"), b"0\n".to_vec());
        self.dirs.lock().unwrap().push(path.to_owned());
        Ok(())
    }
    fn remove_dir(&self, path: &Path) -> std::io::Result<()> {
        self.dirs.lock().unwrap().retain(|d| d != path);
        Ok(())
    }
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        let mut files = self.files.lock().unwrap();
        if self.racy && path.ends_with("outblob") {
            files.insert(path.with_file_name("generation"), b"7\n".to_vec());
        }
        files
            .get(path)
            .cloned()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }
    fn write(&self, path: &Path, data: &[u8]) -> std::io::Result<()> {
        let mut files = self.files.lock().unwrap();
        let mut out = self.provider.as_bytes().to_vec();
        out.extend_from_slice(data);
        files.insert(path.with_file_name("outblob"), out);
        files.insert(path.with_file_name("generation"), b"1\n".to_vec());
        files.insert(path.to_owned(), data.to_vec());
        Ok(())
    }
}

#[test]
fn tsm_requests_a_report_and_cleans_up() {
    let fs = FakeTsm::new("tdx_guest", false);
    let attester = TsmAttester::with_fs("/tsm/report", EvidenceKind::Tdx, fs.clone());
    let report = attester.evidence(&[3; 64]).unwrap();
    let mut expected = b"tdx_guest".to_vec();
    expected.extend_from_slice(&[3; 64]);
    assert_eq!(report, expected);
    assert_eq!(attester.tee_kind(), EvidenceKind::Tdx);
    assert!(
        fs.dirs.lock().unwrap().is_empty(),
        "report entry left behind"
    );
}

#[test]
fn tsm_detects_a_concurrent_writer_and_unknown_providers() {
    let racy = TsmAttester::with_fs("/r", EvidenceKind::SevSnp, FakeTsm::new("sev_guest", true));
    assert_eq!(
        racy.evidence(&[0; 64]).unwrap_err().to_string(),
        "configfs-tsm report was regenerated concurrently (generation 1 -> 7)"
    );
    let odd = TsmAttester::with_fs(
        "/r",
        EvidenceKind::SevSnp,
        FakeTsm::new("arm_cca_guest", false),
    );
    assert_eq!(
        odd.evidence(&[0; 64]).unwrap_err().to_string(),
        "configfs-tsm provider \"arm_cca_guest\" is not supported (expected tdx_guest or sev_guest)"
    );
}

#[test]
fn detection_finds_the_real_interfaces() {
    let gramine = fake_host(&["dev/attestation/quote"]);
    let a = detect(&HostProbe::with_root(gramine.path())).unwrap();
    assert_eq!(
        (a.kind(), a.tee_kind()),
        (TeeKind::GramineSgx, EvidenceKind::Sgx)
    );

    let tdx = fake_host(&["sys/kernel/config/tsm/report/", "dev/tdx_guest"]);
    let a = detect(&HostProbe::with_root(tdx.path())).unwrap();
    assert_eq!((a.kind(), a.tee_kind()), (TeeKind::Tdx, EvidenceKind::Tdx));

    let snp = fake_host(&["sys/kernel/config/tsm/report/", "dev/sev-guest"]);
    let a = detect(&HostProbe::with_root(snp.path())).unwrap();
    assert_eq!(
        (a.kind(), a.tee_kind()),
        (TeeKind::SevSnp, EvidenceKind::SevSnp)
    );

    let plain = tempfile::tempdir().unwrap();
    let err = detect(&HostProbe::with_root(plain.path())).unwrap_err();
    assert!(matches!(err, AttestError::NoTee));
    assert_eq!(
        err.to_string(),
        "no TEE interface found (neither Gramine's /dev/attestation nor configfs-tsm)"
    );

    // An SGX host without Gramine: no usable interface.
    let sgx = fake_host(&["dev/sgx_enclave"]);
    let err = detect(&HostProbe::with_root(sgx.path())).unwrap_err();
    assert!(matches!(err, AttestError::NoTee));
}

#[test]
fn sealing_keys_per_attester() {
    let dir = gramine_dir("dcap", b"q");
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/_sgx_mrenclave"), [5u8; 16]).unwrap();
    assert_eq!(
        GramineAttester::new(dir.path())
            .sealing_key()
            .unwrap()
            .as_slice(),
        &[5u8; 16]
    );
    std::fs::write(dir.path().join("keys/_sgx_mrenclave"), [5u8; 3]).unwrap();
    assert_eq!(
        GramineAttester::new(dir.path())
            .sealing_key()
            .unwrap_err()
            .to_string(),
        format!(
            "sealing key at {} is 3 bytes, expected 16",
            dir.path().join("keys/_sgx_mrenclave").display()
        )
    );

    let snp = TsmAttester::with_fs("/r", EvidenceKind::SevSnp, FakeTsm::new("sev_guest", false));
    assert_eq!(
        snp.sealing_key().unwrap_err().to_string(),
        "the sev-snp attester offers no sealing key: SEV-SNP derives it with the SNP_GET_DERIVED_KEY ioctl, not configfs-tsm"
    );
}
