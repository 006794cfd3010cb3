/*
 * The seed example in C: a Linux program calls the VMM's `hello` through
 * guest-sdk/include/vmmcall.h, the header-only C SDK.
 *
 * Build: gcc -static -O2 -Wall -Wextra -Werror -I guest-sdk/include \
 *            examples/hello/c/hello.c -o hello-c
 *
 * `cargo xtask linux hello` builds it that way and runs it as /bin/hello-c
 * after the Rust program (examples/hello/linux/run.txt); `cargo xtask
 * test` also runs it on the host, where it must say that the VMM is not
 * present and exit with status 1, never die by SIGILL or SIGSEGV
 * (guest-sdk/tests/c_header.rs).
 *
 * Under the VMM it checks, from ring 3: the seed's call (the VMM prints
 * "Hello BitVisor!, arg1 = 5", this program "hello returned 10"); the
 * errno decoding of an unknown name, a kernel-only handler, a bad pointer
 * and an unknown number; a write by the VMM into a fresh mmap buffer that
 * Linux has not faulted in (prefaulted with vmmcall_prefault_write); and
 * vmmcall_describe.
 */
#include "vmmcall.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <termios.h>
#include <unistd.h>

/* The VMM prints on the same UART: let ours leave first. */
static void drain(void)
{
    fflush(stdout);
    tcdrain(STDOUT_FILENO);
}

static int expect_err(const char *what, int got, int want)
{
    if (got == want) {
        printf("hello.c: %s: %s (as expected)\n", what, vmmcall_errno_name(want));
        return 1;
    }
    printf("hello.c: %s: got %s (%d), expected %s\n", what, vmmcall_errno_name(got), got,
           vmmcall_errno_name(want));
    return 0;
}

/* hello_fill writes 300 bytes into two pages of a new anonymous mapping. */
static int fresh_buffer(const struct vmmcall_vmm *vmm)
{
    unsigned long len = 300, i;
    vmmcall_u64 r = 0;
    int err, ok;
    unsigned char *map = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char *buf;
    if (map == MAP_FAILED) {
        printf("hello.c: mmap failed\n");
        return 0;
    }
    buf = map + 4096 - 100;
    vmmcall_prefault_write(buf, len);
    drain();
    err = vmmcall_call(vmm, "hello_fill", (vmmcall_u64)(unsigned long)buf, len, 0x5a, 0, 0, &r);
    ok = err == 0 && r == len && map[4096 - 101] == 0 && map[4096 + 200] == 0;
    for (i = 0; i < len; i++)
        ok &= buf[i] == 0x5a;
    printf("hello.c: fresh mmap buffer: %s (%s, %llu)\n",
           ok ? "written by the VMM (as expected)" : "NOT written as expected",
           vmmcall_errno_name(err), r);
    return ok;
}

/* vmmcall_describe: the count, and `hello` under its own number. */
static int described(const struct vmmcall_vmm *vmm)
{
    char name[VMMCALL_NAME_BUF_LEN];
    vmmcall_u64 count = vmmcall_handler_count(vmm);
    vmmcall_u64 n = vmmcall_lookup(vmm, "hello");
    vmmcall_u64 d;
    if (vmmcall_is_error(count) || n == 0 || n > count) {
        printf("hello.c: vmmcall_describe: count %s, hello is %llu\n",
               vmmcall_errno_name(vmmcall_errno(count)), n);
        return 0;
    }
    memset(name, 0xff, sizeof name);
    d = vmmcall_describe(vmm, n, name, sizeof name);
    if (vmmcall_is_error(d) || (d & VMMCALL_DESCRIBE_NAME_LEN) != 5 ||
        !(d & VMMCALL_DESCRIBE_USER) || strcmp(name, "hello") != 0) {
        printf("hello.c: vmmcall_describe(%llu): %s, %#llx\n", n,
               vmmcall_errno_name(vmmcall_errno(d)), d);
        return 0;
    }
    d = vmmcall_describe(vmm, n, name, 5);
    if (vmmcall_errno(d) != VMMCALL_ENOSPC) {
        printf("hello.c: vmmcall_describe into 5 bytes: %s\n", vmmcall_errno_name(vmmcall_errno(d)));
        return 0;
    }
    printf("hello.c: vmmcall_describe: %llu handlers, number %llu is \"%s\", ring 3 may call it\n",
           count, n, name);
    return 1;
}

int main(void)
{
    struct vmmcall_vmm vmm;
    vmmcall_u64 r = 0;
    int err, ok = 1;

    if (!vmmcall_detect(&vmm)) {
        printf("hello.c: the vmmcall VMM is not present (CPUID has no vmmcall-rs signature)\n");
        /* Nothing was executed; calls say so too. */
        err = vmmcall_call(&vmm, "hello", 5, 0, 0, 0, 0, &r);
        printf("hello.c: vmmcall_call without the VMM: %s\n", vmmcall_errno_name(err));
        return 1;
    }
    printf("hello.c: vmmcall VMM present, ABI v%u, %s\n", vmm.abi_version,
           vmm.intel ? "vmcall" : "vmmcall");
    drain();
    err = vmmcall_call(&vmm, "hello", 5, 0, 0, 0, 0, &r);
    if (err) {
        printf("hello.c: hello failed: %s (%s)\n", vmmcall_errno_name(err), vmmcall_strerror(err));
        return 1;
    }
    printf("hello returned %llu\n", r);
    ok &= r == 10;
    ok &= expect_err("unknown name", vmmcall_call(&vmm, "no_such_hypercall", 0, 0, 0, 0, 0, &r),
                     VMMCALL_ENOENT);
    drain();
    ok &= expect_err("kernel-only call from ring 3",
                     vmmcall_call(&vmm, "hello_kernel", 0, 0, 0, 0, 0, &r), VMMCALL_EPERM);
    drain();
    ok &= expect_err("bad pointer", vmmcall_call(&vmm, "hello_fill", 0x10, 16, 1, 0, 0, &r),
                     VMMCALL_EFAULT);
    ok &= expect_err("unknown number", vmmcall_errno(vmmcall_raw(&vmm, 0xdeadbeef, 0, 0, 0, 0, 0)),
                     VMMCALL_ENOSYS);
    ok &= fresh_buffer(&vmm);
    ok &= described(&vmm);
    printf("hello.c: %s\n", ok ? "all checks passed" : "SOME CHECKS FAILED");
    drain();
    return ok ? 0 : 1;
}
