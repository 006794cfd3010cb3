/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * vmmcall.h: call a vmmcall VMM (ABI v1, docs/ABI.md) from C.
 *
 * Header only: no libc, no other header, no build system. Copy it next to
 * your program, or use -I guest-sdk/include. It needs GCC or Clang (GNU C
 * inline assembly) on x86-64 and works the same in user space (a Linux
 * program, a test under another OS) and in a kernel (-ffreestanding
 * -mno-red-zone -mcmodel=kernel -mgeneral-regs-only: it uses no SSE, no
 * stack red zone, no global variable).
 *
 *     #include "vmmcall.h"
 *
 *     struct vmmcall_vmm vmm;
 *     unsigned long long r;
 *     if (!vmmcall_detect(&vmm))
 *         return 1;                       // not under this VMM
 *     int err = vmmcall_call(&vmm, "hello", 5, 0, 0, 0, 0, &r);
 *     if (err)
 *         ...vmmcall_errno_name(err)...   // "EPERM", "ENOENT", ...
 *     // r == 10
 *
 * What it does, in the order a guest needs it:
 *
 * 1. Detection, by CPUID alone (vmmcall_detect): the hypervisor bit
 *    (CPUID.1:ECX[31]), then a block of hypervisor leaves at base
 *    0x4000_0000 (or 0x4000_0100, ... for a VMM that keeps its own leaves
 *    below: the first block that has it) whose EAX, the highest leaf, is
 *    at least base + 1, and in leaf base + 1 the ABI version (EAX) and the
 *    magic "VMMC" (EBX). The signature in EBX, ECX, EDX of the base leaf
 *    is the VMM's name ("vmmcall-rs\0\0" by default) and is not checked. Never execute a hypercall instruction before it
 *    says yes: without a VMM it raises #UD (SIGILL), and under another
 *    hypervisor anything may happen (in a process on a KVM guest, VMCALL
 *    raises SIGSEGV and VMMCALL returns RAX = -1). The hypervisor bit
 *    alone proves nothing: every VM has it.
 * 2. The instruction: VMCALL (0F 01 C1) on a CPU whose vendor is
 *    "GenuineIntel", VMMCALL (0F 01 D9) on every other (vmm.intel).
 * 3. Lookup by name, function 0 get_vmmcall_number (vmmcall_lookup): RBX
 *    = the NUL-terminated name (at most 255 bytes), RAX = its number, or
 *    0 when no handler has that name.
 * 4. The call (vmmcall_raw, vmmcall_call): RAX = number, arguments in RBX,
 *    RCX, RDX, RSI, RDI; only RAX changes. RBX cannot simply be an asm
 *    operand everywhere (a compiler may reserve it, e.g. as the PIC
 *    register of 32-bit code or a stack-realignment base pointer), so it
 *    is swapped in and out around the instruction through another register.
 * 5. Errors: a RAX from -4095 to -1 is -errno, anything below is a result
 *    (vmmcall_is_error, vmmcall_errno, vmmcall_errno_name).
 * 6. vmmcall_describe (function 1 << 40, vmmcall_handler_count,
 *    vmmcall_describe): the VMM lists its handlers. At CPL > 0 a handler
 *    that is not `user` answers EPERM, as calling it would.
 * 7. vmmcall_lookup_typed (function 1 << 40 | 1): the lookup of a call
 *    declared in an interface (vmmcall::interface!), with the signature
 *    digest the caller was built against in RCX; EPROTO when the VMM's
 *    handler has another signature (docs/ABI.md, "Version skew"). The
 *    headers generated from an interface declaration (one typed inline
 *    function per hypercall) use it; see examples/interface/c.
 * 8. Long calls (docs/ABI.md, "Long calls"): a handler declared `long`
 *    (VMMCALL_DESCRIBE_LONG) may return to the guest between steps with
 *    RIP left on the instruction and every register unchanged; the guest
 *    takes its interrupt and executes the instruction again, which
 *    continues the call. Nothing to write for it: vmmcall_raw's asm
 *    re-executes by itself.
 * 9. vmmcall_batch (function 1 << 40 | 2, vmmcall_batch): many calls in
 *    one exit; each entry is answered exactly as alone. An older VMM
 *    answers ENOSYS (vmmcall_batch_supported).
 *
 * Pages the OS has not faulted in. The VMM reads and writes guest memory
 * through the guest's own page tables and injects no page fault: memory
 * that Linux maps lazily (a fresh malloc/mmap buffer, a file mapping,
 * the untouched part of a stack or of .bss) has no page-table entry until
 * the program touches it, and a hypercall naming it fails with EFAULT.
 * So, as the Rust SDK (guest-sdk) does for every reference it passes,
 * touch each page of a buffer right before the call: read one byte of each
 * page, and for a buffer the VMM writes, write that byte back, so that a
 * shared zero page or a copy-on-write page becomes a private writable one
 * (vmmcall_prefault_read, vmmcall_prefault_write). vmmcall_lookup does it
 * for the name, vmmcall_describe for its buffer; do it yourself for the
 * buffers you pass to vmmcall_call/vmmcall_raw. It is best effort: an OS
 * may evict a page again before the call (Linux does not for anonymous
 * memory without swap), and the call then fails with EFAULT. In a kernel,
 * memory from the linear map (kmalloc, the stack) is always present; the
 * VMM walks the page tables of the current CR3 with the caller's CPL.
 */
