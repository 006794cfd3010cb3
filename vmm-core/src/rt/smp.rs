//! The bare-metal half of [`crate::smp`]: each CPU's area (stacks, GDT,
//! TSS), starting the other CPUs, and signalling them with NMIs.
//!
//! **Start-up** (Intel SDM Vol. 3A §9.4.4 "MP Initialization Example",
//! AMD APM Vol. 2 §16.5 "Interprocessor Interrupts"): the boot CPU copies a
//! real-mode trampoline to [`TRAMPOLINE`] and sends each other CPU an INIT
//! IPI and up to two STARTUP IPIs with vector `TRAMPOLINE >> 12`, one CPU
//! at a time. The trampoline enters 32-bit protected mode and jumps to
//! `vmm_ap_start32` in the boot stub, which takes the boot CPU's path into
//! long mode (same page tables) and calls [`vmm_core_ap_entry`] on the
//! stack the boot CPU posted. The IPIs go through the local APIC, in xAPIC
//! (MMIO at IA32_APIC_BASE) or x2APIC mode (the ICR MSR), whichever the
//! firmware left enabled (SDM Vol. 3A §12.6.1, §12.12.9).
//!
//! **Signals** are NMIs ([`signal`]): an NMI forces a VM exit on both
//! vendors and wakes a CPU halted with interrupts off. A CPU that waits
//! for its vCPU reads its slot's wake count, checks what it waits for,
//! and halts in [`wait_for_signal`] only if the count has not moved; the
//! NMI handler moves an RIP inside that compare-and-halt past the `hlt`,
//! so a signal that lands anywhere after the read is not lost.

use super::frames;
use crate::acpi::Cpus;
use crate::physmem::PhysAlloc;
use crate::smp::{layout, Machine, Slot, MAX_CPUS};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use vmm_shared::desc::{gdt_with_tss, Tss, KERNEL_CODE64, KERNEL_DATA};

/// The machine's CPUs and their vCPUs.
pub static MACHINE: Machine = Machine::new();

/// Where the real-mode trampoline runs: a page below 1 MiB (the STARTUP
/// IPI's vector is its page number) that the VMM reserves for itself and
/// the firmware has finished with by the time the VMM runs.
pub const TRAMPOLINE: u64 = 0x8000;

core::arch::global_asm!(
    r#"
    .section .rodata.vmm_trampoline, "a"
    .balign 16
    .global vmm_trampoline_start
    .global vmm_trampoline_end
    .code16
vmm_trampoline_start:
    cli
    cld
    xor ax, ax
    mov ds, ax
    /* lgdt [disp16]: 0F 01 /2, mod 00 r/m 110 */
    .byte 0x0F, 0x01, 0x16
    .short {tramp} + vmm_tr_gdtr - vmm_trampoline_start
    mov eax, cr0
    or eax, 1
    mov cr0, eax
    /* jmp far 0x08:vmm_tr_pm (66 EA: a 32-bit offset from 16-bit code) */
    .byte 0x66, 0xEA
    .long {tramp} + vmm_tr_pm - vmm_trampoline_start
    .short 0x08
    .code32
vmm_tr_pm:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    /* A stack for the far return into long mode: the trampoline page's
     * top (an AP leaves INIT with ESP = 0). */
    mov esp, {tramp} + 0x1000
    mov eax, offset vmm_ap_start32
    jmp eax
    .balign 8
vmm_tr_gdt:
    .quad 0
    .quad 0x00CF9A000000FFFF
    .quad 0x00CF92000000FFFF
vmm_tr_gdtr:
    .short 23
    .long {tramp} + vmm_tr_gdt - vmm_trampoline_start
vmm_trampoline_end:
    .code64

    .section .text.vmm_wait, "ax"
    .global vmm_wait_window
    .global vmm_wait_done
/* vmm_wait_for_signal(wakes: *const u32 [rdi], seen: u32 [esi]): halt
 * unless *wakes moved past `seen`. The NMI handler moves an RIP inside
 * [vmm_wait_window, vmm_wait_done) to vmm_wait_done. */
vmm_wait_for_signal:
vmm_wait_window:
    cmp dword ptr [rdi], esi
    jne vmm_wait_done
    hlt
vmm_wait_done:
    ret
"#,
    tramp = const TRAMPOLINE,
);

