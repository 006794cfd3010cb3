//! Escape attempt: a guest reaches for host state and for CPU-level event
//! loops (docs/VMM-CORE.md, "What `vmm-core` does with a misbehaving guest").
//!
//! At CPL 0, each attempt and its documented outcome:
//! - `MONITOR`, `MWAIT`, `RDTSCP`: `#UD` (CPUID hides them; MWAIT would be
//!   an HLT the VMM cannot see, RDTSCP reads the unswitched TSC_AUX);
//! - `RDPMC` with CR4.PCE set: `#GP(0)` (the counters are the host's);
//! - `WBINVD`: skipped, the guest goes on;
//! - `MOV CR4` setting OSXSAVE, PKE, CET, PCIDE or VMXE (features CPUID
//!   hides, whose state the VMM would share): `#GP(0)`, CR4 unchanged;
//!   PGE, which CPUID offers, still toggles;
//! - `MOV CR8`: a virtual TPR (a value written reads back; bits above 3
//!   raise `#GP(0)`), never the physical one;
//! - `RDMSR`/`WRMSR TSC_AUX`: `#GP(0)` (neither vendor switches it);
//! - `CPUID` with RFLAGS.TF set: the single-step `#DB` arrives after it,
//!   with DR6.BS, although the VMM emulated the instruction;
//! - `ICEBP` (`INT1`, F1): the `#DB` (intercepted, then reflected) is a
//!   trap: the handler's saved RIP is the instruction after it, so an IRET
//!   does not take it again (on VMX it is re-injected as a privileged
//!   software exception with its length). QEMU's TCG has no ICEBP and
//!   raises `#UD` at it, which is accepted and said.
//!
//! At CPL 3: 300 calls of a handler that prints: the VMM prints 256 lines
//! and then only counts, and keeps answering. (`#AC` from ring 3 is
//! `examples/escape-ac`.)
#![no_std]
#![no_main]

use guest_rt::arch::{self, Fault};
use guest_rt::println;
use guest_sdk::{call, Error};

guest_rt::entry!(main);

#[repr(C, align(4096))]
struct Scratch([u8; 4096]);
static mut SCRATCH: Scratch = Scratch([0; 4096]);

#[repr(C, align(16))]
struct Stack([u8; 16384]);
static mut USER_STACK: Stack = Stack([0; 16384]);

/// `#DB`.
const DB: u8 = 1;

fn check(what: &str, ok: bool) -> bool {
    println!(
        "escape-events: {what}: {}",
        if ok { "ok" } else { "FAILED" }
    );
    ok
}

fn faulted(fault: Option<Fault>, vector: u8, at: u64) -> bool {
    matches!(fault, Some(Fault { vector: v, rip, .. }) if v == vector && rip == at)
}

fn cr4() -> u64 {
    let v: u64;
    // SAFETY: reading CR4 at CPL 0 has no side effect.
    unsafe { core::arch::asm!("mov {}, cr4", out(reg) v, options(nomem, nostack)) };
    v
}

fn main() -> Result<(), Error> {
    arch::install_idt();
    let page = core::ptr::addr_of!(SCRATCH) as u64;
    let mut ok = true;

    // MONITOR: RAX = address, ECX = extensions (none: else #GP first).
    let (_, at, f) = guest_rt::probe!(3, rax = page, rcx = 0, "0x0f, 0x01, 0xc8");
    ok &= check("MONITOR raises #UD", faulted(f, arch::UD, at));
    let (_, at, f) = guest_rt::probe!(3, rax = 0, rcx = 0, "0x0f, 0x01, 0xc9");
    ok &= check("MWAIT raises #UD", faulted(f, arch::UD, at));
    let (_, at, f) = guest_rt::probe!(3, rax = 0, rcx = 0, "0x0f, 0x01, 0xf9");
    ok &= check("RDTSCP raises #UD", faulted(f, arch::UD, at));

    // CR4.PCE lets any ring run RDPMC on hardware: the VMM still refuses.
    // SAFETY: PCE only permits RDPMC; CPL 0.
    unsafe { core::arch::asm!("mov cr4, {}", in(reg) cr4() | (1 << 8), options(nostack)) };
    let (_, at, f) = guest_rt::probe!(2, rax = 0, rcx = 0, "0x0f, 0x33");
    ok &= check(
        "RDPMC with CR4.PCE raises #GP(0)",
        faulted(f, arch::GP, at) && f.is_some_and(|f| f.error == 0),
    );
    let (_, _, f) = guest_rt::probe!(2, rax = 0, rcx = 0, "0x0f, 0x09");
    ok &= check("WBINVD is skipped", f.is_none());

    // mov cr4, rax (0F 22 E0) with a bit whose feature CPUID hides:
    // OSXSAVE (18, XSAVE), PKE (22, PKU), CET (23), PCIDE (17), VMXE (13).
    let before = cr4();
    let mut refused = true;
    for bit in [18, 22, 23, 17, 13] {
        let (_, at, f) = guest_rt::probe!(3, rax = before | 1 << bit, rcx = 0, "0x0f, 0x22, 0xe0");
        if !(faulted(f, arch::GP, at) && f.is_some_and(|f| f.error == 0)) || cr4() != before {
            println!("escape-events: CR4 bit {bit}: {f:?}, CR4 {:#x}", cr4());
            refused = false;
        }
    }
    ok &= check("CR4 bits CPUID hides raise #GP(0)", refused);
    // A bit CPUID offers still works: PGE off and on (a global TLB flush).
    let (_, _, f) = guest_rt::probe!(3, rax = before ^ (1 << 7), rcx = 0, "0x0f, 0x22, 0xe0");
    let toggled = cr4();
    let (_, _, g) = guest_rt::probe!(3, rax = before, rcx = 0, "0x0f, 0x22, 0xe0");
    ok &= check(
        "CR4.PGE toggles",
        f.is_none() && g.is_none() && toggled == before ^ (1 << 7) && cr4() == before,
    );

    // mov cr8, rax (44 0F 22 C0); mov rax, cr8 (44 0F 20 C0).
    let (_, _, f) = guest_rt::probe!(4, rax = 5, rcx = 5, "0x44, 0x0f, 0x22, 0xc0");
    let (tpr, _, g) = guest_rt::probe!(4, rax = 0, rcx = 0, "0x44, 0x0f, 0x20, 0xc0");
    ok &= check(
        "CR8 is a virtual TPR (5 reads back)",
        f.is_none() && g.is_none() && tpr == 5,
    );
    let (_, at, f) = guest_rt::probe!(4, rax = 16, rcx = 16, "0x44, 0x0f, 0x22, 0xc0");
    ok &= check("CR8 reserved bits raise #GP(0)", faulted(f, arch::GP, at));
    let (_, _, _) = guest_rt::probe!(4, rax = 0, rcx = 0, "0x44, 0x0f, 0x22, 0xc0");

    // wrmsr / rdmsr with ECX = TSC_AUX: ECX comes from RCX = RAX, so
    // load the MSR number as the value; EDX is clobbered.
    let (_, at, f) = guest_rt::probe!(2, rax = 0xC000_0103, rcx = 0xC000_0103, "0x0f, 0x30");
    ok &= check("WRMSR TSC_AUX raises #GP", faulted(f, arch::GP, at));
    let (_, at, f) = guest_rt::probe!(2, rax = 0xC000_0103, rcx = 0xC000_0103, "0x0f, 0x32");
    ok &= check("RDMSR TSC_AUX raises #GP", faulted(f, arch::GP, at));

    ok &= check("single-step #DB after CPUID, DR6.BS set", single_step());
    ok &= check("ICEBP's #DB returns after the instruction", icebp());
    ok &= check("the VMM still answers", call!("alive")? == 42);

    // Ring 3: user-accessible mappings.
    // SAFETY: CPL 0 with the VMM's initial tables.
    unsafe { arch::user_mappings(None) };
    if !ok {
        return Err(Error::Invalid);
    }
    println!("escape-events: dropping to ring 3");
    let top = core::ptr::addr_of_mut!(USER_STACK) as u64 + 16384;
    // SAFETY: every 2 MiB page is user-accessible now, the stack is ours,
    // ring3_main never returns.
    unsafe { arch::enter_ring3(ring3_main, top) }
}

