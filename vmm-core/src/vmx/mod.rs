//! The Intel VMX backend (Intel SDM Vol. 3C, Chapters 24-28 "Introduction
//! to Virtual Machine Extensions" .. "VM Exits", and Appendix A "VMX
//! Capability Reporting Facility").
//!
//! This module is the portable part, unit-tested on the host: decoding the
//! VMX capability MSRs, adjusting VM-execution, VM-exit and VM-entry
//! controls to what the processor allows, CR0/CR4 fixed bits, segment
//! access rights in the VMCS format, the host TSS descriptor, event
//! injection, and the errors. `rt` (feature `rt`) does the hardware
//! part: VMXON, the VMCS, the EPT tables and the VMLAUNCH/VMRESUME loop.
//!
//! SDM numbering: the 2024/2025 editions number the VMCS chapter 25, VM
//! entries 27 and VM exits 28; older editions number them one lower.
//! Section numbers below are from the newer editions unless noted.

#[cfg(feature = "rt")]
mod rt;
#[cfg(feature = "rt")]
pub use rt::{prepare, run_vcpu, VmxVm};

use core::fmt;

/// VMX capability MSRs (SDM Vol. 3C, Appendix A; MSR numbers from Vol. 4,
/// Table 2-2 "IA-32 Architectural MSRs").
pub mod msr {
    /// IA32_FEATURE_CONTROL (SDM Vol. 3C §24.7 "Enabling and Entering VMX
    /// Operation").
    pub const FEATURE_CONTROL: u32 = x86::msr::IA32_FEATURE_CONTROL;
    /// IA32_FEATURE_CONTROL bit 0: lock.
    pub const FEATURE_CONTROL_LOCK: u64 = 1 << 0;
    /// IA32_FEATURE_CONTROL bit 2: enable VMXON outside SMX operation.
    pub const FEATURE_CONTROL_VMX_OUTSIDE_SMX: u64 = 1 << 2;
    /// IA32_VMX_BASIC (Appendix A.1).
    pub const BASIC: u32 = x86::msr::IA32_VMX_BASIC;
    /// IA32_VMX_PINBASED_CTLS (Appendix A.3.1).
    pub const PINBASED_CTLS: u32 = x86::msr::IA32_VMX_PINBASED_CTLS;
    /// IA32_VMX_PROCBASED_CTLS (Appendix A.3.2).
    pub const PROCBASED_CTLS: u32 = x86::msr::IA32_VMX_PROCBASED_CTLS;
    /// IA32_VMX_PROCBASED_CTLS2 (Appendix A.3.3).
    pub const PROCBASED_CTLS2: u32 = x86::msr::IA32_VMX_PROCBASED_CTLS2;
    /// IA32_VMX_EXIT_CTLS (Appendix A.4).
    pub const EXIT_CTLS: u32 = x86::msr::IA32_VMX_EXIT_CTLS;
    /// IA32_VMX_ENTRY_CTLS (Appendix A.5).
    pub const ENTRY_CTLS: u32 = x86::msr::IA32_VMX_ENTRY_CTLS;
    /// IA32_VMX_CR0_FIXED0 (Appendix A.7).
    pub const CR0_FIXED0: u32 = x86::msr::IA32_VMX_CR0_FIXED0;
    /// IA32_VMX_CR0_FIXED1 (Appendix A.7).
    pub const CR0_FIXED1: u32 = x86::msr::IA32_VMX_CR0_FIXED1;
    /// IA32_VMX_CR4_FIXED0 (Appendix A.8).
    pub const CR4_FIXED0: u32 = x86::msr::IA32_VMX_CR4_FIXED0;
    /// IA32_VMX_CR4_FIXED1 (Appendix A.8).
    pub const CR4_FIXED1: u32 = x86::msr::IA32_VMX_CR4_FIXED1;
    /// IA32_VMX_EPT_VPID_CAP (Appendix A.10).
    pub const EPT_VPID_CAP: u32 = x86::msr::IA32_VMX_EPT_VPID_CAP;
    /// IA32_VMX_TRUE_PINBASED_CTLS (Appendix A.3.1).
    pub const TRUE_PINBASED_CTLS: u32 = x86::msr::IA32_VMX_TRUE_PINBASED_CTLS;
    /// IA32_VMX_TRUE_PROCBASED_CTLS (Appendix A.3.2).
    pub const TRUE_PROCBASED_CTLS: u32 = x86::msr::IA32_VMX_TRUE_PROCBASED_CTLS;
    /// IA32_VMX_TRUE_EXIT_CTLS (Appendix A.4).
    pub const TRUE_EXIT_CTLS: u32 = x86::msr::IA32_VMX_TRUE_EXIT_CTLS;
    /// IA32_VMX_TRUE_ENTRY_CTLS (Appendix A.5).
    pub const TRUE_ENTRY_CTLS: u32 = x86::msr::IA32_VMX_TRUE_ENTRY_CTLS;
    /// IA32_FS_BASE.
    pub const FS_BASE: u32 = x86::msr::IA32_FS_BASE;
    /// IA32_GS_BASE.
    pub const GS_BASE: u32 = x86::msr::IA32_GS_BASE;
    /// IA32_SYSENTER_CS.
    pub const SYSENTER_CS: u32 = x86::msr::IA32_SYSENTER_CS;
    /// IA32_SYSENTER_ESP.
    pub const SYSENTER_ESP: u32 = x86::msr::IA32_SYSENTER_ESP;
    /// IA32_SYSENTER_EIP.
    pub const SYSENTER_EIP: u32 = x86::msr::IA32_SYSENTER_EIP;
}

/// IA32_VMX_BASIC, decoded (SDM Vol. 3C, Appendix A.1 "Basic VMX
/// Information").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmxBasic(pub u64);

impl VmxBasic {
    /// Bits 30:0: the VMCS revision identifier, written into the first
    /// dword of the VMXON region and of every VMCS.
    pub const fn revision_id(self) -> u32 {
        (self.0 & 0x7FFF_FFFF) as u32
    }

    /// Bits 44:32: bytes to allocate for the VMXON region and a VMCS (at
    /// most 4096).
    pub const fn region_size(self) -> u32 {
        ((self.0 >> 32) & 0x1FFF) as u32
    }

