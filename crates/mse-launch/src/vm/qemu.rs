//! QEMU's command line for one app, as an exact argument vector (golden-tested), and the
//! checks of the QEMU binary (version, accelerator).

use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::{Digest32, TeeKind};

/// The hardware virtualisation QEMU uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// KVM (`/dev/kvm` works).
    Kvm,
    /// QEMU's software emulation (TCG): slow, no hardware TEE possible.
    Tcg,
}

impl Accel {
    /// QEMU's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// One disk attached to the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskArg {
    /// The host file (raw).
    pub path: PathBuf,
    /// Its virtio serial (how the guest finds it).
    pub serial: &'static str,
    /// Read-only for the guest.
    pub read_only: bool,
}

/// How the TEE shapes the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TeeArgs {
    /// No hardware TEE (the simulated TEEs run inside an ordinary guest).
    None,
    /// AMD SEV-SNP with the operator's firmware (an OVMF AmdSev build with the kernel-hashes
    /// table), HOST_DATA = the spec hash.
    SevSnp {
        /// The firmware file (`-bios`).
        firmware: PathBuf,
        /// The vCPU model (part of the launch digest through the VMSA).
        vcpu_type: String,
    },
    /// Intel TDX with the operator's TDVF, MRCONFIGID = the spec hash padded to 48 bytes.
    Tdx {
        /// The firmware file (`-bios`).
        firmware: PathBuf,
    },
}

/// Everything the argument vector depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuArgs {
    /// A name for the VM (shows in `ps` and QEMU's messages).
    pub name: String,
    /// The accelerator.
    pub accel: Accel,
    /// Guest RAM, MB.
    pub memory_mb: u64,
    /// vCPUs.
    pub vcpus: u32,
    /// The image's kernel.
    pub kernel: PathBuf,
    /// The image's initrd.
    pub initrd: PathBuf,
    /// The kernel command line (the image's template with the spec hash).
    pub append: String,
    /// Disks, in attachment order.
    pub disks: Vec<DiskArg>,
    /// Host address the app's port is forwarded from.
    pub host_addr: String,
    /// Host port forwarded to the guest's 443.
    pub host_port: u16,
    /// Guest port.
    pub guest_port: u16,
    /// No outbound network for the guest (forwarded ports still work).
    pub restrict_net: bool,
    /// The TEE.
    pub tee: TeeArgs,
    /// The spec hash (HOST_DATA / MRCONFIGID).
    pub spec_hash: Digest32,
}

/// The C-bit position of SEV-SNP on EPYC (Milan, Genoa, Turin).
pub const SNP_CBITPOS: u32 = 51;
/// Physical address bits lost to memory encryption on EPYC.
pub const SNP_REDUCED_PHYS_BITS: u32 = 1;

/// HOST_DATA for SNP: the spec hash, base64 (QEMU's encoding of the 32-byte field).
pub fn snp_host_data(spec_hash: &Digest32) -> String {
    base64::engine::general_purpose::STANDARD.encode(spec_hash.0)
}

/// MRCONFIGID for TDX: the spec hash followed by 16 zero bytes (48 bytes), base64.
pub fn tdx_mrconfigid(spec_hash: &Digest32) -> String {
    let mut field = [0u8; 48];
    field[..32].copy_from_slice(&spec_hash.0);
    base64::engine::general_purpose::STANDARD.encode(field)
}

/// QEMU option values separate properties with commas and escape a comma by doubling it.
fn escape(path: &Path) -> String {
    path.to_string_lossy().replace(',', ",,")
}

