//! Running a guest under AMD SVM.
//!
//! Set-up follows AMD APM Vol. 2 §15.4 "Enabling SVM" and §15.5 "VMRUN":
//! check CPUID (SVM, nested paging, NRIPS), VM_CR.SVMDIS, set EFER.SVME,
//! point VM_HSAVE_PA at a host save page, fill a VMCB (intercepts, ASID,
//! nested paging, guest state), then loop on VMRUN and handle each #VMEXIT.

use super::vmcb::{Vmcb, VmcbSegment};
use super::SvmError;
use crate::backend::Backend;
use crate::cpu::{self, msr, FxArea};
use crate::cpuid::CpuidPolicy;
use crate::exits;
use crate::guest::{GuestStart, Profile};
use crate::intercept;
use crate::nested::{self, Format};
use crate::physmem::PhysAlloc;
use crate::rt::frames::{self, Tables, PAGE};
use crate::stop::Stop;
use crate::vcpu::GuestRam;
use crate::vmsr;
use crate::vmsr::GuestMsrs;
use vmexit::VmExit;
use vmmcall::{GuestRegs, VcpuState};

core::arch::global_asm!(
    r#"
    .section .text.svm_vmrun, "ax"
    .global svm_vmrun
/* svm_vmrun(regs: *mut GuestRegs [rdi], vmcb_pa: u64 [rsi],
 *           fx: *mut FxArea [rdx], host_save_pa: u64 [rcx])
 * Saves the VMM's FS, GS, TR, LDTR, KERNEL_GS_BASE, STAR/LSTAR/CSTAR/SFMASK
 * and SYSENTER state (VMSAVE to host_save_pa), loads the guest's x87/SSE
 * state (FXRSTOR) and GPRs (except RAX and RSP, which live in the VMCB),
 * runs VMLOAD/VMRUN/VMSAVE, stores the guest GPRs back, restores the VMM's
 * state (VMLOAD from host_save_pa: nothing of the guest's stays loaded in
 * the host, as in KVM), saves the guest's x87/SSE state (FXSAVE) and
 * resets the VMM's (FNINIT, MXCSR = 0x1F80): from here on the VMM's own SSE
 * code cannot touch the guest's registers, and runs with the default
 * rounding and exception masks whatever the guest set. */
svm_vmrun:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    push rdx
    push rdi
    push rcx
    mov rax, rcx
    vmsave rax
    fxrstor64 [rdx]
    mov rax, rsi
    mov rcx, [rdi + 8]
    mov rdx, [rdi + 16]
    mov rbx, [rdi + 24]
    mov rbp, [rdi + 40]
    mov rsi, [rdi + 48]
    mov r8,  [rdi + 64]
    mov r9,  [rdi + 72]
    mov r10, [rdi + 80]
    mov r11, [rdi + 88]
    mov r12, [rdi + 96]
    mov r13, [rdi + 104]
    mov r14, [rdi + 112]
    mov r15, [rdi + 120]
    mov rdi, [rdi + 56]
    vmload rax
    vmrun rax
    vmsave rax
    push rdi
    mov rdi, [rsp + 16]
    mov [rdi + 8], rcx
    mov [rdi + 16], rdx
    mov [rdi + 24], rbx
    mov [rdi + 40], rbp
    mov [rdi + 48], rsi
    mov [rdi + 64], r8
    mov [rdi + 72], r9
    mov [rdi + 80], r10
    mov [rdi + 88], r11
    mov [rdi + 96], r12
    mov [rdi + 104], r13
    mov [rdi + 112], r14
    mov [rdi + 120], r15
    pop rcx
    mov [rdi + 56], rcx
    pop rax
    vmload rax
    add rsp, 8
    pop rdx
    fxsave64 [rdx]
    fninit
    push 0x1F80
    ldmxcsr [rsp]
    add rsp, 8
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret
"#
);

extern "C" {
    fn svm_vmrun(regs: *mut GuestRegs, vmcb_pa: u64, fx: *mut FxArea, host_save_pa: u64);
}

fn alloc_page(alloc: &mut PhysAlloc) -> Result<u64, SvmError> {
    frames::zeroed_page(alloc).ok_or(SvmError::OutOfMemory)
}

