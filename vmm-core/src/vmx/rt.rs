//! Running a guest under Intel VMX with EPT.
//!
//! Set-up follows Intel SDM Vol. 3C §24.7 "Enabling and Entering VMX
//! Operation" and §25.11.3 "Initializing a VMCS": check CPUID.1:ECX.VMX and
//! IA32_FEATURE_CONTROL, read the capability MSRs (Appendix A), adjust every
//! control to them, apply the CR0/CR4 fixed bits, VMXON, VMCLEAR + VMPTRLD a
//! VMCS, fill its control, host-state and guest-state areas (§25.6-25.8,
//! §25.5, §25.4), then loop on VMLAUNCH/VMRESUME and hand each VM exit to
//! [`exits::run_loop`].
//!
//! The host state is the running CPU's: its own GDT and TSS (`rt::smp`;
//! §27.2.3: the host TR selector must not be 0), whose IST stacks take
//! `#DF`, NMI and `#MC`. The bitmaps and the EPT are the guest's, shared by
//! its vCPUs ([`prepare`]); the VMXON region and the VMCS are each CPU's
//! ([`run_vcpu`]).

use super::{
    adjust_controls, ar_dpl, check_ept_caps, feature_control_update, msr as vmsr,
    reflected_exception, shadow_cr, ControlCaps, ControlField, VmFailure, VmxBasic, VmxError,
};
use crate::backend::Backend;
use crate::cpu::{self, msr, FxArea};
use crate::cpuid::{CpuidPolicy, CPUID1_ECX_VMX};
use crate::exits;
use crate::guest::{self, GuestStart, Profile};
use crate::intercept;
use crate::nested::{self, Format};
use crate::physmem::PhysAlloc;
use crate::rt::frames::{self, Tables, PAGE};
use crate::stop::Stop;
use crate::vcpu::GuestRam;
use crate::vmsr::{GuestMsrs, EFER_LMA, EFER_LME};
use core::arch::asm;
use vmexit::vmx::ExitReasonField;
use vmexit::{VmExit, VmxExitFields};
use vmmcall::{GuestRegs, VcpuState};
use x86::controlregs::{Cr0, Cr4};
use x86::dtables::DescriptorTablePointer;
use x86::vmx::vmcs::control::{
    EntryControls, ExitControls, PinbasedControls, PrimaryControls, SecondaryControls,
};
use x86::vmx::vmcs::{control as ctl, guest as gst, host, ro};

core::arch::global_asm!(
    r#"
    .section .text.vmx_enter, "ax"
    .global vmx_enter
/* vmx_enter(regs: *mut GuestRegs [rdi], resume: u64 [rsi], fx: *mut FxArea [rdx]) -> u64 [rax]
 * Saves the callee-saved registers, `fx` and `regs` on the stack, points
 * the VMCS host RSP at that frame, loads the guest's x87/SSE state
 * (FXRSTOR) and GPRs (all but RSP, which is in the VMCS) and runs
 * VMLAUNCH (resume = 0) or VMRESUME.
 * Returns 1 on VMfailValid, 2 on VMfailInvalid (the guest did not run);
 * a VM exit arrives at vmx_exit, which returns 0. */
vmx_enter:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    push rdx
    push rdi
    fxrstor64 [rdx]
    mov rax, 0x6C14         /* host RSP */
    vmwrite rax, rsp
    jbe 2f                  /* CF or ZF: VMfail */
    test rsi, rsi           /* MOVs below keep these flags */
    mov rax, [rdi]
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
    jnz 1f
    vmlaunch
    jmp 2f
1:
    vmresume
2:
    /* Only reached when the instruction failed: CF = VMfailInvalid,
     * ZF = VMfailValid. MOV and CMOV leave the flags alone. */
    mov eax, 1
    mov ecx, 2
    cmovc eax, ecx
    pop rdi
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

    .global vmx_exit
/* Host RIP. The CPU loaded RSP with the frame vmx_enter built (regs on
 * top, then fx) and RFLAGS with 2 (DF clear). Store the guest GPRs, save
 * the guest's x87/SSE state (FXSAVE), reset the VMM's (FNINIT, MXCSR =
 * 0x1F80) and return 0 from vmx_enter. */
vmx_exit:
    push rdi
    mov rdi, [rsp + 8]
    mov [rdi], rax
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
    pop rdi
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
    xor eax, eax
    ret
"#
);

extern "C" {
    fn vmx_enter(regs: *mut GuestRegs, resume: u64, fx: *mut FxArea) -> u64;
    fn vmx_exit();
}

// Control-register bits from the `x86` crate, EFER's from crate::vmsr.
/// CR4.VMXE (SDM Vol. 3C §24.7).
const CR4_VMXE: u64 = Cr4::CR4_ENABLE_VMX.bits() as u64;
/// EFER.NXE.
const EFER_NXE: u64 = crate::vmsr::EFER_NXE;
/// CR0.PE, CR0.PG.
const CR0_PE: u64 = Cr0::CR0_PROTECTED_MODE.bits() as u64;
const CR0_PG: u64 = Cr0::CR0_ENABLE_PAGING.bits() as u64;
/// CR4.PAE.
const CR4_PAE: u64 = Cr4::CR4_ENABLE_PAE.bits() as u64;

fn alloc_page(alloc: &mut PhysAlloc) -> Result<u64, VmxError> {
    frames::zeroed_page(alloc).ok_or(VmxError::OutOfMemory)
}

/// Read a VMCS field of the current VMCS; `None` on VMfail.
///
/// This and the other VMCS accessors are called only in VMX operation
/// (after VMXON in `enable`), where a missing VMCS or a bad field is a
/// VMfail; outside VMX operation VMREAD/VMWRITE raise #UD.
fn vmread_raw(field: u32) -> Option<u64> {
    let value: u64;
    let (cf, zf): (u8, u8);
    // SAFETY: VMREAD only reads the current VMCS into a register; in VMX
    // operation (the only place this is called) a missing VMCS or bad field
    // fails with CF/ZF, which is returned. The VMM runs at CPL 0.
    unsafe {
        asm!(
            "vmread {v}, {f}",
            "setc {cf}",
            "setz {zf}",
            f = in(reg) u64::from(field),
            v = out(reg) value,
            cf = out(reg_byte) cf,
            zf = out(reg_byte) zf,
            options(nostack)
        );
    }
    (cf == 0 && zf == 0).then_some(value)
}

