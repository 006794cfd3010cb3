//! AMD SVM exit information: the VMCB EXITCODE and the EXITINFO1/EXITINFO2
//! decoders.
//!
//! References are to the AMD64 Architecture Programmer's Manual, Volume 2:
//! System Programming (publication 24593), chapter 15 "Secure Virtual
//! Machine" and Appendix C "SVM Intercept Exit Codes".
//!
//! EXITCODE is a 64-bit VMCB field (offset `0x70`); the negative codes
//! (`VMEXIT_INVALID` = -1 ...) are its two's-complement values. All
//! decoders are total and keep the raw value.

use crate::{UnknownReason, Vendor};
use bitflags::bitflags;
use core::fmt;

/// An SVM exit code (VMCB EXITCODE).
///
/// Every entry of AMD APM Vol. 2, Appendix C "SVM Intercept Exit Codes",
/// Table C-1. The ranges keep their register, debug-register or vector
/// number: `CrRead(3)` is `VMEXIT_CR3_READ` (0x03). Codes the table does
/// not list decode as [`UnknownReason`] with the value kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SvmExitCode {
    /// 0x00-0x0F `VMEXIT_CR0_READ`..`VMEXIT_CR15_READ`: read of CRn
    /// (number in 0..=15).
    CrRead(u8),
    /// 0x10-0x1F `VMEXIT_CR0_WRITE`..`VMEXIT_CR15_WRITE`: write of CRn.
    CrWrite(u8),
    /// 0x20-0x2F `VMEXIT_DR0_READ`..`VMEXIT_DR15_READ`: read of DRn.
    DrRead(u8),
    /// 0x30-0x3F `VMEXIT_DR0_WRITE`..`VMEXIT_DR15_WRITE`: write of DRn.
    DrWrite(u8),
    /// 0x40-0x5F `VMEXIT_EXCP0`..`VMEXIT_EXCP31`: exception vector n
    /// (number in 0..=31).
    Exception(u8),
    /// 0x60 `VMEXIT_INTR`: physical INTR (maskable interrupt).
    Intr,
    /// 0x61 `VMEXIT_NMI`: physical NMI.
    Nmi,
    /// 0x62 `VMEXIT_SMI`: physical SMI.
    Smi,
    /// 0x63 `VMEXIT_INIT`: physical INIT.
    Init,
    /// 0x64 `VMEXIT_VINTR`: virtual INTR (interrupt window).
    Vintr,
    /// 0x65 `VMEXIT_CR0_SEL_WRITE`: write of CR0 that changed bits other
    /// than CR0.TS or CR0.MP.
    Cr0SelectiveWrite,
    /// 0x66 `VMEXIT_IDTR_READ`: read of IDTR.
    IdtrRead,
    /// 0x67 `VMEXIT_GDTR_READ`: read of GDTR.
    GdtrRead,
    /// 0x68 `VMEXIT_LDTR_READ`: read of LDTR.
    LdtrRead,
    /// 0x69 `VMEXIT_TR_READ`: read of TR.
    TrRead,
    /// 0x6A `VMEXIT_IDTR_WRITE`: write of IDTR.
    IdtrWrite,
    /// 0x6B `VMEXIT_GDTR_WRITE`: write of GDTR.
    GdtrWrite,
    /// 0x6C `VMEXIT_LDTR_WRITE`: write of LDTR.
    LdtrWrite,
    /// 0x6D `VMEXIT_TR_WRITE`: write of TR.
    TrWrite,
    /// 0x6E `VMEXIT_RDTSC`: RDTSC instruction.
    Rdtsc,
    /// 0x6F `VMEXIT_RDPMC`: RDPMC instruction.
    Rdpmc,
    /// 0x70 `VMEXIT_PUSHF`: PUSHF instruction.
    Pushf,
    /// 0x71 `VMEXIT_POPF`: POPF instruction.
    Popf,
    /// 0x72 `VMEXIT_CPUID`: CPUID instruction.
    Cpuid,
    /// 0x73 `VMEXIT_RSM`: RSM instruction.
    Rsm,
    /// 0x74 `VMEXIT_IRET`: IRET instruction.
    Iret,
    /// 0x75 `VMEXIT_SWINT`: software interrupt (INTn).
    Swint,
    /// 0x76 `VMEXIT_INVD`: INVD instruction.
    Invd,
    /// 0x77 `VMEXIT_PAUSE`: PAUSE instruction.
    Pause,
    /// 0x78 `VMEXIT_HLT`: HLT instruction.
    Hlt,
    /// 0x79 `VMEXIT_INVLPG`: INVLPG instruction.
    Invlpg,
    /// 0x7A `VMEXIT_INVLPGA`: INVLPGA instruction.
    Invlpga,
    /// 0x7B `VMEXIT_IOIO`: IN or OUT accessing protected port (EXITINFO1
    /// is decoded by [`IoioInfo`]).
    Ioio,
    /// 0x7C `VMEXIT_MSR`: RDMSR or WRMSR access to protected MSR.
    Msr,
    /// 0x7D `VMEXIT_TASK_SWITCH`: task switch.
    TaskSwitch,
    /// 0x7E `VMEXIT_FERR_FREEZE`: FP legacy handling enabled, and
    /// processor is frozen in an x87/mmx instruction waiting for an
    /// interrupt.
    FerrFreeze,
    /// 0x7F `VMEXIT_SHUTDOWN`: shutdown (e.g. triple fault).
    Shutdown,
    /// 0x80 `VMEXIT_VMRUN`: VMRUN instruction.
    Vmrun,
    /// 0x81 `VMEXIT_VMMCALL`: VMMCALL instruction.
    Vmmcall,
    /// 0x82 `VMEXIT_VMLOAD`: VMLOAD instruction.
    Vmload,
    /// 0x83 `VMEXIT_VMSAVE`: VMSAVE instruction.
    Vmsave,
    /// 0x84 `VMEXIT_STGI`: STGI instruction.
    Stgi,
    /// 0x85 `VMEXIT_CLGI`: CLGI instruction.
    Clgi,
    /// 0x86 `VMEXIT_SKINIT`: SKINIT instruction.
    Skinit,
    /// 0x87 `VMEXIT_RDTSCP`: RDTSCP instruction.
    Rdtscp,
    /// 0x88 `VMEXIT_ICEBP`: ICEBP instruction.
    Icebp,
    /// 0x89 `VMEXIT_WBINVD`: WBINVD or WBNOINVD instruction.
    Wbinvd,
    /// 0x8A `VMEXIT_MONITOR`: MONITOR or MONITORX instruction.
    Monitor,
    /// 0x8B `VMEXIT_MWAIT`: MWAIT or MWAITX instruction.
    Mwait,
    /// 0x8C `VMEXIT_MWAIT_CONDITIONAL`: MWAIT or MWAITX instruction, if
    /// monitor hardware is armed.
    MwaitConditional,
    /// 0x8D `VMEXIT_XSETBV`: XSETBV instruction.
    Xsetbv,
    /// 0x8E `VMEXIT_RDPRU`: RDPRU instruction.
    Rdpru,
    /// 0x8F `VMEXIT_EFER_WRITE_TRAP`: write of EFER MSR (occurs after
    /// guest instruction finishes).
    EferWriteTrap,
    /// 0x90-0x9F `VMEXIT_CR0_WRITE_TRAP`..`VMEXIT_CR15_WRITE_TRAP`: write
    /// of CRn (occurs after guest instruction finishes).
    CrWriteTrap(u8),
    /// 0xA0 `VMEXIT_INVLPGB`: INVLPGB instruction.
    Invlpgb,
    /// 0xA1 `VMEXIT_INVLPGB_ILLEGAL`: INVLPGB instruction with illegal
    /// operands.
    InvlpgbIllegal,
    /// 0xA2 `VMEXIT_INVPCID`: INVPCID instruction.
    Invpcid,
    /// 0xA3 `VMEXIT_MCOMMIT`: MCOMMIT instruction.
    Mcommit,
    /// 0xA4 `VMEXIT_TLBSYNC`: TLBSYNC instruction.
    Tlbsync,
    /// 0xA5 `VMEXIT_BUSLOCK`: bus lock while Bus Lock Threshold Counter
    /// is 0.
    Buslock,
    /// 0xA6 `VMEXIT_IDLE_HLT`: HLT instruction with no pending V_INTR or
    /// V_NMI.
    IdleHlt,
    /// 0x400 `VMEXIT_NPF`: nested paging fault (EXITINFO1 is decoded by
    /// [`NpfErrorCode`], EXITINFO2 is the guest-physical address).
    Npf,
    /// 0x401 `AVIC_INCOMPLETE_IPI`: AVIC — virtual IPI delivery not
    /// completed.
    AvicIncompleteIpi,
    /// 0x402 `AVIC_NOACCEL`: AVIC — attempted access by guest to vAPIC
    /// register not handled by AVIC hardware.
    AvicNoAccel,
    /// 0x403 `VMEXIT_VMGEXIT`: VMGEXIT instruction (SEV-ES).
    Vmgexit,
    /// -1 `VMEXIT_INVALID`: invalid guest state in VMCB (VMRUN failed).
    Invalid,
    /// -2 `VMEXIT_BUSY`: BUSY bit was set in the VMSA (VMRUN failed).
    Busy,
    /// -3 `VMEXIT_IDLE_REQUIRED`: the sibling thread is not in an idle
    /// state (VMRUN failed).
    IdleRequired,
    /// -4 `VMEXIT_INVALID_PMC`: invalid PMC state (VMRUN failed).
    InvalidPmc,
}

