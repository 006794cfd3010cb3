//! x86-64 helpers for the example guests: an IDT that catches
//! CPU exceptions, control registers, page-table entry bits and the drop
//! to ring 3.
//!
//! - [`install_idt`] loads an IDT whose 32 exception vectors all go to one
//!   handler. [`catch`] runs a closure and reports the first exception it
//!   raised ([`Fault`]: vector, error code, RIP), resuming after the
//!   faulting instruction, whose length the caller gives (x86 faults leave
//!   RIP on the faulting instruction). An exception outside [`catch`] is a
//!   bug: the handler prints it and exits with status 102.
//! - The gates are ring-0 interrupt gates. An exception at CPL 3 needs a
//!   TSS with RSP0: [`install_tss`] loads one (without it, use [`catch`]
//!   at CPL 0 only).
//! - [`enter_ring3`] drops to CPL 3 with IOPL 3 (so the guest may still
//!   print to COM1) on the selectors of the VMM's initial GDT (user data
//!   `0x1b`, user code `0x23`, `vmm_shared::desc::GUEST_GDT`). It also points
//!   SYSCALL at a ring-0 entry through which [`crate::exit`] finishes
//!   from ring 3: the `exit` hypercall is CPL 0 only, so ring 3 asks its
//!   kernel (this runtime) to end the run, as a process asks its OS.
//!
//! ```ignore
//! guest_rt::arch::install_idt();
//! let (_, fault) = guest_rt::arch::catch(2, || unsafe { core::arch::asm!("ud2") });
//! assert_eq!(fault.map(|f| f.vector), Some(guest_rt::arch::UD));
//! ```

use core::sync::atomic::{compiler_fence, AtomicBool, AtomicU64, Ordering};
use vmm_shared::desc::{gdt_with_tss, interrupt_gate, Idt, GUEST_GDT};
/// The selectors of the VMM's initial GDT (`vmm_shared::desc::GUEST_GDT`),
/// and the 64-bit TSS with its descriptor, for guests that build a GDT of
/// their own.
pub use vmm_shared::desc::{tss_descriptor, Tss, KERNEL_CS, TSS_SIZE, USER_CS, USER_DS};

/// `#UD`, invalid opcode.
pub const UD: u8 = 6;
/// `#GP`, general protection.
pub const GP: u8 = 13;
/// `#PF`, page fault.
pub const PF: u8 = 14;

/// Page-table entry: present.
pub const PTE_P: u64 = 1;
/// Page-table entry: writable.
pub const PTE_RW: u64 = 1 << 1;
/// Page-table entry: user-accessible.
pub const PTE_US: u64 = 1 << 2;
/// Page-table entry (PDPTE/PDE): maps a 1 GiB / 2 MiB page.
pub const PTE_PS: u64 = 1 << 7;
/// The physical-address bits of an entry (51:12).
pub const PTE_ADDR: u64 = 0x000f_ffff_ffff_f000;

/// An exception caught by [`catch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// The vector (0..=31).
    pub vector: u8,
    /// The error code (0 for vectors without one).
    pub error: u64,
    /// RIP of the faulting instruction.
    pub rip: u64,
}

