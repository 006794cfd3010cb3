//! Every table entry against the manual's number, written out here
//! independently of the crate's own tables.
//!
//! Sources: Intel SDM Vol. 3C Appendix C, Table C-1 (basic exit reasons)
//! and §31.4, Table 31-1 (VM-instruction error numbers); AMD APM Vol. 2
//! Appendix C, Table C-1 (SVM intercept exit codes).

use std::collections::BTreeSet;
use vmexit::svm::SvmExitCode;
use vmexit::vmx::{VmInstructionError, VmxExitReason};
use vmexit::{UnknownReason, Vendor};

/// (SDM number, expected variant), one line per row of Table C-1.
const VMX: &[(u16, VmxExitReason)] = {
    use VmxExitReason::*;
    &[
        (0, ExceptionOrNmi),
        (1, ExternalInterrupt),
        (2, TripleFault),
        (3, InitSignal),
        (4, StartupIpi),
        (5, IoSmi),
        (6, OtherSmi),
        (7, InterruptWindow),
        (8, NmiWindow),
        (9, TaskSwitch),
        (10, Cpuid),
        (11, Getsec),
        (12, Hlt),
        (13, Invd),
        (14, Invlpg),
        (15, Rdpmc),
        (16, Rdtsc),
        (17, Rsm),
        (18, Vmcall),
        (19, Vmclear),
        (20, Vmlaunch),
        (21, Vmptrld),
        (22, Vmptrst),
        (23, Vmread),
        (24, Vmresume),
        (25, Vmwrite),
        (26, Vmxoff),
        (27, Vmxon),
        (28, ControlRegisterAccess),
        (29, MovDr),
        (30, IoInstruction),
        (31, Rdmsr),
        (32, Wrmsr),
        (33, EntryFailureGuestState),
        (34, EntryFailureMsrLoading),
        (36, Mwait),
        (37, MonitorTrapFlag),
        (39, Monitor),
        (40, Pause),
        (41, EntryFailureMachineCheck),
        (43, TprBelowThreshold),
        (44, ApicAccess),
        (45, VirtualizedEoi),
        (46, GdtrIdtrAccess),
        (47, LdtrTrAccess),
        (48, EptViolation),
        (49, EptMisconfiguration),
        (50, Invept),
        (51, Rdtscp),
        (52, PreemptionTimer),
        (53, Invvpid),
        (54, Wbinvd),
        (55, Xsetbv),
        (56, ApicWrite),
        (57, Rdrand),
        (58, Invpcid),
        (59, Vmfunc),
        (60, Encls),
        (61, Rdseed),
        (62, PmlFull),
        (63, Xsaves),
        (64, Xrstors),
        (65, Pconfig),
        (66, SppEvent),
        (67, Umwait),
        (68, Tpause),
        (69, Loadiwkey),
        (70, Enclv),
        (72, EnqcmdPasidFailure),
        (73, EnqcmdsPasidFailure),
        (74, BusLock),
        (75, InstructionTimeout),
        (76, Seamcall),
        (77, Tdcall),
        (78, Rdmsrlist),
        (79, Wrmsrlist),
        (80, Urdmsr),
        (81, Uwrmsr),
        (84, RdmsrImmediate),
        (85, WrmsrnsImmediate),
    ]
};

#[test]
fn every_vmx_reason_decodes_to_its_variant() {
    for &(n, v) in VMX {
        assert_eq!(VmxExitReason::from_raw(n), Ok(v), "reason {n}");
        assert_eq!(
            VmxExitReason::try_from(u32::from(n)),
            Ok(v),
            "reason {n} as u32"
        );
        assert_eq!(v.raw(), n);
        assert_eq!(u32::from(v), u32::from(n));
    }
}

#[test]
fn vmx_table_has_nothing_else() {
    let listed: BTreeSet<u16> = VMX.iter().map(|&(n, _)| n).collect();
    assert_eq!(listed.len(), VMX.len(), "duplicate number in the test list");
    assert_eq!(VmxExitReason::ALL.len(), VMX.len());
    for n in 0..=u16::MAX {
        match VmxExitReason::from_raw(n) {
            Ok(r) => {
                assert!(listed.contains(&n), "{n} decodes but is not in Table C-1");
                assert_eq!(r.raw(), n);
            }
            Err(e) => {
                assert!(
                    !listed.contains(&n),
                    "{n} is in Table C-1 but does not decode"
                );
                assert_eq!(
                    e,
                    UnknownReason {
                        vendor: Vendor::Intel,
                        raw: u64::from(n)
                    }
                );
                assert_eq!(e.raw(), u64::from(n));
            }
        }
    }
}

