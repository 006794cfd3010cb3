//! Exit-qualification and EXITINFO decoders on real bit patterns, and the
//! mapping of both vendors into the neutral `Exit`.

use vmexit::svm::{
    exception_has_error_code, msr_is_write, CrAccessInfo, ExitIntInfo, IoioInfo, NpfErrorCode,
    Segment, SvmEventType, VMEXIT_BUSY, VMEXIT_INVALID,
};
use vmexit::vmx::{
    diagnose_entry_failure, CrAccessType, CrQualification, EntryFailure, EptViolation, EventType,
    ExitReasonField, GuestStateProblem, InterruptionInfo, IoQualification, VmxExitReason,
};
use vmexit::{
    Exit, Insn, IoExit, NestedAccess, RawExit, SvmExitFields, Vendor, VirtInsn, VmExit,
    VmxExitFields,
};

// ---- VMX --------------------------------------------------------------

#[test]
fn exit_reason_field_bits() {
    let f = ExitReasonField(0x8000_0021); // bochs: bad guest state
    assert_eq!(f.basic(), 33);
    assert_eq!(f.reason(), Ok(VmxExitReason::EntryFailureGuestState));
    assert!(f.entry_failure());
    assert!(!f.enclave_mode() && !f.pending_mtf() && !f.from_vmx_root() && !f.bus_lock_detected());

    let f = ExitReasonField(0x0800_0012); // VMCALL from an enclave
    assert_eq!(f.reason(), Ok(VmxExitReason::Vmcall));
    assert!(f.enclave_mode() && !f.entry_failure());

    let f = ExitReasonField((1 << 28) | (1 << 29) | 6);
    assert!(f.pending_mtf() && f.from_vmx_root());
    assert_eq!(f.reason(), Ok(VmxExitReason::OtherSmi));

    let f = ExitReasonField((1 << 26) | 30);
    assert!(f.bus_lock_detected());
    assert_eq!(f.reason(), Ok(VmxExitReason::IoInstruction));

    let f = ExitReasonField(0x8000_ffff);
    assert_eq!(f.basic(), 0xffff);
    assert_eq!(f.reason().map_err(|e| e.raw()), Err(0xffff));
    assert!(f.to_string().contains("unknown exit reason"));
    assert_eq!(
        ExitReasonField(0x8000_0022).to_string(),
        "VM-entry failure due to MSR loading (34, field 0x80000022, VM-entry failure)"
    );
}

#[test]
fn io_qualification() {
    // OUT DX, AL to COM1.
    let q = IoQualification(0x03f8_0000);
    assert_eq!(
        (q.size(), q.is_out(), q.string(), q.rep(), q.immediate()),
        (Some(1), true, false, false, false)
    );
    assert_eq!(q.port(), 0x3f8);
    // IN AL, 0x60 (immediate port).
    let q = IoQualification(0x0060_0048);
    assert_eq!(
        (q.size(), q.is_in(), q.immediate(), q.port()),
        (Some(1), true, true, 0x60)
    );
    // REP OUTSW to 0x1F0.
    let q = IoQualification(0x01f0_0031);
    assert_eq!(
        (q.size(), q.is_out(), q.string(), q.rep(), q.port()),
        (Some(2), true, true, true, 0x1f0)
    );
    // IN EAX, DX from 0xCFC.
    let q = IoQualification(0x0cfc_000b);
    assert_eq!((q.size(), q.is_in(), q.port()), (Some(4), true, 0xcfc));
    // Size encodings 2 and 4..7 are not used.
    for s in [2u64, 4, 5, 6, 7] {
        assert_eq!(IoQualification(s).size(), None);
    }
}