extern "C" {
    static vmm_trampoline_start: u8;
    static vmm_trampoline_end: u8;
    /// The stack the next AP starts on (boot stub, `.data.boot`).
    static mut vmm_ap_stack: u64;
    /// The next AP's vCPU index.
    static mut vmm_ap_index: u32;
    static boot_pd: [u64; 2048];
    fn vmm_wait_for_signal(wakes: *const u32, seen: u32);
}

/// Host-physical base of the CPUs' areas (2 MiB, [`layout`]).
static AREAS: AtomicU64 = AtomicU64::new(0);
/// Set once the NMI gate uses IST2: the handler then finds its CPU's slot
/// through its stack.
static IST_READY: AtomicBool = AtomicBool::new(false);
/// The last AP to report in, plus one.
static AP_ALIVE: AtomicU32 = AtomicU32::new(0);

/// The base of CPU `i`'s area.
fn area(i: usize) -> u64 {
    AREAS.load(Ordering::Relaxed) + (i as u64) * layout::AREA
}

/// Why the other CPUs could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmpError {
    /// No 2 MiB below 4 GiB for the CPUs' areas.
    OutOfMemory,
    /// The local APIC is disabled (IA32_APIC_BASE bit 11).
    ApicDisabled,
    /// The CPU with this vCPU index and APIC ID did not report in.
    NoStart(usize, u32),
}

impl core::fmt::Display for SmpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SmpError::OutOfMemory => write!(f, "no memory for the CPUs' stacks"),
            SmpError::ApicDisabled => write!(f, "the local APIC is disabled"),
            SmpError::NoStart(i, id) => {
                write!(f, "CPU {i} (APIC ID {id}) did not start")
            }
        }
    }
}

/// The local APIC (SDM Vol. 3A Chapter 12).
mod lapic {
    use crate::cpu;

    const APIC_BASE_MSR: u32 = 0x1B;
    const ENABLED: u64 = 1 << 11;
    const X2APIC: u64 = 1 << 10;
    /// xAPIC registers: ID, ICR low and high (SDM Table 12-1).
    const ID: u64 = 0x20;
    const ICR_LOW: u64 = 0x300;
    const ICR_HIGH: u64 = 0x310;
    /// x2APIC MSRs: APIC ID, ICR (SDM Table 12-6).
    const X2_ID: u32 = 0x802;
    const X2_ICR: u32 = 0x830;
    /// ICR delivery status: send pending.
    const PENDING: u32 = 1 << 12;

    fn base_msr() -> u64 {
        // SAFETY: IA32_APIC_BASE exists on every x86-64 CPU.
        unsafe { cpu::rdmsr(APIC_BASE_MSR) }
    }

    pub fn enabled() -> bool {
        base_msr() & ENABLED != 0
    }

    fn x2() -> bool {
        base_msr() & X2APIC != 0
    }

    fn mmio() -> u64 {
        base_msr() & 0x000F_FFFF_FFFF_F000
    }

    /// IA32_APIC_BASE.
    pub fn base_value() -> u64 {
        base_msr()
    }

    /// Read a 32-bit register of this CPU's local APIC.
    pub fn read(offset: u32) -> u32 {
        if x2() {
            // SAFETY: an x2APIC register MSR of this CPU (SDM §12.12.1.2).
            return unsafe { cpu::rdmsr(0x800 + (offset >> 4)) } as u32;
        }
        // SAFETY: the xAPIC page, identity-mapped; a 16-byte aligned
        // register offset below 4 KiB.
        unsafe { ((mmio() + u64::from(offset & 0xFF0)) as *const u32).read_volatile() }
    }

    /// Write a 32-bit register of this CPU's local APIC.
    pub fn write(offset: u32, value: u32) {
        if x2() {
            // The guest only ever sees xAPIC mode (crate::lapic); in
            // x2APIC mode the register is MSR 0x800 + offset / 16 (SDM
            // §12.12.1.2), ICR excepted (not written here).
            // SAFETY: an x2APIC register MSR of this CPU's own APIC,
            // written with a value the guest may give (crate::lapic).
            unsafe { cpu::wrmsr(0x800 + (offset >> 4), u64::from(value)) };
            return;
        }
        // SAFETY: the xAPIC page, identity-mapped; `offset` is a register
        // offset below 4 KiB, 16-byte aligned as the classifier passes
        // only named registers.
        unsafe { ((mmio() + u64::from(offset & 0xFF0)) as *mut u32).write_volatile(value) };
    }