/// CR3.
pub fn read_cr3() -> u64 {
    let v: u64;
    // SAFETY: reading CR3 has no side effect; guests built with the `rt`
    // runtime run their setup at CPL 0 (at CPL 3 this raises #GP, which is
    // a bug in the caller, reported by the IDT if installed).
    unsafe {
        core::arch::asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Load CR3 (switching page tables and flushing the TLB).
///
/// # Safety
/// `cr3` must point at page tables that map the running code, its stack
/// and data at the same addresses; CPL 0.
pub unsafe fn write_cr3(cr3: u64) {
    // SAFETY: the caller guarantees the new tables keep everything in use
    // mapped. Not `nomem`: memory seen through the new tables changes.
    unsafe { core::arch::asm!("mov cr3, {}", in(reg) cr3, options(nostack, preserves_flags)) };
}

/// IA32_EFER, STAR, LSTAR, FMASK (Intel SDM Vol. 4, Table 2-2).
const MSR_EFER: u32 = 0xC000_0080;
const MSR_STAR: u32 = 0xC000_0081;
const MSR_LSTAR: u32 = 0xC000_0082;
const MSR_FMASK: u32 = 0xC000_0084;

/// Whether [`enter_ring3`] has pointed SYSCALL at [`exit_from_ring3`]'s
/// ring-0 entry.
static SYSCALL_EXIT: AtomicBool = AtomicBool::new(false);

// The SYSCALL entry: CPL 0, still on the ring-3 stack (SYSCALL switches
// none; this single-vCPU guest's ring 3 is its own code), EDI = the status.
// It never returns to ring 3.
core::arch::global_asm!(
    r#"
    .section .text.guest_sdk_syscall_exit, "ax"
    .global guest_sdk_syscall_exit
guest_sdk_syscall_exit:
    and rsp, -16
    call guest_sdk_exit_at_cpl0
    ud2
"#
);

#[no_mangle]
extern "C" fn guest_sdk_exit_at_cpl0(status: u32) -> ! {
    crate::exit(status)
}

extern "C" {
    fn guest_sdk_syscall_exit();
}

/// Write `value` to MSR `msr`.
///
/// # Safety
/// CPL 0; the MSR and value must be ones the guest may write.
unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller's guarantee.
    unsafe {
        core::arch::asm!("wrmsr", in("ecx") msr, in("eax") value as u32,
                         in("edx") (value >> 32) as u32, options(nostack, preserves_flags))
    }
}

/// Read MSR `msr`.
///
/// # Safety
/// CPL 0; the MSR must exist.
unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller's guarantee.
    unsafe {
        core::arch::asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi,
                         options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// The current privilege level (CS.RPL).
pub fn cpl() -> u8 {
    let cs: u16;
    // SAFETY: reading CS has no effect.
    unsafe {
        core::arch::asm!("mov {0:x}, cs", out(reg) cs, options(nomem, nostack, preserves_flags))
    };
    (cs & 3) as u8
}

/// From ring 3, after [`enter_ring3`]: SYSCALL to this runtime's ring-0
/// entry, which calls [`crate::exit`] with `status` at CPL 0. Returns
/// only if [`enter_ring3`] did not set that entry up (ring 3 entered some
/// other way).
pub fn exit_from_ring3(status: u32) {
    if !SYSCALL_EXIT.load(Ordering::SeqCst) {
        return;
    }
    // SAFETY: LSTAR names guest_sdk_syscall_exit, which never returns;
    // SYSCALL clobbers RCX and R11.
    unsafe {
        core::arch::asm!("syscall", in("edi") status, options(noreturn));
    }
}

/// Point SYSCALL at this runtime's ring-0 exit entry, so that
/// [`crate::exit`] works from rings 1-3 ([`exit_from_ring3`]).
/// [`enter_ring3`] calls it; a guest that leaves ring 0 by other means
/// calls it first.
///
/// # Safety
/// CPL 0; the GDT has the VMM's kernel code at `0x08` and data at `0x10`
/// (and, for SYSRET, user data `0x1b` and code `0x23`).
pub unsafe fn enable_syscall_exit() {
    // SYSCALL from ring 3 enters guest_sdk_syscall_exit at CPL 0: STAR's
    // SYSCALL selectors (bits 47:32) are the kernel code 0x08 (SS 0x10),
    // its SYSRET selectors (bits 63:48) 0x13 (CS 0x23, SS 0x1b); FMASK
    // clears TF, IF, DF and AC on entry; EFER.SCE enables the instruction
    // (Intel SDM Vol. 2B, SYSCALL; Vol. 3A §5.8.8). These MSRs are the
    // guest's own (docs/ABI.md, "MSRs").
    // SAFETY: CPL 0 (the caller's guarantee); the values are valid.
    unsafe {
        wrmsr(MSR_STAR, (0x13 << 48) | (u64::from(KERNEL_CS) << 32));
        wrmsr(MSR_LSTAR, guest_sdk_syscall_exit as *const () as u64);
        wrmsr(MSR_FMASK, 0x4_0700);
        wrmsr(MSR_EFER, rdmsr(MSR_EFER) | 1);
    }
    SYSCALL_EXIT.store(true, Ordering::SeqCst);
}

/// IRETQ to `entry` at CPL 3 with IOPL 3 and interrupts off, on the stack
/// whose top is `stack_top` (16-byte aligned; the function sees it as its
/// return-address slot minus 8, like a call).
///
/// # Safety
/// `entry`, the stack and everything `entry` touches must be mapped
/// user-accessible; CPL 0 with the VMM's initial GDT loaded.
pub unsafe fn enter_ring3(entry: extern "C" fn() -> !, stack_top: u64) -> ! {
    // SAFETY: CPL 0 and the VMM's GDT (the caller's guarantee).
    unsafe { enable_syscall_exit() };
    let sp = (stack_top & !0xf).wrapping_sub(8);
    // SAFETY: the caller guarantees the mappings; USER_CS/USER_DS are the
    // user selectors of the VMM's GDT; RFLAGS = IOPL 3 | reserved bit 1.
    unsafe {
        core::arch::asm!(
            "push {ds}", "push {sp}", "push {fl}", "push {cs}", "push {ip}", "iretq",
            ds = in(reg) u64::from(USER_DS), sp = in(reg) sp, fl = in(reg) 0x3002u64,
            cs = in(reg) u64::from(USER_CS), ip = in(reg) entry as usize as u64,
            options(noreturn)
        )
    }
}

/// Make every present 2 MiB page of the VMM's initial tables
/// user-accessible (U/S = 1), except the one at `except` if given, and
/// reload CR3.
///
/// # Safety
/// CR3 must point at the VMM's initial tables (PML4 -> PDPT -> PD of
/// 2 MiB pages, docs/ABI.md), identity-mapped; CPL 0.
pub unsafe fn user_mappings(except: Option<u64>) {
    let cr3 = read_cr3();
    // SAFETY: the tables are identity-mapped guest RAM (the caller's
    // guarantee); only the U/S bits of present PD entries change, so the
    // same memory stays mapped when CR3 is reloaded.
    unsafe {
        let pml4 = (cr3 & PTE_ADDR) as *mut u64;
        let pdpt = (*pml4 & PTE_ADDR) as *mut u64;
        let pd = (*pdpt & PTE_ADDR) as *mut u64;
        for i in 0..512u64 {
            let e = pd.add(i as usize);
            if *e & PTE_P != 0 && Some(i << 21) != except {
                *e |= PTE_US;
            }
        }
        write_cr3(cr3);
    }
}

/// The TSS [`install_tss`] loads: only RSP0 is used, the stack the CPU
/// switches to for an event taken at CPL 1-3.
static mut TSS: Tss = Tss::new();

/// The VMM's five initial descriptors (docs/ABI.md) plus a TSS descriptor.
#[repr(C, align(16))]
struct Gdt([u64; 7]);

static mut GDT: Gdt = Gdt([0; 7]);

#[repr(C, align(16))]
struct KernelStack([u8; 16384]);

static mut KERNEL_STACK: KernelStack = KernelStack([0; 16384]);

/// The selector of the TSS [`install_tss`] loads.
pub const TSS_SELECTOR: u16 = 0x28;

/// The operand of LGDT and LIDT (Intel SDM Vol. 3A §3.5.1, Figure 3-11):
/// limit and base of a descriptor table.
#[repr(C, packed)]
struct TablePointer {
    limit: u16,
    base: u64,
}

/// Load the GDT `bytes` long at `base` (LGDT) and, if `tss` is given, the
/// TSS its descriptor at that selector names (LTR).
///
/// # Safety
/// CPL 0. The table lives as long as it is loaded and holds descriptors
/// for the segment registers already loaded at the same selectors; `tss`
/// names an available 64-bit TSS descriptor in it.
pub unsafe fn load_gdt(base: u64, bytes: usize, tss: Option<u16>) {
    let ptr = TablePointer {
        limit: bytes.saturating_sub(1) as u16,
        base,
    };
    // SAFETY: the caller guarantees the table and CPL 0.
    unsafe { core::arch::asm!("lgdt [{}]", in(reg) &ptr, options(readonly, nostack)) };
    if let Some(sel) = tss {
        // SAFETY: the caller guarantees `sel` names an available TSS.
        unsafe { core::arch::asm!("ltr {0:x}", in(reg) sel, options(nostack)) };
    }
}

/// Load the IDT `bytes` long at `base` (LIDT).
///
/// # Safety
/// CPL 0. The table lives as long as it is loaded, and any vector that
/// can be raised has a present gate to a valid handler (else the event
/// escalates to a triple fault).
pub unsafe fn load_idt(base: u64, bytes: usize) {
    let ptr = TablePointer {
        limit: bytes.saturating_sub(1) as u16,
        base,
    };
    // SAFETY: the caller guarantees the table and CPL 0.
    unsafe {
        core::arch::asm!("lidt [{}]", in(reg) &ptr, options(readonly, nostack, preserves_flags))
    };
}

/// Load a GDT with the VMM's initial descriptors (same selectors) and a
/// TSS whose RSP0 is a kernel stack of this module, so that an exception
/// at CPL 3 reaches [`catch`]'s handler on a valid stack. Call it once, at
/// CPL 0, before [`enter_ring3`] when ring 3 may fault.
pub fn install_tss() {
    let tss = core::ptr::addr_of_mut!(TSS);
    let top = core::ptr::addr_of!(KERNEL_STACK) as u64 + 16384;
    // SAFETY: single-threaded guest; the TSS is not loaded yet.
    unsafe { (*tss).set_rsp0(top) };
    let gdt = core::ptr::addr_of_mut!(GDT);
    // SAFETY: single-threaded; the new GDT is not loaded yet. It is the
    // VMM's five descriptors, then the TSS's at TSS_SELECTOR (0x28).
    let sel = unsafe { gdt_with_tss(&mut (*gdt).0, &GUEST_GDT, tss as u64) };
    debug_assert_eq!(sel, Some(TSS_SELECTOR));
    // SAFETY: the new GDT holds the same code and data descriptors at the
    // same selectors as the VMM's, so the loaded segments stay valid; it
    // is a static that lives forever; TSS_SELECTOR names the available TSS
    // descriptor just written.
    unsafe { load_gdt(gdt as u64, 7 * 8, Some(TSS_SELECTOR)) };
}

/// The registers the exception stub saves, then what the CPU pushed.
#[repr(C)]
struct Frame {
    r11: u64,
    r10: u64,
    r9: u64,
    r8: u64,
    rdi: u64,
    rsi: u64,
    rdx: u64,
    rcx: u64,
    rax: u64,
    vector: u64,
    error: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

// One stub per vector: vectors without a CPU error code push 0 so every
// frame looks alike; then the vector; then the common part saves the
// scratch GPRs and XMM0-15 (the Rust handler may use SSE), calls
// `guest_sdk_exception(&mut Frame)` and returns with IRETQ. Stack: the
// CPU aligns RSP to 16 before pushing 5 words; + error + vector + 9 GPRs
// = 16 words, + 256 bytes of XMM: aligned at the call.
core::arch::global_asm!(concat!(
    r#"
    .section .text.guest_sdk_exc, "ax"
    .macro GUEST_SDK_EXC_NOERR n
    guest_sdk_exc_\n:
        push 0
        push \n
        jmp guest_sdk_exc_common
    .endm
    .macro GUEST_SDK_EXC_ERR n
    guest_sdk_exc_\n:
        push \n
        jmp guest_sdk_exc_common
    .endm
    GUEST_SDK_EXC_NOERR 0
    GUEST_SDK_EXC_NOERR 1
    GUEST_SDK_EXC_NOERR 2
    GUEST_SDK_EXC_NOERR 3
    GUEST_SDK_EXC_NOERR 4
    GUEST_SDK_EXC_NOERR 5
    GUEST_SDK_EXC_NOERR 6
    GUEST_SDK_EXC_NOERR 7
    GUEST_SDK_EXC_ERR 8
    GUEST_SDK_EXC_NOERR 9
    GUEST_SDK_EXC_ERR 10
    GUEST_SDK_EXC_ERR 11
    GUEST_SDK_EXC_ERR 12
    GUEST_SDK_EXC_ERR 13
    GUEST_SDK_EXC_ERR 14
    GUEST_SDK_EXC_NOERR 15
    GUEST_SDK_EXC_NOERR 16
    GUEST_SDK_EXC_ERR 17
    GUEST_SDK_EXC_NOERR 18
    GUEST_SDK_EXC_NOERR 19
    GUEST_SDK_EXC_NOERR 20
    GUEST_SDK_EXC_ERR 21
    GUEST_SDK_EXC_NOERR 22
    GUEST_SDK_EXC_NOERR 23
    GUEST_SDK_EXC_NOERR 24
    GUEST_SDK_EXC_NOERR 25
    GUEST_SDK_EXC_NOERR 26
    GUEST_SDK_EXC_NOERR 27
    GUEST_SDK_EXC_NOERR 28
    GUEST_SDK_EXC_ERR 29
    GUEST_SDK_EXC_ERR 30
    GUEST_SDK_EXC_NOERR 31
guest_sdk_exc_common:
"#,
    baremetal::push_scratch!(),
    r#"
    mov rdi, rsp
    sub rsp, 256
    movdqu [rsp + 0], xmm0
    movdqu [rsp + 16], xmm1
    movdqu [rsp + 32], xmm2
    movdqu [rsp + 48], xmm3
    movdqu [rsp + 64], xmm4
    movdqu [rsp + 80], xmm5
    movdqu [rsp + 96], xmm6
    movdqu [rsp + 112], xmm7
    movdqu [rsp + 128], xmm8
    movdqu [rsp + 144], xmm9
    movdqu [rsp + 160], xmm10
    movdqu [rsp + 176], xmm11
    movdqu [rsp + 192], xmm12
    movdqu [rsp + 208], xmm13
    movdqu [rsp + 224], xmm14
    movdqu [rsp + 240], xmm15
    cld
    call guest_sdk_exception
    movdqu xmm0, [rsp + 0]
    movdqu xmm1, [rsp + 16]
    movdqu xmm2, [rsp + 32]
    movdqu xmm3, [rsp + 48]
    movdqu xmm4, [rsp + 64]
    movdqu xmm5, [rsp + 80]
    movdqu xmm6, [rsp + 96]
    movdqu xmm7, [rsp + 112]
    movdqu xmm8, [rsp + 128]
    movdqu xmm9, [rsp + 144]
    movdqu xmm10, [rsp + 160]
    movdqu xmm11, [rsp + 176]
    movdqu xmm12, [rsp + 192]
    movdqu xmm13, [rsp + 208]
    movdqu xmm14, [rsp + 224]
    movdqu xmm15, [rsp + 240]
    add rsp, 256
"#,
    baremetal::pop_scratch_iretq!(),
    r#"

    .section .rodata.guest_sdk_exc, "a"
    .balign 8
    .global guest_sdk_exc_table
guest_sdk_exc_table:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad guest_sdk_exc_\n
    .endr
"#
));

extern "C" {
    static guest_sdk_exc_table: [u64; 32];
}

/// The 32 exception vectors' gates.
static mut IDT: Idt<32> = Idt::new();

/// Length of the instruction [`catch`] expects to fault (0: none).
static SKIP: AtomicU64 = AtomicU64::new(0);
static CAUGHT: AtomicBool = AtomicBool::new(false);
static CAUGHT_VECTOR: AtomicU64 = AtomicU64::new(0);
static CAUGHT_ERROR: AtomicU64 = AtomicU64::new(0);
static CAUGHT_RIP: AtomicU64 = AtomicU64::new(0);

/// Load an IDT whose 32 exception vectors go to this module's handler
/// (ring-0 interrupt gates on the kernel code selector). Call it once, at
/// CPL 0, before [`catch`].
pub fn install_idt() {
    // SAFETY: the table is a static of 32 code addresses defined in the
    // global_asm above.
    let stubs = unsafe { &*core::ptr::addr_of!(guest_sdk_exc_table) };
    let idt = core::ptr::addr_of_mut!(IDT);
    // SAFETY: the guest is single-threaded and the IDT is not loaded yet
    // (or is being rewritten with identical gates), so nothing reads it
    // concurrently.
    let idt = unsafe { &mut *idt };
    for (gate, &handler) in idt.0.iter_mut().zip(stubs.iter()) {
        // Present, DPL 0, 64-bit interrupt gate, no IST.
        *gate = interrupt_gate(handler, KERNEL_CS, 0);
    }
    // SAFETY: a valid, static IDT of 32 present gates whose handlers exist;
    // CPL 0 (documented requirement).
    unsafe {
        load_idt(
            core::ptr::addr_of!(IDT) as u64,
            core::mem::size_of::<Idt<32>>(),
        )
    };
}

/// Run one instruction given as bytes, `len` bytes long, with RAX = `rax`
/// and RCX = `rcx` (RDX is clobbered), under [`catch`]; evaluates to
/// `(rax_after, address_of_the_instruction, Option<Fault>)`:
///
/// ```ignore
/// let (_, at, fault) = guest_rt::probe!(3, rax = 0, rcx = 0, "0x0f, 0x01, 0xc9"); // MWAIT
/// ```
///
/// The bytes must make one instruction the VMM intercepts or that faults
/// (the handler resumes after it), and may only touch memory the caller
/// names in RAX/RCX. [`install_idt`] must have run; CPL 0, or CPL 3 with
/// [`install_tss`].
#[macro_export]
macro_rules! probe {
    ($len:expr, rax = $rax:expr, rcx = $rcx:expr, $($bytes:literal),+) => {{
        let rax_in: u64 = $rax;
        let rcx_in: u64 = $rcx;
        let (out, fault) = $crate::arch::catch($len, || {
            let at: u64;
            let rax: u64;
            // SAFETY: the caller of probe! vouches for the instruction
            // (intercepted by the VMM, or a fault the handler catches and
            // skips) and for the memory RAX/RCX name; the red zone is
            // skipped because an exception pushes a frame on this stack.
            unsafe {
                core::arch::asm!(
                    "sub rsp, 128",
                    "lea {at}, [rip + 2f]",
                    "2:",
                    $(concat!(".byte ", $bytes),)+
                    "add rsp, 128",
                    at = out(reg) at,
                    inout("rax") rax_in => rax,
                    inout("rcx") rcx_in => _,
                    out("rdx") _,
                )
            }
            (rax, at)
        });
        (out.0, out.1, fault)
    }};
}

/// Run `f`, expecting at most one exception from an instruction of `len`
/// bytes: the handler records it and resumes `len` bytes past the faulting
/// RIP. Returns `f`'s result and the exception, if one happened.
///
/// [`install_idt`] must have been called; CPL 0.
pub fn catch<R>(len: u64, f: impl FnOnce() -> R) -> (R, Option<Fault>) {
    CAUGHT.store(false, Ordering::SeqCst);
    SKIP.store(len, Ordering::SeqCst);
    compiler_fence(Ordering::SeqCst);
    let r = f();
    compiler_fence(Ordering::SeqCst);
    SKIP.store(0, Ordering::SeqCst);
    let fault = CAUGHT.load(Ordering::SeqCst).then(|| Fault {
        vector: CAUGHT_VECTOR.load(Ordering::SeqCst) as u8,
        error: CAUGHT_ERROR.load(Ordering::SeqCst),
        rip: CAUGHT_RIP.load(Ordering::SeqCst),
    });
    (r, fault)
}

#[no_mangle]
extern "C" fn guest_sdk_exception(frame: &mut Frame) {
    let skip = SKIP.swap(0, Ordering::SeqCst);
    if skip != 0 && !CAUGHT.load(Ordering::SeqCst) {
        CAUGHT_VECTOR.store(frame.vector, Ordering::SeqCst);
        CAUGHT_ERROR.store(frame.error, Ordering::SeqCst);
        CAUGHT_RIP.store(frame.rip, Ordering::SeqCst);
        CAUGHT.store(true, Ordering::SeqCst);
        frame.rip = frame.rip.wrapping_add(skip);
        if frame.vector == 1 {
            // A caught #DB ends single-stepping (RFLAGS.TF), or the next
            // instruction would trap again.
            frame.rflags &= !(1 << 8);
        }
        return;
    }
    crate::print_fmt(format_args!(
        "guest: unexpected exception {} (error {:#x}) at RIP {:#x}, CS {:#x}, RSP {:#x}, RFLAGS {:#x}\n",
        frame.vector, frame.error, frame.rip, frame.cs, frame.rsp, frame.rflags
    ));
    crate::exit(102)
}
