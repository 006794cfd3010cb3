//! Escape attempt: host state and CPU-level event loops, VMM side.
//!
//! `alive` shows that the VMM still answers; `shout` prints a line on the
//! VMM console for any caller, so that a ring-3 loop can try to flood it
//! (the console's handler-output budget, `vmm_core::console::PRINT_BUDGET`,
//! must stop it). The policy under test is vmm-core's (`exits.rs`,
//! `svm::vmcb::intercepts`, `vmx::PRIMARY_ALWAYS`).
#![no_std]
#![no_main]

use vmm_core::println;
use vmmcall::vmmcall;

/// 42, to show that the VMM still answers.
#[vmmcall("alive", user)]
fn alive() -> u32 {
    42
}

/// Print one line on the VMM console, from any privilege level.
#[vmmcall("shout", user)]
fn shout(n: u32) {
    println!("escape-events: shout {n}");
}
