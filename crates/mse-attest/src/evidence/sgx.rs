//! Intel SGX DCAP quote v3 (and the header / QE certification data shared with TDX quotes).
//!
//! Layout: header (48) ‖ report body (384) ‖ auth data length (u32) ‖ auth data, all
//! little-endian. Auth data: ECDSA signature (64) ‖ attestation key (64) ‖ QE report
//! certification data (see [`QeReportCertData`]).

use super::EvidenceError;
use super::reader::Reader;

/// Length of the DCAP quote header.
pub const HEADER_LEN: usize = 48;
/// Length of an SGX report body.
pub const REPORT_BODY_LEN: usize = 384;
/// Bit 1 of the SGX ATTRIBUTES flags: the enclave was launched in debug mode.
pub const SGX_FLAGS_DEBUG: u64 = 0x2;
/// Attestation key type 2: ECDSA-256 with P-256, the only one DCAP defines.
pub const ATT_KEY_TYPE_ECDSA_P256: u16 = 2;
/// Certification data type 5: PCK leaf ‖ intermediate ‖ root, PEM.
pub const CERT_TYPE_PCK_CHAIN: u16 = 5;
/// Certification data type 6: QE report certification data (nested type 5).
pub const CERT_TYPE_QE_REPORT: u16 = 6;

/// The 48-byte header common to DCAP quotes v3, v4 and v5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteHeader {
    /// Quote version (3 for SGX, 4/5 for TDX).
    pub version: u16,
    /// Attestation key type (2 = ECDSA P-256).
    pub attestation_key_type: u16,
    /// 0 for SGX, 0x81 for TDX.
    pub tee_type: u32,
    /// Security version of the quoting enclave.
    pub qe_svn: u16,
    /// Security version of the provisioning certification enclave.
    pub pce_svn: u16,
    /// The QE vendor (Intel's id for Intel's QE).
    pub qe_vendor_id: [u8; 16],
    /// Vendor data (the first 16 bytes: platform id for Intel).
    pub user_data: [u8; 20],
}

impl QuoteHeader {
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, EvidenceError> {
        let header = QuoteHeader {
            version: r.u16()?,
            attestation_key_type: r.u16()?,
            tee_type: r.u32()?,
            qe_svn: r.u16()?,
            pce_svn: r.u16()?,
            qe_vendor_id: r.array()?,
            user_data: r.array()?,
        };
        if header.attestation_key_type != ATT_KEY_TYPE_ECDSA_P256 {
            return Err(EvidenceError::Invalid {
                field: "quote attestation key type",
                detail: format!(
                    "{} (only {ATT_KEY_TYPE_ECDSA_P256} = ECDSA P-256 exists)",
                    header.attestation_key_type
                ),
            });
        }
        Ok(header)
    }
}

/// An SGX enclave report body (also the layout of the QE report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SgxReportBody {
    /// CPUSVN: the platform's CPU security version.
    pub cpu_svn: [u8; 16],
    /// MISCSELECT.
    pub misc_select: u32,
    /// ISVEXTPRODID.
    pub isv_ext_prod_id: [u8; 16],
    /// ATTRIBUTES: flags (u64) ‖ xfrm (u64).
    pub attributes: [u8; 16],
    /// MRENCLAVE: the enclave's measurement.
    pub mr_enclave: [u8; 32],
    /// MRSIGNER: hash of the enclave signer's key.
    pub mr_signer: [u8; 32],
    /// CONFIGID.
    pub config_id: [u8; 64],
    /// ISVPRODID.
    pub isv_prod_id: u16,
    /// ISVSVN: the enclave's security version.
    pub isv_svn: u16,
    /// CONFIGSVN.
    pub config_svn: u16,
    /// ISVFAMILYID.
    pub isv_family_id: [u8; 16],
    /// REPORTDATA: 64 bytes chosen by the enclave.
    pub report_data: [u8; 64],
}

impl SgxReportBody {
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, EvidenceError> {
        let cpu_svn = r.array()?;
        let misc_select = r.u32()?;
        r.bytes(12)?;
        let isv_ext_prod_id = r.array()?;
        let attributes = r.array()?;
        let mr_enclave = r.array()?;
        r.bytes(32)?;
        let mr_signer = r.array()?;
        r.bytes(32)?;
        let config_id = r.array()?;
        let isv_prod_id = r.u16()?;
        let isv_svn = r.u16()?;
        let config_svn = r.u16()?;
        r.bytes(42)?;
        let isv_family_id = r.array()?;
        let report_data = r.array()?;
        Ok(SgxReportBody {
            cpu_svn,
            misc_select,
            isv_ext_prod_id,
            attributes,
            mr_enclave,
            mr_signer,
            config_id,
            isv_prod_id,
            isv_svn,
            config_svn,
            isv_family_id,
            report_data,
        })
    }

