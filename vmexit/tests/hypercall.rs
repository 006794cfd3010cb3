//! The shared hypercall route on vmmcall's mock vCPU, with the RIP-advance
//! rules of VMX and SVM (with and without NRIPS).

use vmexit::{
    handle_hypercall, hypercall_instruction, svm_insn_len, vmx_insn_len, Exit, SvmExitFields,
    Vendor, VmxExitFields,
};
use vmmcall::abi::HYPERCALL_INSN_LEN;
use vmmcall::mock::MockVcpu;
use vmmcall::{Caller, Error, Handler, Registry};

fn add(c: &mut Caller<'_>) -> Result<u64, Error> {
    let [a, b, ..] = c.args();
    a.checked_add(b).ok_or(Error::Range)
}

fn halt(c: &mut Caller<'_>) -> Result<u64, Error> {
    let status = c.args()[0] as u32;
    c.request_stop(status);
    Ok(0)
}

fn kernel_only(_: &mut Caller<'_>) -> Result<u64, Error> {
    Ok(42)
}

static HANDLERS: [Handler; 3] = [
    Handler::new("add", true, add),
    Handler::new("halt", true, halt),
    Handler::new("kernel_only", false, kernel_only),
];

fn registry() -> Registry<'static> {
    Registry::new(&HANDLERS).unwrap()
}

fn number(reg: &Registry<'static>, name: &str) -> u64 {
    reg.lookup(name.as_bytes()).unwrap().get()
}

#[test]
fn vmx_vmcall_runs_handler_and_advances_by_instruction_length() {
    let reg = registry();
    let fields = VmxExitFields {
        exit_reason: 18,
        instruction_len: 3,
        ..Default::default()
    };
    assert_eq!(Exit::from_vmx(&fields), Exit::Hypercall);

    let mut vcpu = MockVcpu::new();
    vcpu.regs.rax = number(&reg, "add");
    vcpu.regs.rbx = 40;
    vcpu.regs.rcx = 2;
    let before = vcpu.regs;
    let done = handle_hypercall(&reg, &mut vcpu, vmx_insn_len(fields.instruction_len));
    assert_eq!(vcpu.regs.rax, 42);
    assert_eq!(done.outcome.result, Ok(42));
    assert_eq!(done.outcome.name, Some("add"));
    assert_eq!(done.outcome.stop, None);
    assert_eq!(done.rip_advance, 3);
    assert_eq!(done.next_rip(0x1000), 0x1003);
    // Only RAX changed.
    assert_eq!(
        vmmcall::GuestRegs {
            rax: before.rax,
            ..vcpu.regs
        },
        before
    );
}

#[test]
fn vmx_instruction_length_field() {
    assert_eq!(vmx_insn_len(3), 3);
    // A VMCALL with redundant prefixes is longer; the field says so.
    assert_eq!(vmx_insn_len(5), 5);
    assert_eq!(vmx_insn_len(15), 15);
    // Impossible lengths fall back to 3.
    assert_eq!(vmx_insn_len(0), HYPERCALL_INSN_LEN);
    assert_eq!(vmx_insn_len(16), HYPERCALL_INSN_LEN);
    assert_eq!(vmx_insn_len(u32::MAX), HYPERCALL_INSN_LEN);
}

#[test]
fn svm_with_nrips_uses_nrip_minus_rip() {
    assert_eq!(svm_insn_len(0x1000, 0x1003, true), 3);
    assert_eq!(svm_insn_len(0x1000, 0x1004, true), 4, "prefixed VMMCALL");
    // Wrapping at the top of the address space.
    assert_eq!(svm_insn_len(u64::MAX - 1, 1, true), 3);
    // nRIP = 0: the CPU did not save it (QEMU TCG): fixed length.
    assert_eq!(svm_insn_len(0x1000, 0, true), HYPERCALL_INSN_LEN);
    // Nonsense differences fall back to 3.
    assert_eq!(svm_insn_len(0x1000, 0x1000, true), HYPERCALL_INSN_LEN);
    assert_eq!(svm_insn_len(0x1000, 0x0fff, true), HYPERCALL_INSN_LEN);
    assert_eq!(svm_insn_len(0x1000, 0x2000, true), HYPERCALL_INSN_LEN);
}

#[test]
fn svm_other_instructions_use_their_own_fallback() {
    use vmexit::svm_insn_len_or;
    // CPUID (0F A2) is 2 bytes.
    assert_eq!(svm_insn_len_or(0x1000, 0x1002, true, 2), 2);
    assert_eq!(svm_insn_len_or(0x1000, 0, true, 2), 2);
    assert_eq!(svm_insn_len_or(0x1000, 0x1002, false, 2), 2);
    assert_eq!(svm_insn_len_or(0x1000, 0x9000, true, 2), 2);
    // HLT (F4) is 1 byte.
    assert_eq!(svm_insn_len_or(0x1000, 0, false, 1), 1);
    // An impossible fallback becomes 3.
    assert_eq!(svm_insn_len_or(0x1000, 0, false, 0), 3);
    assert_eq!(svm_insn_len_or(0x1000, 0, false, 99), 3);
}

