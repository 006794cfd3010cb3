//! Escape attempt: `cli; jmp $`, a guest that keeps the CPU and never
//! causes a VM exit.
//!
//! Documented outcome (docs/ABI.md): on VMX the VMM's run budget (the
//! VMX-preemption timer, `exits::RUN_BUDGET_TSC` TSC ticks without any VM
//! exit) runs out and the VMM stops the guest with `vmm: guest stopped:
//! guest ran ... without a VM exit at RIP ...`, the RIP of the spin. On SVM
//! there is no preemption timer; the guest keeps the CPU until the machine
//! is stopped from outside (this example is skipped there).
#![no_std]
#![no_main]

use guest_rt::println;
use guest_sdk::Error;

guest_rt::entry!(main);

core::arch::global_asm!(
    ".section .text.escape_spin, \"ax\"",
    ".global escape_spin",
    "escape_spin:",
    "cli",
    "2:",
    "jmp 2b",
);

extern "C" {
    /// `cli; jmp $`: never returns, never exits.
    fn escape_spin() -> !;
}

fn main() -> Result<(), Error> {
    // The spin is the instruction after the 1-byte CLI.
    let at = escape_spin as *const () as u64 + 1;
    println!("escape-spin: spinning with interrupts off at RIP {at:#x}");
    // SAFETY: the spin touches nothing and never returns: the point of the
    // example.
    unsafe { escape_spin() }
}