#[test]
fn vmx_unused_numbers_are_unknown() {
    for n in [35u16, 38, 42, 71, 82, 83, 86, 0x7fff, 0xffff] {
        assert_eq!(
            VmxExitReason::from_raw(n),
            Err(UnknownReason {
                vendor: Vendor::Intel,
                raw: u64::from(n)
            })
        );
    }
    // A full exit-reason field is not a basic reason.
    assert_eq!(
        VmxExitReason::try_from(0x8000_0021u32),
        Err(UnknownReason {
            vendor: Vendor::Intel,
            raw: 0x8000_0021
        })
    );
}

#[test]
fn vmx_names_are_the_sdm_descriptions() {
    use VmxExitReason::*;
    assert_eq!(
        ExceptionOrNmi.name(),
        "Exception or non-maskable interrupt (NMI)"
    );
    assert_eq!(ControlRegisterAccess.name(), "Control-register accesses");
    assert_eq!(
        EntryFailureGuestState.name(),
        "VM-entry failure due to invalid guest state"
    );
    assert_eq!(
        EntryFailureMsrLoading.name(),
        "VM-entry failure due to MSR loading"
    );
    assert_eq!(
        EntryFailureMachineCheck.name(),
        "VM-entry failure due to machine-check event"
    );
    assert_eq!(EptViolation.name(), "EPT violation");
    assert_eq!(Vmcall.to_string(), "VMCALL (exit reason 18)");
    for &(_, v) in VMX {
        assert_eq!(
            v.is_entry_failure(),
            matches!(
                v,
                EntryFailureGuestState | EntryFailureMsrLoading | EntryFailureMachineCheck
            )
        );
    }
}

/// (SDM number, variant, SDM text) for every row of Table 31-1.
const VM_ERRORS: &[(u32, VmInstructionError, &str)] = {
    use VmInstructionError::*;
    &[
        (1, VmcallInVmxRoot, "VMCALL executed in VMX root operation"),
        (
            2,
            VmclearInvalidAddress,
            "VMCLEAR with invalid physical address",
        ),
        (3, VmclearVmxonPointer, "VMCLEAR with VMXON pointer"),
        (4, VmlaunchNonClearVmcs, "VMLAUNCH with non-clear VMCS"),
        (
            5,
            VmresumeNonLaunchedVmcs,
            "VMRESUME with non-launched VMCS",
        ),
        (
            6,
            VmresumeAfterVmxoff,
            "VMRESUME after VMXOFF (VMXOFF and VMXON between VMLAUNCH and VMRESUME)",
        ),
        (
            7,
            EntryInvalidControlFields,
            "VM entry with invalid control field(s)",
        ),
        (
            8,
            EntryInvalidHostState,
            "VM entry with invalid host-state field(s)",
        ),
        (
            9,
            VmptrldInvalidAddress,
            "VMPTRLD with invalid physical address",
        ),
        (10, VmptrldVmxonPointer, "VMPTRLD with VMXON pointer"),
        (
            11,
            VmptrldBadRevision,
            "VMPTRLD with incorrect VMCS revision identifier",
        ),
        (
            12,
            UnsupportedVmcsComponent,
            "VMREAD/VMWRITE from/to unsupported VMCS component",
        ),
        (
            13,
            VmwriteReadOnlyComponent,
            "VMWRITE to read-only VMCS component",
        ),
        (15, VmxonInVmxRoot, "VMXON executed in VMX root operation"),
        (
            16,
            EntryInvalidExecutiveVmcsPointer,
            "VM entry with invalid executive-VMCS pointer",
        ),
        (
            17,
            EntryNonLaunchedExecutiveVmcs,
            "VM entry with non-launched executive VMCS",
        ),
        (
            18,
            EntryExecutiveVmcsNotVmxon,
            "VM entry with executive-VMCS pointer not VMXON pointer (when attempting to \
             deactivate the dual-monitor treatment of SMIs and SMM)",
        ),
        (
            19,
            VmcallNonClearVmcs,
            "VMCALL with non-clear VMCS (when attempting to activate the dual-monitor \
             treatment of SMIs and SMM)",
        ),
        (
            20,
            VmcallInvalidExitControls,
            "VMCALL with invalid VM-exit control fields",
        ),
        (
            22,
            VmcallBadMsegRevision,
            "VMCALL with incorrect MSEG revision identifier (when attempting to activate the \
             dual-monitor treatment of SMIs and SMM)",
        ),
        (
            23,
            VmxoffUnderDualMonitor,
            "VMXOFF under dual-monitor treatment of SMIs and SMM",
        ),
        (
            24,
            VmcallInvalidSmmMonitorFeatures,
            "VMCALL with invalid SMM-monitor features (when attempting to activate the \
             dual-monitor treatment of SMIs and SMM)",
        ),
        (
            25,
            EntryInvalidExecutiveControls,
            "VM entry with invalid VM-execution control fields in executive VMCS (when \
             attempting to return from SMM)",
        ),
        (
            26,
            EntryEventsBlockedByMovSs,
            "VM entry with events blocked by MOV SS",
        ),
        (
            28,
            InvalidInveptInvvpidOperand,
            "Invalid operand to INVEPT/INVVPID",
        ),
    ]
};