/// `VMEXIT_INVALID` (-1) as the raw 64-bit EXITCODE.
pub const VMEXIT_INVALID: u64 = u64::MAX;
/// `VMEXIT_BUSY` (-2) as the raw 64-bit EXITCODE.
pub const VMEXIT_BUSY: u64 = (-2_i64) as u64;
/// `VMEXIT_IDLE_REQUIRED` (-3) as the raw 64-bit EXITCODE.
pub const VMEXIT_IDLE_REQUIRED: u64 = (-3_i64) as u64;
/// `VMEXIT_INVALID_PMC` (-4) as the raw 64-bit EXITCODE.
pub const VMEXIT_INVALID_PMC: u64 = (-4_i64) as u64;

impl SvmExitCode {
    /// Decode a raw EXITCODE. Codes not in Table C-1 are returned in the
    /// error, unchanged.
    pub const fn from_raw(raw: u64) -> Result<Self, UnknownReason> {
        use SvmExitCode::*;
        let low4 = (raw & 0xf) as u8;
        Ok(match raw {
            0x00..=0x0f => CrRead(low4),
            0x10..=0x1f => CrWrite(low4),
            0x20..=0x2f => DrRead(low4),
            0x30..=0x3f => DrWrite(low4),
            0x40..=0x5f => Exception((raw & 0x1f) as u8),
            0x60 => Intr,
            0x61 => Nmi,
            0x62 => Smi,
            0x63 => Init,
            0x64 => Vintr,
            0x65 => Cr0SelectiveWrite,
            0x66 => IdtrRead,
            0x67 => GdtrRead,
            0x68 => LdtrRead,
            0x69 => TrRead,
            0x6a => IdtrWrite,
            0x6b => GdtrWrite,
            0x6c => LdtrWrite,
            0x6d => TrWrite,
            0x6e => Rdtsc,
            0x6f => Rdpmc,
            0x70 => Pushf,
            0x71 => Popf,
            0x72 => Cpuid,
            0x73 => Rsm,
            0x74 => Iret,
            0x75 => Swint,
            0x76 => Invd,
            0x77 => Pause,
            0x78 => Hlt,
            0x79 => Invlpg,
            0x7a => Invlpga,
            0x7b => Ioio,
            0x7c => Msr,
            0x7d => TaskSwitch,
            0x7e => FerrFreeze,
            0x7f => Shutdown,
            0x80 => Vmrun,
            0x81 => Vmmcall,
            0x82 => Vmload,
            0x83 => Vmsave,
            0x84 => Stgi,
            0x85 => Clgi,
            0x86 => Skinit,
            0x87 => Rdtscp,
            0x88 => Icebp,
            0x89 => Wbinvd,
            0x8a => Monitor,
            0x8b => Mwait,
            0x8c => MwaitConditional,
            0x8d => Xsetbv,
            0x8e => Rdpru,
            0x8f => EferWriteTrap,
            0x90..=0x9f => CrWriteTrap(low4),
            0xa0 => Invlpgb,
            0xa1 => InvlpgbIllegal,
            0xa2 => Invpcid,
            0xa3 => Mcommit,
            0xa4 => Tlbsync,
            0xa5 => Buslock,
            0xa6 => IdleHlt,
            0x400 => Npf,
            0x401 => AvicIncompleteIpi,
            0x402 => AvicNoAccel,
            0x403 => Vmgexit,
            VMEXIT_INVALID => Invalid,
            VMEXIT_BUSY => Busy,
            VMEXIT_IDLE_REQUIRED => IdleRequired,
            VMEXIT_INVALID_PMC => InvalidPmc,
            _ => {
                return Err(UnknownReason {
                    vendor: Vendor::Amd,
                    raw,
                })
            }
        })
    }

