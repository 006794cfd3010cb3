//! Fuzz targets for exit decoding (VMX and SVM), checked against a small
//! reference model of the exits the VMM's run loop acts on.
//!
//! `props.rs` checks that decoding never panics and keeps unknown codes;
//! these targets check that the decisions the run loop makes (hypercall,
//! CPUID, #UD, virtualization instruction -> #UD, HLT, shutdown, nested
//! page fault, entry failure) come out right whatever garbage sits in the
//! other fields, and that decoding is a pure function. The number of cases
//! is `PROPTEST_CASES` (default 256 per target); `cargo xtask fuzz` runs
//! them with many more cases in release mode.

use proptest::prelude::*;
use vmexit::{Exit, SvmExitFields, Vendor, VirtInsn, VmxExitFields};

/// What the run loop does with an exit (vmm-core `exits.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Hypercall,
    Cpuid,
    /// An exception the VMM intercepted, with its vector.
    Exception(u8),
    /// A virtualization instruction: inject #UD.
    VirtInsn,
    Hlt,
    Shutdown,
    /// Stop: the guest touched this guest-physical address.
    Npf(u64),
    EntryFailure,
    /// Anything else: stop with a diagnosis.
    Stop,
}

fn action(e: &Exit) -> Action {
    match *e {
        Exit::Hypercall => Action::Hypercall,
        Exit::Cpuid => Action::Cpuid,
        Exit::Exception { vector, .. } => Action::Exception(vector),
        Exit::VirtualizationInstruction(_) => Action::VirtInsn,
        Exit::Hlt => Action::Hlt,
        Exit::Shutdown => Action::Shutdown,
        Exit::NestedPageFault { gpa, .. } => Action::Npf(gpa),
        Exit::EntryFailure { .. } => Action::EntryFailure,
        _ => Action::Stop,
    }
}

/// The reference for VMX (Intel SDM Vol. 3C Appendix C, with SEAMCALL 76
/// and TDCALL 77 from the TDX module spec; interruption
/// information §25.9.2): only the exits the run loop treats specially.
fn vmx_reference(f: &VmxExitFields) -> Option<Action> {
    if f.exit_reason & 0x8000_0000 != 0 {
        return Some(Action::EntryFailure);
    }
    let info = f.interruption_info;
    Some(match f.exit_reason & 0xffff {
        0 => {
            let valid = info & 0x8000_0000 != 0;
            let kind = (info >> 8) & 7;
            // Types 3 (hardware exception), 5 (privileged software
            // exception), 6 (software exception) are exceptions.
            if valid && matches!(kind, 3 | 5 | 6) {
                Action::Exception((info & 0xff) as u8)
            } else {
                return None;
            }
        }
        2 => Action::Shutdown,
        10 => Action::Cpuid,
        12 => Action::Hlt,
        18 => Action::Hypercall,
        19..=27 | 50 | 53 | 59 | 76 | 77 => Action::VirtInsn,
        48 => Action::Npf(f.guest_physical),
        _ => return None,
    })
}

/// The reference for SVM (AMD APM Vol. 2 Appendix C).
fn svm_reference(f: &SvmExitFields) -> Option<Action> {
    Some(match f.exitcode {
        0x40..=0x5f => Action::Exception((f.exitcode - 0x40) as u8),
        0x72 => Action::Cpuid,
        0x78 => Action::Hlt,
        0x7a | 0x80 | 0x82..=0x86 => Action::VirtInsn,
        0x7f => Action::Shutdown,
        0x81 => Action::Hypercall,
        0x400 => Action::Npf(f.exitinfo2),
        c if c == u64::MAX => Action::EntryFailure,
        _ => return None,
    })
}

/// Exit reasons the reference knows, plus anything.
fn vmx_reason() -> impl Strategy<Value = u32> {
    prop_oneof![
        prop::sample::select(vec![0u32, 2, 10, 12, 18, 19, 20, 24, 27, 48, 50, 53, 59]),
        0u32..80,
        (0u32..80).prop_map(|r| r | 0x8000_0000),
        // Garbage in bits 16..30 must not change the basic reason.
        (0u32..80, any::<u16>()).prop_map(|(r, hi)| r | (u32::from(hi & 0x7fff) << 16)),
        any::<u32>(),
    ]
}