    /// Bit 48: physical addresses of VMX structures are limited to 32 bits.
    pub const fn addresses_32bit(self) -> bool {
        self.0 & (1 << 48) != 0
    }

    /// Bits 53:50: memory type for VMX structures (6 = write-back).
    pub const fn memory_type(self) -> u8 {
        ((self.0 >> 50) & 0xF) as u8
    }

    /// Bit 55: the IA32_VMX_TRUE_*_CTLS MSRs exist and report which
    /// default-1 controls may be 0 (Appendix A.2).
    pub const fn true_controls(self) -> bool {
        self.0 & (1 << 55) != 0
    }
}

/// IA32_FEATURE_CONTROL: what to do before VMXON (SDM Vol. 3C §24.7).
///
/// - locked with "VMXON outside SMX" set: nothing (`Ok(None)`);
/// - locked without it: VMX is disabled by firmware until reset
///   ([`VmxError::DisabledByFirmware`]);
/// - unlocked: write the returned value (VMX outside SMX + lock).
pub const fn feature_control_update(value: u64) -> Result<Option<u64>, VmxError> {
    let vmx = value & msr::FEATURE_CONTROL_VMX_OUTSIDE_SMX != 0;
    if value & msr::FEATURE_CONTROL_LOCK != 0 {
        if vmx {
            Ok(None)
        } else {
            Err(VmxError::DisabledByFirmware {
                feature_control: value,
            })
        }
    } else {
        Ok(Some(
            value | msr::FEATURE_CONTROL_VMX_OUTSIDE_SMX | msr::FEATURE_CONTROL_LOCK,
        ))
    }
}

/// The five VMX control fields that capability MSRs constrain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlField {
    /// Pin-based VM-execution controls (SDM Vol. 3C §25.6.1, Appendix A.3.1).
    PinBased,
    /// Primary processor-based VM-execution controls (§25.6.2, Appendix A.3.2).
    Primary,
    /// Secondary processor-based VM-execution controls (§25.6.2, Appendix A.3.3).
    Secondary,
    /// VM-exit controls (§25.7.1, Appendix A.4).
    Exit,
    /// VM-entry controls (§25.8.1, Appendix A.5).
    Entry,
}

impl ControlField {
    /// A readable name, for errors.
    pub const fn name(self) -> &'static str {
        match self {
            ControlField::PinBased => "pin-based VM-execution controls",
            ControlField::Primary => "primary processor-based VM-execution controls",
            ControlField::Secondary => "secondary processor-based VM-execution controls",
            ControlField::Exit => "VM-exit controls",
            ControlField::Entry => "VM-entry controls",
        }
    }

    /// The capability MSR to read for this field: the TRUE MSR when
    /// IA32_VMX_BASIC bit 55 says they exist (Appendix A.2), except for the
    /// secondary controls, which have only one.
    pub const fn capability_msr(self, basic: VmxBasic) -> u32 {
        let t = basic.true_controls();
        match self {
            ControlField::PinBased if t => msr::TRUE_PINBASED_CTLS,
            ControlField::PinBased => msr::PINBASED_CTLS,
            ControlField::Primary if t => msr::TRUE_PROCBASED_CTLS,
            ControlField::Primary => msr::PROCBASED_CTLS,
            ControlField::Secondary => msr::PROCBASED_CTLS2,
            ControlField::Exit if t => msr::TRUE_EXIT_CTLS,
            ControlField::Exit => msr::EXIT_CTLS,
            ControlField::Entry if t => msr::TRUE_ENTRY_CTLS,
            ControlField::Entry => msr::ENTRY_CTLS,
        }
    }
}

/// What a control capability MSR allows (SDM Vol. 3C, Appendix A.3-A.5):
/// bits 31:0 are the allowed 0-settings (a 1 there means the control must
/// be 1), bits 63:32 the allowed 1-settings (a 0 there means the control
/// must be 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlCaps {
    /// Controls that must be 1.
    pub must_be_1: u32,
    /// Controls that may be 1.
    pub may_be_1: u32,
}

impl ControlCaps {
    /// Split a capability MSR value.
    pub const fn from_msr(value: u64) -> Self {
        ControlCaps {
            must_be_1: value as u32,
            may_be_1: (value >> 32) as u32,
        }
    }

    /// Whether every control in `bits` may be 1.
    pub const fn allows(self, bits: u32) -> bool {
        self.may_be_1 & bits == bits
    }
}

/// Primary processor-based controls every guest gets (SDM Vol. 3C
/// §25.6.2, Table 25-6), besides HLT exiting for bare-metal guests and the
/// bitmaps: RDPMC exiting (bit 11: the guest controls CR4.PCE, and the
/// counters are the host's), MWAIT and MONITOR exiting (bits 10, 29: an HLT
/// the VMM cannot see; CPUID hides them), CR8-load and CR8-store exiting
/// (bits 19, 20: without a TPR shadow a guest's CR8 is the physical TPR).
pub const PRIMARY_ALWAYS: x86::vmx::vmcs::control::PrimaryControls = {
    use x86::vmx::vmcs::control::PrimaryControls as P;
    P::RDPMC_EXITING
        .union(P::MWAIT_EXITING)
        .union(P::MONITOR_EXITING)
        .union(P::CR8_LOAD_EXITING)
        .union(P::CR8_STORE_EXITING)
};

/// The VMX-preemption timer value that gives `tsc` TSC ticks, for a timer
/// that counts once every 2^`rate` ticks (IA32_VMX_MISC bits 4:0, SDM Vol.
/// 3C §26.5.1, Appendix A.6): `tsc >> rate`, at least 1, at most the
/// field's 32 bits.
pub const fn preemption_timer_value(tsc: u64, rate: u8) -> u32 {
    let v = tsc >> (rate & 31);
    if v == 0 {
        1
    } else if v > u32::MAX as u64 {
        u32::MAX
    } else {
        v as u32
    }
}

