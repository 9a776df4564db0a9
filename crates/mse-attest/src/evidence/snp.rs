//! AMD SEV-SNP attestation report (versions 2 to 5), per the SEV-SNP firmware ABI
//! specification, table "ATTESTATION_REPORT Structure". 1184 bytes; the signature covers
//! bytes 0..0x2A0. Version 3 adds the CPUID family/model/stepping at 0x188; version 5 (newer
//! firmware, e.g. on Google Cloud) adds the launch and current mitigation vectors at 0x1F8 and
//! 0x200. Everything else is laid out identically.

use super::EvidenceError;
use super::reader::Reader;

/// Length of an SEV-SNP attestation report.
pub const SNP_REPORT_LEN: usize = 0x4A0;
/// Length of its signed part.
pub const SNP_SIGNED_LEN: usize = 0x2A0;
/// Guest policy bit 19: the hypervisor may debug the guest.
pub const SNP_POLICY_DEBUG: u64 = 1 << 19;
/// Guest policy bit 18: the guest may be associated with a migration agent (which can export
/// its memory and state).
pub const SNP_POLICY_MIGRATE_MA: u64 = 1 << 18;
/// SIGNATURE_ALGO value of ECDSA P-384 with SHA-384, the only one AMD defines.
pub const SNP_SIG_ALGO_ECDSA_P384_SHA384: u32 = 1;

/// Which key of the AMD PKI signed a report: the SIGNING_KEY field, bits 4:2 of the word at
/// 0x48.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SnpSigningKey {
    /// Versioned Chip Endorsement Key: per chip and TCB, chain VCEK → ASK → ARK.
    Vcek,
    /// Versioned Loaded Endorsement Key: per cloud provider and TCB, chain VLEK → ASVK → ARK.
    Vlek,
    /// 7: the report is not signed.
    None,
    /// A value AMD does not define.
    Reserved(u8),
}

impl std::fmt::Display for SnpSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnpSigningKey::Vcek => f.write_str("VCEK"),
            SnpSigningKey::Vlek => f.write_str("VLEK"),
            SnpSigningKey::None => f.write_str("no key"),
            SnpSigningKey::Reserved(v) => write!(f, "reserved signing key {v}"),
        }
    }
}
/// CPUID family of Turin (Zen 5), whose TCB_VERSION layout differs.
const FAMILY_TURIN: u8 = 0x1A;

/// A TCB_VERSION value split into its security patch levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnpTcbVersion {
    /// Turin and later only.
    pub fmc: Option<u8>,
    /// Boot loader SPL.
    pub bootloader: u8,
    /// PSP OS (TEE) SPL.
    pub tee: u8,
    /// SNP firmware SPL.
    pub snp: u8,
    /// Microcode SPL.
    pub microcode: u8,
    /// The TCB_VERSION as read.
    pub raw: u64,
}

impl SnpTcbVersion {
    fn decode(raw: u64, turin: bool) -> Self {
        let b = raw.to_le_bytes();
        if turin {
            SnpTcbVersion {
                fmc: Some(b[0]),
                bootloader: b[1],
                tee: b[2],
                snp: b[3],
                microcode: b[7],
                raw,
            }
        } else {
            SnpTcbVersion {
                fmc: None,
                bootloader: b[0],
                tee: b[1],
                snp: b[6],
                microcode: b[7],
                raw,
            }
        }
    }
}

impl std::fmt::Display for SnpTcbVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(fmc) = self.fmc {
            write!(f, "fmc{fmc}/")?;
        }
        write!(
            f,
            "bl{}/tee{}/snp{}/ucode{}",
            self.bootloader, self.tee, self.snp, self.microcode
        )
    }
}

/// A parsed SEV-SNP attestation report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpReport {
    /// The report bytes as received (including any trailing bytes).
    pub raw: Vec<u8>,
    /// VERSION of the report format (2 to 5).
    pub version: u32,
    /// GUEST_SVN.
    pub guest_svn: u32,
    /// The guest POLICY (bit 19 debug, bit 18 migration agent).
    pub policy: u64,
    /// FAMILY_ID of the ID block.
    pub family_id: [u8; 16],
    /// IMAGE_ID of the ID block.
    pub image_id: [u8; 16],
    /// VMPL of the requester.
    pub vmpl: u32,
    /// SIGNATURE_ALGO (1 = ECDSA P-384 with SHA-384).
    pub signature_algo: u32,
    /// CURRENT_TCB.
    pub current_tcb: SnpTcbVersion,
    /// PLATFORM_INFO.
    pub platform_info: u64,
    /// The word at 0x48: AUTHOR_KEY_EN, MASK_CHIP_KEY, SIGNING_KEY (bits 4:2).
    pub flags: u32,
    /// REPORT_DATA: 64 bytes chosen by the guest.
    pub report_data: [u8; 64],
    /// MEASUREMENT: the launch digest.
    pub measurement: [u8; 48],
    /// HOST_DATA: 32 bytes given by the host at launch.
    pub host_data: [u8; 32],
    /// ID_KEY_DIGEST.
    pub id_key_digest: [u8; 48],
    /// AUTHOR_KEY_DIGEST.
    pub author_key_digest: [u8; 48],
    /// REPORT_ID.
    pub report_id: [u8; 32],
    /// REPORT_ID_MA (all ones without a migration agent).
    pub report_id_ma: [u8; 32],
    /// REPORTED_TCB: the TCB the VCEK/VLEK is for.
    pub reported_tcb: SnpTcbVersion,
    /// CPUID family/model/stepping (report version 3 and later).
    pub cpuid: Option<(u8, u8, u8)>,
    /// CHIP_ID (zeros when masked or VLEK-signed).
    pub chip_id: [u8; 64],
    /// COMMITTED_TCB.
    pub committed_tcb: SnpTcbVersion,
    /// LAUNCH_TCB.
    pub launch_tcb: SnpTcbVersion,
    /// ECDSA P-384 signature: r and s, 72 bytes each, little-endian.
    pub signature_r: [u8; 72],
    /// Signature S (little-endian, 72 bytes; P-384 uses 48).
    pub signature_s: [u8; 72],
    /// Version 5 and later: LAUNCH_MIT_VECTOR (mitigations in force at launch).
    pub launch_mit_vector: Option<u64>,
    /// Version 5 and later: CURRENT_MIT_VECTOR.
    pub current_mit_vector: Option<u64>,
}