    /// This CPU's local APIC ID.
    pub fn id() -> u32 {
        if x2() {
            // SAFETY: x2APIC mode is on: the ID MSR exists.
            unsafe { cpu::rdmsr(X2_ID) as u32 }
        } else {
            // SAFETY: the xAPIC page (below 4 GiB on every PC, identity
            // mapped by the boot stub) holds the ID register at 0x20.
            let v = unsafe { ((mmio() + ID) as *const u32).read_volatile() };
            v >> 24
        }
    }

    /// Send the IPI `icr` (vector, delivery mode, level) to `dest`.
    pub fn send(dest: u32, icr: u32) {
        if x2() {
            // SAFETY: x2APIC mode: a write of the ICR MSR sends the IPI.
            unsafe { cpu::wrmsr(X2_ICR, (u64::from(dest) << 32) | u64::from(icr)) };
            return;
        }
        let base = mmio();
        let (low, high) = ((base + ICR_LOW) as *mut u32, (base + ICR_HIGH) as *mut u32);
        // SAFETY: the xAPIC registers, as above. The high half names the
        // destination; writing the low half sends (SDM §12.6.1). Waiting
        // for the delivery status keeps two IPIs from overlapping.
        unsafe {
            while low.read_volatile() & PENDING != 0 {
                core::hint::spin_loop();
            }
            high.write_volatile(dest << 24);
            low.write_volatile(icr);
            while low.read_volatile() & PENDING != 0 {
                core::hint::spin_loop();
            }
        }
    }

    /// ICR: INIT, level assert (delivery mode 101b).
    pub const INIT: u32 = 0x4500;
    /// ICR: STARTUP (110b) with the vector to add.
    pub const STARTUP: u32 = 0x4600;
    /// ICR: NMI (100b), level assert.
    pub const NMI: u32 = 0x4400;
}

/// Spin for about `ticks` TSC ticks.
fn delay(ticks: u64) {
    let start = crate::cpu::rdtsc();
    while crate::cpu::rdtsc().wrapping_sub(start) < ticks {
        core::hint::spin_loop();
    }
}

/// The boot CPU's part, before any AP starts: the areas of all CPUs, the
/// boot CPU's own GDT and TSS with its IST stacks, the IST gates, and the
/// vCPU count. Returns the CPU list in use (the boot CPU first).
pub fn init(alloc: &mut PhysAlloc, found: Cpus) -> Result<Cpus, SmpError> {
    let bsp = lapic::id();
    let cpus = found.bsp_first(bsp);
    let base = alloc
        .alloc(2 << 20, 2 << 20, 1 << 32)
        .ok_or(SmpError::OutOfMemory)?;
    let pt = frames::zeroed_page(alloc).ok_or(SmpError::OutOfMemory)?;
    // SAFETY: `pt` is a fresh VMM page; `base` a fresh 2 MiB-aligned
    // region below 4 GiB. The new page table maps the region as the boot
    // stub's 2 MiB entry did (present, writable), minus the guard pages;
    // nothing uses the region yet. The PDE index is below 2048 (< 4 GiB).
    unsafe {
        let entries = pt as *mut u64;
        for i in 0..512u64 {
            let off = i << 12;
            let e = if layout::is_guard(off % layout::AREA) {
                0
            } else {
                (base + off) | 0x3
            };
            entries.add(i as usize).write_volatile(e);
        }
        let pd = core::ptr::addr_of!(boot_pd) as *mut u64;
        pd.add((base >> 21) as usize).write_volatile(pt | 0x3);
        core::arch::asm!("mov {t}, cr3", "mov cr3, {t}", t = out(reg) _, options(nostack));
    }
    AREAS.store(base, Ordering::Relaxed);
    MACHINE.set_cpus(cpus.ids());
    load_tables(0);
    super::idt::use_ist_stacks();
    IST_READY.store(true, Ordering::SeqCst);
    Ok(cpus)
}