/// The VMfail from CF/ZF after a VMX instruction; `Valid` reads the
/// VM-instruction error field (SDM Vol. 3C §31.2, §31.4).
fn failure(cf: u8, zf: u8) -> Option<VmFailure> {
    if cf != 0 {
        Some(VmFailure::Invalid)
    } else if zf != 0 {
        Some(VmFailure::Valid(
            vmread_raw(ro::VM_INSTRUCTION_ERROR).unwrap_or(0) as u32,
        ))
    } else {
        None
    }
}

/// Read a field of the current VMCS. The backend only reads fields that
/// exist once its VMCS is current; a failure is logged and reads as 0.
fn vmread(field: u32) -> u64 {
    vmread_raw(field).unwrap_or_else(|| {
        log::error!("VMREAD of VMCS field {field:#06x} failed");
        0
    })
}

/// Write a field of the current VMCS.
fn vmwrite(field: u32, value: u64) -> Result<(), VmxError> {
    let (cf, zf): (u8, u8);
    // SAFETY: VMWRITE only changes the current VMCS (VMM-owned memory no
    // Rust reference points into); in VMX operation (the only place this is
    // called) a bad field or missing VMCS fails with CF/ZF, which is
    // returned. The VMM runs at CPL 0.
    unsafe {
        asm!(
            "vmwrite {f}, {v}",
            "setc {cf}",
            "setz {zf}",
            f = in(reg) u64::from(field),
            v = in(reg) value,
            cf = out(reg_byte) cf,
            zf = out(reg_byte) zf,
            options(nostack)
        );
    }
    match failure(cf, zf) {
        None => Ok(()),
        Some(failure) => Err(VmxError::Instruction {
            insn: "VMWRITE",
            field,
            failure,
        }),
    }
}

/// The VMX instructions that take a region's physical address.
#[derive(Clone, Copy)]
enum RegionInsn {
    Vmxon,
    Vmclear,
    Vmptrld,
}

/// Run `insn` on the region at physical `pa`.
///
/// # Safety
/// `pa` is a VMM-owned, zeroed page below 4 GiB with the VMCS revision
/// identifier in its first dword, used for nothing else. For VMXON: CR0/CR4
/// satisfy the VMX fixed bits, CR4.VMXE is set and IA32_FEATURE_CONTROL
/// allows VMXON; VMCLEAR/VMPTRLD: in VMX operation, `pa` is a VMCS and not
/// the VMXON region.
unsafe fn region_insn(insn: RegionInsn, pa: u64) -> Result<(), VmxError> {
    let (name, r) = match insn {
        // SAFETY: the caller guarantees the VMXON preconditions.
        RegionInsn::Vmxon => ("VMXON", unsafe { x86::bits64::vmx::vmxon(pa) }),
        // SAFETY: the caller guarantees `pa` is a VMCS in VMX operation.
        RegionInsn::Vmclear => ("VMCLEAR", unsafe { x86::bits64::vmx::vmclear(pa) }),
        // SAFETY: as for VMCLEAR; VMPTRLD makes that VMCS current.
        RegionInsn::Vmptrld => ("VMPTRLD", unsafe { x86::bits64::vmx::vmptrld(pa) }),
    };
    r.map_err(|e| VmxError::Instruction {
        insn: name,
        field: 0,
        failure: match e {
            x86::vmx::VmFail::VmFailInvalid => VmFailure::Invalid,
            x86::vmx::VmFail::VmFailValid => {
                VmFailure::Valid(vmread_raw(ro::VM_INSTRUCTION_ERROR).unwrap_or(0) as u32)
            }
        },
    })
}

/// Controls and capabilities chosen for this CPU.
struct Setup {
    basic: VmxBasic,
    /// IA32_VMX_MISC bits 4:0: the preemption timer counts every 2^rate
    /// TSC ticks.
    timer_rate: u8,
    pin: u32,
    primary: u32,
    secondary: u32,
    exit: u32,
    entry: u32,
    cr0_fixed: (u64, u64),
    cr4_fixed: (u64, u64),
}

impl Setup {
    fn unrestricted(&self) -> bool {
        self.secondary & SecondaryControls::UNRESTRICTED_GUEST.bits() != 0
    }
    /// Guest PAT is loaded on entry and saved on exit.
    fn switch_pat(&self) -> bool {
        self.entry & EntryControls::LOAD_IA32_PAT.bits() != 0
            && self.exit & ExitControls::SAVE_IA32_PAT.bits() != 0
    }
    fn host_pat(&self) -> bool {
        self.exit & ExitControls::LOAD_IA32_PAT.bits() != 0
    }
    /// CR0 bits the VMM owns: those VMX fixes, less PE and PG with
    /// unrestricted guest (SDM §26.6.2: then the guest may clear them).
    fn cr0_fixed0(&self) -> u64 {
        if self.unrestricted() {
            self.cr0_fixed.0 & !(CR0_PE | CR0_PG)
        } else {
            self.cr0_fixed.0
        }
    }
    fn load_efer(&self) -> bool {
        self.entry & EntryControls::LOAD_IA32_EFER.bits() != 0
    }
    /// The CR4 bits the guest may set: what the CPUID it sees offers
    /// (cpuid::guest_cr4_allowed), within CR4_FIXED1.
    fn cr4_allowed(&self) -> u64 {
        let policy = CpuidPolicy {
            pat: self.switch_pat(),
            cr4_fixed1: Some(self.cr4_fixed.1),
            apic: false,
        };
        crate::cpuid::guest_cr4_allowed_here(cpu::cpuid, &policy) & self.cr4_fixed.1
    }
    fn save_efer(&self) -> bool {
        self.exit & ExitControls::SAVE_IA32_EFER.bits() != 0
    }
    fn host_efer(&self) -> bool {
        self.exit & ExitControls::LOAD_IA32_EFER.bits() != 0
    }
}

/// Read several MSRs.
///
/// # Safety
/// Every MSR in `msrs` must exist on this CPU (else #GP); CPL 0.
unsafe fn rdmsrs<const N: usize>(msrs: [u32; N]) -> [u64; N] {
    // SAFETY: the caller guarantees that each MSR exists.
    msrs.map(|m| unsafe { cpu::rdmsr(m) })
}

fn caps(field: ControlField, basic: VmxBasic) -> ControlCaps {
    // SAFETY: every capability MSR named by capability_msr exists once
    // CPUID reports VMX (SDM Appendix A); PROCBASED_CTLS2 is read only
    // after the primary controls allow secondary controls, TRUE MSRs only
    // with IA32_VMX_BASIC[55].
    ControlCaps::from_msr(unsafe { cpu::rdmsr(field.capability_msr(basic)) })
}

