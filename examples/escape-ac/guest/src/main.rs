//! Escape attempt: an alignment-check fault from ring 3 (CVE-2015-5307:
//! with a misaligned ring-3 stack the CPU can deliver `#AC` forever
//! without a VM exit, unless the VMM intercepts it).
//!
//! Documented outcome (docs/ABI.md): the VMM intercepts `#AC` and reflects
//! it, so the guest's own handler sees `#AC(0)` at the faulting load, and
//! the VMM keeps answering. The guest sets CR0.AM, loads a TSS (the kernel
//! stack for a fault at CPL 3), drops to ring 3, sets RFLAGS.AC and loads
//! 4 bytes from an odd address.
//!
//! QEMU's TCG does not model alignment checks (the load just works), so
//! this example is skipped on qemu-svm.
#![no_std]
#![no_main]

use guest_rt::arch::{self, Fault};
use guest_rt::println;
use guest_sdk::{call, Error};

guest_rt::entry!(main);

#[repr(C, align(16))]
struct Stack([u8; 16384]);
static mut USER_STACK: Stack = Stack([0; 16384]);

static DATA: [u8; 16] = [0; 16];

/// `#AC`.
const AC: u8 = 17;

fn main() -> Result<(), Error> {
    arch::install_idt();
    // SAFETY: CPL 0 with the VMM's initial tables.
    unsafe { arch::user_mappings(None) };
    arch::install_tss();
    // SAFETY: CR0.AM only lets RFLAGS.AC enable alignment checks at CPL 3.
    unsafe {
        core::arch::asm!(
            "mov {t}, cr0", "or {t}, {am}", "mov cr0, {t}",
            t = out(reg) _, am = in(reg) 1u64 << 18, options(nostack)
        )
    };
    println!("escape-ac: dropping to ring 3");
    let top = core::ptr::addr_of_mut!(USER_STACK) as u64 + 16384;
    // SAFETY: every 2 MiB page is user-accessible now, the stack is ours,
    // ring3_main never returns.
    unsafe { arch::enter_ring3(ring3_main, top) }
}

extern "C" fn ring3_main() -> ! {
    // RFLAGS.AC on, a misaligned 4-byte load (8B 40 01: mov eax, [rax+1]),
    // AC off again.
    let (at, fault) = arch::catch(3, || {
        let at: u64;
        // SAFETY: the load reads DATA; #AC is caught and the load skipped.
        // The red zone is skipped (an exception frame is pushed on the
        // kernel stack, but the handler's return does not touch it).
        unsafe {
            core::arch::asm!(
                "sub rsp, 128",
                "pushfq",
                "or qword ptr [rsp], 0x40000",
                "popfq",
                "lea {at}, [rip + 2f]",
                "2:",
                ".byte 0x8b, 0x40, 0x01",
                "pushfq",
                "and qword ptr [rsp], ~0x40000",
                "popfq",
                "add rsp, 128",
                at = out(reg) at,
                inout("rax") DATA.as_ptr() => _,
            )
        }
        at
    });
    let ok = matches!(fault, Some(Fault { vector: AC, error: 0, rip }) if rip == at);
    println!(
        "escape-ac: ring 3 #AC reaches the guest's handler at the load: {}",
        if ok { "ok" } else { "FAILED" }
    );
    let alive = call!("alive") == Ok(42);
    println!(
        "escape-ac: the VMM still answers: {}",
        if alive { "ok" } else { "FAILED" }
    );
    guest_rt::exit(if ok && alive { 0 } else { 1 })
}