/// The I/O and MSR permission maps (see `crate::intercept`): physically
/// contiguous, 4 KiB aligned, filled before the first VMRUN.
fn permission_maps(alloc: &mut PhysAlloc, profile: Profile) -> Result<(u64, u64), SvmError> {
    let iopm = alloc
        .alloc(intercept::SVM_IOPM_SIZE as u64, PAGE, 1 << 32)
        .ok_or(SvmError::OutOfMemory)?;
    let msrpm = alloc
        .alloc(intercept::SVM_MSRPM_SIZE as u64, PAGE, 1 << 32)
        .ok_or(SvmError::OutOfMemory)?;
    // SAFETY: both ranges are fresh RAM below 4 GiB from the allocator,
    // identity-mapped, owned by nobody else, and exactly the size of the
    // arrays they are viewed as (u8 arrays: any alignment).
    unsafe {
        intercept::svm_iopm(&mut *(iopm as *mut [u8; intercept::SVM_IOPM_SIZE]), profile);
        intercept::svm_msrpm(&mut *(msrpm as *mut [u8; intercept::SVM_MSRPM_SIZE]));
    }
    Ok((iopm, msrpm))
}

/// What the CPU offers.
struct Features {
    nrips: bool,
}

fn detect() -> Result<Features, SvmError> {
    if cpu::cpuid(0x8000_0001, 0).ecx & (1 << 2) == 0 {
        return Err(SvmError::NoSvm);
    }
    let f = cpu::cpuid(0x8000_000A, 0);
    if f.edx & 1 == 0 {
        return Err(SvmError::NoNestedPaging);
    }
    // SAFETY: VM_CR exists on every CPU with SVM (APM §15.30.1).
    if unsafe { cpu::rdmsr(msr::VM_CR) } & msr::VM_CR_SVMDIS != 0 {
        return Err(SvmError::Disabled);
    }
    Ok(Features {
        nrips: f.edx & (1 << 3) != 0,
    })
}

/// What every vCPU of the guest shares, set up once by the boot CPU: the
/// permission maps and the nested page tables (read-only after set-up).
pub struct SvmVm {
    nrips: bool,
    /// The guest has a local APIC (crate::lapic).
    lapic: bool,
    iopm: u64,
    msrpm: u64,
    n_cr3: u64,
    ram: GuestRam,
}

/// Check SVM on the boot CPU and build what the vCPUs share.
pub fn prepare(ram: GuestRam, start: &GuestStart, alloc: &mut PhysAlloc) -> Result<SvmVm, Stop> {
    let features = detect().map_err(Stop::Svm)?;
    log::info!(
        "SVM backend: nested paging on, NRIPS {}",
        if features.nrips {
            "supported (RIP from nRIP)"
        } else {
            "not supported (RIP += instruction length)"
        }
    );
    let (iopm, msrpm) = permission_maps(alloc, start.profile).map_err(Stop::Svm)?;
    let lapic = crate::rt::smp::guest_lapic(start.profile);
    let n_cr3 = nested::build_with(
        &mut Tables(alloc),
        Format::Npt,
        ram.host_base,
        ram.size,
        lapic,
    )
    .map_err(|_| Stop::Svm(SvmError::OutOfMemory))?;
    Ok(SvmVm {
        nrips: features.nrips,
        lapic,
        iopm,
        msrpm,
        n_cr3,
        ram,
    })
}

/// Run vCPU `cpu` of the guest on this CPU until the guest asks to stop
/// (`Ok(status)`) or must be stopped: enable SVM here (EFER.SVME, the
/// host save area), fill a VMCB of this CPU's own, then the run loop.
pub fn run_vcpu(
    vm: &SvmVm,
    start: &GuestStart,
    mut regs: GuestRegs,
    alloc: &spin::Mutex<PhysAlloc>,
    cpu: usize,
) -> Result<u32, Stop> {
    detect().map_err(Stop::Svm)?;
    let slot = crate::rt::smp::MACHINE.slot(cpu).ok_or(Stop::NoCpu)?;
    // SAFETY: EFER exists; setting SVME only enables the SVM instructions.
    unsafe { cpu::wrmsr(msr::EFER, cpu::rdmsr(msr::EFER) | msr::EFER_SVME) };
    let (hsave, vmcb_pa, host_save_pa) = {
        let mut a = alloc.lock();
        (
            alloc_page(&mut a).map_err(Stop::Svm)?,
            alloc_page(&mut a).map_err(Stop::Svm)?,
            alloc_page(&mut a).map_err(Stop::Svm)?,
        )
    };
    // SAFETY: VM_HSAVE_PA exists with SVM; `hsave` is a page owned by the VMM.
    unsafe { cpu::wrmsr(msr::VM_HSAVE_PA, hsave) };
    // SAFETY: `vmcb_pa` is a zeroed, page-aligned page owned by the VMM and
    // nothing else refers to it; Vmcb is exactly one page of integers.
    let vmcb = unsafe { &mut *(vmcb_pa as *mut Vmcb) };
    init_vmcb(vmcb, start, vm.n_cr3);
    vmcb.control.iopm_base_pa = vm.iopm;
    vmcb.control.msrpm_base_pa = vm.msrpm;
    regs.rsp = start.rsp;
    let mut backend = SvmBackend {
        vmcb,
        vmcb_pa,
        host_save_pa,
        nrips: vm.nrips,
        ram: vm.ram,
        profile: start.profile,
        fx: FxArea::reset(),
        cr4_allowed: crate::cpuid::guest_cr4_allowed_here(cpu::cpuid, &CpuidPolicy::SVM),
        spec: crate::spec::detect(false),
        slot,
        lapic: vm.lapic,
    };
    exits::run_loop(
        &mut backend,
        &mut regs,
        cpu,
        &crate::rt::smp::MACHINE,
        &crate::rt::smp::RtHost,
    )
}