/// Check VMX and EPT and pick every control (SDM Vol. 3C Appendix A).
fn detect(profile: Profile) -> Result<Setup, VmxError> {
    if cpu::cpuid(1, 0).ecx & CPUID1_ECX_VMX == 0 {
        return Err(VmxError::NoVmx);
    }
    // SAFETY: IA32_FEATURE_CONTROL and IA32_VMX_BASIC exist with VMX.
    let [feature_control, basic] = unsafe { rdmsrs([vmsr::FEATURE_CONTROL, vmsr::BASIC]) };
    let basic = VmxBasic(basic);
    if let Some(value) = feature_control_update(feature_control)? {
        // SAFETY: the MSR is unlocked; setting VMX-outside-SMX and the lock
        // bit only enables VMXON, as firmware would.
        unsafe { cpu::wrmsr(vmsr::FEATURE_CONTROL, value) };
        log::info!("IA32_FEATURE_CONTROL was unlocked: enabled VMX and locked it ({value:#x})");
    }
    if basic.region_size() as u64 > PAGE || basic.memory_type() != 6 {
        return Err(VmxError::UnsupportedBasic(basic.0));
    }

    // A bare-metal guest gets a run budget (exits::RUN_BUDGET_TSC) where
    // the CPU has the VMX-preemption timer; a Linux guest owns the machine
    // and may idle in HLT as long as it likes.
    let timer = match profile {
        Profile::BareMetal => PinbasedControls::VMX_PREEMPTION_TIMER.bits(),
        Profile::Linux => 0,
    };
    // NMI exiting: how the VMM signals a vCPU (crate::smp); virtual NMIs
    // so that the guest's IRET ends the blocking of an NMI the VMM
    // injected (SDM Vol. 3C §26.3, IRET; without them no second NMI could
    // be forwarded).
    let pin = adjust_controls(
        ControlField::PinBased,
        caps(ControlField::PinBased, basic),
        PinbasedControls::NMI_EXITING.bits(),
        timer | PinbasedControls::VIRTUAL_NMIS.bits(),
    )?;
    // SAFETY: IA32_VMX_MISC exists with VMX (SDM Appendix A.6).
    let timer_rate = (unsafe { cpu::rdmsr(x86::msr::IA32_VMX_MISC) } & 0x1F) as u8;
    // HLT and (always, on VMX) CPUID and VMCALL exit; I/O and MSR bitmaps
    // let the guest use COM1 and its own guest-state MSRs and nothing else
    // (crate::intercept).
    // A bare-metal guest's HLT would never end (it gets no interrupts); a
    // Linux guest's HLT waits for its own timer.
    let hlt = match profile {
        Profile::BareMetal => PrimaryControls::HLT_EXITING,
        Profile::Linux => PrimaryControls::empty(),
    };
    let primary = adjust_controls(
        ControlField::Primary,
        caps(ControlField::Primary, basic),
        (hlt | super::PRIMARY_ALWAYS
            | PrimaryControls::USE_IO_BITMAPS
            | PrimaryControls::USE_MSR_BITMAPS
            | PrimaryControls::SECONDARY_CONTROLS)
            .bits(),
        0,
    )?;
    // EPT required. A Linux guest also needs unrestricted guest (its
    // decompressor runs a few instructions with paging off, see
    // crate::linux) and its own EFER; a bare-metal guest uses them when
    // the CPU has them. RDTSCP, INVPCID and XSAVES stay off: CPUID hides
    // them, and the guest gets #UD as on a CPU without them.
    let (linux_secondary, linux_exit, linux_entry) = match profile {
        Profile::Linux => (
            SecondaryControls::UNRESTRICTED_GUEST.bits(),
            (ExitControls::SAVE_IA32_EFER | ExitControls::LOAD_IA32_EFER).bits(),
            EntryControls::LOAD_IA32_EFER.bits(),
        ),
        Profile::BareMetal => (0, 0, 0),
    };
    let secondary = adjust_controls(
        ControlField::Secondary,
        caps(ControlField::Secondary, basic),
        SecondaryControls::ENABLE_EPT.bits() | linux_secondary,
        (SecondaryControls::UNRESTRICTED_GUEST | SecondaryControls::WBINVD_EXITING).bits(),
    )?;
    let exit = adjust_controls(
        ControlField::Exit,
        caps(ControlField::Exit, basic),
        ExitControls::HOST_ADDRESS_SPACE_SIZE.bits() | linux_exit,
        (ExitControls::SAVE_IA32_EFER
            | ExitControls::LOAD_IA32_EFER
            | ExitControls::SAVE_IA32_PAT
            | ExitControls::LOAD_IA32_PAT)
            .bits(),
    )?;
    let entry = adjust_controls(
        ControlField::Entry,
        caps(ControlField::Entry, basic),
        EntryControls::IA32E_MODE_GUEST.bits() | linux_entry,
        (EntryControls::LOAD_IA32_EFER | EntryControls::LOAD_IA32_PAT).bits(),
    )?;
    // SAFETY: IA32_VMX_EPT_VPID_CAP exists when the secondary controls
    // allow EPT (checked just above); the fixed-bit MSRs exist with VMX.
    let [ept_cap, cr0_fixed0, cr0_fixed1, cr4_fixed0, cr4_fixed1] = unsafe {
        rdmsrs([
            vmsr::EPT_VPID_CAP,
            vmsr::CR0_FIXED0,
            vmsr::CR0_FIXED1,
            vmsr::CR4_FIXED0,
            vmsr::CR4_FIXED1,
        ])
    };
    let (cr0_fixed, cr4_fixed) = ((cr0_fixed0, cr0_fixed1), (cr4_fixed0, cr4_fixed1));
    check_ept_caps(ept_cap)?;
    let forced =
        primary & (PrimaryControls::CR3_LOAD_EXITING | PrimaryControls::CR3_STORE_EXITING).bits();
    if forced != 0 {
        log::warn!("the CPU forces CR3-load/store exiting ({forced:#x}): guest MOV CR3 will stop the guest");
    }
    Ok(Setup {
        basic,
        timer_rate,
        pin,
        primary,
        secondary,
        exit,
        entry,
        cr0_fixed,
        cr4_fixed,
    })
}

fn selectors() -> [u16; 6] {
    use x86::segmentation as s;
    [
        s::cs().bits(),
        s::ss().bits(),
        s::ds().bits(),
        s::es().bits(),
        s::fs().bits(),
        s::gs().bits(),
    ]
}

