//! Property tests: decoding arbitrary raw values never panics, unknown
//! values are kept, and known values round-trip; and the hypercall route
//! (`handle_hypercall`) against a model of docs/ABI.md whose answers are
//! spelled out as numbers.

use proptest::prelude::*;
use vmexit::svm::{ExitIntInfo, IoioInfo, NpfErrorCode, SvmExitCode};
use vmexit::vmx::{
    diagnose_entry_failure, CrQualification, EptViolation, ExitReasonField, InterruptionInfo,
    IoQualification, VmInstructionError, VmxExitReason,
};
use vmexit::{
    handle_hypercall, hypercall_instruction, svm_insn_len, vmx_insn_len, Exit, SvmExitFields,
    Vendor, VmxExitFields,
};
use vmmcall::mock::MockVcpu;
use vmmcall::{Caller, Error, Handler, Registry};

fn vmx_roundtrip(raw: u16) {
    match VmxExitReason::from_raw(raw) {
        Ok(r) => assert_eq!(r.raw(), raw),
        Err(e) => {
            assert_eq!(e.vendor, Vendor::Intel);
            assert_eq!(e.raw(), u64::from(raw));
        }
    }
}

fn svm_roundtrip(raw: u64) {
    match SvmExitCode::from_raw(raw) {
        Ok(c) => assert_eq!(c.raw(), raw),
        Err(e) => {
            assert_eq!(e.vendor, Vendor::Amd);
            assert_eq!(e.raw(), raw);
        }
    }
}

#[test]
fn every_u16_round_trips() {
    for raw in 0..=u16::MAX {
        vmx_roundtrip(raw);
    }
}

fn echo(c: &mut Caller<'_>) -> Result<u64, Error> {
    let mut buf = [0u8; 64];
    let name = c.read_cstr(vmmcall::GuestAddr(c.args()[0]), &mut buf)?;
    Ok(name.len() as u64)
}

static HANDLERS: [Handler; 1] = [Handler::new("echo", false, echo)];

/// SVM codes near the defined ones (the interesting part of a huge space),
/// plus arbitrary values.
fn svm_code() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..0x500,
        (0u64..0x1000).prop_map(|n| n.wrapping_neg()),
        any::<u64>(),
    ]
}

