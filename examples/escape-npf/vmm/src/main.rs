//! Escape attempt (npf), VMM side: vmm-core alone, with no hypercall but
//! the built-in `exit`. What is under test is the run loop's policy
//! (vmm-core `exits.rs`): the guest is stopped with a diagnosis and the
//! emulator exits with a failure status.
#![no_std]
#![no_main]

// The hypervisor itself: boot, backends, runtime.
use vmm_core as _;