fn interruption_info() -> impl Strategy<Value = u32> {
    prop_oneof![
        (0u32..32, 0u32..8, any::<bool>())
            .prop_map(|(v, t, e)| 0x8000_0000 | v | (t << 8) | (u32::from(e) << 11)),
        any::<u32>(),
    ]
}

fn svm_code() -> impl Strategy<Value = u64> {
    prop_oneof![
        prop::sample::select(vec![
            0x46u64, 0x4e, 0x72, 0x78, 0x7a, 0x7f, 0x80, 0x81, 0x82, 0x86, 0x400
        ]),
        0u64..0x500,
        Just(u64::MAX),
        (1u64..16).prop_map(|n| n.wrapping_neg()),
        any::<u64>(),
    ]
}

proptest! {
    #[test]
    fn vmx_decoding_matches_the_reference(
        exit_reason in vmx_reason(),
        qualification in any::<u64>(),
        instruction_len in any::<u32>(),
        guest_physical in any::<u64>(),
        guest_linear in any::<u64>(),
        interruption_info in interruption_info(),
        interruption_error in any::<u32>(),
    ) {
        let f = VmxExitFields {
            exit_reason, qualification, instruction_len, guest_physical, guest_linear,
            interruption_info, interruption_error,
        };
        let exit = Exit::from_vmx(&f);
        prop_assert_eq!(exit, Exit::from_vmx(&f), "decoding is pure");
        prop_assert!(!exit.name().is_empty());
        let _ = exit.to_string();
        let got = action(&exit);
        match vmx_reference(&f) {
            Some(want) => prop_assert_eq!(got, want, "{:?} decoded as {:?}", f, exit),
            None => prop_assert!(
                !matches!(got, Action::Hypercall | Action::Cpuid | Action::VirtInsn | Action::EntryFailure),
                "{:?} decoded as {:?}", f, exit
            ),
        }
        if let Exit::VirtualizationInstruction(i) = exit {
            prop_assert!(!matches!(
                i,
                VirtInsn::Vmrun | VirtInsn::Vmload | VirtInsn::Vmsave | VirtInsn::Stgi
                    | VirtInsn::Clgi | VirtInsn::Skinit | VirtInsn::Invlpga
            ), "an SVM instruction from a VMX exit: {:?}", i);
        }
        if let Exit::Other { vendor, .. } | Exit::EntryFailure { vendor, .. } = exit {
            prop_assert_eq!(vendor, Vendor::Intel);
        }
    }

    #[test]
    fn svm_decoding_matches_the_reference(
        exitcode in svm_code(),
        exitinfo1 in any::<u64>(),
        exitinfo2 in any::<u64>(),
    ) {
        let f = SvmExitFields { exitcode, exitinfo1, exitinfo2 };
        let exit = Exit::from_svm(&f);
        prop_assert_eq!(exit, Exit::from_svm(&f), "decoding is pure");
        prop_assert!(!exit.name().is_empty());
        let _ = exit.to_string();
        let got = action(&exit);
        match svm_reference(&f) {
            Some(want) => prop_assert_eq!(got, want, "{:?} decoded as {:?}", f, exit),
            None => prop_assert!(
                !matches!(got, Action::Hypercall | Action::Cpuid | Action::VirtInsn | Action::Npf(_)),
                "{:?} decoded as {:?}", f, exit
            ),
        }
        if let Exit::VirtualizationInstruction(i) = exit {
            prop_assert!(matches!(
                i,
                VirtInsn::Vmrun | VirtInsn::Vmload | VirtInsn::Vmsave | VirtInsn::Stgi
                    | VirtInsn::Clgi | VirtInsn::Skinit | VirtInsn::Invlpga
            ), "a VMX instruction from an SVM exit: {:?}", i);
        }
        if let Exit::Other { vendor, .. } | Exit::EntryFailure { vendor, .. } = exit {
            prop_assert_eq!(vendor, Vendor::Amd);
        }
    }
}
