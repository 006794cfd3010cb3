//! The vendor-neutral view of a VM exit.
//!
//! A backend reads its raw fields into [`VmxExitFields`] or
//! [`SvmExitFields`] and calls [`VmExit::from_vmx`] or [`VmExit::from_svm`]:
//! the decoded [`Exit`], the length of the instruction that exited and the
//! raw code for diagnostics, so that nothing after the backend reads a
//! vendor field ([`Exit::from_vmx`] and [`Exit::from_svm`] decode the exit
//! alone). The common cases (hypercall, CPUID, port I/O, MSR, HLT, nested
//! page fault, exception, shutdown, failed entry, a guest executing
//! virtualization instructions or instructions that reach host state, the
//! VMX-preemption timer) get their own variants; everything else is
//! [`Exit::Other`], which keeps the vendor's raw code and still has a
//! readable name ([`Exit::name`], [`vendor_code_name`]).

use crate::hypercall::{vmx_insn_len, MAX_INSN_LEN};
use crate::svm::{self, CrAccessInfo, IoioInfo, NpfErrorCode, SvmExitCode};
use crate::vmx::{
    self, CrAccessType, CrQualification, EptViolation, EventType, InterruptionInfo,
    IoQualification, VmxExitReason,
};
use crate::Vendor;
use core::fmt;

/// The raw VMCS fields a VMX backend reads after a VM exit (Intel SDM
/// Vol. 3C, §25.9 "VM-Exit Information Fields"). Fields that the exit does
/// not use may be left 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VmxExitFields {
    /// Exit reason (encoding `0x4402`), the full 32-bit field.
    pub exit_reason: u32,
    /// Exit qualification (encoding `0x6400`).
    pub qualification: u64,
    /// VM-exit instruction length (encoding `0x440C`).
    pub instruction_len: u32,
    /// Guest-physical address (encoding `0x2400`), for EPT exits.
    pub guest_physical: u64,
    /// Guest-linear address (encoding `0x640A`), for EPT violations with
    /// qualification bit 7 set.
    pub guest_linear: u64,
    /// VM-exit interruption information (encoding `0x4404`).
    pub interruption_info: u32,
    /// VM-exit interruption error code (encoding `0x4406`).
    pub interruption_error: u32,
}

/// The raw VMCB control-area fields an SVM backend reads after `#VMEXIT`
/// (AMD APM Vol. 2, Appendix B "Layout of VMCB", Table B-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SvmExitFields {
    /// EXITCODE (offset `0x70`).
    pub exitcode: u64,
    /// EXITINFO1 (offset `0x78`).
    pub exitinfo1: u64,
    /// EXITINFO2 (offset `0x80`).
    pub exitinfo2: u64,
}

/// A port I/O exit (`IN`, `OUT`, `INS`, `OUTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IoExit {
    /// The port.
    pub port: u16,
    /// Access size in bytes: 1, 2 or 4.
    pub size: u8,
    /// `true` for `OUT`/`OUTS` (guest writes the port), `false` for
    /// `IN`/`INS`.
    pub write: bool,
    /// A string instruction (`INS`/`OUTS`).
    pub string: bool,
    /// `REP` prefixed.
    pub rep: bool,
    /// VMX: whether the port was an immediate operand (else DX). `None` on
    /// SVM, which does not report it.
    pub immediate: Option<bool>,
    /// SVM: the address size in bits (16, 32, 64) for string instructions.
    /// `None` on VMX (it is in the VM-exit instruction-information field)
    /// or when the processor reported none.
    pub address_size: Option<u8>,
    /// SVM: the RIP of the next instruction (EXITINFO2). `None` on VMX.
    pub next_rip: Option<u64>,
}

/// What a nested page fault (EPT violation / NPF) says about the access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NestedAccess {
    /// The access was a data read.
    pub read: bool,
    /// The access was a data write.
    pub write: bool,
    /// The access was an instruction fetch.
    pub execute: bool,
    /// The guest-physical address had a nested translation (the fault is a
    /// permission fault); `false`: not mapped.
    pub present: bool,
    /// `Some(true)`: the fault hit a guest paging-structure access during
    /// the guest's page walk; `Some(false)`: it hit the final translated
    /// address; `None`: the processor did not say.
    pub during_walk: Option<bool>,
    /// VMX: the guest-linear address, when the qualification marks it
    /// valid. `None` on SVM.
    pub guest_linear: Option<u64>,
    /// The raw EPT-violation qualification or NPF EXITINFO1, for detail
    /// ([`EptViolation`], [`NpfErrorCode`]).
    pub raw: u64,
}

