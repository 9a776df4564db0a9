//! Evidence, attesters, verifiers, policy, RA-TLS certificates and the simulated TEE.
