//! The mock Intel PKI: root CA, "Intel SGX PCK Platform CA", PCK leaf with the SGX extensions,
//! TCB signing certificate, and the root and PCK CRLs, all derived from a 32-byte seed.
//!
//! Layout and extensions follow Intel's real PKI closely enough that dcap-qvl, PyPI
//! intel-sgx-ra and rustls-webpki accept them; the organization name says it is a simulation.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CustomExtension,
    DistinguishedName, DnType, IsCa, KeyIdMethod, KeyUsagePurpose, SerialNumber,
};
use yasna::models::ObjectIdentifier;

use super::keys::DetKey;
use crate::SimError;
use crate::derive::{ca_chain, cert_params, pki_err, ts};
pub use mse_attest::encode::{pem_encode, to_pem};

/// Common name of the mock root: how a simulated chain is recognised (the verifier's name).
pub const SIM_ROOT_CN: &str = mse_attest::verify::SIM_SGX_ROOT_CN;
/// Organization of every mock certificate.
pub const SIM_ORG: &str = "MSE simulation (not Intel)";
/// The PCK CA name that PCCS clients map to `ca=platform`.
pub const PCK_PLATFORM_CA_CN: &str = "Intel SGX PCK Platform CA";

/// FMSPC of the simulated platform ("SIM" in the middle, so it is recognisable in logs).
pub const SIM_FMSPC: [u8; 6] = [0x00, 0x53, 0x49, 0x4D, 0x00, 0x00];
/// PCE ID of the simulated platform.
pub const SIM_PCE_ID: [u8; 2] = [0x00, 0x00];
/// CPUSVN (the 16 SGX TCB components) of the simulated platform.
pub const SIM_CPU_SVN: [u8; 16] = [3, 3, 2, 2, 4, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0];
/// PCESVN of the simulated platform.
pub const SIM_PCE_SVN: u16 = 13;

/// 2024-01-01T00:00:00Z: start of every mock certificate's and CRL's validity.
pub const SIM_NOT_BEFORE: i64 = 1_704_067_200;
/// 2049-12-31T23:59:59Z: end of validity (still an X.509 UTCTime).
pub const SIM_NOT_AFTER: i64 = 2_524_607_999;

const SGX_EXT_OID: &[u64] = &[1, 2, 840, 113_741, 1, 13, 1];

/// The mock PKI: keys, certificates (DER) and CRLs (DER).
pub struct SimPki {
    /// The node's secret: the sealing keys derive from it. Never printed.
    seed: zeroize::Zeroizing<[u8; 32]>,
    pub(crate) pck_key: DetKey,
    pub(crate) tcb_key: DetKey,
    pub(crate) attestation_key: DetKey,
    /// Root CA certificate (DER): the trust anchor a verifier must opt into.
    pub root_der: Vec<u8>,
    /// "Intel SGX PCK Platform CA" certificate (DER).
    pub pck_ca_der: Vec<u8>,
    /// PCK leaf certificate (DER) with the SGX extensions.
    pub pck_der: Vec<u8>,
    /// TCB info / QE identity signing certificate (DER).
    pub tcb_der: Vec<u8>,
    /// Root CA CRL (DER), signed by the root.
    pub root_crl_der: Vec<u8>,
    /// PCK CA CRL (DER), signed by the PCK CA.
    pub pck_crl_der: Vec<u8>,
    /// PPID of the simulated platform (derived from the seed).
    pub ppid: [u8; 16],
    /// MRENCLAVE of the simulated quoting enclave.
    pub qe_mr_enclave: [u8; 32],
    /// MRSIGNER of the simulated quoting enclave (what the QE identity pins).
    pub qe_mr_signer: [u8; 32],
}

impl std::fmt::Debug for SimPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimPki")
            .field("ppid", &hex::encode(self.ppid))
            .finish_non_exhaustive()
    }
}

