//! AMD's SEV-SNP roots and intermediates, pinned in the binary (never taken from evidence):
//! for each product line the ARK (self-signed root), the ASK (signs VCEKs) and the ASVK
//! (signs VLEKs). See `amd/README.md` for their source.

use std::sync::LazyLock;

use x509_parser::prelude::{FromDer, X509Certificate};

/// The pinned certificates of one AMD product line (DER).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmdProduct {
    /// "Milan", "Genoa" or "Turin" (as in KDS URLs).
    pub name: &'static str,
    /// AMD Root Key certificate.
    pub ark: Vec<u8>,
    /// AMD SEV Key certificate: issuer of VCEKs.
    pub ask: Vec<u8>,
    /// AMD SEV VLEK Key certificate: issuer of VLEKs.
    pub asvk: Vec<u8>,
}

const PRODUCTS: [(&str, &[u8]); 3] = [
    ("Milan", include_bytes!("amd/milan_ask_ark_asvk.pem")),
    ("Genoa", include_bytes!("amd/genoa_ask_ark_asvk.pem")),
    ("Turin", include_bytes!("amd/turin_ask_ark_asvk.pem")),
];

/// AMD's product lines with their pinned ARK, ASK and ASVK (parsed once).
pub fn amd_products() -> Vec<AmdProduct> {
    static PARSED: LazyLock<Vec<AmdProduct>> = LazyLock::new(parse_products);
    PARSED.clone()
}

fn parse_products() -> Vec<AmdProduct> {
    PRODUCTS
        .iter()
        .filter_map(|(name, pem)| {
            let certs = pem_certificates(pem);
            let by_cn = |want: &dyn Fn(&str) -> bool| {
                certs
                    .iter()
                    .find(|der| common_name(der).is_some_and(|cn| want(&cn)))
                    .cloned()
            };
            Some(AmdProduct {
                name,
                ark: by_cn(&|cn| cn.starts_with("ARK-"))?,
                ask: by_cn(&|cn| cn.starts_with("SEV-") && !cn.starts_with("SEV-VLEK-"))?,
                asvk: by_cn(&|cn| cn.starts_with("SEV-VLEK-"))?,
            })
        })
        .collect()
}

/// Every CERTIFICATE block of a PEM text, as DER, in order.
pub fn pem_certificates(text: &[u8]) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(text)
        .filter_map(Result::ok)
        .filter(|p| p.label == "CERTIFICATE")
        .map(|p| p.contents)
        .collect()
}

/// The subject common name of a certificate.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
    Some(cn.to_owned())
}
