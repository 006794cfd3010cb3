//! The run loop shared by both backends: enter the guest, decode the exit,
//! act on it.
//!
//! Policy (the same on SVM and VMX):
//! - hypercall (`vmcall`/`vmmcall`): dispatch through `vmmcall`, advance RIP;
//! - `#UD` on the other vendor's hypercall instruction (the VMM intercepts
//!   `#UD`): the same, with RIP += 3; any other `#UD` is re-injected;
//! - CPUID: answer with [`crate::hv::virtual_cpuid`], advance RIP;
//! - a port outside the guest's pass-through set (`crate::intercept`): the
//!   RTC is emulated read-only; any other `IN` reads all ones, `OUT` is
//!   dropped, `INS`/`OUTS` raise `#GP(0)`;
//! - `RDMSR`/`WRMSR` of an MSR the hardware does not switch: emulated by
//!   [`crate::vmsr`] (the guest's own EFER and PAT, fixed values, or
//!   `#GP(0)`);
//! - VMX: a `MOV` to CR0/CR4 that touches a bit VMX owns: emulated through
//!   the read shadow, or `#GP(0)` for a bit the CPU does not allow;
//! - a virtualization instruction (VMRUN, VMLOAD, VMSAVE, STGI, CLGI,
//!   SKINIT, INVLPGA; VMXON, VMLAUNCH, ...): inject #UD, as a CPU without
//!   the feature would (CPUID hides SVM and VMX from the guest);
//! - `XSETBV`: `#UD` (CPUID offers no XSAVE); `INVD`: skipped;
//! - HLT of a bare-metal guest (the VMM delivers it no interrupts; a Linux
//!   guest's HLT is not intercepted), shutdown (triple fault), INIT, a
//!   nested page fault (guest-physical address outside guest RAM), a failed
//!   VM entry, or any other exit: stop the guest with a diagnosis naming
//!   the exit, RIP and the raw codes.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

use crate::cpu;
use crate::guest::Profile;
use crate::hv::{virtual_cpuid, CpuidPolicy, GuestRam};
use crate::intercept;
use crate::vcpu::GuestVcpu;
use crate::vmsr::{self, GuestMsrs, MsrResult};
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};
use vmexit::Exit;
use vmmcall::{GuestRegs, Registry, VcpuState};

/// What a backend read after an exit: the vendor's raw fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawExit {
    /// AMD SVM (VMCB control area).
    Svm {
        /// EXITCODE, EXITINFO1, EXITINFO2.
        fields: vmexit::SvmExitFields,
        /// nRIP, or 0 without NRIPS.
        nrip: u64,
    },
    /// Intel VMX (VMCS exit-information fields).
    Vmx(vmexit::VmxExitFields),
}

impl RawExit {
    /// The vendor-neutral exit.
    pub fn decode(&self) -> Exit {
        match self {
            RawExit::Svm { fields, .. } => Exit::from_svm(fields),
            RawExit::Vmx(fields) => Exit::from_vmx(fields),
        }
    }

    /// Length of the instruction that exited at `rip`: VMX reports it; SVM
    /// reports nRIP with NRIPS, else the caller's `fallback` (the known
    /// length of the intercepted instruction).
    pub fn insn_len(&self, rip: u64, fallback: u64) -> u64 {
        match self {
            RawExit::Vmx(f) => vmexit::vmx_insn_len(f.instruction_len),
            RawExit::Svm { nrip: 0, .. } => fallback,
            RawExit::Svm { nrip, .. } => vmexit::svm_insn_len_or(rip, *nrip, true, fallback),
        }
    }

    /// Which guest instruction an [`Exit::Other`] `code` is, among those
    /// the VMM intercepts to keep host state out of reach (SVM EXITCODEs,
    /// APM Vol. 2 Appendix C; VMX basic exit reasons, SDM Vol. 3D
    /// Appendix C).
    pub fn guest_insn(&self, code: u64) -> Option<GuestInsn> {
        use GuestInsn::*;
        match (self, code) {
            (RawExit::Svm { .. }, 0x76) | (RawExit::Vmx(_), 13) => Some(Invd),
            (RawExit::Svm { .. }, 0x89) | (RawExit::Vmx(_), 54) => Some(Wbinvd),
            (RawExit::Svm { .. }, 0x6F) | (RawExit::Vmx(_), 15) => Some(Rdpmc),
            (RawExit::Svm { .. }, 0x8A) | (RawExit::Vmx(_), 39) => Some(Monitor),
            (RawExit::Svm { .. }, 0x8B | 0x8C) | (RawExit::Vmx(_), 36) => Some(Mwait),
            (RawExit::Svm { .. }, 0x87) | (RawExit::Vmx(_), 51) => Some(Rdtscp),
            (RawExit::Svm { .. }, 0x8E) => Some(Rdpru),
            (RawExit::Vmx(_), 52) => Some(PreemptionTimer),
            _ => None,
        }
    }

