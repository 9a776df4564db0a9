//! POSIX behaviour an app expects from the sealed $HOME (runs as root: mounts FUSE directly).

mod common;

use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt};

use common::{TestMount, errno};

#[test]
fn create_write_read_seek_append() {
    let t = TestMount::new();
    fs::write(t.p("a.txt"), b"hello").unwrap();
    let mut f = OpenOptions::new().append(true).open(t.p("a.txt")).unwrap();
    f.write_all(b" world").unwrap();
    drop(f);
    assert_eq!(fs::read(t.p("a.txt")).unwrap(), b"hello world");

    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(t.p("a.txt"))
        .unwrap();
    f.seek(SeekFrom::Start(6)).unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "world");
    f.seek(SeekFrom::Start(0)).unwrap();
    f.write_all(b"J").unwrap();
    assert_eq!(f.seek(SeekFrom::End(0)).unwrap(), 11);
    drop(f);
    assert_eq!(fs::read(t.p("a.txt")).unwrap(), b"Jello world");
    // O_APPEND writes land at the end even from a stale offset.
    let mut f = OpenOptions::new().append(true).open(t.p("a.txt")).unwrap();
    fs::write(t.p("b.txt"), b"x").unwrap();
    f.write_all(b"!").unwrap();
    assert_eq!(fs::read(t.p("a.txt")).unwrap(), b"Jello world!");
}

#[test]
fn stat_size_is_plaintext_size() {
    let t = TestMount::new();
    for (i, size) in [0usize, 1, 4095, 4096, 4097, 8192, 100_000]
        .iter()
        .enumerate()
    {
        let name = format!("f{i}");
        let data: Vec<u8> = (0..*size).map(|j| (j % 251) as u8).collect();
        fs::write(t.p(&name), &data).unwrap();
        assert_eq!(fs::metadata(t.p(&name)).unwrap().len(), *size as u64);
        assert_eq!(fs::read(t.p(&name)).unwrap(), data);
    }
    let mut total_backing = 0;
    for p in common::backing_files(&t.backing()) {
        if p.file_name().unwrap() != mse_sealfs::DIR_ID_FILE {
            total_backing += fs::metadata(&p).unwrap().len();
        }
    }
    let expected: u64 = [0u64, 1, 4095, 4096, 4097, 8192, 100_000]
        .iter()
        .map(|s| mse_sealfs::backing_size(*s))
        .sum();
    assert_eq!(total_backing, expected);
}

#[test]
fn truncate_shrinks_and_grows_with_zeros() {
    let t = TestMount::new();
    fs::write(t.p("t"), vec![7u8; 10_000]).unwrap();
    let f = OpenOptions::new().write(true).open(t.p("t")).unwrap();
    f.set_len(5000).unwrap();
    assert_eq!(fs::metadata(t.p("t")).unwrap().len(), 5000);
    f.set_len(9000).unwrap();
    drop(f);
    let data = fs::read(t.p("t")).unwrap();
    assert_eq!(data.len(), 9000);
    assert!(data[..5000].iter().all(|b| *b == 7));
    assert!(data[5000..].iter().all(|b| *b == 0));
    // O_TRUNC.
    fs::write(t.p("t"), b"short").unwrap();
    assert_eq!(fs::read(t.p("t")).unwrap(), b"short");
    let f = OpenOptions::new().write(true).open(t.p("t")).unwrap();
    f.set_len(0).unwrap();
    assert_eq!(fs::metadata(t.p("t")).unwrap().len(), 0);
}

#[test]
fn sparse_writes_read_back_zeros() {
    let t = TestMount::new();
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(t.p("sparse"))
        .unwrap();
    f.write_all_at(b"end", 3 * 1024 * 1024 + 10).unwrap();
    f.write_all_at(b"mid", 5000).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 3 * 1024 * 1024 + 13);
    let data = fs::read(t.p("sparse")).unwrap();
    assert_eq!(&data[5000..5003], b"mid");
    assert_eq!(&data[data.len() - 3..], b"end");
    let zeros = data.iter().filter(|b| **b == 0).count();
    assert_eq!(zeros, data.len() - 6);
}