    /// The raw EXITCODE. The number carried by a range variant is masked to
    /// its range (`CrRead(n)` gives `n & 0xF`, `Exception(n)` gives
    /// `0x40 | (n & 0x1F)`), so every value decodes back to itself.
    pub const fn raw(self) -> u64 {
        use SvmExitCode::*;
        match self {
            CrRead(n) => (n & 0xf) as u64,
            CrWrite(n) => 0x10 | (n & 0xf) as u64,
            DrRead(n) => 0x20 | (n & 0xf) as u64,
            DrWrite(n) => 0x30 | (n & 0xf) as u64,
            Exception(n) => 0x40 | (n & 0x1f) as u64,
            Intr => 0x60,
            Nmi => 0x61,
            Smi => 0x62,
            Init => 0x63,
            Vintr => 0x64,
            Cr0SelectiveWrite => 0x65,
            IdtrRead => 0x66,
            GdtrRead => 0x67,
            LdtrRead => 0x68,
            TrRead => 0x69,
            IdtrWrite => 0x6a,
            GdtrWrite => 0x6b,
            LdtrWrite => 0x6c,
            TrWrite => 0x6d,
            Rdtsc => 0x6e,
            Rdpmc => 0x6f,
            Pushf => 0x70,
            Popf => 0x71,
            Cpuid => 0x72,
            Rsm => 0x73,
            Iret => 0x74,
            Swint => 0x75,
            Invd => 0x76,
            Pause => 0x77,
            Hlt => 0x78,
            Invlpg => 0x79,
            Invlpga => 0x7a,
            Ioio => 0x7b,
            Msr => 0x7c,
            TaskSwitch => 0x7d,
            FerrFreeze => 0x7e,
            Shutdown => 0x7f,
            Vmrun => 0x80,
            Vmmcall => 0x81,
            Vmload => 0x82,
            Vmsave => 0x83,
            Stgi => 0x84,
            Clgi => 0x85,
            Skinit => 0x86,
            Rdtscp => 0x87,
            Icebp => 0x88,
            Wbinvd => 0x89,
            Monitor => 0x8a,
            Mwait => 0x8b,
            MwaitConditional => 0x8c,
            Xsetbv => 0x8d,
            Rdpru => 0x8e,
            EferWriteTrap => 0x8f,
            CrWriteTrap(n) => 0x90 | (n & 0xf) as u64,
            Invlpgb => 0xa0,
            InvlpgbIllegal => 0xa1,
            Invpcid => 0xa2,
            Mcommit => 0xa3,
            Tlbsync => 0xa4,
            Buslock => 0xa5,
            IdleHlt => 0xa6,
            Npf => 0x400,
            AvicIncompleteIpi => 0x401,
            AvicNoAccel => 0x402,
            Vmgexit => 0x403,
            Invalid => VMEXIT_INVALID,
            Busy => VMEXIT_BUSY,
            IdleRequired => VMEXIT_IDLE_REQUIRED,
            InvalidPmc => VMEXIT_INVALID_PMC,
        }
    }