/// A virtualization instruction the guest executed (it is not allowed to:
/// this VMM does not offer nested virtualization; inject `#UD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VirtInsn {
    /// VMX `VMCLEAR`.
    Vmclear,
    /// VMX `VMLAUNCH`.
    Vmlaunch,
    /// VMX `VMPTRLD`.
    Vmptrld,
    /// VMX `VMPTRST`.
    Vmptrst,
    /// VMX `VMREAD`.
    Vmread,
    /// VMX `VMRESUME`.
    Vmresume,
    /// VMX `VMWRITE`.
    Vmwrite,
    /// VMX `VMXOFF`.
    Vmxoff,
    /// VMX `VMXON`.
    Vmxon,
    /// VMX `INVEPT`.
    Invept,
    /// VMX `INVVPID`.
    Invvpid,
    /// VMX `VMFUNC` (exits only when the function is not enabled or fails).
    Vmfunc,
    /// TDX `SEAMCALL`.
    Seamcall,
    /// TDX `TDCALL`.
    Tdcall,
    /// SVM `VMRUN`.
    Vmrun,
    /// SVM `VMLOAD`.
    Vmload,
    /// SVM `VMSAVE`.
    Vmsave,
    /// SVM `STGI`.
    Stgi,
    /// SVM `CLGI`.
    Clgi,
    /// SVM `SKINIT`.
    Skinit,
    /// SVM `INVLPGA`.
    Invlpga,
}

impl VirtInsn {
    /// The instruction mnemonic.
    pub const fn name(self) -> &'static str {
        match self {
            VirtInsn::Vmclear => "VMCLEAR",
            VirtInsn::Vmlaunch => "VMLAUNCH",
            VirtInsn::Vmptrld => "VMPTRLD",
            VirtInsn::Vmptrst => "VMPTRST",
            VirtInsn::Vmread => "VMREAD",
            VirtInsn::Vmresume => "VMRESUME",
            VirtInsn::Vmwrite => "VMWRITE",
            VirtInsn::Vmxoff => "VMXOFF",
            VirtInsn::Vmxon => "VMXON",
            VirtInsn::Invept => "INVEPT",
            VirtInsn::Invvpid => "INVVPID",
            VirtInsn::Vmfunc => "VMFUNC",
            VirtInsn::Seamcall => "SEAMCALL",
            VirtInsn::Tdcall => "TDCALL",
            VirtInsn::Vmrun => "VMRUN",
            VirtInsn::Vmload => "VMLOAD",
            VirtInsn::Vmsave => "VMSAVE",
            VirtInsn::Stgi => "STGI",
            VirtInsn::Clgi => "CLGI",
            VirtInsn::Skinit => "SKINIT",
            VirtInsn::Invlpga => "INVLPGA",
        }
    }
}

/// An intercepted instruction that reaches state outside the guest (caches,
/// performance counters, the monitor hardware, `TSC_AUX`, AMD's privileged
/// registers) and has no variant of its own. Which of them exit is the
/// VMM's choice (VMX execution controls, SVM intercept vectors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Insn {
    /// `INVD` (VMX reason 13, SVM `0x76`).
    Invd,
    /// `WBINVD` or `WBNOINVD` (VMX reason 54, SVM `0x89`).
    Wbinvd,
    /// `RDPMC` (VMX reason 15, SVM `0x6F`).
    Rdpmc,
    /// `MONITOR` or AMD `MONITORX` (VMX reason 39, SVM `0x8A`).
    Monitor,
    /// `MWAIT` or AMD `MWAITX` (VMX reason 36, SVM `0x8B`, and `0x8C` for
    /// `MWAIT` with the monitor armed).
    Mwait,
    /// `RDTSCP` (VMX reason 51, SVM `0x87`).
    Rdtscp,
    /// AMD `RDPRU` (SVM `0x8E`).
    Rdpru,
}