proptest! {
    #[test]
    fn vmx_u32_try_from_keeps_unknown(raw in any::<u32>()) {
        match VmxExitReason::try_from(raw) {
            Ok(r) => prop_assert_eq!(u32::from(r), raw),
            Err(e) => prop_assert_eq!(e.raw(), u64::from(raw)),
        }
    }

    #[test]
    fn exit_reason_field_never_panics(raw in any::<u32>(), q in any::<u64>()) {
        let f = ExitReasonField(raw);
        prop_assert_eq!(u32::from(f.basic()), raw & 0xffff);
        vmx_roundtrip(f.basic());
        let _ = f.to_string();
        let d = diagnose_entry_failure(raw, q);
        prop_assert_eq!(d.is_some(), raw & 0x8000_0000 != 0);
        if let Some(d) = d {
            let _ = d.to_string();
        }
    }

    #[test]
    fn svm_codes_round_trip(raw in svm_code()) {
        svm_roundtrip(raw);
        if let Ok(c) = SvmExitCode::try_from(raw) {
            prop_assert_eq!(u64::from(c), raw);
            let _ = c.to_string();
        }
    }

    #[test]
    fn vm_instruction_errors_round_trip(raw in any::<u32>()) {
        match VmInstructionError::from_raw(raw) {
            Ok(e) => prop_assert_eq!(e.raw(), raw),
            Err(kept) => prop_assert_eq!(kept, raw),
        }
        let _ = vmexit::vmx::vm_instruction_error_text(raw);
    }

    #[test]
    fn qualification_decoders_never_panic(q in any::<u64>(), info in any::<u32>()) {
        let io = IoQualification(q);
        let _ = (io.size(), io.is_in(), io.string(), io.rep(), io.immediate(), io.port());
        prop_assert_eq!(u64::from(io.port()), (q >> 16) & 0xffff);
        let cr = CrQualification(q);
        prop_assert!(cr.cr() < 16 && cr.gpr() < 16);
        let _ = (cr.access_type(), cr.lmsw_source(), cr.lmsw_memory_operand());
        let ept = EptViolation::from_qualification(q);
        prop_assert_eq!(ept.bits(), q);
        let _ = (ept.present(), ept.translated_access());
        let ii = InterruptionInfo(info);
        let _ = (ii.vector(), ii.event_type(), ii.error_code_valid(), ii.valid(), ii.nmi_unblocking());
        let ioio = IoioInfo(q);
        let _ = (ioio.size(), ioio.address_size(), ioio.segment(), ioio.port(), ioio.rep());
        let npf = NpfErrorCode::from_exitinfo1(q);
        prop_assert_eq!(npf.bits(), q);
        let _ = npf.during_walk();
        let e = ExitIntInfo(q);
        let _ = (e.vector(), e.event_type(), e.error_code(), e.valid());
    }

    #[test]
    fn from_vmx_never_panics(
        exit_reason in prop_oneof![0u32..100, any::<u32>(), (0u32..100).prop_map(|r| r | 0x8000_0000)],
        qualification in any::<u64>(),
        instruction_len in any::<u32>(),
        guest_physical in any::<u64>(),
        guest_linear in any::<u64>(),
        interruption_info in any::<u32>(),
        interruption_error in any::<u32>(),
    ) {
        let f = VmxExitFields {
            exit_reason, qualification, instruction_len, guest_physical, guest_linear,
            interruption_info, interruption_error,
        };
        let exit = Exit::from_vmx(&f);
        prop_assert!(!exit.name().is_empty());
        let _ = exit.to_string();
        if exit_reason & 0x8000_0000 != 0 {
            let is_failure = matches!(exit, Exit::EntryFailure { .. });
            prop_assert!(is_failure);
        }
        if let Exit::Other { vendor, code } = exit {
            prop_assert_eq!(vendor, Vendor::Intel);
            prop_assert_eq!(code, u64::from(exit_reason & 0xffff));
        }
        let len = vmx_insn_len(instruction_len);
        prop_assert!((1..=15).contains(&len));
    }

    #[test]
    fn from_svm_never_panics(exitcode in svm_code(), exitinfo1 in any::<u64>(), exitinfo2 in any::<u64>()) {
        let exit = Exit::from_svm(&SvmExitFields { exitcode, exitinfo1, exitinfo2 });
        prop_assert!(!exit.name().is_empty());
        let _ = exit.to_string();
        if let Exit::Other { vendor, code } = exit {
            prop_assert_eq!(vendor, Vendor::Amd);
            prop_assert_eq!(code, exitcode);
        }
        if (exitcode as i64) < 0 && SvmExitCode::from_raw(exitcode).is_ok() {
            let is_failure = matches!(exit, Exit::EntryFailure { .. });
            prop_assert!(is_failure);
        }
    }

    #[test]
    fn svm_insn_len_is_always_an_instruction_length(rip in any::<u64>(), nrip in any::<u64>(), nrips in any::<bool>()) {
        let len = svm_insn_len(rip, nrip, nrips);
        prop_assert!((1..=15).contains(&len));
        if !nrips || nrip == 0 {
            prop_assert_eq!(len, 3);
        }
    }

    #[test]
    fn hypercall_instruction_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..8)) {
        let v = hypercall_instruction(&bytes);
        match v {
            Some(Vendor::Intel) => prop_assert_eq!(&bytes[..3], &[0x0f, 0x01, 0xc1]),
            Some(Vendor::Amd) => prop_assert_eq!(&bytes[..3], &[0x0f, 0x01, 0xd9]),
            None => prop_assert!(!bytes.starts_with(&[0x0f, 0x01, 0xc1]) && !bytes.starts_with(&[0x0f, 0x01, 0xd9])),
        }
    }

    /// The hypercall route against a model of docs/ABI.md for this
    /// registry (one ring-0 handler, `echo`, number 1: the length of the
    /// name at RBX, read into 64 bytes) and the RIP-advance rule of
    /// `handle_hypercall` (a length outside 1..=15 becomes 3).
    #[test]
    fn handle_hypercall_matches_the_model(
        rax in prop_oneof![0u64..4, any::<u64>()],
        rbx in prop_oneof![Just(0x3000u64), 0x2ff0u64..0x4010, any::<u64>()],
        cpl in 0u8..4,
        len in prop_oneof![0u64..20, any::<u64>()],
        other in any::<[u64; 8]>(),
    ) {
        let reg = Registry::new(&HANDLERS).unwrap();
        let mut vcpu = MockVcpu::new();
        vcpu.map(0x3000, true, true);
        vcpu.poke(0x3000, b"echo\0");
        vcpu.cpl = cpl;
        vcpu.regs.rax = rax;
        vcpu.regs.rbx = rbx;
        [vcpu.regs.rcx, vcpu.regs.rdx, vcpu.regs.rsi, vcpu.regs.rdi,
         vcpu.regs.r8, vcpu.regs.r9, vcpu.regs.r14, vcpu.regs.r15] = other;
        let before = vcpu.regs;
        // The page at 0x3000 holds "echo" and then zeros; nothing else is
        // mapped. -EPERM is -1, -EFAULT -14, -ENOSYS -38 (docs/ABI.md).
        let on_page = (0x3000..0x4000).contains(&rbx);
        let want = match rax {
            0 => u64::from(rbx == 0x3000),
            1 if cpl != 0 => 0xFFFF_FFFF_FFFF_FFFF,
            1 if on_page => 4u64.saturating_sub(rbx - 0x3000),
            1 => 0xFFFF_FFFF_FFFF_FFF2,
            _ => 0xFFFF_FFFF_FFFF_FFDA,
        };
        let want_len = if (1..=15).contains(&len) { len } else { 3 };
        let done = handle_hypercall(&reg, &mut vcpu, len);
        prop_assert_eq!(vcpu.regs.rax, want, "RAX {:#x} RBX {:#x} CPL {}", rax, rbx, cpl);
        prop_assert_eq!(vcpu.regs, vmmcall::GuestRegs { rax: want, ..before }, "only RAX changes");
        prop_assert_eq!(done.rip_advance, want_len);
        prop_assert_eq!(done.next_rip(u64::MAX - 1), want_len.wrapping_sub(2));
        prop_assert_eq!(done.outcome.number, rax);
        prop_assert_eq!(done.stop(), None);
    }
}
