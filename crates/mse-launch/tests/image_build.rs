//! The image build end to end, offline: synthetic .debs (a kernel package and two userland
//! packages) sit in the cache under their SHA-256, so the locked build runs no apt at all.

use std::io::{Read, Write};
use std::path::PathBuf;

use mse_launch::Digest32;
use mse_launch::image::{self, BuildOptions, ImageManifest, LockMode};

const KVER: &str = "6.1.0-test";

enum E<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8], u32),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    liblzma::read::XzEncoder::new(data, 6)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// A .deb (ar: debian-binary, control.tar.xz, data.tar.xz) of `name` `version` holding `entries`.
fn deb(name: &str, version: &str, entries: &[E]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        match e {
            E::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                tar.append_data(&mut h, p, &[][..]).unwrap();
            }
            E::File(p, d, mode) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(d.len() as u64);
                tar.append_data(&mut h, p, *d).unwrap();
            }
            E::Symlink(p, t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                tar.append_link(&mut h, p, t).unwrap();
            }
            E::HardLink(p, t) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_mode(0o644);
                h.set_size(0);
                tar.append_link(&mut h, p, t).unwrap();
            }
        }
    }
    let data = xz(&tar.into_inner().unwrap());
    let control_file = format!("Package: {name}\nVersion: {version}\nArchitecture: amd64\n");
    let mut control = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(control_file.len() as u64);
    control
        .append_data(&mut h, "./control", control_file.as_bytes())
        .unwrap();
    let control = xz(&control.into_inner().unwrap());
    let mut ar = ar::Builder::new(Vec::new());
    for (name, bytes) in [
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar.xz", control),
        ("data.tar.xz", data),
    ] {
        let h = ar::Header::new(name.as_bytes().to_vec(), bytes.len() as u64);
        ar.append(&h, bytes.as_slice()).unwrap();
    }
    ar.into_inner().unwrap()
}

fn module(name: &str, depends: &str) -> Vec<u8> {
    xz(format!("\x7fELF\0name={name}\0depends={depends}\0vermagic={KVER}\0").as_bytes())
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let debs = root.join("cache/debs");
        std::fs::create_dir_all(&debs).unwrap();
        std::fs::create_dir_all(root.join("image")).unwrap();
        let m = format!("./lib/modules/{KVER}");
        let failover = module("failover", "");
        let net_failover = module("net_failover", "failover");
        let virtio_net = module("virtio_net", "net_failover");
        let kernel = deb(
            "linux-image-6.1.0-test",
            "6.1.0-1~bpo12+1",
            &[
                E::Dir("./boot/"),
                E::File(&format!("./boot/vmlinuz-{KVER}"), b"KERNEL", 0o644),
                E::File(
                    &format!("{m}/modules.builtin"),
                    b"kernel/fs/fuse/fuse.ko\n",
                    0o644,
                ),
                E::File(
                    &format!("{m}/kernel/net/core/failover.ko.xz"),
                    &failover,
                    0o644,
                ),
                E::File(
                    &format!("{m}/kernel/drivers/net/net_failover.ko.xz"),
                    &net_failover,
                    0o644,
                ),
                E::File(
                    &format!("{m}/kernel/drivers/net/virtio_net.ko.xz"),
                    &virtio_net,
                    0o644,
                ),
            ],
        );
        let libc = deb(
            "libc6",
            "2.36-9+deb12u14",
            &[
                E::Dir("./lib/"),
                E::Dir("./lib/x86_64-linux-gnu/"),
                E::File("./lib/x86_64-linux-gnu/libc.so.6", b"LIBC", 0o755),
                E::HardLink(
                    "./lib/x86_64-linux-gnu/libc-again.so",
                    "./lib/x86_64-linux-gnu/libc.so.6",
                ),
                E::Symlink(
                    "./lib64/ld-linux-x86-64.so.2",
                    "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
                ),
                E::File("./usr/share/doc/libc6/copyright", b"(c)", 0o644),
                E::File("./usr/lib/x86_64-linux-gnu/gconv/UTF-7.so", b"ICONV", 0o644),
                E::File("./usr/bin/setuid-thing", b"S", 0o4755),
            ],
        );
        let ca = deb(
            "ca-certificates",
            "20250419~deb12u2",
            &[
                E::File(
                    "./usr/share/ca-certificates/mozilla/B.crt",
                    b"-----B-----",
                    0o644,
                ),
                E::File(
                    "./usr/share/ca-certificates/mozilla/A.crt",
                    b"-----A-----\n",
                    0o644,
                ),
            ],
        );
        let mut lock_lines = Vec::new();
        for (name, version, bytes) in [
            ("ca-certificates", "20250419~deb12u2", &ca),
            ("libc6", "2.36-9+deb12u14", &libc),
            ("linux-image-6.1.0-test", "6.1.0-1~bpo12+1", &kernel),
        ] {
            let sha = Digest32::of(bytes).to_hex();
            std::fs::write(debs.join(format!("{sha}.deb")), bytes).unwrap();
            lock_lines.push(format!("{name} {version} {sha}\n"));
        }
        let recipe = b"kernel linux-image-test/bookworm-backports\nlibc6\nca-certificates\n";
        std::fs::write(root.join("image/packages"), recipe).unwrap();
        std::fs::write(root.join("image/modules"), "virtio_net # and deps\nfuse\n").unwrap();
        let lock = format!(
            "# recipe-sha256 {}\n{}",
            Digest32::of(recipe).to_hex(),
            lock_lines.concat()
        );
        std::fs::write(root.join("image/lock"), lock).unwrap();
        Fixture { dir }
    }

    fn opts(&self, out: &str) -> BuildOptions {
        let root = self.dir.path();
        BuildOptions {
            out: root.join(out),
            recipe: root.join("image/packages"),
            lock: root.join("image/lock"),
            modules: root.join("image/modules"),
            enclave: PathBuf::from("/usr/bin/true"),
            cache: root.join("cache"),
            lock_mode: LockMode::Locked,
        }
    }
}

