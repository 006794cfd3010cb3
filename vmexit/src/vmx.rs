//! Intel VMX exit information: basic exit reasons, the exit-reason field,
//! exit qualifications, event information, VM-instruction errors and
//! VM-entry failures.
//!
//! References are to the Intel 64 and IA-32 Architectures Software
//! Developer's Manual, Volume 3C (the 2024/2025 editions, where chapter 25
//! is "Virtual Machine Control Structures", 27 "VM Entries", 28 "VM Exits"
//! and 31 "VMX Instruction Reference"; older editions number these one
//! lower).
//!
//! All decoders are plain wrappers around the raw VMCS value: they never
//! fail, never panic, and keep the raw value so nothing is lost.

use crate::{UnknownReason, Vendor};
use bitflags::bitflags;
use core::fmt;

/// Generates [`VmxExitReason`] and its table functions from one list, so
/// the number, the variant and the SDM text cannot drift apart.
macro_rules! vmx_exit_reasons {
    ($($variant:ident = $num:literal => $text:literal,)*) => {
        /// A VMX basic exit reason: bits 15:0 of the exit-reason field.
        ///
        /// Every entry of Intel SDM Vol. 3C, Appendix C "VMX Basic Exit
        /// Reasons", Table C-1, from 0 (exception or NMI) to 85 (`WRMSRNS`
        /// with an immediate operand). Numbers 35, 38, 42 and 71 are
        /// unused by the SDM, and 82 and 83 are not assigned by any edition
        /// this crate knows; those, and anything above 85, decode as
        /// [`UnknownReason`] with the value kept.
        ///
        /// Each variant's documentation is the SDM's own description, which
        /// [`VmxExitReason::name`] also returns.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u16)]
        #[non_exhaustive]
        pub enum VmxExitReason {
            $(
                #[doc = $text]
                $variant = $num,
            )*
        }

        impl VmxExitReason {
            /// Every basic exit reason in this table, in numeric order.
            pub const ALL: &'static [VmxExitReason] = &[$(VmxExitReason::$variant,)*];

            /// Decode a basic exit reason. Unknown and reserved numbers are
            /// returned in the error, unchanged.
            pub const fn from_raw(raw: u16) -> Result<Self, UnknownReason> {
                match raw {
                    $($num => Ok(VmxExitReason::$variant),)*
                    _ => Err(UnknownReason { vendor: Vendor::Intel, raw: raw as u64 }),
                }
            }

            /// The SDM's description of this exit reason (Table C-1).
            pub const fn name(self) -> &'static str {
                match self {
                    $(VmxExitReason::$variant => $text,)*
                }
            }
        }
    };
}