    /// The vendor's raw exit code (SVM EXITCODE, VMX full exit reason).
    pub fn code(&self) -> u64 {
        match self {
            RawExit::Svm { fields, .. } => fields.exitcode,
            RawExit::Vmx(f) => u64::from(f.exit_reason),
        }
    }

    /// The vendor's qualification (SVM EXITINFO1/2, VMX exit qualification).
    pub fn info(&self) -> (u64, u64) {
        match self {
            RawExit::Svm { fields, .. } => (fields.exitinfo1, fields.exitinfo2),
            RawExit::Vmx(f) => (f.qualification, f.guest_physical),
        }
    }
}

/// Intercepted guest instructions without a vendor-neutral [`Exit`] of
/// their own, and what the run loop does with each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestInsn {
    /// `INVD`: skipped (it would drop dirty cache lines machine-wide).
    Invd,
    /// `WBINVD`/`WBNOINVD`: skipped (guest RAM is write-back and no device
    /// DMAs into it, so there is nothing to flush for the guest; KVM skips
    /// it likewise without non-coherent DMA).
    Wbinvd,
    /// `RDPMC`: `#GP(0)`, as on a CPU whose counters CPUID does not offer.
    Rdpmc,
    /// `MONITOR`/`MONITORX`: `#UD` (CPUID hides them).
    Monitor,
    /// `MWAIT`/`MWAITX`: `#UD` (CPUID hides them).
    Mwait,
    /// `RDTSCP`: `#UD` (CPUID hides it; TSC_AUX is not switched).
    Rdtscp,
    /// AMD `RDPRU`: `#UD` (CPUID hides it).
    Rdpru,
    /// VMX preemption timer: the run budget of a bare-metal guest ran out.
    PreemptionTimer,
}

/// A backend: one vCPU of one vendor. As a [`VcpuState`] it gives the
/// guest's CPL and paging mode, which handlers read lazily.
pub trait Backend: VcpuState {
    /// "svm" or "vmx".
    fn name(&self) -> &'static str;
    /// Run the guest until the next exit.
    fn enter(&mut self, regs: &mut GuestRegs) -> RawExit;
    /// The guest's RIP.
    fn rip(&self) -> u64;
    /// Set the guest's RIP.
    fn set_rip(&mut self, rip: u64);
    /// Guest RAM (the same for the whole run).
    fn ram(&self) -> GuestRam;
    /// Inject a hardware exception at the next entry.
    fn inject_exception(&mut self, vector: u8, error_code: Option<u32>);
    /// The guest's switched MSRs (EFER, PAT) for [`crate::vmsr`].
    fn msrs(&mut self) -> &mut dyn GuestMsrs;
    /// Emulate `MOV CRn, value` for a write that exited because it touches
    /// a bit the VMM owns (VMX guest/host masks). `false`: the value is not
    /// allowed and the guest gets `#GP(0)`.
    fn write_cr(&mut self, cr: u8, value: u64) -> bool;
    /// Which guest runs.
    fn profile(&self) -> Profile;
    /// What CPUID may offer on this backend.
    fn cpuid_policy(&self) -> CpuidPolicy;
    /// The guest's RFLAGS.
    fn rflags(&self) -> u64;
    /// The linear address of the guest's `rip`: CS.base + RIP outside
    /// 64-bit mode (truncated to 32 bits), RIP itself in 64-bit mode.
    fn code_address(&self, rip: u64) -> u64;
    /// Set DR6.BS and the other `dr6` bits of a debug exception about to be
    /// injected (SDM Vol. 3A §19.2.3; VMX does not switch DR6, SVM keeps it
    /// in the VMCB).
    fn set_dr6(&mut self, dr6: u64);
}

/// RFLAGS.TF.
const RFLAGS_TF: u64 = x86::bits64::rflags::RFlags::FLAGS_TF.bits();
/// DR6.BS (single step), with DR6's always-one bits.
const DR6_BS: u64 = 0xFFFF_0FF0 | x86::debugregs::Dr6::BS.bits() as u64;

/// Move the guest past an instruction the VMM emulated or skipped, as
/// executing it would: RIP to `next` (the backend also ends an STI / MOV SS
/// shadow), and with RFLAGS.TF set the single-step `#DB` a real CPU raises
/// after the instruction (SDM Vol. 3A §19.2.4).
fn step(backend: &mut dyn Backend, next: u64) {
    backend.set_rip(next);
    if backend.rflags() & RFLAGS_TF != 0 {
        backend.set_dr6(DR6_BS);
        backend.inject_exception(DB, None);
    }
}

/// `MOV` to or from a control register, decoded from its bytes (for SVM
/// without decode assists, which reports no register).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MovCr {
    /// `MOV CRn, r64` (else `MOV r64, CRn`).
    pub write: bool,
    /// The control register.
    pub cr: u8,
    /// The general-purpose register (x86 encoding, 0 = RAX).
    pub gpr: u8,
    /// Instruction length in bytes.
    pub len: u64,
}

