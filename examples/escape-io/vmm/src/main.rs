//! Escape attempt: I/O ports and MSRs, VMM side. Only `alive`, which the
//! guest calls after the attempts to show that the VMM still answers. The
//! policy under test is vmm-core's (`intercept.rs`, `ports.rs`): the guest
//! may use COM1 and its own guest-state MSRs; any other port reads all
//! ones and ignores writes (string I/O raises #GP), any other MSR raises
//! #GP.
#![no_std]
#![no_main]

// The hypervisor itself: boot, backends, runtime.
use vmm_core as _;
use vmmcall::vmmcall;

/// 42, to show that the VMM still answers.
#[vmmcall("alive", user)]
fn alive() -> u32 {
    42
}