/// Adjust a control field to the processor: `(required | optional |
/// must_be_1) & may_be_1`, the algorithm of SDM Vol. 3C §A.2 / §32.5.1
/// ("Algorithms for Determining VMX Capabilities"). Optional controls the
/// processor does not allow are dropped; a required one it does not allow
/// is an error naming the field and the missing bits.
pub const fn adjust_controls(
    field: ControlField,
    caps: ControlCaps,
    required: u32,
    optional: u32,
) -> Result<u32, VmxError> {
    let value = (required | optional | caps.must_be_1) & caps.may_be_1;
    let missing = required & !value;
    if missing != 0 {
        return Err(VmxError::Control {
            field,
            missing,
            caps,
        });
    }
    Ok(value)
}

/// Bring a CR0 or CR4 value into line with the VMX fixed-bit MSRs (SDM Vol.
/// 3C, Appendix A.7/A.8): bits set in `fixed0` must be 1, bits clear in
/// `fixed1` must be 0.
pub const fn apply_fixed_bits(value: u64, fixed0: u64, fixed1: u64) -> u64 {
    (value | fixed0) & fixed1
}

/// A control register the guest runs with, and what it believes it holds.
///
/// Bits VMX forces (CR0.NE, CR4.VMXE, ...) go into the guest/host mask with
/// the guest's own value in the read shadow (SDM Vol. 3C §25.6.6 "Guest/Host
/// Masks and Read Shadows for CR0 and CR4"), so a guest reading CR0/CR4
/// sees what it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShadowedCr {
    /// The value in the guest-state area.
    pub actual: u64,
    /// The guest/host mask: bits the VMM owns.
    pub mask: u64,
    /// The read shadow: what the guest reads for the owned bits.
    pub shadow: u64,
}

/// The guest's `wanted` CR0/CR4 under the fixed bits: every bit VMX does
/// not leave to the guest is host-owned, shadowed with `wanted`.
pub const fn shadow_cr(wanted: u64, fixed0: u64, fixed1: u64) -> ShadowedCr {
    ShadowedCr {
        actual: apply_fixed_bits(wanted, fixed0, fixed1),
        mask: fixed0 | !fixed1,
        shadow: wanted,
    }
}

/// Guest segment access rights in the VMCS format from a GDT descriptor
/// (SDM Vol. 3C §25.4.1 "Guest Register State", Table 25-2 "Format of
/// Access Rights"): bits 7:0 = descriptor bits 47:40 (type, S, DPL, P),
/// bits 15:12 = descriptor bits 55:52 (AVL, L, D/B, G), bit 16 unusable.
///
/// Code and data segments get the accessed bit (type bit 0) set, which VM
/// entry requires of CS and of every usable data segment (§27.3.1.2), and
/// which the processor would set on the first load anyway.
pub const fn access_rights(descriptor: u64) -> u32 {
    let low = ((descriptor >> 40) & 0xFF) as u32;
    let high = ((descriptor >> 52) & 0xF) as u32;
    let mut ar = low | (high << 12);
    if ar & AR_S != 0 {
        ar |= AR_ACCESSED;
    }
    ar
}

/// Access-rights bit 0 (type bit 0): accessed.
pub const AR_ACCESSED: u32 = 1 << 0;
/// Access-rights bit 4: S (code/data, not system).
pub const AR_S: u32 = 1 << 4;
/// Access-rights bit 7: present.
pub const AR_P: u32 = 1 << 7;
/// Access-rights bit 16: segment unusable.
pub const AR_UNUSABLE: u32 = 1 << 16;
/// Access rights of a present busy 64-bit TSS (type 11), as guest TR
/// must be (§27.3.1.2).
pub const AR_TSS64_BUSY: u32 = 0xB | AR_P;

/// The DPL in a VMX access-rights value (bits 6:5): for SS, the CPL.
pub const fn ar_dpl(ar: u32) -> u8 {
    ((ar >> 5) & 3) as u8
}

/// The host TSS descriptor (SDM Vol. 3A §8.2.3) and TSS size: the formats
/// vmm-core and the guest runtime share.
pub use vmm_shared::desc::{tss_descriptor, TSS_SIZE};

/// How many fields [`guest_state`] sets.
pub const GUEST_STATE_FIELDS: usize = 51;

/// The guest-state area (SDM Vol. 3C §25.4 "Guest-State Area") for a guest
/// that starts as [`crate::guest`] prepares it: 64-bit mode at CPL 0, flat
/// segments from the guest GDT, an unusable LDTR, a busy 64-bit TSS in TR
/// (base 0: the guest loads its own before it needs one), interrupts off,
/// VMCS link pointer all ones, active, no blocking. `cr0`/`cr4` come from
/// [`shadow_cr`]. The tests check it against §27.3.1 "Checks on the Guest
/// State Area". Guest EFER is written separately (only when the VM-entry
/// or VM-exit controls make the field exist).
pub fn guest_state(
    start: &crate::guest::GuestStart,
    cr0: ShadowedCr,
    cr4: ShadowedCr,
) -> [(u32, u64); GUEST_STATE_FIELDS] {
    use x86::vmx::vmcs::guest as g;
    let code_ar = access_rights(start.code_descriptor);
    let data_ar = access_rights(start.data_descriptor);
    let ds_sel = u64::from(start.ds);
    [
        (g::CR0, cr0.actual),
        (g::CR3, start.cr3),
        (g::CR4, cr4.actual),
        (g::DR7, 0x400),
        (g::RSP, start.rsp),
        (g::RIP, start.rip),
        (g::RFLAGS, 2),
        (g::CS_SELECTOR, start.cs.into()),
        (g::CS_BASE, 0),
        (g::CS_LIMIT, 0xFFFF_FFFF),
        (g::CS_ACCESS_RIGHTS, code_ar.into()),
        (g::SS_SELECTOR, ds_sel),
        (g::SS_BASE, 0),
        (g::SS_LIMIT, 0xFFFF_FFFF),
        (g::SS_ACCESS_RIGHTS, data_ar.into()),
        (g::DS_SELECTOR, ds_sel),
        (g::DS_BASE, 0),
        (g::DS_LIMIT, 0xFFFF_FFFF),
        (g::DS_ACCESS_RIGHTS, data_ar.into()),
        (g::ES_SELECTOR, ds_sel),
        (g::ES_BASE, 0),
        (g::ES_LIMIT, 0xFFFF_FFFF),
        (g::ES_ACCESS_RIGHTS, data_ar.into()),
        (g::FS_SELECTOR, ds_sel),
        (g::FS_BASE, 0),
        (g::FS_LIMIT, 0xFFFF_FFFF),
        (g::FS_ACCESS_RIGHTS, data_ar.into()),
        (g::GS_SELECTOR, ds_sel),
        (g::GS_BASE, 0),
        (g::GS_LIMIT, 0xFFFF_FFFF),
        (g::GS_ACCESS_RIGHTS, data_ar.into()),
        (g::LDTR_SELECTOR, 0),
        (g::LDTR_BASE, 0),
        (g::LDTR_LIMIT, 0),
        (g::LDTR_ACCESS_RIGHTS, AR_UNUSABLE.into()),
        (g::TR_SELECTOR, 0),
        (g::TR_BASE, 0),
        (g::TR_LIMIT, TSS_SIZE as u64 - 1),
        (g::TR_ACCESS_RIGHTS, AR_TSS64_BUSY.into()),
        (g::GDTR_BASE, start.gdt_base),
        (g::GDTR_LIMIT, start.gdt_limit.into()),
        (g::IDTR_BASE, 0),
        (g::IDTR_LIMIT, 0),
        (g::IA32_SYSENTER_CS, 0),
        (g::IA32_SYSENTER_ESP, 0),
        (g::IA32_SYSENTER_EIP, 0),
        (g::IA32_DEBUGCTL_FULL, 0),
        (g::LINK_PTR_FULL, u64::MAX),
        (g::ACTIVITY_STATE, 0),
        (g::INTERRUPTIBILITY_STATE, 0),
        (g::PENDING_DBG_EXCEPTIONS, 0),
    ]
}