#[test]
fn every_vm_instruction_error_decodes_with_its_meaning() {
    for &(n, v, text) in VM_ERRORS {
        assert_eq!(VmInstructionError::from_raw(n), Ok(v), "error {n}");
        assert_eq!(VmInstructionError::try_from(n), Ok(v));
        assert_eq!(v.raw(), n);
        assert_eq!(v.description(), text, "error {n}");
        assert_eq!(vmexit::vmx::vm_instruction_error_text(n), text);
        assert_eq!(v.to_string(), format!("VM-instruction error {n}: {text}"));
        assert!(!v.hint().is_empty());
    }
    assert_eq!(VmInstructionError::ALL.len(), VM_ERRORS.len());
}

#[test]
fn vm_instruction_error_gaps_are_unknown() {
    let listed: BTreeSet<u32> = VM_ERRORS.iter().map(|&(n, _, _)| n).collect();
    for n in 0..=1000u32 {
        if !listed.contains(&n) {
            assert_eq!(VmInstructionError::from_raw(n), Err(n));
        }
    }
    for n in [14, 21, 27, 29, u32::MAX] {
        assert_eq!(VmInstructionError::from_raw(n), Err(n));
        assert_eq!(
            vmexit::vmx::vm_instruction_error_text(n),
            "unknown VM-instruction error"
        );
    }
    assert_eq!(vmexit::vmx::vm_instruction_error_text(0), "no error");
    assert!(VmInstructionError::EntryInvalidControlFields
        .hint()
        .contains("controls"));
    assert!(VmInstructionError::EntryInvalidHostState
        .hint()
        .contains("host-state"));
}