    /// The APM mnemonic. Range variants give the family name with `x` for
    /// the number (`"VMEXIT_CRx_READ"`, `"VMEXIT_EXCPx"`); the
    /// [`fmt::Display`] output spells the number out.
    pub const fn name(self) -> &'static str {
        use SvmExitCode::*;
        match self {
            CrRead(_) => "VMEXIT_CRx_READ",
            CrWrite(_) => "VMEXIT_CRx_WRITE",
            DrRead(_) => "VMEXIT_DRx_READ",
            DrWrite(_) => "VMEXIT_DRx_WRITE",
            Exception(_) => "VMEXIT_EXCPx",
            Intr => "VMEXIT_INTR",
            Nmi => "VMEXIT_NMI",
            Smi => "VMEXIT_SMI",
            Init => "VMEXIT_INIT",
            Vintr => "VMEXIT_VINTR",
            Cr0SelectiveWrite => "VMEXIT_CR0_SEL_WRITE",
            IdtrRead => "VMEXIT_IDTR_READ",
            GdtrRead => "VMEXIT_GDTR_READ",
            LdtrRead => "VMEXIT_LDTR_READ",
            TrRead => "VMEXIT_TR_READ",
            IdtrWrite => "VMEXIT_IDTR_WRITE",
            GdtrWrite => "VMEXIT_GDTR_WRITE",
            LdtrWrite => "VMEXIT_LDTR_WRITE",
            TrWrite => "VMEXIT_TR_WRITE",
            Rdtsc => "VMEXIT_RDTSC",
            Rdpmc => "VMEXIT_RDPMC",
            Pushf => "VMEXIT_PUSHF",
            Popf => "VMEXIT_POPF",
            Cpuid => "VMEXIT_CPUID",
            Rsm => "VMEXIT_RSM",
            Iret => "VMEXIT_IRET",
            Swint => "VMEXIT_SWINT",
            Invd => "VMEXIT_INVD",
            Pause => "VMEXIT_PAUSE",
            Hlt => "VMEXIT_HLT",
            Invlpg => "VMEXIT_INVLPG",
            Invlpga => "VMEXIT_INVLPGA",
            Ioio => "VMEXIT_IOIO",
            Msr => "VMEXIT_MSR",
            TaskSwitch => "VMEXIT_TASK_SWITCH",
            FerrFreeze => "VMEXIT_FERR_FREEZE",
            Shutdown => "VMEXIT_SHUTDOWN",
            Vmrun => "VMEXIT_VMRUN",
            Vmmcall => "VMEXIT_VMMCALL",
            Vmload => "VMEXIT_VMLOAD",
            Vmsave => "VMEXIT_VMSAVE",
            Stgi => "VMEXIT_STGI",
            Clgi => "VMEXIT_CLGI",
            Skinit => "VMEXIT_SKINIT",
            Rdtscp => "VMEXIT_RDTSCP",
            Icebp => "VMEXIT_ICEBP",
            Wbinvd => "VMEXIT_WBINVD",
            Monitor => "VMEXIT_MONITOR",
            Mwait => "VMEXIT_MWAIT",
            MwaitConditional => "VMEXIT_MWAIT_CONDITIONAL",
            Xsetbv => "VMEXIT_XSETBV",
            Rdpru => "VMEXIT_RDPRU",
            EferWriteTrap => "VMEXIT_EFER_WRITE_TRAP",
            CrWriteTrap(_) => "VMEXIT_CRx_WRITE_TRAP",
            Invlpgb => "VMEXIT_INVLPGB",
            InvlpgbIllegal => "VMEXIT_INVLPGB_ILLEGAL",
            Invpcid => "VMEXIT_INVPCID",
            Mcommit => "VMEXIT_MCOMMIT",
            Tlbsync => "VMEXIT_TLBSYNC",
            Buslock => "VMEXIT_BUSLOCK",
            IdleHlt => "VMEXIT_IDLE_HLT",
            Npf => "VMEXIT_NPF",
            AvicIncompleteIpi => "AVIC_INCOMPLETE_IPI",
            AvicNoAccel => "AVIC_NOACCEL",
            Vmgexit => "VMEXIT_VMGEXIT",
            Invalid => "VMEXIT_INVALID",
            Busy => "VMEXIT_BUSY",
            IdleRequired => "VMEXIT_IDLE_REQUIRED",
            InvalidPmc => "VMEXIT_INVALID_PMC",
        }
    }

    /// Whether this code reports a failed VMRUN (the negative codes): the
    /// guest did not run.
    pub const fn is_vmrun_failure(self) -> bool {
        matches!(
            self,
            SvmExitCode::Invalid
                | SvmExitCode::Busy
                | SvmExitCode::IdleRequired
                | SvmExitCode::InvalidPmc
        )
    }
}

