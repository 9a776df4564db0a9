//! Intel TDX DCAP quotes v4 and v5.
//!
//! v4: header (48) ‖ TD report 1.0 (584) ‖ signature data length (u32) ‖ signature data.
//! v5: header (48) ‖ body type (u16: 2 = TD 1.0, 3 = TD 1.5) ‖ body size (u32) ‖ body ‖
//! signature data length ‖ signature data. Signature data: ECDSA signature (64) ‖
//! attestation key (64) ‖ certification data of type 6 (QE report certification data).

use super::EvidenceError;
use super::reader::Reader;
use super::sgx::{CERT_TYPE_QE_REPORT, CertificationData, QeReportCertData, QuoteHeader};

/// TEE type of TDX in the quote header.
pub const TEE_TYPE_TDX: u32 = 0x81;
/// Length of a TD report 1.0 (quote v4).
pub const TD_REPORT10_LEN: usize = 584;
/// Length of a TD report 1.5 (quote v5).
pub const TD_REPORT15_LEN: usize = 648;
/// TD ATTRIBUTES byte 0 (TUD): bit 0 = DEBUG, bits 4..6 = profiling/perf-monitoring knobs.
const TUD_DEBUG_MASK: u8 = 0x01 | 0x70;

/// A TD report (1.0 fields, plus the 1.5 extension when present).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdReport {
    /// TEE_TCB_SVN.
    pub tee_tcb_svn: [u8; 16],
    /// MRSEAM: the TDX module's measurement.
    pub mr_seam: [u8; 48],
    /// MRSIGNERSEAM.
    pub mr_signer_seam: [u8; 48],
    /// SEAMATTRIBUTES.
    pub seam_attributes: [u8; 8],
    /// TDATTRIBUTES (bit 0: debug).
    pub td_attributes: [u8; 8],
    /// XFAM.
    pub xfam: [u8; 8],
    /// MRTD: the initial TD measurement.
    pub mr_td: [u8; 48],
    /// MRCONFIGID.
    pub mr_config_id: [u8; 48],
    /// MROWNER.
    pub mr_owner: [u8; 48],
    /// MROWNERCONFIG.
    pub mr_owner_config: [u8; 48],
    /// RTMR0 to RTMR3.
    pub rtmrs: [[u8; 48]; 4],
    /// REPORTDATA: 64 bytes chosen by the TD.
    pub report_data: [u8; 64],
    /// TD 1.5 only: TEE_TCB_SVN2 and MRSERVICETD.
    pub tee_tcb_svn2: Option<[u8; 16]>,
    /// MRSERVICETD (TD report 1.5 only).
    pub mr_service_td: Option<[u8; 48]>,
}

impl TdReport {
    fn read(r: &mut Reader<'_>, td15: bool) -> Result<Self, EvidenceError> {
        let mut report = TdReport {
            tee_tcb_svn: r.array()?,
            mr_seam: r.array()?,
            mr_signer_seam: r.array()?,
            seam_attributes: r.array()?,
            td_attributes: r.array()?,
            xfam: r.array()?,
            mr_td: r.array()?,
            mr_config_id: r.array()?,
            mr_owner: r.array()?,
            mr_owner_config: r.array()?,
            rtmrs: [r.array()?, r.array()?, r.array()?, r.array()?],
            report_data: r.array()?,
            tee_tcb_svn2: None,
            mr_service_td: None,
        };
        if td15 {
            report.tee_tcb_svn2 = Some(r.array()?);
            report.mr_service_td = Some(r.array()?);
        }
        Ok(report)
    }

    /// Debug or profiling lets the VMM inspect the TD.
    pub fn is_debug(&self) -> bool {
        self.td_attributes[0] & TUD_DEBUG_MASK != 0
    }
}

/// A TDX DCAP quote (v4 or v5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdxQuote {
    /// The quote bytes as received (including any trailing bytes).
    pub raw: Vec<u8>,
    /// The quote header.
    pub header: QuoteHeader,
    /// v5 body type (2 = TD 1.0, 3 = TD 1.5); 2 for v4.
    pub body_type: u16,
    /// The TD report.
    pub report: TdReport,
    /// The attestation key's ECDSA P-256 signature (r ‖ s).
    pub signature: [u8; 64],
    /// The attestation public key (X ‖ Y).
    pub attestation_key: [u8; 64],
    /// The quoting enclave's report and certification data.
    pub qe: QeReportCertData,
    /// Length of the signed prefix (header and body).
    signed_len: usize,
}

impl TdxQuote {
    /// Parse a TDX quote v4 or v5 (binary).
    pub fn parse(bytes: &[u8]) -> Result<Self, EvidenceError> {
        let mut r = Reader::new(bytes, "TDX quote");
        let header = QuoteHeader::read(&mut r)?;
        if header.tee_type != TEE_TYPE_TDX {
            return Err(EvidenceError::Invalid {
                field: "TDX quote TEE type",
                detail: format!("{:#x}, expected {TEE_TYPE_TDX:#x}", header.tee_type),
            });
        }
        let (body_type, report) = match header.version {
            4 => (
                2,
                TdReport::read(&mut r.sub(TD_REPORT10_LEN, "TD report")?, false)?,
            ),
            5 => {
                let body_type = r.u16()?;
                let size = r.u32()? as usize;
                let (td15, expected) = match body_type {
                    2 => (false, TD_REPORT10_LEN),
                    3 => (true, TD_REPORT15_LEN),
                    other => {
                        return Err(EvidenceError::Invalid {
                            field: "TDX quote v5 body type",
                            detail: format!("{other} (expected 2 = TD 1.0 or 3 = TD 1.5)"),
                        });
                    }
                };
                if size != expected {
                    return Err(EvidenceError::Invalid {
                        field: "TDX quote v5 body size",
                        detail: format!("{size} for body type {body_type}, expected {expected}"),
                    });
                }
                (
                    body_type,
                    TdReport::read(&mut r.sub(size, "TD report")?, td15)?,
                )
            }
            v => {
                return Err(EvidenceError::UnsupportedVersion {
                    what: "TDX quote",
                    version: v.into(),
                });
            }
        };
        let signed_len = r.pos();
        let sig_len = r.u32()? as usize;
        let mut sig = r.sub(sig_len, "TDX quote signature data")?;
        let signature = sig.array()?;
        let attestation_key = sig.array()?;
        let outer = CertificationData::read(&mut sig)?;
        if outer.cert_type != CERT_TYPE_QE_REPORT {
            return Err(EvidenceError::Invalid {
                field: "TDX quote certification data type",
                detail: format!("{}, expected {CERT_TYPE_QE_REPORT}", outer.cert_type),
            });
        }
        let qe = QeReportCertData::read(&mut Reader::new(&outer.data, "TDX QE report cert data"))?;
        Ok(TdxQuote {
            raw: bytes.to_vec(),
            header,
            body_type,
            report,
            signature,
            attestation_key,
            qe,
            signed_len,
        })
    }

    /// The bytes the attestation key signs: header ‖ (v5 body descriptor ‖) TD report.
    pub fn signed_bytes(&self) -> &[u8] {
        self.raw.get(..self.signed_len).unwrap_or(&self.raw)
    }
}