vmx_exit_reasons! {
    ExceptionOrNmi = 0 => "Exception or non-maskable interrupt (NMI)",
    ExternalInterrupt = 1 => "External interrupt",
    TripleFault = 2 => "Triple fault",
    InitSignal = 3 => "INIT signal",
    StartupIpi = 4 => "Start-up IPI (SIPI)",
    IoSmi = 5 => "I/O system-management interrupt (SMI)",
    OtherSmi = 6 => "Other SMI",
    InterruptWindow = 7 => "Interrupt window",
    NmiWindow = 8 => "NMI window",
    TaskSwitch = 9 => "Task switch",
    Cpuid = 10 => "CPUID",
    Getsec = 11 => "GETSEC",
    Hlt = 12 => "HLT",
    Invd = 13 => "INVD",
    Invlpg = 14 => "INVLPG",
    Rdpmc = 15 => "RDPMC",
    Rdtsc = 16 => "RDTSC",
    Rsm = 17 => "RSM",
    Vmcall = 18 => "VMCALL",
    Vmclear = 19 => "VMCLEAR",
    Vmlaunch = 20 => "VMLAUNCH",
    Vmptrld = 21 => "VMPTRLD",
    Vmptrst = 22 => "VMPTRST",
    Vmread = 23 => "VMREAD",
    Vmresume = 24 => "VMRESUME",
    Vmwrite = 25 => "VMWRITE",
    Vmxoff = 26 => "VMXOFF",
    Vmxon = 27 => "VMXON",
    ControlRegisterAccess = 28 => "Control-register accesses",
    MovDr = 29 => "MOV DR",
    IoInstruction = 30 => "I/O instruction",
    Rdmsr = 31 => "RDMSR",
    Wrmsr = 32 => "WRMSR",
    EntryFailureGuestState = 33 => "VM-entry failure due to invalid guest state",
    EntryFailureMsrLoading = 34 => "VM-entry failure due to MSR loading",
    Mwait = 36 => "MWAIT",
    MonitorTrapFlag = 37 => "Monitor trap flag",
    Monitor = 39 => "MONITOR",
    Pause = 40 => "PAUSE",
    EntryFailureMachineCheck = 41 => "VM-entry failure due to machine-check event",
    TprBelowThreshold = 43 => "TPR below threshold",
    ApicAccess = 44 => "APIC access",
    VirtualizedEoi = 45 => "Virtualized EOI",
    GdtrIdtrAccess = 46 => "Access to GDTR or IDTR",
    LdtrTrAccess = 47 => "Access to LDTR or TR",
    EptViolation = 48 => "EPT violation",
    EptMisconfiguration = 49 => "EPT misconfiguration",
    Invept = 50 => "INVEPT",
    Rdtscp = 51 => "RDTSCP",
    PreemptionTimer = 52 => "VMX-preemption timer expired",
    Invvpid = 53 => "INVVPID",
    Wbinvd = 54 => "WBINVD or WBNOINVD",
    Xsetbv = 55 => "XSETBV",
    ApicWrite = 56 => "APIC write",
    Rdrand = 57 => "RDRAND",
    Invpcid = 58 => "INVPCID",
    Vmfunc = 59 => "VMFUNC",
    Encls = 60 => "ENCLS",
    Rdseed = 61 => "RDSEED",
    PmlFull = 62 => "Page-modification log full",
    Xsaves = 63 => "XSAVES",
    Xrstors = 64 => "XRSTORS",
    Pconfig = 65 => "PCONFIG",
    SppEvent = 66 => "SPP-related event",
    Umwait = 67 => "UMWAIT",
    Tpause = 68 => "TPAUSE",
    Loadiwkey = 69 => "LOADIWKEY",
    Enclv = 70 => "ENCLV",
    EnqcmdPasidFailure = 72 => "ENQCMD PASID translation failure",
    EnqcmdsPasidFailure = 73 => "ENQCMDS PASID translation failure",
    BusLock = 74 => "Bus lock",
    InstructionTimeout = 75 => "Instruction timeout (notify VM exit)",
    Seamcall = 76 => "SEAMCALL",
    Tdcall = 77 => "TDCALL",
    Rdmsrlist = 78 => "RDMSRLIST",
    Wrmsrlist = 79 => "WRMSRLIST",
    Urdmsr = 80 => "URDMSR",
    Uwrmsr = 81 => "UWRMSR",
    RdmsrImmediate = 84 => "RDMSR with an immediate operand",
    WrmsrnsImmediate = 85 => "WRMSRNS with an immediate operand",
}

impl VmxExitReason {
    /// The basic exit reason number.
    pub const fn raw(self) -> u16 {
        self as u16
    }

    /// Whether this basic reason is one of the three VM-entry failures
    /// (33, 34, 41), which the processor reports with bit 31 of the
    /// exit-reason field set.
    pub const fn is_entry_failure(self) -> bool {
        matches!(
            self,
            VmxExitReason::EntryFailureGuestState
                | VmxExitReason::EntryFailureMsrLoading
                | VmxExitReason::EntryFailureMachineCheck
        )
    }
}

impl TryFrom<u16> for VmxExitReason {
    type Error = UnknownReason;

    fn try_from(raw: u16) -> Result<Self, UnknownReason> {
        VmxExitReason::from_raw(raw)
    }
}

/// A basic exit reason given as `u32`. Values above `0xFFFF` are not basic
/// reasons (pass a full exit-reason field through [`ExitReasonField`]) and
/// decode as [`UnknownReason`] with the whole value kept.
impl TryFrom<u32> for VmxExitReason {
    type Error = UnknownReason;

    fn try_from(raw: u32) -> Result<Self, UnknownReason> {
        match u16::try_from(raw) {
            Ok(basic) => VmxExitReason::from_raw(basic),
            Err(_) => Err(UnknownReason {
                vendor: Vendor::Intel,
                raw: u64::from(raw),
            }),
        }
    }
}

impl From<VmxExitReason> for u16 {
    fn from(r: VmxExitReason) -> u16 {
        r.raw()
    }
}

impl From<VmxExitReason> for u32 {
    fn from(r: VmxExitReason) -> u32 {
        u32::from(r.raw())
    }
}

impl fmt::Display for VmxExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (exit reason {})", self.name(), self.raw())
    }
}