impl TryFrom<u64> for SvmExitCode {
    type Error = UnknownReason;

    fn try_from(raw: u64) -> Result<Self, UnknownReason> {
        SvmExitCode::from_raw(raw)
    }
}

impl From<SvmExitCode> for u64 {
    fn from(c: SvmExitCode) -> u64 {
        c.raw()
    }
}

impl fmt::Display for SvmExitCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use SvmExitCode::*;
        match *self {
            CrRead(n) => write!(f, "VMEXIT_CR{}_READ", n & 0xf)?,
            CrWrite(n) => write!(f, "VMEXIT_CR{}_WRITE", n & 0xf)?,
            DrRead(n) => write!(f, "VMEXIT_DR{}_READ", n & 0xf)?,
            DrWrite(n) => write!(f, "VMEXIT_DR{}_WRITE", n & 0xf)?,
            Exception(n) => write!(f, "VMEXIT_EXCP{}", n & 0x1f)?,
            CrWriteTrap(n) => write!(f, "VMEXIT_CR{}_WRITE_TRAP", n & 0xf)?,
            other => f.write_str(other.name())?,
        }
        if self.is_vmrun_failure() {
            write!(f, " ({})", self.raw() as i64)
        } else {
            write!(f, " ({:#x})", self.raw())
        }
    }
}