/// (name, mode, content) of every entry of a newc archive, in archive order.
fn entries(cpio_bytes: &[u8]) -> Vec<(String, u32, Vec<u8>, u32)> {
    let mut out = Vec::new();
    let mut rest = cpio_bytes;
    loop {
        let mut r = cpio::newc::Reader::new(rest).unwrap();
        let e = r.entry().clone();
        if e.is_trailer() {
            return out;
        }
        let mut data = Vec::new();
        r.read_to_end(&mut data).unwrap();
        out.push((e.name().to_string(), e.mode(), data, e.ino()));
        rest = r.finish().unwrap();
    }
}

fn logged(opts: &BuildOptions) -> Result<image::BuildReport, image::ImageError> {
    image::build(opts, &mut |_| {})
}

#[test]
fn two_builds_in_two_directories_are_identical_and_hold_what_the_guest_needs() {
    let f = Fixture::new();
    let a = logged(&f.opts("out-a")).unwrap();
    let b = logged(&f.opts("elsewhere/out-b")).unwrap();
    for file in ["vmlinuz", "initrd.img", "image.json"] {
        let fa = std::fs::read(f.opts("out-a").out.join(file)).unwrap();
        let fb = std::fs::read(f.opts("elsewhere/out-b").out.join(file)).unwrap();
        assert!(fa == fb, "{file} differs between the two builds");
    }
    assert_eq!(a.image_sha256, b.image_sha256);
    let out = f.opts("out-a").out;
    let json = std::fs::read(out.join("image.json")).unwrap();
    assert_eq!(a.image_sha256, Digest32::of(&json).to_hex());
    let m = ImageManifest::from_bytes(&json).unwrap();
    assert_eq!(m, a.manifest);
    assert_eq!(m.kernel_version, KVER);
    assert_eq!(m.kernel_sha256, Digest32::of(b"KERNEL").to_hex());
    let initrd = std::fs::read(out.join("initrd.img")).unwrap();
    assert_eq!(m.initrd_sha256, Digest32::of(&initrd).to_hex());
    let lock = std::fs::read(f.dir.path().join("image/lock")).unwrap();
    assert_eq!(m.lock_sha256, Digest32::of(&lock).to_hex());
    let names: Vec<&str> = m.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["ca-certificates", "libc6", "linux-image-6.1.0-test"]
    );
    let mods = [
        "kernel/net/core/failover.ko",
        "kernel/drivers/net/net_failover.ko",
        "kernel/drivers/net/virtio_net.ko",
    ]
    .map(|p| format!("/lib/modules/{KVER}/{p}"));
    assert_eq!(m.modules, mods);
    assert_eq!(
        m.cmdline_for("ab"),
        "console=ttyS0 quiet panic=-1 mse.spec=ab"
    );

    let ents = entries(&initrd);
    let get = |name: &str| ents.iter().find(|e| e.0 == name);
    let sorted: Vec<&String> = ents.iter().map(|e| &e.0).collect();
    let mut resorted = sorted.clone();
    resorted.sort();
    assert_eq!(sorted, resorted, "entries are sorted by path");
    assert!(
        ents.iter().enumerate().all(|(i, e)| e.3 as usize == i + 1),
        "inodes 1..n"
    );
    let init = get("init").expect("/init");
    assert_eq!(init.1, 0o100755);
    assert_eq!(get("lib").unwrap().2, b"usr/lib");
    assert_eq!(get("lib").unwrap().1, 0o120777);
    assert_eq!(
        get("usr/lib/x86_64-linux-gnu/libc.so.6").unwrap().2,
        b"LIBC"
    );
    assert_eq!(
        get("usr/lib/x86_64-linux-gnu/libc-again.so").unwrap().2,
        b"LIBC"
    );
    assert_eq!(get("usr/bin/setuid-thing").unwrap().1, 0o104755);
    assert_eq!(
        get("usr/lib64/ld-linux-x86-64.so.2").unwrap().2,
        b"/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    );
    assert!(
        get("usr/share/doc/libc6/copyright").is_none(),
        "docs trimmed"
    );
    assert!(
        get("usr/lib/x86_64-linux-gnu/gconv/UTF-7.so").is_none(),
        "gconv trimmed"
    );
    assert_eq!(
        get("etc/ssl/certs/ca-certificates.crt").unwrap().2,
        b"-----A-----\n-----B-----\n"
    );
    assert_eq!(get("dev/console").unwrap().1, 0o020600);
    let list = String::from_utf8(get("etc/mse-image/modules").unwrap().2.clone()).unwrap();
    assert_eq!(list, mods.map(|p| format!("{p}\n")).concat());
    let (loaded, id) = ImageManifest::load_verified(&out).unwrap();
    assert_eq!((loaded, id), (m.clone(), a.image_sha256.clone()));
    let mut tampered = initrd.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    std::fs::write(out.join("initrd.img"), &tampered).unwrap();
    let e = ImageManifest::load_verified(&out).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: SHA-256 {}, image.json says {}",
            out.join("initrd.img").display(),
            Digest32::of(&tampered).to_hex(),
            m.initrd_sha256
        )
    );
    let virtio = get(&format!(
        "usr/lib/modules/{KVER}/kernel/drivers/net/virtio_net.ko"
    ))
    .unwrap();
    assert!(
        virtio.2.starts_with(b"\x7fELF\0name=virtio_net\0"),
        "decompressed"
    );
}