fn dn(cn: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, cn);
    name.push(DnType::OrganizationName, SIM_ORG);
    name.push(DnType::LocalityName, "Santa Clara");
    name.push(DnType::StateOrProvinceName, "CA");
    name.push(DnType::CountryName, "US");
    name
}

fn base_params(cn: &str, serial: u8) -> Result<CertificateParams, SimError> {
    cert_params(dn(cn), [0x5E, 0x11, serial])
}

fn oid(parts: &[u64]) -> ObjectIdentifier {
    ObjectIdentifier::from_slice(parts)
}

fn sub_oid(tail: &[u64]) -> ObjectIdentifier {
    let mut v = SGX_EXT_OID.to_vec();
    v.extend_from_slice(tail);
    oid(&v)
}

/// DER of the SGX extension (OID 1.2.840.113741.1.13.1) exactly as Intel lays it out in a
/// Platform-CA-issued PCK certificate.
pub fn sgx_extension_der(ppid: &[u8; 16], platform_instance_id: &[u8; 16]) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_sequence(|w| {
                w.next().write_oid(&sub_oid(&[1]));
                w.next().write_bytes(ppid);
            });
            w.next().write_sequence(|w| {
                w.next().write_oid(&sub_oid(&[2]));
                w.next().write_sequence(|w| {
                    for (i, svn) in (1u64..).zip(SIM_CPU_SVN) {
                        w.next().write_sequence(|w| {
                            w.next().write_oid(&sub_oid(&[2, i]));
                            w.next().write_u8(svn);
                        });
                    }
                    w.next().write_sequence(|w| {
                        w.next().write_oid(&sub_oid(&[2, 17]));
                        w.next().write_u16(SIM_PCE_SVN);
                    });
                    w.next().write_sequence(|w| {
                        w.next().write_oid(&sub_oid(&[2, 18]));
                        w.next().write_bytes(&SIM_CPU_SVN);
                    });
                });
            });
            w.next().write_sequence(|w| {
                w.next().write_oid(&sub_oid(&[3]));
                w.next().write_bytes(&SIM_PCE_ID);
            });
            w.next().write_sequence(|w| {
                w.next().write_oid(&sub_oid(&[4]));
                w.next().write_bytes(&SIM_FMSPC);
            });
            w.next().write_sequence(|w| {
                w.next().write_oid(&sub_oid(&[5]));
                // 1 = Scalable, what Platform-CA PCK certificates carry.
                w.next().write_enum(1);
            });
            w.next().write_sequence(|w| {
                w.next().write_oid(&sub_oid(&[6]));
                w.next().write_bytes(platform_instance_id);
            });
            w.next().write_sequence(|w| {
                w.next().write_oid(&sub_oid(&[7]));
                w.next().write_sequence(|w| {
                    for (i, flag) in [(1u64, false), (2, true), (3, true)] {
                        w.next().write_sequence(|w| {
                            w.next().write_oid(&sub_oid(&[7, i]));
                            w.next().write_bool(flag);
                        });
                    }
                });
            });
        });
    })
}

