//! The run loop shared by both backends: enter the guest, decode the exit,
//! act on it.
//!
//! Policy (the same on SVM and VMX):
//! - hypercall (`vmcall`/`vmmcall`): dispatch through `vmmcall`, advance RIP;
//! - CPUID: answer with [`crate::hv::virtual_cpuid`], advance RIP;
//! - a virtualization instruction (VMRUN, VMLOAD, VMSAVE, STGI, CLGI,
//!   SKINIT, INVLPGA; VMXON, VMLAUNCH, ...): inject #UD, as a CPU without
//!   the feature would (CPUID hides SVM and VMX from the guest);
//! - HLT with interrupts off, shutdown (triple fault), a nested page fault
//!   (guest-physical address outside guest RAM), a failed VM entry, or any
//!   other exit: stop the guest with a diagnosis naming the exit, RIP and
//!   the raw codes.

use crate::cpu;
use crate::hv::virtual_cpuid;
use crate::vcpu::GuestVcpu;
use core::fmt;
use vmmcall::{GuestRegs, Registry};

/// What a backend read after an exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawExit {
    /// AMD SVM (VMCB control area).
    Svm {
        /// EXITCODE.
        exitcode: u64,
        /// EXITINFO1.
        exitinfo1: u64,
        /// EXITINFO2.
        exitinfo2: u64,
        /// EXITINTINFO.
        exitintinfo: u64,
        /// nRIP, or 0 without NRIPS.
        nrip: u64,
    },
    /// Intel VMX (VMCS exit-information fields).
    Vmx {
        /// Exit reason (full 32-bit field).
        reason: u32,
        /// Exit qualification.
        qualification: u64,
        /// VM-exit instruction length.
        insn_len: u64,
        /// Guest-physical address (EPT violations).
        gpa: u64,
        /// VM-exit interruption information.
        intr_info: u32,
    },
}

/// A backend: one vCPU of one vendor.
pub trait Backend {
    /// "svm" or "vmx".
    fn name(&self) -> &'static str;
    /// Run the guest until the next exit.
    fn enter(&mut self, regs: &mut GuestRegs) -> RawExit;
    /// The guest's RIP.
    fn rip(&self) -> u64;
    /// Set the guest's RIP.
    fn set_rip(&mut self, rip: u64);
    /// The vCPU as handlers see it.
    fn vcpu<'b>(&'b self, regs: &'b mut GuestRegs) -> GuestVcpu<'b>;
    /// Inject a hardware exception at the next entry.
    fn inject_exception(&mut self, vector: u8, error_code: Option<u32>);
}

/// Why the guest stopped without asking to.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// SVM could not be used.
    Svm(crate::svm::SvmError),
    /// The handler registry of this image is broken.
    Registry(vmmcall::RegistryError),
    /// The guest halted with nothing to wake it.
    Halted {
        /// RIP after the HLT.
        rip: u64,
    },
    /// Triple fault.
    Shutdown {
        /// RIP.
        rip: u64,
    },
    /// The guest touched guest-physical memory outside its RAM.
    NestedPageFault {
        /// The guest-physical address.
        gpa: u64,
        /// RIP.
        rip: u64,
        /// EXITINFO1 / exit qualification.
        info: u64,
    },
    /// An exit the VMM does not handle.
    Unhandled {
        /// The raw exit.
        exit: RawExit,
        /// RIP.
        rip: u64,
    },
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::Svm(e) => write!(f, "SVM unavailable: {e:?}"),
            Stop::Registry(e) => write!(f, "hypercall registry: {e}"),
            Stop::Halted { rip } => write!(f, "guest executed HLT with interrupts off at RIP {rip:#x}"),
            Stop::Shutdown { rip } => write!(f, "guest shutdown (triple fault) at RIP {rip:#x}"),
            Stop::NestedPageFault { gpa, rip, info } => write!(
                f,
                "guest touched guest-physical {gpa:#x} outside its RAM at RIP {rip:#x} (info {info:#x})"
            ),
            Stop::Unhandled { exit, rip } => write!(f, "unhandled exit {exit:x?} at RIP {rip:#x}"),
        }
    }
}

/// Run the guest until it asks to stop (`Ok(status)`) or must be stopped.
pub fn run_loop(backend: &mut dyn Backend, regs: &mut GuestRegs) -> Result<u32, Stop> {
    let registry = Registry::global().map_err(Stop::Registry)?;
    loop {
        let exit = backend.enter(regs);
        let rip = backend.rip();
        match exit {
            RawExit::Svm { exitcode: 0x81, nrip, .. } => {
                let len = if nrip != 0 { nrip.wrapping_sub(rip) } else { 3 };
                let outcome = {
                    let mut vcpu = backend.vcpu(regs);
                    vmmcall::dispatch(registry, &mut vcpu)
                };
                backend.set_rip(rip.wrapping_add(len));
                if let Some(status) = outcome.stop {
                    return Ok(status);
                }
            }
            RawExit::Svm { exitcode: 0x72, nrip, .. } => {
                let len = if nrip != 0 { nrip.wrapping_sub(rip) } else { 2 };
                let (leaf, sub) = (regs.rax as u32, regs.rcx as u32);
                let r = virtual_cpuid(leaf, sub, cpu::cpuid(leaf, sub));
                regs.rax = u64::from(r.eax);
                regs.rbx = u64::from(r.ebx);
                regs.rcx = u64::from(r.ecx);
                regs.rdx = u64::from(r.edx);
                backend.set_rip(rip.wrapping_add(len));
            }
            RawExit::Svm { exitcode: 0x78, .. } => return Err(Stop::Halted { rip }),
            RawExit::Svm { exitcode: 0x7F, .. } => return Err(Stop::Shutdown { rip }),
            RawExit::Svm { exitcode: 0x7A | 0x80 | 0x82..=0x86, .. } => backend.inject_exception(6, None),
            RawExit::Svm { exitcode: 0x400, exitinfo1, exitinfo2, .. } => {
                return Err(Stop::NestedPageFault { gpa: exitinfo2, rip, info: exitinfo1 })
            }
            other => return Err(Stop::Unhandled { exit: other, rip }),
        }
    }
}
