//! The run loop shared by both backends: enter the guest through a
//! [`Backend`], act on the vendor-neutral exit it hands back
//! ([`vmexit::VmExit`]), and end with a status or a [`Stop`].
//!
//! Policy (the same on SVM and VMX):
//! - hypercall (`vmcall`/`vmmcall`): dispatch through `vmmcall`, advance RIP;
//! - `#UD` on the other vendor's hypercall instruction (the VMM intercepts
//!   `#UD`): the same, with RIP += 3; any other `#UD` is re-injected;
//! - CPUID: answer with [`crate::cpuid::virtual_cpuid`], advance RIP;
//! - a port outside the guest's pass-through set (`crate::intercept`):
//!   [`crate::ports`] (the RTC read-only, an absent device elsewhere),
//!   `INS`/`OUTS` raise `#GP(0)`;
//! - `RDMSR`/`WRMSR` of an MSR the hardware does not switch: emulated by
//!   [`crate::vmsr`] (the guest's own EFER and PAT, fixed values, or
//!   `#GP(0)`);
//! - VMX: a `MOV` to CR0/CR4 that touches a bit VMX owns: emulated through
//!   the read shadow, or `#GP(0)` for a bit the CPU does not allow;
//! - a virtualization instruction (VMRUN, VMLOAD, VMSAVE, STGI, CLGI,
//!   SKINIT, INVLPGA; VMXON, VMLAUNCH, ...): inject #UD, as a CPU without
//!   the feature would (CPUID hides SVM and VMX from the guest);
//! - `XSETBV`, `MONITOR`/`MWAIT`, `RDTSCP`, `RDPRU`: `#UD` (CPUID hides
//!   them); `RDPMC`: `#GP(0)`; `INVD`, `WBINVD`: skipped;
//! - the VMX-preemption timer (a bare-metal guest's run budget): stop;
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

use crate::backend::{Backend, Host};
use crate::cpu;
use crate::cpuid::virtual_cpuid;
use crate::longcall::Stepping;
use crate::mov_cr::decode_mov_cr;
use crate::ports::EmulatedPorts;
use crate::smp::Machine;
use crate::stop::Stop;
use crate::vcpu::{GuestRam, GuestVcpu};
use crate::vmsr::{self, MsrResult};
use vmexit::{Exit, Insn};
use vmmcall::step::Continuations;
use vmmcall::{GuestRegs, Registry};

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

/// A long call yielded between steps (docs/ABI.md, "Long calls"): RIP
/// stays on the instruction, with no single-step `#DB` (it did not
/// complete), and the STI / MOV SS interrupt shadow ends, as `set_rip`
/// ends it for an emulated instruction: the call yielded for the guest's
/// interrupt, which a shadow left from `sti; vmcall` would otherwise hold
/// back at every re-execution until the call finished (SDM Vol. 3A
/// §6.8.3; measured on bochs-vmx: no interrupt ever landed between steps).
#[cold]
fn yielded(backend: &mut dyn Backend, rip: u64) {
    backend.set_rip(rip);
}

/// How long a bare-metal guest may run without any VM exit before the VMM
/// stops it (VMX preemption timer; SDM Vol. 3C §26.5.1): 2^30 TSC ticks,
/// under a second on hardware, about 20 s of wall-clock time under Bochs.
/// A hypercall, CPUID or any other exit starts the budget again.
pub const RUN_BUDGET_TSC: u64 = 1 << 30;