impl SnpReport {
    /// Parse an SEV-SNP attestation report (binary, at least 1184 bytes).
    pub fn parse(bytes: &[u8]) -> Result<Self, EvidenceError> {
        if bytes.len() < SNP_REPORT_LEN {
            return Err(EvidenceError::Truncated {
                what: "SEV-SNP report",
                offset: 0,
                need: SNP_REPORT_LEN,
                have: bytes.len(),
            });
        }
        let mut r = Reader::new(&bytes[..SNP_REPORT_LEN], "SEV-SNP report");
        let version = r.u32()?;
        if !(2..=5).contains(&version) {
            return Err(EvidenceError::UnsupportedVersion {
                what: "SEV-SNP report",
                version,
            });
        }
        let guest_svn = r.u32()?;
        let policy = r.u64()?;
        let family_id = r.array()?;
        let image_id = r.array()?;
        let vmpl = r.u32()?;
        let signature_algo = r.u32()?;
        let current_tcb = r.u64()?;
        let platform_info = r.u64()?;
        let flags = r.u32()?;
        r.bytes(4)?;
        let report_data = r.array()?;
        let measurement = r.array()?;
        let host_data = r.array()?;
        let id_key_digest = r.array()?;
        let author_key_digest = r.array()?;
        let report_id = r.array()?;
        let report_id_ma = r.array()?;
        let reported_tcb = r.u64()?;
        let [fam, model, step] = r.array::<3>()?;
        r.bytes(21)?;
        let cpuid = (version >= 3).then_some((fam, model, step));
        let chip_id: [u8; 64] = r.array()?;
        // v2 reports have no CPUID: Turin's CHIP_ID uses only its first 8 bytes.
        let turin = match cpuid {
            Some((fam, _, _)) => fam == FAMILY_TURIN,
            None => chip_id[8..].iter().all(|&b| b == 0) && chip_id[..8].iter().any(|&b| b != 0),
        };
        let committed_tcb = r.u64()?;
        r.bytes(8)?; // current and committed firmware build/minor/major
        let launch_tcb = r.u64()?;
        let launch_mit = r.u64()?;
        let current_mit = r.u64()?;
        let (launch_mit_vector, current_mit_vector) = if version >= 5 {
            (Some(launch_mit), Some(current_mit))
        } else {
            (None, None)
        };
        r.bytes(SNP_SIGNED_LEN - r.pos())?;
        let signature_r = r.array()?;
        let signature_s = r.array()?;
        let tcb = |raw| SnpTcbVersion::decode(raw, turin);
        Ok(SnpReport {
            raw: bytes.to_vec(),
            version,
            guest_svn,
            policy,
            family_id,
            image_id,
            vmpl,
            signature_algo,
            current_tcb: tcb(current_tcb),
            platform_info,
            flags,
            report_data,
            measurement,
            host_data,
            id_key_digest,
            author_key_digest,
            report_id,
            report_id_ma,
            reported_tcb: tcb(reported_tcb),
            cpuid,
            chip_id,
            committed_tcb: tcb(committed_tcb),
            launch_tcb: tcb(launch_tcb),
            signature_r,
            signature_s,
            launch_mit_vector,
            current_mit_vector,
        })
    }

    /// Whether the guest policy allows debugging.
    pub fn is_debug(&self) -> bool {
        self.policy & SNP_POLICY_DEBUG != 0
    }

    /// Whether the guest policy allows a migration agent.
    pub fn allows_migration_agent(&self) -> bool {
        self.policy & SNP_POLICY_MIGRATE_MA != 0
    }

    /// The key that signed this report (VCEK or VLEK), from its SIGNING_KEY field.
    pub fn signing_key(&self) -> SnpSigningKey {
        match (self.flags >> 2) & 0b111 {
            0 => SnpSigningKey::Vcek,
            1 => SnpSigningKey::Vlek,
            7 => SnpSigningKey::None,
            // Masked to three bits just above: always fits.
            v => SnpSigningKey::Reserved(v as u8),
        }
    }

    /// The bytes the VCEK signs.
    pub fn signed_bytes(&self) -> &[u8] {
        self.raw.get(..SNP_SIGNED_LEN).unwrap_or(&self.raw)
    }
}