/// Segment register numbers used by IOIO EXITINFO1 bits 12:10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Segment {
    /// 0: ES.
    Es,
    /// 1: CS.
    Cs,
    /// 2: SS.
    Ss,
    /// 3: DS.
    Ds,
    /// 4: FS.
    Fs,
    /// 5: GS.
    Gs,
}

/// EXITINFO1 of an IOIO intercept (`VMEXIT_IOIO`, 0x7B); EXITINFO2 holds
/// the RIP of the next instruction.
///
/// AMD APM Vol. 2, §15.10.2 "IN and OUT Behavior", Figure 15-2 "EXITINFO1
/// for IOIO Intercept":
///
/// | bits  | meaning                                                 |
/// |-------|---------------------------------------------------------|
/// | 0     | TYPE: 1 = IN, 0 = OUT                                   |
/// | 2     | STR: string instruction (INS/OUTS)                      |
/// | 3     | REP: repeated                                           |
/// | 4     | SZ8: 8-bit operand                                      |
/// | 5     | SZ16: 16-bit operand                                    |
/// | 6     | SZ32: 32-bit operand                                    |
/// | 7     | A16: 16-bit address size                                |
/// | 8     | A32: 32-bit address size                                |
/// | 9     | A64: 64-bit address size                                |
/// | 12:10 | SEG: effective segment of a string OUTS (decode assists) |
/// | 31:16 | PORT: the I/O port                                      |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct IoioInfo(pub u64);

impl IoioInfo {
    /// Bit 0: `IN`/`INS` (the guest reads the port).
    pub const fn is_in(self) -> bool {
        self.0 & 1 != 0
    }

    /// `OUT`/`OUTS` (bit 0 clear).
    pub const fn is_out(self) -> bool {
        !self.is_in()
    }

    /// Bit 2: string instruction.
    pub const fn string(self) -> bool {
        self.0 & (1 << 2) != 0
    }

    /// Bit 3: `REP` prefixed.
    pub const fn rep(self) -> bool {
        self.0 & (1 << 3) != 0
    }

    /// Operand size in bytes from the one-hot SZ8/SZ16/SZ32 bits 6:4;
    /// `None` if not exactly one is set.
    pub const fn size(self) -> Option<u8> {
        match (self.0 >> 4) & 0b111 {
            0b001 => Some(1),
            0b010 => Some(2),
            0b100 => Some(4),
            _ => None,
        }
    }