#[test]
fn svm_without_nrips_uses_fixed_length() {
    assert_eq!(svm_insn_len(0x1000, 0, false), 3);
    // Without NRIPS the nRIP field is not trusted even if non-zero.
    assert_eq!(svm_insn_len(0x1000, 0x1005, false), 3);
}

#[test]
fn svm_vmmcall_route_with_and_without_nrips() {
    let reg = registry();
    let fields = SvmExitFields {
        exitcode: 0x81,
        ..Default::default()
    };
    assert_eq!(Exit::from_svm(&fields), Exit::Hypercall);
    for (nrip, nrips, expected) in [
        (0x7003, true, 3),
        (0x7004, true, 4),
        (0, true, 3),
        (0, false, 3),
    ] {
        let rip = 0x7000;
        let mut vcpu = MockVcpu::new();
        vcpu.regs.rax = number(&reg, "add");
        vcpu.regs.rbx = 1;
        vcpu.regs.rcx = 2;
        let done = handle_hypercall(&reg, &mut vcpu, svm_insn_len(rip, nrip, nrips));
        assert_eq!(vcpu.regs.rax, 3);
        assert_eq!(done.rip_advance, expected, "nrip {nrip:#x} nrips {nrips}");
        assert_eq!(done.next_rip(rip), rip + expected);
    }
}

#[test]
fn errors_still_advance_rip() {
    let reg = registry();
    // Unknown function: -ENOSYS.
    let mut vcpu = MockVcpu::new();
    vcpu.regs.rax = 999;
    let done = handle_hypercall(&reg, &mut vcpu, 3);
    assert_eq!(vcpu.regs.rax, Error::NoSys.to_rax());
    assert_eq!(done.outcome.result, Err(Error::NoSys));
    assert_eq!(done.rip_advance, 3);
    // Kernel-only handler from ring 3: -EPERM.
    let mut vcpu = MockVcpu::new();
    vcpu.cpl = 3;
    vcpu.regs.rax = number(&reg, "kernel_only");
    let done = handle_hypercall(&reg, &mut vcpu, 3);
    assert_eq!(vcpu.regs.rax, Error::Permission.to_rax());
    assert_eq!(done.rip_advance, 3);
    // Handler error: -ERANGE.
    let mut vcpu = MockVcpu::new();
    vcpu.regs.rax = number(&reg, "add");
    vcpu.regs.rbx = u64::MAX;
    vcpu.regs.rcx = 1;
    let done = handle_hypercall(&reg, &mut vcpu, 3);
    assert_eq!(done.outcome.result, Err(Error::Range));
    assert_eq!(vcpu.regs.rax, Error::Range.to_rax());
}

#[test]
fn impossible_lengths_are_replaced() {
    let reg = registry();
    for len in [0, 16, u64::MAX] {
        let mut vcpu = MockVcpu::new();
        vcpu.regs.rax = 999;
        assert_eq!(handle_hypercall(&reg, &mut vcpu, len).rip_advance, 3);
    }
}

#[test]
fn get_vmmcall_number_through_the_route() {
    let reg = registry();
    let mut vcpu = MockVcpu::new();
    vcpu.map(0x2000, true, true);
    vcpu.poke(0x2000, b"halt\0");
    vcpu.regs.rax = 0;
    vcpu.regs.rbx = 0x2000;
    let done = handle_hypercall(&reg, &mut vcpu, 3);
    assert_eq!(vcpu.regs.rax, number(&reg, "halt"));
    assert_eq!(done.outcome.number, 0);
    // Unmapped name: 0, never a fault.
    vcpu.regs.rax = 0;
    vcpu.regs.rbx = 0xdead_0000;
    handle_hypercall(&reg, &mut vcpu, 3);
    assert_eq!(vcpu.regs.rax, 0);
}

#[test]
fn stop_request_is_reported() {
    let reg = registry();
    let mut vcpu = MockVcpu::new();
    vcpu.regs.rax = number(&reg, "halt");
    vcpu.regs.rbx = 7;
    let done = handle_hypercall(&reg, &mut vcpu, 3);
    assert_eq!(done.stop(), Some(7));
    assert_eq!(done.outcome.stop, Some(7));
}

#[test]
fn recognises_both_hypercall_instructions() {
    assert_eq!(
        hypercall_instruction(&[0x0f, 0x01, 0xc1]),
        Some(Vendor::Intel)
    );
    assert_eq!(
        hypercall_instruction(&[0x0f, 0x01, 0xd9]),
        Some(Vendor::Amd)
    );
    assert_eq!(
        hypercall_instruction(&[0x0f, 0x01, 0xd9, 0x90, 0x90]),
        Some(Vendor::Amd)
    );
    assert_eq!(hypercall_instruction(&[0x0f, 0x01, 0xd8]), None, "VMRUN");
    assert_eq!(hypercall_instruction(&[0x0f, 0x01, 0xc2]), None, "VMLAUNCH");
    assert_eq!(hypercall_instruction(&[0x0f, 0x01]), None);
    assert_eq!(hypercall_instruction(&[]), None);
    assert_eq!(
        hypercall_instruction(&Vendor::Intel.hypercall_bytes()),
        Some(Vendor::Intel)
    );
}
