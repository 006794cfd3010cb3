//! The shared route from a hypercall exit to [`vmmcall::dispatch`], and the
//! RIP-advance rules of both vendors.
//!
//! After `VMCALL` (Intel) or `VMMCALL` (AMD) exits, the VMM runs the call
//! with [`handle_hypercall`] and moves the guest's RIP past the instruction
//! by [`HypercallDone::rip_advance`] bytes:
//!
//! - VMX: the VM-exit instruction-length field (Intel SDM Vol. 3C, §28.2.5
//!   "Information for VM Exits Due to Instruction Execution"):
//!   [`vmx_insn_len`].
//! - SVM: `nRIP - RIP` when the processor has NRIPS (next-RIP save, CPUID
//!   `Fn8000_000A_EDX[3]`; AMD APM Vol. 2, §15.7.1 "State Saved on Exit")
//!   and wrote a non-zero nRIP; otherwise the fixed 3-byte length of
//!   `VMMCALL` ([`vmmcall::abi::HYPERCALL_INSN_LEN`]): [`svm_insn_len`].
//!   QEMU's TCG does not implement NRIPS, so the fallback is needed.
//!
//! A guest that executes the other vendor's instruction (`VMCALL` on AMD,
//! `VMMCALL` on Intel) gets `#UD`; a VMM that intercepts `#UD` can read the
//! bytes at RIP and recognise either one with [`hypercall_instruction`].
//!
//! ```
//! use vmexit::{handle_hypercall, svm_insn_len, Exit, SvmExitFields};
//! use vmmcall::{mock::MockVcpu, Registry};
//!
//! let registry = Registry::new(&[]).unwrap();
//! let mut vcpu = MockVcpu::new();
//! vcpu.regs.rax = 77; // no such function
//! let (rip, nrip) = (0x1000, 0); // QEMU TCG: no NRIPS, nRIP stays 0
//!
//! let exit = Exit::from_svm(&SvmExitFields { exitcode: 0x81, ..Default::default() });
//! assert_eq!(exit, Exit::Hypercall);
//! let done = handle_hypercall(&registry, &mut vcpu, svm_insn_len(rip, nrip, false));
//! assert_eq!(vcpu.regs.rax, vmmcall::Error::NoSys.to_rax());
//! assert_eq!(done.next_rip(rip), 0x1003);
//! ```

use crate::Vendor;
use vmmcall::abi::{HYPERCALL_INSN_LEN, VMCALL_BYTES, VMMCALL_BYTES};
use vmmcall::{Outcome, Registry, Vcpu};

/// The longest x86 instruction, in bytes. An instruction length outside
/// `1..=MAX_INSN_LEN` is not a real one.
pub const MAX_INSN_LEN: u64 = 15;

/// The result of [`handle_hypercall`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HypercallDone {
    /// What the hypercall did (RAX already holds its result).
    pub outcome: Outcome,
    /// Bytes to add to the guest's RIP to step over the instruction.
    pub rip_advance: u64,
}

impl HypercallDone {
    /// The guest's next RIP: `rip + rip_advance`, wrapping around the
    /// 64-bit address space like the processor does.
    pub const fn next_rip(&self, rip: u64) -> u64 {
        rip.wrapping_add(self.rip_advance)
    }

    /// The exit status a handler asked for with
    /// [`vmmcall::Caller::request_stop`], if any: the VMM should stop the
    /// guest after this call.
    pub const fn stop(&self) -> Option<u32> {
        self.outcome.stop
    }
}

/// Clamp an instruction length to a real one: values in
/// `1..=MAX_INSN_LEN` are kept, anything else becomes
/// [`HYPERCALL_INSN_LEN`] (3).
const fn sane_len(len: u64) -> u64 {
    if len >= 1 && len <= MAX_INSN_LEN {
        len
    } else {
        HYPERCALL_INSN_LEN
    }
}

/// Run the hypercall the guest asked for (RAX = function number, arguments
/// in RBX, RCX, RDX, RSI, RDI) and say how far to advance RIP.
///
/// `insn_len` is the length of the hypercall instruction as the backend
/// knows it ([`vmx_insn_len`] or [`svm_insn_len`]). A length that cannot be
/// an instruction (0 or more than 15 bytes) is replaced by 3, the length of
/// both `VMCALL` and `VMMCALL`, and logged; `rip_advance` is therefore
/// always in `1..=15`.
///
/// Never panics: [`vmmcall::dispatch`] turns every guest input into a value
/// or an error in RAX. Only RAX is written.
#[inline]
pub fn handle_hypercall<V: Vcpu + ?Sized>(
    registry: &Registry<'static>,
    vcpu: &mut V,
    insn_len: u64,
) -> HypercallDone {
    let rip_advance = sane_len(insn_len);
    if rip_advance != insn_len {
        log::warn!(
            "vmexit: hypercall instruction length {insn_len} is impossible, using {rip_advance}"
        );
    }
    let outcome = vmmcall::dispatch(registry, vcpu);
    HypercallDone {
        outcome,
        rip_advance,
    }
}

/// The RIP advance for a VMX instruction exit: the VM-exit
/// instruction-length field (VMCS encoding `0x440C`), or 3 if the field
/// does not hold a possible instruction length (1..=15).
pub const fn vmx_insn_len(instruction_len_field: u32) -> u64 {
    sane_len(instruction_len_field as u64)
}

/// The RIP advance for an SVM instruction intercept.
///
/// With NRIPS (`nrips_supported`) and a non-zero nRIP (VMCB offset `0xC8`),
/// it is `nrip - rip` (wrapping, so a hypercall at the top of the address
/// space works). Without NRIPS, or when the processor left nRIP at 0, or
/// when the difference is not a possible instruction length (1..=15), it is
/// [`HYPERCALL_INSN_LEN`] (3, the length of `VMMCALL`).
pub const fn svm_insn_len(rip: u64, nrip: u64, nrips_supported: bool) -> u64 {
    svm_insn_len_or(rip, nrip, nrips_supported, HYPERCALL_INSN_LEN)
}

/// [`svm_insn_len`] for any intercepted instruction: `nrip - rip` when
/// NRIPS saved a non-zero nRIP and the difference is a possible
/// instruction length (1..=15), else `fallback`, the known length of the
/// intercepted instruction (e.g. 2 for `CPUID`, 1 for `HLT`). A `fallback`
/// outside 1..=15 is itself replaced by 3.
pub const fn svm_insn_len_or(rip: u64, nrip: u64, nrips_supported: bool, fallback: u64) -> u64 {
    let fallback = sane_len(fallback);
    if nrips_supported && nrip != 0 {
        let len = nrip.wrapping_sub(rip);
        if len >= 1 && len <= MAX_INSN_LEN {
            return len;
        }
    }
    fallback
}

/// Which vendor's hypercall instruction `bytes` starts with: `0F 01 C1`
/// (`VMCALL`) is [`Vendor::Intel`], `0F 01 D9` (`VMMCALL`) is
/// [`Vendor::Amd`]. `None` for anything else, including fewer than three
/// bytes. Bytes after the third are ignored.
pub fn hypercall_instruction(bytes: &[u8]) -> Option<Vendor> {
    if bytes.starts_with(&VMCALL_BYTES) {
        Some(Vendor::Intel)
    } else if bytes.starts_with(&VMMCALL_BYTES) {
        Some(Vendor::Amd)
    } else {
        None
    }
}
