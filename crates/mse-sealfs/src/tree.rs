//! The inode table: FUSE inode numbers ↔ backing objects, named by (parent, encrypted name).
//!
//! Nodes keep no file descriptor (so thousands of cached dentries cost no fds); backing paths are
//! rebuilt from the parent chain, which makes renaming a directory O(1). A path may be longer
//! than the host's PATH_MAX: `SealFs::at` walks it through directory descriptors.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};

use crate::crypto::DIR_ID_LEN;

pub const ROOT_INO: u64 = 1;

#[derive(Debug)]
pub struct Node {
    pub parent: u64,
    /// Host name (the encrypted name, or its long-name alias); empty for the root.
    pub name: OsString,
    /// The encrypted name when `name` is a long-name alias.
    pub long: Option<String>,
    /// Directory id (directories only): the SIV nonce of the names inside.
    pub dir_id: Option<[u8; DIR_ID_LEN]>,
    pub nlookup: u64,
    /// Inode number of the backing object.
    pub backing_ino: u64,
    /// Removed from the namespace while the kernel still knows it (e.g. unlinked while open).
    pub unlinked: bool,
}

#[derive(Debug)]
pub struct Tree {
    nodes: HashMap<u64, Node>,
    by_backing: HashMap<u64, u64>,
    next_ino: u64,
}

impl Tree {
    pub fn new(root_dir_id: [u8; DIR_ID_LEN], root_backing_ino: u64) -> Self {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT_INO,
            Node {
                parent: ROOT_INO,
                name: OsString::new(),
                long: None,
                dir_id: Some(root_dir_id),
                nlookup: 1,
                backing_ino: root_backing_ino,
                unlinked: false,
            },
        );
        let mut by_backing = HashMap::new();
        by_backing.insert(root_backing_ino, ROOT_INO);
        Self {
            nodes,
            by_backing,
            next_ino: ROOT_INO + 1,
        }
    }

    pub fn get(&self, ino: u64) -> Option<&Node> {
        self.nodes.get(&ino)
    }

    pub fn get_mut(&mut self, ino: u64) -> Option<&mut Node> {
        self.nodes.get_mut(&ino)
    }

    /// Directory id of `ino`, or None if it is not a (live) directory.
    pub fn dir_id(&self, ino: u64) -> Option<[u8; DIR_ID_LEN]> {
        self.nodes
            .get(&ino)
            .filter(|n| !n.unlinked)
            .and_then(|n| n.dir_id)
    }

    /// The host names from the backing root down to `ino` (empty for the root).
    pub fn components(&self, ino: u64) -> Option<Vec<&OsStr>> {
        let mut parts = Vec::new();
        let mut cur = ino;
        // Bounded by the number of nodes: a cycle (impossible by construction) cannot hang us.
        for _ in 0..=self.nodes.len() {
            if cur == ROOT_INO {
                parts.reverse();
                return Some(parts);
            }
            let node = self.nodes.get(&cur)?;
            if node.unlinked {
                return None;
            }
            parts.push(node.name.as_os_str());
            cur = node.parent;
        }
        None
    }

    /// FUSE inode number of a backing inode, if known.
    pub fn ino_of_backing(&self, backing_ino: u64) -> Option<u64> {
        self.by_backing.get(&backing_ino).copied()
    }

    /// Records one more kernel reference to the object at (parent, name); returns its inode.
    pub fn remember(
        &mut self,
        parent: u64,
        (name, long): crate::crypto::StoredName,
        dir_id: Option<[u8; DIR_ID_LEN]>,
        backing_ino: u64,
    ) -> u64 {
        let name = OsString::from(name);
        if let Some(&ino) = self.by_backing.get(&backing_ino)
            && let Some(node) = self.nodes.get_mut(&ino)
        {
            node.nlookup += 1;
            node.parent = parent;
            node.name = name;
            node.long = long;
            return ino;
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(
            ino,
            Node {
                parent,
                name,
                long,
                dir_id,
                nlookup: 1,
                backing_ino,
                unlinked: false,
            },
        );
        self.by_backing.insert(backing_ino, ino);
        ino
    }

    /// Marks the object with this backing inode as gone from the namespace.
    pub fn detach_backing(&mut self, backing_ino: u64) -> Option<u64> {
        let ino = self.by_backing.remove(&backing_ino)?;
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.unlinked = true;
        }
        Some(ino)
    }

    /// The kernel dropped `n` references.
    pub fn forget(&mut self, ino: u64, n: u64) {
        if ino == ROOT_INO {
            return;
        }
        let Some(node) = self.nodes.get_mut(&ino) else {
            return;
        };
        node.nlookup = node.nlookup.saturating_sub(n);
        if node.nlookup == 0 {
            let backing = node.backing_ino;
            self.nodes.remove(&ino);
            if self.by_backing.get(&backing) == Some(&ino) {
                self.by_backing.remove(&backing);
            }
        }
    }
}
