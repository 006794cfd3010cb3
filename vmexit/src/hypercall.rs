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
//! `VMMCALL` on Intel) gets `#UD`. A VMM that intercepts `#UD` hands the
//! exit to [`handle_ud`] with the instruction's linear address
//! ([`code_address`]): it fetches the 3 bytes there with the guest's
//! privilege and, for either hypercall instruction, runs the call as
//! [`handle_hypercall`] would (KVM does the same); any other `#UD` is the
//! guest's own, and the VMM injects it back unchanged.
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
use vmmcall::{GuestAddr, Outcome, Registry, Vcpu};

/// The longest x86 instruction, in bytes. An instruction length outside
/// `1..=MAX_INSN_LEN` is not a real one.
pub const MAX_INSN_LEN: u64 = 15;

/// The result of [`handle_hypercall`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HypercallDone {
    /// What the hypercall did (RAX already holds its result).
    pub outcome: Outcome,
    /// Bytes to add to the guest's RIP to step over the instruction. From
    /// [`handle_hypercall_stepped`] and [`handle_ud`]: 0 when a long call
    /// yielded ([`Outcome::pending`]), so that the guest executes it again.
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
/// For a VMM whose vCPU gives dispatch no
/// [`Stepper`](vmmcall::step::Stepper), where no call ever yields. A VMM
/// that gives one (long calls in steps) uses [`handle_hypercall_stepped`]:
/// a call that yielded must not be stepped over. Looking at
/// [`Outcome::pending`] here would cost every plain call a select, which
/// a VMM without steps would pay for nothing (docs/DECISIONS.md,
/// "Continuations and batches").
///
/// Never panics: [`vmmcall::dispatch`] turns every guest input into a value
/// or an error in RAX. Only RAX is written.
///
/// `#[inline(always)]`, like [`vmmcall::dispatch`]: in a VMM's run loop,
/// whatever of the result it does not use is never computed.
#[inline(always)]
pub fn handle_hypercall<V: Vcpu + ?Sized>(
    registry: &Registry<'static>,
    vcpu: &mut V,
    insn_len: u64,
) -> HypercallDone {
    let rip_advance = if (1..=MAX_INSN_LEN).contains(&insn_len) {
        insn_len
    } else {
        impossible_len(insn_len)
    };
    let outcome = vmmcall::dispatch(registry, vcpu);
    HypercallDone {
        outcome,
        // A long call that yielded between steps: the guest executes the
        // instruction again to continue it (docs/ABI.md, "Long calls").
        rip_advance,
    }
}

/// [`handle_hypercall`] for a VMM that gives its vCPU a
/// [`Stepper`](vmmcall::step::Stepper) (docs/ABI.md, "Long calls"):
/// `rip_advance` is 0 when a long call yielded ([`Outcome::pending`]), so
/// that the guest executes the instruction again to continue it. Inject no
/// single-step `#DB` then: the instruction did not complete.
#[inline(always)]
pub fn handle_hypercall_stepped<V: Vcpu + ?Sized>(
    registry: &Registry<'static>,
    vcpu: &mut V,
    insn_len: u64,
) -> HypercallDone {
    let mut done = handle_hypercall(registry, vcpu, insn_len);
    if done.outcome.pending {
        done.rip_advance = 0;
    }
    done
}