impl Insn {
    /// The instruction mnemonic.
    pub const fn name(self) -> &'static str {
        match self {
            Insn::Invd => "INVD",
            Insn::Wbinvd => "WBINVD",
            Insn::Rdpmc => "RDPMC",
            Insn::Monitor => "MONITOR",
            Insn::Mwait => "MWAIT",
            Insn::Rdtscp => "RDTSCP",
            Insn::Rdpru => "RDPRU",
        }
    }
}

/// A VM exit, independent of the vendor.
///
/// Made by [`Exit::from_vmx`] or [`Exit::from_svm`]; never fails: anything
/// without its own variant (or whose information does not decode) becomes
/// [`Exit::Other`] with the vendor's raw code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Exit {
    /// The guest executed the hypercall instruction (`VMCALL` / `VMMCALL`):
    /// route it to [`crate::handle_hypercall`].
    Hypercall,
    /// `CPUID`.
    Cpuid,
    /// Port I/O.
    Io(IoExit),
    /// `RDMSR`/`WRMSR` (and the VMX immediate forms).
    Msr {
        /// `WRMSR` (else `RDMSR`).
        write: bool,
        /// The MSR number when the exit carries it (VMX `RDMSR`/`WRMSRNS`
        /// with an immediate operand: the exit qualification); `None`
        /// means it is in the guest's ECX.
        index: Option<u32>,
    },
    /// `HLT` (SVM: also `VMEXIT_IDLE_HLT`).
    Hlt,
    /// An access the nested page tables (EPT/NPT) do not allow.
    NestedPageFault {
        /// The guest-physical address.
        gpa: u64,
        /// What was accessed, and how.
        access: NestedAccess,
    },
    /// An intercepted exception.
    Exception {
        /// The vector (0..=31).
        vector: u8,
        /// The error code, for exceptions that deliver one.
        error_code: Option<u32>,
        /// For `#PF` (vector 14): the faulting linear address (VMX exit
        /// qualification, SVM EXITINFO2).
        fault_address: Option<u64>,
        /// For `#DB` (vector 1) on VMX: the value the guest's DR6 takes,
        /// its always-one bits with B0-B3, BD and BS from the exit
        /// qualification (Intel SDM Vol. 3C §28.2.1, Table 28-1). A `#DB`
        /// that causes a VM exit leaves DR6 unchanged, so the VMM writes
        /// this before it injects the exception. `None` for other vectors,
        /// and on SVM, where the guest's DR6 in the VMCB already holds the
        /// bits at `#VMEXIT`.
        dr6: Option<u64>,
    },
    /// An NMI arrived while the guest ran.
    Nmi,
    /// An external interrupt arrived while the guest ran.
    ExternalInterrupt,
    /// The guest became able to take an interrupt (VMX interrupt window,
    /// SVM `VMEXIT_VINTR`).
    InterruptWindow,
    /// An INIT signal.
    Init,
    /// A control-register access.
    ControlRegister {
        /// The register number (0..=15).
        cr: u8,
        /// A write (`MOV` to CR, `CLTS`, `LMSW`), else a read.
        write: bool,
        /// The general-purpose register of a `MOV` CR (0 = RAX ...
        /// 15 = R15), when known (SVM needs decode assists; `CLTS`/`LMSW`
        /// have none).
        gpr: Option<u8>,
    },
    /// `XSETBV`.
    Xsetbv,
    /// `PAUSE`.
    Pause,
    /// The guest shut down: VMX triple fault, SVM `VMEXIT_SHUTDOWN`.
    Shutdown,
    /// The guest never ran: VM entry failed (VMX exit-reason bit 31) or
    /// VMRUN failed (SVM negative exit codes).
    EntryFailure {
        /// Who reported it.
        vendor: Vendor,
        /// VMX: the full exit-reason field; SVM: EXITCODE.
        raw: u64,
        /// VMX: the exit qualification; SVM: EXITINFO1.
        qualification: u64,
    },
    /// The guest executed a virtualization instruction.
    VirtualizationInstruction(VirtInsn),
    /// The guest executed an instruction that reaches state outside it.
    Instruction(Insn),
    /// The VMX-preemption timer counted down to zero (VMX reason 52; SDM
    /// Vol. 3C §26.5.1).
    PreemptionTimer,
    /// Any other exit; `code` is the VMX basic exit reason or the SVM
    /// EXITCODE.
    Other {
        /// Who reported it.
        vendor: Vendor,
        /// The raw code.
        code: u64,
    },
}