/// Decode `[F0] [REX] 0F 20|22 /r` (Intel SDM Vol. 2B, "MOV—Move to/from
/// Control Registers"; AMD APM Vol. 3: a LOCK prefix selects CR8 outside
/// 64-bit mode). The ModRM `mod` field is ignored, as the CPU does.
pub fn decode_mov_cr(bytes: &[u8]) -> Option<MovCr> {
    let mut at = 0usize;
    let mut lock = false;
    let mut rex = 0u8;
    while let Some(&b) = bytes.get(at) {
        match b {
            0xF0 => lock = true,
            0x40..=0x4F => rex = b,
            // Operand-size and segment prefixes do not change MOV CR.
            0x66 | 0x2E | 0x36 | 0x3E | 0x26 | 0x64 | 0x65 => {}
            _ => break,
        }
        at = at.checked_add(1)?;
        if at > 4 {
            return None;
        }
    }
    if bytes.get(at) != Some(&0x0F) {
        return None;
    }
    let write = match bytes.get(at.checked_add(1)?)? {
        0x20 => false,
        0x22 => true,
        _ => return None,
    };
    let modrm = *bytes.get(at.checked_add(2)?)?;
    let mut cr = ((modrm >> 3) & 7) | if rex & 4 != 0 { 8 } else { 0 };
    if lock {
        cr |= 8;
    }
    let gpr = (modrm & 7) | if rex & 1 != 0 { 8 } else { 0 };
    Some(MovCr {
        write,
        cr,
        gpr,
        len: at.checked_add(3)? as u64,
    })
}

/// Why the guest stopped without asking to.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// SVM could not be used.
    Svm(crate::svm::SvmError),
    /// VMX could not be used, or a VMX instruction failed.
    Vmx(crate::vmx::VmxError),
    /// The handler registry of this image is broken.
    Registry(vmmcall::RegistryError),
    /// The guest halted; the VMM delivers no interrupts, so nothing would
    /// wake it.
    Halted {
        /// RIP of the HLT.
        rip: u64,
    },
    /// Triple fault.
    Shutdown {
        /// RIP.
        rip: u64,
    },
    /// A bare-metal guest ran for its whole run budget without one VM exit
    /// (e.g. `cli; jmp $`): VMX preemption timer.
    RunBudget {
        /// RIP when the timer fired.
        rip: u64,
    },
    /// An INIT signal reached the vCPU (nothing in the guest's reach sends
    /// one: it has no local APIC and no reset port).
    Init {
        /// RIP.
        rip: u64,
    },
    /// The guest touched guest-physical memory outside its RAM.
    NestedPageFault {
        /// The guest-physical address.
        gpa: u64,
        /// RIP.
        rip: u64,
    },
    /// VM entry failed: the guest state or controls are invalid.
    EntryFailure {
        /// The decoded exit.
        exit: Exit,
        /// RIP.
        rip: u64,
    },
    /// An exit the VMM does not handle.
    Unhandled {
        /// The decoded exit.
        exit: Exit,
        /// The raw fields.
        raw: RawExit,
        /// RIP.
        rip: u64,
    },
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::Svm(e) => write!(f, "SVM unavailable: {e:?}"),
            Stop::Vmx(e) => write!(f, "VMX: {e}"),
            Stop::Registry(e) => write!(f, "hypercall registry: {e}"),
            Stop::Halted { rip } => write!(
                f,
                "guest executed HLT at RIP {rip:#x} (the VMM delivers no interrupts: nothing would wake it)"
            ),
            Stop::Shutdown { rip } => write!(f, "guest shutdown (triple fault) at RIP {rip:#x}"),
            Stop::RunBudget { rip } => write!(
                f,
                "guest ran {} TSC ticks without a VM exit at RIP {rip:#x} (run budget)",
                RUN_BUDGET_TSC
            ),
            Stop::Init { rip } => write!(f, "INIT signal at RIP {rip:#x} (the VMM does not reset vCPUs)"),
            Stop::NestedPageFault { gpa, rip } => write!(
                f,
                "guest touched guest-physical {gpa:#x}, outside its RAM, at RIP {rip:#x}"
            ),
            Stop::EntryFailure { exit, rip } => {
                write!(f, "VM entry failed at RIP {rip:#x}: {exit}")
            }
            Stop::Unhandled { exit, raw, rip } => {
                let (i1, i2) = raw.info();
                write!(
                    f,
                    "unhandled exit {} (raw code {:#x}, info {i1:#x}/{i2:#x}) at RIP {rip:#x}",
                    exit.name(),
                    raw.code()
                )
            }
        }
    }
}

/// How long a bare-metal guest may run without any VM exit before the VMM
/// stops it (VMX preemption timer; SDM Vol. 3C §26.5.1): 2^30 TSC ticks,
/// under a second on hardware, about 20 s of wall-clock time under Bochs.
/// A hypercall, CPUID or any other exit starts the budget again.
pub const RUN_BUDGET_TSC: u64 = 1 << 30;