    /// Address size in bits from the one-hot A16/A32/A64 bits 9:7; `None`
    /// if not exactly one is set.
    pub const fn address_size(self) -> Option<u8> {
        match (self.0 >> 7) & 0b111 {
            0b001 => Some(16),
            0b010 => Some(32),
            0b100 => Some(64),
            _ => None,
        }
    }

    /// Bits 12:10, the raw segment number (meaningful with decode assists).
    pub const fn segment_raw(self) -> u8 {
        ((self.0 >> 10) & 0b111) as u8
    }

    /// Bits 12:10 as a segment register; `None` for 6 and 7.
    pub const fn segment(self) -> Option<Segment> {
        match self.segment_raw() {
            0 => Some(Segment::Es),
            1 => Some(Segment::Cs),
            2 => Some(Segment::Ss),
            3 => Some(Segment::Ds),
            4 => Some(Segment::Fs),
            5 => Some(Segment::Gs),
            _ => None,
        }
    }

    /// Bits 31:16: the port.
    pub const fn port(self) -> u16 {
        ((self.0 >> 16) & 0xffff) as u16
    }
}

bitflags! {
    /// EXITINFO1 of a nested page fault (`VMEXIT_NPF`, 0x400): a
    /// `#PF`-style error code; EXITINFO2 is the faulting guest-physical
    /// address.
    ///
    /// AMD APM Vol. 2, §15.25.6 "Nested versus Guest Page Faults, Fault
    /// Ordering": bits 31:0 follow the #PF error code (§8.4.2 "#PF"),
    /// bit 32 is set when the fault happened on the final guest-physical
    /// address, bit 33 when it happened on a guest page-table access
    /// during the guest walk. Undefined bits are kept
    /// ([`bitflags::Flags::from_bits_retain`]).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct NpfErrorCode: u64 {
        /// Bit 0 (P): the nested page was present (a protection fault).
        const PRESENT = 1 << 0;
        /// Bit 1 (R/W): the access was a write.
        const WRITE = 1 << 1;
        /// Bit 2 (U/S): the access was a user access (nested accesses are
        /// treated as user accesses).
        const USER = 1 << 2;
        /// Bit 3 (RSV): a reserved bit was set in a nested page-table entry.
        const RESERVED = 1 << 3;
        /// Bit 4 (I/D): the access was an instruction fetch.
        const FETCH = 1 << 4;
        /// Bit 5 (PK): protection-key violation.
        const PROTECTION_KEY = 1 << 5;
        /// Bit 6 (SS): shadow-stack access.
        const SHADOW_STACK = 1 << 6;
        /// Bit 31 (RMP): RMP check failure (SEV-SNP).
        const RMP = 1 << 31;
        /// Bit 32: the fault occurred on the final guest-physical address.
        const FINAL_ADDRESS = 1 << 32;
        /// Bit 33: the fault occurred on a guest page-table access during
        /// the guest page walk.
        const PAGE_TABLE_WALK = 1 << 33;
        /// Bit 34 (ENC): the access was an encrypted access (SEV-SNP).
        const ENCRYPTED = 1 << 34;
        /// Bit 35 (SIZEM): page-size mismatch between the nested and RMP
        /// tables (SEV-SNP).
        const SIZE_MISMATCH = 1 << 35;
        /// Bit 36 (VMPL): VMPL permission failure (SEV-SNP).
        const VMPL = 1 << 36;
    }
}

impl NpfErrorCode {
    /// Decode EXITINFO1, keeping every bit.
    pub const fn from_exitinfo1(exitinfo1: u64) -> Self {
        NpfErrorCode::from_bits_retain(exitinfo1)
    }

    /// `Some(true)` for a fault during the guest page walk (bit 33),
    /// `Some(false)` for a fault on the final address (bit 32), `None` if
    /// neither is set.
    pub const fn during_walk(self) -> Option<bool> {
        if self.contains(NpfErrorCode::PAGE_TABLE_WALK) {
            Some(true)
        } else if self.contains(NpfErrorCode::FINAL_ADDRESS) {
            Some(false)
        } else {
            None
        }
    }
}