impl QemuArgs {
    /// The argument vector (without the program name).
    pub fn to_args(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
        push(&["-name", &self.name]);
        push(&["-nodefaults", "-no-user-config", "-nographic", "-no-reboot"]);
        push(&["-accel", self.accel.as_str()]);
        let memory = format!("{}M", self.memory_mb);
        // A TEE guest: its machine, CPU, guest object and firmware (its RAM is a shared memfd).
        let tee = match &self.tee {
            TeeArgs::None => None,
            TeeArgs::SevSnp {
                firmware,
                vcpu_type,
            } => Some((
                "q35,confidential-guest-support=sev0,memory-backend=ram0",
                vcpu_type.as_str(),
                format!(
                    "sev-snp-guest,id=sev0,cbitpos={SNP_CBITPOS},reduced-phys-bits={SNP_REDUCED_PHYS_BITS},kernel-hashes=on,host-data={}",
                    snp_host_data(&self.spec_hash)
                ),
                firmware,
            )),
            TeeArgs::Tdx { firmware } => Some((
                "q35,kernel-irqchip=split,confidential-guest-support=tdx0,memory-backend=ram0",
                "host",
                format!(
                    "tdx-guest,id=tdx0,mrconfigid={}",
                    tdx_mrconfigid(&self.spec_hash)
                ),
                firmware,
            )),
        };
        match tee {
            None => {
                push(&["-machine", "q35"]);
                push(&[
                    "-cpu",
                    match self.accel {
                        Accel::Kvm => "host",
                        // `max` gives TCG guests RDRAND: the guest's CSPRNG seeds at once.
                        Accel::Tcg => "max",
                    },
                ]);
                push(&["-m", &memory]);
            }
            Some((machine, cpu, guest, firmware)) => {
                push(&["-machine", machine]);
                push(&["-cpu", cpu]);
                push(&["-m", &memory]);
                push(&[
                    "-object",
                    &format!(
                        "memory-backend-memfd,id=ram0,size={memory},share=true,prealloc=false"
                    ),
                ]);
                push(&["-object", &guest]);
                push(&["-bios", &escape(firmware)]);
            }
        }
        push(&["-smp", &self.vcpus.to_string()]);
        push(&["-kernel", &escape(&self.kernel)]);
        push(&["-initrd", &escape(&self.initrd)]);
        push(&["-append", &self.append]);
        push(&["-serial", "stdio", "-monitor", "none"]);
        let mut netdev = format!(
            "user,id=net0,hostfwd=tcp:{}:{}-:{}",
            self.host_addr, self.host_port, self.guest_port
        );
        if self.restrict_net {
            netdev.push_str(",restrict=on");
        }
        push(&["-netdev", &netdev]);
        push(&["-device", "virtio-net-pci,netdev=net0,romfile="]);
        for d in &self.disks {
            push(&[
                "-drive",
                &format!(
                    "file={},if=none,id={},format=raw,readonly={},cache=none,aio=threads",
                    escape(&d.path),
                    d.serial,
                    if d.read_only { "on" } else { "off" }
                ),
            ]);
            push(&[
                "-device",
                &format!("virtio-blk-pci,drive={},serial={}", d.serial, d.serial),
            ]);
        }
        a
    }
}

/// A QEMU version, from `qemu-system-x86_64 --version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct QemuVersion(pub u32, pub u32, pub u32);

impl std::fmt::Display for QemuVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// Parses the first line of `--version` ("QEMU emulator version 10.0.2 (Debian …)").
pub fn parse_version(output: &str) -> Option<QemuVersion> {
    let rest = output.lines().next()?.split("version ").nth(1)?;
    let number = rest.split_whitespace().next()?;
    let mut parts = number.split('.').map(|p| p.parse::<u32>().ok());
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let patch = parts.next().flatten().unwrap_or(0);
    Some(QemuVersion(major, minor, patch))
}

/// The oldest QEMU that runs `tee` as this launcher asks: SEV-SNP guests (`sev-snp-guest` with
/// `kernel-hashes` and `host-data`) arrived in 9.1, TDX guests (`tdx-guest`) in 10.1; QEMU 10 is
/// needed anyway (older TCG double-faults unpacking a realistic initramfs into the 6.12 kernel).
pub fn minimum_version(tee: TeeKind) -> QemuVersion {
    match tee {
        TeeKind::Tdx => QemuVersion(10, 1, 0),
        _ => QemuVersion(10, 0, 0),
    }
}

/// A QEMU older than the TEE kind needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} is QEMU {version}; TEE {tee} needs QEMU {need} or newer", qemu.display())]
pub struct QemuTooOld {
    /// The QEMU binary.
    pub qemu: PathBuf,
    /// Its version.
    pub version: QemuVersion,
    /// The TEE kind asked for.
    pub tee: TeeKind,
    /// [`minimum_version`] of `tee`.
    pub need: QemuVersion,
}