#[test]
fn cr_qualification() {
    // MOV CR3, RAX.
    let q = CrQualification(0x3);
    assert_eq!(
        (q.cr(), q.access_type(), q.gpr()),
        (3, CrAccessType::MovToCr, 0)
    );
    // MOV RCX, CR4.
    let q = CrQualification(0x114);
    assert_eq!(
        (q.cr(), q.access_type(), q.gpr()),
        (4, CrAccessType::MovFromCr, 1)
    );
    // MOV CR8, R15.
    let q = CrQualification(0xf08);
    assert_eq!(
        (q.cr(), q.access_type(), q.gpr()),
        (8, CrAccessType::MovToCr, 15)
    );
    // CLTS.
    assert_eq!(CrQualification(0x20).access_type(), CrAccessType::Clts);
    // LMSW AX with AX = 0x0011 (register operand).
    let q = CrQualification(0x0011_0030);
    assert_eq!(
        (q.access_type(), q.lmsw_memory_operand(), q.lmsw_source()),
        (CrAccessType::Lmsw, false, 0x11)
    );
    // LMSW [mem] with 0x0001.
    let q = CrQualification(0x0001_0070);
    assert_eq!(
        (q.access_type(), q.lmsw_memory_operand(), q.lmsw_source()),
        (CrAccessType::Lmsw, true, 1)
    );
}

#[test]
fn ept_violation_qualification() {
    // Write to an unmapped GPA, linear address valid, access to the translation.
    let q = EptViolation::from_qualification(0x182);
    assert!(q.contains(EptViolation::WRITE) && !q.contains(EptViolation::READ));
    assert!(!q.present());
    assert_eq!(q.translated_access(), Some(true));
    // Instruction fetch from a read-only, non-executable page.
    let q = EptViolation::from_qualification(0x18c);
    assert!(q.contains(EptViolation::FETCH | EptViolation::READABLE));
    assert!(!q.contains(EptViolation::EXECUTABLE));
    assert!(q.present());
    // Read during the guest page walk.
    let q = EptViolation::from_qualification(0x81);
    assert_eq!(q.translated_access(), Some(false));
    // No guest-linear address (e.g. an access while delivering an event).
    assert_eq!(
        EptViolation::from_qualification(0x1).translated_access(),
        None
    );
    // NMI unblocking and shadow-stack bits; unknown high bits are kept.
    let q = EptViolation::from_qualification((1 << 12) | (1 << 13) | (1 << 40));
    assert!(q.contains(EptViolation::NMI_UNBLOCKING | EptViolation::SHADOW_STACK));
    assert_eq!(q.bits(), (1 << 12) | (1 << 13) | (1 << 40));
}

#[test]
fn interruption_info() {
    // #PF, hardware exception, error code valid.
    let i = InterruptionInfo(0x8000_0b0e);
    assert_eq!(
        (i.vector(), i.event_type(), i.error_code_valid(), i.valid()),
        (14, EventType::HardwareException, true, true)
    );
    // NMI.
    let i = InterruptionInfo(0x8000_0202);
    assert_eq!((i.vector(), i.event_type()), (2, EventType::Nmi));
    // INT3 (software exception), no error code.
    let i = InterruptionInfo(0x8000_0603);
    assert_eq!(
        (i.vector(), i.event_type(), i.error_code_valid()),
        (3, EventType::SoftwareException, false)
    );
    // External interrupt 0x20.
    assert_eq!(
        InterruptionInfo(0x8000_0020).event_type(),
        EventType::ExternalInterrupt
    );
    // INT1 / ICEBP, privileged software exception.
    assert_eq!(
        InterruptionInfo(0x8000_0501).event_type(),
        EventType::PrivilegedSoftwareException
    );
    // NMI unblocking due to IRET.
    assert!(InterruptionInfo(0x8000_1306).nmi_unblocking());
    // Invalid field.
    assert!(!InterruptionInfo(0x0000_0b0e).valid());
    assert_eq!(InterruptionInfo(0x100).event_type(), EventType::Reserved);
    assert_eq!(InterruptionInfo(0x700).event_type(), EventType::Other);
}