/// The 32-bit VMCS exit-reason field (encoding `0x4402`).
///
/// Intel SDM Vol. 3C, §25.9.1 "Basic VM-Exit Information", table "Format
/// of Exit Reason":
///
/// | bits  | meaning                                                        |
/// |-------|----------------------------------------------------------------|
/// | 15:0  | basic exit reason ([`VmxExitReason`])                          |
/// | 16    | always 0                                                       |
/// | 26    | a bus lock was asserted while executing the instruction (bus-lock detection) |
/// | 27    | the VM exit was incident to enclave mode (SGX)                 |
/// | 28    | pending MTF VM exit (SMM VM exits only)                        |
/// | 29    | VM exit from VMX root operation (SMM VM exits only)            |
/// | 31    | VM-entry failure (0 = true VM exit)                            |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ExitReasonField(pub u32);

/// Another name for [`ExitReasonField`]: the decoded exit-reason field.
pub type VmxExitInfo = ExitReasonField;

impl ExitReasonField {
    /// Bit 26: bus lock detected.
    pub const BUS_LOCK_DETECTED: u32 = 1 << 26;
    /// Bit 27: exit incident to enclave mode.
    pub const ENCLAVE_MODE: u32 = 1 << 27;
    /// Bit 28: pending MTF VM exit.
    pub const PENDING_MTF: u32 = 1 << 28;
    /// Bit 29: VM exit from VMX root operation.
    pub const FROM_VMX_ROOT: u32 = 1 << 29;
    /// Bit 31: VM-entry failure.
    pub const ENTRY_FAILURE: u32 = 1 << 31;

    /// Wrap a raw exit-reason field.
    pub const fn new(raw: u32) -> Self {
        ExitReasonField(raw)
    }

    /// The raw field.
    pub const fn raw(self) -> u32 {
        self.0
    }

    /// Bits 15:0, the basic exit reason number.
    pub const fn basic(self) -> u16 {
        (self.0 & 0xffff) as u16
    }

    /// The basic exit reason, decoded.
    pub const fn reason(self) -> Result<VmxExitReason, UnknownReason> {
        VmxExitReason::from_raw(self.basic())
    }

    /// Bit 26: a bus lock was asserted by the instruction (or event) that
    /// led to the exit.
    pub const fn bus_lock_detected(self) -> bool {
        self.0 & Self::BUS_LOCK_DETECTED != 0
    }

    /// Bit 27: the exit happened in, or was incident to, enclave mode.
    pub const fn enclave_mode(self) -> bool {
        self.0 & Self::ENCLAVE_MODE != 0
    }

    /// Bit 28: a monitor-trap-flag VM exit is pending (SMM VM exits).
    pub const fn pending_mtf(self) -> bool {
        self.0 & Self::PENDING_MTF != 0
    }

    /// Bit 29: the exit came from VMX root operation (SMM VM exits).
    pub const fn from_vmx_root(self) -> bool {
        self.0 & Self::FROM_VMX_ROOT != 0
    }

    /// Bit 31: VM entry failed (basic reason 33, 34 or 41); the guest did
    /// not run.
    pub const fn entry_failure(self) -> bool {
        self.0 & Self::ENTRY_FAILURE != 0
    }
}

impl From<u32> for ExitReasonField {
    fn from(raw: u32) -> Self {
        ExitReasonField(raw)
    }
}

impl fmt::Display for ExitReasonField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason() {
            Ok(r) => write!(f, "{}", r.name())?,
            Err(_) => write!(f, "unknown exit reason")?,
        }
        write!(f, " ({}, field {:#010x}", self.basic(), self.0)?;
        if self.entry_failure() {
            f.write_str(", VM-entry failure")?;
        }
        if self.enclave_mode() {
            f.write_str(", enclave mode")?;
        }
        if self.bus_lock_detected() {
            f.write_str(", bus lock")?;
        }
        if self.pending_mtf() {
            f.write_str(", pending MTF")?;
        }
        if self.from_vmx_root() {
            f.write_str(", from VMX root")?;
        }
        f.write_str(")")
    }
}

/// Exit qualification for I/O instructions (basic reason 30).
///
/// Intel SDM Vol. 3C, §28.2.1, Table 28-5 "Exit Qualification for I/O
/// Instructions":
///
/// | bits  | meaning                                                  |
/// |-------|----------------------------------------------------------|
/// | 2:0   | size of access: 0 = 1 byte, 1 = 2 bytes, 3 = 4 bytes     |
/// | 3     | direction: 0 = OUT, 1 = IN                               |
/// | 4     | string instruction (INS/OUTS)                            |
/// | 5     | REP prefixed                                             |
/// | 6     | operand encoding: 0 = DX, 1 = immediate                  |
/// | 31:16 | port number                                              |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct IoQualification(pub u64);

