//! The software quoting enclave: real-format SGX DCAP v3 ECDSA quotes.
//!
//! Layout (little-endian): header(48) ‖ ISV report body(384) ‖ auth_data_len(u32) ‖ auth data,
//! auth data = ECDSA sig(64) ‖ attestation pk(64) ‖ QE report(384) ‖ QE report sig(64) ‖
//! qe_auth_len(u16) ‖ qe_auth ‖ cert type(u16)=5 ‖ cert len(u32) ‖ PEM chain.

use sha2::{Digest, Sha256};

use super::pki::{SIM_CPU_SVN, SIM_PCE_SVN, SimPki};

/// Intel's QE vendor ID, which verifiers require in the header.
pub const INTEL_QE_VENDOR_ID: [u8; 16] = [
    0x93, 0x9A, 0x72, 0x33, 0xF7, 0x9C, 0x4C, 0xA9, 0x94, 0x0A, 0x0D, 0xB3, 0x95, 0x7F, 0x06, 0x07,
];
/// ISV SVN of the simulated quoting enclave.
pub const SIM_QE_ISV_SVN: u16 = 8;
/// ISV product ID of the quoting enclave (Intel's QE uses 1).
pub const SIM_QE_ISV_PROD_ID: u16 = 1;
/// SGX attribute flag: the enclave is a debug enclave.
pub const SGX_FLAGS_DEBUG: u64 = 0x02;
/// INIT | MODE64BIT: a production enclave's flags.
const SGX_FLAGS_PROD: u64 = 0x05;
const SGX_XFRM: u64 = 0x03;
/// INIT | PROVISIONKEY, as Intel's quoting enclave.
pub const SIM_QE_FLAGS: u64 = 0x11;
const QUOTE_VERSION: u16 = 3;
const ATT_KEY_TYPE_ECDSA_P256: u16 = 2;
const CERT_TYPE_PCK_CHAIN: u16 = 5;

/// The identity of the (simulated) application enclave whose report gets quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimEnclave {
    /// MRENCLAVE: our measurement.
    pub mr_enclave: [u8; 32],
    /// MRSIGNER: the node's signer.
    pub mr_signer: [u8; 32],
    /// ISVPRODID of the enclave.
    pub isv_prod_id: u16,
    /// ISVSVN (security version) of the enclave.
    pub isv_svn: u16,
    /// Sets the DEBUG attribute, which verifiers refuse unless debug is allowed.
    pub debug: bool,
}

/// Fields of a 384-byte SGX report body that the quoting code fills in.
struct ReportBody<'a> {
    cpu_svn: [u8; 16],
    flags: u64,
    xfrm: u64,
    mr_enclave: &'a [u8; 32],
    mr_signer: &'a [u8; 32],
    isv_prod_id: u16,
    isv_svn: u16,
    report_data: &'a [u8; 64],
}

impl ReportBody<'_> {
    fn encode(&self) -> [u8; 384] {
        let mut b = [0u8; 384];
        b[0..16].copy_from_slice(&self.cpu_svn);
        // misc_select@16, reserved@20, isv_ext_prod_id@32: zero
        b[48..56].copy_from_slice(&self.flags.to_le_bytes());
        b[56..64].copy_from_slice(&self.xfrm.to_le_bytes());
        b[64..96].copy_from_slice(self.mr_enclave);
        b[128..160].copy_from_slice(self.mr_signer);
        // config_id@192: zero
        b[256..258].copy_from_slice(&self.isv_prod_id.to_le_bytes());
        b[258..260].copy_from_slice(&self.isv_svn.to_le_bytes());
        // config_svn@260, reserved@262, isv_family_id@304: zero
        b[320..384].copy_from_slice(self.report_data);
        b
    }
}

impl SimPki {
    /// Produce a DCAP v3 quote of `enclave` carrying `report_data`, signed like Intel's QE does.
    pub fn quote(&self, enclave: &SimEnclave, report_data: &[u8; 64]) -> Vec<u8> {
        let mut header = [0u8; 48];
        header[0..2].copy_from_slice(&QUOTE_VERSION.to_le_bytes());
        header[2..4].copy_from_slice(&ATT_KEY_TYPE_ECDSA_P256.to_le_bytes());
        // tee_type@4 = 0 (SGX)
        header[8..10].copy_from_slice(&SIM_QE_ISV_SVN.to_le_bytes());
        header[10..12].copy_from_slice(&SIM_PCE_SVN.to_le_bytes());
        header[12..28].copy_from_slice(&INTEL_QE_VENDOR_ID);
        // user_data@28: first 16 bytes are the QE ID
        header[28..44].copy_from_slice(&self.ppid);

        let body = ReportBody {
            cpu_svn: SIM_CPU_SVN,
            flags: if enclave.debug {
                SGX_FLAGS_PROD | SGX_FLAGS_DEBUG
            } else {
                SGX_FLAGS_PROD
            },
            xfrm: SGX_XFRM,
            mr_enclave: &enclave.mr_enclave,
            mr_signer: &enclave.mr_signer,
            isv_prod_id: enclave.isv_prod_id,
            isv_svn: enclave.isv_svn,
            report_data,
        }
        .encode();

        let mut signed = Vec::with_capacity(432);
        signed.extend_from_slice(&header);
        signed.extend_from_slice(&body);
        let isv_sig = self.attestation_key.sign_raw(&signed);
        let att_pk = self.attestation_key.public_xy();

        // The QE binds the attestation key: report_data = SHA-256(att_pk ‖ qe_auth_data) ‖ 0.
        let qe_auth: Vec<u8> = (0u8..32).collect();
        let mut qe_report_data = [0u8; 64];
        let digest = Sha256::new()
            .chain_update(att_pk)
            .chain_update(&qe_auth)
            .finalize();
        qe_report_data[..32].copy_from_slice(&digest);
        let qe_report = ReportBody {
            cpu_svn: SIM_CPU_SVN,
            flags: SIM_QE_FLAGS,
            xfrm: 0xE7,
            mr_enclave: &self.qe_mr_enclave,
            mr_signer: &self.qe_mr_signer,
            isv_prod_id: SIM_QE_ISV_PROD_ID,
            isv_svn: SIM_QE_ISV_SVN,
            report_data: &qe_report_data,
        }
        .encode();
        let qe_report_sig = self.pck_key.sign_raw(&qe_report);
        let chain = self.pck_chain_pem().into_bytes();

        let mut auth = Vec::with_capacity(640 + chain.len());
        auth.extend_from_slice(&isv_sig);
        auth.extend_from_slice(&att_pk);
        auth.extend_from_slice(&qe_report);
        auth.extend_from_slice(&qe_report_sig);
        auth.extend_from_slice(&(qe_auth.len() as u16).to_le_bytes());
        auth.extend_from_slice(&qe_auth);
        auth.extend_from_slice(&CERT_TYPE_PCK_CHAIN.to_le_bytes());
        auth.extend_from_slice(&(chain.len() as u32).to_le_bytes());
        auth.extend_from_slice(&chain);

        let mut quote = signed;
        quote.extend_from_slice(&(auth.len() as u32).to_le_bytes());
        quote.extend_from_slice(&auth);
        quote
    }
}
