//! The mock AMD PKI (ARK → ASK → VCEK, all ECDSA P-384) and the software SEV-SNP "firmware"
//! that signs genuine-format attestation reports with the VCEK.
//!
//! Certificates carry what AMD's carry (the VCEK's SPL and hwID extensions, the product name),
//! with "MSE simulation (not AMD)" as organization and [`SIM_AMD_ARK_CN`] as the root's name.
//! AMD's real ARK and ASK are RSA-4096 with RSASSA-PSS; the mock ones are P-384, which the one
//! verifier of `mse-attest` accepts for any pinned root: only the roots differ.

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa,
};

use super::keys::DetKey384;
use crate::SimError;
use crate::derive::{ca_chain, cert_params, pki_err};
use mse_attest::evidence::snp::{SNP_REPORT_LEN, SNP_SIGNED_LEN};

pub use mse_attest::verify::SIM_AMD_ARK_CN;

/// Organization of every mock AMD certificate.
pub const SIM_AMD_ORG: &str = "MSE simulation (not AMD)";
/// Common name of the mock ASK.
pub const SIM_AMD_ASK_CN: &str = "SEV-MSE-Simulated";
/// The product line the sim platform claims (KDS URLs use it): Milan.
pub const SIM_SNP_PRODUCT: &str = "Milan";
/// CPUID family, model, stepping of the sim platform (a Milan B1), in v3+ reports.
pub const SIM_SNP_CPUID: (u8, u8, u8) = (0x19, 0x01, 0x01);
/// Guest policy of sim launches: bit 17 (reserved, must be 1) and SMT allowed (bit 16); no
/// debug, no migration agent.
pub const SIM_SNP_POLICY: u64 = 0x3_0000;

const OID_AMD: &[u64] = &[1, 3, 6, 1, 4, 1, 3704, 1];

/// The security patch levels of the sim platform (Milan layout: no FMC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimSnpTcb {
    /// Boot loader SPL.
    pub bootloader: u8,
    /// PSP OS SPL.
    pub tee: u8,
    /// SNP firmware SPL.
    pub snp: u8,
    /// Microcode SPL.
    pub microcode: u8,
}

impl Default for SimSnpTcb {
    /// A recent Milan level: bl4/tee0/snp22/ucode213.
    fn default() -> Self {
        SimSnpTcb {
            bootloader: 4,
            tee: 0,
            snp: 22,
            microcode: 213,
        }
    }
}

impl SimSnpTcb {
    /// The TCB_VERSION u64 in Milan/Genoa layout (bytes: bl, tee, 0, 0, 0, 0, snp, ucode).
    pub fn raw(&self) -> u64 {
        u64::from_le_bytes([
            self.bootloader,
            self.tee,
            0,
            0,
            0,
            0,
            self.snp,
            self.microcode,
        ])
    }
}

/// What one report attests: the launch (measurement, host data, policy ...) and the report
/// data of the request. Everything else comes from the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpLaunch {
    /// Report format version: 2, 3 or 5.
    pub version: u32,
    /// The guest policy (see [`SIM_SNP_POLICY`]; bit 19 = debug, bit 18 = migration agent).
    pub policy: u64,
    /// MEASUREMENT: the launch digest.
    pub measurement: [u8; 48],
    /// HOST_DATA: given by the host at launch (MSE: the LaunchSpec's SHA-256).
    pub host_data: [u8; 32],
    /// GUEST_SVN.
    pub guest_svn: u32,
    /// VMPL of the requesting software (0 for the guest kernel).
    pub vmpl: u32,
    /// FAMILY_ID of the ID block (zeros without one).
    pub family_id: [u8; 16],
    /// IMAGE_ID of the ID block (zeros without one).
    pub image_id: [u8; 16],
}

impl SnpLaunch {
    /// A version-3 launch with the default sim policy.
    pub fn new(measurement: [u8; 48], host_data: [u8; 32]) -> SnpLaunch {
        SnpLaunch {
            version: 3,
            policy: SIM_SNP_POLICY,
            measurement,
            host_data,
            guest_svn: 0,
            vmpl: 0,
            family_id: [0; 16],
            image_id: [0; 16],
        }
    }
}

