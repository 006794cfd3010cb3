//! Escape attempt: the guest triple-faults. It loads an empty IDT (limit
//! 0) and executes UD2: the `#UD` cannot be delivered (#GP), nor can the
//! #GP (#DF), nor the #DF: shutdown.
//!
//! Documented outcome (vmm-core `exits.rs`): the VMM intercepts shutdown,
//! reports `vmm: guest stopped: guest shutdown (triple fault) at RIP ...`
//! and exits the emulator with a failure status. `expect.txt` says
//! `outcome: stopped`.
#![no_std]
#![no_main]

use guest_rt::println;

guest_rt::entry!(main);

fn main() {
    #[repr(C, packed)]
    struct Idtr {
        limit: u16,
        base: u64,
    }
    let empty = Idtr { limit: 0, base: 0 };
    println!("escape-triple: loading an empty IDT and executing UD2");
    // SAFETY: deliberately fatal: after LIDT no exception can be
    // delivered, and UD2 raises one. The VMM is expected to stop the
    // guest; the lines after this block run only if it did not.
    unsafe { core::arch::asm!("lidt [{}]", "ud2", in(reg) &empty, options(nostack)) };
    println!("escape-triple: FAILED: still running after a triple fault");
    guest_rt::exit(1)
}
