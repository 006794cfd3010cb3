//! Escape attempt: a guest that never exits, VMM side. Nothing but the
//! hypervisor: the policy under test is the run budget of vmm-core
//! (`exits::RUN_BUDGET_TSC`, the VMX-preemption timer).
#![no_std]
#![no_main]

// The hypervisor itself: boot, backends, runtime.
use vmm_core as _;