#[test]
fn entry_failure_diagnosis() {
    use GuestStateProblem::*;
    assert_eq!(
        diagnose_entry_failure(33, 0),
        None,
        "bit 31 clear: not a failure"
    );
    let cases = [
        (
            0x8000_0021,
            0,
            EntryFailure::InvalidGuestState(GuestStateCheck),
            "guest-state area check",
        ),
        (
            0x8000_0021,
            2,
            EntryFailure::InvalidGuestState(PdpteLoading),
            "PDPTEs",
        ),
        (
            0x8000_0021,
            3,
            EntryFailure::InvalidGuestState(NmiInjection),
            "NMI injection",
        ),
        (
            0x8000_0021,
            4,
            EntryFailure::InvalidGuestState(VmcsLinkPointer),
            "VMCS link pointer",
        ),
        (
            0x8000_0021,
            9,
            EntryFailure::InvalidGuestState(Other(9)),
            "0x9",
        ),
        (
            0x8000_0022,
            3,
            EntryFailure::MsrLoading { entry: 3 },
            "MSR-load entry 3",
        ),
        (0x8000_0029, 0, EntryFailure::MachineCheck, "machine-check"),
        (
            0x8000_0012,
            7,
            EntryFailure::Other {
                basic: 18,
                qualification: 7,
            },
            "non-architectural",
        ),
    ];
    for (reason, q, expected, text) in cases {
        let d = diagnose_entry_failure(reason, q).unwrap();
        assert_eq!(d, expected);
        assert!(d.to_string().contains(text), "{d}");
    }
}

#[test]
fn vmx_exits_map_to_neutral() {
    let vmx = |exit_reason, qualification| {
        Exit::from_vmx(&VmxExitFields {
            exit_reason,
            qualification,
            ..Default::default()
        })
    };
    assert_eq!(vmx(18, 0), Exit::Hypercall);
    assert_eq!(vmx(10, 0), Exit::Cpuid);
    assert_eq!(vmx(12, 0), Exit::Hlt);
    assert_eq!(vmx(2, 0), Exit::Shutdown);
    assert_eq!(vmx(1, 0), Exit::ExternalInterrupt);
    assert_eq!(vmx(7, 0), Exit::InterruptWindow);
    assert_eq!(vmx(3, 0), Exit::Init);
    assert_eq!(vmx(55, 0), Exit::Xsetbv);
    assert_eq!(vmx(40, 0), Exit::Pause);
    assert_eq!(
        vmx(31, 0),
        Exit::Msr {
            write: false,
            index: None
        }
    );
    assert_eq!(
        vmx(32, 0),
        Exit::Msr {
            write: true,
            index: None
        }
    );
    assert_eq!(
        vmx(84, 0xc000_0080),
        Exit::Msr {
            write: false,
            index: Some(0xc000_0080)
        }
    );
    assert_eq!(
        vmx(85, 0x1b),
        Exit::Msr {
            write: true,
            index: Some(0x1b)
        }
    );
    assert_eq!(
        vmx(24, 0),
        Exit::VirtualizationInstruction(VirtInsn::Vmresume)
    );
    assert_eq!(vmx(27, 0), Exit::VirtualizationInstruction(VirtInsn::Vmxon));
    assert_eq!(
        vmx(20, 0),
        Exit::VirtualizationInstruction(VirtInsn::Vmlaunch)
    );
    assert_eq!(
        vmx(50, 0),
        Exit::VirtualizationInstruction(VirtInsn::Invept)
    );
    // The enclave bit does not change the reason.
    assert_eq!(vmx(0x0800_0012, 0), Exit::Hypercall);
    assert_eq!(
        vmx(30, 0x01f0_0031),
        Exit::Io(IoExit {
            port: 0x1f0,
            size: 2,
            write: true,
            string: true,
            rep: true,
            immediate: Some(false),
            address_size: None,
            next_rip: None
        })
    );
    assert_eq!(
        vmx(30, 0x2),
        Exit::Other {
            vendor: Vendor::Intel,
            code: 30
        },
        "bad size"
    );
    assert_eq!(
        vmx(28, 0x3),
        Exit::ControlRegister {
            cr: 3,
            write: true,
            gpr: Some(0)
        }
    );
    assert_eq!(
        vmx(28, 0x114),
        Exit::ControlRegister {
            cr: 4,
            write: false,
            gpr: Some(1)
        }
    );
    assert_eq!(
        vmx(28, 0x20),
        Exit::ControlRegister {
            cr: 0,
            write: true,
            gpr: None
        }
    );
    assert_eq!(
        vmx(0x8000_0021, 4),
        Exit::EntryFailure {
            vendor: Vendor::Intel,
            raw: 0x8000_0021,
            qualification: 4
        }
    );
    assert_eq!(
        vmx(44, 0),
        Exit::Other {
            vendor: Vendor::Intel,
            code: 44
        }
    );
    assert_eq!(
        vmx(35, 0),
        Exit::Other {
            vendor: Vendor::Intel,
            code: 35
        }
    );
    assert_eq!(
        vmx(0xffff, 0),
        Exit::Other {
            vendor: Vendor::Intel,
            code: 0xffff
        }
    );
}