/// The readable name of a vendor's raw exit code: the SDM description of a
/// VMX basic exit reason, the APM mnemonic of an SVM exit code, or
/// `"unknown"` text for codes not in the tables.
pub fn vendor_code_name(vendor: Vendor, code: u64) -> &'static str {
    match vendor {
        Vendor::Intel => match u16::try_from(code).map(VmxExitReason::from_raw) {
            Ok(Ok(r)) => r.name(),
            _ => "unknown VMX exit reason",
        },
        Vendor::Amd => match SvmExitCode::from_raw(code) {
            Ok(c) => c.name(),
            Err(_) => "unknown SVM exit code",
        },
    }
}

impl Exit {
    /// Decode a VMX exit from the VMCS fields. Never panics; see [`Exit`].
    pub fn from_vmx(f: &VmxExitFields) -> Exit {
        let field = vmx::ExitReasonField(f.exit_reason);
        if field.entry_failure() {
            return Exit::EntryFailure {
                vendor: Vendor::Intel,
                raw: u64::from(f.exit_reason),
                qualification: f.qualification,
            };
        }
        let other = Exit::Other {
            vendor: Vendor::Intel,
            code: u64::from(field.basic()),
        };
        let Ok(reason) = field.reason() else {
            return other;
        };
        use VmxExitReason as R;
        let insn = |i| Exit::VirtualizationInstruction(i);
        match reason {
            R::ExceptionOrNmi => {
                let info = InterruptionInfo(f.interruption_info);
                if !info.valid() {
                    return other;
                }
                match info.event_type() {
                    EventType::Nmi => Exit::Nmi,
                    t if t.is_exception() => {
                        let vector = info.vector();
                        Exit::Exception {
                            vector,
                            error_code: info.error_code_valid().then_some(f.interruption_error),
                            fault_address: (vector == 14).then_some(f.qualification),
                            dr6: (vector == 1)
                                .then_some(DR6_FIXED_ONES | (f.qualification & DR6_EXIT_BITS)),
                        }
                    }
                    _ => other,
                }
            }
            R::ExternalInterrupt => Exit::ExternalInterrupt,
            R::TripleFault => Exit::Shutdown,
            R::InitSignal => Exit::Init,
            R::InterruptWindow => Exit::InterruptWindow,
            R::Cpuid => Exit::Cpuid,
            R::Hlt => Exit::Hlt,
            R::Vmcall => Exit::Hypercall,
            R::Vmclear => insn(VirtInsn::Vmclear),
            R::Vmlaunch => insn(VirtInsn::Vmlaunch),
            R::Vmptrld => insn(VirtInsn::Vmptrld),
            R::Vmptrst => insn(VirtInsn::Vmptrst),
            R::Vmread => insn(VirtInsn::Vmread),
            R::Vmresume => insn(VirtInsn::Vmresume),
            R::Vmwrite => insn(VirtInsn::Vmwrite),
            R::Vmxoff => insn(VirtInsn::Vmxoff),
            R::Vmxon => insn(VirtInsn::Vmxon),
            R::Invept => insn(VirtInsn::Invept),
            R::Invvpid => insn(VirtInsn::Invvpid),
            R::Vmfunc => insn(VirtInsn::Vmfunc),
            R::Seamcall => insn(VirtInsn::Seamcall),
            R::Tdcall => insn(VirtInsn::Tdcall),
            R::ControlRegisterAccess => {
                let q = CrQualification(f.qualification);
                match q.access_type() {
                    CrAccessType::MovToCr => Exit::ControlRegister {
                        cr: q.cr(),
                        write: true,
                        gpr: Some(q.gpr()),
                    },
                    CrAccessType::MovFromCr => Exit::ControlRegister {
                        cr: q.cr(),
                        write: false,
                        gpr: Some(q.gpr()),
                    },
                    CrAccessType::Clts | CrAccessType::Lmsw => Exit::ControlRegister {
                        cr: 0,
                        write: true,
                        gpr: None,
                    },
                }
            }
            R::IoInstruction => {
                let q = IoQualification(f.qualification);
                match q.size() {
                    Some(size) => Exit::Io(IoExit {
                        port: q.port(),
                        size,
                        write: q.is_out(),
                        string: q.string(),
                        rep: q.rep(),
                        immediate: Some(q.immediate()),
                        address_size: None,
                        next_rip: None,
                    }),
                    None => other,
                }
            }
            R::Rdmsr => Exit::Msr {
                write: false,
                index: None,
            },
            R::Wrmsr => Exit::Msr {
                write: true,
                index: None,
            },
            R::RdmsrImmediate => Exit::Msr {
                write: false,
                index: Some(f.qualification as u32),
            },
            R::WrmsrnsImmediate => Exit::Msr {
                write: true,
                index: Some(f.qualification as u32),
            },
            R::Pause => Exit::Pause,
            R::Xsetbv => Exit::Xsetbv,
            R::Invd => Exit::Instruction(Insn::Invd),
            R::Wbinvd => Exit::Instruction(Insn::Wbinvd),
            R::Rdpmc => Exit::Instruction(Insn::Rdpmc),
            R::Monitor => Exit::Instruction(Insn::Monitor),
            R::Mwait => Exit::Instruction(Insn::Mwait),
            R::Rdtscp => Exit::Instruction(Insn::Rdtscp),
            R::PreemptionTimer => Exit::PreemptionTimer,
            R::EptViolation => {
                let q = EptViolation::from_qualification(f.qualification);
                Exit::NestedPageFault {
                    gpa: f.guest_physical,
                    access: NestedAccess {
                        read: q.contains(EptViolation::READ),
                        write: q.contains(EptViolation::WRITE),
                        execute: q.contains(EptViolation::FETCH),
                        present: q.present(),
                        during_walk: q.translated_access().map(|translated| !translated),
                        guest_linear: q
                            .contains(EptViolation::GUEST_LINEAR_VALID)
                            .then_some(f.guest_linear),
                        raw: f.qualification,
                    },
                }
            }
            _ => other,
        }
    }

