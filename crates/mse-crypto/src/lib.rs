//! The encrypted code package, the sealed box and key derivation.
