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
//! # Portable and bare-metal code
//!
//! One rule: **a module is bare-metal exactly when it is named `rt` or lies
//! inside one**, and `#[cfg(feature = "rt")]` is written only on `mod rt`
//! and on re-exports from it. Every other module builds on the host and is
//! unit-tested there. The bare-metal modules are:
//!
//! - `rt` (src/rt/): the boot stub, the Rust entry, heap and panic
//!   handler, the host IDT's stubs, the `console`, the VMM's page frames,
//!   and `start` (from boot to a running guest);
//! - `svm::rt` and `vmx::rt`: the two [`backend::Backend`]s, each the
//!   bare-metal half of its vendor module ([`svm`]: the VMCB layout;
//!   [`vmx`]: capability MSRs, controls, VMCS encodings).
//!
//! [`cpu`] wraps single instructions and builds on both: CPUID runs on the
//! host too, and the privileged wrappers are called only from `rt` code
//! (and from the run loop: the RTC read of a Linux guest, and the PIC and
//! IA32_APIC_BASE reads of a long call's pending-interrupt check, which
//! [`longcall`] replaces with a mock PIC in host tests).
//!
//! # Modules
//!
//! One job each: the run loop ([`exits`]) drives a [`backend::Backend`],
//! acts on the [`vmexit::VmExit`] it returns and ends with a status or a
//! [`stop::Stop`]; what the guest sees of CPUID ([`cpuid`]), of MSRs
//! ([`vmsr`]) and of ports outside its pass-through set ([`ports`]); what
//! passes through ([`intercept`]); the vCPU handlers see and guest RAM
//! ([`vcpu`]); `MOV` CR decoding ([`mov_cr`]); boot information
//! ([`bootinfo`]), ELF loading ([`elf`]), guest set-up ([`guest`],
//! [`linux`]), physical allocation ([`physmem`]), nested page tables
//! ([`nested`]), long calls in steps ([`longcall`]: the continuations
//! and the pending-interrupt check), the VMM's NMI latch ([`idt`]) and the speculation
//! mitigations around VM entry ([`spec`]: the decision is portable, its
//! instructions run only from `rt` code, as [`cpu`]'s do).
#![no_std]

pub mod acpi;
pub mod backend;
pub mod bootinfo;
pub mod cpu;
pub mod cpuid;
pub mod elf;
pub mod exits;
pub mod guest;
pub mod idt;
pub mod intercept;
pub mod lapic;
pub mod linux;
pub mod longcall;
pub mod mmio;
pub mod mov_cr;
pub mod nested;
pub mod physmem;
pub mod ports;
pub mod smp;
pub mod spec;
pub mod stop;
pub mod svm;
pub mod vcpu;
pub mod vmsr;
pub mod vmx;

#[cfg(feature = "rt")]
mod rt;

#[cfg(feature = "rt")]
pub use rt::{console, exit_count, exit_machine, halt_forever};