/// The mock AMD PKI of a seed and the sim platform's chip: certificates (DER) and the VCEK.
pub struct SimAmdPki {
    seed: zeroize::Zeroizing<[u8; 32]>,
    vcek_key: DetKey384,
    /// The sim platform's TCB (what the VCEK is issued for and reports carry).
    pub tcb: SimSnpTcb,
    /// CHIP_ID of the sim platform (64 bytes, derived from the seed).
    pub chip_id: [u8; 64],
    /// Mock ARK (self-signed root, DER): the anchor a verifier opts into.
    pub ark_der: Vec<u8>,
    /// Mock ASK (DER), signed by the ARK.
    pub ask_der: Vec<u8>,
    /// Mock VCEK (DER) for `chip_id` at `tcb`, signed by the ASK.
    pub vcek_der: Vec<u8>,
}

impl std::fmt::Debug for SimAmdPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimAmdPki")
            .field("chip_id", &hex::encode(self.chip_id))
            .field("tcb", &self.tcb)
            .finish_non_exhaustive()
    }
}

fn dn(cn: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationalUnitName, "Engineering");
    name.push(DnType::CountryName, "US");
    name.push(DnType::LocalityName, "Santa Clara");
    name.push(DnType::StateOrProvinceName, "CA");
    name.push(DnType::OrganizationName, SIM_AMD_ORG);
    name.push(DnType::CommonName, cn);
    name
}

fn params(cn: &str, serial: u8) -> Result<CertificateParams, SimError> {
    cert_params(dn(cn), [0x5E, 0xA0, serial])
}

fn amd_ext(tail: &[u64], content: Vec<u8>) -> CustomExtension {
    let oid: Vec<u64> = [OID_AMD, tail].concat();
    CustomExtension::from_oid_content(&oid, content)
}

fn der_uint(v: u8) -> Vec<u8> {
    yasna::construct_der(|w| w.write_u8(v))
}

impl SimAmdPki {
    /// The mock AMD PKI of `seed` with the default platform TCB.
    pub fn from_seed(seed: &[u8; 32]) -> Result<SimAmdPki, SimError> {
        SimAmdPki::with_tcb(seed, SimSnpTcb::default())
    }

    /// Same at a chosen platform TCB (the VCEK is issued for it, as AMD's KDS does).
    pub fn with_tcb(seed: &[u8; 32], tcb: SimSnpTcb) -> Result<SimAmdPki, SimError> {
        let ark_key = DetKey384::derive(seed, "ark");
        let ask_key = DetKey384::derive(seed, "ask");
        let [(ark, _), (ask, ask_issuer)] = ca_chain(
            (params(SIM_AMD_ARK_CN, 1)?, &ark_key, "mock ARK"),
            BasicConstraints::Unconstrained,
            (params(SIM_AMD_ASK_CN, 2)?, &ask_key, "mock ASK"),
        )?;
        let chip_id = crate::sgx::derive_bytes::<32>(seed, "snp-chip-id-0");
        let chip_id_hi = crate::sgx::derive_bytes::<32>(seed, "snp-chip-id-1");
        let mut chip = [0u8; 64];
        chip[..32].copy_from_slice(&chip_id);
        chip[32..].copy_from_slice(&chip_id_hi);
        // A real VCEK is derived from the chip's secret and its TCB: so is the mock one.
        let vcek_key = DetKey384::derive(
            seed,
            &format!("vcek/{}/{:016x}", hex::encode(chip), tcb.raw()),
        );

        let mut vcek_params = params("SEV-VCEK", 3)?;
        vcek_params.is_ca = IsCa::ExplicitNoCa;
        vcek_params.custom_extensions = vec![
            // structVersion, productName, the SPLs, hwID: as in AMD's VCEKs.
            amd_ext(&[1], der_uint(1)),
            amd_ext(
                &[2],
                yasna::construct_der(|w| w.write_ia5_string(&format!("{SIM_SNP_PRODUCT}-B0"))),
            ),
            amd_ext(&[3, 1], der_uint(tcb.bootloader)),
            amd_ext(&[3, 2], der_uint(tcb.tee)),
            amd_ext(&[3, 3], der_uint(tcb.snp)),
            amd_ext(&[3, 8], der_uint(tcb.microcode)),
            amd_ext(&[4], yasna::construct_der(|w| w.write_bytes(&chip))),
        ];
        let vcek = vcek_params
            .signed_by(&vcek_key, &ask_issuer)
            .map_err(pki_err("mock VCEK"))?;

        Ok(SimAmdPki {
            seed: zeroize::Zeroizing::new(*seed),
            vcek_key,
            tcb,
            chip_id: chip,
            ark_der: ark.der().to_vec(),
            ask_der: ask.der().to_vec(),
            vcek_der: vcek.der().to_vec(),
        })
    }

