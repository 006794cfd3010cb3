//! Escape attempt: an alignment-check fault from ring 3, VMM side. Only
//! `alive`, which ring 3 calls after the fault to show that the VMM still
//! answers. The policy under test is vmm-core's: `#AC` is intercepted
//! on both vendors and reflected to the guest (`svm::vmcb::INTERCEPTED_EXCEPTIONS`),
//! so that the CPU can never deliver it in a loop without a VM exit
//! (CVE-2015-5307).
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