#[test]
fn rename_moves_and_replaces() {
    let t = TestMount::new();
    fs::create_dir(t.p("d1")).unwrap();
    fs::create_dir(t.p("d2")).unwrap();
    fs::write(t.p("d1/a"), b"A").unwrap();
    fs::write(t.p("d2/b"), b"B").unwrap();
    // Across directories, over an existing file.
    fs::rename(t.p("d1/a"), t.p("d2/b")).unwrap();
    assert_eq!(fs::read(t.p("d2/b")).unwrap(), b"A");
    assert_eq!(errno(&fs::metadata(t.p("d1/a")).unwrap_err()), libc::ENOENT);
    // Renaming a directory keeps its content reachable.
    fs::create_dir(t.p("d2/sub")).unwrap();
    fs::write(t.p("d2/sub/c"), b"C").unwrap();
    fs::rename(t.p("d2"), t.p("d1/moved")).unwrap();
    assert_eq!(fs::read(t.p("d1/moved/sub/c")).unwrap(), b"C");
    assert_eq!(fs::read(t.p("d1/moved/b")).unwrap(), b"A");
    // Over an empty directory: allowed; over a non-empty one: ENOTEMPTY.
    fs::create_dir(t.p("empty")).unwrap();
    fs::rename(t.p("d1/moved/sub"), t.p("empty")).unwrap();
    assert_eq!(fs::read(t.p("empty/c")).unwrap(), b"C");
    fs::create_dir(t.p("other")).unwrap();
    let err = fs::rename(t.p("other"), t.p("d1/moved")).unwrap_err();
    assert_eq!(errno(&err), libc::ENOTEMPTY);
    // File over directory.
    let err = fs::rename(t.p("empty/c"), t.p("other")).unwrap_err();
    assert_eq!(errno(&err), libc::EISDIR);
    // The same survives a remount.
    let mut t = t;
    t.remount();
    assert_eq!(fs::read(t.p("empty/c")).unwrap(), b"C");
    assert_eq!(fs::read(t.p("d1/moved/b")).unwrap(), b"A");
}

#[test]
fn unlink_while_open_keeps_the_data() {
    let t = TestMount::new();
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(t.p("gone"))
        .unwrap();
    f.write_all(b"still here").unwrap();
    fs::remove_file(t.p("gone")).unwrap();
    assert_eq!(errno(&fs::metadata(t.p("gone")).unwrap_err()), libc::ENOENT);
    assert!(fs::read_dir(t.mnt()).unwrap().next().is_none());
    f.write_all(b", and more").unwrap();
    let mut s = String::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "still here, and more");
    assert_eq!(f.metadata().unwrap().len(), 20);
    // Attributes still change through the open descriptor.
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .unwrap();
    assert_eq!(f.metadata().unwrap().mode() & 0o777, 0o600);
    f.set_len(5).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 5);
    // A new file may take the name meanwhile.
    fs::write(t.p("gone"), b"new").unwrap();
    assert_eq!(fs::read(t.p("gone")).unwrap(), b"new");
}

#[test]
fn mkdir_rmdir_readdir() {
    let t = TestMount::new();
    fs::create_dir_all(t.p("a/b/c")).unwrap();
    for n in ["x", "y", "z"] {
        fs::write(t.p(&format!("a/{n}")), n).unwrap();
    }
    assert_eq!(common::sorted_names(&t.p("a")), ["b", "x", "y", "z"]);
    assert!(fs::metadata(t.p("a/b")).unwrap().is_dir());
    let err = fs::remove_dir(t.p("a/b")).unwrap_err();
    assert_eq!(errno(&err), libc::ENOTEMPTY);
    fs::remove_dir(t.p("a/b/c")).unwrap();
    fs::remove_dir(t.p("a/b")).unwrap();
    assert_eq!(errno(&fs::metadata(t.p("a/b")).unwrap_err()), libc::ENOENT);
    // Many entries (more than one readdir buffer).
    fs::create_dir(t.p("many")).unwrap();
    for i in 0..600 {
        fs::write(t.p(&format!("many/file-with-a-longish-name-{i:04}")), b"").unwrap();
    }
    assert_eq!(fs::read_dir(t.p("many")).unwrap().count(), 600);
}

