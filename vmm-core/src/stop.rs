//! Why a guest stopped without asking to ([`Stop`]), and the one line the
//! VMM prints about it.

use crate::exits::RUN_BUDGET_TSC;
use core::fmt;
use vmexit::{Exit, VmExit};

/// Why the guest stopped without asking to.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// SVM could not be used.
    Svm(crate::svm::SvmError),
    /// VMX could not be used, or a VMX instruction failed.
    Vmx(crate::vmx::VmxError),
    /// The handler registry of this image is broken.
    Registry(vmmcall::RegistryError),
    /// The run ended on another vCPU, which took this one out of the
    /// guest (`crate::smp`); that vCPU reports why.
    Ended,
    /// No slot for this CPU (a VMM bug).
    NoCpu,
    /// The guest halted; the VMM delivers no interrupts, so nothing would
    /// wake it.
    Halted {
        /// RIP of the HLT.
        rip: u64,
    },
    /// Triple fault.
    Shutdown {
        /// RIP.
        rip: u64,
    },
    /// A bare-metal guest ran for its whole run budget without one VM exit
    /// (e.g. `cli; jmp $`): VMX preemption timer.
    RunBudget {
        /// RIP when the timer fired.
        rip: u64,
    },
    /// An INIT signal reached the vCPU (nothing in the guest's reach sends
    /// one: it has no local APIC and no reset port).
    Init {
        /// RIP.
        rip: u64,
    },
    /// The guest touched guest-physical memory outside its RAM.
    NestedPageFault {
        /// The guest-physical address.
        gpa: u64,
        /// RIP.
        rip: u64,
    },
    /// VM entry failed: the guest state or controls are invalid.
    EntryFailure {
        /// The decoded exit.
        exit: Exit,
        /// RIP.
        rip: u64,
    },
    /// An exit the VMM does not handle.
    Unhandled {
        /// The exit, decoded and raw.
        exit: VmExit,
        /// RIP.
        rip: u64,
    },
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::Svm(e) => write!(f, "SVM unavailable: {e:?}"),
            Stop::Vmx(e) => write!(f, "VMX: {e}"),
            Stop::Registry(e) => write!(f, "hypercall registry: {e}"),
            Stop::Ended => write!(f, "the run ended on another vCPU"),
            Stop::NoCpu => write!(f, "this CPU has no vCPU slot"),
            Stop::Halted { rip } => write!(
                f,
                "guest executed HLT at RIP {rip:#x} (the VMM delivers no interrupts: nothing would wake it)"
            ),
            Stop::Shutdown { rip } => write!(f, "guest shutdown (triple fault) at RIP {rip:#x}"),
            Stop::RunBudget { rip } => write!(
                f,
                "guest ran {} TSC ticks without a VM exit at RIP {rip:#x} (run budget)",
                RUN_BUDGET_TSC
            ),
            Stop::Init { rip } => write!(f, "INIT signal at RIP {rip:#x} (the VMM does not reset vCPUs)"),
            Stop::NestedPageFault { gpa, rip } => write!(
                f,
                "guest touched guest-physical {gpa:#x}, outside its RAM, at RIP {rip:#x}"
            ),
            Stop::EntryFailure { exit, rip } => {
                write!(f, "VM entry failed at RIP {rip:#x}: {exit}")
            }
            Stop::Unhandled { exit, rip } => {
                let (raw, i1, i2) = (exit.raw.code, exit.raw.info1, exit.raw.info2);
                write!(
                    f,
                    "{} {} (raw code {raw:#x}, info {i1:#x}/{i2:#x}) at RIP {rip:#x}",
                    vmm_shared::markers::UNHANDLED,
                    exit.exit.name()
                )
            }
        }
    }
}
