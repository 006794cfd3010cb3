//! Escape attempt (apic), VMM side: vmm-core alone, with no hypercall but
//! its built-ins. What is under test is the run loop's policy (vmm-core
//! `exits.rs`, docs/VMM-CORE.md): a bare-metal guest has no local APIC,
//! so its write to the APIC page stops it before any IPI can leave.
#![no_std]
#![no_main]

// The hypervisor itself: boot, backends, runtime.
use vmm_core as _;