/// Checks of IA32_VMX_EPT_VPID_CAP (SDM Vol. 3C, Appendix A.10) for the
/// tables [`crate::nested`] builds: 4-level walk (bit 6), write-back
/// paging structures (bit 14), 2 MiB pages (bit 16).
pub const fn check_ept_caps(cap: u64) -> Result<(), VmxError> {
    if cap & (1 << 6) == 0 {
        Err(VmxError::EptCapability {
            what: "a page-walk length of 4",
            cap,
        })
    } else if cap & (1 << 14) == 0 {
        Err(VmxError::EptCapability {
            what: "write-back EPT paging structures",
            cap,
        })
    } else if cap & (1 << 16) == 0 {
        Err(VmxError::EptCapability {
            what: "2 MiB EPT pages",
            cap,
        })
    } else {
        Ok(())
    }
}

/// The VM-entry interruption-information field that injects exception
/// `vector` (SDM Vol. 3C §25.8.3 "VM-Entry Controls for Event Injection",
/// Table 25-17; delivery §27.6 "Event Injection"): vector 7:0, type 10:8,
/// deliver-error-code bit 11, valid bit 31.
///
/// NMI (2) is type 2 and every other vector a hardware exception (type 3).
/// An error code is delivered only for the vectors that push one (8, 10-14,
/// 17: §27.2.1.3 forbids it elsewhere); it is then returned for the
/// VM-entry exception error-code field.
pub const fn entry_interruption_info(vector: u8, error_code: Option<u32>) -> (u32, Option<u32>) {
    let ty: u32 = if vector == 2 { 2 } else { 3 };
    let mut info = vector as u32 | (ty << 8) | (1 << 31);
    let pushes = matches!(vector, 8 | 10..=14 | 17);
    match error_code {
        Some(code) if pushes && ty == 3 => {
            info |= 1 << 11;
            (info, Some(code))
        }
        _ => (info, None),
    }
}

/// The event that reflects exception `vector` back to the guest after an
/// exception VM exit whose VM-exit interruption information was
/// `exit_info` and instruction length `exit_len` (SDM Vol. 3C §28.2.2):
/// the entry interruption information, the error code to deliver, and
/// the VM-entry instruction length to write, if one is needed.
///
/// A software exception keeps its type: `ICEBP` (`INT1`, opcode F1) exits
/// as a *privileged software exception* (type 5) and `INT3`/`INTO` as a
/// software exception (type 6). Their saved RIP is the instruction itself,
/// so they must be injected again with that type and the instruction's
/// length (§27.6.1.1, "the RIP pushed is RIP + VM-entry instruction
/// length"): as a hardware exception (type 3) the guest's handler would
/// return to the `ICEBP` and take it again, forever. This is what KVM and
/// Xen do for ICEBP. Everything else goes through
/// [`entry_interruption_info`], with no length.
pub const fn reflected_exception(
    vector: u8,
    error_code: Option<u32>,
    exit_info: u32,
    exit_len: u32,
) -> (u32, Option<u32>, Option<u32>) {
    let ty = (exit_info >> 8) & 7;
    if exit_info & (1 << 31) != 0 && (exit_info & 0xFF) == vector as u32 && (ty == 5 || ty == 6) {
        (vector as u32 | (ty << 8) | (1 << 31), None, Some(exit_len))
    } else {
        let (info, code) = entry_interruption_info(vector, error_code);
        (info, code, None)
    }
}

/// How a VMX instruction failed (SDM Vol. 3C §31.2 "Conventions").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmFailure {
    /// VMfailInvalid: CF = 1, no current VMCS (or it is invalid).
    Invalid,
    /// VMfailValid: ZF = 1; the VM-instruction error field holds this
    /// number (§31.4 "VM Instruction Error Numbers").
    Valid(u32),
}

impl fmt::Display for VmFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            VmFailure::Invalid => f.write_str("VMfailInvalid (no valid current VMCS)"),
            VmFailure::Valid(n) => {
                write!(
                    f,
                    "VMfailValid, VM-instruction error {n}: {}",
                    vmexit::vmx::vm_instruction_error_text(n)
                )?;
                if let Ok(e) = vmexit::vmx::VmInstructionError::from_raw(n) {
                    write!(f, " ({})", e.hint())?;
                }
                Ok(())
            }
        }
    }
}