    /// Decode an SVM exit from the VMCB fields. Never panics; see [`Exit`].
    pub fn from_svm(f: &SvmExitFields) -> Exit {
        let other = Exit::Other {
            vendor: Vendor::Amd,
            code: f.exitcode,
        };
        let Ok(code) = SvmExitCode::from_raw(f.exitcode) else {
            return other;
        };
        use SvmExitCode as C;
        let insn = |i| Exit::VirtualizationInstruction(i);
        let gpr = CrAccessInfo(f.exitinfo1).gpr();
        match code {
            C::Vmmcall => Exit::Hypercall,
            C::Cpuid => Exit::Cpuid,
            C::Hlt | C::IdleHlt => Exit::Hlt,
            C::Intr => Exit::ExternalInterrupt,
            C::Nmi => Exit::Nmi,
            C::Vintr => Exit::InterruptWindow,
            C::Init => Exit::Init,
            C::Pause => Exit::Pause,
            C::Xsetbv => Exit::Xsetbv,
            C::Shutdown => Exit::Shutdown,
            C::CrRead(cr) => Exit::ControlRegister {
                cr,
                write: false,
                gpr,
            },
            C::CrWrite(cr) => Exit::ControlRegister {
                cr,
                write: true,
                gpr,
            },
            C::Cr0SelectiveWrite => Exit::ControlRegister {
                cr: 0,
                write: true,
                gpr,
            },
            C::Exception(vector) => Exit::Exception {
                vector,
                error_code: svm::exception_has_error_code(vector).then_some(f.exitinfo1 as u32),
                fault_address: (vector == 14).then_some(f.exitinfo2),
                dr6: None,
            },
            C::Ioio => {
                let info = IoioInfo(f.exitinfo1);
                match info.size() {
                    Some(size) => Exit::Io(IoExit {
                        port: info.port(),
                        size,
                        write: info.is_out(),
                        string: info.string(),
                        rep: info.rep(),
                        immediate: None,
                        address_size: info.address_size(),
                        next_rip: Some(f.exitinfo2),
                    }),
                    None => other,
                }
            }
            C::Msr => match svm::msr_is_write(f.exitinfo1) {
                Some(write) => Exit::Msr { write, index: None },
                None => other,
            },
            C::Npf => {
                let e = NpfErrorCode::from_exitinfo1(f.exitinfo1);
                let write = e.contains(NpfErrorCode::WRITE);
                let execute = e.contains(NpfErrorCode::FETCH);
                Exit::NestedPageFault {
                    gpa: f.exitinfo2,
                    access: NestedAccess {
                        read: !write && !execute,
                        write,
                        execute,
                        present: e.contains(NpfErrorCode::PRESENT),
                        during_walk: e.during_walk(),
                        guest_linear: None,
                        raw: f.exitinfo1,
                    },
                }
            }
            C::Vmrun => insn(VirtInsn::Vmrun),
            C::Vmload => insn(VirtInsn::Vmload),
            C::Vmsave => insn(VirtInsn::Vmsave),
            C::Stgi => insn(VirtInsn::Stgi),
            C::Clgi => insn(VirtInsn::Clgi),
            C::Skinit => insn(VirtInsn::Skinit),
            C::Invlpga => insn(VirtInsn::Invlpga),
            C::Invd => Exit::Instruction(Insn::Invd),
            C::Wbinvd => Exit::Instruction(Insn::Wbinvd),
            C::Rdpmc => Exit::Instruction(Insn::Rdpmc),
            C::Monitor => Exit::Instruction(Insn::Monitor),
            C::Mwait | C::MwaitConditional => Exit::Instruction(Insn::Mwait),
            C::Rdtscp => Exit::Instruction(Insn::Rdtscp),
            C::Rdpru => Exit::Instruction(Insn::Rdpru),
            C::Invalid | C::Busy | C::IdleRequired | C::InvalidPmc => Exit::EntryFailure {
                vendor: Vendor::Amd,
                raw: f.exitcode,
                qualification: f.exitinfo1,
            },
            _ => other,
        }
    }