static EXITS: AtomicU64 = AtomicU64::new(0);

/// How many VM exits the VMM has handled since boot: the guest's "uptime"
/// in the only clock every platform shares.
pub fn exit_count() -> u64 {
    EXITS.load(Ordering::Relaxed)
}

/// Bytes of `INVD` (0F 08), for SVM without NRIPS.
const INVD_LEN: u64 = 2;

/// Bytes of `CPUID` (0F A2), for SVM without NRIPS.
const CPUID_LEN: u64 = 2;

/// Bytes of `RDMSR`/`WRMSR` (0F 32 / 0F 30), for SVM without NRIPS.
const MSR_LEN: u64 = 2;

/// The register and instruction length of the `MOV` to or from `cr` that
/// exited (`cr_write`: the CR and the direction): from the exit
/// information where the CPU gives it (VMX, SVM decode assists), else
/// decoded from the guest's code (SVM without decode assists). `None` when
/// the bytes there are not that instruction.
fn mov_cr_operand(
    backend: &mut dyn Backend,
    ram: GuestRam,
    regs: &mut GuestRegs,
    raw: RawExit,
    rip: u64,
    (cr, write): (u8, bool),
    gpr: Option<u8>,
) -> Option<(u8, u64)> {
    if let Some(g) = gpr {
        return Some((g, raw.insn_len(rip, 3)));
    }
    let mut bytes = [0u8; 8];
    let at = backend.code_address(rip);
    let mut vcpu = vcpu(backend, ram, regs);
    vmmcall::Vcpu::read_linear(&mut vcpu, vmmcall::GuestAddr(at), &mut bytes)
        .ok()
        .and_then(|()| decode_mov_cr(&bytes))
        .filter(|m| m.cr == cr && m.write == write)
        .map(|m| (m.gpr, m.len))
}