/// Physical addresses of the MSR bitmap and I/O bitmaps A and B
/// (SDM §25.6.4, §25.6.9), filled by `crate::intercept`.
#[derive(Clone, Copy)]
struct Bitmaps {
    msr: u64,
    io_a: u64,
    io_b: u64,
}

/// Fill the VMCS (SDM Vol. 3C §25.4-25.8).
fn init_vmcs(
    setup: &Setup,
    start: &GuestStart,
    eptp: u64,
    bitmaps: Bitmaps,
    cpu: usize,
) -> Result<(), VmxError> {
    // This CPU's GDT and TSS (rt::smp): the host TR must not be 0
    // (§27.2.3), and its TSS holds the CPU's IST stacks.
    let (gdt_base, tr, tss) = crate::rt::smp::tables(cpu);
    let mut idt = DescriptorTablePointer::<u64>::default();
    // SAFETY: SIDT only stores the IDTR into `idt`.
    unsafe { x86::dtables::sidt(&mut idt) };
    let [cs, ss, ds, es, fs, gs] = selectors();
    // SAFETY: these MSRs exist on every 64-bit Intel CPU.
    let [fs_base, gs_base, se_cs, se_esp, se_eip, efer] = unsafe {
        rdmsrs([
            vmsr::FS_BASE,
            vmsr::GS_BASE,
            vmsr::SYSENTER_CS,
            vmsr::SYSENTER_ESP,
            vmsr::SYSENTER_EIP,
            msr::EFER,
        ])
    };
    let cr0 = shadow_cr(guest::CR0, setup.cr0_fixed0(), setup.cr0_fixed.1);
    let cr4 = shadow_cr(guest::CR4, setup.cr4_fixed.0, setup.cr4_fixed.1);

    // Controls (§25.6-25.8): adjusted in detect(); nothing else exits.
    let controls: &[(u32, u64)] = &[
        (ctl::PINBASED_EXEC_CONTROLS, setup.pin.into()),
        (ctl::PRIMARY_PROCBASED_EXEC_CONTROLS, setup.primary.into()),
        (
            ctl::SECONDARY_PROCBASED_EXEC_CONTROLS,
            setup.secondary.into(),
        ),
        (ctl::VMEXIT_CONTROLS, setup.exit.into()),
        (ctl::VMENTRY_CONTROLS, setup.entry.into()),
        // As on SVM (svm::vmcb::INTERCEPTED_EXCEPTIONS): #DB and #AC,
        // reflected; #UD for the other vendor's hypercall instruction.
        (
            ctl::EXCEPTION_BITMAP,
            crate::svm::vmcb::INTERCEPTED_EXCEPTIONS.into(),
        ),
        (ctl::PAGE_FAULT_ERR_CODE_MASK, 0),
        (ctl::PAGE_FAULT_ERR_CODE_MATCH, 0),
        (ctl::CR3_TARGET_COUNT, 0),
        (ctl::VMEXIT_MSR_STORE_COUNT, 0),
        (ctl::VMEXIT_MSR_LOAD_COUNT, 0),
        (ctl::VMENTRY_MSR_LOAD_COUNT, 0),
        (ctl::VMENTRY_INTERRUPTION_INFO_FIELD, 0),
        (ctl::MSR_BITMAPS_ADDR_FULL, bitmaps.msr),
        (ctl::IO_BITMAP_A_ADDR_FULL, bitmaps.io_a),
        (ctl::IO_BITMAP_B_ADDR_FULL, bitmaps.io_b),
        (ctl::EPTP_FULL, eptp),
        (ctl::CR0_GUEST_HOST_MASK, cr0.mask),
        (ctl::CR0_READ_SHADOW, cr0.shadow),
        // Host-owned too: every bit the guest's CPUID does not offer, so
        // that setting one exits and raises #GP (write_cr4).
        (ctl::CR4_GUEST_HOST_MASK, cr4.mask | !setup.cr4_allowed()),
        (ctl::CR4_READ_SHADOW, cr4.shadow),
    ];
    // Host state (§25.5, checks §27.2.2-27.2.4).
    let host_state: &[(u32, u64)] = &[
        (host::CR0, cpu::cr0()),
        (host::CR3, cpu::cr3()),
        (host::CR4, cpu::cr4()),
        (host::CS_SELECTOR, cs.into()),
        (host::SS_SELECTOR, ss.into()),
        (host::DS_SELECTOR, ds.into()),
        (host::ES_SELECTOR, es.into()),
        (host::FS_SELECTOR, fs.into()),
        (host::GS_SELECTOR, gs.into()),
        (host::TR_SELECTOR, tr.into()),
        (host::FS_BASE, fs_base),
        (host::GS_BASE, gs_base),
        (host::TR_BASE, tss),
        (host::GDTR_BASE, gdt_base),
        (host::IDTR_BASE, idt.base as u64),
        (host::IA32_SYSENTER_CS, se_cs),
        (host::IA32_SYSENTER_ESP, se_esp),
        (host::IA32_SYSENTER_EIP, se_eip),
        (host::RIP, vmx_exit as *const () as u64),
    ];
    let guest_state = super::guest_state(start, cr0, cr4);
    for &(field, value) in controls.iter().chain(host_state).chain(&guest_state) {
        vmwrite(field, value)?;
    }
    if setup.load_efer() || setup.save_efer() {
        vmwrite(gst::IA32_EFER_FULL, guest::EFER)?;
    }
    if let Some(segment) = start.real_segment {
        real_mode(setup, segment)?;
    }
    if setup.host_efer() {
        vmwrite(host::IA32_EFER_FULL, efer)?;
    }
    if setup.switch_pat() {
        vmwrite(gst::IA32_PAT_FULL, GUEST_PAT)?;
    }
    if setup.host_pat() {
        // SAFETY: IA32_PAT exists on every CPU with VMX.
        vmwrite(host::IA32_PAT_FULL, unsafe { cpu::rdmsr(msr::PAT) })?;
    }
    if !setup.load_efer() {
        // Without "load IA32_EFER" the guest runs on the host's EFER with
        // LMA/LME from "IA-32e mode guest" (§27.3.2.1): it must have NXE.
        // SAFETY: the VMM already runs in long mode with NXE set by the
        // boot stub; this changes nothing for it.
        unsafe { cpu::wrmsr(msr::EFER, efer | EFER_NXE) };
    }
    Ok(())
}