#ifndef VMMCALL_H
#define VMMCALL_H

#if !defined(__x86_64__)
#error "vmmcall.h: the vmmcall ABI is x86-64 only"
#endif
#if !defined(__GNUC__)
#error "vmmcall.h needs GNU C inline assembly (GCC or Clang)"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI (docs/ABI.md; vmmcall::abi in Rust). */
#define VMMCALL_ABI_VERSION 1u
#define VMMCALL_CPUID_LEAF_SIGNATURE 0x40000000u
#define VMMCALL_CPUID_LEAF_INTERFACE 0x40000001u
/* "vmmcall-rs\0\0" as CPUID returns it in EBX, ECX, EDX. */
#define VMMCALL_SIGNATURE_EBX 0x636d6d76u
#define VMMCALL_SIGNATURE_ECX 0x2d6c6c61u
#define VMMCALL_SIGNATURE_EDX 0x00007372u
/* "VMMC" in EBX of leaf 0x4000_0001. */
#define VMMCALL_INTERFACE_MAGIC 0x434d4d56u

#define VMMCALL_GET_VMMCALL_NUMBER 0ull
#define VMMCALL_DESCRIBE (1ull << 40)
#define VMMCALL_LOOKUP_TYPED ((1ull << 40) | 1ull)
#define VMMCALL_DESCRIBE_NAME_LEN 0xffffull
#define VMMCALL_DESCRIBE_USER (1ull << 16)
#define VMMCALL_DESCRIBE_TYPED (1ull << 17)
#define VMMCALL_DESCRIBE_LONG (1ull << 18)
#define VMMCALL_BATCH ((1ull << 40) | 2ull)
#define VMMCALL_BATCH_STOP_ON_ERROR 1ull
#define VMMCALL_BATCH_PHYSICAL 2ull
#define VMMCALL_BATCH_MAX_ENTRIES 4096ul
#define VMMCALL_MAX_NAME_LEN 255
#define VMMCALL_NAME_BUF_LEN 256
#define VMMCALL_PAGE_SIZE 4096ul

/* The errno values the VMM answers with (Linux x86-64 numbers). */
#define VMMCALL_EPERM 1      /* the caller's CPL may not call this handler */
#define VMMCALL_EIO 5        /* a handler's device failed */
#define VMMCALL_EFAULT 14    /* memory named by an argument is not accessible */
#define VMMCALL_EBUSY 16     /* the handler's resource is busy */
#define VMMCALL_EINVAL 22    /* an argument does not fit its parameter type */
#define VMMCALL_ENOSPC 28    /* the guest's buffer is too small */
#define VMMCALL_ERANGE 34    /* an argument is out of the handler's range */
#define VMMCALL_ENOSYS 38    /* no function has this number */
#define VMMCALL_EPROTO 71    /* the handler's declared signature is not the caller's */
#define VMMCALL_EOVERFLOW 75 /* a u64 result fell in the error range */
/* Not from the VMM: what vmmcall_call answers without a hypercall. */
#define VMMCALL_ENOENT 2     /* no hypercall has this name (lookup gave 0) */
#define VMMCALL_ENODEV 19    /* no vmmcall VMM (vmm is NULL or not detected) */