#[test]
fn a_lock_from_another_recipe_or_no_lock_is_a_moved_lock() {
    let f = Fixture::new();
    let opts = f.opts("out");
    let before = Digest32::of(&std::fs::read(&opts.recipe).unwrap()).to_hex();
    let mut recipe = std::fs::OpenOptions::new()
        .append(true)
        .open(&opts.recipe)
        .unwrap();
    recipe.write_all(b"zlib1g\n").unwrap();
    let after = Digest32::of(&std::fs::read(&opts.recipe).unwrap()).to_hex();
    let e = logged(&opts).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "image lock moved: {} was resolved from another image/packages (recipe SHA-256 {before}, now {after})",
            opts.lock.display()
        )
    );
    std::fs::remove_file(&opts.lock).unwrap();
    let e = logged(&opts).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("image lock moved: {} does not exist", opts.lock.display())
    );
    assert!(!opts.out.exists(), "nothing written");
}

#[test]
fn a_missing_module_is_an_error_naming_it() {
    let f = Fixture::new();
    let opts = f.opts("out");
    std::fs::write(&opts.modules, "virtio_net\nsev-guest\n").unwrap();
    let e = logged(&opts).unwrap_err();
    assert_eq!(
        e.to_string(),
        "kernel module sev_guest: not in the kernel package (neither a module nor built in)"
    );
}

#[test]
fn a_lock_line_pairing_a_version_with_another_versions_digest_is_refused() {
    let f = Fixture::new();
    let opts = f.opts("out");
    let lock = std::fs::read_to_string(&opts.lock).unwrap();
    let sha = lock
        .lines()
        .find(|l| l.starts_with("libc6 "))
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    std::fs::write(
        &opts.lock,
        lock.replace("libc6 2.36-9+deb12u14 ", "libc6 2.36-9+deb12u1 "),
    )
    .unwrap();
    let e = logged(&opts).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "libc6: the .deb with SHA-256 {sha} is libc6 2.36-9+deb12u14, the lock says libc6 2.36-9+deb12u1"
        )
    );
    assert!(!opts.out.exists(), "nothing written");
}