/// What every vCPU of the guest shares, set up once by the boot CPU: the
/// bitmaps and the EPT (read-only after set-up).
pub struct VmxVm {
    /// The guest has a local APIC (crate::lapic).
    lapic: bool,
    bitmaps: Bitmaps,
    eptp: u64,
    ram: GuestRam,
}

/// Check VMX on the boot CPU and build what the vCPUs share.
pub fn prepare(ram: GuestRam, start: &GuestStart, alloc: &mut PhysAlloc) -> Result<VmxVm, Stop> {
    let setup = detect(start.profile).map_err(Stop::Vmx)?;
    log::info!(
        "VMX backend: EPT on (4-level, write-back, 2 MiB pages), VMCS revision {:#x}, {} capability MSRs; \
         controls pin {:#x} proc {:#x} proc2 {:#x} exit {:#x} entry {:#x}; EFER {}",
        setup.basic.revision_id(),
        if setup.basic.true_controls() { "TRUE" } else { "default" },
        setup.pin,
        setup.primary,
        setup.secondary,
        setup.exit,
        setup.entry,
        if setup.load_efer() { "loaded/saved by VM entry/exit" } else { "shared with the host" },
    );
    let page = |alloc: &mut PhysAlloc| alloc_page(alloc).map_err(Stop::Vmx);
    let bitmaps = Bitmaps {
        msr: page(alloc)?,
        io_a: page(alloc)?,
        io_b: page(alloc)?,
    };
    // SAFETY: the three pages were just allocated (zeroed, identity-mapped,
    // owned by nobody else) and are exactly 4 KiB, the arrays' size.
    unsafe {
        intercept::vmx_msr_bitmap(&mut *(bitmaps.msr as *mut [u8; 4096]));
        intercept::vmx_io_bitmaps(
            &mut *(bitmaps.io_a as *mut [u8; 4096]),
            &mut *(bitmaps.io_b as *mut [u8; 4096]),
            start.profile,
        );
    }
    let lapic = crate::rt::smp::guest_lapic(start.profile);
    let pml4 = nested::build_with(
        &mut Tables(alloc),
        Format::Ept,
        ram.host_base,
        ram.size,
        lapic,
    )
    .map_err(|_| Stop::Vmx(VmxError::OutOfMemory))?;
    Ok(VmxVm {
        lapic,
        bitmaps,
        eptp: nested::eptp(pml4),
        ram,
    })
}

/// Put the guest state in real mode at `segment:0`: an AP of a Linux
/// guest after the STARTUP IPI its kernel sent (SDM Vol. 3A §9.4.4,
/// §10.1.1 for the state; unrestricted guest, which the Linux profile
/// requires, allows PE = PG = 0, §26.8). EFER 0 and no IA-32e mode.
fn real_mode(setup: &Setup, segment: u16) -> Result<(), VmxError> {
    let cr0 = shadow_cr(0x10, setup.cr0_fixed0(), setup.cr0_fixed.1);
    let cr4 = shadow_cr(0, setup.cr4_fixed.0, setup.cr4_fixed.1);
    let sel = u64::from(segment);
    let entry = setup.entry & !EntryControls::IA32E_MODE_GUEST.bits();
    let fields: &[(u32, u64)] = &[
        (gst::CR0, cr0.actual),
        (ctl::CR0_READ_SHADOW, cr0.shadow),
        (gst::CR3, 0),
        (gst::CR4, cr4.actual),
        (ctl::CR4_READ_SHADOW, cr4.shadow),
        (gst::RIP, 0),
        (gst::RSP, 0),
        (gst::CS_SELECTOR, sel),
        (gst::CS_BASE, sel << 4),
        (gst::CS_LIMIT, 0xFFFF),
        (gst::CS_ACCESS_RIGHTS, 0x9B),
        (gst::SS_SELECTOR, 0),
        (gst::SS_BASE, 0),
        (gst::SS_LIMIT, 0xFFFF),
        (gst::SS_ACCESS_RIGHTS, 0x93),
        (gst::DS_SELECTOR, 0),
        (gst::DS_BASE, 0),
        (gst::DS_LIMIT, 0xFFFF),
        (gst::DS_ACCESS_RIGHTS, 0x93),
        (gst::ES_SELECTOR, 0),
        (gst::ES_BASE, 0),
        (gst::ES_LIMIT, 0xFFFF),
        (gst::ES_ACCESS_RIGHTS, 0x93),
        (gst::FS_SELECTOR, 0),
        (gst::FS_BASE, 0),
        (gst::FS_LIMIT, 0xFFFF),
        (gst::FS_ACCESS_RIGHTS, 0x93),
        (gst::GS_SELECTOR, 0),
        (gst::GS_BASE, 0),
        (gst::GS_LIMIT, 0xFFFF),
        (gst::GS_ACCESS_RIGHTS, 0x93),
        (gst::TR_LIMIT, 0xFFFF),
        (gst::TR_ACCESS_RIGHTS, 0x8B),
        (gst::GDTR_BASE, 0),
        (gst::GDTR_LIMIT, 0xFFFF),
        (gst::IDTR_BASE, 0),
        (gst::IDTR_LIMIT, 0x3FF),
        (gst::IA32_EFER_FULL, 0),
        (ctl::VMENTRY_CONTROLS, entry.into()),
    ];
    for &(field, value) in fields {
        vmwrite(field, value)?;
    }
    Ok(())
}

/// Run vCPU `cpu` of the guest on this CPU until the guest asks to stop
/// (`Ok(status)`) or must be stopped: VMXON here, a VMCS of this CPU's
/// own, then the run loop. Every CPU checks the capabilities itself
/// (IA32_FEATURE_CONTROL is per CPU).
pub fn run_vcpu(
    vm: &VmxVm,
    start: &GuestStart,
    mut regs: GuestRegs,
    alloc: &spin::Mutex<PhysAlloc>,
    cpu: usize,
) -> Result<u32, Stop> {
    let setup = detect(start.profile).map_err(Stop::Vmx)?;
    let slot = crate::rt::smp::MACHINE.slot(cpu).ok_or(Stop::NoCpu)?;
    let mut backend = enable(&setup, vm, start, alloc, (cpu, slot)).map_err(Stop::Vmx)?;
    regs.rsp = start.rsp;
    let result = exits::run_loop(
        &mut backend,
        &mut regs,
        cpu,
        &crate::rt::smp::MACHINE,
        &crate::rt::smp::RtHost,
    );
    if let Some(e) = backend.failed {
        return Err(Stop::Vmx(e));
    }
    match result {
        Err(Stop::EntryFailure { exit, rip }) => {
            if let vmexit::Exit::EntryFailure {
                raw, qualification, ..
            } = exit
            {
                log::error!(
                    "VM-entry failure: exit reason {raw:#x} (basic reason {}), exit qualification \
                     {qualification:#x}; the emulator log (bochs.log) names the failing check",
                    raw & 0xFFFF
                );
            }
            Err(Stop::EntryFailure { exit, rip })
        }
        other => other,
    }
}