impl IoQualification {
    /// Access size in bytes (1, 2 or 4); `None` for the encodings the SDM
    /// does not use (2 and 4..=7).
    pub const fn size(self) -> Option<u8> {
        match self.0 & 0b111 {
            0 => Some(1),
            1 => Some(2),
            3 => Some(4),
            _ => None,
        }
    }

    /// Bit 3: `IN`/`INS` (the guest reads the port).
    pub const fn is_in(self) -> bool {
        self.0 & (1 << 3) != 0
    }

    /// `OUT`/`OUTS` (the guest writes the port): bit 3 clear.
    pub const fn is_out(self) -> bool {
        !self.is_in()
    }

    /// Bit 4: a string instruction (`INS`/`OUTS`).
    pub const fn string(self) -> bool {
        self.0 & (1 << 4) != 0
    }

    /// Bit 5: `REP` prefixed.
    pub const fn rep(self) -> bool {
        self.0 & (1 << 5) != 0
    }

    /// Bit 6: the port was an immediate operand (else it was in DX).
    pub const fn immediate(self) -> bool {
        self.0 & (1 << 6) != 0
    }

    /// Bits 31:16: the port number.
    pub const fn port(self) -> u16 {
        ((self.0 >> 16) & 0xffff) as u16
    }
}

/// How a control register was accessed (bits 5:4 of the CR-access exit
/// qualification).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrAccessType {
    /// 0: `MOV` to CR (the guest writes the register).
    MovToCr,
    /// 1: `MOV` from CR (the guest reads the register).
    MovFromCr,
    /// 2: `CLTS` (clears CR0.TS).
    Clts,
    /// 3: `LMSW` (writes CR0 bits 3:0).
    Lmsw,
}

/// Exit qualification for control-register accesses (basic reason 28).
///
/// Intel SDM Vol. 3C, §28.2.1, Table 28-3 "Exit Qualification for
/// Control-Register Accesses":
///
/// | bits  | meaning                                                   |
/// |-------|-----------------------------------------------------------|
/// | 3:0   | control register number (0 for CLTS and LMSW)             |
/// | 5:4   | access type ([`CrAccessType`])                            |
/// | 6     | LMSW operand type: 0 = register, 1 = memory               |
/// | 11:8  | for MOV CR, the general-purpose register (0 = RAX ... 15 = R15) |
/// | 31:16 | for LMSW, the LMSW source data                            |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CrQualification(pub u64);

impl CrQualification {
    /// Bits 3:0: the control register number.
    pub const fn cr(self) -> u8 {
        (self.0 & 0xf) as u8
    }

    /// Bits 5:4: the access type.
    pub const fn access_type(self) -> CrAccessType {
        match (self.0 >> 4) & 0b11 {
            0 => CrAccessType::MovToCr,
            1 => CrAccessType::MovFromCr,
            2 => CrAccessType::Clts,
            _ => CrAccessType::Lmsw,
        }
    }

    /// Bit 6: the LMSW operand was in memory (else in a register).
    pub const fn lmsw_memory_operand(self) -> bool {
        self.0 & (1 << 6) != 0
    }

    /// Bits 11:8: the general-purpose register of a `MOV` CR, in the x86
    /// encoding order (0 = RAX, 1 = RCX, 2 = RDX, 3 = RBX, 4 = RSP, ...).
    pub const fn gpr(self) -> u8 {
        ((self.0 >> 8) & 0xf) as u8
    }

    /// Bits 31:16: the `LMSW` source data.
    pub const fn lmsw_source(self) -> u16 {
        ((self.0 >> 16) & 0xffff) as u16
    }
}

