/* A throw-away /init for scripts/image-test.sh: appended to the guest's initramfs as a second cpio
 * archive (it replaces mse-enclave), it checks what the guest image gives mse-enclave: the kernel
 * modules of /etc/mse-image/modules load in their order (sev-guest and tdx-guest may answer ENODEV
 * outside a confidential VM), configfs-tsm is there, and the image's libpython runs its standard
 * library (ssl with the CA bundle, sqlite3, ctypes, decimal). libpython is opened with dlopen, so
 * building this needs a C compiler only. Prints "SMOKE ..." lines, then powers off. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *PY =
    "import sys, os, ssl, sqlite3, ctypes, decimal, json, zlib, hashlib\n"
    "ctx = ssl.create_default_context()\n"
    "print('SMOKE python', sys.version.split()[0], ssl.OPENSSL_VERSION,"
    " 'ca', ctx.cert_store_stats()['x509_ca'], 'mke2fs', os.path.exists('/usr/sbin/mke2fs'),"
    " 'tsm', os.path.isdir('/sys/kernel/config/tsm'))\n";

int main(void) {
    mount("proc", "/proc", "proc", 0, NULL);
    mount("sysfs", "/sys", "sysfs", 0, NULL);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    FILE *f = fopen("/etc/mse-image/modules", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        int fd = open(line, O_RDONLY | O_CLOEXEC);
        long r = fd < 0 ? -1 : syscall(SYS_finit_module, fd, "", 0);
        printf("SMOKE module %s %s\n", strrchr(line, '/') + 1, r == 0 ? "loaded" : strerror(errno));
        if (fd >= 0) close(fd);
    }
    if (mount("configfs", "/sys/kernel/config", "configfs", 0, NULL) != 0)
        printf("SMOKE configfs %s\n", strerror(errno));
    void *py = dlopen("libpython3.11.so.1.0", RTLD_NOW | RTLD_GLOBAL);
    if (!py) {
        printf("SMOKE python %s\n", dlerror());
    } else {
        void (*init)(void) = (void (*)(void))dlsym(py, "Py_Initialize");
        int (*run)(const char *) = (int (*)(const char *))dlsym(py, "PyRun_SimpleString");
        init();
        if (run(PY) != 0) printf("SMOKE python failed\n");
    }
    fflush(stdout);
    reboot(RB_POWER_OFF);
    return 0;
}