fn init_vmcb(vmcb: &mut Vmcb, start: &GuestStart, n_cr3: u64) {
    let c = &mut vmcb.control;
    let i = super::vmcb::intercepts(start.profile);
    c.intercept_cr = i.cr;
    c.intercept_exceptions = i.exceptions;
    c.intercept3 = i.i3.bits();
    c.intercept4 = i.i4.bits();
    c.guest_asid = 1;
    c.tlb_control = 1;
    c.np_control = 1;
    c.n_cr3 = n_cr3;

    let s = &mut vmcb.save;
    let code = VmcbSegment {
        selector: start.cs,
        attrib: VmcbSegment::attrib_of(start.code_descriptor),
        limit: 0xFFFF_FFFF,
        base: 0,
    };
    let data = VmcbSegment {
        selector: start.ds,
        attrib: VmcbSegment::attrib_of(start.data_descriptor),
        limit: 0xFFFF_FFFF,
        base: 0,
    };
    s.cs = code;
    s.ss = data;
    s.ds = data;
    s.es = data;
    s.fs = data;
    s.gs = data;
    s.gdtr = VmcbSegment {
        selector: 0,
        attrib: 0,
        limit: u32::from(start.gdt_limit),
        base: start.gdt_base,
    };
    s.idtr = VmcbSegment::default();
    s.ldtr = VmcbSegment {
        selector: 0,
        attrib: VmcbSegment::LDT,
        limit: 0,
        base: 0,
    };
    s.tr = VmcbSegment {
        selector: 0,
        attrib: VmcbSegment::TSS64_BUSY,
        limit: 0x67,
        base: 0,
    };
    s.cpl = 0;
    s.efer = crate::guest::EFER | msr::EFER_SVME;
    s.cr0 = crate::guest::CR0;
    s.cr3 = start.cr3;
    s.cr4 = crate::guest::CR4;
    s.rflags = 2;
    s.rip = start.rip;
    s.rsp = start.rsp;
    s.dr6 = 0xFFFF_0FF0;
    s.dr7 = 0x400;
    s.g_pat = 0x0007_0406_0007_0406;
    if let Some(segment) = start.real_segment {
        // An AP after STARTUP (SDM Vol. 3A §9.4.4; APM Vol. 2 §14.1.5 for
        // the reset state): real mode at segment:0.
        let seg = |selector: u16, attrib: u16| VmcbSegment {
            selector,
            attrib,
            limit: 0xFFFF,
            base: u64::from(selector) << 4,
        };
        s.cs = seg(segment, 0x9B);
        let data = seg(0, 0x93);
        (s.ss, s.ds, s.es, s.fs, s.gs) = (data, data, data, data, data);
        s.gdtr = VmcbSegment {
            limit: 0xFFFF,
            ..VmcbSegment::default()
        };
        s.idtr = VmcbSegment {
            limit: 0x3FF,
            ..VmcbSegment::default()
        };
        s.efer = msr::EFER_SVME;
        s.cr0 = 0x10;
        s.cr3 = 0;
        s.cr4 = 0;
        s.rip = 0;
        s.rsp = 0;
    }
}