#[test]
fn vmx_exception_and_nmi() {
    let ex = |info, err, q| {
        Exit::from_vmx(&VmxExitFields {
            exit_reason: 0,
            qualification: q,
            interruption_info: info,
            interruption_error: err,
            ..Default::default()
        })
    };
    assert_eq!(
        ex(0x8000_0b0e, 0x6, 0xdead_b000),
        Exit::Exception {
            vector: 14,
            error_code: Some(6),
            fault_address: Some(0xdead_b000),
            dr6: None
        }
    );
    assert_eq!(
        ex(0x8000_0b0d, 0x10, 0),
        Exit::Exception {
            vector: 13,
            error_code: Some(0x10),
            fault_address: None,
            dr6: None
        }
    );
    assert_eq!(
        ex(0x8000_0306, 99, 0),
        Exit::Exception {
            vector: 6,
            error_code: None,
            fault_address: None,
            dr6: None
        }
    );
    assert_eq!(
        ex(0x8000_0603, 0, 0),
        Exit::Exception {
            vector: 3,
            error_code: None,
            fault_address: None,
            dr6: None
        }
    );
    // #DB (vector 1, hardware exception): DR6 from the qualification's
    // B0-B3, BD, BS (Table 28-1) over DR6's always-one bits; the other
    // qualification bits (reserved, RTM) are not DR6's.
    assert_eq!(
        ex(
            0x8000_0301,
            0,
            (1 << 16) | (1 << 14) | (1 << 13) | (1 << 4) | 0b1001
        ),
        Exit::Exception {
            vector: 1,
            error_code: None,
            fault_address: None,
            dr6: Some(0xFFFF_0FF0 | (1 << 14) | (1 << 13) | 0b1001)
        }
    );
    assert_eq!(ex(0x8000_0202, 0, 0), Exit::Nmi);
    assert_eq!(
        ex(0x0000_0b0e, 0, 0),
        Exit::Other {
            vendor: Vendor::Intel,
            code: 0
        },
        "invalid info"
    );
    assert_eq!(
        ex(0x8000_0420, 0, 0),
        Exit::Other {
            vendor: Vendor::Intel,
            code: 0
        },
        "INT n is not an exception"
    );
}

#[test]
fn vmx_ept_violation() {
    let e = Exit::from_vmx(&VmxExitFields {
        exit_reason: 48,
        qualification: 0x182,
        guest_physical: 0xfee0_0000,
        guest_linear: 0xffff_8000_fee0_0000,
        ..Default::default()
    });
    assert_eq!(
        e,
        Exit::NestedPageFault {
            gpa: 0xfee0_0000,
            access: NestedAccess {
                read: false,
                write: true,
                execute: false,
                present: false,
                during_walk: Some(false),
                guest_linear: Some(0xffff_8000_fee0_0000),
                raw: 0x182,
            },
        }
    );
    let Exit::NestedPageFault { access, .. } = Exit::from_vmx(&VmxExitFields {
        exit_reason: 48,
        qualification: 0x09, // read of a readable page without linear address
        ..Default::default()
    }) else {
        panic!("not an NPF")
    };
    assert!(
        access.read
            && access.present
            && access.guest_linear.is_none()
            && access.during_walk.is_none()
    );
}

// ---- SVM --------------------------------------------------------------