/// CR0/CR4 fixed bits, VMXON and this CPU's VMCS.
fn enable(
    setup: &Setup,
    vm: &VmxVm,
    start: &GuestStart,
    alloc: &spin::Mutex<PhysAlloc>,
    (cpu, slot): (usize, &'static crate::smp::Slot),
) -> Result<VmxBackend, VmxError> {
    let cr0 = super::apply_fixed_bits(cpu::cr0(), setup.cr0_fixed.0, setup.cr0_fixed.1);
    let cr4 = super::apply_fixed_bits(cpu::cr4() | CR4_VMXE, setup.cr4_fixed.0, setup.cr4_fixed.1);
    // SAFETY: the fixed-bit MSRs only force bits the VMM already has (PE,
    // PG, NE: the boot stub runs paged in long mode) or that are harmless
    // to it (CR4.VMXE); reserved bits are cleared as they already are.
    unsafe { cpu::write_cr0(cr0) };
    // SAFETY: as for CR0.
    unsafe { cpu::write_cr4(cr4) };
    let revision = setup.basic.revision_id();
    let (vmxon_pa, vmcs_pa) = {
        let mut a = alloc.lock();
        (alloc_page(&mut a)?, alloc_page(&mut a)?)
    };
    for pa in [vmxon_pa, vmcs_pa] {
        // SAFETY: both are fresh, aligned VMM pages; the first dword of
        // each is the revision identifier (SDM §25.2, §25.11.5), bit 31
        // clear.
        unsafe { (pa as *mut u32).write_volatile(revision) };
    }
    // SAFETY: CR0/CR4 were just brought in line with the fixed bits with
    // CR4.VMXE set, detect() checked IA32_FEATURE_CONTROL, and both pages
    // are fresh, zeroed, revision-stamped and distinct.
    unsafe {
        region_insn(RegionInsn::Vmxon, vmxon_pa)?;
    }
    // SAFETY: in VMX operation now; `vmcs_pa` is the VMCS page.
    unsafe { region_insn(RegionInsn::Vmclear, vmcs_pa)? };
    // SAFETY: as above.
    unsafe { region_insn(RegionInsn::Vmptrld, vmcs_pa)? };
    init_vmcs(setup, start, vm.eptp, vm.bitmaps, cpu)?;
    Ok(VmxBackend {
        ram: vm.ram,
        launched: false,
        save_efer: setup.save_efer(),
        switch_pat: setup.switch_pat(),
        cr0_fixed: (setup.cr0_fixed0(), setup.cr0_fixed.1),
        cr4_fixed: setup.cr4_fixed,
        cr4_allowed: setup.cr4_allowed(),
        reinjecting: false,
        exit_event: (0, 0),
        spec: crate::spec::detect(true),
        run_budget: (setup.pin & PinbasedControls::VMX_PREEMPTION_TIMER.bits() != 0)
            .then(|| super::preemption_timer_value(exits::RUN_BUDGET_TSC, setup.timer_rate)),
        virtual_nmis: setup.pin & PinbasedControls::VIRTUAL_NMIS.bits() != 0,
        profile: start.profile,
        fx: FxArea::reset(),
        failed: None,
        slot,
        lapic: vm.lapic,
    })
}

/// The PAT a guest starts with: the power-on default (SDM Vol. 3A
/// §13.12.4: WB, WT, UC-, UC, twice).
const GUEST_PAT: u64 = 0x0007_0406_0007_0406;

struct VmxBackend {
    ram: GuestRam,
    /// VMLAUNCH succeeded once: enter with VMRESUME.
    launched: bool,
    /// Guest EFER is saved into the VMCS on exit.
    save_efer: bool,
    /// Guest PAT is switched (load on entry, save on exit).
    switch_pat: bool,
    /// CR0 bits that must be 1 (less PE/PG with unrestricted guest) and
    /// may be 1.
    cr0_fixed: (u64, u64),
    /// CR4 bits that must be 1 and may be 1.
    cr4_fixed: (u64, u64),
    /// CR4 bits the guest may set (Setup::cr4_allowed).
    cr4_allowed: u64,
    /// The next entry re-injects an event whose delivery the last exit
    /// interrupted (IDT-vectoring information).
    reinjecting: bool,
    /// The last exit's VM-exit interruption information and instruction
    /// length, for reflecting a software exception (ICEBP) with its type.
    exit_event: (u32, u32),
    /// What runs before each VM entry (crate::spec).
    spec: crate::spec::Mitigations,
    /// The preemption-timer value of the run budget, rewritten before each
    /// entry (so it measures time without exits); `None` without one.
    run_budget: Option<u32>,
    profile: Profile,
    /// The guest's x87/SSE state while the VMM runs.
    fx: FxArea,
    /// VMLAUNCH/VMRESUME or a VMWRITE failed; `run` reports this instead
    /// of the placeholder exit that stopped the run loop.
    failed: Option<VmxError>,
    /// "Virtual NMIs" is on: the guest's IRET ends the blocking of an
    /// injected NMI, so NMIs for the guest can be forwarded.
    virtual_nmis: bool,
    /// This CPU's slot: the NMI latch.
    slot: &'static crate::smp::Slot,
    /// The guest has a local APIC (crate::lapic).
    lapic: bool,
}

/// Valid bit of the interruption-information fields (SDM §25.8.3, §25.9.3).
const EVENT_VALID: u32 = 1 << 31;

impl GuestMsrs for VmxBackend {
    fn efer(&self) -> u64 {
        if self.save_efer {
            vmread(gst::IA32_EFER_FULL)
        } else {
            // SAFETY: EFER exists; without load/save the guest's EFER is
            // the live one.
            unsafe { cpu::rdmsr(msr::EFER) }
        }
    }
    fn set_efer(&mut self, efer: u64) {
        if self.save_efer {
            self.write(gst::IA32_EFER_FULL, efer);
        } else {
            // Without the EFER controls the guest shares the host's EFER:
            // accept only what it already holds (LME/LMA are the VMM's too).
            log::warn!("guest EFER write {efer:#x} ignored: this CPU cannot switch EFER");
        }
    }
    fn cr0(&self) -> u64 {
        vmread(gst::CR0)
    }
    fn pat(&self) -> Option<u64> {
        self.switch_pat.then(|| vmread(gst::IA32_PAT_FULL))
    }
    fn set_pat(&mut self, pat: u64) {
        if self.switch_pat {
            self.write(gst::IA32_PAT_FULL, pat);
        }
    }
    fn apic_base(&self) -> Option<u64> {
        self.lapic.then(crate::rt::smp::apic_base)
    }
}

impl VmxBackend {
    fn fail(&mut self, e: VmxError) {
        // Keep the first failure: it is the cause.
        if self.failed.is_none() {
            self.failed = Some(e);
        }
    }

    fn write(&mut self, field: u32, value: u64) {
        if let Err(e) = vmwrite(field, value) {
            self.fail(e);
        }
    }
}

/// The CPL and paging mode, read from the VMCS guest-state area (SDM Vol.
/// 3C §25.4) only when a handler needs them: each is a VMREAD.
impl VcpuState for VmxBackend {
    fn cpl(&self) -> u8 {
        // The CPL is SS.DPL (SDM Vol. 3C §25.4.1).
        ar_dpl(vmread(gst::SS_ACCESS_RIGHTS) as u32)
    }

    fn paging(&self) -> vmmcall::paging::PagingMode {
        vmmcall::paging::PagingMode {
            cr0: vmread(gst::CR0),
            cr3: vmread(gst::CR3),
            cr4: vmread(gst::CR4),
            efer: GuestMsrs::efer(self),
            maxphyaddr: crate::vcpu::maxphyaddr(),
        }
    }
}

impl Backend for VmxBackend {
    fn enter(&mut self, regs: &mut GuestRegs) -> VmExit {
        // A placeholder the run loop treats as a failed entry (bit 31): it
        // stops, and `run` reports `self.failed` instead.
        let failed = || {
            VmExit::from_vmx(&VmxExitFields {
                exit_reason: ExitReasonField::ENTRY_FAILURE,
                ..Default::default()
            })
        };
        if self.failed.is_some() {
            return failed();
        }
        // An NMI that hit the VMM (crate::idt) goes to the guest as soon as
        // nothing else is being injected and the guest blocks neither NMIs
        // nor events (STI / MOV SS shadow): interruptibility bits 0, 1, 3
        // (SDM §25.4.2, §27.3.1.5).
        // Without virtual NMIs an injected NMI would block NMIs for good
        // (§26.3: IRET then does not unblock them): it stays latched.
        if !self.reinjecting && self.slot.nmi.pending() {
            if self.virtual_nmis
                && self
                    .slot
                    .nmi
                    .take_if(vmread(gst::INTERRUPTIBILITY_STATE) & 0b1011 == 0)
            {
                self.write(
                    ctl::VMENTRY_INTERRUPTION_INFO_FIELD,
                    u64::from(2 | (2 << 8) | EVENT_VALID),
                );
            }
        }
        if let Some(budget) = self.run_budget {
            self.write(gst::VMX_PREEMPTION_TIMER_VALUE, budget.into());
        }
        self.write(gst::RSP, regs.rsp);
        // Last thing before the entry: the speculation mitigations.
        crate::spec::before_entry(self.spec);
        // SAFETY: the VMCS is current and complete (init_vmcs); host RIP is
        // vmx_exit, whose frame vmx_enter builds and whose host RSP it
        // writes just before entering; vmx_enter preserves every
        // callee-saved register and touches only `regs`, a valid exclusive
        // GuestRegs. The guest runs in its own EPT address space and cannot
        // reach VMM memory. KERNEL_GS_BASE and STAR/LSTAR/CSTAR/SFMASK (on
        // the guest's MSR allow-list) are not switched by VMX and keep the
        // guest's values in the host: sound because the VMM never uses
        // SYSCALL or SWAPGS. TSC_AUX is not on the allow-list (#GP,
        // intercept::GUEST_MSRS), so it stays the host's.
        let rc = unsafe { vmx_enter(regs, u64::from(self.launched), &mut self.fx) };
        if rc != 0 {
            let failure = if rc == 2 {
                VmFailure::Invalid
            } else {
                VmFailure::Valid(vmread_raw(ro::VM_INSTRUCTION_ERROR).unwrap_or(0) as u32)
            };
            let insn = if self.launched {
                "VMRESUME"
            } else {
                "VMLAUNCH"
            };
            self.fail(VmxError::Instruction {
                insn,
                field: 0,
                failure,
            });
            return failed();
        }
        let exit_reason = vmread(ro::EXIT_REASON) as u32;
        if !ExitReasonField(exit_reason).entry_failure() {
            self.launched = true;
        }
        regs.rsp = vmread(gst::RSP);
        // An event whose delivery this exit interrupted goes back in first
        // (SDM §28.2.4, §27.6): same type, vector and error code; software
        // interrupts and exceptions need the instruction length again.
        let vectoring = vmread(ro::IDT_VECTORING_INFO) as u32;
        self.reinjecting = vectoring & EVENT_VALID != 0;
        if self.reinjecting {
            if vectoring & (1 << 11) != 0 {
                self.write(
                    ctl::VMENTRY_EXCEPTION_ERR_CODE,
                    vmread(ro::IDT_VECTORING_ERR_CODE),
                );
            }
            if matches!((vectoring >> 8) & 7, 4..=6) {
                self.write(
                    ctl::VMENTRY_INSTRUCTION_LEN,
                    vmread(ro::VMEXIT_INSTRUCTION_LEN),
                );
            }
            // Bits 30:12 of the vectoring field are reserved in the entry field.
            self.write(
                ctl::VMENTRY_INTERRUPTION_INFO_FIELD,
                u64::from(vectoring & (EVENT_VALID | 0xFFF)),
            );
        }
        let fields = VmxExitFields {
            exit_reason,
            qualification: vmread(ro::EXIT_QUALIFICATION),
            instruction_len: vmread(ro::VMEXIT_INSTRUCTION_LEN) as u32,
            guest_physical: vmread(ro::GUEST_PHYSICAL_ADDR_FULL),
            guest_linear: vmread(ro::GUEST_LINEAR_ADDR),
            interruption_info: vmread(ro::VMEXIT_INTERRUPTION_INFO) as u32,
            interruption_error: vmread(ro::VMEXIT_INTERRUPTION_ERR_CODE) as u32,
        };
        self.exit_event = (fields.interruption_info, fields.instruction_len);
        VmExit::from_vmx(&fields)
    }

    fn rip(&self) -> u64 {
        vmread(gst::RIP)
    }

    fn set_rip(&mut self, rip: u64) {
        self.write(gst::RIP, rip);
        // Stepping over an instruction ends blocking by STI / MOV SS
        // (interruptibility bits 0-1, SDM §25.4.2), as executing it would.
        let intr = vmread(gst::INTERRUPTIBILITY_STATE);
        if intr & 3 != 0 {
            self.write(gst::INTERRUPTIBILITY_STATE, intr & !3);
        }
    }

    fn ram(&self) -> GuestRam {
        self.ram
    }

    fn inject_exception(&mut self, vector: u8, error_code: Option<u32>) {
        // VM-entry interruption information (SDM §25.8.3, delivery §27.6).
        // On top of an interrupted delivery, the guest gets #DF(0), as the
        // CPU would for two faults.
        let (vector, error_code) = if self.reinjecting {
            (8, Some(0))
        } else {
            (vector, error_code)
        };
        // Real mode pushes no error code (SDM Vol. 3A §21.1.4); VM entry
        // refuses one with CR0.PE = 0 (SDM Vol. 3C §27.2.1.3).
        let error_code = error_code.filter(|_| vmread(gst::CR0) & CR0_PE != 0);
        self.reinjecting = true;
        let (exit_info, exit_len) = self.exit_event;
        let (info, code, len) = reflected_exception(vector, error_code, exit_info, exit_len);
        if let Some(code) = code {
            self.write(ctl::VMENTRY_EXCEPTION_ERR_CODE, code.into());
        }
        if let Some(len) = len {
            self.write(ctl::VMENTRY_INSTRUCTION_LEN, len.into());
        }
        self.write(ctl::VMENTRY_INTERRUPTION_INFO_FIELD, info.into());
    }

    fn write_cr(&mut self, cr: u8, value: u64) -> bool {
        match cr {
            0 => self.write_cr0(value),
            4 => self.write_cr4(value),
            _ => false,
        }
    }

    fn profile(&self) -> Profile {
        self.profile
    }

    fn cpuid_policy(&self) -> CpuidPolicy {
        CpuidPolicy {
            pat: self.switch_pat,
            cr4_fixed1: Some(self.cr4_fixed.1),
            apic: self.lapic,
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
        // CS access rights bit 13 is L (SDM Vol. 3C §25.4.1, Table 25-2).
        GuestMsrs::efer(self) & EFER_LMA != 0 && vmread(gst::CS_ACCESS_RIGHTS) & (1 << 13) != 0
    }

    fn rflags(&self) -> u64 {
        vmread(gst::RFLAGS)
    }

    fn code_address(&self, rip: u64) -> u64 {
        // Access-rights bit 13 is CS.L (SDM Vol. 3C §25.4.1, Table 25-2).
        let long =
            vmread(ctl::VMENTRY_CONTROLS) & u64::from(EntryControls::IA32E_MODE_GUEST.bits()) != 0
                && vmread(gst::CS_ACCESS_RIGHTS) & (1 << 13) != 0;
        vmexit::code_address(rip, vmread(gst::CS_BASE), long)
    }

    fn set_dr6(&mut self, dr6: u64) {
        // SAFETY: VMX does not switch DR6 (SDM Vol. 3C §28.3): the live DR6
        // is the guest's. The VMM uses no debug registers.
        unsafe { core::arch::asm!("mov dr6, {}", in(reg) dr6, options(nomem, nostack)) };
    }

    fn nmi_exit(&mut self) {
        // With NMI exiting the NMI caused the exit and is gone (SDM Vol. 3C
        // §26.2, §28.5): the slot decides what it was.
        self.slot.nmi_arrived();
    }
}

impl VmxBackend {
    /// `MOV CR0` that exited on a host-owned bit (SDM §26.1.3, §25.6.6):
    /// the guest reads what it wrote (read shadow); the CPU runs with the
    /// fixed bits applied. PE/PG changes are possible only with
    /// unrestricted guest, and then switch IA-32e mode as the CPU would
    /// (SDM Vol. 3A §10.8.5).
    fn write_cr0(&mut self, value: u64) -> bool {
        let old = vmread(gst::CR0);
        // Bits 63:32 are reserved; PG needs PE (SDM Vol. 3A §2.5).
        if value >> 32 != 0 || (value & CR0_PG != 0 && value & CR0_PE == 0) {
            return false;
        }
        let actual = super::apply_fixed_bits(value, self.cr0_fixed.0, self.cr0_fixed.1);
        if (actual ^ old) & (CR0_PE | CR0_PG) != 0 {
            if self.cr0_fixed.0 & (CR0_PE | CR0_PG) != 0 {
                return false;
            }
            let efer = GuestMsrs::efer(self);
            let long = actual & CR0_PG != 0 && efer & EFER_LME != 0;
            if long && vmread(gst::CR4) & CR4_PAE == 0 {
                return false;
            }
            let efer = if long {
                efer | EFER_LMA
            } else {
                efer & !EFER_LMA
            };
            self.set_efer(efer);
            let entry = vmread(ctl::VMENTRY_CONTROLS);
            let ia32e = EntryControls::IA32E_MODE_GUEST.bits() as u64;
            self.write(
                ctl::VMENTRY_CONTROLS,
                if long { entry | ia32e } else { entry & !ia32e },
            );
        }
        self.write(gst::CR0, actual);
        self.write(ctl::CR0_READ_SHADOW, value);
        true
    }

    /// `MOV CR4` that exited on a host-owned bit: bits the CPU does not
    /// allow (CR4_FIXED1) or whose feature the guest's CPUID does not offer
    /// (cpuid::guest_cr4_allowed: OSXSAVE, PKE, CET, PCIDE, VMXE, ...) raise
    /// #GP, as on a CPU without them; clearing PAE in IA-32e mode raises
    /// #GP (SDM Vol. 3A §2.5).
    fn write_cr4(&mut self, value: u64) -> bool {
        let (fixed0, fixed1) = self.cr4_fixed;
        let long = GuestMsrs::efer(self) & EFER_LMA != 0;
        if value & !fixed1 != 0
            || value & CR4_VMXE != 0
            || !crate::cpuid::cr4_write_ok(value, self.cr4_allowed, long)
        {
            return false;
        }
        self.write(gst::CR4, value | fixed0);
        self.write(ctl::CR4_READ_SHADOW, value);
        true
    }
}