bitflags! {
    /// Exit qualification for EPT violations (basic reason 48).
    ///
    /// Intel SDM Vol. 3C, §28.2.1, Table 28-7 "Exit Qualification for EPT
    /// Violations". Bits 3..=5 report the permissions of the
    /// guest-physical address's EPT translation (all clear: not present).
    /// Bits the table does not define are kept
    /// ([`bitflags::Flags::from_bits_retain`]).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct EptViolation: u64 {
        /// Bit 0: the access was a data read.
        const READ = 1 << 0;
        /// Bit 1: the access was a data write.
        const WRITE = 1 << 1;
        /// Bit 2: the access was an instruction fetch.
        const FETCH = 1 << 2;
        /// Bit 3: the guest-physical address was readable.
        const READABLE = 1 << 3;
        /// Bit 4: the guest-physical address was writable.
        const WRITABLE = 1 << 4;
        /// Bit 5: the guest-physical address was executable (for
        /// supervisor-mode linear addresses when mode-based execute
        /// control is on).
        const EXECUTABLE = 1 << 5;
        /// Bit 6: executable for user-mode linear addresses (mode-based
        /// execute control only).
        const USER_EXECUTABLE = 1 << 6;
        /// Bit 7: the guest-linear-address VMCS field is valid.
        const GUEST_LINEAR_VALID = 1 << 7;
        /// Bit 8 (meaningful when bit 7 is set): 1 = the access was to the
        /// translated linear address, 0 = to a guest paging-structure
        /// entry during the walk.
        const TRANSLATED_ACCESS = 1 << 8;
        /// Bit 9 (advanced VM-exit information): the linear address is a
        /// user-mode address.
        const USER_LINEAR = 1 << 9;
        /// Bit 10 (advanced VM-exit information): the linear address is
        /// writable in the guest's paging structures.
        const WRITABLE_LINEAR = 1 << 10;
        /// Bit 11 (advanced VM-exit information): the linear address is
        /// execute-disable in the guest's paging structures.
        const EXECUTE_DISABLE_LINEAR = 1 << 11;
        /// Bit 12: NMI unblocking due to IRET.
        const NMI_UNBLOCKING = 1 << 12;
        /// Bit 13: the access was a shadow-stack access.
        const SHADOW_STACK = 1 << 13;
        /// Bit 14: the supervisor shadow-stack bit of the EPT entry was set.
        const SUPERVISOR_SHADOW_STACK = 1 << 14;
        /// Bit 15: the access was part of guest-paging verification.
        const GUEST_PAGING_VERIFICATION = 1 << 15;
        /// Bit 16: the access was asynchronous to instruction execution
        /// (e.g. a trace-output access).
        const ASYNCHRONOUS = 1 << 16;
    }
}

impl EptViolation {
    /// Decode a raw exit qualification, keeping every bit.
    pub const fn from_qualification(qualification: u64) -> Self {
        EptViolation::from_bits_retain(qualification)
    }

    /// Whether the guest-physical address had any EPT translation
    /// (readable, writable or executable); `false` means not present.
    pub const fn present(self) -> bool {
        self.intersects(
            EptViolation::READABLE
                .union(EptViolation::WRITABLE)
                .union(EptViolation::EXECUTABLE)
                .union(EptViolation::USER_EXECUTABLE),
        )
    }

    /// When the guest-linear address is valid (bit 7): `Some(true)` if the
    /// access was to the translated linear address, `Some(false)` if it was
    /// a guest paging-structure access. `None` when bit 7 is clear.
    pub const fn translated_access(self) -> Option<bool> {
        if self.contains(EptViolation::GUEST_LINEAR_VALID) {
            Some(self.contains(EptViolation::TRANSLATED_ACCESS))
        } else {
            None
        }
    }
}

/// The type of a vectored event (bits 10:8 of the interruption-information
/// fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// 0: external interrupt.
    ExternalInterrupt,
    /// 2: non-maskable interrupt.
    Nmi,
    /// 3: hardware exception (e.g. #PF, #GP).
    HardwareException,
    /// 4: software interrupt (`INT n`).
    SoftwareInterrupt,
    /// 5: privileged software exception (`INT1`/ICEBP).
    PrivilegedSoftwareException,
    /// 6: software exception (`INT3`, `INTO`).
    SoftwareException,
    /// 7: other event (VM-entry injection only, e.g. pending MTF).
    Other,
    /// 1: reserved.
    Reserved,
}

impl EventType {
    /// Decode the 3-bit type value (only bits 2:0 of `raw` are used).
    pub const fn from_raw(raw: u8) -> Self {
        match raw & 0b111 {
            0 => EventType::ExternalInterrupt,
            2 => EventType::Nmi,
            3 => EventType::HardwareException,
            4 => EventType::SoftwareInterrupt,
            5 => EventType::PrivilegedSoftwareException,
            6 => EventType::SoftwareException,
            7 => EventType::Other,
            _ => EventType::Reserved,
        }
    }

    /// Whether the event is an exception (hardware, software, or
    /// privileged software).
    pub const fn is_exception(self) -> bool {
        matches!(
            self,
            EventType::HardwareException
                | EventType::SoftwareException
                | EventType::PrivilegedSoftwareException
        )
    }
}