    /// Parse exactly one 384-byte report body.
    pub fn parse(bytes: &[u8]) -> Result<Self, EvidenceError> {
        if bytes.len() != REPORT_BODY_LEN {
            return Err(EvidenceError::Invalid {
                field: "SGX report body length",
                detail: format!("{} bytes, expected {REPORT_BODY_LEN}", bytes.len()),
            });
        }
        Self::read(&mut Reader::new(bytes, "SGX report body"))
    }

    /// The ATTRIBUTES flags (first 8 bytes).
    pub fn flags(&self) -> u64 {
        let mut flags = [0u8; 8];
        flags.copy_from_slice(&self.attributes[..8]);
        u64::from_le_bytes(flags)
    }

    /// Whether the DEBUG attribute is set.
    pub fn is_debug(&self) -> bool {
        self.flags() & SGX_FLAGS_DEBUG != 0
    }
}

/// Certification data: a type tag and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificationData {
    /// Certification data type (5 = PCK certificate chain, PEM).
    pub cert_type: u16,
    /// The certification data.
    pub data: Vec<u8>,
}

impl CertificationData {
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, EvidenceError> {
        let cert_type = r.u16()?;
        let len = r.u32()? as usize;
        let data = r.bytes(len)?.to_vec();
        Ok(CertificationData { cert_type, data })
    }

    /// The DER certificates of a type-5 PEM chain (PCK leaf first, root last); empty for
    /// other types or when the PEM text holds no certificate.
    pub fn pem_chain_der(&self) -> Vec<Vec<u8>> {
        if self.cert_type != CERT_TYPE_PCK_CHAIN {
            return Vec::new();
        }
        // Certification data is often NUL-padded after the last PEM block.
        let end = self.data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        x509_parser::pem::Pem::iter_from_buffer(&self.data[..end])
            .map_while(Result::ok)
            .filter(|pem| pem.label == "CERTIFICATE")
            .map(|pem| pem.contents)
            .collect()
    }
}

/// QE report certification data: the quoting enclave's report, signed by the PCK key, whose
/// report_data binds the attestation key; then the PCK certificate chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QeReportCertData {
    /// The QE's report (signed by the PCK).
    pub qe_report: SgxReportBody,
    /// Its raw bytes (what the PCK signs).
    pub qe_report_raw: Vec<u8>,
    /// The PCK's ECDSA P-256 signature over the QE report (r ‖ s).
    pub qe_report_signature: [u8; 64],
    /// QE authentication data.
    pub qe_auth_data: Vec<u8>,
    /// The certification data (the PCK chain).
    pub certification: CertificationData,
}

impl QeReportCertData {
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, EvidenceError> {
        let qe_report_raw = r.bytes(REPORT_BODY_LEN)?;
        let qe_report = SgxReportBody::parse(qe_report_raw)?;
        let qe_report_signature = r.array()?;
        let auth_len = r.u16()? as usize;
        let qe_auth_data = r.bytes(auth_len)?.to_vec();
        let certification = CertificationData::read(r)?;
        Ok(QeReportCertData {
            qe_report,
            qe_report_raw: qe_report_raw.to_vec(),
            qe_report_signature,
            qe_auth_data,
            certification,
        })
    }
}

/// An SGX DCAP quote v3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SgxQuote {
    /// The quote bytes as received (including any trailing bytes).
    pub raw: Vec<u8>,
    /// The quote header.
    pub header: QuoteHeader,
    /// The application enclave's report body.
    pub body: SgxReportBody,
    /// ECDSA P-256 signature (r ‖ s) over header ‖ body by the attestation key.
    pub signature: [u8; 64],
    /// Attestation public key (X ‖ Y).
    pub attestation_key: [u8; 64],
    /// The quoting enclave's report and certification data.
    pub qe: QeReportCertData,
}

impl SgxQuote {
    /// Parse an SGX quote v3 (binary).
    pub fn parse(bytes: &[u8]) -> Result<Self, EvidenceError> {
        let mut r = Reader::new(bytes, "SGX quote");
        let header = QuoteHeader::read(&mut r)?;
        if header.version != 3 {
            return Err(EvidenceError::UnsupportedVersion {
                what: "SGX quote",
                version: header.version.into(),
            });
        }
        if header.tee_type != 0 {
            return Err(EvidenceError::Invalid {
                field: "SGX quote TEE type",
                detail: format!("{:#x}, expected 0", header.tee_type),
            });
        }
        let body = SgxReportBody::read(&mut r)?;
        let auth_len = r.u32()? as usize;
        let mut auth = r.sub(auth_len, "SGX quote auth data")?;
        let signature = auth.array()?;
        let attestation_key = auth.array()?;
        let qe = QeReportCertData::read(&mut auth)?;
        Ok(SgxQuote {
            raw: bytes.to_vec(),
            header,
            body,
            signature,
            attestation_key,
            qe,
        })
    }

    /// The bytes the attestation key signs: header ‖ report body.
    pub fn signed_bytes(&self) -> &[u8] {
        self.raw
            .get(..HEADER_LEN + REPORT_BODY_LEN)
            .unwrap_or(&self.raw)
    }
}
