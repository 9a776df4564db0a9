//! vCPU models (QEMU's `-cpu` names for AMD EPYC) and the VMM type, as sev-snp-measure 0.0.13 names them.

use super::SnpMeasureError;
use sev::measurement::vcpu_types::CpuType;

/// A QEMU EPYC vCPU model: its CPUID signature is what the VMSA's RDX holds at reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VcpuType {
    /// `EPYC`
    Epyc,
    /// `EPYC-v1`
    EpycV1,
    /// `EPYC-v2`
    EpycV2,
    /// `EPYC-IBPB`
    EpycIbpb,
    /// `EPYC-v3`
    EpycV3,
    /// `EPYC-v4`
    EpycV4,
    /// `EPYC-Rome`
    EpycRome,
    /// `EPYC-Rome-v1`
    EpycRomeV1,
    /// `EPYC-Rome-v2`
    EpycRomeV2,
    /// `EPYC-Rome-v3`
    EpycRomeV3,
    /// `EPYC-Milan`
    EpycMilan,
    /// `EPYC-Milan-v1`
    EpycMilanV1,
    /// `EPYC-Milan-v2`
    EpycMilanV2,
    /// `EPYC-Genoa`
    EpycGenoa,
    /// `EPYC-Genoa-v1`
    EpycGenoaV1,
    /// `EPYC-Turin`
    EpycTurin,
}

impl VcpuType {
    /// Every model, in the order sev-snp-measure 0.0.13 lists them.
    pub const ALL: [VcpuType; 16] = [
        Self::Epyc,
        Self::EpycV1,
        Self::EpycV2,
        Self::EpycIbpb,
        Self::EpycV3,
        Self::EpycV4,
        Self::EpycRome,
        Self::EpycRomeV1,
        Self::EpycRomeV2,
        Self::EpycRomeV3,
        Self::EpycMilan,
        Self::EpycMilanV1,
        Self::EpycMilanV2,
        Self::EpycGenoa,
        Self::EpycGenoaV1,
        Self::EpycTurin,
    ];

    /// QEMU's name of the model.
    pub fn name(self) -> &'static str {
        match self {
            Self::Epyc => "EPYC",
            Self::EpycV1 => "EPYC-v1",
            Self::EpycV2 => "EPYC-v2",
            Self::EpycIbpb => "EPYC-IBPB",
            Self::EpycV3 => "EPYC-v3",
            Self::EpycV4 => "EPYC-v4",
            Self::EpycRome => "EPYC-Rome",
            Self::EpycRomeV1 => "EPYC-Rome-v1",
            Self::EpycRomeV2 => "EPYC-Rome-v2",
            Self::EpycRomeV3 => "EPYC-Rome-v3",
            Self::EpycMilan => "EPYC-Milan",
            Self::EpycMilanV1 => "EPYC-Milan-v1",
            Self::EpycMilanV2 => "EPYC-Milan-v2",
            Self::EpycGenoa => "EPYC-Genoa",
            Self::EpycGenoaV1 => "EPYC-Genoa-v1",
            Self::EpycTurin => "EPYC-Turin",
        }
    }

    /// The model as the `sev` crate's VMSA builder knows it.
    pub(crate) fn cpu_type(self) -> CpuType {
        match self {
            Self::Epyc => CpuType::Epyc,
            Self::EpycV1 => CpuType::EpycV1,
            Self::EpycV2 => CpuType::EpycV2,
            Self::EpycIbpb => CpuType::EpycIBPB,
            Self::EpycV3 => CpuType::EpycV3,
            Self::EpycV4 => CpuType::EpycV4,
            Self::EpycRome => CpuType::EpycRome,
            Self::EpycRomeV1 => CpuType::EpycRomeV1,
            Self::EpycRomeV2 => CpuType::EpycRomeV2,
            Self::EpycRomeV3 => CpuType::EpycRomeV3,
            Self::EpycMilan => CpuType::EpycMilan,
            Self::EpycMilanV1 => CpuType::EpycMilanV1,
            Self::EpycMilanV2 => CpuType::EpycMilanV2,
            Self::EpycGenoa => CpuType::EpycGenoa,
            Self::EpycGenoaV1 => CpuType::EpycGenoaV1,
            Self::EpycTurin => CpuType::EpycTurin,
        }
    }

    /// The CPUID Fn0000_0001 EAX signature (family, model, stepping) of the model.
    pub fn signature(self) -> u32 {
        self.cpu_type().sig() as u32
    }
}

impl std::fmt::Display for VcpuType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for VcpuType {
    type Err = SnpMeasureError;

    /// QEMU's name, exactly as sev-snp-measure accepts it (case-sensitive: `EPYC-Milan`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| SnpMeasureError::UnknownVcpuType(s.to_string()))
    }
}

/// Serialized as QEMU's name (`"EPYC-Milan"`), as in a node's tier configuration.
impl serde::Serialize for VcpuType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for VcpuType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The VMM that launches the guest: it decides the VMSA's initial segment flags and registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum VmmType {
    /// QEMU/KVM.
    #[default]
    Qemu,
}

impl std::fmt::Display for VmmType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("qemu")
    }
}

impl std::str::FromStr for VmmType {
    type Err = SnpMeasureError;

    /// `qemu` (sev-snp-measure spells it `QEMU`; both are accepted).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "qemu" | "QEMU" => Ok(Self::Qemu),
            _ => Err(SnpMeasureError::UnknownVmmType(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_signatures() {
        for t in VcpuType::ALL {
            assert_eq!(t.name().parse::<VcpuType>().unwrap(), t);
        }
        // CPUID signatures: family 0x17 model 1 stepping 2; 0x19/1/1; 0x19/0x11/0; 0x1a/0/0.
        assert_eq!(VcpuType::EpycV4.signature(), 0x0080_0f12);
        assert_eq!(VcpuType::EpycMilan.signature(), 0x00a0_0f11);
        assert_eq!(VcpuType::EpycGenoa.signature(), 0x00a1_0f10);
        assert_eq!(VcpuType::EpycTurin.signature(), 0x00b0_0f00);
        assert_eq!(
            "epyc-milan".parse::<VcpuType>().unwrap_err().to_string(),
            "unknown vCPU type 'epyc-milan' (one of: EPYC, EPYC-v1, EPYC-v2, EPYC-IBPB, EPYC-v3, \
             EPYC-v4, EPYC-Rome, EPYC-Rome-v1, EPYC-Rome-v2, EPYC-Rome-v3, EPYC-Milan, \
             EPYC-Milan-v1, EPYC-Milan-v2, EPYC-Genoa, EPYC-Genoa-v1, EPYC-Turin)"
        );
        assert_eq!(
            serde_json::to_string(&VcpuType::EpycRomeV2).unwrap(),
            "\"EPYC-Rome-v2\""
        );
        assert_eq!(
            serde_json::from_str::<VcpuType>("\"EPYC-Genoa-v1\"").unwrap(),
            VcpuType::EpycGenoaV1
        );
        assert!(
            serde_json::from_str::<VcpuType>("\"EPYC-Zen\"")
                .unwrap_err()
                .to_string()
                .starts_with("unknown vCPU type 'EPYC-Zen' (one of: EPYC,")
        );
        assert_eq!(
            "ec2".parse::<VmmType>().unwrap_err().to_string(),
            "unsupported VMM type 'ec2' (only qemu)"
        );
    }
}
