//! Escape attempt: I/O ports and MSRs, VMM side. `alive`, which the guest
//! calls after the attempts to show that the VMM still answers, and `say`,
//! a VMM line printed while the guest has put the shared UART in loopback. The
//! policy under test is vmm-core's (`intercept.rs`, `ports.rs`): the guest
//! may use COM1 and its own guest-state MSRs; any other port reads all
//! ones and ignores writes (string I/O raises #GP), any other MSR raises
//! #GP.
#![no_std]
#![no_main]

// The hypervisor itself (boot, backends, runtime) is vmm_core, reached
// through its println! below.
use vmmcall::vmmcall;

/// 42, to show that the VMM still answers.
#[vmmcall("alive", user)]
fn alive() -> u32 {
    42
}

/// Prints one line on the VMM console: the guest calls it with MCR.LOOP
/// set, and the line must still reach the wire (docs/ABI.md, the shared
/// UART).
#[vmmcall("say", user)]
fn say() {
    vmm_core::println!("escape-io: the VMM's line reached the wire past MCR.LOOP");
}