/// (APM code, expected variant, APM mnemonic) for every single-code row of
/// Table C-1. The ranges are checked in `svm_ranges_keep_the_number`.
const SVM: &[(u64, SvmExitCode, &str)] = {
    use SvmExitCode::*;
    &[
        (0x60, Intr, "VMEXIT_INTR"),
        (0x61, Nmi, "VMEXIT_NMI"),
        (0x62, Smi, "VMEXIT_SMI"),
        (0x63, Init, "VMEXIT_INIT"),
        (0x64, Vintr, "VMEXIT_VINTR"),
        (0x65, Cr0SelectiveWrite, "VMEXIT_CR0_SEL_WRITE"),
        (0x66, IdtrRead, "VMEXIT_IDTR_READ"),
        (0x67, GdtrRead, "VMEXIT_GDTR_READ"),
        (0x68, LdtrRead, "VMEXIT_LDTR_READ"),
        (0x69, TrRead, "VMEXIT_TR_READ"),
        (0x6A, IdtrWrite, "VMEXIT_IDTR_WRITE"),
        (0x6B, GdtrWrite, "VMEXIT_GDTR_WRITE"),
        (0x6C, LdtrWrite, "VMEXIT_LDTR_WRITE"),
        (0x6D, TrWrite, "VMEXIT_TR_WRITE"),
        (0x6E, Rdtsc, "VMEXIT_RDTSC"),
        (0x6F, Rdpmc, "VMEXIT_RDPMC"),
        (0x70, Pushf, "VMEXIT_PUSHF"),
        (0x71, Popf, "VMEXIT_POPF"),
        (0x72, Cpuid, "VMEXIT_CPUID"),
        (0x73, Rsm, "VMEXIT_RSM"),
        (0x74, Iret, "VMEXIT_IRET"),
        (0x75, Swint, "VMEXIT_SWINT"),
        (0x76, Invd, "VMEXIT_INVD"),
        (0x77, Pause, "VMEXIT_PAUSE"),
        (0x78, Hlt, "VMEXIT_HLT"),
        (0x79, Invlpg, "VMEXIT_INVLPG"),
        (0x7A, Invlpga, "VMEXIT_INVLPGA"),
        (0x7B, Ioio, "VMEXIT_IOIO"),
        (0x7C, Msr, "VMEXIT_MSR"),
        (0x7D, TaskSwitch, "VMEXIT_TASK_SWITCH"),
        (0x7E, FerrFreeze, "VMEXIT_FERR_FREEZE"),
        (0x7F, Shutdown, "VMEXIT_SHUTDOWN"),
        (0x80, Vmrun, "VMEXIT_VMRUN"),
        (0x81, Vmmcall, "VMEXIT_VMMCALL"),
        (0x82, Vmload, "VMEXIT_VMLOAD"),
        (0x83, Vmsave, "VMEXIT_VMSAVE"),
        (0x84, Stgi, "VMEXIT_STGI"),
        (0x85, Clgi, "VMEXIT_CLGI"),
        (0x86, Skinit, "VMEXIT_SKINIT"),
        (0x87, Rdtscp, "VMEXIT_RDTSCP"),
        (0x88, Icebp, "VMEXIT_ICEBP"),
        (0x89, Wbinvd, "VMEXIT_WBINVD"),
        (0x8A, Monitor, "VMEXIT_MONITOR"),
        (0x8B, Mwait, "VMEXIT_MWAIT"),
        (0x8C, MwaitConditional, "VMEXIT_MWAIT_CONDITIONAL"),
        (0x8D, Xsetbv, "VMEXIT_XSETBV"),
        (0x8E, Rdpru, "VMEXIT_RDPRU"),
        (0x8F, EferWriteTrap, "VMEXIT_EFER_WRITE_TRAP"),
        (0xA0, Invlpgb, "VMEXIT_INVLPGB"),
        (0xA1, InvlpgbIllegal, "VMEXIT_INVLPGB_ILLEGAL"),
        (0xA2, Invpcid, "VMEXIT_INVPCID"),
        (0xA3, Mcommit, "VMEXIT_MCOMMIT"),
        (0xA4, Tlbsync, "VMEXIT_TLBSYNC"),
        (0xA5, Buslock, "VMEXIT_BUSLOCK"),
        (0xA6, IdleHlt, "VMEXIT_IDLE_HLT"),
        (0x400, Npf, "VMEXIT_NPF"),
        (0x401, AvicIncompleteIpi, "AVIC_INCOMPLETE_IPI"),
        (0x402, AvicNoAccel, "AVIC_NOACCEL"),
        (0x403, Vmgexit, "VMEXIT_VMGEXIT"),
        (-1_i64 as u64, Invalid, "VMEXIT_INVALID"),
        (-2_i64 as u64, Busy, "VMEXIT_BUSY"),
        (-3_i64 as u64, IdleRequired, "VMEXIT_IDLE_REQUIRED"),
        (-4_i64 as u64, InvalidPmc, "VMEXIT_INVALID_PMC"),
    ]
};

#[test]
fn every_svm_code_decodes_to_its_variant() {
    for &(n, v, name) in SVM {
        assert_eq!(SvmExitCode::from_raw(n), Ok(v), "code {n:#x}");
        assert_eq!(SvmExitCode::try_from(n), Ok(v));
        assert_eq!(v.raw(), n);
        assert_eq!(u64::from(v), n);
        assert_eq!(v.name(), name);
        assert_eq!(v.is_vmrun_failure(), (n as i64) < 0);
    }
    assert_eq!(
        SvmExitCode::from_raw(0xffff_ffff_ffff_ffff),
        Ok(SvmExitCode::Invalid)
    );
    assert_eq!(SvmExitCode::Invalid.to_string(), "VMEXIT_INVALID (-1)");
    assert_eq!(SvmExitCode::Vmmcall.to_string(), "VMEXIT_VMMCALL (0x81)");
}