/// The VM-exit interruption-information field (encoding `0x4404`) or the
/// IDT-vectoring information field (encoding `0x4408`); both have this
/// format.
///
/// Intel SDM Vol. 3C, §25.9.2 "Information for VM Exits Due to Vectored
/// Events" and §25.9.3 "Information for VM Exits That Occur During Event
/// Delivery" (tables "Format of the VM-Exit Interruption-Information
/// Field" and "Format of the IDT-Vectoring Information Field"):
///
/// | bits  | meaning                                                    |
/// |-------|------------------------------------------------------------|
/// | 7:0   | vector                                                     |
/// | 10:8  | type ([`EventType`])                                       |
/// | 11    | error code valid (the error code is in the companion field) |
/// | 12    | NMI unblocking due to IRET (undefined for IDT-vectoring)   |
/// | 31    | valid                                                      |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct InterruptionInfo(pub u32);

/// The IDT-vectoring information field has the interruption-information
/// format (bit 12 is undefined there).
pub type IdtVectoringInfo = InterruptionInfo;

impl InterruptionInfo {
    /// Bits 7:0: the vector.
    pub const fn vector(self) -> u8 {
        (self.0 & 0xff) as u8
    }

    /// Bits 10:8: the event type.
    pub const fn event_type(self) -> EventType {
        EventType::from_raw(((self.0 >> 8) & 0b111) as u8)
    }

    /// Bit 11: an error code was delivered (read it from the VM-exit
    /// interruption error code or IDT-vectoring error code field).
    pub const fn error_code_valid(self) -> bool {
        self.0 & (1 << 11) != 0
    }

    /// Bit 12: NMI unblocking due to IRET (interruption information only).
    pub const fn nmi_unblocking(self) -> bool {
        self.0 & (1 << 12) != 0
    }

    /// Bit 31: the field is valid.
    pub const fn valid(self) -> bool {
        self.0 & (1 << 31) != 0
    }
}

/// Generates [`VmInstructionError`] from one list of (variant, number, SDM
/// text).
macro_rules! vm_instruction_errors {
    ($($variant:ident = $num:literal => $text:literal,)*) => {
        /// A VM-instruction error number: the VMCS field (encoding
        /// `0x4400`) that a VMX instruction ending in VMfailValid sets.
        ///
        /// Intel SDM Vol. 3C, §31.4 "VM Instruction Error Numbers",
        /// Table 31-1. Numbers 14, 21 and 27 are not used by the SDM.
        /// Each variant's documentation is the SDM text, which
        /// [`VmInstructionError::description`] also returns.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u32)]
        #[non_exhaustive]
        pub enum VmInstructionError {
            $(
                #[doc = $text]
                $variant = $num,
            )*
        }

        impl VmInstructionError {
            /// Every error number in the table, in numeric order.
            pub const ALL: &'static [VmInstructionError] = &[$(VmInstructionError::$variant,)*];

            /// Decode a VM-instruction error number; unknown numbers
            /// (including 0, "no error") are returned unchanged.
            pub const fn from_raw(raw: u32) -> Result<Self, u32> {
                match raw {
                    $($num => Ok(VmInstructionError::$variant),)*
                    _ => Err(raw),
                }
            }

            /// The SDM's description of the error (Table 31-1).
            pub const fn description(self) -> &'static str {
                match self {
                    $(VmInstructionError::$variant => $text,)*
                }
            }
        }
    };
}