typedef unsigned long long vmmcall_u64;
typedef unsigned int vmmcall_u32;
/* A bool in C and C++ alike (the generated interface headers use it). */
#ifdef __cplusplus
typedef bool vmmcall_bool;
#else
typedef _Bool vmmcall_bool;
#endif

/* The VMM as vmmcall_detect found it. */
struct vmmcall_vmm {
    vmmcall_u32 abi_version; /* CPUID 0x4000_0001 EAX */
    int intel;               /* 1: VMCALL (GenuineIntel), 0: VMMCALL */
    int present;             /* 1 once vmmcall_detect said yes */
};

/* CPUID leaf `leaf`, subleaf 0: r[0..3] = EAX, EBX, ECX, EDX. */
static inline void vmmcall_cpuid(vmmcall_u32 leaf, vmmcall_u32 r[4])
{
    vmmcall_u64 b;
    /* RBX is swapped out through %1, as for the hypercall below. */
    __asm__ __volatile__("xchgq %%rbx, %q1\n\t"
                         "cpuid\n\t"
                         "xchgq %%rbx, %q1"
                         : "=a"(r[0]), "=&r"(b), "=c"(r[2]), "=d"(r[3])
                         : "a"(leaf), "c"(0u));
    r[1] = (vmmcall_u32)b;
}

/* Whether the vmmcall VMM runs underneath, by CPUID alone (no hypercall
 * is executed). Fills *vmm and returns 1 if so; returns 0 otherwise,
 * with vmm->present = 0. */
static inline int vmmcall_detect(struct vmmcall_vmm *vmm)
{
    vmmcall_u32 r[4];
    vmm->abi_version = 0;
    vmm->intel = 0;
    vmm->present = 0;
    vmmcall_cpuid(1, r);
    if (!(r[2] & (1u << 31)))
        return 0;
    /* The first block of hypervisor leaves (base 0x4000_0000, 0x4000_0100,
     * ...) whose leaf base + 1 has EBX "VMMC"; the scan ends at the first
     * base without a block (its EAX, the highest leaf, outside base + 1 ..
     * base + 0xFF). Rust: vmmcall::cpuid::find. */
    for (vmmcall_u32 base = VMMCALL_CPUID_LEAF_SIGNATURE;; base += 0x100u) {
        vmmcall_cpuid(base, r);
        if (r[0] < base + 1u || r[0] > base + 0xffu)
            return 0;
        vmmcall_cpuid(base + 1u, r);
        if (r[1] == VMMCALL_INTERFACE_MAGIC)
            break;
        if (base == 0x4000ff00u)
            return 0;
    }
    vmm->abi_version = r[0];
    vmmcall_cpuid(0, r);
    /* "GenuineIntel": EBX "Genu", EDX "ineI", ECX "ntel". */
    vmm->intel = r[1] == 0x756e6547u && r[3] == 0x49656e69u && r[2] == 0x6c65746eu;
    vmm->present = 1;
    return 1;
}

/* One hypercall: RAX = nr, RBX..RDI = a1..a5; returns RAX as the VMM left
 * it. With vmm NULL, or one vmmcall_detect said no to, it executes nothing
 * and returns -VMMCALL_ENODEV (an error RAX): every function of this
 * header, and of the headers generated from an interface, reaches the VMM
 * only through here. Any address among the arguments must be valid for
 * what the function does with it: the VMM may write there ("memory"
 * clobber). */