#[test]
fn fsync_symlink_chmod_and_names() {
    let t = TestMount::new();
    let f = fs::File::create(t.p("s")).unwrap();
    f.write_all_at(b"durable", 0).unwrap();
    f.sync_all().unwrap();
    f.sync_data().unwrap();
    drop(f);
    std::os::unix::fs::symlink("s", t.p("link")).unwrap();
    assert_eq!(fs::read_link(t.p("link")).unwrap().to_str(), Some("s"));
    assert_eq!(fs::read(t.p("link")).unwrap(), b"durable");
    fs::set_permissions(
        t.p("s"),
        std::os::unix::fs::PermissionsExt::from_mode(0o640),
    )
    .unwrap();
    assert_eq!(fs::metadata(t.p("s")).unwrap().mode() & 0o777, 0o640);
    // Names: non-ASCII fine, over the limit ENAMETOOLONG.
    fs::write(t.p("héllo wörld ✓"), b"u").unwrap();
    assert_eq!(fs::read(t.p("héllo wörld ✓")).unwrap(), b"u");
    let long = "n".repeat(mse_sealfs::MAX_NAME_LEN);
    fs::write(t.p(&long), b"ok").unwrap();
    let err = fs::write(t.p(&format!("{long}x")), b"no").unwrap_err();
    assert_eq!(errno(&err), libc::ENAMETOOLONG);
    // No extended attributes: they would be stored in clear on the host.
    let err = rustix::fs::setxattr(t.p("s"), "user.k", b"v", rustix::fs::XattrFlags::empty());
    assert_eq!(err, Err(rustix::io::Errno::OPNOTSUPP));
    let mut buf = [0u8; 16];
    let err = rustix::fs::getxattr(t.p("s"), "user.k", &mut buf[..]);
    assert_eq!(err, Err(rustix::io::Errno::OPNOTSUPP));
    // Hard links are refused.
    let err = fs::hard_link(t.p("s"), t.p("hl")).unwrap_err();
    assert_eq!(errno(&err), libc::EPERM);
}