/// CPU `i`'s GDT (the boot stub's descriptors, then its TSS) and TSS
/// (IST1 `#DF`, IST2 NMI, IST3 `#MC`), written into its area and loaded.
/// The lowest word of the NMI stack points at the CPU's [`Slot`].
fn load_tables(i: usize) {
    let a = area(i);
    let Some(slot) = MACHINE.slot(i) else {
        return;
    };
    let mut tss = Tss::new();
    tss.set_ist(crate::idt::DF_IST, a + layout::DF_STACK + layout::IST_SIZE);
    tss.set_ist(
        crate::idt::NMI_IST,
        a + layout::NMI_STACK + layout::IST_SIZE,
    );
    tss.set_ist(crate::idt::MC_IST, a + layout::MC_STACK + layout::IST_SIZE);
    // SAFETY: the area's GDT and TSS pages and the NMI stack's base belong
    // to CPU `i`, which is the caller, and are mapped (not guards); the
    // GDT page holds 512 descriptors, of which 5 are used; the TSS page is
    // 4-byte aligned as `Tss` needs.
    let tr = unsafe {
        ((a + layout::TSS) as *mut Tss).write(tss);
        ((a + layout::NMI_STACK) as *mut u64).write(slot as *const Slot as u64);
        let gdt = core::slice::from_raw_parts_mut((a + layout::GDT) as *mut u64, 512);
        gdt_with_tss(gdt, &[0, KERNEL_CODE64, KERNEL_DATA], a + layout::TSS)
    };
    let Some(tr) = tr else { return };
    let ptr = x86::dtables::DescriptorTablePointer::<u64> {
        limit: tr + 15,
        base: (a + layout::GDT) as *const u64,
    };
    // SAFETY: the new GDT has the boot stub's code and data descriptors at
    // the same selectors (0x08, 0x10), so the loaded segments stay valid,
    // and lives in the CPU's area for good. LTR loads the available TSS
    // just written.
    unsafe {
        x86::dtables::lgdt(&ptr);
        x86::task::load_tr(x86::segmentation::SegmentSelector::from_raw(tr));
    }
}

/// CPU `i`'s GDT base, TR selector and TSS base, for the VMCS host state.
pub fn tables(i: usize) -> (u64, u16, u64) {
    let a = area(i);
    (a + layout::GDT, 0x18, a + layout::TSS)
}

/// The slot of the CPU whose NMI handler runs on `rsp`.
pub fn nmi_slot(rsp: u64) -> Option<&'static Slot> {
    if !IST_READY.load(Ordering::SeqCst) {
        return MACHINE.slot(0);
    }
    let base = rsp & !(layout::IST_SIZE - 1);
    // SAFETY: with IST_READY every CPU takes NMIs on IST2 of its own TSS,
    // the NMI stack of its area; that stack's lowest word was set to the
    // CPU's slot (a `'static` in MACHINE) before the CPU loaded the TSS.
    let p = unsafe { (base as *const u64).read() };
    // SAFETY: as just said: null or a slot of MACHINE.
    unsafe { (p as *const Slot).as_ref() }
}

/// Start every other CPU of `cpus` (vCPU `i` on `cpus.ids()[i]`), one at
/// a time, each on the stack of its area.
pub fn start_aps(cpus: &Cpus) -> Result<(), SmpError> {
    if cpus.count <= 1 {
        return Ok(());
    }
    if !lapic::enabled() {
        return Err(SmpError::ApicDisabled);
    }
    // SAFETY: both symbols delimit the trampoline in .rodata; only their
    // addresses are taken. The copy goes to the reserved page at
    // TRAMPOLINE (below 1 MiB, identity-mapped, used by nothing else).
    unsafe {
        let start = core::ptr::addr_of!(vmm_trampoline_start);
        let len = core::ptr::addr_of!(vmm_trampoline_end) as usize - start as usize;
        core::ptr::copy_nonoverlapping(start, TRAMPOLINE as *mut u8, len);
    }
    for (i, &id) in cpus.ids().iter().enumerate().skip(1) {
        // SAFETY: the boot stub reads both when the AP arrives; no other
        // AP is starting (one at a time, below).
        unsafe {
            core::ptr::addr_of_mut!(vmm_ap_stack).write_volatile(area(i) + layout::STACK_TOP);
            core::ptr::addr_of_mut!(vmm_ap_index).write_volatile(i as u32);
        }
        let started = || AP_ALIVE.load(Ordering::SeqCst) == i as u32 + 1;
        lapic::send(id, lapic::INIT);
        delay(100_000);
        let vector = (TRAMPOLINE >> 12) as u32;
        for _ in 0..2 {
            lapic::send(id, lapic::STARTUP | vector);
            // Bochs shares one host thread among its CPUs: give the AP
            // time in instructions, not only TSC ticks.
            for _ in 0..20_000_000u32 {
                if started() {
                    break;
                }
                core::hint::spin_loop();
            }
            if started() {
                break;
            }
        }
        if !started() {
            return Err(SmpError::NoStart(i, id));
        }
    }
    Ok(())
}

