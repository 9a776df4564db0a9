//! The per-app binding of a confidential VM (`mse_attest::vm_identity`), checked against the real
//! SEV-SNP report and TDX quote in tests/data: the expected identity built from the reported values
//! passes, and every single field changed is named in a one-line refusal.

use mse_attest::Evidence;
use mse_attest::evidence::TdReport;
use mse_attest::snp_measure::{SnpMeasureInput, VcpuType};
use mse_attest::vm_identity::{
    FieldMismatch, SnpExpected, SpecBindingError, TdxExpected, TdxReference, cmdline_with_spec,
    mr_config_id, spec_cmdline_param,
};

mod vectors;
use vectors::data;

const SPEC: [u8; 32] = [0xab; 32];

#[test]
fn spec_parameter_and_mrconfigid() {
    let spec: [u8; 32] = std::array::from_fn(|i| i as u8);
    assert_eq!(
        spec_cmdline_param(&spec),
        "mse.spec=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    );
    assert_eq!(
        cmdline_with_spec("console=ttyS0", &spec),
        format!("console=ttyS0 {}", spec_cmdline_param(&spec))
    );
    assert_eq!(cmdline_with_spec("", &spec), spec_cmdline_param(&spec));
    let id = mr_config_id(&spec);
    assert_eq!(&id[..32], &spec);
    assert_eq!(&id[32..], &[0u8; 16]);
}

#[test]
fn snp_report_is_checked_field_by_field() {
    let Evidence::SevSnp(report) = Evidence::parse(&data("sev-snp/report_milan.hex")).unwrap()
    else {
        panic!("not an SNP report")
    };
    let good = SnpExpected {
        measurement: report.measurement,
        host_data: report.host_data,
    };
    good.check(&report).unwrap();

    let mut other = good.clone();
    other.measurement[47] ^= 1;
    let err = other.check(&report).unwrap_err();
    assert_eq!(err.0.len(), 1);
    assert_eq!(err.0[0].field, "MEASUREMENT");
    assert_eq!(
        err.to_string(),
        format!(
            "not the expected VM: MEASUREMENT is {}, expected {}",
            hex::encode(report.measurement),
            hex::encode(other.measurement)
        )
    );

    let mut other = good.clone();
    other.host_data = SPEC;
    other.measurement[0] ^= 0x80;
    let err = other.check(&report).unwrap_err();
    let fields: Vec<&str> = err.0.iter().map(|m: &FieldMismatch| m.field).collect();
    assert_eq!(fields, ["MEASUREMENT", "HOST_DATA"]);
    assert!(!err.to_string().contains('\n'));
}

#[test]
fn snp_expected_identity_binds_the_spec() {
    let fw = mse_attest_sim::snp::amdsev_firmware();
    let cmdline = cmdline_with_spec("console=ttyS0", &SPEC);
    let input = SnpMeasureInput::new(&fw, 2, VcpuType::EpycMilan).with_kernel(
        b"kernel",
        Some(b"initrd"),
        Some(&cmdline),
    );
    let expected = SnpExpected::for_launch(&input, &SPEC).unwrap();
    assert_eq!(expected.host_data, SPEC);
    // Another spec: another launch digest.
    let other_spec = [0xcd; 32];
    let other_cmdline = cmdline_with_spec("console=ttyS0", &other_spec);
    let other = SnpMeasureInput {
        cmdline: Some(&other_cmdline),
        ..input.clone()
    };
    let other = SnpExpected::for_launch(&other, &other_spec).unwrap();
    assert_ne!(other.measurement, expected.measurement);

    // A launch whose command line does not carry the spec cannot be expected.
    let param = spec_cmdline_param(&SPEC);
    let twice = format!("{cmdline} {}", spec_cmdline_param(&other_spec));
    let same_twice = format!("{cmdline} {param}");
    for cmdline in [
        None,
        Some("console=ttyS0"),
        Some(&other_cmdline[..]),
        Some(&twice[..]),
        Some(&same_twice[..]),
    ] {
        let unbound = SnpMeasureInput {
            cmdline,
            ..input.clone()
        };
        assert_eq!(
            SnpExpected::for_launch(&unbound, &SPEC).unwrap_err(),
            SpecBindingError::CmdlineWithoutSpec(param.clone())
        );
    }
    let no_kernel = SnpMeasureInput::new(&fw, 2, VcpuType::EpycMilan);
    assert_eq!(
        SnpExpected::for_launch(&no_kernel, &SPEC)
            .unwrap_err()
            .to_string(),
        format!(
            "the kernel command line does not carry {param} exactly once: the launch digest would not bind the app"
        )
    );
    // Measurement errors pass through.
    let zero_vcpus = SnpMeasureInput {
        vcpus: 0,
        ..input.clone()
    };
    assert_eq!(
        SnpExpected::for_launch(&zero_vcpus, &SPEC)
            .unwrap_err()
            .to_string(),
        "the number of vCPUs must be at least 1"
    );
}

#[test]
fn tdx_report_is_checked_field_by_field() {
    let Evidence::Tdx(quote) = Evidence::parse(&data("dcap/tdx_quote")).unwrap() else {
        panic!("not a TDX quote")
    };
    let mut report = quote.report.clone();
    report.mr_config_id = mr_config_id(&SPEC);
    let reference = TdxReference {
        mr_td: report.mr_td,
        rtmrs: [report.rtmrs[0], report.rtmrs[1], report.rtmrs[2]],
    };
    let expected = TdxExpected::for_spec(&reference, &SPEC);
    expected.check(&report).unwrap();
    // RTMR3 is the guest's own (runtime) register: not part of the identity.
    let mut r3 = report.clone();
    r3.rtmrs[3][0] ^= 1;
    expected.check(&r3).unwrap();

    // The real quote's MRCONFIGID (zero) is not this spec's.
    let err = expected.check(&quote.report).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "not the expected VM: MRCONFIGID is {}, expected {}",
            hex::encode(quote.report.mr_config_id),
            hex::encode(mr_config_id(&SPEC))
        )
    );
    type Flip = fn(&mut TdReport);
    let flips: [(&str, Flip); 5] = [
        ("MRTD", |r| r.mr_td[5] ^= 1),
        ("MRCONFIGID", |r| r.mr_config_id[40] ^= 1),
        ("RTMR0", |r| r.rtmrs[0][0] ^= 1),
        ("RTMR1", |r| r.rtmrs[1][47] ^= 1),
        ("RTMR2", |r| r.rtmrs[2][20] ^= 1),
    ];
    for (field, flip) in flips {
        let mut bad = report.clone();
        flip(&mut bad);
        let err = expected.check(&bad).unwrap_err();
        assert_eq!(err.0.len(), 1, "{field}");
        assert_eq!(err.0[0].field, field);
    }
}
