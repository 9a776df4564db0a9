//! The seccomp filter that backs the audit hook: no new process, no exec, from Python, ctypes or
//! any C extension alike.
//!
//! Two filters, because a seccompiler filter has one match action:
//! * EPERM for fork, vfork, execve, execveat, and clone without CLONE_THREAD (threads still work);
//! * ENOSYS for clone3, whose flags live in user memory that BPF cannot read: glibc then falls
//!   back to clone, which the first filter can judge.
//!
//! The errno action (never a kill) means the app sees an OSError and the runtime keeps serving.

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

fn build_err(e: impl std::fmt::Display) -> SandboxError {
    SandboxError::SeccompBuild(e.to_string())
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
    #[cfg(target_arch = "x86_64")]
    {
        rules.insert(libc::SYS_fork, vec![]);
        rules.insert(libc::SYS_vfork, vec![]);
        // Nothing legitimate here uses the x32 ABI: refuse its process calls outright.
        for nr in [
            libc::SYS_fork,
            libc::SYS_vfork,
            libc::SYS_clone,
            libc::SYS_clone3,
            520, // x32 execve
            545, // x32 execveat
        ] {
            rules.insert(nr | X32_SYSCALL_BIT, vec![]);
        }
    }
    Ok(rules)
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
        seccompiler::apply_filter_all_threads(&program)
            .map_err(|e| SandboxError::SeccompInstall(e.to_string()))?;
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
    }
}
