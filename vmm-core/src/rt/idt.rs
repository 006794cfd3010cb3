//! The host IDT (see [`crate::idt`]): one stub per exception vector, one for
//! everything else, an NMI path that records and returns, and a fatal path
//! that reports a fault in the VMM and stops the machine.

use crate::idt::{
    exception_name, interrupt_gate, pushes_error_code, split_2m, DF_IST, MC_IST, NMI_IST,
};
use baremetal::Com1;
use core::fmt::Write;
use vmm_shared::desc::{gdt_with_tss, Idt, Tss, KERNEL_CODE64, KERNEL_DATA};

core::arch::global_asm!(concat!(
    r#"
    .section .text.vmm_idt, "ax"
    .macro VMM_ISR n, err
vmm_isr_\n:
    .if \err == 0
    push 0
    .endif
    push \n
    jmp vmm_isr_common
    .endm

    VMM_ISR 0, 0
    VMM_ISR 1, 0
    VMM_ISR 2, 0
    VMM_ISR 3, 0
    VMM_ISR 4, 0
    VMM_ISR 5, 0
    VMM_ISR 6, 0
    VMM_ISR 7, 0
    VMM_ISR 8, 1
    VMM_ISR 9, 0
    VMM_ISR 10, 1
    VMM_ISR 11, 1
    VMM_ISR 12, 1
    VMM_ISR 13, 1
    VMM_ISR 14, 1
    VMM_ISR 15, 0
    VMM_ISR 16, 0
    VMM_ISR 17, 1
    VMM_ISR 18, 0
    VMM_ISR 19, 0
    VMM_ISR 20, 0
    VMM_ISR 21, 1
    VMM_ISR 22, 0
    VMM_ISR 23, 0
    VMM_ISR 24, 0
    VMM_ISR 25, 0
    VMM_ISR 26, 0
    VMM_ISR 27, 0
    VMM_ISR 28, 0
    VMM_ISR 29, 0
    VMM_ISR 30, 0
    VMM_ISR 31, 0
    VMM_ISR 255, 0

/* Stack: vector, error code, then the CPU's RIP, CS, RFLAGS, RSP, SS. */
vmm_isr_common:
    cmp qword ptr [rsp], 2
    je 2f
    cmp qword ptr [rsp], 1
    je 3f
    mov rdi, rsp
    and rsp, -16
    call vmm_fatal_exception
1:
    cli
    hlt
    jmp 1b
2:
    /* NMI: on its own stack (IST2). An NMI inside the compare-and-halt of
     * vmm_wait_for_signal (rt::smp) returns past its HLT. Then record it
     * in the CPU's slot and return to the interrupted code. The handler
     * only updates atomics: no SSE, so the guest's vector state (live
     * between FXRSTOR and VM entry) is untouched. */
    push rax
    push rcx
    mov rax, [rsp + 32]
    lea rcx, [rip + vmm_wait_window]
    cmp rax, rcx
    jb 4f
    lea rcx, [rip + vmm_wait_done]
    cmp rax, rcx
    jae 4f
    mov [rsp + 32], rcx
4:
    pop rcx
    pop rax
"#,
    baremetal::push_scratch!(),
    r#"
    mov rdi, rsp
    call vmm_host_nmi
"#,
    baremetal::pop_scratch_iretq!(),
    r#"
3:
    /* #DB: the VMM sets no breakpoints and never single-steps, so a debug
     * exception here is a guest's (Bochs 2.7 under SVM delivers the
     * single-step trap of an intercepted guest instruction after the
     * #VMEXIT). The run loop gives the guest its own #DB where one is due;
     * this one is dropped, DR6 cleared. */
    push rax
    mov eax, 0xFFFF0FF0
    mov dr6, rax
    pop rax
    add rsp, 16
    iretq

    .section .rodata.vmm_isr_table, "a"
    .balign 8
    .global vmm_isr_table
vmm_isr_table:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,255
    .quad vmm_isr_\n
    .endr
"#
));

extern "C" {
    /// Vectors 0..=31, then the catch-all stub (index 32).
    static vmm_isr_table: [u64; 33];
}

/// 256 gates.
static mut IDT: Idt<256> = Idt::new();