#[test]
fn ioio_exitinfo1() {
    // OUT DX, AL to COM1, 64-bit address size.
    let i = IoioInfo(0x03f8_0210);
    assert_eq!(
        (
            i.is_out(),
            i.size(),
            i.address_size(),
            i.string(),
            i.rep(),
            i.port()
        ),
        (true, Some(1), Some(64), false, false, 0x3f8)
    );
    // IN EAX, DX from 0xCFC.
    let i = IoioInfo(0x0cfc_0241);
    assert_eq!((i.is_in(), i.size(), i.port()), (true, Some(4), 0xcfc));
    // REP INSW from 0x1F0, 32-bit addresses, ES.
    let i = IoioInfo(0x01f0_012d);
    assert_eq!(
        (
            i.is_in(),
            i.string(),
            i.rep(),
            i.size(),
            i.address_size(),
            i.segment()
        ),
        (true, true, true, Some(2), Some(32), Some(Segment::Es))
    );
    // REP OUTSB to 0x80 with a DS override (decode assists).
    let i = IoioInfo(0x0080_0e1c);
    assert_eq!(
        (
            i.is_out(),
            i.string(),
            i.rep(),
            i.size(),
            i.segment(),
            i.port()
        ),
        (true, true, true, Some(1), Some(Segment::Ds), 0x80)
    );
    // Several size bits, or none: no size.
    assert_eq!(IoioInfo(0x30).size(), None);
    assert_eq!(IoioInfo(0).size(), None);
    assert_eq!(IoioInfo(0x7 << 10).segment(), None);
    assert_eq!(IoioInfo(0x7 << 10).segment_raw(), 7);
}

#[test]
fn npf_exitinfo1() {
    // Write to a not-present final GPA (user bit set: nested walks are user accesses).
    let e = NpfErrorCode::from_exitinfo1(0x1_0000_0006);
    assert!(e.contains(NpfErrorCode::WRITE | NpfErrorCode::USER | NpfErrorCode::FINAL_ADDRESS));
    assert!(!e.contains(NpfErrorCode::PRESENT));
    assert_eq!(e.during_walk(), Some(false));
    // Guest page-table access during the walk.
    assert_eq!(
        NpfErrorCode::from_exitinfo1(0x2_0000_0004).during_walk(),
        Some(true)
    );
    // Fetch from a present, non-executable page.
    let e = NpfErrorCode::from_exitinfo1(0x1_0000_0015);
    assert!(e.contains(NpfErrorCode::PRESENT | NpfErrorCode::FETCH));
    assert_eq!(NpfErrorCode::from_exitinfo1(0).during_walk(), None);
    assert_eq!(NpfErrorCode::from_exitinfo1(u64::MAX).bits(), u64::MAX);
}

#[test]
fn svm_small_decoders() {
    assert_eq!(msr_is_write(0), Some(false));
    assert_eq!(msr_is_write(1), Some(true));
    assert_eq!(msr_is_write(2), None);
    assert_eq!(CrAccessInfo(0x8000_0000_0000_0000).gpr(), Some(0));
    assert_eq!(CrAccessInfo(0x8000_0000_0000_000c).gpr(), Some(12));
    assert_eq!(CrAccessInfo(0xc).gpr(), None, "no decode assists / LMSW");
    for v in 0u8..=255 {
        let expected = matches!(v, 8 | 10 | 11 | 12 | 13 | 14 | 17 | 21 | 29 | 30);
        assert_eq!(exception_has_error_code(v), expected, "vector {v}");
    }
    // EXITINTINFO: #GP(0x18) being delivered.
    let i = ExitIntInfo(0x0000_0018_8000_0b0d);
    assert_eq!(
        (i.valid(), i.vector(), i.event_type(), i.error_code()),
        (true, 13, SvmEventType::Exception, Some(0x18))
    );
    assert_eq!(ExitIntInfo(0x8000_0020).event_type(), SvmEventType::Intr);
    assert_eq!(ExitIntInfo(0x8000_0020).error_code(), None);
    assert_eq!(
        ExitIntInfo(0x8000_0502).event_type(),
        SvmEventType::Reserved(5)
    );
}