    /// A short readable name for logs and "unhandled exit" diagnostics.
    /// For [`Exit::Other`] and [`Exit::EntryFailure`] it is the vendor's
    /// own name of the raw code ([`vendor_code_name`]).
    pub fn name(&self) -> &'static str {
        match *self {
            Exit::Hypercall => "hypercall",
            Exit::Cpuid => "CPUID",
            Exit::Io(_) => "port I/O",
            Exit::Msr { write: false, .. } => "RDMSR",
            Exit::Msr { write: true, .. } => "WRMSR",
            Exit::Hlt => "HLT",
            Exit::NestedPageFault { .. } => "nested page fault",
            Exit::Exception { .. } => "exception",
            Exit::Nmi => "NMI",
            Exit::ExternalInterrupt => "external interrupt",
            Exit::InterruptWindow => "interrupt window",
            Exit::Init => "INIT signal",
            Exit::ControlRegister { .. } => "control-register access",
            Exit::Xsetbv => "XSETBV",
            Exit::Pause => "PAUSE",
            Exit::Shutdown => "shutdown",
            Exit::EntryFailure {
                vendor: Vendor::Intel,
                raw,
                ..
            } => vendor_code_name(Vendor::Intel, raw & 0xffff),
            Exit::EntryFailure {
                vendor: Vendor::Amd,
                raw,
                ..
            } => vendor_code_name(Vendor::Amd, raw),
            Exit::VirtualizationInstruction(i) => i.name(),
            Exit::Instruction(i) => i.name(),
            Exit::PreemptionTimer => "VMX-preemption timer",
            Exit::Other { vendor, code } => vendor_code_name(vendor, code),
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Exit::Io(io) => write!(
                f,
                "{}{} port {:#x}, {} byte(s)",
                if io.rep { "REP " } else { "" },
                match (io.write, io.string) {
                    (true, true) => "OUTS",
                    (true, false) => "OUT",
                    (false, true) => "INS",
                    (false, false) => "IN",
                },
                io.port,
                io.size
            ),
            Exit::Msr {
                write,
                index: Some(i),
            } => {
                write!(f, "{} {i:#x}", if write { "WRMSR" } else { "RDMSR" })
            }
            Exit::NestedPageFault { gpa, access } => write!(
                f,
                "nested page fault at GPA {gpa:#x} ({}{}{}, raw {:#x})",
                if access.write {
                    "write"
                } else if access.execute {
                    "fetch"
                } else {
                    "read"
                },
                if access.present {
                    ", permission"
                } else {
                    ", not present"
                },
                match access.during_walk {
                    Some(true) => ", during guest page walk",
                    _ => "",
                },
                access.raw
            ),
            Exit::Exception {
                vector,
                error_code,
                fault_address,
                ..
            } => {
                write!(f, "exception {vector}")?;
                if let Some(e) = error_code {
                    write!(f, ", error code {e:#x}")?;
                }
                if let Some(a) = fault_address {
                    write!(f, ", address {a:#x}")?;
                }
                Ok(())
            }
            Exit::ControlRegister { cr, write, gpr } => {
                write!(f, "{} CR{cr}", if write { "write" } else { "read" })?;
                if let Some(g) = gpr {
                    write!(f, " via GPR {g}")?;
                }
                Ok(())
            }
            Exit::EntryFailure {
                vendor: Vendor::Intel,
                raw,
                qualification,
            } => match vmx::diagnose_entry_failure(raw as u32, qualification) {
                Some(d) => write!(f, "{d}"),
                None => write!(f, "VM entry failed (exit reason {raw:#x})"),
            },
            Exit::EntryFailure {
                vendor: Vendor::Amd,
                raw,
                qualification,
            } => write!(
                f,
                "VMRUN failed: {} ({}), EXITINFO1 {qualification:#x}",
                self.name(),
                raw as i64
            ),
            Exit::Other {
                vendor: Vendor::Intel,
                code,
            } => {
                write!(f, "{} (Intel VMX exit reason {code})", self.name())
            }
            Exit::Other {
                vendor: Vendor::Amd,
                code,
            } => {
                write!(f, "{} (AMD SVM exit code {code:#x})", self.name())
            }
            _ => f.write_str(self.name()),
        }
    }
}