/// Why VMX could not run the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmxError {
    /// CPUID.1:ECX.VMX (bit 5) is clear.
    NoVmx,
    /// IA32_FEATURE_CONTROL is locked with VMXON outside SMX disabled.
    DisabledByFirmware {
        /// The MSR's value.
        feature_control: u64,
    },
    /// VMX structures are larger than a page or not write-back.
    UnsupportedBasic(u64),
    /// A required control cannot be set.
    Control {
        /// Which control field.
        field: ControlField,
        /// The required bits the processor does not allow.
        missing: u32,
        /// What the capability MSR allows.
        caps: ControlCaps,
    },
    /// EPT lacks something the VMM needs.
    EptCapability {
        /// What is missing.
        what: &'static str,
        /// IA32_VMX_EPT_VPID_CAP.
        cap: u64,
    },
    /// Out of physical memory for the VMXON region, VMCS, bitmaps or EPT.
    OutOfMemory,
    /// The boot GDT (limit given) is empty or too large to copy into the
    /// host GDT page with a TSS descriptor.
    HostGdt {
        /// GDTR limit.
        limit: u16,
    },
    /// A VMX instruction failed.
    Instruction {
        /// Its mnemonic (with the VMCS field for VMREAD/VMWRITE).
        insn: &'static str,
        /// VMCS field encoding for VMREAD/VMWRITE, else 0.
        field: u32,
        /// How it failed.
        failure: VmFailure,
    },
}

