//! The seccomp filter that backs the audit hook: no new process, no exec, from Python, ctypes or
//! any C extension alike.
//!
//! Two filters, because a seccompiler filter has one match action:
//! * EPERM for fork, vfork, execve, execveat, and clone without CLONE_THREAD (threads still work);
//! * ENOSYS for clone3, whose flags live in user memory that BPF cannot read: glibc then falls
//!   back to clone, which the first filter can judge.
//!
//! The errno action (never a kill) means the app sees an OSError and the runtime keeps serving.
//!
//! The EPERM filter also refuses what no web app needs and what code running with the runtime's
//! privileges could use to undo the sandbox or reach the host ([`HARDENING`]: new mounts,
//! namespaces, chroot, ptrace, kernel modules, device nodes, clock and host name changes...).
//! `umount2` stays allowed: [`crate::Sandbox::stop`] needs it after lock-down.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use crate::error::SandboxError;

/// x32 system calls reach the x86-64 table with this bit set (same audit arch, so the arch check
/// of the filter does not catch them).
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: i64 = 0x4000_0000;

/// Refused with EPERM on top of process creation (Docker's default profile denies these too).
pub(crate) const HARDENING: &[i64] = &[
    libc::SYS_mount,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_setns,
    libc::SYS_unshare,
    libc::SYS_ptrace,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_bpf,
    libc::SYS_open_by_handle_at,
    libc::SYS_acct,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_sethostname,
    libc::SYS_setdomainname,
    libc::SYS_syslog,
    libc::SYS_quotactl,
    libc::SYS_perf_event_open,
    libc::SYS_fanotify_init,
    libc::SYS_userfaultfd,
    libc::SYS_vhangup,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_iopl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ioperm,
];

fn build_err(e: seccompiler::BackendError) -> SandboxError {
    SandboxError::SeccompBuild(e)
}

/// The system calls refused with EPERM, each with its rules (empty = always).
fn eperm_rules() -> Result<BTreeMap<i64, Vec<SeccompRule>>, SandboxError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    // clone(flags, ...): a new process unless CLONE_THREAD is set.
    let not_a_thread = SeccompRule::new(vec![
        SeccompCondition::new(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
            0,
        )
        .map_err(build_err)?,
    ])
    .map_err(build_err)?;
    rules.insert(libc::SYS_clone, vec![not_a_thread]);
    rules.insert(libc::SYS_execve, vec![]);
    rules.insert(libc::SYS_execveat, vec![]);
    for nr in HARDENING {
        rules.insert(*nr, vec![]);
    }
    // Device nodes (a FIFO or socket node stays allowed): mknodat(dirfd, path, mode, dev).
    rules.insert(libc::SYS_mknodat, device_node_rules(2)?);
    #[cfg(target_arch = "x86_64")]
    {
        rules.insert(libc::SYS_fork, vec![]);
        rules.insert(libc::SYS_vfork, vec![]);
        // mknod(path, mode, dev).
        rules.insert(libc::SYS_mknod, device_node_rules(1)?);
        // Nothing legitimate here uses the x32 ABI: refuse its process calls outright.
        for nr in [
            libc::SYS_fork,
            libc::SYS_vfork,
            libc::SYS_clone,
            libc::SYS_clone3,
            libc::SYS_mknod,
            libc::SYS_mknodat,
            520, // x32 execve
            521, // x32 ptrace
            545, // x32 execveat
        ]
        .into_iter()
        .chain(HARDENING.iter().copied())
        {
            rules.insert(nr | X32_SYSCALL_BIT, vec![]);
        }
    }
    Ok(rules)
}

/// Matches a character or block device type in the mode argument `arg`.
fn device_node_rules(arg: u8) -> Result<Vec<SeccompRule>, SandboxError> {
    [libc::S_IFCHR, libc::S_IFBLK]
        .into_iter()
        .map(|kind| {
            SeccompRule::new(vec![
                SeccompCondition::new(
                    arg,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::MaskedEq(u64::from(libc::S_IFMT)),
                    u64::from(kind),
                )
                .map_err(build_err)?,
            ])
            .map_err(build_err)
        })
        .collect()
}

fn target_arch() -> Result<TargetArch, SandboxError> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(build_err)
}

/// Compiles both filters (EPERM first, then the clone3 ENOSYS one).
pub(crate) fn filters() -> Result<Vec<BpfProgram>, SandboxError> {
    let arch = target_arch()?;
    let eperm = SeccompFilter::new(
        eperm_rules()?,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(build_err)?;
    let enosys = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, vec![])]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(build_err)?;
    let mut out = Vec::with_capacity(2);
    for f in [eperm, enosys] {
        out.push(BpfProgram::try_from(f).map_err(build_err)?);
    }
    Ok(out)
}

/// Installs the filters on every thread of the process (TSYNC); irreversible. seccompiler sets
/// PR_SET_NO_NEW_PRIVS first, as the kernel requires for an unprivileged filter.
pub(crate) fn install() -> Result<(), SandboxError> {
    for program in filters()? {
        seccompiler::apply_filter_all_threads(&program).map_err(SandboxError::SeccompInstall)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_filters_compile_to_bpf() {
        let f = filters().expect("filters");
        assert_eq!(f.len(), 2);
        assert!(f.iter().all(|p| !p.is_empty()));
    }

    #[test]
    fn clone_is_conditional_and_exec_is_not() {
        let rules = eperm_rules().expect("rules");
        assert_eq!(rules[&libc::SYS_clone].len(), 1);
        assert!(rules[&libc::SYS_execve].is_empty());
        assert!(rules[&libc::SYS_execveat].is_empty());
        assert!(!rules.contains_key(&libc::SYS_clone3));
        assert_eq!(rules[&libc::SYS_mknodat].len(), 2);
        assert!(rules[&libc::SYS_mount].is_empty());
        // stop() unmounts after lock-down.
        assert!(!rules.contains_key(&libc::SYS_umount2));
    }
}
