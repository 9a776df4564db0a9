//! How a verifier recognises simulated evidence. The simulated TEEs themselves live in the
//! `mse-attest-sim` crate; the verifier only needs the names their mock roots carry, so that it
//! can say "simulation refused" instead of "broken chain", and mark accepted sim evidence.

/// Common name of the mock SGX root CA: how a simulated SGX chain is recognised.
pub const SIM_SGX_ROOT_CN: &str = "MSE Simulated SGX Root CA";

/// If the quote's PCK chain ends in a mock root (by its name, self-issued), that root's DER.
///
/// This is how `--allow-simulation` finds the sim anchor of a node it never met: simulation
/// gives no hardware guarantee anyway, so trusting the quote's own mock root under that
/// explicit opt-in only ties the collateral and the quote to one consistent mock PKI.
pub fn sim_root_from_quote(quote: &[u8]) -> Option<Vec<u8>> {
    // The evidence parser already reads the certification data; only SGX v3 quotes carry a
    // PEM chain whose last certificate is the root.
    let parsed = crate::evidence::SgxQuote::parse(quote).ok()?;
    let root = parsed.qe.certification.pem_chain_der().pop()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&root).ok()?;
    let is_sim = cert
        .subject()
        .iter_common_name()
        .any(|cn| cn.as_str().ok() == Some(SIM_SGX_ROOT_CN));
    (is_sim && cert.subject() == cert.issuer()).then_some(root)
}

/// Common name of the mock AMD ARK (the root of the simulated SEV-SNP PKI).
pub const SIM_AMD_ARK_CN: &str = "ARK-MSE-Simulated";

/// If SEV-SNP collateral's issuer chain holds a self-signed mock ARK (by its name), its DER:
/// the SNP counterpart of [`sim_root_from_quote`] (a report carries no certificates; the mock
/// KDS serves the mock chain with the VCEK).
pub fn sim_ark_from_collateral(collateral: &crate::Collateral) -> Option<Vec<u8>> {
    let crate::Collateral::SevSnp { chain_der, .. } = collateral else {
        return None;
    };
    chain_der.iter().find_map(|der| {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let is_sim = cert
            .subject()
            .iter_common_name()
            .any(|cn| cn.as_str().ok() == Some(SIM_AMD_ARK_CN));
        (is_sim && cert.subject() == cert.issuer()).then(|| der.clone())
    })
}