#[test]
fn svm_ranges_keep_the_number() {
    for n in 0u8..16 {
        let base = u64::from(n);
        assert_eq!(SvmExitCode::from_raw(base), Ok(SvmExitCode::CrRead(n)));
        assert_eq!(
            SvmExitCode::from_raw(0x10 + base),
            Ok(SvmExitCode::CrWrite(n))
        );
        assert_eq!(
            SvmExitCode::from_raw(0x20 + base),
            Ok(SvmExitCode::DrRead(n))
        );
        assert_eq!(
            SvmExitCode::from_raw(0x30 + base),
            Ok(SvmExitCode::DrWrite(n))
        );
        assert_eq!(
            SvmExitCode::from_raw(0x90 + base),
            Ok(SvmExitCode::CrWriteTrap(n))
        );
        assert_eq!(SvmExitCode::CrRead(n).raw(), base);
        assert_eq!(SvmExitCode::CrWrite(n).raw(), 0x10 + base);
        assert_eq!(SvmExitCode::DrRead(n).raw(), 0x20 + base);
        assert_eq!(SvmExitCode::DrWrite(n).raw(), 0x30 + base);
        assert_eq!(SvmExitCode::CrWriteTrap(n).raw(), 0x90 + base);
    }
    for v in 0u8..32 {
        assert_eq!(
            SvmExitCode::from_raw(0x40 + u64::from(v)),
            Ok(SvmExitCode::Exception(v))
        );
        assert_eq!(SvmExitCode::Exception(v).raw(), 0x40 + u64::from(v));
    }
    assert_eq!(SvmExitCode::CrRead(3).to_string(), "VMEXIT_CR3_READ (0x3)");
    assert_eq!(
        SvmExitCode::CrWrite(8).to_string(),
        "VMEXIT_CR8_WRITE (0x18)"
    );
    assert_eq!(
        SvmExitCode::Exception(14).to_string(),
        "VMEXIT_EXCP14 (0x4e)"
    );
    assert_eq!(
        SvmExitCode::CrWriteTrap(4).to_string(),
        "VMEXIT_CR4_WRITE_TRAP (0x94)"
    );
    // Out-of-range numbers in hand-made values are masked, and still round-trip.
    assert_eq!(SvmExitCode::CrRead(0x13).raw(), 0x3);
    assert_eq!(SvmExitCode::Exception(0x2e).raw(), 0x4e);
}

#[test]
fn svm_table_has_nothing_else() {
    let singles: BTreeSet<u64> = SVM.iter().map(|&(n, _, _)| n).collect();
    let is_listed = |n: u64| singles.contains(&n) || n <= 0x5f || (0x90..=0x9f).contains(&n);
    let mut known = 0;
    let negatives = (u64::MAX - 0xffff)..=u64::MAX;
    for n in (0..=0x1_0000u64).chain(negatives) {
        match SvmExitCode::from_raw(n) {
            Ok(c) => {
                assert!(is_listed(n), "{n:#x} decodes but is not in Table C-1");
                assert_eq!(c.raw(), n);
                known += 1;
            }
            Err(e) => {
                assert!(!is_listed(n), "{n:#x} is in Table C-1 but does not decode");
                assert_eq!(
                    e,
                    UnknownReason {
                        vendor: Vendor::Amd,
                        raw: n
                    }
                );
            }
        }
    }
    // 0x00-0x5F (96), 0x90-0x9F (16), and the single codes.
    assert_eq!(known, 96 + 16 + SVM.len());
    for n in [0xa7u64, 0xff, 0x3ff, 0x404, 0x1000, 1 << 63, -5_i64 as u64] {
        assert_eq!(
            SvmExitCode::from_raw(n),
            Err(UnknownReason {
                vendor: Vendor::Amd,
                raw: n
            })
        );
    }
}

#[test]
fn unknown_reason_display() {
    let e = VmxExitReason::from_raw(35).unwrap_err();
    assert_eq!(e.to_string(), "unknown Intel VMX exit reason 35");
    let e = SvmExitCode::from_raw(0xa7).unwrap_err();
    assert_eq!(e.to_string(), "unknown AMD SVM exit code 0xa7");
}