/// The register and instruction length of the `MOV` to or from `cr` that
/// exited (the CR and the direction): from the exit information where the
/// CPU gives it (VMX, SVM decode assists; `insn_len` is then the exit's),
/// else decoded from the guest's code (SVM without decode assists). `None`
/// when the bytes there are not that instruction.
fn mov_cr_operand(
    backend: &mut dyn Backend,
    ram: GuestRam,
    regs: &mut GuestRegs,
    (rip, insn_len): (u64, u64),
    (cr, write): (u8, bool),
    gpr: Option<u8>,
) -> Option<(u8, u64)> {
    if let Some(g) = gpr {
        return Some((g, insn_len));
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

/// Run vCPU `cpu` of the guest until it asks to stop (`Ok(status)`) or
/// must be stopped, or the run ends on another vCPU ([`Stop::Ended`]:
/// checked before every entry, so no vCPU enters the guest once the run
/// is ending; an NMI from the vCPU that ends it makes this one exit).
pub fn run_loop(
    backend: &mut dyn Backend,
    regs: &mut GuestRegs,
    cpu: usize,
    machine: &Machine,
    host: &dyn Host,
) -> Result<u32, Stop> {
    let registry = Registry::global().map_err(Stop::Registry)?;
    let slot = machine.slot(cpu).ok_or(Stop::NoCpu)?;
    let id = cpu as u32;
    // This vCPU's ICR high word (crate::lapic: never the hardware's).
    let mut icr_high = 0u32;
    let policy = backend.cpuid_policy();
    let mut ports = EmulatedPorts::new(backend.profile());
    // The guest's CR8 (TPR), kept here: see the ControlRegister arm.
    let mut vtpr = 0u64;
    // This vCPU's long calls in progress (crate::longcall).
    let mut conts = Continuations::new().with_budget(crate::longcall::step_budget());
    let ram = backend.ram();
    loop {
        if machine.ending() {
            return Err(Stop::Ended);
        }
        let vm_exit = backend.enter(regs);
        slot.count_exit();
        let rip = backend.rip();
        // The next RIP after an instruction the VMM emulates or skips.
        let next = rip.wrapping_add(vm_exit.insn_len.get());
        match vm_exit.exit {
            Exit::Hypercall => {
                let len = vm_exit.insn_len.get();
                let at = (rip, len);
                if let Some(status) = hypercall(backend, &mut conts, regs, ram, registry, at, id) {
                    return Ok(status);
                }
            }
            Exit::Cpuid => {
                let (leaf, sub) = (regs.rax as u32, regs.rcx as u32);
                let r = virtual_cpuid(leaf, sub, cpu::cpuid(leaf, sub), &policy);
                regs.rax = u64::from(r.eax);
                regs.rbx = u64::from(r.ebx);
                regs.rcx = u64::from(r.ecx);
                regs.rdx = u64::from(r.edx);
                step(backend, next);
            }
            Exit::Exception { vector: UD, .. } => {
                // The other vendor's hypercall instruction raises #UD: run
                // it as a hypercall (vmexit::handle_ud). Anything else is
                // the guest's own #UD and goes back to it unchanged.
                let at = backend.code_address(rip);
                let done = {
                    let st = Stepping::new(backend, &mut conts, id);
                    let mut vcpu = vmmcall::GuestVcpu::lazy(&mut *regs, ram, st);
                    vmexit::handle_ud(registry, &mut vcpu, at)
                };
                match done {
                    Some(done) => {
                        if done.outcome.pending {
                            yielded(backend, rip);
                        } else {
                            step(backend, done.next_rip(rip));
                        }
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
                dr6,
                ..
            } => {
                // Reflected to the guest: the VMM intercepts #DB and #AC
                // only so that a guest can never make the CPU deliver them
                // in a loop without a VM exit (CVE-2015-8104, CVE-2015-5307).
                // A #DB that exited left DR6 alone on VMX; the exit says
                // what it holds now.
                if let Some(dr6) = dr6 {
                    backend.set_dr6(dr6);
                }
                backend.inject_exception(v, error_code.map(|_| 0));
            }
            Exit::ControlRegister { cr: 8, write, gpr } => {
                // CR8 is the TPR: the guest gets a virtual one (a real
                // write would change the host's interrupt priority).
                match mov_cr_operand(
                    backend,
                    ram,
                    regs,
                    (rip, vm_exit.insn_len.get()),
                    (8, write),
                    gpr,
                ) {
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
                if let Some(status) = ports.exit_request(&io, regs.rax) {
                    // A Linux guest's exit port: see crate::ports.
                    return Ok(status);
                }
                match ports.access(&io, regs.rax, cpu::read_rtc) {
                    // A port outside crate::intercept::guest_ports: see
                    // crate::ports.
                    Some(rax) => {
                        regs.rax = rax;
                        step(backend, next);
                    }
                    None => {
                        log::debug!("guest string I/O at port {:#x} denied at {rip:#x}", io.port);
                        backend.inject_exception(GP, Some(0));
                    }
                }
            }
            Exit::Msr { write, index } => {
                // An MSR the hardware does not switch (crate::intercept::
                // GUEST_MSRS pass through): crate::vmsr decides.
                let msr = index.unwrap_or(regs.rcx as u32);
                let result = if write {
                    let value = (regs.rdx << 32) | (regs.rax & 0xFFFF_FFFF);
                    vmsr::write(msr, value, backend)
                } else {
                    vmsr::read(msr, backend)
                };
                match result {
                    MsrResult::Ok(value) => {
                        if !write {
                            regs.rax = value & 0xFFFF_FFFF;
                            regs.rdx = value >> 32;
                        }
                        step(backend, next);
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
            } => match mov_cr_operand(
                backend,
                ram,
                regs,
                (rip, vm_exit.insn_len.get()),
                (cr, true),
                gpr,
            ) {
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
            // INVD drops dirty cache lines machine-wide; skipping it is
            // always safe (memory stays as coherent as after WBINVD). WBINVD
            // and WBNOINVD: guest RAM is write-back and no device DMAs into
            // it, so there is nothing to flush for the guest (KVM skips it
            // likewise without non-coherent DMA).
            Exit::Instruction(Insn::Invd | Insn::Wbinvd) => step(backend, next),
            // RDPMC: #GP(0), as on a CPU whose counters CPUID does not offer.
            Exit::Instruction(Insn::Rdpmc) => backend.inject_exception(GP, Some(0)),
            // CPUID hides MONITOR/MWAIT, RDTSCP (TSC_AUX is not switched)
            // and RDPRU: #UD, as on a CPU without them.
            Exit::Instruction(Insn::Monitor | Insn::Mwait | Insn::Rdtscp | Insn::Rdpru) => {
                backend.inject_exception(UD, None);
            }
            // The run budget of a bare-metal guest ran out.
            Exit::PreemptionTimer => return Err(Stop::RunBudget { rip }),
            Exit::VirtualizationInstruction(insn) => {
                log::debug!("guest executed {} at {rip:#x}: #UD", insn.name());
                backend.inject_exception(UD, None);
            }
            // The VMM's signal (the run is ending: the loop's first check
            // sees it) or an NMI for the guest, latched for the next
            // entry (crate::idt).
            Exit::Nmi => backend.nmi_exit(),
            Exit::Hlt => return Err(Stop::Halted { rip }),
            Exit::Shutdown => return Err(Stop::Shutdown { rip }),
            Exit::Init => return Err(Stop::Init { rip }),
            Exit::NestedPageFault { gpa, access }
                if access.write && gpa & !0xFFF == crate::nested::APIC_PAGE && backend.lapic() =>
            {
                // A write to the guest's local APIC (crate::lapic).
                slot.count_apic_write();
                let apic = Apic {
                    machine,
                    host,
                    icr_high: &mut icr_high,
                };
                match apic.write(backend, regs, ram, rip, (gpa & 0xFFF) as u32) {
                    Some(len) => step(backend, rip.wrapping_add(len)),
                    None => return Err(Stop::NestedPageFault { gpa, rip }),
                }
            }
            Exit::NestedPageFault { gpa, .. } => return Err(Stop::NestedPageFault { gpa, rip }),
            exit @ Exit::EntryFailure { .. } => return Err(Stop::EntryFailure { exit, rip }),
            _ => return Err(Stop::Unhandled { exit: vm_exit, rip }),
        }
    }
}

/// A guest write to its local APIC page, and what it needs.
struct Apic<'a> {
    machine: &'a Machine,
    host: &'a dyn Host,
    icr_high: &'a mut u32,
}

impl Apic<'_> {
    /// Decode the instruction at `rip` that wrote `offset` of the APIC
    /// page and do what [`crate::lapic::classify`] says. Returns its
    /// length, or `None` if it is not a plain write the VMM decodes
    /// (the guest is then stopped, as for any access outside its RAM).
    fn write(
        self,
        backend: &mut dyn Backend,
        regs: &mut GuestRegs,
        ram: GuestRam,
        rip: u64,
        offset: u32,
    ) -> Option<u64> {
        use crate::lapic::{classify, Ipi, Write};
        let at = backend.code_address(rip);
        let long = backend.long_code();
        // Up to 15 bytes, not past the page if the next one is unmapped.
        let to_page_end = 4096u64.wrapping_sub(at & 0xFFF).min(15) as usize;
        let mut bytes = [0u8; 15];
        let n = {
            let mut vcpu = vcpu(backend, ram, regs);
            if vmmcall::Vcpu::read_linear(&mut vcpu, vmmcall::GuestAddr(at), &mut bytes).is_ok() {
                bytes.len()
            } else {
                let part = bytes.get_mut(..to_page_end)?;
                vmmcall::Vcpu::read_linear(&mut vcpu, vmmcall::GuestAddr(at), part).ok()?;
                to_page_end
            }
        };
        let insn = crate::mmio::decode_write(bytes.get(..n)?, long).ok()?;
        let len = u64::from(insn.len);
        if insn.width != 4 {
            // The APIC's registers are 32 bits wide; other widths are
            // dropped (SDM Vol. 3A §12.4.1: undefined).
            return Some(len);
        }
        let value = match insn.src {
            crate::mmio::Operand::Reg(r) => {
                let v = regs.get(r) as u32;
                if insn.xchg {
                    // XCHG also loads the register's old value: what the
                    // register held (32 bits zero-extend, as a load does).
                    regs.set(r, u64::from(self.host.apic_read(offset)));
                }
                v
            }
            crate::mmio::Operand::Imm(v) => v as u32,
        };
        let write = classify(offset, value, *self.icr_high);
        // Before the write or the IPI: a CPU that then finds the vector
        // in its IRR knows to look at that word (crate::longcall).
        if let Some(vector) = crate::lapic::irr_vector(offset, &write) {
            self.machine.note_vector(vector);
        }
        match write {
            Write::Pass(v) => self.host.apic_write(offset, v),
            Write::IcrHigh(v) => *self.icr_high = v,
            Write::Drop | Write::Ipi(Ipi::Dropped) => {}
            Write::Ipi(Ipi::Send { icr_low, icr_high }) => self.host.apic_send(icr_high, icr_low),
            // The vCPU waits for its STARTUP anyway (crate::smp): INIT
            // changes nothing, on either vendor.
            Write::Ipi(Ipi::Init(_)) => {}
            Write::Ipi(Ipi::Startup { apic_id, vector }) => {
                // The first STARTUP starts a waiting vCPU in real mode at
                // vector << 12; a second one, or one for a running vCPU,
                // is ignored, as by a CPU not in wait-for-SIPI.
                let entry = crate::smp::VcpuEntry {
                    rip: 0,
                    rsp: 0,
                    arg: 0,
                    real_segment: Some(u16::from(vector) << 8),
                };
                if let Some(slot) = self
                    .machine
                    .by_apic_id(apic_id)
                    .and_then(|i| self.machine.vcpu_up(i, entry).ok())
                {
                    self.host.signal(slot);
                }
            }
        }
        Some(len)
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
/// backend as the [`VcpuState`](vmmcall::VcpuState) that gives the CPL and paging mode if a
/// handler needs them (a null hypercall reads neither).
#[inline(always)]
fn vcpu<'b>(backend: &'b dyn Backend, ram: GuestRam, regs: &'b mut GuestRegs) -> GuestVcpu<'b> {
    GuestVcpu::lazy(regs, ram, backend)
}

/// Run the hypercall at `rip` (instruction length `len`) and step over it,
/// unless it is a long call that yielded between steps (docs/ABI.md,
/// "Long calls"; [`crate::longcall`]): then RIP stays on the instruction,
/// with no single-step `#DB` (it did not complete), and the guest takes
/// its interrupt and executes it again. Returns the stop status a handler
/// asked for, if any.
///
/// Inlined into the run loop with `vmexit::handle_hypercall_stepped` and
/// `vmmcall::dispatch`, so that only what the run loop uses of their
/// results (the RIP advance and the stop request) is computed. The
/// continuations reach `vmmcall` through the lazy vCPU state, a
/// [`Stepping`] held by value in the `GuestVcpu`: one word more than the
/// backend alone, and nothing that escapes as a second `dyn Vcpu`.
#[inline(always)]
fn hypercall(
    backend: &mut dyn Backend,
    conts: &mut Continuations,
    regs: &mut GuestRegs,
    ram: GuestRam,
    registry: &Registry<'static>,
    (rip, len): (u64, u64),
    vcpu_id: u32,
) -> Option<u32> {
    let done = {
        // The state carries the vCPU id: what `Caller::vcpu_id` answers,
        // and the shard of the registry's call counters this vCPU writes.
        let st = Stepping::new(backend, conts, vcpu_id);
        let mut vcpu = vmmcall::GuestVcpu::lazy(&mut *regs, ram, st);
        vmexit::handle_hypercall_stepped(registry, &mut vcpu, len)
    };
    if done.rip_advance != 0 {
        step(backend, done.next_rip(rip));
    } else {
        yielded(backend, rip);
    }
    done.stop()
}

#[cfg(test)]
mod tests {
    //! The run loop's policy on a mock backend: each exit's effect on RIP,
    //! RAX and the injected exception, as docs/ABI.md states it.
    use super::*;
    extern crate std;
    use crate::cpuid::CpuidPolicy;
    use crate::guest::Profile;
    use crate::vmsr::GuestMsrs;
    use std::collections::VecDeque;
    use std::vec::Vec;
    use vmexit::{VmExit, VmxExitFields};

    /// VMX basic exit reasons (Intel SDM Vol. 3C, Appendix C).
    const EXCEPTION: u32 = 0;
    const HLT: u32 = 12;
    const INVD: u32 = 13;
    const IO: u32 = 30;
    const RDMSR: u32 = 31;
    const XSETBV: u32 = 55;

    struct Mock {
        exits: VecDeque<VmExit>,
        rip: u64,
        injected: Vec<(u8, Option<u32>)>,
        ram: Vec<u8>,
        efer: u64,
        cr4: u64,
        profile: Profile,
        rflags: u64,
        dr6: u64,
        nmis: u32,
        lapic: bool,
        /// The local APIC `lapic_requests` reads, if any.
        apic: Option<Apic>,
        /// RIPs set by the run loop, in order.
        rips: Vec<u64>,
    }

    impl Mock {
        /// A bare-metal guest at RIP 0x100 with a page of RAM (`code` at
        /// 0x100), RFLAGS 2, that sees `exits` (then HLT).
        fn new(exits: &[VmExit], code: &[u8]) -> Mock {
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
                nmis: 0,
                lapic: false,
                apic: None,
                rips: Vec::new(),
            }
        }
    }

    impl Backend for Mock {
        fn enter(&mut self, _regs: &mut GuestRegs) -> VmExit {
            self.exits.pop_front().unwrap_or(vmx(HLT, 0, 1, 0))
        }
        fn rip(&self) -> u64 {
            self.rip
        }
        fn set_rip(&mut self, rip: u64) {
            self.rip = rip;
            self.rips.push(rip);
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
        fn nmi_exit(&mut self) {
            self.nmis += 1;
        }
        fn long_code(&self) -> bool {
            true
        }
        fn lapic(&self) -> bool {
            self.lapic
        }
        fn lapic_requests(&self) -> bool {
            self.apic
                .as_ref()
                .is_some_and(|a| crate::longcall::lapic_requests(a, a.words))
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

    /// No local APIC, no other CPU.
    struct NoHost;

    impl Host for NoHost {
        fn apic_write(&self, _offset: u32, _value: u32) {}
        fn apic_read(&self, _offset: u32) -> u32 {
            0
        }
        fn apic_send(&self, _high: u32, _low: u32) {}
        fn signal(&self, _slot: &crate::smp::Slot) {}
    }

    fn vmx(reason: u32, qualification: u64, len: u32, intr: u32) -> VmExit {
        VmExit::from_vmx(&VmxExitFields {
            exit_reason: reason,
            qualification,
            instruction_len: len,
            interruption_info: intr,
            ..VmxExitFields::default()
        })
    }

    /// Run one exit at RIP 0x100 (then HLT); RAM holds `code` at 0x100.
    fn run_one(exit: VmExit, code: &[u8], rax: u64) -> (Mock, GuestRegs) {
        let mut m = Mock::new(&[exit], code);
        let mut regs = GuestRegs {
            rax,
            rcx: 0xC001_0117,
            ..GuestRegs::default()
        };
        let r = run_loop(&mut m, &mut regs, 0, &Machine::new(), &NoHost);
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
        let _ = run_loop(&mut m, &mut regs, 0, &Machine::new(), &NoHost);
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
        let r = run_loop(
            &mut m,
            &mut GuestRegs::default(),
            0,
            &Machine::new(),
            &NoHost,
        );
        assert!(matches!(r, Err(Stop::RunBudget { rip: 0x100 })), "{r:?}");
    }

    #[test]
    fn single_step_after_an_emulated_instruction() {
        // CPUID (10) with RFLAGS.TF: RIP moves on, then #DB with DR6.BS.
        let mut m = Mock {
            rflags: 2 | RFLAGS_TF,
            ..Mock::new(&[vmx(10, 0, 2, 0)], &[])
        };
        let _ = run_loop(
            &mut m,
            &mut GuestRegs::default(),
            0,
            &Machine::new(),
            &NoHost,
        );
        assert_eq!(m.rip, 0x102);
        assert_eq!(m.injected, [(DB, None)]);
        assert_eq!(m.dr6 & (1 << 14), 1 << 14);
    }

    /// A host that records what the run loop asks of it.
    #[derive(Default)]
    struct Recorder(std::cell::RefCell<Vec<(&'static str, u32, u32)>>);

    impl Host for Recorder {
        fn apic_write(&self, offset: u32, value: u32) {
            self.0.borrow_mut().push(("write", offset, value));
        }
        fn apic_read(&self, offset: u32) -> u32 {
            self.0.borrow_mut().push(("read", offset, 0));
            0x14
        }
        fn apic_send(&self, high: u32, low: u32) {
            self.0.borrow_mut().push(("send", high, low));
        }
        fn signal(&self, slot: &crate::smp::Slot) {
            self.0.borrow_mut().push(("signal", slot.apic_id(), 0));
        }
    }

    /// An EPT violation: a write to `gpa`.
    fn apic_write_exit(offset: u64) -> VmExit {
        VmExit::from_vmx(&VmxExitFields {
            exit_reason: 48,
            qualification: 0b10 | (1 << 3),
            guest_physical: crate::nested::APIC_PAGE + offset,
            ..VmxExitFields::default()
        })
    }

    /// Three 6-byte writes to the APIC page (`code`, at page offsets
    /// `offsets`) by a guest with a local APIC, on vCPU 0 of `machine`:
    /// the run's end, the backend and what reached the hardware.
    fn three_apic_writes(
        code: &[u8; 18],
        offsets: [u64; 3],
        mut regs: GuestRegs,
        machine: &Machine,
    ) -> (Result<u32, Stop>, Mock, Recorder) {
        let exits = offsets.map(apic_write_exit);
        let mut m = Mock {
            lapic: true,
            ..Mock::new(&exits, code)
        };
        let host = Recorder::default();
        let r = run_loop(&mut m, &mut regs, 0, machine, &host);
        (r, m, host)
    }

    #[test]
    fn a_linux_guests_apic_writes_are_emulated() {
        // mov [rdx+0xb0], ecx (EOI), then mov [rdx+0x310], eax (ICR high)
        // and mov [rdx+0x300], ebx (ICR low): STARTUP 0x99 to APIC ID 1.
        let code = [
            0x89, 0x8A, 0xB0, 0x00, 0x00, 0x00, //
            0x89, 0x82, 0x10, 0x03, 0x00, 0x00, //
            0x89, 0x9A, 0x00, 0x03, 0x00, 0x00,
        ];
        let machine = Machine::new();
        machine.set_cpus(&[0, 1]);
        machine.ready(1);
        let regs = GuestRegs {
            rcx: 0,
            rax: 1 << 24,
            rbx: 0x0699,
            ..GuestRegs::default()
        };
        let (r, m, host) = three_apic_writes(&code, [0xB0, 0x310, 0x300], regs, &machine);
        assert!(matches!(r, Err(Stop::Halted { .. })), "{r:?}");
        assert_eq!(m.rip, 0x100 + 18, "three 6-byte instructions stepped over");
        assert_eq!(
            host.0.borrow().as_slice(),
            [("write", 0xB0, 0), ("signal", 1, 0)],
            "EOI to the hardware, ICR high kept, the STARTUP emulated"
        );
        let start = machine.take_start(1).unwrap();
        assert_eq!(start.real_segment, Some(0x9900));
        // Without a local APIC the same write stops the guest.
        let mut m = Mock::new(&[apic_write_exit(0xB0)], &code);
        let r = run_loop(&mut m, &mut GuestRegs::default(), 0, &Machine::new(), &host);
        assert!(matches!(r, Err(Stop::NestedPageFault { .. })), "{r:?}");
    }

    #[test]
    fn a_guests_fixed_vectors_name_the_irr_words_to_check() {
        // mov [rdx+0x300], ebx (ICR low: fixed IPI, vector 0xFD), then
        // mov [rdx+0x350], ecx (LVT LINT0: fixed, vector 0x31), then
        // mov [rdx+0x360], eax (LVT LINT1: NMI, no vector in the IRR).
        let code = [
            0x89, 0x9A, 0x00, 0x03, 0x00, 0x00, //
            0x89, 0x8A, 0x50, 0x03, 0x00, 0x00, //
            0x89, 0x82, 0x60, 0x03, 0x00, 0x00,
        ];
        let machine = Machine::new();
        machine.set_cpus(&[0, 1]);
        let regs = GuestRegs {
            rbx: 0xFD,
            rcx: 0x31,
            rax: 0x400,
            ..GuestRegs::default()
        };
        let (_, m, _) = three_apic_writes(&code, [0x300, 0x350, 0x360], regs, &machine);
        assert_eq!(m.rip, 0x100 + 18);
        assert_eq!(machine.vector_words(), 1 << 7 | 1 << 1);
    }

    /// Three steps, each one page of nothing; returns 3.
    #[vmmcall::vmmcall("exits_test_three_steps", user, long)]
    fn three_steps(cx: &mut vmmcall::Caller) -> Result<u64, vmmcall::Error> {
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
    fn a_long_call_yields_to_a_pending_interrupt_and_continues() {
        let number = Registry::global()
            .unwrap()
            .lookup(b"exits_test_three_steps")
            .unwrap()
            .get();
        // VMCALL (reason 18, 3 bytes) three times at 0x100, with RFLAGS.IF
        // and TF and the PIC requesting IRQ 0: the first two exits yield
        // (RIP set back to 0x100, ending a shadow, no #DB), the third ends
        // the call (RIP 0x103, the single-step #DB).
        let call = vmx(18, 0, 3, 0);
        let mut m = Mock {
            rflags: 2 | RFLAGS_TF | (1 << 9),
            ..Mock::new(&[call, call, call], &[])
        };
        crate::longcall::tests::PIC.with(|p| {
            p.set(crate::longcall::Pic {
                irr: 1,
                imr: 0,
                isr: 0,
            })
        });
        let mut regs = GuestRegs {
            rax: number,
            ..GuestRegs::default()
        };
        let _ = run_loop(&mut m, &mut regs, 0, &Machine::new(), &NoHost);
        crate::longcall::tests::PIC.with(|p| p.set(crate::longcall::Pic::default()));
        assert_eq!(m.rips, [0x100, 0x100, 0x103]);
        assert_eq!(regs.rax, 3);
        assert_eq!(
            m.injected,
            [(DB, None)],
            "one #DB, after the call completed"
        );
        // With no interrupt requested nothing yields: one exit.
        let mut m = Mock::new(&[call], &[]);
        m.rflags = 2 | (1 << 9);
        regs.rax = number;
        let _ = run_loop(&mut m, &mut regs, 0, &Machine::new(), &NoHost);
        assert_eq!((m.rips.as_slice(), regs.rax), ([0x103].as_slice(), 3));
    }

    /// A local APIC whose IRR requests `vector` (0: nothing) at
    /// processor priority `ppr`, on a machine whose guest vectors are in
    /// the IRR words `words`; it records the offsets read.
    struct Apic {
        vector: u32,
        ppr: u32,
        words: u8,
        reads: std::cell::RefCell<Vec<u32>>,
    }

    impl Host for Apic {
        fn apic_write(&self, _offset: u32, _value: u32) {}
        fn apic_read(&self, offset: u32) -> u32 {
            self.reads.borrow_mut().push(offset);
            match offset {
                0xA0 => self.ppr,
                0x200..=0x270
                    if self.vector != 0 && (offset - 0x200) / 0x10 == self.vector / 32 =>
                {
                    1 << (self.vector % 32)
                }
                _ => 0,
            }
        }
        fn apic_send(&self, _high: u32, _low: u32) {}
        fn signal(&self, _slot: &crate::smp::Slot) {}
    }

    #[test]
    fn a_long_call_yields_to_its_local_apic_on_any_cpu() {
        let number = Registry::global()
            .unwrap()
            .lookup(b"exits_test_three_steps")
            .unwrap()
            .get();
        let call = vmx(18, 0, 3, 0);
        // The call made `exits` times on CPU 1 (a guest with a local APIC
        // if `lapic`), the APIC requesting `vector` at priority `ppr`, the
        // guest having programmed that vector (none for 0): the RIPs the
        // call left and the APIC registers read.
        let run = |exits: usize, lapic: bool, rflags: u64, vector: u32, ppr: u32| {
            let machine = Machine::new();
            machine.set_cpus(&[0, 1]);
            if vector != 0 {
                machine.note_vector(vector as u8);
            }
            let mut m = Mock {
                rflags,
                lapic,
                apic: Some(Apic {
                    vector,
                    ppr,
                    words: machine.vector_words(),
                    reads: Default::default(),
                }),
                ..Mock::new(&std::vec![call; exits], &[])
            };
            let mut regs = GuestRegs {
                rax: number,
                ..GuestRegs::default()
            };
            let _ = run_loop(&mut m, &mut regs, 1, &machine, &NoHost);
            assert_eq!(regs.rax, 3, "the call's result");
            (
                m.rips,
                m.apic.map(|a| a.reads.into_inner()).unwrap_or_default(),
            )
        };
        const IF: u64 = 1 << 9;
        // Linux's timer vector (class 14) over PPR class 0: a yield after
        // each step; PPR first, then IRR from the top word, which has it.
        let (rips, reads) = run(3, true, 2 | IF, 0xEC, 0);
        assert_eq!(rips, [0x100, 0x100, 0x103]);
        assert_eq!(reads, [0xA0, 0x270, 0xA0, 0x270]);
        // The same vector at PPR class 14 (the guest's timer handler runs):
        // it waits, and the call ends in one exit.
        let (rips, reads) = run(1, true, 2 | IF, 0xEC, 0xE0);
        assert_eq!(rips, [0x103]);
        assert_eq!(reads, [0xA0, 0x270, 0xA0, 0x270]);
        // A vector in the word the guest named, not requested: one exit,
        // each check reading PPR and that word alone.
        let (rips, reads) = run(1, true, 2 | IF, 0x41, 0x50);
        assert_eq!(rips, [0x103]);
        assert_eq!(reads, [0xA0, 0x220, 0xA0, 0x220]);
        // No vector programmed yet: nothing can be requested, nothing read.
        let (rips, reads) = run(1, true, 2 | IF, 0, 0);
        assert_eq!((rips.as_slice(), reads.len()), ([0x103].as_slice(), 0));
        // Interrupts masked, or no guest APIC on this AP: nothing is read.
        let (rips, reads) = run(1, true, 2, 0xEC, 0);
        assert_eq!((rips.as_slice(), reads.len()), ([0x103].as_slice(), 0));
        let (rips, reads) = run(1, false, 2 | IF, 0xEC, 0);
        assert_eq!((rips.as_slice(), reads.len()), ([0x103].as_slice(), 0));
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