static inline vmmcall_u64 vmmcall_raw(const struct vmmcall_vmm *vmm, vmmcall_u64 nr,
                                      vmmcall_u64 a1, vmmcall_u64 a2, vmmcall_u64 a3,
                                      vmmcall_u64 a4, vmmcall_u64 a5)
{
    vmmcall_u64 rax = nr;
    if (!vmm || !vmm->present)
        return (vmmcall_u64)0 - VMMCALL_ENODEV;
    if (vmm->intel)
        __asm__ __volatile__("xchgq %%rbx, %[b]\n\t"
                             "vmcall\n\t"
                             "xchgq %%rbx, %[b]"
                             : "+a"(rax), [b] "+r"(a1)
                             : "c"(a2), "d"(a3), "S"(a4), "D"(a5)
                             : "memory", "cc");
    else
        __asm__ __volatile__("xchgq %%rbx, %[b]\n\t"
                             "vmmcall\n\t"
                             "xchgq %%rbx, %[b]"
                             : "+a"(rax), [b] "+r"(a1)
                             : "c"(a2), "d"(a3), "S"(a4), "D"(a5)
                             : "memory", "cc");
    return rax;
}

/* Whether a RAX from the VMM is an error: -4095..-1. */
static inline int vmmcall_is_error(vmmcall_u64 rax)
{
    return rax >= (vmmcall_u64)-4095;
}

/* The positive errno in an error RAX, 0 for a result. */
static inline int vmmcall_errno(vmmcall_u64 rax)
{
    return vmmcall_is_error(rax) ? (int)(0 - rax) : 0;
}

/* "EPERM" for VMMCALL_EPERM, ...; "E?" for a number the ABI does not name. */
static inline const char *vmmcall_errno_name(int err)
{
    switch (err) {
    case 0: return "OK";
    case VMMCALL_EPERM: return "EPERM";
    case VMMCALL_ENOENT: return "ENOENT";
    case VMMCALL_EIO: return "EIO";
    case VMMCALL_EFAULT: return "EFAULT";
    case VMMCALL_EBUSY: return "EBUSY";
    case VMMCALL_ENODEV: return "ENODEV";
    case VMMCALL_EINVAL: return "EINVAL";
    case VMMCALL_ENOSPC: return "ENOSPC";
    case VMMCALL_ERANGE: return "ERANGE";
    case VMMCALL_ENOSYS: return "ENOSYS";
    case VMMCALL_EPROTO: return "EPROTO";
    case VMMCALL_EOVERFLOW: return "EOVERFLOW";
    default: return "E?";
    }
}

/* What the errno means, in the ABI's words. */
static inline const char *vmmcall_strerror(int err)
{
    switch (err) {
    case 0: return "success";
    case VMMCALL_EPERM: return "caller's privilege level may not call this function";
    case VMMCALL_ENOENT: return "no hypercall with this name";
    case VMMCALL_EIO: return "I/O error";
    case VMMCALL_EFAULT: return "bad guest address";
    case VMMCALL_EBUSY: return "resource busy";
    case VMMCALL_ENODEV: return "the vmmcall hypervisor is not present";
    case VMMCALL_EINVAL: return "invalid argument";
    case VMMCALL_ENOSPC: return "guest buffer too small";
    case VMMCALL_ERANGE: return "argument out of range";
    case VMMCALL_ENOSYS: return "no such hypercall number";
    case VMMCALL_EPROTO: return "the hypercall's declared signature differs from the caller's";
    case VMMCALL_EOVERFLOW: return "result collides with the error range";
    default: return "unknown error";
    }
}

/* Make every page of [buf, buf + len) present for the VMM to read: read
 * one byte of each page (see "Pages the OS has not faulted in" above). */
static inline void vmmcall_prefault_read(const void *buf, unsigned long len)
{
    const volatile unsigned char *p = (const volatile unsigned char *)buf;
    unsigned long start = (unsigned long)buf, off = 0;
    while (off < len) {
        (void)p[off];
        /* The first byte of the next page. */
        off = ((start + off) & ~(VMMCALL_PAGE_SIZE - 1)) + VMMCALL_PAGE_SIZE - start;
    }
}

/* The same for a buffer the VMM writes: one byte of each page is written
 * with its own value, so a zero or copy-on-write page becomes a private
 * writable one. The write is an atomic compare-exchange of the byte with
 * itself (LOCK CMPXCHG, a write access even when it fails), so a byte that
 * another thread changes meanwhile keeps that thread's value: a plain
 * `p[off] = p[off]` could store the old one back. */