/// Run the guest until it asks to stop (`Ok(status)`) or must be stopped.
pub fn run_loop(backend: &mut dyn Backend, regs: &mut GuestRegs) -> Result<u32, Stop> {
    let registry = Registry::global().map_err(Stop::Registry)?;
    let policy = backend.cpuid_policy();
    let profile = backend.profile();
    let mut rtc_index = 0u8;
    // The guest's CR8 (TPR), kept here: see the ControlRegister arm.
    let mut vtpr = 0u64;
    let ram = backend.ram();
    loop {
        let raw = backend.enter(regs);
        EXITS.fetch_add(1, Ordering::Relaxed);
        let rip = backend.rip();
        let exit = raw.decode();
        match exit {
            Exit::Hypercall => {
                let len = raw.insn_len(rip, vmmcall::abi::HYPERCALL_INSN_LEN);
                if let Some(status) = hypercall(backend, regs, ram, registry, rip, len) {
                    return Ok(status);
                }
            }
            Exit::Cpuid => {
                let len = raw.insn_len(rip, CPUID_LEN);
                let (leaf, sub) = (regs.rax as u32, regs.rcx as u32);
                let r = virtual_cpuid(leaf, sub, cpu::cpuid(leaf, sub), &policy);
                regs.rax = u64::from(r.eax);
                regs.rbx = u64::from(r.ebx);
                regs.rcx = u64::from(r.ecx);
                regs.rdx = u64::from(r.edx);
                step(backend, rip.wrapping_add(len));
            }
            Exit::Exception { vector: UD, .. } => {
                // The other vendor's hypercall instruction raises #UD: run
                // it as a hypercall (vmexit::handle_ud). Anything else is
                // the guest's own #UD and goes back to it unchanged.
                let at = backend.code_address(rip);
                let done = {
                    let mut vcpu = vcpu(backend, ram, regs);
                    vmexit::handle_ud(registry, &mut vcpu, at)
                };
                match done {
                    Some(done) => {
                        step(backend, done.next_rip(rip));
                        if let Some(status) = done.stop() {
                            return Ok(status);
                        }
                    }
                    None => backend.inject_exception(UD, None),
                }
            }
            Exit::Exception {
                vector: v @ (DB | AC),
                error_code,
                ..
            } => {
                // Reflected to the guest: the VMM intercepts #DB and #AC
                // only so that a guest can never make the CPU deliver them
                // in a loop without a VM exit (CVE-2015-8104, CVE-2015-5307).
                if v == DB {
                    if let RawExit::Vmx(f) = raw {
                        // VMX leaves DR6 alone and reports its bits in the
                        // exit qualification (SDM Vol. 3C §28.2.1).
                        backend.set_dr6(0xFFFF_0FF0 | (f.qualification & 0x600F));
                    }
                }
                backend.inject_exception(v, error_code.map(|_| 0));
            }
            Exit::ControlRegister { cr: 8, write, gpr } => {
                // CR8 is the TPR: the guest gets a virtual one (a real
                // write would change the host's interrupt priority).
                match mov_cr_operand(backend, ram, regs, raw, rip, (8, write), gpr) {
                    Some((g, len)) => {
                        if write {
                            let v = regs.get(g);
                            if v >> 4 != 0 {
                                // Bits 63:4 are reserved (SDM Vol. 3A §2.5).
                                backend.inject_exception(GP, Some(0));
                                continue;
                            }
                            vtpr = v;
                        } else {
                            regs.set(g, vtpr);
                        }
                        step(backend, rip.wrapping_add(len));
                    }
                    None => backend.inject_exception(UD, None),
                }
            }
            Exit::Io(io) => {
                // A port outside crate::intercept::guest_ports: the RTC is
                // emulated read-only, other reads see an absent device,
                // writes vanish, string I/O faults.
                if io.string {
                    log::debug!("guest string I/O at port {:#x} denied at {rip:#x}", io.port);
                    backend.inject_exception(GP, Some(0));
                } else if let Some(status) =
                    intercept::linux_exit(profile, io.port, io.size, io.write, regs.rax)
                {
                    return Ok(status);
                } else {
                    let rtc = profile == Profile::Linux && io.size == 1;
                    match (io.port, io.write) {
                        (intercept::RTC_INDEX, true) if rtc => rtc_index = regs.rax as u8,
                        (intercept::RTC_DATA, false) if rtc => {
                            let v = intercept::rtc_read(rtc_index, crate::cpu::read_rtc);
                            regs.rax = (regs.rax & !0xFF) | u64::from(v);
                        }
                        (_, false) => regs.rax = intercept::denied_in(regs.rax, io.size),
                        (_, true) => {}
                    }
                    let next = match io.next_rip {
                        Some(next) => next,
                        None => rip.wrapping_add(raw.insn_len(rip, 1)),
                    };
                    step(backend, next);
                }
            }
            Exit::Msr { write, index } => {
                // An MSR the hardware does not switch (crate::intercept::
                // GUEST_MSRS pass through): crate::vmsr decides.
                let msr = index.unwrap_or(regs.rcx as u32);
                let result = if write {
                    let value = (regs.rdx << 32) | (regs.rax & 0xFFFF_FFFF);
                    vmsr::write(msr, value, backend.msrs())
                } else {
                    vmsr::read(msr, backend.msrs())
                };
                match result {
                    MsrResult::Ok(value) => {
                        if !write {
                            regs.rax = value & 0xFFFF_FFFF;
                            regs.rdx = value >> 32;
                        }
                        step(backend, rip.wrapping_add(raw.insn_len(rip, MSR_LEN)));
                    }
                    MsrResult::Gp => {
                        log::debug!(
                            "guest {} of MSR {msr:#x} at {rip:#x}: #GP",
                            if write { "WRMSR" } else { "RDMSR" }
                        );
                        backend.inject_exception(GP, Some(0));
                    }
                }
            }
            Exit::ControlRegister {
                cr: cr @ (0 | 4),
                write: true,
                gpr,
            } => match mov_cr_operand(backend, ram, regs, raw, rip, (cr, true), gpr) {
                // VMX: a host-owned bit; SVM: every CR4 write (decoded here
                // without decode assists). The backend checks the value.
                Some((gpr, len)) => {
                    if backend.write_cr(cr, regs.get(gpr)) {
                        step(backend, rip.wrapping_add(len));
                    } else {
                        backend.inject_exception(GP, Some(0));
                    }
                }
                None => backend.inject_exception(UD, None),
            },
            Exit::Xsetbv => {
                // XCR0 belongs to the host (neither vendor switches it) and
                // CPUID offers no XSAVE: as on a CPU without it.
                backend.inject_exception(UD, None);
            }
            Exit::Other { code, .. } => match raw.guest_insn(code) {
                // INVD drops dirty cache lines machine-wide; skipping it is
                // always safe (memory stays as coherent as after WBINVD).
                // WBINVD: see GuestInsn::Wbinvd.
                Some(GuestInsn::Invd | GuestInsn::Wbinvd) => {
                    step(backend, rip.wrapping_add(raw.insn_len(rip, INVD_LEN)));
                }
                Some(GuestInsn::Rdpmc) => backend.inject_exception(GP, Some(0)),
                Some(
                    GuestInsn::Monitor | GuestInsn::Mwait | GuestInsn::Rdtscp | GuestInsn::Rdpru,
                ) => {
                    backend.inject_exception(UD, None);
                }
                Some(GuestInsn::PreemptionTimer) => return Err(Stop::RunBudget { rip }),
                None => return Err(Stop::Unhandled { exit, raw, rip }),
            },
            Exit::VirtualizationInstruction(insn) => {
                log::debug!("guest executed {} at {rip:#x}: #UD", insn.name());
                backend.inject_exception(UD, None);
            }
            Exit::Hlt => return Err(Stop::Halted { rip }),
            Exit::Shutdown => return Err(Stop::Shutdown { rip }),
            Exit::Init => return Err(Stop::Init { rip }),
            Exit::NestedPageFault { gpa, .. } => return Err(Stop::NestedPageFault { gpa, rip }),
            Exit::EntryFailure { .. } => return Err(Stop::EntryFailure { exit, rip }),
            _ => return Err(Stop::Unhandled { exit, raw, rip }),
        }
    }
}