impl SimPki {
    /// Build the whole mock PKI from `seed`. Deterministic: same seed, same bytes.
    pub fn from_seed(seed: &[u8; 32]) -> Result<SimPki, SimError> {
        let root_key = DetKey::derive(seed, "root-ca");
        let pck_ca_key = DetKey::derive(seed, "pck-platform-ca");
        let pck_key = DetKey::derive(seed, "pck-leaf");
        let tcb_key = DetKey::derive(seed, "tcb-signing");
        let attestation_key = DetKey::derive(seed, "qe-attestation-key");
        let ids = super::derive_bytes::<32>(seed, "platform-ids");
        let mut ppid = [0u8; 16];
        ppid.copy_from_slice(&ids[..16]);
        let mut instance = [0u8; 16];
        instance.copy_from_slice(&ids[16..]);

        let [(root, root_issuer), (pck_ca, ca_issuer)] = ca_chain(
            (base_params(SIM_ROOT_CN, 1)?, &root_key, "root CA"),
            BasicConstraints::Constrained(1),
            (base_params(PCK_PLATFORM_CA_CN, 2)?, &pck_ca_key, "PCK CA"),
        )?;

        let mut pck_params = base_params("Intel SGX PCK Certificate", 3)?;
        pck_params.is_ca = IsCa::ExplicitNoCa;
        pck_params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::ContentCommitment,
        ];
        pck_params.use_authority_key_identifier_extension = true;
        let ext_oid: Vec<u64> = SGX_EXT_OID.to_vec();
        pck_params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                &ext_oid,
                sgx_extension_der(&ppid, &instance),
            ));
        let pck = pck_params
            .signed_by(&pck_key, &ca_issuer)
            .map_err(pki_err("PCK leaf"))?;

        let mut tcb_params = base_params("Intel SGX TCB Signing", 4)?;
        tcb_params.is_ca = IsCa::ExplicitNoCa;
        tcb_params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::ContentCommitment,
        ];
        tcb_params.use_authority_key_identifier_extension = true;
        let tcb = tcb_params
            .signed_by(&tcb_key, &root_issuer)
            .map_err(pki_err("TCB signing"))?;

        let crl_params = |number: u8| -> Result<CertificateRevocationListParams, SimError> {
            Ok(CertificateRevocationListParams {
                this_update: ts(SIM_NOT_BEFORE)?,
                next_update: ts(SIM_NOT_AFTER)?,
                crl_number: SerialNumber::from_slice(&[number]),
                issuing_distribution_point: None,
                revoked_certs: Vec::new(),
                key_identifier_method: KeyIdMethod::Sha256,
            })
        };
        let root_crl = crl_params(1)?
            .signed_by(&root_issuer)
            .map_err(pki_err("root CRL"))?;
        let pck_crl = crl_params(1)?
            .signed_by(&ca_issuer)
            .map_err(pki_err("PCK CRL"))?;

        Ok(SimPki {
            seed: zeroize::Zeroizing::new(*seed),
            pck_key,
            tcb_key,
            attestation_key,
            root_der: root.der().to_vec(),
            pck_ca_der: pck_ca.der().to_vec(),
            pck_der: pck.der().to_vec(),
            tcb_der: tcb.der().to_vec(),
            root_crl_der: root_crl.der().to_vec(),
            pck_crl_der: pck_crl.der().to_vec(),
            ppid,
            qe_mr_enclave: super::derive_bytes::<32>(seed, "qe-mrenclave"),
            qe_mr_signer: super::derive_bytes::<32>(seed, "qe-mrsigner"),
        })
    }

    /// The sim platform's sealing key for an enclave measurement (see [`super::sealing_key`]).
    pub fn sealing_key(&self, measurement: &[u8]) -> [u8; 32] {
        super::sealing_key(&self.seed, measurement)
    }

    /// PEM chain PCK leaf ‖ PCK CA ‖ root: the quote's certification data (type 5).
    pub fn pck_chain_pem(&self) -> String {
        [&self.pck_der, &self.pck_ca_der, &self.root_der]
            .iter()
            .map(|d| to_pem(d))
            .collect()
    }

    /// PEM chain PCK CA ‖ root: the `SGX-PCK-CRL-Issuer-Chain` header.
    pub fn pck_crl_issuer_chain_pem(&self) -> String {
        [&self.pck_ca_der, &self.root_der]
            .iter()
            .map(|d| to_pem(d))
            .collect()
    }

    /// PEM chain TCB signing ‖ root: the TCB info and QE identity issuer chains.
    pub fn tcb_issuer_chain_pem(&self) -> String {
        [&self.tcb_der, &self.root_der]
            .iter()
            .map(|d| to_pem(d))
            .collect()
    }
}
