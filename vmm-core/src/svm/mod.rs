//! The AMD SVM backend (AMD APM Vol. 2, Chapter 15 "Secure Virtual Machine").
//!
//! [`vmcb`] is the portable VMCB layout; the rest (feature `rt`) enables
//! SVM, builds the VMCB and nested page tables, and runs the guest.

pub mod vmcb;

#[cfg(feature = "rt")]
mod rt;
#[cfg(feature = "rt")]
pub use rt::{prepare, run_vcpu, SvmVm};

/// Why SVM could not run the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SvmError {
    /// CPUID says no SVM (CPUID 8000_0001h:ECX bit 2).
    NoSvm,
    /// CPUID says no nested paging (CPUID 8000_000Ah:EDX bit 0).
    NoNestedPaging,
    /// VM_CR.SVMDIS is set (SVM disabled by firmware, APM §15.30.1).
    Disabled,
    /// Out of physical memory for the VMCB, host save area or tables.
    OutOfMemory,
}
