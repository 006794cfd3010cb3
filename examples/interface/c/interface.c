/*
 * The interface example in C: a Linux program calls the `demo` interface
 * through c/demo.h, the header generated from the same declaration as the
 * Rust stubs (examples/interface/api; regenerate with `cargo xtask
 * header`), on top of guest-sdk/include/vmmcall.h.
 *
 * Each demo_NAME function is typed as declared: demo_add takes two
 * vmmcall_u32 and stores a vmmcall_u64; a buffer is a pointer and a
 * length, prefaulted before the call. They return 0 or a positive errno.
 *
 * It checks, from ring 3: hello, add, checksum (the VMM reads a buffer),
 * fill (the VMM writes one), magnitude (kernel only: EPERM), the three as
 * one typed batch (demo_NAME_entry, demo_NAME_result), and add as an
 * older declaration had it (demo_v1.h): EPROTO.
 * Without the VMM it says so and exits 1.
 */
#include "demo.h"
#include "demo_v1.h"

#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

/* The VMM prints on the same UART: let ours leave first. */
static void drain(void)
{
    fflush(stdout);
    tcdrain(STDOUT_FILENO);
}

static int expect_u64(const char *what, int err, vmmcall_u64 got, vmmcall_u64 want)
{
    if (err == 0 && got == want) {
        printf("interface.c: %s = %llu (as expected)\n", what, got);
        return 1;
    }
    printf("interface.c: %s: %s, %llu; expected %llu\n", what, vmmcall_errno_name(err), got,
           want);
    return 0;
}

static int expect_err(const char *what, int err, int want)
{
    if (err == want) {
        printf("interface.c: %s: %s (as expected)\n", what, vmmcall_errno_name(want));
        return 1;
    }
    printf("interface.c: %s: got %s (%d), expected %s\n", what, vmmcall_errno_name(err), err,
           vmmcall_errno_name(want));
    return 0;
}

/* The same calls as one vmmcall_batch: each entry written by its typed
 * demo_NAME_entry, each result word decoded by demo_NAME_result. */
static int typed_batch(const struct vmmcall_vmm *vmm)
{
    struct vmmcall_batch_entry entries[3];
    vmmcall_u64 results[3], answered, sum = 0, filled = 0, mag = 0;
    unsigned char out[64];
    int err_add, err_fill, err_mag, written = 1, i;

    memset(out, 0, sizeof out);
    if (demo_add_entry(vmm, 40, 2, &entries[0]) || demo_fill_entry(vmm, out, sizeof out, 0x33,
                                                                  &entries[1]) ||
        demo_magnitude_entry(vmm, -21, 1, &entries[2])) {
        printf("interface.c: typed batch: a lookup failed\n");
        return 0;
    }
    answered = vmmcall_batch(vmm, entries, 3, results, 0);
    err_add = demo_add_result(results[0], &sum);
    err_fill = demo_fill_result(results[1], &filled);
    err_mag = demo_magnitude_result(results[2], &mag);
    for (i = 0; i < (int)sizeof out; i++)
        written &= out[i] == 0x33;
    if (answered == 3 && err_add == 0 && sum == 42 && err_fill == 0 && filled == sizeof out &&
        written && err_mag == VMMCALL_EPERM) {
        printf("interface.c: typed batch of add, fill, magnitude from ring 3: 42, 64 written, "
               "EPERM (as expected)\n");
        return 1;
    }
    printf("interface.c: typed batch: answered %llu; add %s %llu; fill %s %llu, written %d; "
           "magnitude %s\n",
           answered, vmmcall_errno_name(err_add), sum, vmmcall_errno_name(err_fill), filled,
           written, vmmcall_errno_name(err_mag));
    return 0;
}

int main(void)
{
    struct vmmcall_vmm vmm;
    vmmcall_u64 r = 0, number = 0;
    vmmcall_u32 sum = 0;
    unsigned char buf[300];
    const char *text = "interface";
    int ok = 1, err, written, i;

    if (!vmmcall_detect(&vmm)) {
        printf("interface.c: the vmmcall VMM is not present\n");
        return 1;
    }
    drain();
    err = demo_hello(&vmm, 5, &r);
    ok &= expect_u64("demo_hello(5)", err, r, 10);
    err = demo_add(&vmm, 40, 2, &r);
    ok &= expect_u64("demo_add(40, 2)", err, r, 42);
    err = demo_checksum(&vmm, text, strlen(text), &sum);
    ok &= expect_u64("demo_checksum(\"interface\")", err, sum, 945);

    memset(buf, 0, sizeof buf);
    err = demo_fill(&vmm, buf, sizeof buf, 0x5a, &r);
    written = 1;
    for (i = 0; i < (int)sizeof buf; i++)
        written &= buf[i] == 0x5a;
    if (err == 0 && r == sizeof buf && written) {
        printf("interface.c: demo_fill(buf, 300, 0x5a) = 300, written (as expected)\n");
    } else {
        printf("interface.c: demo_fill: %s, %llu, written %d\n", vmmcall_errno_name(err), r,
               written);
        ok = 0;
    }

    ok &= expect_err("demo_magnitude from ring 3", demo_magnitude(&vmm, -21, 1, &r),
                     VMMCALL_EPERM);
    ok &= typed_batch(&vmm);

    /* Built against the older declaration of `add` (demo_v1.h, one
     * parameter): the typed lookup refuses, nothing is called. The digest
     * is what makes the difference: */
    drain(); /* the VMM logs the mismatch on the shared console */
    ok &= expect_err("demo_v1_add(1) (old declaration)", demo_v1_add(&vmm, 1, &r),
                     VMMCALL_EPROTO);
    err = vmmcall_lookup_typed(&vmm, "add", DEMO_ADD_SIGNATURE, &number);
    ok &= expect_u64("vmmcall_lookup_typed(\"add\", DEMO_ADD_SIGNATURE) != 0", err,
                     number != 0, 1);

    if (ok)
        printf("interface.c: all checks passed\n");
    return ok ? 0 : 1;
}