impl fmt::Display for VmxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            VmxError::NoVmx => f.write_str("the CPU has no VMX (CPUID.1:ECX bit 5 is clear)"),
            VmxError::DisabledByFirmware { feature_control } => write!(
                f,
                "VMX is disabled by firmware: IA32_FEATURE_CONTROL = {feature_control:#x} is locked \
                 (bit 0) without VMXON outside SMX (bit 2); only a reset can change it"
            ),
            VmxError::UnsupportedBasic(b) => write!(
                f,
                "IA32_VMX_BASIC = {b:#x}: VMX regions larger than 4 KiB or not write-back are not supported"
            ),
            VmxError::Control { field, missing, caps } => write!(
                f,
                "the CPU does not allow required {} {missing:#x} (must be 1: {:#x}, may be 1: {:#x})",
                field.name(),
                caps.must_be_1,
                caps.may_be_1
            ),
            VmxError::EptCapability { what, cap } => {
                write!(f, "EPT lacks {what} (IA32_VMX_EPT_VPID_CAP = {cap:#x})")
            }
            VmxError::OutOfMemory => f.write_str("out of memory for the VMX structures"),
            VmxError::HostGdt { limit } => write!(
                f,
                "cannot build the host GDT with a TSS from the boot GDT (limit {limit:#x})"
            ),
            VmxError::Instruction { insn, field: 0, failure } => write!(f, "{insn} failed: {failure}"),
            VmxError::Instruction { insn, field, failure } => {
                write!(f, "{insn} of VMCS field {field:#06x} failed: {failure}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;
    use x86::vmx::vmcs::control::{
        EntryControls, ExitControls, PrimaryControls, SecondaryControls,
    };

    /// IA32_VMX_PROCBASED_CTLS as many CPUs report it without TRUE
    /// controls: default-1 bits 1, 4-6, 8, 13-16, 26 (SDM Appendix A.2).
    const DEFAULT1_PROCBASED: u32 = 0x0401_E172;

    #[test]
    fn intercept_controls_match_the_sdm() {
        // SDM Vol. 3C Table 25-6 bit positions, spelled out.
        let want: u32 = (1 << 10) | (1 << 11) | (1 << 19) | (1 << 20) | (1 << 29);
        assert_eq!(PRIMARY_ALWAYS.bits(), want);
        assert_eq!(preemption_timer_value(1 << 30, 5), 1 << 25);
        assert_eq!(preemption_timer_value(1, 5), 1);
        assert_eq!(preemption_timer_value(u64::MAX, 0), u32::MAX);
    }

    #[test]
    fn adjust_sets_must_be_1_and_keeps_required() {
        let caps = ControlCaps::from_msr((0xFFFF_FFFFu64 << 32) | u64::from(DEFAULT1_PROCBASED));
        let want = PrimaryControls::HLT_EXITING.bits() | PrimaryControls::SECONDARY_CONTROLS.bits();
        let v = adjust_controls(ControlField::Primary, caps, want, 0).unwrap();
        assert_eq!(v, want | DEFAULT1_PROCBASED);
    }

    #[test]
    fn adjust_with_true_msr_leaves_default1_clear() {
        // TRUE MSR: CR3-load/store exiting (bits 15, 16) may be 0.
        let true_must = DEFAULT1_PROCBASED & !((1 << 15) | (1 << 16));
        let caps = ControlCaps::from_msr((0xFFFF_FFFFu64 << 32) | u64::from(true_must));
        let v = adjust_controls(
            ControlField::Primary,
            caps,
            PrimaryControls::HLT_EXITING.bits(),
            0,
        )
        .unwrap();
        assert_eq!(v & (1 << 15), 0);
        assert_eq!(v & (1 << 16), 0);
        assert_ne!(v & PrimaryControls::HLT_EXITING.bits(), 0);
    }

    #[test]
    fn adjust_drops_disallowed_optional_bits() {
        let allowed = ExitControls::HOST_ADDRESS_SPACE_SIZE.bits() | 0x36DFF;
        let caps = ControlCaps::from_msr(u64::from(allowed) << 32 | 0x36DFF);
        let v = adjust_controls(
            ControlField::Exit,
            caps,
            ExitControls::HOST_ADDRESS_SPACE_SIZE.bits(),
            ExitControls::LOAD_IA32_EFER.bits() | ExitControls::SAVE_IA32_EFER.bits(),
        )
        .unwrap();
        assert_eq!(v, allowed);
        assert_eq!(v & ExitControls::LOAD_IA32_EFER.bits(), 0);
    }

    #[test]
    fn adjust_fails_on_missing_required_bits() {
        // Secondary controls without EPT allowed.
        let caps = ControlCaps::from_msr(u64::from(SecondaryControls::ENABLE_RDTSCP.bits()) << 32);
        let err = adjust_controls(
            ControlField::Secondary,
            caps,
            SecondaryControls::ENABLE_EPT.bits(),
            SecondaryControls::ENABLE_RDTSCP.bits(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            VmxError::Control {
                field: ControlField::Secondary,
                missing: SecondaryControls::ENABLE_EPT.bits(),
                caps
            }
        );
        let text = err.to_string();
        assert!(text.contains("secondary processor-based"), "{text}");
        assert!(text.contains("0x2 "), "{text}");
    }

    #[test]
    fn adjust_never_sets_a_bit_outside_may_be_1() {
        // Exhaustive over a few small patterns: the result is always
        // within may_be_1 and includes must_be_1 when consistent.
        for must in [0u32, 0x16, 0x1_E172] {
            for may in [0xFFFF_FFFFu32, 0x1_E172 | 0x80, 0x16 | 0x200] {
                for opt in [0u32, 0x80, 0xFFFF_0000] {
                    let caps = ControlCaps {
                        must_be_1: must,
                        may_be_1: may,
                    };
                    if let Ok(v) = adjust_controls(ControlField::Entry, caps, 0, opt) {
                        assert_eq!(v & !may, 0);
                        assert_eq!(v & must & may, must & may);
                    }
                }
            }
        }
        let caps = ControlCaps {
            must_be_1: 0x11FF,
            may_be_1: 0x11FF | EntryControls::IA32E_MODE_GUEST.bits(),
        };
        assert!(caps.allows(EntryControls::IA32E_MODE_GUEST.bits()));
        assert!(!caps.allows(EntryControls::LOAD_IA32_EFER.bits()));
        let v = adjust_controls(
            ControlField::Entry,
            caps,
            EntryControls::IA32E_MODE_GUEST.bits(),
            0,
        )
        .unwrap();
        assert_eq!(v, 0x11FF | (1 << 9));
    }

    #[test]
    fn capability_msr_honours_basic_bit_55() {
        let with = VmxBasic(1 << 55);
        let without = VmxBasic(0);
        assert_eq!(ControlField::PinBased.capability_msr(with), 0x48D);
        assert_eq!(ControlField::Primary.capability_msr(with), 0x48E);
        assert_eq!(ControlField::Exit.capability_msr(with), 0x48F);
        assert_eq!(ControlField::Entry.capability_msr(with), 0x490);
        assert_eq!(ControlField::Secondary.capability_msr(with), 0x48B);
        assert_eq!(ControlField::PinBased.capability_msr(without), 0x481);
        assert_eq!(ControlField::Primary.capability_msr(without), 0x482);
        assert_eq!(ControlField::Exit.capability_msr(without), 0x483);
        assert_eq!(ControlField::Entry.capability_msr(without), 0x484);
        assert_eq!(ControlField::Secondary.capability_msr(without), 0x48B);
    }

    #[test]
    fn basic_fields() {
        // Revision 4, 4096-byte regions, WB, TRUE controls (a Skylake-like value).
        let b = VmxBasic(0x00DA_0400_0000_0004);
        assert_eq!(b.revision_id(), 4);
        assert_eq!(b.region_size(), 0x400);
        assert_eq!(b.memory_type(), 6);
        assert!(b.true_controls());
        assert!(!b.addresses_32bit());
        assert_eq!(
            VmxBasic(0x8000_0001).revision_id(),
            1,
            "bit 31 is not part of the revision"
        );
    }

    #[test]
    fn feature_control() {
        assert_eq!(feature_control_update(5), Ok(None));
        assert_eq!(feature_control_update(0), Ok(Some(5)));
        assert_eq!(feature_control_update(2), Ok(Some(7)));
        assert_eq!(
            feature_control_update(1),
            Err(VmxError::DisabledByFirmware { feature_control: 1 })
        );
        assert_eq!(
            feature_control_update(3),
            Err(VmxError::DisabledByFirmware { feature_control: 3 })
        );
        assert!(VmxError::DisabledByFirmware { feature_control: 1 }
            .to_string()
            .contains("locked"));
    }

    #[test]
    fn fixed_bits_and_shadows() {
        // Typical values: CR0 fixed0 = PE|NE|PG, fixed1 = all low 32 bits;
        // CR4 fixed0 = VMXE, fixed1 = 0x3767FF.
        let (cr0_f0, cr0_f1) = (0x8000_0021u64, 0xFFFF_FFFFu64);
        let (cr4_f0, cr4_f1) = (0x2000u64, 0x0037_67FFu64);
        assert_eq!(
            apply_fixed_bits(crate::guest::CR0, cr0_f0, cr0_f1),
            crate::guest::CR0
        );
        assert_eq!(apply_fixed_bits(0x11, cr0_f0, cr0_f1), 0x8000_0031);
        let cr4 = shadow_cr(crate::guest::CR4, cr4_f0, cr4_f1);
        assert_eq!(cr4.actual, crate::guest::CR4 | 0x2000);
        assert_eq!(cr4.shadow, crate::guest::CR4);
        assert_ne!(cr4.mask & 0x2000, 0, "VMXE is host-owned");
        assert_eq!(
            cr4.mask & crate::guest::CR4 & !cr4_f0,
            0,
            "guest bits stay guest-owned"
        );
        // What the guest reads: owned bits from the shadow, others actual.
        let read = (cr4.actual & !cr4.mask) | (cr4.shadow & cr4.mask);
        assert_eq!(read, crate::guest::CR4);
        let cr0 = shadow_cr(crate::guest::CR0, cr0_f0, cr0_f1);
        assert_eq!(
            (cr0.actual & !cr0.mask) | (cr0.shadow & cr0.mask),
            crate::guest::CR0
        );
        // Reserved bits cleared by fixed1.
        assert_eq!(apply_fixed_bits(1 << 40, 0, cr4_f1), 0);
    }

    #[test]
    fn access_rights_of_the_guest_gdt() {
        use crate::guest::GDT;
        // 64-bit code: type 0xB (accessed), S, P, L, G.
        assert_eq!(access_rights(GDT[1]), 0xA09B);
        // Data: type 3, S, P, D/B, G.
        assert_eq!(access_rights(GDT[2]), 0xC093);
        // User data and code: DPL 3.
        assert_eq!(access_rights(GDT[3]), 0xC0F3);
        assert_eq!(ar_dpl(access_rights(GDT[3])), 3);
        assert_eq!(access_rights(GDT[4]), 0xA0FB);
        assert_eq!(ar_dpl(access_rights(GDT[2])), 0);
        // System descriptors keep their type (no accessed bit invented).
        assert_eq!(access_rights(0x0000_8900_0000_0067), 0x89);
        assert_eq!(AR_TSS64_BUSY, 0x8B);
    }

    /// The guest-state checks of SDM Vol. 3C §27.3.1 that apply to a
    /// 64-bit guest without unrestricted guest, on [`guest_state`].
    #[test]
    fn guest_state_passes_entry_checks() {
        use x86::vmx::vmcs::guest as g;
        let (cr0_f0, cr0_f1) = (0x8000_0021u64, 0xFFFF_FFFFu64);
        let (cr4_f0, cr4_f1) = (0x2000u64, 0x0037_67FFu64);
        let mut ram = std::vec![0u8; 4 << 20];
        let start = crate::guest::GuestStart {
            rip: 0x20_0000,
            rsp: 32 << 20,
            ..crate::guest::write_tables(&mut ram, &crate::guest::GDT)
        };
        assert_eq!(start.gdt_limit, 39);
        let cr0 = shadow_cr(crate::guest::CR0, cr0_f0, cr0_f1);
        let cr4 = shadow_cr(crate::guest::CR4, cr4_f0, cr4_f1);
        let state = guest_state(&start, cr0, cr4);
        let get = |f: u32| {
            let hits: std::vec::Vec<u64> = state
                .iter()
                .filter(|(k, _)| *k == f)
                .map(|&(_, v)| v)
                .collect();
            assert_eq!(hits.len(), 1, "field {f:#x} set once");
            hits[0]
        };
        // Every field at most once.
        for (i, (f, _)) in state.iter().enumerate() {
            assert!(
                state[i + 1..].iter().all(|(k, _)| k != f),
                "field {f:#x} twice"
            );
        }
        // §27.3.1.1: control registers.
        let (c0, c4) = (get(g::CR0), get(g::CR4));
        assert_eq!(c0 & cr0_f0, cr0_f0);
        assert_eq!(c0 & !cr0_f1, 0);
        assert_eq!(c4 & cr4_f0, cr4_f0);
        assert_eq!(c4 & !cr4_f1, 0);
        assert_ne!(c0 & (1 << 31), 0, "IA-32e mode guest needs CR0.PG");
        assert_ne!(c4 & (1 << 5), 0, "IA-32e mode guest needs CR4.PAE");
        assert_eq!(get(g::DR7) >> 32, 0);
        assert_eq!(get(g::CR3) >> 52, 0);
        // §27.3.1.2: segment registers.
        let cs_ar = get(g::CS_ACCESS_RIGHTS) as u32;
        assert!(
            matches!(cs_ar & 0xF, 9 | 11 | 13 | 15),
            "CS type {cs_ar:#x}"
        );
        assert_ne!(cs_ar & (1 << 13), 0, "CS.L");
        assert_eq!(cs_ar & (1 << 14), 0, "CS.D must be 0 with CS.L");
        assert_eq!(get(g::TR_SELECTOR) & 4, 0, "TR.TI");
        let ss_ar = get(g::SS_ACCESS_RIGHTS) as u32;
        assert!(matches!(ss_ar & 0xF, 3 | 7), "SS type");
        assert_eq!(
            ar_dpl(ss_ar),
            (get(g::SS_SELECTOR) & 3) as u8,
            "SS.DPL = SS.RPL"
        );
        assert_eq!(
            ar_dpl(cs_ar),
            ar_dpl(ss_ar),
            "CS.DPL = SS.DPL for non-conforming CS"
        );
        let segs = [
            (g::CS_ACCESS_RIGHTS, g::CS_LIMIT, g::CS_BASE, g::CS_SELECTOR),
            (g::SS_ACCESS_RIGHTS, g::SS_LIMIT, g::SS_BASE, g::SS_SELECTOR),
            (g::DS_ACCESS_RIGHTS, g::DS_LIMIT, g::DS_BASE, g::DS_SELECTOR),
            (g::ES_ACCESS_RIGHTS, g::ES_LIMIT, g::ES_BASE, g::ES_SELECTOR),
            (g::FS_ACCESS_RIGHTS, g::FS_LIMIT, g::FS_BASE, g::FS_SELECTOR),
            (g::GS_ACCESS_RIGHTS, g::GS_LIMIT, g::GS_BASE, g::GS_SELECTOR),
            (g::TR_ACCESS_RIGHTS, g::TR_LIMIT, g::TR_BASE, g::TR_SELECTOR),
            (
                g::LDTR_ACCESS_RIGHTS,
                g::LDTR_LIMIT,
                g::LDTR_BASE,
                g::LDTR_SELECTOR,
            ),
        ];
        for (ar_f, limit_f, base_f, sel_f) in segs {
            let (ar, limit, base) = (get(ar_f) as u32, get(limit_f), get(base_f));
            let _ = get(sel_f);
            assert_eq!(
                ar & 0xFFFE_0F00,
                0,
                "reserved access-rights bits of {ar_f:#x}"
            );
            assert_eq!(base, 0);
            if ar & AR_UNUSABLE != 0 {
                continue;
            }
            assert_ne!(ar & AR_P, 0, "{ar_f:#x} present");
            if ar & AR_S != 0 {
                assert_ne!(ar & AR_ACCESSED, 0, "{ar_f:#x} accessed");
            }
            let g_bit = ar & (1 << 15) != 0;
            if limit & 0xFFF != 0xFFF {
                assert!(!g_bit, "{ar_f:#x}: limit {limit:#x} needs G = 0");
            }
            if limit >> 20 != 0 {
                assert!(g_bit, "{ar_f:#x}: limit {limit:#x} needs G = 1");
            }
        }
        let tr_ar = get(g::TR_ACCESS_RIGHTS) as u32;
        assert_eq!(tr_ar & 0xF, 11, "TR: busy 64-bit TSS");
        assert_eq!(tr_ar & (AR_S | AR_UNUSABLE), 0, "TR: system, usable");
        let ldtr_ar = get(g::LDTR_ACCESS_RIGHTS) as u32;
        assert_ne!(ldtr_ar & AR_UNUSABLE, 0, "LDTR unused");
        // GDTR/IDTR: limits fit 16 bits.
        assert!(get(g::GDTR_LIMIT) <= 0xFFFF && get(g::IDTR_LIMIT) <= 0xFFFF);
        assert_eq!(get(g::GDTR_BASE), crate::guest::GDT_BASE);
        // §27.3.1.4: RFLAGS bit 1 set, reserved bits clear, IF clear.
        assert_eq!(get(g::RFLAGS), 2);
        // §27.3.1.5: active, no blocking, link pointer all ones.
        assert_eq!(get(g::ACTIVITY_STATE), 0);
        assert_eq!(get(g::INTERRUPTIBILITY_STATE), 0);
        assert_eq!(get(g::PENDING_DBG_EXCEPTIONS), 0);
        assert_eq!(get(g::LINK_PTR_FULL), u64::MAX);
        assert_eq!((get(g::RIP), get(g::RSP)), (start.rip, start.rsp));
        // The guest reads back what it expects.
        assert_eq!(
            (c0 & !cr0.mask) | (cr0.shadow & cr0.mask),
            crate::guest::CR0
        );
        assert_eq!(
            (c4 & !cr4.mask) | (cr4.shadow & cr4.mask),
            crate::guest::CR4
        );
    }

    #[test]
    fn tss_descriptor_layout() {
        let d = tss_descriptor(0xFFFF_8000_1234_5678, 0x67);
        assert_eq!(d[0] & 0xFFFF, 0x67, "limit 15:0");
        assert_eq!((d[0] >> 16) & 0xFF_FFFF, 0x34_5678, "base 23:0");
        assert_eq!((d[0] >> 40) & 0xFF, 0x89, "P, DPL 0, type 9");
        assert_eq!((d[0] >> 48) & 0xF, 0, "limit 19:16");
        assert_eq!((d[0] >> 52) & 0xF, 0, "byte granular");
        assert_eq!(d[0] >> 56, 0x12, "base 31:24");
        assert_eq!(d[1], 0xFFFF_8000, "base 63:32, upper dword reserved 0");
        assert_eq!(access_rights(d[0]), 0x89);
        let big = tss_descriptor(0x10_0000, 0x1_2345);
        assert_eq!(big[0] & 0xFFFF, 0x2345);
        assert_eq!((big[0] >> 48) & 0xF, 1);
    }

    #[test]
    fn ept_capabilities() {
        let good = (1 << 6) | (1 << 14) | (1 << 16) | (1 << 17);
        assert_eq!(check_ept_caps(good), Ok(()));
        assert!(matches!(
            check_ept_caps(good & !(1 << 6)),
            Err(VmxError::EptCapability { .. })
        ));
        assert!(matches!(
            check_ept_caps(good & !(1 << 14)),
            Err(VmxError::EptCapability { .. })
        ));
        let e = check_ept_caps(good & !(1 << 16)).unwrap_err();
        assert!(e.to_string().contains("2 MiB"), "{e}");
        // The EPTP nested.rs makes matches what these bits promise.
        assert_eq!(crate::nested::eptp(0x5000) & 0x3F, 6 | (3 << 3));
    }

    #[test]
    fn exception_injection() {
        // #UD: hardware exception, no error code even if one is offered.
        assert_eq!(entry_interruption_info(6, None), (0x8000_0306, None));
        assert_eq!(entry_interruption_info(6, Some(0)), (0x8000_0306, None));
        // #GP(0x10): error code delivered.
        assert_eq!(
            entry_interruption_info(13, Some(0x10)),
            (0x8000_0B0D, Some(0x10))
        );
        // #PF and #DF push one; #DE does not.
        assert_eq!(entry_interruption_info(14, Some(2)).1, Some(2));
        assert_eq!(entry_interruption_info(8, Some(0)).0 & (1 << 11), 1 << 11);
        assert_eq!(entry_interruption_info(0, Some(5)), (0x8000_0300, None));
        // NMI is its own type.
        assert_eq!(entry_interruption_info(2, None).0, 0x8000_0202);
    }

    #[test]
    fn icebp_is_reflected_as_a_privileged_software_exception_with_its_length() {
        // ICEBP: VM-exit interruption information vector 1, type 5, valid.
        assert_eq!(
            reflected_exception(1, None, 0x8000_0501, 1),
            (0x8000_0501, None, Some(1))
        );
        // A hardware #DB (type 3: single step, data breakpoint): as before.
        assert_eq!(
            reflected_exception(1, None, 0x8000_0301, 0),
            (0x8000_0301, None, None)
        );
        // INT3 keeps type 6 and its length; another vector, or no valid
        // exit event, is an ordinary hardware exception.
        assert_eq!(
            reflected_exception(3, None, 0x8000_0603, 1),
            (0x8000_0603, None, Some(1))
        );
        assert_eq!(
            reflected_exception(13, Some(0), 0x8000_0501, 1),
            (0x8000_0B0D, Some(0), None)
        );
        assert_eq!(
            reflected_exception(1, None, 0x501, 1),
            (0x8000_0301, None, None)
        );
    }

    #[test]
    fn failures_read_well() {
        let e = VmxError::Instruction {
            insn: "VMLAUNCH",
            field: 0,
            failure: VmFailure::Valid(7),
        };
        let s = e.to_string();
        assert!(s.starts_with("VMLAUNCH failed: VMfailValid, VM-instruction error 7: VM entry with invalid control field(s)"), "{s}");
        assert!(s.contains("27.2.1"), "{s}");
        let e = VmxError::Instruction {
            insn: "VMPTRLD",
            field: 0,
            failure: VmFailure::Invalid,
        };
        assert_eq!(
            e.to_string(),
            "VMPTRLD failed: VMfailInvalid (no valid current VMCS)"
        );
        let e = VmxError::Instruction {
            insn: "VMWRITE",
            field: 0x681E,
            failure: VmFailure::Valid(12),
        };
        assert!(e.to_string().contains("field 0x681e"), "{e}");
        assert!(VmFailure::Valid(99).to_string().contains("unknown"));
    }
}
