//! What xtask, vmm-core and the example guests must agree on, written once
//! (part of this repository's test bench, not published).
//!
//! Every item is a constant, a plain type or a pure function: no `asm!`, no
//! bare-metal code, so xtask uses the crate on the host, vmm-core and the
//! guest images in `no_std` builds, and its tests run on the host.
//!
//! - [`bundle`]: the header of the Linux bundle `cargo xtask linux` writes
//!   and vmm-core's Linux profile parses;
//! - [`bzimage`]: the offsets and flags of the Linux boot protocol's setup
//!   header, which both check;
//! - [`markers`]: the console lines vmm-core and `vmmcall-init` print and
//!   xtask looks for, and the command-line word of the verdict secret;
//! - [`ports`]: the emulators' exit ports, which vmm-core and
//!   `vmmcall-init` write and whose effect xtask reads back;
//! - [`desc`]: x86 descriptors (GDT code/data and TSS descriptors, IDT
//!   gates, the 64-bit TSS) and the guests' initial selectors, built by
//!   vmm-core for itself and its guests and by `guest-rt`.
#![no_std]

pub mod bundle;
pub mod bzimage;
pub mod desc;
pub mod markers;
pub mod ports;