static inline void vmmcall_prefault_write(void *buf, unsigned long len)
{
    unsigned char *p = (unsigned char *)buf;
    unsigned long start = (unsigned long)buf, off = 0;
    while (off < len) {
        unsigned char seen = __atomic_load_n(&p[off], __ATOMIC_RELAXED);
        (void)__atomic_compare_exchange_n(&p[off], &seen, seen, 0, __ATOMIC_RELAXED,
                                          __ATOMIC_RELAXED);
        off = ((start + off) & ~(VMMCALL_PAGE_SIZE - 1)) + VMMCALL_PAGE_SIZE - start;
    }
}

/* Whether `name` ends within VMMCALL_MAX_NAME_LEN bytes (both lookups
 * refuse longer names without asking the VMM); if so, its bytes and NUL are
 * prefaulted for the VMM to read. */
static inline int vmmcall_name_ok(const char *name)
{
    unsigned long n = 0;
    while (name[n] != '\0') {
        if (++n > VMMCALL_MAX_NAME_LEN)
            return 0;
    }
    vmmcall_prefault_read(name, n + 1);
    return 1;
}

/* Function 0, get_vmmcall_number: the number of the handler called
 * `name`, 0 if there is none (or the name is longer than 255 bytes, or
 * there is no VMM: vmm NULL or not detected). */
static inline vmmcall_u64 vmmcall_lookup(const struct vmmcall_vmm *vmm, const char *name)
{
    if (!vmm || !vmm->present || !vmmcall_name_ok(name))
        return 0;
    return vmmcall_raw(vmm, VMMCALL_GET_VMMCALL_NUMBER, (vmmcall_u64)(unsigned long)name,
                       0, 0, 0, 0);
}

/* Function 1 << 40 | 1, vmmcall_lookup_typed: the number of the handler
 * called `name` if it was declared with the signature digest `signature`.
 * Returns 0 and stores the number in *number; or VMMCALL_ENOENT (no such
 * name, or longer than 255 bytes), VMMCALL_EPROTO (the handler has another
 * signature: calling it would pass the wrong types), VMMCALL_ENOSYS (a VMM
 * without typed lookups), VMMCALL_ENODEV (no VMM). */
static inline int vmmcall_lookup_typed(const struct vmmcall_vmm *vmm, const char *name,
                                       vmmcall_u64 signature, vmmcall_u64 *number)
{
    vmmcall_u64 rax;
    if (!vmm || !vmm->present)
        return VMMCALL_ENODEV;
    if (!vmmcall_name_ok(name))
        return VMMCALL_ENOENT;
    rax = vmmcall_raw(vmm, VMMCALL_LOOKUP_TYPED, (vmmcall_u64)(unsigned long)name, signature,
                      0, 0, 0);
    if (vmmcall_is_error(rax))
        return vmmcall_errno(rax);
    if (rax == 0)
        return VMMCALL_ENOENT;
    *number = rax;
    return 0;
}

/* Look `name` up and call it with a1..a5. Returns 0 and stores RAX in
 * *result (if result is not NULL); or a positive errno: the VMM's,
 * VMMCALL_ENOENT for an unknown name, VMMCALL_ENODEV when vmm is NULL or
 * vmmcall_detect said no (then nothing is executed). Prefault the buffers
 * you pass first (vmmcall_prefault_write). */
static inline int vmmcall_call(const struct vmmcall_vmm *vmm, const char *name,
                               vmmcall_u64 a1, vmmcall_u64 a2, vmmcall_u64 a3,
                               vmmcall_u64 a4, vmmcall_u64 a5, vmmcall_u64 *result)
{
    vmmcall_u64 nr, rax;
    if (!vmm || !vmm->present)
        return VMMCALL_ENODEV;
    nr = vmmcall_lookup(vmm, name);
    if (nr == 0)
        return VMMCALL_ENOENT;
    rax = vmmcall_raw(vmm, nr, a1, a2, a3, a4, a5);
    if (vmmcall_is_error(rax))
        return vmmcall_errno(rax);
    if (result)
        *result = rax;
    return 0;
}

/* vmmcall_describe with RBX = 0: how many handlers the VMM has (numbers
 * 1..N are theirs), or an error RAX (ENOSYS from a VMM without it, ENODEV
 * without a VMM). */