/// Rust entry of an AP (from the boot stub, on the stack posted for it).
#[no_mangle]
extern "C" fn vmm_core_ap_entry(index: u32) -> ! {
    let i = index as usize;
    load_tables(i);
    super::idt::load_on_ap();
    AP_ALIVE.store(index + 1, Ordering::SeqCst);
    super::start::ap_main(i)
}

/// The run loop's view of this machine ([`crate::backend::Host`]).
pub struct RtHost;

impl crate::backend::Host for RtHost {
    fn apic_write(&self, offset: u32, value: u32) {
        lapic::write(offset, value);
    }
    fn apic_send(&self, icr_high: u32, icr_low: u32) {
        lapic::send(icr_high >> 24, icr_low);
    }
    fn apic_read(&self, offset: u32) -> u32 {
        lapic::read(offset)
    }
    fn signal(&self, slot: &Slot) {
        signal(slot);
    }
}

/// Whether a Linux guest gets a local APIC: on a machine of several CPUs
/// (crate::lapic). A bare-metal guest never does.
pub fn guest_lapic(profile: crate::guest::Profile) -> bool {
    profile == crate::guest::Profile::Linux && MACHINE.vcpus() > 1
}

/// This CPU's IA32_APIC_BASE with x2APIC mode hidden (what a guest with a
/// local APIC reads).
pub fn apic_base() -> u64 {
    lapic::base_value() & !(1 << 10)
}

/// Send CPU `slot` a VMM signal (an NMI it will not forward to its guest).
pub fn signal(slot: &Slot) {
    slot.signal();
    lapic::send(slot.apic_id(), lapic::NMI);
}

/// Halt until an NMI arrives on this CPU, unless one arrived since the
/// caller read `seen` from `slot.wakes()` (see the module docs).
pub fn wait_for_signal(slot: &Slot, seen: u32) {
    // SAFETY: reads one u32 of the slot (a 'static atomic) and halts with
    // interrupts off; an NMI ends the halt or skips it (module docs).
    unsafe { vmm_wait_for_signal(slot.wakes_ptr(), seen) }
}

/// At most [`MAX_CPUS`] areas fit the 2 MiB region.
const _: () = assert!(MAX_CPUS as u64 * layout::AREA <= 2 << 20);

// The vCPU hypercalls (docs/ABI.md, "Several vCPUs").

/// `vmm_vcpu_count()`: how many vCPUs the guest has (1 ..= 8). Any CPL.
#[vmmcall::vmmcall("vmm_vcpu_count", user)]
fn vcpu_count() -> u64 {
    MACHINE.vcpus() as u64
}

/// `vmm_vcpu_id()`: the calling vCPU's id (0 ..= count - 1). Any CPL.
#[vmmcall::vmmcall("vmm_vcpu_id", user)]
fn vcpu_id(cx: &mut vmmcall::Caller<'_>) -> u64 {
    u64::from(cx.vcpu_id())
}

/// `vmm_vcpu_up(id, rip, rsp, arg)`: start vCPU `id` at `rip` with `rsp`,
/// RDI = `arg` and RSI = `id`, in the state vCPU 0 started in. CPL 0.
/// `-EINVAL`: no such vCPU, or a non-canonical `rip`/`rsp`; `-EBUSY`:
/// the vCPU already runs or is being started.
#[vmmcall::vmmcall("vmm_vcpu_up")]
fn vcpu_up(id: u64, rip: u64, rsp: u64, arg: u64) -> Result<u64, vmmcall::Error> {
    let id = usize::try_from(id).map_err(|_| vmmcall::Error::Invalid)?;
    let slot = MACHINE
        .vcpu_up(
            id,
            crate::smp::VcpuEntry {
                rip,
                rsp,
                arg,
                real_segment: None,
            },
        )
        .map_err(|e| match e {
            crate::smp::UpError::Invalid => vmmcall::Error::Invalid,
            crate::smp::UpError::Busy => vmmcall::Error::Busy,
        })?;
    signal(slot);
    Ok(0)
}