/// The `#DF` stack (IST1 of every TSS the VMM loads).
#[repr(C, align(16))]
struct DfStack([u8; 16384]);

static mut DF_STACK: DfStack = DfStack([0; 16384]);

/// The top of the `#DF` stack, for IST1 of a TSS.
pub fn df_stack_top() -> u64 {
    core::ptr::addr_of!(DF_STACK) as u64 + 16384
}

/// The VMM's TSS at boot: only IST1 is used (the VMX backend loads a TSS
/// of its own with the same IST1, see `vmx::rt::host_gdt`).
#[repr(C, align(16))]
struct BootTss(Tss);

static mut TSS: BootTss = BootTss(Tss::new());

/// A GDT for the boot TSS: the boot stub's three descriptors (same
/// selectors) and the 16-byte TSS descriptor at 0x18.
#[repr(C, align(16))]
struct Gdt([u64; 5]);

static mut GDT: Gdt = Gdt([0; 5]);

/// The page table that maps the stack's 2 MiB region with 4 KiB pages,
/// all but the guard page.
#[repr(C, align(4096))]
struct Pt([u64; 512]);

static mut GUARD_PT: Pt = Pt([0; 512]);

extern "C" {
    static boot_pd: [u64; 2048];
    static boot_stack_guard: u8;
}

/// Unmap the 4 KiB guard page below the boot stack (the boot stub maps
/// everything with 2 MiB pages: the one holding the guard is split) and
/// load a TSS whose IST1 is the `#DF` stack. A stack overflow then faults
/// on the guard, the `#PF` cannot be pushed there, and the `#DF` handler
/// reports it on its own stack.
fn guard() {
    let guard = core::ptr::addr_of!(boot_stack_guard) as u64;
    let base = guard & !0x1F_FFFF;
    let pd = core::ptr::addr_of!(boot_pd) as *mut u64;
    let index = (guard >> 21) as usize;
    let pt = core::ptr::addr_of_mut!(GUARD_PT);
    // SAFETY: boot is single-threaded; GUARD_PT is not in use yet. The PDE
    // at `index` (< 2048: the guard lies below 4 GiB, in the image) maps
    // the 2 MiB page holding the guard; the new table maps the same
    // physical pages (present, writable) but the guard, so everything the
    // VMM uses stays mapped. CR3 is reloaded to flush the old 2 MiB entry.
    unsafe {
        (*pt).0 = split_2m(base, 0x3, guard);
        pd.add(index).write_volatile(pt as u64 | 0x3);
        core::arch::asm!("mov {t}, cr3", "mov cr3, {t}", t = out(reg) _, options(nostack));
    }
    let tss = core::ptr::addr_of_mut!(TSS);
    // SAFETY: single-threaded boot; TSS is a static not yet loaded.
    unsafe { (*tss).0.set_ist(DF_IST, df_stack_top()) };
    let gdt = core::ptr::addr_of_mut!(GDT);
    // SAFETY: single-threaded; the new GDT is not loaded yet. Its first
    // three descriptors are the boot stub's (null, 64-bit code 0x08, data
    // 0x10), so the loaded selectors stay valid.
    let tr = unsafe { gdt_with_tss(&mut (*gdt).0, &[0, KERNEL_CODE64, KERNEL_DATA], tss as u64) };
    let tr = tr.expect("five descriptors hold three and a TSS");
    let ptr = x86::dtables::DescriptorTablePointer::<u64> {
        limit: (5 * 8 - 1) as u16,
        base: gdt as *const u64,
    };
    // SAFETY: see above: same code and data selectors; the GDT is static.
    unsafe { x86::dtables::lgdt(&ptr) };
    // SAFETY: `tr` (0x18) selects the available TSS descriptor just loaded.
    unsafe { x86::task::load_tr(x86::segmentation::SegmentSelector::from_raw(tr)) };
}

