//! `vmm-core`: a small bare-metal hypervisor that serves `vmmcall`
//! hypercalls, with an AMD SVM and an Intel VMX backend.
//!
//! An example image is a `#![no_std] #![no_main]` binary that links this
//! crate with feature `rt` and defines its `#[vmmcall]` handlers; the
//! runtime boots (PVH or Multiboot2), loads the guest given as the first
//! boot module (a bare-metal ELF, or a Linux bundle: see [`linux`]), and
//! runs it. See `docs/ABI.md` for what the guest
//! sees.
//!
//! Modules without `rt` are portable and unit-tested on the host: boot
//! information, ELF loading, physical allocation, nested page tables, guest
//! set-up, VMCB layout and CPUID policy.
#![no_std]

pub mod bootinfo;
pub mod cpu;
pub mod elf;
pub mod exits;
pub mod guest;
pub mod hv;
pub mod idt;
pub mod intercept;
pub mod linux;
pub mod nested;
pub mod physmem;
pub mod spec;
pub mod svm;
pub mod vcpu;
pub mod vmsr;
pub mod vmx;

#[cfg(feature = "rt")]
pub mod console;
#[cfg(feature = "rt")]
mod frames;
#[cfg(feature = "rt")]
mod rt;
#[cfg(feature = "rt")]
mod start;

#[cfg(feature = "rt")]
pub use rt::{exit_machine, halt_forever};
