//! VM-exit decoding for Intel VMX and AMD SVM, and the shared route from a
//! hypercall exit to [`vmmcall::dispatch`].
//!
//! A VMM backend reads a handful of raw fields after every exit (the VMCS
//! exit reason and qualification on Intel, the VMCB EXITCODE/EXITINFO1/
//! EXITINFO2 on AMD). This crate turns them into something a VMM can act on:
//!
//! - [`vmx`]: every basic exit reason of Intel SDM Vol. 3C Appendix C
//!   ([`vmx::VmxExitReason`]), the 32-bit exit-reason field
//!   ([`vmx::ExitReasonField`]), exit-qualification decoders (I/O, control
//!   registers, EPT violations), interruption information, VM-instruction
//!   error numbers and VM-entry failure diagnosis.
//! - [`svm`]: every exit code of AMD APM Vol. 2 Appendix C
//!   ([`svm::SvmExitCode`]) and the EXITINFO1/EXITINFO2 decoders (IOIO,
//!   nested page faults, exceptions, MSR, CR access with decode assists).
//! - [`Exit`]: one vendor-neutral view both map into
//!   ([`Exit::from_vmx`], [`Exit::from_svm`]), with a human-readable name
//!   for "unhandled exit" diagnostics; [`VmExit`] adds the length of the
//!   instruction that exited and the raw code, so that a run loop reads no
//!   vendor field ([`VmExit::from_vmx`], [`VmExit::from_svm`]).
//! - [`hypercall`]: [`handle_hypercall`] and the RIP-advance rules
//!   ([`vmx_insn_len`], [`svm_insn_len`]), plus [`handle_ud`] (with
//!   [`code_address`] and [`hypercall_instruction`]) for the cross-vendor
//!   `#UD` path.
//!
//! Every decoder is total: any raw value, including guest-influenced ones
//! and values from future processors, decodes to a documented result
//! (unknown codes are kept, never dropped) and nothing here panics.
//!
//! ```
//! use vmexit::{Exit, IoExit, VmxExitFields};
//!
//! // OUT DX, AL to port 0x3F8: exit reason 30, qualification 0x03F8_0000.
//! let exit = Exit::from_vmx(&VmxExitFields {
//!     exit_reason: 30,
//!     qualification: 0x03f8_0000,
//!     instruction_len: 1,
//!     ..VmxExitFields::default()
//! });
//! assert!(matches!(exit, Exit::Io(IoExit { port: 0x3f8, size: 1, write: true, .. })));
//! ```
#![no_std]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

use core::fmt;

mod exit;
pub mod hypercall;
pub mod svm;
pub mod vmx;

pub use exit::{
    svm_known_len, vendor_code_name, Exit, Insn, IoExit, NestedAccess, RawExit, SvmExitFields,
    VirtInsn, VmExit, VmxExitFields,
};
pub use hypercall::{
    code_address, handle_hypercall, handle_ud, hypercall_instruction, svm_insn_len,
    svm_insn_len_or, vmx_insn_len, HypercallDone,
};

/// The processor vendor whose virtualization extension produced an exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Vendor {
    /// Intel VMX (VT-x): exits carry a VMCS exit reason.
    Intel,
    /// AMD SVM (AMD-V): exits carry a VMCB EXITCODE.
    Amd,
}

impl Vendor {
    /// `"Intel VMX"` or `"AMD SVM"`.
    pub const fn name(self) -> &'static str {
        match self {
            Vendor::Intel => "Intel VMX",
            Vendor::Amd => "AMD SVM",
        }
    }

    /// The vendor's hypercall instruction bytes: `VMCALL` (`0F 01 C1`) or
    /// `VMMCALL` (`0F 01 D9`).
    pub const fn hypercall_bytes(self) -> [u8; 3] {
        match self {
            Vendor::Intel => vmmcall::abi::VMCALL_BYTES,
            Vendor::Amd => vmmcall::abi::VMMCALL_BYTES,
        }
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An exit code that is not in this crate's tables: a reserved number, a
/// code from a newer processor, or garbage. The raw value is kept so that it
/// can be logged and compared; [`UnknownReason::raw`] gives it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnknownReason {
    /// The vendor whose table was searched.
    pub vendor: Vendor,
    /// The value exactly as given (a VMX basic exit reason, or an SVM
    /// EXITCODE).
    pub raw: u64,
}

impl UnknownReason {
    /// The value that was not recognised.
    pub const fn raw(self) -> u64 {
        self.raw
    }
}

impl fmt::Display for UnknownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.vendor {
            Vendor::Intel => write!(f, "unknown Intel VMX exit reason {}", self.raw),
            Vendor::Amd => write!(f, "unknown AMD SVM exit code {:#x}", self.raw),
        }
    }
}

impl core::error::Error for UnknownReason {}