struct SvmBackend<'a> {
    vmcb: &'a mut Vmcb,
    vmcb_pa: u64,
    /// The VMM's VMSAVE area (its FS/GS/TR/LDTR and syscall MSRs while a
    /// guest runs).
    host_save_pa: u64,
    nrips: bool,
    ram: GuestRam,
    profile: Profile,
    /// The guest's x87/SSE state while the VMM runs.
    fx: FxArea,
    /// CR4 bits the guest may set (cpuid::guest_cr4_allowed).
    cr4_allowed: u64,
    /// What runs before each VMRUN (crate::spec).
    spec: crate::spec::Mitigations,
    /// This CPU's slot: the NMI latch.
    slot: &'static crate::smp::Slot,
    /// The guest has a local APIC (crate::lapic).
    lapic: bool,
}

/// EVENTINJ / EXITINTINFO valid bit (APM §15.20, §15.7.2).
const EVENT_VALID: u64 = 1 << 31;

impl GuestMsrs for SvmBackend<'_> {
    fn efer(&self) -> u64 {
        self.vmcb.save.efer & !msr::EFER_SVME
    }
    fn set_efer(&mut self, efer: u64) {
        // VMRUN requires EFER.SVME in the guest state (APM §15.5.1); the
        // guest never sees it.
        self.vmcb.save.efer = efer | msr::EFER_SVME;
    }
    fn cr0(&self) -> u64 {
        self.vmcb.save.cr0
    }
    fn pat(&self) -> Option<u64> {
        Some(self.vmcb.save.g_pat)
    }
    fn set_pat(&mut self, pat: u64) {
        self.vmcb.save.g_pat = pat;
    }
    fn apic_base(&self) -> Option<u64> {
        self.lapic.then(crate::rt::smp::apic_base)
    }
}

/// The CPL and paging mode, read from the VMCB state-save area when a
/// handler needs them (APM Vol. 2 §15.5.1, Table B-2).
impl VcpuState for SvmBackend<'_> {
    fn cpl(&self) -> u8 {
        self.vmcb.save.cpl
    }

    fn paging(&self) -> vmmcall::paging::PagingMode {
        let s = &self.vmcb.save;
        vmmcall::paging::PagingMode {
            cr0: s.cr0,
            cr3: s.cr3,
            cr4: s.cr4,
            efer: s.efer,
            maxphyaddr: crate::vcpu::maxphyaddr(),
        }
    }
}