/// DR6 bits that always read 1 (Intel SDM Vol. 3A §19.2.3).
const DR6_FIXED_ONES: u64 = 0xFFFF_0FF0;
/// B0-B3, BD and BS: the bits of a VMX `#DB` exit qualification in DR6's
/// format (Intel SDM Vol. 3C §28.2.1, Table 28-1).
const DR6_EXIT_BITS: u64 = 0x600F;

/// The vendor's raw exit, kept for diagnostics: a VMM reports it when it
/// stops on an exit it does not handle, and acts on [`VmExit::exit`]
/// instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RawExit {
    /// Who reported it.
    pub vendor: Vendor,
    /// VMX: the full exit-reason field; SVM: EXITCODE.
    pub code: u64,
    /// VMX: the exit qualification; SVM: EXITINFO1.
    pub info1: u64,
    /// VMX: the guest-physical address; SVM: EXITINFO2.
    pub info2: u64,
}

/// A VM exit as a VMM's run loop acts on it, without a vendor field: the
/// decoded [`Exit`], the length of the instruction that caused it, and the
/// [`RawExit`] for diagnostics. A backend builds it right after the exit
/// ([`VmExit::from_vmx`], [`VmExit::from_svm`]); cloud-hypervisor's
/// `VmExit` has the same role.
///
/// ```
/// use vmexit::{Exit, SvmExitFields, VmExit};
///
/// // CPUID (EXITCODE 0x72) at RIP 0x1000 on a CPU without NRIPS: the
/// // length is CPUID's (0F A2).
/// let e = VmExit::from_svm(&SvmExitFields { exitcode: 0x72, ..Default::default() }, 0x1000, None);
/// assert_eq!((e.exit, e.insn_len), (Exit::Cpuid, 2));
/// // With NRIPS the processor says where the next instruction is.
/// let e = VmExit::from_svm(&SvmExitFields { exitcode: 0x72, ..Default::default() }, 0x1000, Some(0x1003));
/// assert_eq!(e.insn_len, 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VmExit {
    /// What happened.
    pub exit: Exit,
    /// For an exit an instruction caused (hypercall, CPUID, port I/O, MSR,
    /// `MOV` CR, [`Exit::Instruction`], ...): its length in bytes, always
    /// in `1..=15`, so that the guest's next RIP is `rip + insn_len`. VMX:
    /// the VM-exit instruction-length field ([`vmx_insn_len`]). SVM: the
    /// next RIP the processor saved (IOIO: EXITINFO2; others: nRIP, with
    /// NRIPS) minus RIP, or without one the intercepted instruction's
    /// encoded length ([`svm_known_len`]). For other exits (events, nested
    /// page faults, failed entries) it means nothing.
    pub insn_len: u64,
    /// The vendor's raw code and qualification.
    pub raw: RawExit,
}