#[test]
fn svm_exits_map_to_neutral() {
    let svm = |exitcode, exitinfo1, exitinfo2| {
        Exit::from_svm(&SvmExitFields {
            exitcode,
            exitinfo1,
            exitinfo2,
        })
    };
    assert_eq!(svm(0x81, 0, 0), Exit::Hypercall);
    assert_eq!(svm(0x72, 0, 0), Exit::Cpuid);
    assert_eq!(svm(0x78, 0, 0), Exit::Hlt);
    assert_eq!(svm(0xa6, 0, 0), Exit::Hlt);
    assert_eq!(svm(0x7f, 0, 0), Exit::Shutdown);
    assert_eq!(svm(0x60, 0, 0), Exit::ExternalInterrupt);
    assert_eq!(svm(0x61, 0, 0), Exit::Nmi);
    assert_eq!(svm(0x64, 0, 0), Exit::InterruptWindow);
    assert_eq!(svm(0x63, 0, 0), Exit::Init);
    assert_eq!(svm(0x77, 0, 0), Exit::Pause);
    assert_eq!(svm(0x8d, 0, 0), Exit::Xsetbv);
    assert_eq!(
        svm(0x7c, 0, 0),
        Exit::Msr {
            write: false,
            index: None
        }
    );
    assert_eq!(
        svm(0x7c, 1, 0),
        Exit::Msr {
            write: true,
            index: None
        }
    );
    assert_eq!(
        svm(0x7c, 7, 0),
        Exit::Other {
            vendor: Vendor::Amd,
            code: 0x7c
        }
    );
    assert_eq!(
        svm(0x80, 0, 0),
        Exit::VirtualizationInstruction(VirtInsn::Vmrun)
    );
    assert_eq!(
        svm(0x82, 0, 0),
        Exit::VirtualizationInstruction(VirtInsn::Vmload)
    );
    assert_eq!(
        svm(0x83, 0, 0),
        Exit::VirtualizationInstruction(VirtInsn::Vmsave)
    );
    assert_eq!(
        svm(0x85, 0, 0),
        Exit::VirtualizationInstruction(VirtInsn::Clgi)
    );
    assert_eq!(
        svm(0x7b, 0x03f8_0210, 0x1001),
        Exit::Io(IoExit {
            port: 0x3f8,
            size: 1,
            write: true,
            string: false,
            rep: false,
            immediate: None,
            address_size: Some(64),
            next_rip: Some(0x1001)
        })
    );
    assert_eq!(
        svm(0x7b, 0x03f8_0000, 0),
        Exit::Other {
            vendor: Vendor::Amd,
            code: 0x7b
        },
        "no size bit"
    );
    assert_eq!(
        svm(0x03, 0x8000_0000_0000_0003, 0),
        Exit::ControlRegister {
            cr: 3,
            write: false,
            gpr: Some(3)
        }
    );
    assert_eq!(
        svm(0x13, 0, 0),
        Exit::ControlRegister {
            cr: 3,
            write: true,
            gpr: None
        }
    );
    assert_eq!(
        svm(0x65, 0, 0),
        Exit::ControlRegister {
            cr: 0,
            write: true,
            gpr: None
        }
    );
    assert_eq!(
        svm(0x4d, 0x10, 0),
        Exit::Exception {
            vector: 13,
            error_code: Some(0x10),
            fault_address: None,
            dr6: None
        }
    );
    assert_eq!(
        svm(0x4e, 0x2, 0xdead_b000),
        Exit::Exception {
            vector: 14,
            error_code: Some(2),
            fault_address: Some(0xdead_b000),
            dr6: None
        }
    );
    assert_eq!(
        svm(0x46, 0x55, 0),
        Exit::Exception {
            vector: 6,
            error_code: None,
            fault_address: None,
            dr6: None
        }
    );
    assert_eq!(
        svm(0x400, 0x1_0000_0006, 0xfee0_0000),
        Exit::NestedPageFault {
            gpa: 0xfee0_0000,
            access: NestedAccess {
                read: false,
                write: true,
                execute: false,
                present: false,
                during_walk: Some(false),
                guest_linear: None,
                raw: 0x1_0000_0006
            },
        }
    );
    let Exit::NestedPageFault { access, .. } = svm(0x400, 0x2_0000_0005, 0x1000) else {
        panic!()
    };
    assert!(access.read && access.present && access.during_walk == Some(true));
    assert_eq!(
        svm(VMEXIT_INVALID, 0, 0),
        Exit::EntryFailure {
            vendor: Vendor::Amd,
            raw: VMEXIT_INVALID,
            qualification: 0
        }
    );
    assert_eq!(
        svm(VMEXIT_BUSY, 0, 0),
        Exit::EntryFailure {
            vendor: Vendor::Amd,
            raw: VMEXIT_BUSY,
            qualification: 0
        }
    );
    assert_eq!(
        svm(0x401, 0, 0),
        Exit::Other {
            vendor: Vendor::Amd,
            code: 0x401
        }
    );
    assert_eq!(
        svm(0x1234, 0, 0),
        Exit::Other {
            vendor: Vendor::Amd,
            code: 0x1234
        }
    );
}

