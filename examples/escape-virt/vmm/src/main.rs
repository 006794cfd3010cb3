//! Escape attempt: virtualization instructions, VMM side. Only `alive`,
//! which the guest calls after every attempt to show that the VMM still
//! answers. The policy under test is vmm-core's (`exits.rs`): a guest
//! executing VMRUN, VMLOAD, VMSAVE, STGI, CLGI, SKINIT, INVLPGA, VMXON,
//! VMLAUNCH, ... gets `#UD`, as on a CPU without the feature (CPUID hides
//! SVM and VMX), and the VMM keeps running.
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