impl Backend for SvmBackend<'_> {
    fn enter(&mut self, regs: &mut GuestRegs) -> VmExit {
        // An NMI for the guest (crate::idt) goes in when nothing else is
        // being injected and no STI / MOV SS shadow is on (APM §15.20,
        // §15.21.5). SVM shows no NMI blocking of the guest's own (a
        // guest inside its NMI handler gets the next one nested); only
        // real NMIs are latched, and the emulated machines send none.
        if self.slot.nmi.pending()
            && self.vmcb.control.eventinj & EVENT_VALID == 0
            && self
                .slot
                .nmi
                .take_if(self.vmcb.control.interrupt_shadow & 1 == 0)
        {
            self.vmcb.control.eventinj = 2 | (2 << 8) | EVENT_VALID;
        }
        self.vmcb.save.rax = regs.rax;
        self.vmcb.save.rsp = regs.rsp;
        // Last thing before the entry: the speculation mitigations.
        crate::spec::before_entry(self.spec);
        // SAFETY: the VMCB is valid (init_vmcb), EFER.SVME is set, the host
        // save area is registered; svm_vmrun saves and restores every
        // callee-saved register, touches only `regs` (a valid exclusive
        // GuestRegs), `fx` (this backend's 16-aligned FXSAVE area) and the
        // two VMM-owned pages `vmcb_pa` and `host_save_pa`, and restores the
        // VMM's own FS/GS/TR/LDTR and syscall MSRs with VMLOAD after the
        // exit, so no guest value stays loaded in the host.
        unsafe { svm_vmrun(regs, self.vmcb_pa, &mut self.fx, self.host_save_pa) };
        // The first entry flushed the TLB; no need to keep flushing.
        self.vmcb.control.tlb_control = 0;
        // An event whose delivery this exit interrupted goes back in first
        // (APM §15.7.2); anything injected later on top becomes #DF.
        let pending = self.vmcb.control.exitintinfo;
        self.vmcb.control.eventinj = if pending & EVENT_VALID != 0 {
            pending
        } else {
            0
        };
        regs.rax = self.vmcb.save.rax;
        regs.rsp = self.vmcb.save.rsp;
        let c = &self.vmcb.control;
        VmExit::from_svm(
            &vmexit::SvmExitFields {
                exitcode: c.exitcode,
                exitinfo1: c.exitinfo1,
                exitinfo2: c.exitinfo2,
            },
            self.vmcb.save.rip,
            self.nrips.then_some(c.nrip),
        )
    }

    fn rip(&self) -> u64 {
        self.vmcb.save.rip
    }

    fn set_rip(&mut self, rip: u64) {
        self.vmcb.save.rip = rip;
        // Stepping over an instruction ends an STI / MOV SS interrupt
        // shadow, as executing it would (APM §15.21.5).
        self.vmcb.control.interrupt_shadow &= !1;
    }

    fn ram(&self) -> GuestRam {
        self.ram
    }

    fn inject_exception(&mut self, vector: u8, error_code: Option<u32>) {
        // EVENTINJ (APM §15.20): vector 7:0, type 10:8 (3 = exception),
        // EV bit 11, V bit 31, error code 63:32. On top of an interrupted
        // delivery, the guest gets #DF(0), as the CPU would for two faults.
        let (vector, error_code) = if self.vmcb.control.eventinj & EVENT_VALID != 0 {
            (8, Some(0))
        } else {
            (vector, error_code)
        };
        // Real mode pushes no error code (APM Vol. 2 §8.2).
        let error_code = error_code.filter(|_| self.vmcb.save.cr0 & 1 != 0);
        let mut ev = u64::from(vector) | (3 << 8) | EVENT_VALID;
        if let Some(code) = error_code {
            ev |= (1 << 11) | (u64::from(code) << 32);
        }
        self.vmcb.control.eventinj = ev;
    }

    fn write_cr(&mut self, cr: u8, value: u64) -> bool {
        // Only CR4 writes are intercepted (vmcb::intercepts); CR0 is the
        // guest's.
        if cr != 4 {
            return false;
        }
        let long = self.vmcb.save.efer & vmsr::EFER_LMA != 0;
        if !crate::cpuid::cr4_write_ok(value, self.cr4_allowed, long) {
            return false;
        }
        if value != self.vmcb.save.cr4 {
            // A real MOV CR4 that changes PGE, PAE, PSE, PCIDE or SMEP
            // flushes the TLB (Intel SDM Vol. 3A §4.10.4.1; Linux toggles
            // PGE to drop global pages); the emulated one flushes the
            // guest's TLB at the next VMRUN (APM §15.16, TLB_CONTROL 1).
            self.vmcb.control.tlb_control = 1;
        }
        self.vmcb.save.cr4 = value;
        true
    }

    fn profile(&self) -> Profile {
        self.profile
    }

    fn cpuid_policy(&self) -> CpuidPolicy {
        CpuidPolicy {
            apic: self.lapic,
            ..CpuidPolicy::SVM
        }
    }

    fn lapic(&self) -> bool {
        self.lapic
    }

    fn lapic_requests(&self) -> bool {
        let words = crate::rt::smp::MACHINE.vector_words();
        crate::longcall::lapic_requests(&crate::rt::smp::RtHost, words)
    }

    fn long_code(&self) -> bool {
        // Attribute bit 9 is CS.L (descriptor bit 53, APM §15.5.1).
        self.vmcb.save.efer & crate::vmsr::EFER_LMA != 0 && self.vmcb.save.cs.attrib & (1 << 9) != 0
    }

    fn rflags(&self) -> u64 {
        self.vmcb.save.rflags
    }

    fn code_address(&self, rip: u64) -> u64 {
        let cs = &self.vmcb.save.cs;
        // Attribute bit 9 is CS.L (descriptor bit 53, APM §15.5.1).
        let long = self.vmcb.save.efer & crate::vmsr::EFER_LMA != 0 && cs.attrib & (1 << 9) != 0;
        vmexit::code_address(rip, cs.base, long)
    }

    fn set_dr6(&mut self, dr6: u64) {
        self.vmcb.save.dr6 = dr6;
    }

    fn nmi_exit(&mut self) {
        // The intercepted NMI is still pending, held by GIF = 0 (APM
        // §15.17, §15.13.2): open GIF for one instruction so that the
        // host IDT takes it (on its own stack, crate::idt), which tells a
        // VMM signal from an NMI for the guest. Without this it would
        // exit again at the next VMRUN, forever.
        // SAFETY: STGI then CLGI in the host, RFLAGS.IF clear: only an
        // NMI (or SMI) can be taken between them, by the host IDT.
        unsafe { core::arch::asm!("stgi", "clgi", options(nomem, nostack)) };
    }
}