#[test]
fn many_threads_read_and_write() {
    let t = TestMount::new();
    let shared = t.p("shared");
    let f = fs::File::create(&shared).unwrap();
    f.set_len(8 * 64 * 1024).unwrap();
    drop(f);
    let mut handles = Vec::new();
    for i in 0..8u8 {
        let own = t.p(&format!("own{i}"));
        let shared = shared.clone();
        handles.push(std::thread::spawn(move || {
            let pattern: Vec<u8> = (0..200_000u32).map(|j| (j as u8) ^ i).collect();
            let mut f = fs::File::create(&own).unwrap();
            for chunk in pattern.chunks(7_777) {
                f.write_all(chunk).unwrap();
            }
            drop(f);
            assert_eq!(fs::read(&own).unwrap(), pattern);
            // Disjoint 64 KiB region of the shared file, written in unaligned pieces.
            let sf = OpenOptions::new().write(true).open(&shared).unwrap();
            let base = u64::from(i) * 64 * 1024;
            for k in 0..64u64 {
                sf.write_all_at(&[i + 1; 1024], base + k * 1024).unwrap();
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    let data = fs::read(&shared).unwrap();
    for i in 0..8usize {
        assert!(
            data[i * 65536..(i + 1) * 65536]
                .iter()
                .all(|b| *b == i as u8 + 1),
            "region {i}"
        );
    }
}

#[test]
fn copy_within_the_mount_reseals() {
    let t = TestMount::new();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    fs::write(t.p("src"), &data).unwrap();
    // std::fs::copy tries copy_file_range first, then falls back.
    assert_eq!(fs::copy(t.p("src"), t.p("dst")).unwrap(), 300_000);
    assert_eq!(fs::read(t.p("dst")).unwrap(), data);
    fs::remove_file(t.p("src")).unwrap();
    assert_eq!(fs::read(t.p("dst")).unwrap(), data);
}

/// Write-only opens bypass the FUSE page cache; a reader holding the file open through the
/// page cache (read(2) and a shared mapping) must still see their writes and the new size.
#[test]
fn write_only_writes_reach_cached_readers() {
    let t = TestMount::new();
    fs::write(t.p("c"), vec![b'A'; 10_000]).unwrap();
    let reader = OpenOptions::new()
        .read(true)
        .write(true)
        .open(t.p("c"))
        .unwrap();
    let mut buf = vec![0u8; 10_000];
    reader.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(buf, vec![b'A'; 10_000]);
    let writer = OpenOptions::new().write(true).open(t.p("c")).unwrap();
    writer.write_all_at(&[b'B'; 5000], 2000).unwrap();
    reader.read_exact_at(&mut buf, 0).unwrap();
    let mut want = vec![b'A'; 10_000];
    want[2000..7000].fill(b'B');
    assert_eq!(buf, want);
    writer.write_all_at(&[b'C'; 3000], 9000).unwrap();
    assert_eq!(reader.metadata().unwrap().len(), 12_000);
    let mut tail = vec![0u8; 3000];
    reader.read_exact_at(&mut tail, 9000).unwrap();
    assert_eq!(tail, vec![b'C'; 3000]);
}

/// Large appends are acknowledged before they reach the backing file (pipelined); a reader on
/// another descriptor, stat, O_APPEND, an overwrite and a truncate must all see every
/// acknowledged byte, in order.
#[test]
fn streamed_large_appends_are_seen_at_once() {
    let t = TestMount::new();
    let chunk =
        |i: usize, len: usize| -> Vec<u8> { (0..len).map(|j| (i * 31 + j % 253) as u8).collect() };
    let mut w = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(t.p("s"))
        .unwrap();
    let r = OpenOptions::new().read(true).open(t.p("s")).unwrap();
    let mut want = Vec::new();
    for i in 0..12 {
        // Whole MiBs, and sizes that leave the last block partly filled.
        let data = chunk(i, if i % 3 == 2 { 200_003 } else { 1 << 20 });
        w.write_all(&data).unwrap();
        want.extend_from_slice(&data);
        let mut got = vec![0u8; want.len()];
        r.read_exact_at(&mut got, 0).unwrap();
        assert!(got == want, "after write {i}");
        assert_eq!(fs::metadata(t.p("s")).unwrap().len(), want.len() as u64);
    }
    let mut a = OpenOptions::new().append(true).open(t.p("s")).unwrap();
    let data = chunk(99, 300_000);
    a.write_all(&data).unwrap();
    want.extend_from_slice(&data);
    w.write_all_at(&[7u8; 150_000], 1_000_000).unwrap();
    want[1_000_000..1_150_000].fill(7);
    w.set_len(5_000_001).unwrap();
    want.truncate(5_000_001);
    let data = chunk(100, 400_000);
    a.write_all(&data).unwrap();
    want.extend_from_slice(&data);
    w.sync_all().unwrap();
    drop((w, a, r));
    assert!(fs::read(t.p("s")).unwrap() == want);
}

/// Names and paths as long as ext4 allows: NAME_MAX (255 bytes) and PATH_MAX (4096 with the NUL).
mod long_paths {
    use std::os::fd::OwnedFd;

    use rustix::fs::{AtFlags, Mode, OFlags};
    use rustix::io::Errno;

    use super::common::TestMount;

    fn dir_flags() -> OFlags {
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC
    }

    fn open_dir<Fd: rustix::fd::AsFd>(at: Fd, name: &str) -> OwnedFd {
        rustix::fs::openat(at, name, dir_flags(), Mode::empty())
            .unwrap_or_else(|e| panic!("open {} bytes: {e}", name.len()))
    }

    fn write_file<Fd: rustix::fd::AsFd>(at: Fd, name: &str, data: &[u8]) -> Result<(), Errno> {
        let fd = rustix::fs::openat(
            at,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        assert_eq!(rustix::io::write(&fd, data)?, data.len());
        Ok(())
    }

    fn read_file<Fd: rustix::fd::AsFd>(at: Fd, name: &str) -> Vec<u8> {
        let fd = rustix::fs::openat(at, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .unwrap_or_else(|e| panic!("open {} bytes: {e}", name.len()));
        let mut buf = vec![0u8; 4096];
        let n = rustix::io::read(&fd, &mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    fn names<Fd: rustix::fd::AsFd>(dir: Fd) -> Vec<String> {
        let fd = rustix::fs::openat(dir, ".", dir_flags(), Mode::empty()).unwrap();
        let mut out: Vec<String> = rustix::fs::Dir::read_from(&fd)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "." && n != "..")
            .collect();
        out.sort();
        out
    }

    /// Host names in the backing directory tree (recursively), through descriptors.
    fn backing_names(dir: &std::path::Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![rustix::fs::open(dir, dir_flags(), Mode::empty()).unwrap()];
        while let Some(d) = stack.pop() {
            for e in rustix::fs::Dir::read_from(&d).unwrap() {
                let e = e.unwrap();
                let n = e.file_name().to_string_lossy().into_owned();
                if n == "." || n == ".." {
                    continue;
                }
                if e.file_type() == rustix::fs::FileType::Directory {
                    stack.push(open_dir(&d, &n));
                }
                out.push(n);
            }
        }
        out
    }

    fn level_name(i: usize, len: usize) -> String {
        let head = format!("{i:03}-");
        format!("{head}{}", "d".repeat(len - head.len()))
    }

    #[test]
    fn a_tree_40_deep_with_100_byte_names_works_and_survives_a_remount() {
        let mut t = TestMount::new();
        let depth = 40;
        let mut fds = vec![open_dir(rustix::fs::CWD, t.mnt().to_str().unwrap())];
        for i in 0..depth {
            let name = level_name(i, 100);
            rustix::fs::mkdirat(
                fds.last().unwrap(),
                name.as_str(),
                Mode::from_raw_mode(0o755),
            )
            .unwrap_or_else(|e| panic!("mkdir at depth {}: {e}", i + 1));
            let next = open_dir(fds.last().unwrap(), &name);
            fds.push(next);
        }
        let bottom = fds.last().unwrap();
        write_file(bottom, "leaf.txt", b"deep").unwrap();
        assert_eq!(read_file(bottom, "leaf.txt"), b"deep");
        rustix::fs::renameat(bottom, "leaf.txt", &fds[depth - 1], "moved.txt").unwrap();
        assert_eq!(
            names(&fds[depth - 1]),
            [level_name(depth - 1, 100), "moved.txt".into()]
        );
        drop(fds);

        // After a remount (the quota walk and every lookup go 40 levels down again).
        t.unmount();
        t.mount_with(super::common::KEY);
        let mut fds = vec![open_dir(rustix::fs::CWD, t.mnt().to_str().unwrap())];
        for i in 0..depth - 1 {
            let next = open_dir(fds.last().unwrap(), &level_name(i, 100));
            fds.push(next);
        }
        assert_eq!(read_file(fds.last().unwrap(), "moved.txt"), b"deep");
        // And everything can be removed again, leaving only the root's directory id.
        rustix::fs::unlinkat(fds.last().unwrap(), "moved.txt", AtFlags::empty()).unwrap();
        rustix::fs::unlinkat(
            fds.last().unwrap(),
            level_name(depth - 1, 100).as_str(),
            AtFlags::REMOVEDIR,
        )
        .unwrap();
        for i in (0..depth - 1).rev() {
            fds.pop();
            rustix::fs::unlinkat(
                fds.last().unwrap(),
                level_name(i, 100).as_str(),
                AtFlags::REMOVEDIR,
            )
            .unwrap_or_else(|e| panic!("rmdir at depth {}: {e}", i + 1));
        }
        assert_eq!(backing_names(&t.backing()), [mse_sealfs::DIR_ID_FILE]);
    }

    #[test]
    fn names_of_255_bytes_work_and_256_bytes_is_enametoolong() {
        let mut t = TestMount::new();
        let root = open_dir(rustix::fs::CWD, t.mnt().to_str().unwrap());
        let a = "a".repeat(255);
        let b = format!("{}é", "b".repeat(253));
        assert_eq!(b.len(), 255);
        let too_long = "c".repeat(256);

        write_file(&root, &a, b"file a").unwrap();
        assert_eq!(read_file(&root, &a), b"file a");
        rustix::fs::mkdirat(&root, b.as_str(), Mode::from_raw_mode(0o755)).unwrap();
        write_file(open_dir(&root, &b), &a, b"inside").unwrap();
        rustix::fs::symlinkat(a.as_str(), &root, format!("l{}", &a[1..]).as_str()).unwrap();
        assert_eq!(
            rustix::fs::readlinkat(&root, format!("l{}", &a[1..]).as_str(), Vec::new())
                .unwrap()
                .to_str()
                .unwrap(),
            a
        );
        assert_eq!(
            names(&root),
            [a.clone(), b.clone(), format!("l{}", &a[1..])]
        );

        // 256 bytes: ENAMETOOLONG for every way of making a name, and for lookups.
        let e = |r: Result<(), Errno>| r.unwrap_err();
        assert_eq!(e(write_file(&root, &too_long, b"x")), Errno::NAMETOOLONG);
        assert_eq!(
            e(rustix::fs::mkdirat(
                &root,
                too_long.as_str(),
                Mode::from_raw_mode(0o755)
            )),
            Errno::NAMETOOLONG
        );
        assert_eq!(
            e(rustix::fs::symlinkat("t", &root, too_long.as_str())),
            Errno::NAMETOOLONG
        );
        assert_eq!(
            e(rustix::fs::renameat(
                &root,
                a.as_str(),
                &root,
                too_long.as_str()
            )),
            Errno::NAMETOOLONG
        );
        assert_eq!(
            rustix::fs::statat(&root, too_long.as_str(), AtFlags::empty()).unwrap_err(),
            Errno::NAMETOOLONG
        );

        // Renames between long and short names, within and across directories.
        rustix::fs::renameat(&root, a.as_str(), &root, "short").unwrap();
        rustix::fs::renameat(&root, "short", open_dir(&root, &b), b.as_str()).unwrap();
        assert_eq!(names(open_dir(&root, &b)), [a.clone(), b.clone()]);
        rustix::fs::renameat(open_dir(&root, &b), b.as_str(), &root, a.as_str()).unwrap();
        assert_eq!(read_file(&root, &a), b"file a");
        drop(root);

        // After a remount, then removal of everything: no side file is left behind.
        t.unmount();
        t.mount_with(super::common::KEY);
        let root = open_dir(rustix::fs::CWD, t.mnt().to_str().unwrap());
        assert_eq!(
            names(&root),
            [a.clone(), b.clone(), format!("l{}", &a[1..])]
        );
        assert_eq!(read_file(open_dir(&root, &b), &a), b"inside");
        rustix::fs::unlinkat(open_dir(&root, &b), a.as_str(), AtFlags::empty()).unwrap();
        rustix::fs::unlinkat(&root, b.as_str(), AtFlags::REMOVEDIR).unwrap();
        rustix::fs::unlinkat(&root, a.as_str(), AtFlags::empty()).unwrap();
        rustix::fs::unlinkat(&root, format!("l{}", &a[1..]).as_str(), AtFlags::empty()).unwrap();
        assert_eq!(names(&root), Vec::<String>::new());
        assert_eq!(backing_names(&t.backing()), [mse_sealfs::DIR_ID_FILE]);
    }

    #[test]
    fn link_targets_up_to_4095_bytes_work_and_their_storage_goes_with_them() {
        let mut t = TestMount::new();
        let root = open_dir(rustix::fs::CWD, t.mnt().to_str().unwrap());
        // Up to 3 043 bytes the sealed target is the host link's own target; beyond, it is
        // kept in a file that the link refers to.
        let targets: Vec<String> = [1, 3043, 3044, 4095]
            .iter()
            .map(|&n| format!("/{}", "t".repeat(n - 1)))
            .collect();
        for (i, target) in targets.iter().enumerate() {
            rustix::fs::symlinkat(target.as_str(), &root, format!("l{i}").as_str()).unwrap();
        }
        let read = |root: &OwnedFd, name: &str| {
            rustix::fs::readlinkat(root, name, Vec::new()).map(|t| t.into_string().unwrap())
        };
        for (i, target) in targets.iter().enumerate() {
            assert_eq!(read(&root, &format!("l{i}")).unwrap(), *target);
        }
        let too_long = "t".repeat(4096);
        assert_eq!(
            rustix::fs::symlinkat(too_long.as_str(), &root, "l4").unwrap_err(),
            Errno::NAMETOOLONG
        );
        let stored = |t: &TestMount| {
            let dir = t.backing().join(".mse-sealfs.links");
            let mut v: Vec<_> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            v.sort();
            v
        };
        assert_eq!(stored(&t).len(), 2);
        drop(root);
        t.unmount();
        t.mount_with(super::common::KEY);
        let root = open_dir(rustix::fs::CWD, t.mnt().to_str().unwrap());
        assert_eq!(read(&root, "l3").unwrap(), targets[3]);
        assert_eq!(names(&root), ["l0", "l1", "l2", "l3"]);
        // Replaced by a rename, then unlinked: no stored target is left behind.
        rustix::fs::renameat(&root, "l0", &root, "l2").unwrap();
        assert_eq!(read(&root, "l2").unwrap(), targets[0]);
        assert_eq!(stored(&t).len(), 1);
        // A stored target altered on the host: EIO, never a forged target.
        drop(root);
        t.unmount();
        let file = stored(&t).remove(0);
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[100] = if bytes[100] == b'A' { b'B' } else { b'A' };
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        std::fs::write(&file, &bytes).unwrap();
        t.mount_with(super::common::KEY);
        let root = open_dir(rustix::fs::CWD, t.mnt().to_str().unwrap());
        assert_eq!(read(&root, "l3").unwrap_err(), Errno::IO);
        for name in ["l1", "l2", "l3"] {
            rustix::fs::unlinkat(&root, name, AtFlags::empty()).unwrap();
        }
        assert_eq!(stored(&t).len(), 0);
        assert_eq!(names(&root), Vec::<String>::new());
    }

    #[test]
    fn a_path_of_4095_bytes_works_in_one_system_call() {
        let t = TestMount::new();
        let root = open_dir(rustix::fs::CWD, t.mnt().to_str().unwrap());
        // 23 directories of 175 bytes (each stored under a 255-byte encrypted name, so the
        // backing path is ~5.9 KB) and a 47-byte file name: 23 * 176 + 47 = 4095 bytes.
        let dirs: Vec<String> = (0..23).map(|i| level_name(i, 175)).collect();
        let file = "f".repeat(47);
        let path = format!("{}/{file}", dirs.join("/"));
        assert_eq!(path.len(), 4095);
        let mut fds = vec![open_dir(&root, ".")];
        for d in &dirs {
            rustix::fs::mkdirat(fds.last().unwrap(), d.as_str(), Mode::from_raw_mode(0o700))
                .unwrap_or_else(|e| panic!("mkdir at depth {}: {e}", fds.len()));
            let next = open_dir(fds.last().unwrap(), d);
            fds.push(next);
        }
        write_file(&root, &path, b"at PATH_MAX - 1").unwrap();
        assert_eq!(read_file(&root, &path), b"at PATH_MAX - 1");
        let st = rustix::fs::statat(&root, path.as_str(), AtFlags::empty()).unwrap();
        assert_eq!(st.st_size, 15);
        rustix::fs::chmodat(
            &root,
            path.as_str(),
            Mode::from_raw_mode(0o640),
            AtFlags::empty(),
        )
        .unwrap();
        let st = rustix::fs::statat(&root, path.as_str(), AtFlags::empty()).unwrap();
        assert_eq!(st.st_mode & 0o777, 0o640);
        // One byte more is the kernel's PATH_MAX, as on any filesystem.
        let longer = format!("{path}g");
        assert_eq!(
            write_file(&root, &longer, b"x").unwrap_err(),
            Errno::NAMETOOLONG
        );
        rustix::fs::unlinkat(&root, path.as_str(), AtFlags::empty()).unwrap();
        assert_eq!(names(fds.last().unwrap()), Vec::<String>::new());
    }
}

/// Ownership, modes and permission checks with several users, as pjdfstest checks them (the
/// mount with `allow_other`; the kernel does the permission checks, `default_permissions`).
mod users {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    use std::os::unix::process::CommandExt as _;
    use std::process::Command;

    use mse_sealfs::SealFsOptions;

    use super::common::{KEY, TestMount};

    const NOBODY: u32 = 65534;

    fn mount() -> TestMount {
        let t = TestMount::with(
            KEY,
            SealFsOptions {
                allow_other: true,
                ..SealFsOptions::default()
            },
        );
        std::fs::set_permissions(t.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(t.mnt(), std::fs::Permissions::from_mode(0o777)).unwrap();
        t
    }

    /// Runs `script` with `sh` in the mount as `uid`:`gid` with umask 0: whether it succeeded,
    /// and the error (strerror) ending each line of its stderr.
    fn sh(t: &TestMount, uid: u32, gid: u32, script: &str) -> (bool, String) {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("umask 0; {script}"))
            .current_dir(t.mnt())
            .uid(uid)
            .gid(gid)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr)
            .lines()
            .map(|l| l.rsplit(": ").next().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
            .join("\n");
        (out.status.success(), err)
    }

    fn owner_mode(t: &TestMount, rel: &str) -> (u32, u32, u32) {
        let md = std::fs::symlink_metadata(t.p(rel)).unwrap();
        (md.uid(), md.gid(), md.mode() & 0o7777)
    }

    #[test]
    fn new_objects_get_their_creators_owner_and_exactly_the_mode_asked_for() {
        if mse_testkit::lacks_root("allow_other, other users") {
            return;
        }
        let t = mount();
        // umask 0: the mode asked for, not narrowed by the filesystem process's own umask.
        assert_eq!(
            sh(&t, 0, 0, "mkdir d && : > f && chmod 4755 f"),
            (true, String::new())
        );
        assert_eq!(owner_mode(&t, "d"), (0, 0, 0o777));
        assert_eq!(owner_mode(&t, "f"), (0, 0, 0o4755));
        // Another user's objects are that user's.
        let script = ": > n && mkdir nd && ln -s target nl";
        assert_eq!(sh(&t, NOBODY, NOBODY, script), (true, String::new()));
        assert_eq!(owner_mode(&t, "n"), (NOBODY, NOBODY, 0o666));
        assert_eq!(owner_mode(&t, "nd"), (NOBODY, NOBODY, 0o777));
        let l = std::fs::symlink_metadata(t.p("nl")).unwrap();
        assert_eq!((l.uid(), l.gid()), (NOBODY, NOBODY));
        // In a set-group-ID directory: the directory's group, and subdirectories inherit the bit.
        assert_eq!(
            sh(&t, 0, 0, "mkdir sg && chown 0:1234 sg && chmod 2777 sg"),
            (true, String::new())
        );
        assert_eq!(
            sh(&t, NOBODY, NOBODY, ": > sg/f && mkdir sg/d"),
            (true, String::new())
        );
        assert_eq!(owner_mode(&t, "sg/f"), (NOBODY, 1234, 0o666));
        assert_eq!(owner_mode(&t, "sg/d"), (NOBODY, 1234, 0o2777));
        // All of it survives a remount (it is the backing objects' own metadata).
        drop(t);
    }

    #[test]
    fn chmod_chown_truncate_utimes_unlink_and_rename_are_checked_per_user() {
        if mse_testkit::lacks_root("allow_other, other users") {
            return;
        }
        let t = mount();
        let setup = ": > rw && chmod 666 rw && : > ro && chmod 644 ro && mkdir sticky && \
                     chmod 1777 sticky && : > sticky/roots && chmod 666 sticky/roots";
        assert_eq!(sh(&t, 0, 0, setup), (true, String::new()));
        let denied = |script: &str, want: &str| {
            assert_eq!(
                sh(&t, NOBODY, NOBODY, script),
                (false, want.to_string()),
                "{script}"
            );
        };
        denied("chmod 600 rw", "Operation not permitted");
        denied("chown 65534 ro", "Operation not permitted");
        denied("truncate -s 10 ro", "Permission denied");
        denied("touch -d @1000 rw", "Operation not permitted");
        denied("rm -f sticky/roots", "Operation not permitted");
        denied("mv sticky/roots sticky/mine", "Operation not permitted");
        // What the user may do: write to a world-writable file, set its times to now.
        assert_eq!(
            sh(&t, NOBODY, NOBODY, "truncate -s 10 rw && touch rw"),
            (true, String::new())
        );
        assert_eq!(std::fs::metadata(t.p("rw")).unwrap().len(), 10);
        // Its own files: any mode, times, rename and unlink, even in the sticky directory.
        let own = ": > sticky/mine && chmod 4700 sticky/mine && touch -d @1000 sticky/mine && \
                   mv sticky/mine sticky/moved && rm sticky/moved";
        assert_eq!(sh(&t, NOBODY, NOBODY, own), (true, String::new()));
        assert!(!t.p("sticky/moved").exists());
        // Another user's write clears set-user-ID and set-group-ID (with group execute), also
        // through a write-only descriptor (which bypasses the page cache); root's does not.
        let setid = "for f in wo rw2 g; do : > $f; done && chmod 6777 wo rw2 && chmod 2767 g && \
                     chmod 4777 byroot";
        assert_eq!(
            sh(&t, 0, 0, &format!(": > byroot && {setid}")),
            (true, String::new())
        );
        let writes = "printf x >> wo && printf x 1<> rw2 && printf x >> g";
        assert_eq!(sh(&t, NOBODY, NOBODY, writes), (true, String::new()));
        assert_eq!(sh(&t, 0, 0, "printf x > byroot"), (true, String::new()));
        assert_eq!(owner_mode(&t, "wo").2, 0o777);
        assert_eq!(owner_mode(&t, "rw2").2, 0o777);
        assert_eq!(owner_mode(&t, "g").2, 0o2767);
        assert_eq!(owner_mode(&t, "byroot").2, 0o4777);
        // Root may change owners; a chown by root clears set-user-ID.
        assert_eq!(
            sh(&t, 0, 0, "chmod 4755 ro && chown 65534:65534 ro"),
            (true, String::new())
        );
        assert_eq!(owner_mode(&t, "ro"), (NOBODY, NOBODY, 0o755));
    }
}

#[test]
fn sizes_beyond_the_largest_file_are_efbig_not_enospc() {
    let t = TestMount::new();
    let f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(t.p("big"))
        .unwrap();
    let max = mse_sealfs::MAX_FILE_SIZE;
    for size in [max + 1, 999_999_999_999_999] {
        assert_eq!(errno(&f.set_len(size).unwrap_err()), libc::EFBIG, "{size}");
    }
    assert_eq!(errno(&f.write_all_at(b"x", max).unwrap_err()), libc::EFBIG);
    let err = rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), max, 1);
    assert_eq!(err, Err(rustix::io::Errno::FBIG));
    // Within the largest size, beyond the quota: ENOSPC.
    assert_eq!(errno(&f.set_len(max).unwrap_err()), libc::ENOSPC);
    assert_eq!(f.metadata().unwrap().len(), 0);
}