/// `#DB`.
const DB: u8 = x86::irq::DEBUG_VECTOR;
/// `#UD`.
const UD: u8 = x86::irq::INVALID_OPCODE_VECTOR;
/// `#AC`.
const AC: u8 = x86::irq::ALIGNMENT_CHECK_VECTOR;
/// `#GP`.
const GP: u8 = x86::irq::GENERAL_PROTECTION_FAULT_VECTOR;

/// The vCPU as handlers see it: the guest's registers, guest RAM, and the
/// backend as the [`VcpuState`] that gives the CPL and paging mode if a
/// handler needs them (a null hypercall reads neither).
#[inline(always)]
fn vcpu<'b>(backend: &'b dyn Backend, ram: GuestRam, regs: &'b mut GuestRegs) -> GuestVcpu<'b> {
    GuestVcpu::lazy(regs, ram, backend)
}

/// Run the hypercall at `rip` (instruction length `len`) and step over it.
/// Returns the stop status a handler asked for, if any.
///
/// Inlined into the run loop with `vmexit::handle_hypercall` and
/// `vmmcall::dispatch`, so that only what the run loop uses of their
/// results (the RIP advance and the stop request) is computed.
#[inline(always)]
fn hypercall(
    backend: &mut dyn Backend,
    regs: &mut GuestRegs,
    ram: GuestRam,
    registry: &Registry<'static>,
    rip: u64,
    len: u64,
) -> Option<u32> {
    let done = {
        let mut vcpu = vcpu(backend, ram, regs);
        vmexit::handle_hypercall(registry, &mut vcpu, len)
    };
    step(backend, done.next_rip(rip));
    done.stop()
}

#[cfg(test)]
mod tests {
    //! The run loop's policy on a mock backend: each exit's effect on RIP,
    //! RAX and the injected exception, as docs/ABI.md states it.
    use super::*;
    extern crate std;
    use std::collections::VecDeque;
    use std::vec::Vec;
    use vmexit::VmxExitFields;

    /// VMX basic exit reasons (Intel SDM Vol. 3C, Appendix C).
    const EXCEPTION: u32 = 0;
    const HLT: u32 = 12;
    const INVD: u32 = 13;
    const IO: u32 = 30;
    const RDMSR: u32 = 31;
    const XSETBV: u32 = 55;

    struct Mock {
        exits: VecDeque<RawExit>,
        rip: u64,
        injected: Vec<(u8, Option<u32>)>,
        ram: Vec<u8>,
        efer: u64,
        cr4: u64,
        profile: Profile,
        rflags: u64,
        dr6: u64,
    }

    impl Mock {
        /// A bare-metal guest at RIP 0x100 with a page of RAM (`code` at
        /// 0x100), RFLAGS 2, that sees `exits` (then HLT).
        fn new(exits: &[RawExit], code: &[u8]) -> Mock {
            let mut ram = std::vec![0u8; 0x1000];
            ram[0x100..0x100 + code.len()].copy_from_slice(code);
            Mock {
                exits: exits.iter().copied().collect(),
                rip: 0x100,
                injected: Vec::new(),
                ram,
                efer: 0xD00,
                cr4: 0,
                profile: Profile::BareMetal,
                rflags: 2,
                dr6: 0,
            }
        }
    }