/// [`HYPERCALL_INSN_LEN`] for a hypercall whose length `insn_len` is not
/// an instruction's, logged. Out of line: a run loop never takes it.
#[cold]
#[inline(never)]
fn impossible_len(insn_len: u64) -> u64 {
    log::warn!(
        "vmexit: hypercall instruction length {insn_len} is impossible, using {HYPERCALL_INSN_LEN}"
    );
    HYPERCALL_INSN_LEN
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

/// The linear address of the instruction at `rip`: `rip` itself in 64-bit
/// mode (`in_64bit_mode`: EFER.LMA and CS.L), else `CS.base + rip`
/// truncated to 32 bits, as the processor forms it (Intel SDM Vol. 3A
/// §3.4.4; AMD APM Vol. 2 §4.12). SVM: CS.L is VMCB `CS.attrib` bit 9;
/// VMX: `GUEST_CS_AR_BYTES` bit 13 and the "IA-32e mode guest" entry
/// control.
pub const fn code_address(rip: u64, cs_base: u64, in_64bit_mode: bool) -> u64 {
    if in_64bit_mode {
        rip
    } else {
        cs_base.wrapping_add(rip) & 0xFFFF_FFFF
    }
}

/// The cross-vendor half of the ABI: decide a `#UD` exit.
///
/// Fetches 3 bytes at `code_address` (the faulting instruction's linear
/// address, see [`code_address`]) through the vCPU, with the caller's
/// privilege. If they are `VMCALL` or `VMMCALL` ([`hypercall_instruction`]),
/// the hypercall runs as [`handle_hypercall`] runs it, with a 3-byte
/// instruction, and the result says how far to advance RIP. Otherwise
/// (any other instruction, or bytes the guest cannot read) it returns
/// `None` and touches nothing: the `#UD` is the guest's own, and the VMM
/// injects it back unchanged.
///
/// ```
/// use vmmcall::{abi::VMCALL_BYTES, mock::MockVcpu, Registry};
///
/// let registry = Registry::new(&[]).unwrap();
/// let mut vcpu = MockVcpu::new();
/// vcpu.map(0x1000, true, false).poke(0x1000, &VMCALL_BYTES);
/// vcpu.regs.rax = 77; // on AMD, the Intel instruction: still a hypercall
/// let done = vmexit::handle_ud(&registry, &mut vcpu, 0x1000).unwrap();
/// assert_eq!((done.rip_advance, vcpu.regs.rax), (3, vmmcall::Error::NoSys.to_rax()));
/// vcpu.poke(0x1000, &[0x0F, 0x0B, 0x90]); // UD2: the guest's own #UD
/// assert_eq!(vmexit::handle_ud(&registry, &mut vcpu, 0x1000), None);
/// ```
#[inline]
pub fn handle_ud<V: Vcpu + ?Sized>(
    registry: &Registry<'static>,
    vcpu: &mut V,
    code_address: u64,
) -> Option<HypercallDone> {
    let mut bytes = [0u8; 3];
    vcpu.as_dyn_vcpu()
        .read_linear(GuestAddr(code_address), &mut bytes)
        .ok()?;
    hypercall_instruction(&bytes)?;
    // A cold path: the check of a yielded call costs nothing here.
    Some(handle_hypercall_stepped(registry, vcpu, HYPERCALL_INSN_LEN))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmmcall::mock::MockVcpu;

    #[test]
    fn code_address_is_cs_base_plus_rip_outside_64_bit_mode() {
        assert_eq!(
            code_address(0xffff_8000_0000_1000, 0x1234, true),
            0xffff_8000_0000_1000
        );
        assert_eq!(code_address(0x100, 0xF_0000, false), 0xF_0100);
        // 32-bit wrap, as the processor forms linear addresses there.
        assert_eq!(code_address(0x10, 0xFFFF_FFF8, false), 0x8);
        assert_eq!(code_address(u64::MAX, u64::MAX, false), 0xFFFF_FFFE);
    }

    /// Three steps, then 3.
    fn three_steps(cx: &mut vmmcall::Caller<'_>) -> Result<u64, vmmcall::Error> {
        let [mut done, ..] = cx.progress();
        while done < 3 {
            done += 1;
            if done < 3 {
                cx.step([done, 0, 0, 0])?;
            }
        }
        Ok(done)
    }

    #[test]
    fn a_yielded_call_is_not_stepped_over_by_the_stepped_route() {
        static HANDLERS: [vmmcall::Handler; 1] =
            [vmmcall::Handler::new("three", true, three_steps).long()];
        let registry = Registry::new(&HANDLERS).unwrap();
        let mut vcpu = MockVcpu::new();
        vcpu.stepper = Some(vmmcall::mock::MockStepper {
            continuations: vmmcall::step::Continuations::new().with_budget(1),
            ..Default::default()
        });
        vcpu.regs.rax = 1;
        let advances: [u64; 3] =
            core::array::from_fn(|_| handle_hypercall_stepped(&registry, &mut vcpu, 3).rip_advance);
        assert_eq!(advances, [0, 0, 3]);
        assert_eq!(vcpu.regs.rax, 3);
        // The plain route does not look (a VMM without steps never yields).
        vcpu.regs.rax = 1;
        assert_eq!(handle_hypercall(&registry, &mut vcpu, 3).rip_advance, 3);
        assert_eq!(vcpu.regs.rax, 1, "yielded: RAX untouched");
    }

    #[test]
    fn ud_runs_either_instruction_and_nothing_else() {
        let registry = Registry::new(&[]).unwrap();
        let mut vcpu = MockVcpu::new();
        vcpu.map(0x1000, true, false);
        for bytes in [VMCALL_BYTES, VMMCALL_BYTES] {
            vcpu.poke(0x1000, &bytes);
            vcpu.regs.rax = 99;
            let done = handle_ud(&registry, &mut vcpu, 0x1000).unwrap();
            assert_eq!(done.rip_advance, 3);
            assert_eq!(vcpu.regs.rax, vmmcall::Error::NoSys.to_rax());
        }
        // UD2, a near miss, an unreadable page, bytes across the end of
        // what the guest can read, and a supervisor page at CPL 3: the
        // guest's own #UD, RAX untouched.
        for (addr, bytes) in [
            (0x1000, &[0x0F, 0x0B, 0x00][..]),
            (0x1000, &[0x0F, 0x01, 0xC2][..]),
            (0x5000, &[][..]),
            (0x1FFE, &[0x0F, 0x01][..]),
        ] {
            if !bytes.is_empty() {
                vcpu.poke(addr, bytes);
            }
            vcpu.regs.rax = 7;
            assert_eq!(handle_ud(&registry, &mut vcpu, addr), None, "{addr:#x}");
            assert_eq!(vcpu.regs.rax, 7);
        }
        vcpu.map(0x3000, false, false).poke(0x3000, &VMMCALL_BYTES);
        vcpu.cpl = 3;
        assert_eq!(handle_ud(&registry, &mut vcpu, 0x3000), None);
        vcpu.cpl = 0;
        assert!(handle_ud(&registry, &mut vcpu, 0x3000).is_some());
    }
}