    /// PEM ASK ‖ ARK: what the KDS serves at `/vcek/v1/{product}/cert_chain`.
    pub fn cert_chain_pem(&self) -> String {
        [&self.ask_der, &self.ark_der]
            .iter()
            .map(|d| mse_attest::to_pem(d))
            .collect()
    }

    /// The collateral a verifier needs: the VCEK and its chain (ASK, ARK).
    pub fn collateral(&self) -> mse_attest::Collateral {
        mse_attest::Collateral::SevSnp {
            vek_der: self.vcek_der.clone(),
            chain_der: vec![self.ask_der.clone(), self.ark_der.clone()],
        }
    }

    /// A genuine-format SEV-SNP attestation report (1184 bytes) of `launch` with
    /// `report_data`, signed by the VCEK (ECDSA P-384 with SHA-384 over bytes 0..0x2A0, r and
    /// s stored little-endian in 72-byte fields), as the AMD secure processor produces it.
    pub fn report(&self, launch: &SnpLaunch, report_data: &[u8; 64]) -> Vec<u8> {
        let mut r = vec![0u8; SNP_REPORT_LEN];
        let put = |r: &mut Vec<u8>, off: usize, bytes: &[u8]| {
            r[off..off + bytes.len()].copy_from_slice(bytes);
        };
        let tcb = self.tcb.raw().to_le_bytes();
        put(&mut r, 0x00, &launch.version.to_le_bytes());
        put(&mut r, 0x04, &launch.guest_svn.to_le_bytes());
        put(&mut r, 0x08, &launch.policy.to_le_bytes());
        put(&mut r, 0x10, &launch.family_id);
        put(&mut r, 0x20, &launch.image_id);
        put(&mut r, 0x30, &launch.vmpl.to_le_bytes());
        put(&mut r, 0x34, &1u32.to_le_bytes()); // SIGNATURE_ALGO: ECDSA P-384 with SHA-384
        put(&mut r, 0x38, &tcb); // CURRENT_TCB
        put(&mut r, 0x40, &0x3u64.to_le_bytes()); // PLATFORM_INFO: SMT and TSME enabled
        put(&mut r, 0x48, &0u32.to_le_bytes()); // SIGNING_KEY = VCEK, chip ID not masked
        put(&mut r, 0x50, report_data);
        put(&mut r, 0x90, &launch.measurement);
        put(&mut r, 0xC0, &launch.host_data);
        // ID_KEY_DIGEST and AUTHOR_KEY_DIGEST stay zero: no ID block.
        let report_id = crate::sgx::derive_bytes::<32>(
            &self.seed,
            &format!("snp-report-id/{}", hex::encode(launch.measurement)),
        );
        put(&mut r, 0x140, &report_id);
        put(&mut r, 0x160, &[0xFF; 32]); // REPORT_ID_MA: no migration agent
        put(&mut r, 0x180, &tcb); // REPORTED_TCB
        if launch.version >= 3 {
            let (fam, model, step) = SIM_SNP_CPUID;
            put(&mut r, 0x188, &[fam, model, step]);
        }
        put(&mut r, 0x1A0, &self.chip_id);
        put(&mut r, 0x1E0, &tcb); // COMMITTED_TCB
        put(&mut r, 0x1E8, &[22, 55, 1, 0]); // CURRENT_BUILD/MINOR/MAJOR: 1.55.22
        put(&mut r, 0x1EC, &[22, 55, 1, 0]); // COMMITTED_BUILD/MINOR/MAJOR
        put(&mut r, 0x1F0, &tcb); // LAUNCH_TCB
        // Version 5: LAUNCH_MIT_VECTOR and CURRENT_MIT_VECTOR stay 0 (no mitigation bits).
        let (sig_r, sig_s) = self.vcek_key.sign_rs(&r[..SNP_SIGNED_LEN]);
        for (off, be) in [(0x2A0, sig_r), (0x2E8, sig_s)] {
            let le: Vec<u8> = be.iter().rev().copied().collect();
            put(&mut r, off, &le);
        }
        r
    }

    /// The sim platform's derived key for a guest (SNP_GET_DERIVED_KEY mixing in the
    /// measurement): HKDF(seed, measurement), unrelated to the SGX sim sealing keys.
    pub fn derived_key(&self, measurement: &[u8; 48]) -> [u8; 32] {
        super::derived_key(&self.seed, measurement)
    }
}