#[test]
fn instructions_that_reach_host_state() {
    // SDM Vol. 3C Appendix C and APM Vol. 2 Appendix C.
    let vmx = |exit_reason| {
        Exit::from_vmx(&VmxExitFields {
            exit_reason,
            ..Default::default()
        })
    };
    let svm = |exitcode| {
        Exit::from_svm(&SvmExitFields {
            exitcode,
            ..Default::default()
        })
    };
    for (reason, insn) in [
        (13, Insn::Invd),
        (15, Insn::Rdpmc),
        (36, Insn::Mwait),
        (39, Insn::Monitor),
        (51, Insn::Rdtscp),
        (54, Insn::Wbinvd),
    ] {
        assert_eq!(vmx(reason), Exit::Instruction(insn), "VMX reason {reason}");
    }
    assert_eq!(vmx(52), Exit::PreemptionTimer);
    for (code, insn) in [
        (0x6F, Insn::Rdpmc),
        (0x76, Insn::Invd),
        (0x87, Insn::Rdtscp),
        (0x89, Insn::Wbinvd),
        (0x8A, Insn::Monitor),
        (0x8B, Insn::Mwait),
        (0x8C, Insn::Mwait),
        (0x8E, Insn::Rdpru),
    ] {
        assert_eq!(svm(code), Exit::Instruction(insn), "SVM code {code:#x}");
    }
    assert_eq!(svm(0x87).name(), "RDTSCP");
    assert_eq!(vmx(52).name(), "VMX-preemption timer");
}