    impl Backend for Mock {
        fn name(&self) -> &'static str {
            "mock"
        }
        fn enter(&mut self, _regs: &mut GuestRegs) -> RawExit {
            self.exits.pop_front().unwrap_or(vmx(HLT, 0, 1, 0))
        }
        fn rip(&self) -> u64 {
            self.rip
        }
        fn set_rip(&mut self, rip: u64) {
            self.rip = rip;
        }
        fn ram(&self) -> GuestRam {
            // Paging off: linear = guest-physical = an index into `ram`.
            GuestRam {
                host_base: self.ram.as_ptr() as u64,
                size: self.ram.len() as u64,
            }
        }
        fn inject_exception(&mut self, vector: u8, error_code: Option<u32>) {
            self.injected.push((vector, error_code));
        }
        fn msrs(&mut self) -> &mut dyn GuestMsrs {
            self
        }
        fn write_cr(&mut self, _cr: u8, value: u64) -> bool {
            self.cr4 = value;
            value & (1 << 12) == 0
        }
        fn profile(&self) -> Profile {
            self.profile
        }
        fn cpuid_policy(&self) -> CpuidPolicy {
            CpuidPolicy::SVM
        }
        fn rflags(&self) -> u64 {
            self.rflags
        }
        fn code_address(&self, rip: u64) -> u64 {
            rip
        }
        fn set_dr6(&mut self, dr6: u64) {
            self.dr6 = dr6;
        }
    }

    impl vmmcall::VcpuState for Mock {
        fn cpl(&self) -> u8 {
            0
        }
        fn paging(&self) -> vmmcall::paging::PagingMode {
            vmmcall::paging::PagingMode::disabled()
        }
    }

    impl GuestMsrs for Mock {
        fn efer(&self) -> u64 {
            self.efer
        }
        fn set_efer(&mut self, efer: u64) {
            self.efer = efer;
        }
        fn cr0(&self) -> u64 {
            1 << 31
        }
        fn pat(&self) -> Option<u64> {
            None
        }
        fn set_pat(&mut self, _pat: u64) {}
    }

    fn vmx(reason: u32, qualification: u64, len: u32, intr: u32) -> RawExit {
        RawExit::Vmx(VmxExitFields {
            exit_reason: reason,
            qualification,
            instruction_len: len,
            interruption_info: intr,
            ..VmxExitFields::default()
        })
    }

    /// Run one exit at RIP 0x100 (then HLT); RAM holds `code` at 0x100.
    fn run_one(exit: RawExit, code: &[u8], rax: u64) -> (Mock, GuestRegs) {
        let mut m = Mock::new(&[exit], code);
        let mut regs = GuestRegs {
            rax,
            rcx: 0xC001_0117,
            ..GuestRegs::default()
        };
        let r = run_loop(&mut m, &mut regs);
        assert!(
            matches!(r, Err(Stop::Halted { .. })),
            "the loop ends at the HLT"
        );
        (m, regs)
    }

    #[test]
    fn denied_in_reads_all_ones_and_steps_over() {
        // IN AL, 0x60: size 1 (bits 2:0 = 0), IN (bit 3), port in 31:16.
        let (m, regs) = run_one(vmx(IO, (0x60 << 16) | (1 << 3), 2, 0), &[], 0x1234_5600);
        assert_eq!(regs.rax, 0x1234_56ff);
        assert_eq!(m.rip, 0x102);
        assert!(m.injected.is_empty());
        // OUT DX, EAX to 0xCFC: dropped, RAX unchanged.
        let (m, regs) = run_one(vmx(IO, (0xCFC << 16) | 3, 1, 0), &[], 0x8000_0000);
        assert_eq!((regs.rax, m.rip), (0x8000_0000, 0x101));
    }

    #[test]
    fn string_io_and_foreign_msrs_raise_gp() {
        // OUTSB (string, bit 4) to port 0x80.
        let (m, _) = run_one(vmx(IO, (0x80 << 16) | (1 << 4), 1, 0), &[], 0);
        assert_eq!(
            (m.rip, m.injected.as_slice()),
            (0x100, [(GP, Some(0))].as_slice())
        );
        let (m, _) = run_one(vmx(RDMSR, 0, 2, 0), &[], 0);
        assert_eq!(
            (m.rip, m.injected.as_slice()),
            (0x100, [(GP, Some(0))].as_slice())
        );
    }

    #[test]
    fn ud_on_the_other_vendors_instruction_is_a_hypercall() {
        // #UD (vector 6, hardware exception, valid) with VMMCALL at RIP.
        let ud = vmx(EXCEPTION, 0, 0, 6 | (3 << 8) | (1 << 31));
        let (m, regs) = run_one(ud, &vmmcall::abi::VMMCALL_BYTES, 0xdead);
        assert_eq!(
            regs.rax,
            vmmcall::Error::NoSys.to_rax(),
            "dispatched: unknown number"
        );
        assert_eq!(m.rip, 0x103);
        assert!(m.injected.is_empty());
        // Any other #UD (UD2) goes back to the guest, RIP unchanged.
        let (m, regs) = run_one(ud, &[0x0F, 0x0B], 0xdead);
        assert_eq!((regs.rax, m.rip), (0xdead, 0x100));
        assert_eq!(m.injected, [(UD, None)]);
    }

    #[test]
    fn mov_cr_decoding() {
        // mov cr8, rax (44 0F 22 C0); mov r9, cr8 (4D 0F 20 C1): REX.R picks
        // CR8, REX.B picks R9.
        assert_eq!(
            decode_mov_cr(&[0x44, 0x0F, 0x22, 0xC0]),
            Some(MovCr {
                write: true,
                cr: 8,
                gpr: 0,
                len: 4
            })
        );
        assert_eq!(
            decode_mov_cr(&[0x4D, 0x0F, 0x20, 0xC1]),
            Some(MovCr {
                write: false,
                cr: 8,
                gpr: 9,
                len: 4
            })
        );
        // AMD's LOCK alias: F0 0F 22 C3 = mov cr8, ebx.
        assert_eq!(
            decode_mov_cr(&[0xF0, 0x0F, 0x22, 0xC3]),
            Some(MovCr {
                write: true,
                cr: 8,
                gpr: 3,
                len: 4
            })
        );
        // mov cr4, rdx (0F 22 E2).
        assert_eq!(
            decode_mov_cr(&[0x0F, 0x22, 0xE2]),
            Some(MovCr {
                write: true,
                cr: 4,
                gpr: 2,
                len: 3
            })
        );
        assert_eq!(decode_mov_cr(&[0x0F, 0x01, 0xD9]), None, "VMMCALL");
        assert_eq!(decode_mov_cr(&[0x66; 8]), None, "prefixes only");
        assert_eq!(decode_mov_cr(&[]), None);
    }

    #[test]
    fn cr8_is_virtual() {
        // VMX CR access (reason 28): CR 8 (bits 3:0), MOV to CR (type 0),
        // GPR RCX (bits 11:8 = 1), then MOV from CR8 into RDX.
        let write = vmx(28, 8 | (1 << 8), 4, 0);
        let read = vmx(28, 8 | (1 << 4) | (2 << 8), 4, 0);
        let mut m = Mock::new(&[write, read], &[]);
        let mut regs = GuestRegs {
            rcx: 7,
            ..GuestRegs::default()
        };
        let _ = run_loop(&mut m, &mut regs);
        assert_eq!(regs.rdx, 7, "the guest reads back its own TPR");
        assert_eq!(m.rip, 0x108);
        assert!(m.injected.is_empty());
        // Reserved bits (run_one puts 0xC001_0117 in RCX): #GP, RIP kept.
        let (m, _) = run_one(write, &[], 0);
        assert_eq!(
            (m.rip, m.injected.as_slice()),
            (0x100, [(GP, Some(0))].as_slice())
        );
    }

    #[test]
    fn events_that_could_loop_are_reflected() {
        // #AC (vector 17, hardware exception, error code valid).
        let ac = vmx(EXCEPTION, 0, 0, 17 | (3 << 8) | (1 << 11) | (1 << 31));
        let (m, _) = run_one(ac, &[], 0);
        assert_eq!(
            (m.rip, m.injected.as_slice()),
            (0x100, [(AC, Some(0))].as_slice())
        );
        // #DB: reflected, DR6 from the exit qualification (BS, B0).
        let db = vmx(EXCEPTION, (1 << 14) | 1, 0, 1 | (3 << 8) | (1 << 31));
        let (m, _) = run_one(db, &[], 0);
        assert_eq!(m.injected, [(DB, None)]);
        assert_eq!(m.dr6, 0xFFFF_0FF0 | (1 << 14) | 1);
    }

    #[test]
    fn host_reaching_instructions() {
        // MWAIT (36), MONITOR (39), RDTSCP (51): #UD. RDPMC (15): #GP(0).
        // WBINVD (54): skipped.
        for reason in [36, 39, 51] {
            let (m, _) = run_one(vmx(reason, 0, 3, 0), &[], 0);
            assert_eq!(
                (m.rip, m.injected.as_slice()),
                (0x100, [(UD, None)].as_slice())
            );
        }
        let (m, _) = run_one(vmx(15, 0, 2, 0), &[], 0);
        assert_eq!(m.injected, [(GP, Some(0))]);
        let (m, _) = run_one(vmx(54, 0, 2, 0), &[], 0);
        assert_eq!((m.rip, m.injected.len()), (0x102, 0));
        // The preemption timer (52) ends a bare-metal guest's run.
        let mut m = Mock::new(&[vmx(52, 0, 0, 0)], &[]);
        let r = run_loop(&mut m, &mut GuestRegs::default());
        assert!(matches!(r, Err(Stop::RunBudget { rip: 0x100 })), "{r:?}");
    }

    #[test]
    fn single_step_after_an_emulated_instruction() {
        // CPUID (10) with RFLAGS.TF: RIP moves on, then #DB with DR6.BS.
        let mut m = Mock {
            rflags: 2 | RFLAGS_TF,
            ..Mock::new(&[vmx(10, 0, 2, 0)], &[])
        };
        let _ = run_loop(&mut m, &mut GuestRegs::default());
        assert_eq!(m.rip, 0x102);
        assert_eq!(m.injected, [(DB, None)]);
        assert_eq!(m.dr6 & (1 << 14), 1 << 14);
    }

    #[test]
    fn xsetbv_is_ud_and_invd_is_skipped() {
        let (m, _) = run_one(vmx(XSETBV, 0, 3, 0), &[], 0);
        assert_eq!(
            (m.rip, m.injected.as_slice()),
            (0x100, [(UD, None)].as_slice())
        );
        let (m, _) = run_one(vmx(INVD, 0, 2, 0), &[], 0);
        assert_eq!((m.rip, m.injected.len()), (0x102, 0));
    }
}