vm_instruction_errors! {
    VmcallInVmxRoot = 1 => "VMCALL executed in VMX root operation",
    VmclearInvalidAddress = 2 => "VMCLEAR with invalid physical address",
    VmclearVmxonPointer = 3 => "VMCLEAR with VMXON pointer",
    VmlaunchNonClearVmcs = 4 => "VMLAUNCH with non-clear VMCS",
    VmresumeNonLaunchedVmcs = 5 => "VMRESUME with non-launched VMCS",
    VmresumeAfterVmxoff = 6 => "VMRESUME after VMXOFF (VMXOFF and VMXON between VMLAUNCH and VMRESUME)",
    EntryInvalidControlFields = 7 => "VM entry with invalid control field(s)",
    EntryInvalidHostState = 8 => "VM entry with invalid host-state field(s)",
    VmptrldInvalidAddress = 9 => "VMPTRLD with invalid physical address",
    VmptrldVmxonPointer = 10 => "VMPTRLD with VMXON pointer",
    VmptrldBadRevision = 11 => "VMPTRLD with incorrect VMCS revision identifier",
    UnsupportedVmcsComponent = 12 => "VMREAD/VMWRITE from/to unsupported VMCS component",
    VmwriteReadOnlyComponent = 13 => "VMWRITE to read-only VMCS component",
    VmxonInVmxRoot = 15 => "VMXON executed in VMX root operation",
    EntryInvalidExecutiveVmcsPointer = 16 => "VM entry with invalid executive-VMCS pointer",
    EntryNonLaunchedExecutiveVmcs = 17 => "VM entry with non-launched executive VMCS",
    EntryExecutiveVmcsNotVmxon = 18 => "VM entry with executive-VMCS pointer not VMXON pointer (when attempting to deactivate the dual-monitor treatment of SMIs and SMM)",
    VmcallNonClearVmcs = 19 => "VMCALL with non-clear VMCS (when attempting to activate the dual-monitor treatment of SMIs and SMM)",
    VmcallInvalidExitControls = 20 => "VMCALL with invalid VM-exit control fields",
    VmcallBadMsegRevision = 22 => "VMCALL with incorrect MSEG revision identifier (when attempting to activate the dual-monitor treatment of SMIs and SMM)",
    VmxoffUnderDualMonitor = 23 => "VMXOFF under dual-monitor treatment of SMIs and SMM",
    VmcallInvalidSmmMonitorFeatures = 24 => "VMCALL with invalid SMM-monitor features (when attempting to activate the dual-monitor treatment of SMIs and SMM)",
    EntryInvalidExecutiveControls = 25 => "VM entry with invalid VM-execution control fields in executive VMCS (when attempting to return from SMM)",
    EntryEventsBlockedByMovSs = 26 => "VM entry with events blocked by MOV SS",
    InvalidInveptInvvpidOperand = 28 => "Invalid operand to INVEPT/INVVPID",
}

impl VmInstructionError {
    /// The error number.
    pub const fn raw(self) -> u32 {
        self as u32
    }

    /// A hint for the VMM developer: where in the SDM to look.
    pub const fn hint(self) -> &'static str {
        match self {
            VmInstructionError::EntryInvalidControlFields => {
                "check the VM-execution, VM-exit and VM-entry controls against the \
                 capability MSRs (SDM Vol. 3C §27.2.1 \"Checks on VMX Controls\")"
            }
            VmInstructionError::EntryInvalidHostState => {
                "check the host-state area (SDM Vol. 3C §27.2.2 \"Checks on Host \
                 Control Registers, MSRs, and SSP\" and §27.2.3 \"Checks on Host \
                 Segment and Descriptor-Table Registers\")"
            }
            VmInstructionError::VmlaunchNonClearVmcs => {
                "the VMCS was already launched: use VMRESUME, or VMCLEAR it first"
            }
            VmInstructionError::VmresumeNonLaunchedVmcs => {
                "the VMCS was never launched: use VMLAUNCH"
            }
            VmInstructionError::VmptrldBadRevision => {
                "write IA32_VMX_BASIC[30:0] into the first dword of the VMCS region"
            }
            VmInstructionError::EntryEventsBlockedByMovSs => {
                "the guest interruptibility state has blocking by MOV SS set"
            }
            _ => "see SDM Vol. 3C §31.4 and the instruction's description",
        }
    }
}

impl TryFrom<u32> for VmInstructionError {
    type Error = u32;

    fn try_from(raw: u32) -> Result<Self, u32> {
        VmInstructionError::from_raw(raw)
    }
}

impl fmt::Display for VmInstructionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "VM-instruction error {}: {}",
            self.raw(),
            self.description()
        )
    }
}

/// The description of a raw VM-instruction error number, for logs:
/// the SDM text, `"no error"` for 0, `"unknown VM-instruction error"`
/// otherwise.
pub const fn vm_instruction_error_text(raw: u32) -> &'static str {
    match VmInstructionError::from_raw(raw) {
        Ok(e) => e.description(),
        Err(0) => "no error",
        Err(_) => "unknown VM-instruction error",
    }
}

/// What the exit qualification of basic reason 33 (VM-entry failure due to
/// invalid guest state) says.
///
/// Intel SDM Vol. 3C, §27.8 "VM-Entry Failures During or After Loading
/// Guest State": the qualification is 0 by default, 2 for a PDPTE loading
/// failure, 3 for an NMI injected into a guest blocking events by STI, and
/// 4 for an invalid VMCS link pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GuestStateProblem {
    /// 0: a check on the guest-state area failed (no further detail).
    GuestStateCheck,
    /// 2: loading the PDPTEs failed (PAE paging).
    PdpteLoading,
    /// 3: an NMI was to be injected while the guest blocks by STI.
    NmiInjection,
    /// 4: the VMCS link pointer is invalid.
    VmcsLinkPointer,
    /// Any other qualification, kept.
    Other(u64),
}