/// ICEBP (INT1): the #DB's saved RIP is the instruction after it (a NOP,
/// which the handler skips). Were it the ICEBP itself, a handler that just
/// returned would run it again forever.
fn icebp() -> bool {
    let (after, fault) = arch::catch(1, || {
        let after: u64;
        // SAFETY: ICEBP raises #DB, caught by catch, which resumes one byte
        // past the saved RIP; the red zone is skipped (the frame goes on
        // this stack).
        unsafe {
            core::arch::asm!(
                "sub rsp, 128",
                "lea {after}, [rip + 2f]",
                ".byte 0xf1",
                "2:",
                "nop",
                "add rsp, 128",
                after = out(reg) after,
            )
        }
        after
    });
    match fault {
        Some(Fault {
            vector: DB, rip, ..
        }) if rip == after => true,
        // QEMU's TCG does not implement ICEBP (its decoder has it only
        // under WANT_ICEBP): #UD at the instruction, nothing to reflect.
        Some(Fault {
            vector: arch::UD,
            rip,
            ..
        }) if rip == after - 1 => {
            println!("escape-events: this CPU has no ICEBP (#UD at it, as under QEMU TCG)");
            true
        }
        _ => {
            println!("escape-events: ICEBP gave {fault:?}, the instruction after it is {after:#x}");
            false
        }
    }
}

/// CPUID with RFLAGS.TF: the single-step trap arrives at the instruction
/// after CPUID (a NOP, which the handler skips), with DR6.BS (bit 14).
fn single_step() -> bool {
    let (after, fault) = arch::catch(1, || {
        let after: u64;
        // SAFETY: sets TF, runs CPUID (emulated by the VMM), and the #DB
        // trap that follows is caught (catch clears TF and skips the NOP).
        // RBX is saved around CPUID.
        unsafe {
            core::arch::asm!(
                "sub rsp, 128",
                "push rbx",
                "pushfq",
                "or qword ptr [rsp], 0x100",
                "xor eax, eax",
                "lea {after}, [rip + 2f]",
                "popfq",
                "cpuid",
                "2:",
                "nop",
                "pop rbx",
                "add rsp, 128",
                after = out(reg) after,
                out("rax") _, out("rcx") _, out("rdx") _,
            )
        }
        after
    });
    let dr6: u64;
    // SAFETY: reading DR6 at CPL 0 (neither vendor intercepts it here).
    unsafe { core::arch::asm!("mov {}, dr6", out(reg) dr6, options(nomem, nostack)) };
    matches!(fault, Some(Fault { vector: DB, rip, .. }) if rip == after) && dr6 & (1 << 14) != 0
}

extern "C" fn ring3_main() -> ! {
    let status = match ring3_checks() {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            println!("escape-events: unexpected error {e:?}");
            2
        }
    };
    guest_rt::exit(status)
}

fn ring3_checks() -> Result<bool, Error> {
    let mut ok = true;
    for n in 0..300u32 {
        call!("shout", rbx = n)?;
    }
    ok &= check(
        "300 lines asked of the VMM, it still answers",
        call!("alive")? == 42,
    );
    Ok(ok)
}