static inline vmmcall_u64 vmmcall_handler_count(const struct vmmcall_vmm *vmm)
{
    return vmmcall_raw(vmm, VMMCALL_DESCRIBE, 0, 0, 0, 0, 0);
}

/* vmmcall_describe of handler `n` (1..N): RAX = the name's length
 * (& VMMCALL_DESCRIBE_NAME_LEN) | VMMCALL_DESCRIBE_USER if ring 3 may
 * call it | VMMCALL_DESCRIBE_TYPED if it was declared in an interface (it
 * has a signature digest); with len != 0 the name and a NUL are written to buf (256 bytes
 * always suffice). Errors: EPERM (not `user`, caller not at CPL 0: its
 * name stays hidden), ENOSYS (no such handler), ENOSPC (buf too small),
 * EFAULT, ENODEV (no VMM: vmm NULL or not detected); on an error nothing
 * is written. */
static inline vmmcall_u64 vmmcall_describe(const struct vmmcall_vmm *vmm, vmmcall_u64 n,
                                           char *buf, unsigned long len)
{
    if (!vmm || !vmm->present)
        return (vmmcall_u64)0 - VMMCALL_ENODEV;
    vmmcall_prefault_write(buf, len);
    return vmmcall_raw(vmm, VMMCALL_DESCRIBE, n, (vmmcall_u64)(unsigned long)buf, len, 0, 0);
}

/* One entry of a batch: 48 bytes, as docs/ABI.md lays it out. */
struct vmmcall_batch_entry {
    vmmcall_u64 nr;
    vmmcall_u64 args[5];
};

/* vmmcall_batch: run `count` entries (at most VMMCALL_BATCH_MAX_ENTRIES)
 * in one exit; entry i's value or -errno goes to results[i] (decode it
 * with vmmcall_is_error/vmmcall_errno). flags: 0, or
 * VMMCALL_BATCH_STOP_ON_ERROR to stop after the first failing entry.
 * RAX: the number of entries answered (count, or fewer when it stopped),
 * or an error RAX for the batch itself (EINVAL: bad flags, count too
 * big, results overlapping the list; EFAULT: the list or the results not
 * accessible, nothing ran; ENOSYS: a VMM without batches). The
 * addresses in the entries must be valid for what their calls do. */
static inline vmmcall_u64 vmmcall_batch(const struct vmmcall_vmm *vmm,
                                        const struct vmmcall_batch_entry *entries,
                                        unsigned long count, vmmcall_u64 *results,
                                        vmmcall_u64 flags)
{
    vmmcall_prefault_read(entries, count * sizeof(*entries));
    vmmcall_prefault_write(results, count * sizeof(*results));
    return vmmcall_raw(vmm, VMMCALL_BATCH, (vmmcall_u64)(unsigned long)entries, count,
                       (vmmcall_u64)(unsigned long)results, flags, 0);
}

/* vmmcall_batch with the list and the results named by guest-physical
 * address (VMMCALL_BATCH_PHYSICAL): for a kernel at CPL 0 that knows
 * where its buffers lie; the VMM walks no page tables. flags as
 * vmmcall_batch. RAX as vmmcall_batch, and EPERM outside CPL 0, EFAULT
 * when either range is not guest RAM; a VMM from before this flag answers
 * EINVAL. */
static inline vmmcall_u64 vmmcall_batch_physical(const struct vmmcall_vmm *vmm,
                                                 vmmcall_u64 list, unsigned long count,
                                                 vmmcall_u64 results, vmmcall_u64 flags)
{
    return vmmcall_raw(vmm, VMMCALL_BATCH, list, count, results,
                       flags | VMMCALL_BATCH_PHYSICAL, 0);
}

/* Whether the VMM runs batches: a batch of no entries answers 0. */
static inline int vmmcall_batch_supported(const struct vmmcall_vmm *vmm)
{
    return vmmcall_raw(vmm, VMMCALL_BATCH, 0, 0, 0, 0, 0) == 0;
}

#ifdef __cplusplus
}
#endif

#endif /* VMMCALL_H */
