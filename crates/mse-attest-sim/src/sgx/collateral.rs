//! Signed TCB info and QE identity of the simulated platform, and the whole DCAP collateral
//! (dcap-qvl's `QuoteCollateralV3`) a verifier needs for a sim quote.
//!
//! The JSON is produced once, compactly, and the signature covers those exact bytes; PCCS
//! bodies embed the same bytes verbatim, so no client ever has to re-serialize before checking.

use serde::Serialize;

use super::pki::{
    SIM_CPU_SVN, SIM_FMSPC, SIM_NOT_AFTER, SIM_NOT_BEFORE, SIM_PCE_ID, SIM_PCE_SVN, SimPki,
};
use super::quote::{SIM_QE_FLAGS, SIM_QE_ISV_PROD_ID, SIM_QE_ISV_SVN};
use crate::SimError;

/// What the simulated collateral says: its validity window and the platform's TCB status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollateralOptions {
    /// `issueDate` of TCB info and QE identity (Unix seconds).
    pub issue_date: i64,
    /// `nextUpdate` of TCB info and QE identity (Unix seconds).
    pub next_update: i64,
    /// TCB status of the simulated platform's TCB level (e.g. `UpToDate`, `OutOfDate`).
    pub tcb_status: String,
    /// Advisory IDs attached to that level.
    pub advisory_ids: Vec<String>,
}

impl Default for CollateralOptions {
    fn default() -> Self {
        CollateralOptions {
            issue_date: SIM_NOT_BEFORE,
            next_update: SIM_NOT_AFTER,
            tcb_status: "UpToDate".to_owned(),
            advisory_ids: Vec::new(),
        }
    }
}

/// A JSON document and the raw r ‖ s ECDSA signature over its exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedJson {
    /// The compact JSON text, exactly as signed.
    pub raw: String,
    /// ECDSA P-256 signature over `raw`, r ‖ s.
    pub signature: [u8; 64],
}

impl SignedJson {
    /// The PCCS response body: `{"<field>":<raw>,"signature":"<hex>"}`.
    pub fn pccs_body(&self, field: &str) -> String {
        format!(
            r#"{{"{field}":{},"signature":"{}"}}"#,
            self.raw,
            hex::encode(self.signature)
        )
    }
}