/// Fill the IDT and load it (LIDT), unmap the stack's guard page and load
/// the `#DF` stack's TSS. Called once at boot, before any guest.
pub fn load() {
    guard();
    let cs = x86::segmentation::cs().bits();
    // SAFETY: the table is a static of 33 addresses written by the
    // assembler above; reading it has no side effect.
    let stubs = unsafe { core::ptr::addr_of!(vmm_isr_table).read() };
    let idt = core::ptr::addr_of_mut!(IDT);
    for vector in 0..256usize {
        let stub = stubs.get(vector).copied().unwrap_or(stubs[32]);
        // SAFETY: boot is single-threaded and nothing else refers to IDT
        // before LIDT below; `vector` < 256.
        let ist = if vector == 8 { DF_IST } else { 0 };
        unsafe { (*idt).0[vector] = interrupt_gate(stub, cs, ist) };
    }
    // SAFETY: the IDT is a static that lives forever, filled with gates to
    // the stubs above in the current code segment.
    unsafe { x86::dtables::lidt(&idt_pointer()) };
}

/// The NMI handler's Rust half: `rsp` is on the CPU's NMI stack.
#[no_mangle]
extern "C" fn vmm_host_nmi(rsp: u64) {
    if let Some(slot) = super::smp::nmi_slot(rsp) {
        slot.nmi_arrived();
    }
}

/// The IDT's address and limit.
fn idt_pointer() -> x86::dtables::DescriptorTablePointer<u64> {
    x86::dtables::DescriptorTablePointer::<u64> {
        limit: (256 * 16 - 1) as u16,
        base: core::ptr::addr_of!(IDT) as *const u64,
    }
}

/// Switch the NMI and `#MC` gates to their IST stacks, once the boot CPU
/// has loaded a TSS that has them (`rt::smp::init`), before any AP runs.
pub fn use_ist_stacks() {
    let cs = x86::segmentation::cs().bits();
    // SAFETY: as in `load`: a static of 33 addresses.
    let stubs = unsafe { core::ptr::addr_of!(vmm_isr_table).read() };
    let idt = core::ptr::addr_of_mut!(IDT);
    for (vector, ist) in [(2usize, NMI_IST), (18, MC_IST)] {
        // SAFETY: only the boot CPU runs; a gate is two words, and an NMI
        // taken while one is half-written would use either the old gate
        // (this stack) or the new (IST2 of the TSS just loaded): the
        // order of the halves does not matter, both are valid gates to
        // the same stub.
        unsafe { (*idt).0[vector] = interrupt_gate(stubs[vector], cs, ist) };
    }
}

/// Load the IDT on an AP (which has loaded its own TSS).
pub fn load_on_ap() {
    // SAFETY: the IDT is complete (the boot CPU filled it before starting
    // any AP) and static.
    unsafe { x86::dtables::lidt(&idt_pointer()) };
}

/// A fault in the VMM itself: report it without the console lock (the
/// fault may have happened while it was held) and stop.
#[no_mangle]
extern "C" fn vmm_fatal_exception(frame: *const u64) -> ! {
    // SAFETY: the stub passes its stack pointer: vector, error code, RIP,
    // CS, RFLAGS, RSP, SS, all pushed just before.
    let [vector, error, rip, _cs, rflags, rsp, _ss] = unsafe { frame.cast::<[u64; 7]>().read() };
    let cr2: u64;
    // SAFETY: reading CR2 has no side effect.
    unsafe { core::arch::asm!("mov {}, cr2", out(reg) cr2, options(nomem, nostack)) };
    let v = vector as u8;
    let guard = core::ptr::addr_of!(boot_stack_guard) as u64;
    if v == 8 && cr2 & !0xFFF == guard {
        let _ = writeln!(
            Com1,
            "\nvmm: FATAL: the VMM's stack overflowed into its guard page"
        );
    }
    let _ = writeln!(
        Com1,
        "\nvmm: FATAL: {} (vector {vector}{}) in the VMM at RIP {rip:#x}, RSP {rsp:#x}, RFLAGS {rflags:#x}, CR2 {cr2:#x}",
        exception_name(v),
        Code(pushes_error_code(v).then_some(error)),
    );
    crate::rt::exit_machine(false)
}

/// The error code, if the vector has one.
struct Code(Option<u64>);

impl core::fmt::Display for Code {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(e) => write!(f, ", error code {e:#x}"),
            None => Ok(()),
        }
    }
}