/// Refuses a QEMU older than [`minimum_version`] with one line.
pub fn check_version(version: QemuVersion, tee: TeeKind, qemu: &Path) -> Result<(), QemuTooOld> {
    let need = minimum_version(tee);
    if version < need {
        return Err(QemuTooOld {
            qemu: qemu.to_owned(),
            version,
            tee,
            need,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(tee: TeeArgs, accel: Accel) -> QemuArgs {
        QemuArgs {
            name: "mse-123e4567".into(),
            accel,
            memory_mb: 2048,
            vcpus: 2,
            kernel: "/img/vmlinuz".into(),
            initrd: "/img/initrd.img".into(),
            append: "console=ttyS0 mse.spec=ab".into(),
            disks: vec![
                DiskArg {
                    path: "/s/vm/spec.img".into(),
                    serial: "mse-spec",
                    read_only: true,
                },
                DiskArg {
                    path: "/s/vm/home,1.img".into(),
                    serial: "mse-home",
                    read_only: false,
                },
            ],
            host_addr: "127.0.0.1".into(),
            host_port: 40001,
            guest_port: 443,
            restrict_net: false,
            tee,
            spec_hash: Digest32([0xab; 32]),
        }
    }

    const TAIL: [&str; 18] = [
        "-smp",
        "2",
        "-kernel",
        "/img/vmlinuz",
        "-initrd",
        "/img/initrd.img",
        "-append",
        "console=ttyS0 mse.spec=ab",
        "-serial",
        "stdio",
        "-monitor",
        "none",
        "-netdev",
        "user,id=net0,hostfwd=tcp:127.0.0.1:40001-:443",
        "-device",
        "virtio-net-pci,netdev=net0,romfile=",
        "-drive",
        "file=/s/vm/spec.img,if=none,id=mse-spec,format=raw,readonly=on,cache=none,aio=threads",
    ];
    const DISKS_END: [&str; 5] = [
        "-device",
        "virtio-blk-pci,drive=mse-spec,serial=mse-spec",
        "-drive",
        "file=/s/vm/home,,1.img,if=none,id=mse-home,format=raw,readonly=off,cache=none,aio=threads",
        "-device",
    ];

    /// The expected arguments: the common head with `accel`, `machine` and `cpu`, then `tee`'s
    /// own (memory backend, guest object, firmware), then the common tail.
    fn expect(accel: &str, machine: &str, cpu: &str, tee: &[&str]) -> Vec<String> {
        [
            "-name",
            "mse-123e4567",
            "-nodefaults",
            "-no-user-config",
            "-nographic",
            "-no-reboot",
            "-accel",
            accel,
            "-machine",
            machine,
            "-cpu",
            cpu,
            "-m",
            "2048M",
        ]
        .iter()
        .chain(tee.iter())
        .chain(TAIL.iter())
        .chain(DISKS_END.iter())
        .chain(["virtio-blk-pci,drive=mse-home,serial=mse-home"].iter())
        .map(|s| s.to_string())
        .collect()
    }

    /// What a TEE guest adds: its shared memfd backend, its guest object, its firmware.
    fn tee_args<'a>(guest: &'a str, firmware: &'a str) -> [&'a str; 6] {
        [
            "-object",
            "memory-backend-memfd,id=ram0,size=2048M,share=true,prealloc=false",
            "-object",
            guest,
            "-bios",
            firmware,
        ]
    }

    #[test]
    fn golden_sim_under_tcg() {
        assert_eq!(
            base(TeeArgs::None, Accel::Tcg).to_args(),
            expect("tcg", "q35", "max", &[])
        );
        let mut restricted = base(TeeArgs::None, Accel::Kvm);
        restricted.restrict_net = true;
        let args = restricted.to_args();
        assert!(args.contains(&"user,id=net0,hostfwd=tcp:127.0.0.1:40001-:443,restrict=on".into()));
        assert!(args.windows(2).any(|w| w == ["-cpu", "host"]));
    }

    #[test]
    fn golden_tee_guests() {
        let snp = TeeArgs::SevSnp {
            firmware: "/fw/OVMF.amdsev.fd".into(),
            vcpu_type: "EPYC-v4".into(),
        };
        let tdx = TeeArgs::Tdx {
            firmware: "/fw/OVMF.tdx.fd".into(),
        };
        // (TEE, -machine, -cpu, its guest object, its firmware)
        let cases = [
            (
                snp,
                "q35,confidential-guest-support=sev0,memory-backend=ram0",
                "EPYC-v4",
                "sev-snp-guest,id=sev0,cbitpos=51,reduced-phys-bits=1,kernel-hashes=on,host-data=q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=",
                "/fw/OVMF.amdsev.fd",
            ),
            (
                tdx,
                "q35,kernel-irqchip=split,confidential-guest-support=tdx0,memory-backend=ram0",
                "host",
                "tdx-guest,id=tdx0,mrconfigid=q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6sAAAAAAAAAAAAAAAAAAAAA",
                "/fw/OVMF.tdx.fd",
            ),
        ];
        for (tee, machine, cpu, guest, firmware) in cases {
            assert_eq!(
                base(tee, Accel::Kvm).to_args(),
                expect("kvm", machine, cpu, &tee_args(guest, firmware))
            );
        }
    }

    #[test]
    fn versions() {
        let v = parse_version(
            "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\nCopyright",
        )
        .unwrap();
        assert_eq!(v, QemuVersion(10, 0, 2));
        assert_eq!(
            parse_version("QEMU emulator version 7.2.15 (Debian 1:7.2+dfsg-7+deb12u12)"),
            Some(QemuVersion(7, 2, 15))
        );
        assert_eq!(parse_version("nonsense"), None);
        let q = Path::new("/usr/bin/qemu-system-x86_64");
        assert_eq!(check_version(v, TeeKind::SevSnp, q), Ok(()));
        assert_eq!(check_version(v, TeeKind::Sim, q), Ok(()));
        assert_eq!(
            check_version(v, TeeKind::Tdx, q).unwrap_err().to_string(),
            "/usr/bin/qemu-system-x86_64 is QEMU 10.0.2; TEE tdx needs QEMU 10.1.0 or newer"
        );
        assert_eq!(
            check_version(QemuVersion(7, 2, 15), TeeKind::Sim, q)
                .unwrap_err()
                .to_string(),
            "/usr/bin/qemu-system-x86_64 is QEMU 7.2.15; TEE sim needs QEMU 10.0.0 or newer"
        );
    }
}