/// EXITINFO1 of `VMEXIT_MSR` (0x7C): 0 for RDMSR, 1 for WRMSR (AMD APM
/// Vol. 2, §15.11 "MSR Intercepts"). The MSR number is in the guest's ECX.
/// `None` for any other value.
pub const fn msr_is_write(exitinfo1: u64) -> Option<bool> {
    match exitinfo1 {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// The exceptions that push an error code, for which `VMEXIT_EXCPn` puts
/// the error code in EXITINFO1 (AMD APM Vol. 2, §15.12 "Exception
/// Intercepts"; the vectors are from Vol. 2 §8.2): #DF (8), #TS (10),
/// #NP (11), #SS (12), #GP (13), #PF (14), #AC (17), #CP (21), #VC (29),
/// #SX (30). For #PF, EXITINFO2 is the faulting linear address.
pub const fn exception_has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

/// EXITINFO1 of a CR read or write intercept (`VMEXIT_CRn_READ/WRITE`,
/// `VMEXIT_CR0_SEL_WRITE`) with decode assists.
///
/// AMD APM Vol. 2, §15 "Decode Assists", "MOV CRx/DRx Intercepts" (the
/// feature is CPUID `Fn8000_000A_EDX[7]` DecodeAssists): bit 63 is set when
/// the intercepted instruction was `MOV CRx` (then bits 3:0 name its
/// general-purpose register), clear for `LMSW`/`CLTS`/`SMSW`. Without
/// decode assists the processor writes 0 here, which reads as "not valid".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CrAccessInfo(pub u64);

impl CrAccessInfo {
    /// Bit 63: the instruction was `MOV CRx` and [`CrAccessInfo::gpr`] is
    /// meaningful.
    pub const fn valid(self) -> bool {
        self.0 & (1 << 63) != 0
    }

    /// Bits 3:0: the general-purpose register (0 = RAX ... 15 = R15), when
    /// bit 63 is set.
    pub const fn gpr(self) -> Option<u8> {
        if self.valid() {
            Some((self.0 & 0xf) as u8)
        } else {
            None
        }
    }
}

/// The type of an event in EXITINTINFO / EVENTINJ (bits 10:8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SvmEventType {
    /// 0: external or virtual interrupt (INTR).
    Intr,
    /// 2: NMI.
    Nmi,
    /// 3: exception (fault or trap).
    Exception,
    /// 4: software interrupt (INTn).
    SoftwareInterrupt,
    /// 1, 5, 6, 7: reserved; the raw type is kept.
    Reserved(u8),
}

/// The VMCB EXITINTINFO field (offset `0x88`), which has the EVENTINJ
/// format: the event that was being delivered when the exit happened.
///
/// AMD APM Vol. 2, §15.7.2 "Intercepts During IDT Interrupt Delivery" and
/// §15.20 "Event Injection" (Figure 15-4): vector 7:0, type 10:8, EV (error
/// code valid) 11, V (valid) 31, error code 63:32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ExitIntInfo(pub u64);

impl ExitIntInfo {
    /// Bits 7:0: the vector.
    pub const fn vector(self) -> u8 {
        (self.0 & 0xff) as u8
    }

    /// Bits 10:8: the event type.
    pub const fn event_type(self) -> SvmEventType {
        match ((self.0 >> 8) & 0b111) as u8 {
            0 => SvmEventType::Intr,
            2 => SvmEventType::Nmi,
            3 => SvmEventType::Exception,
            4 => SvmEventType::SoftwareInterrupt,
            other => SvmEventType::Reserved(other),
        }
    }

    /// Bit 11: the error code (bits 63:32) is valid.
    pub const fn error_code_valid(self) -> bool {
        self.0 & (1 << 11) != 0
    }

    /// Bit 31: an event was being delivered.
    pub const fn valid(self) -> bool {
        self.0 & (1 << 31) != 0
    }

    /// Bits 63:32: the error code, if [`ExitIntInfo::error_code_valid`].
    pub const fn error_code(self) -> Option<u32> {
        if self.error_code_valid() {
            Some((self.0 >> 32) as u32)
        } else {
            None
        }
    }
}