#[test]
fn vm_exits_carry_the_instruction_length_and_the_raw_code() {
    let vmx = |exit_reason, instruction_len| {
        VmExit::from_vmx(&VmxExitFields {
            exit_reason,
            qualification: 0x1234,
            instruction_len,
            guest_physical: 0x5678,
            ..Default::default()
        })
    };
    // VMX: the instruction-length field, 3 when it is not a length.
    assert_eq!(vmx(10, 2).insn_len, 2);
    assert_eq!(vmx(18, 0).insn_len, 3);
    assert_eq!(vmx(18, 16).insn_len, 3);
    assert_eq!(
        vmx(0x8000_0021, 0).raw,
        RawExit {
            vendor: Vendor::Intel,
            code: 0x8000_0021,
            info1: 0x1234,
            info2: 0x5678
        }
    );
    let svm = |exitcode, exitinfo1, exitinfo2, nrip| {
        VmExit::from_svm(
            &SvmExitFields {
                exitcode,
                exitinfo1,
                exitinfo2,
            },
            0x1000,
            nrip,
        )
    };
    // SVM without NRIPS (or nRIP left 0): the encoded length.
    for (code, info1, len) in [
        (0x81, 0, 3), // VMMCALL
        (0x72, 0, 2), // CPUID
        (0x7C, 1, 2), // WRMSR
        (0x76, 0, 2), // INVD
        (0x89, 0, 2), // WBINVD
        (0x6F, 0, 2), // RDPMC
        (0x8D, 0, 3), // XSETBV
        (0x8B, 0, 3), // MWAIT
        (0x78, 0, 1), // HLT
        (0x77, 0, 2), // PAUSE
        (0x18, 0, 3), // MOV CR8
    ] {
        assert_eq!(svm(code, info1, 0, None).insn_len, len, "{code:#x}");
        assert_eq!(svm(code, info1, 0, Some(0)).insn_len, len, "{code:#x}");
    }
    // With NRIPS: nRIP - RIP, when that is a length.
    assert_eq!(svm(0x18, 0, 0, Some(0x1004)).insn_len, 4);
    assert_eq!(svm(0x72, 0, 0, Some(0x1000)).insn_len, 2);
    assert_eq!(svm(0x72, 0, 0, Some(0x1010)).insn_len, 2);
    // IOIO: EXITINFO2 is the next RIP, NRIPS or not.
    let out = svm(0x7B, 0x03f8_0010, 0x1002, None);
    assert!(matches!(out.exit, Exit::Io(IoExit { port: 0x3f8, .. })));
    assert_eq!(out.insn_len, 2);
    assert_eq!(svm(0x7B, 0x03f8_0010, 0x1002, Some(0x1001)).insn_len, 2);
    assert_eq!(
        svm(0x7B, 0x03f8_0010, 0x1002, None).raw,
        RawExit {
            vendor: Vendor::Amd,
            code: 0x7B,
            info1: 0x03f8_0010,
            info2: 0x1002
        }
    );
    // Unknown codes keep their raw value.
    let unknown = svm(0x999, 7, 8, None);
    assert_eq!(
        unknown.exit,
        Exit::Other {
            vendor: Vendor::Amd,
            code: 0x999
        }
    );
    assert_eq!(unknown.raw.code, 0x999);
}

#[test]
fn names_for_unhandled_exit_diagnostics() {
    let vmx = |exit_reason| {
        Exit::from_vmx(&VmxExitFields {
            exit_reason,
            ..Default::default()
        })
    };
    let svm = |exitcode| {
        Exit::from_svm(&SvmExitFields {
            exitcode,
            ..Default::default()
        })
    };
    assert_eq!(vmx(44).name(), "APIC access");
    assert_eq!(
        vmx(44).to_string(),
        "APIC access (Intel VMX exit reason 44)"
    );
    assert_eq!(
        vmx(35).to_string(),
        "unknown VMX exit reason (Intel VMX exit reason 35)"
    );
    assert_eq!(svm(0x401).name(), "AVIC_INCOMPLETE_IPI");
    assert_eq!(
        svm(0x401).to_string(),
        "AVIC_INCOMPLETE_IPI (AMD SVM exit code 0x401)"
    );
    assert_eq!(
        svm(0x999).to_string(),
        "unknown SVM exit code (AMD SVM exit code 0x999)"
    );
    assert_eq!(svm(0x81).name(), "hypercall");
    assert_eq!(vmx(18).to_string(), "hypercall");
    assert_eq!(
        vmx(0x8000_0021).name(),
        "VM-entry failure due to invalid guest state"
    );
    assert!(vmx(0x8000_0021).to_string().contains("invalid guest state"));
    assert_eq!(
        svm(VMEXIT_INVALID).to_string(),
        "VMRUN failed: VMEXIT_INVALID (-1), EXITINFO1 0x0"
    );
    assert_eq!(svm(0x80).name(), "VMRUN");
    assert_eq!(
        Exit::from_vmx(&VmxExitFields {
            exit_reason: 30,
            qualification: 0x01f0_0031,
            ..Default::default()
        })
        .to_string(),
        "REP OUTS port 0x1f0, 2 byte(s)"
    );
    assert_eq!(
        vmexit::vendor_code_name(Vendor::Intel, 1 << 20),
        "unknown VMX exit reason"
    );
    assert_eq!(vmexit::vendor_code_name(Vendor::Amd, 0x7b), "VMEXIT_IOIO");
    assert_eq!(Vendor::Intel.to_string(), "Intel VMX");
    assert_eq!(Vendor::Amd.hypercall_bytes(), [0x0f, 0x01, 0xd9]);
}