impl VmExit {
    /// Decode a VMX exit from the VMCS fields. Never panics.
    #[inline]
    pub fn from_vmx(f: &VmxExitFields) -> VmExit {
        VmExit {
            exit: Exit::from_vmx(f),
            insn_len: vmx_insn_len(f.instruction_len),
            raw: RawExit {
                vendor: Vendor::Intel,
                code: u64::from(f.exit_reason),
                info1: f.qualification,
                info2: f.guest_physical,
            },
        }
    }

    /// Decode an SVM exit from the VMCB fields, with the guest's RIP and,
    /// when the processor has NRIPS (CPUID `Fn8000_000A_EDX[3]`), the nRIP
    /// it saved (VMCB offset `0xC8`; AMD APM Vol. 2 §15.7.1). `None` or
    /// `Some(0)`: no nRIP. Never panics.
    #[inline]
    pub fn from_svm(f: &SvmExitFields, rip: u64, nrip: Option<u64>) -> VmExit {
        let exit = Exit::from_svm(f);
        // IOIO: EXITINFO2 is the next RIP, with or without NRIPS (APM
        // Vol. 2 §15.10.2).
        let next = match exit {
            Exit::Io(_) => Some(f.exitinfo2),
            _ => nrip.filter(|&n| n != 0),
        };
        let insn_len = match next.map(|n| n.wrapping_sub(rip)) {
            Some(len @ 1..=MAX_INSN_LEN) => len,
            _ => svm_known_len(&exit),
        };
        VmExit {
            exit,
            insn_len,
            raw: RawExit {
                vendor: Vendor::Amd,
                code: f.exitcode,
                info1: f.exitinfo1,
                info2: f.exitinfo2,
            },
        }
    }
}

/// The length of the instruction behind an SVM instruction intercept when
/// the processor saved no next RIP (no NRIPS, e.g. QEMU's TCG): the
/// instruction's encoding without prefixes (Intel SDM Vol. 2 / AMD APM
/// Vol. 3 opcode tables): `HLT` (`F4`) and `IN`/`OUT` with DX 1; `CPUID`
/// (`0F A2`), `RDMSR`/`WRMSR` (`0F 32`/`0F 30`), `INVD` (`0F 08`), `WBINVD`
/// (`0F 09`), `RDPMC` (`0F 33`) and `PAUSE` (`F3 90`) 2; `VMMCALL`,
/// `XSETBV`, `MONITOR(X)`, `MWAIT(X)`, `RDTSCP`, `RDPRU` (`0F 01 xx`) and
/// `MOV` CR (`0F 20`/`0F 22` /r) 3. Anything else: 3. A prefixed form
/// (`WBNOINVD` is `F3 0F 09`, `MOV CR8` needs REX or LOCK) is longer and
/// needs NRIPS to be stepped over exactly.
pub const fn svm_known_len(exit: &Exit) -> u64 {
    match exit {
        Exit::Hlt | Exit::Io(_) => 1,
        Exit::Cpuid
        | Exit::Msr { .. }
        | Exit::Pause
        | Exit::Instruction(Insn::Invd | Insn::Wbinvd | Insn::Rdpmc) => 2,
        _ => 3,
    }
}
