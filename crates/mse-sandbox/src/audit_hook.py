# Run by the enclave runtime once, after the interpreter starts and before the app is imported.
# PEP 578 audit hook: the app gets a PermissionError naming the limitation instead of the bare
# EPERM of the seccomp filter that backs it (C extensions and ctypes raise no audit event; the
# filter stops those). Audit hooks cannot be removed once added.


def _mse_install_enclave_audit_hook():
    import sys

    blocked = frozenset(
        (
            "os.exec",
            "os.fork",
            "os.forkpty",
            "os.posix_spawn",
            "os.spawn",
            "os.startfile",
            "os.system",
            "pty.spawn",
            "subprocess.Popen",
        )
    )

    def mse_enclave_audit_hook(event, args):
        if event in blocked:
            raise PermissionError(
                f"{event} is not allowed inside the enclave: no fork, no subprocess"
            )

    sys.addaudithook(mse_enclave_audit_hook)


_mse_install_enclave_audit_hook()
del _mse_install_enclave_audit_hook