impl GuestStateProblem {
    /// Decode the exit qualification of a reason-33 entry failure.
    pub const fn from_qualification(q: u64) -> Self {
        match q {
            0 => GuestStateProblem::GuestStateCheck,
            2 => GuestStateProblem::PdpteLoading,
            3 => GuestStateProblem::NmiInjection,
            4 => GuestStateProblem::VmcsLinkPointer,
            other => GuestStateProblem::Other(other),
        }
    }
}

/// A VM-entry failure reported as a VM exit (exit-reason bit 31 set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryFailure {
    /// Basic reason 33: the guest-state area failed a check (SDM Vol. 3C
    /// §27.3.1 "Checks on the Guest State Area").
    InvalidGuestState(GuestStateProblem),
    /// Basic reason 34: loading the guest MSRs from the VM-entry MSR-load
    /// area failed (SDM Vol. 3C §27.4 "Loading MSRs"); the qualification is
    /// the 1-based index of the failing entry.
    MsrLoading {
        /// The 1-based index of the entry that failed.
        entry: u64,
    },
    /// Basic reason 41: a machine-check event occurred during VM entry
    /// (SDM Vol. 3C §27.9 "Machine-Check Events During VM Entry").
    MachineCheck,
    /// Bit 31 was set with another basic reason (not architectural).
    Other {
        /// The basic exit reason.
        basic: u16,
        /// The exit qualification.
        qualification: u64,
    },
}

/// Diagnose a VM-entry failure from the exit-reason field and the exit
/// qualification. `None` if bit 31 of `exit_reason` is clear (a true VM
/// exit, not a failure). The result prints a readable diagnosis.
pub const fn diagnose_entry_failure(exit_reason: u32, qualification: u64) -> Option<EntryFailure> {
    let field = ExitReasonField(exit_reason);
    if !field.entry_failure() {
        return None;
    }
    Some(match field.basic() {
        33 => EntryFailure::InvalidGuestState(GuestStateProblem::from_qualification(qualification)),
        34 => EntryFailure::MsrLoading {
            entry: qualification,
        },
        41 => EntryFailure::MachineCheck,
        basic => EntryFailure::Other {
            basic,
            qualification,
        },
    })
}

impl fmt::Display for EntryFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EntryFailure::InvalidGuestState(p) => {
                f.write_str("VM entry failed: invalid guest state (exit reason 33): ")?;
                match p {
                    GuestStateProblem::GuestStateCheck => f.write_str(
                        "a guest-state area check failed (SDM Vol. 3C §27.3.1: control \
                         registers, segment registers, RFLAGS, activity and \
                         interruptibility state)",
                    ),
                    GuestStateProblem::PdpteLoading => {
                        f.write_str("loading the guest PDPTEs failed (PAE paging)")
                    }
                    GuestStateProblem::NmiInjection => {
                        f.write_str("NMI injection into a guest blocking events by STI")
                    }
                    GuestStateProblem::VmcsLinkPointer => {
                        f.write_str("invalid VMCS link pointer (set it to all ones)")
                    }
                    GuestStateProblem::Other(q) => write!(f, "exit qualification {q:#x}"),
                }
            }
            EntryFailure::MsrLoading { entry } => write!(
                f,
                "VM entry failed: MSR loading (exit reason 34): VM-entry MSR-load entry {entry} \
                 (1-based) was rejected"
            ),
            EntryFailure::MachineCheck => {
                f.write_str("VM entry failed: machine-check event during VM entry (exit reason 41)")
            }
            EntryFailure::Other {
                basic,
                qualification,
            } => write!(
                f,
                "VM entry failed with non-architectural basic reason {basic} \
                 (qualification {qualification:#x})"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_round_trips() {
        for pair in VmxExitReason::ALL.windows(2) {
            assert!(pair[0].raw() < pair[1].raw());
        }
        for &r in VmxExitReason::ALL {
            assert_eq!(VmxExitReason::from_raw(r.raw()), Ok(r));
            assert!(!r.name().is_empty());
        }
        assert_eq!(VmxExitReason::ALL.len(), 80);
    }

    #[test]
    fn instruction_errors_round_trip() {
        for &e in VmInstructionError::ALL {
            assert_eq!(VmInstructionError::from_raw(e.raw()), Ok(e));
        }
        assert_eq!(VmInstructionError::ALL.len(), 25);
    }
}