const TCB_EVALUATION_DATA_NUMBER: u32 = 17;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TcbInfoJson {
    id: &'static str,
    version: u8,
    issue_date: String,
    next_update: String,
    fmspc: String,
    pce_id: String,
    tcb_type: u32,
    tcb_evaluation_data_number: u32,
    tcb_levels: Vec<TcbLevelJson>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TcbLevelJson {
    tcb: TcbJson,
    tcb_date: String,
    tcb_status: String,
    #[serde(rename = "advisoryIDs", skip_serializing_if = "Vec::is_empty")]
    advisory_ids: Vec<String>,
}

#[derive(Serialize)]
struct TcbJson {
    sgxtcbcomponents: Vec<SvnJson>,
    pcesvn: u16,
}

#[derive(Serialize)]
struct SvnJson {
    svn: u8,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QeIdentityJson {
    id: &'static str,
    version: u8,
    issue_date: String,
    next_update: String,
    tcb_evaluation_data_number: u32,
    miscselect: &'static str,
    miscselect_mask: &'static str,
    attributes: String,
    attributes_mask: &'static str,
    mrsigner: String,
    isvprodid: u16,
    tcb_levels: Vec<QeTcbLevelJson>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QeTcbLevelJson {
    tcb: QeTcbJson,
    tcb_date: String,
    tcb_status: &'static str,
}

#[derive(Serialize)]
struct QeTcbJson {
    isvsvn: u16,
}

/// RFC 3339 UTC with a `Z`, as Intel writes its dates.
pub(crate) fn rfc3339(unix: i64) -> Result<String, SimError> {
    mse_attest::rfc3339(unix).map_err(|e| SimError::Collateral(e.to_string()))
}

fn to_json<T: Serialize>(value: &T) -> Result<String, SimError> {
    serde_json::to_string(value).map_err(|e| SimError::Collateral(format!("JSON encoding: {e}")))
}

impl SimPki {
    /// TCB info v3 of the simulated FMSPC, signed by the TCB signing key.
    pub fn tcb_info(&self, opts: &CollateralOptions) -> Result<SignedJson, SimError> {
        let info = TcbInfoJson {
            id: "SGX",
            version: 3,
            issue_date: rfc3339(opts.issue_date)?,
            next_update: rfc3339(opts.next_update)?,
            fmspc: hex::encode_upper(SIM_FMSPC),
            pce_id: hex::encode_upper(SIM_PCE_ID),
            tcb_type: 0,
            tcb_evaluation_data_number: TCB_EVALUATION_DATA_NUMBER,
            tcb_levels: vec![TcbLevelJson {
                tcb: TcbJson {
                    sgxtcbcomponents: SIM_CPU_SVN.iter().map(|&svn| SvnJson { svn }).collect(),
                    pcesvn: SIM_PCE_SVN,
                },
                tcb_date: rfc3339(SIM_NOT_BEFORE)?,
                tcb_status: opts.tcb_status.clone(),
                advisory_ids: opts.advisory_ids.clone(),
            }],
        };
        let raw = to_json(&info)?;
        let signature = self.tcb_key.sign_raw(raw.as_bytes());
        Ok(SignedJson { raw, signature })
    }

    /// QE identity v2 of the simulated quoting enclave, signed by the TCB signing key.
    pub fn qe_identity(&self, opts: &CollateralOptions) -> Result<SignedJson, SimError> {
        let mut attributes = [0u8; 16];
        attributes[..8].copy_from_slice(&SIM_QE_FLAGS.to_le_bytes());
        let identity = QeIdentityJson {
            id: "QE",
            version: 2,
            issue_date: rfc3339(opts.issue_date)?,
            next_update: rfc3339(opts.next_update)?,
            tcb_evaluation_data_number: TCB_EVALUATION_DATA_NUMBER,
            miscselect: "00000000",
            miscselect_mask: "FFFFFFFF",
            attributes: hex::encode_upper(attributes),
            attributes_mask: "FBFFFFFFFFFFFFFF0000000000000000",
            mrsigner: hex::encode_upper(self.qe_mr_signer),
            isvprodid: SIM_QE_ISV_PROD_ID,
            tcb_levels: vec![QeTcbLevelJson {
                tcb: QeTcbJson {
                    isvsvn: SIM_QE_ISV_SVN,
                },
                tcb_date: rfc3339(SIM_NOT_BEFORE)?,
                tcb_status: "UpToDate",
            }],
        };
        let raw = to_json(&identity)?;
        let signature = self.tcb_key.sign_raw(raw.as_bytes());
        Ok(SignedJson { raw, signature })
    }

    /// Everything a DCAP verifier needs for a sim quote, in dcap-qvl's form.
    pub fn collateral(
        &self,
        opts: &CollateralOptions,
    ) -> Result<dcap_qvl::QuoteCollateralV3, SimError> {
        let tcb = self.tcb_info(opts)?;
        let qe = self.qe_identity(opts)?;
        Ok(dcap_qvl::QuoteCollateralV3 {
            pck_crl_issuer_chain: self.pck_crl_issuer_chain_pem(),
            root_ca_crl: self.root_crl_der.clone(),
            pck_crl: self.pck_crl_der.clone(),
            tcb_info_issuer_chain: self.tcb_issuer_chain_pem(),
            tcb_info: tcb.raw,
            tcb_info_signature: tcb.signature.to_vec(),
            qe_identity_issuer_chain: self.tcb_issuer_chain_pem(),
            qe_identity: qe.raw,
            qe_identity_signature: qe.signature.to_vec(),
            pck_certificate_chain: None,
        })
    }
}
