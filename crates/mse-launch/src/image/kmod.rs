//! The kernel modules the guest loads: picked by name from the kernel package, completed with
//! their dependencies (the `depends=` field of each module's `.modinfo`, since Debian's package
//! ships no modules.dep: depmod runs at install time), ordered so that every module comes after
//! what it depends on, and decompressed at build time (Debian ships them `.ko.xz`) so the guest
//! loads plain `.ko` files with `finit_module(fd, "", 0)` whatever the kernel's decompression
//! support.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use super::ImageError;

/// A module's canonical name (`-` and `_` are the same to the kernel).
pub fn canonical(name: &str) -> String {
    name.replace('-', "_")
}

/// One module ready for the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Canonical name.
    pub name: String,
    /// Path under `/lib/modules/<version>/`, ending in `.ko`.
    pub path: String,
    /// Uncompressed ELF bytes.
    pub data: Vec<u8>,
}

/// Picks `wanted` (and their dependencies) from `files` (path under /lib/modules/<version>/ →
/// bytes, as shipped) and returns them in load order. `builtin` lists modules built into the
/// kernel (modules.builtin): asking for one of those is not an error, it is just not loaded.
pub fn select(
    wanted: &[String],
    files: &BTreeMap<String, Vec<u8>>,
    builtin: &BTreeSet<String>,
) -> Result<Vec<Module>, ImageError> {
    let mut by_name: BTreeMap<String, &String> = BTreeMap::new();
    for path in files.keys() {
        let file = path.rsplit('/').next().unwrap_or(path);
        if let Some(stem) = file
            .strip_suffix(".ko.xz")
            .or_else(|| file.strip_suffix(".ko"))
        {
            by_name.insert(canonical(stem), path);
        }
    }
    let mut loaded: BTreeMap<String, Module> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for w in wanted {
        visit(
            &canonical(w),
            &by_name,
            files,
            builtin,
            &mut loaded,
            &mut order,
            &mut Vec::new(),
        )?;
    }
    Ok(order.into_iter().map(|n| loaded[&n].clone()).collect())
}

fn visit(
    name: &str,
    by_name: &BTreeMap<String, &String>,
    files: &BTreeMap<String, Vec<u8>>,
    builtin: &BTreeSet<String>,
    loaded: &mut BTreeMap<String, Module>,
    order: &mut Vec<String>,
    stack: &mut Vec<String>,
) -> Result<(), ImageError> {
    if loaded.contains_key(name) || builtin.contains(name) {
        return Ok(());
    }
    if stack.iter().any(|s| s == name) {
        return Err(ImageError::Module {
            name: name.into(),
            msg: format!("dependency cycle {}", stack.join(" → ")),
        });
    }
    let path = *by_name.get(name).ok_or_else(|| ImageError::Module {
        name: name.into(),
        msg: "not in the kernel package (neither a module nor built in)".into(),
    })?;
    let raw = &files[path];
    let data = if path.ends_with(".xz") {
        let mut d = Vec::new();
        liblzma::read::XzDecoder::new(raw.as_slice())
            .read_to_end(&mut d)
            .map_err(|e| ImageError::Module {
                name: name.into(),
                msg: format!("xz: {e}"),
            })?;
        d
    } else {
        raw.clone()
    };
    let mut deps: Vec<String> = modinfo(&data, "depends")
        .map(|d| {
            d.split(',')
                .filter(|s| !s.is_empty())
                .map(canonical)
                .collect()
        })
        .unwrap_or_default();
    deps.sort();
    stack.push(name.to_string());
    for d in &deps {
        visit(d, by_name, files, builtin, loaded, order, stack)?;
    }
    stack.pop();
    let module = Module {
        name: name.to_string(),
        path: path.strip_suffix(".xz").unwrap_or(path).to_string(),
        data,
    };
    loaded.insert(name.to_string(), module);
    order.push(name.to_string());
    Ok(())
}

/// The value of `key` in a module's `.modinfo` strings (`\0key=value\0`).
pub fn modinfo<'a>(elf: &'a [u8], key: &str) -> Option<&'a str> {
    let needle = format!("\0{key}=");
    let needle = needle.as_bytes();
    let at = elf.windows(needle.len()).position(|w| w == needle)? + needle.len();
    let end = elf[at..].iter().position(|&b| b == 0)? + at;
    std::str::from_utf8(&elf[at..end]).ok()
}

/// Module names listed in a `modules.builtin` file (`kernel/fs/fuse/fuse.ko` lines).
pub fn parse_builtin(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.rsplit('/').next())
        .filter_map(|f| f.strip_suffix(".ko"))
        .map(canonical)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ko(name: &str, depends: &str) -> Vec<u8> {
        format!("\x7fELF junk\0name={name}\0depends={depends}\0vermagic=6.12\0").into_bytes()
    }

    #[test]
    fn dependencies_load_first_and_builtins_are_skipped() {
        let mut files = BTreeMap::new();
        files.insert(
            "kernel/net/core/failover.ko".to_string(),
            ko("failover", ""),
        );
        files.insert(
            "kernel/drivers/net/net_failover.ko".to_string(),
            ko("net_failover", "failover"),
        );
        files.insert(
            "kernel/drivers/net/virtio_net.ko".to_string(),
            ko("virtio_net", "net_failover"),
        );
        files.insert(
            "kernel/drivers/md/dm-crypt.ko".to_string(),
            ko("dm_crypt", "dm-mod"),
        );
        files.insert("kernel/drivers/md/dm-mod.ko".to_string(), ko("dm_mod", ""));
        let builtin = parse_builtin("kernel/fs/fuse/fuse.ko\n");
        let wanted: Vec<String> = ["virtio_net", "fuse", "dm-crypt", "failover"]
            .map(String::from)
            .to_vec();
        let got = select(&wanted, &files, &builtin).unwrap();
        let names: Vec<&str> = got.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "failover",
                "net_failover",
                "virtio_net",
                "dm_mod",
                "dm_crypt"
            ]
        );
        assert_eq!(got[4].path, "kernel/drivers/md/dm-crypt.ko");
        let e = select(&["nosuch".to_string()], &files, &builtin).unwrap_err();
        assert_eq!(
            e.to_string(),
            "kernel module nosuch: not in the kernel package (neither a module nor built in)"
        );
    }

    #[test]
    fn xz_modules_are_decompressed() {
        let plain = ko("tsm", "");
        let mut xz = Vec::new();
        liblzma::read::XzEncoder::new(plain.as_slice(), 6)
            .read_to_end(&mut xz)
            .unwrap();
        let mut files = BTreeMap::new();
        files.insert("kernel/drivers/virt/coco/tsm.ko.xz".to_string(), xz);
        let got = select(&["tsm".to_string()], &files, &BTreeSet::new()).unwrap();
        assert_eq!(got[0].path, "kernel/drivers/virt/coco/tsm.ko");
        assert_eq!(got[0].data, plain);
        assert_eq!(modinfo(&plain, "vermagic"), Some("6.12"));
    }
}
