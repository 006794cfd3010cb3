//! Hostile guest: a seeded, reproducible storm of hypercalls whose every
//! answer is predicted from docs/ABI.md and checked.
//!
//! The guest builds its own page tables first, so that it knows exactly
//! what each address is (identity-mapped guest RAM otherwise):
//!
//! | linear                         | what                                           |
//! |--------------------------------|------------------------------------------------|
//! | `0 .. 2 MiB`                   | RAM, supervisor-only (null page, VMM tables)   |
//! | `2 .. 16 MiB`                  | RAM, user (this image and its stacks)          |
//! | `16 .. 18 MiB`                 | RAM, supervisor-only ("kernel page")           |
//! | `18 .. 20 MiB`                 | not present: the canary, RAM only the alias reaches |
//! | `24 .. 26 MiB`                 | the window: 4 KiB pages, kind = index % 8      |
//! | `32 .. 34 MiB`                 | guest-physical 32 MiB: just past guest RAM     |
//! | `0xC000_0000 .. 4 GiB`         | a 1 GiB page of MMIO space (local APIC at 0xFEE0_0000) |
//! | `0x80_0000_0000 ..` (32 MiB)   | the alias: all of guest RAM, user, writable    |
//! | `0xFFFF_FFFF_FFE0_0000 ..`     | the top 2 MiB: a user alias of the window's RAM |
//! | everything else                | not present, or not canonical                  |
//!
//! Window kinds: 0, 1, 6 user RAM; 2 user read-only RAM; 3 supervisor
//! RAM; 4 not present; 5 guest-physical 0xFEE0_0000 (MMIO); 7
//! guest-physical 1 TiB. The guest itself never touches 32 MiB and up, the
//! MMIO pages or 1 TiB: only the VMM is asked to (it must answer -EFAULT).
//!
//! The storm runs in eight phases: CPL 0, 1, 2 and 3, each with CR0.WP = 1
//! and then 0 (50,000 calls at CPL 0, 5,000 at CPL 1 and at CPL 2, 40,000
//! at CPL 3). The guest has its own GDT with ring-1 and ring-2 segments,
//! drops from ring to ring with IRETQ (IOPL 3, so every ring may print),
//! and sets CR0.WP through an interrupt gate (`int 0x80`, DPL 3) from any
//! ring. One call in eight uses the other vendor's instruction. Each call
//! loads every GPR, the arithmetic flags and the x87/SSE state (FXRSTOR of
//! random x87 registers, control word, MXCSR and XMM0-15) with random
//! values, and checks afterwards (FXSAVE) that only RAX changed. Calls mix
//! random numbers (0, the last, just past the last, u64::MAX, random),
//! random and boundary arguments (values that overflow u8/i8/i16/i32/u32/
//! bool), buffers at page boundaries, in unmapped, supervisor, read-only,
//! MMIO and non-canonical memory, lengths that wrap the address space, and
//! names that are 255/256 bytes long, unterminated over 4 KiB, or cross
//! into an unreadable page. The expected answer is computed here, from the
//! ABI and the page-table model above, never by asking the VMM.
//!
//! Memory is checked independently of the VMM and of the caller's CPL,
//! through the alias: before every call that names memory the guest copies
//! the named buffer (the first 4 KiB of a `fill`, 512 bytes of a read, and
//! the last bytes of a longer range) and 64 bytes on either side, by
//! guest-physical address; afterwards every byte must be what it was,
//! except the bytes a successful `fill` writes. A `fill` that fails writes
//! nothing: docs/ABI.md's check-first rule. The canary (2 MiB no mapping
//! but the alias reaches) is checked after every phase.
//!
//! The guest counts the calls of every class the generator promises (the
//! numbers, the answers, each overflowing parameter type, each kind of
//! buffer and name, both instructions, every CPL and both CR0.WP values)
//! and prints the counts; a class without calls counts as unexpected.
//!
//! Count: 100,000 calls (and the 11 lookups of the set-up) on every
//! platform: about 10 s under QEMU TCG and 60 s under Bochs.
#![no_std]
#![no_main]

mod smp;

use core::sync::atomic::{AtomicU64, Ordering};
use guest_rt::arch::{self, PTE_P, PTE_PS, PTE_RW, PTE_US};
use guest_rt::println;
use guest_sdk::abi::{DESCRIBE, DESCRIBE_USER, LOOKUP_TYPED};
use guest_sdk::Instruction;

guest_rt::entry!(main);

mod batch;

const SEED: u64 = 0x5EED_1DEA_F00D_CAFE;

/// The phases: (CPL, CR0.WP, calls).
const PHASES: [(u8, bool, u64); 8] = [
    (0, true, 25_000),
    (0, false, 25_000),
    (1, true, 2_500),
    (1, false, 2_500),
    (2, true, 2_500),
    (2, false, 2_500),
    (3, true, 20_000),
    (3, false, 20_000),
];

const MIB: u64 = 1 << 20;
const PAGE: u64 = 4096;
const WIN: u64 = 24 * MIB;
const KPAGE: u64 = 16 * MIB;
const CANARY: u64 = 18 * MIB;
const SCRATCH: u64 = 30 * MIB;
const EDGE: u64 = 32 * MIB;
const MMIO_1G: u64 = 0xC000_0000;
const ALIAS: u64 = 0x80_0000_0000;
const TOP: u64 = 0xFFFF_FFFF_FFE0_0000;
const GPA_APIC: u64 = 0xFEE0_0000;
const GPA_1T: u64 = 1 << 40;
/// Guest RAM: guest-physical `0 .. RAM` (docs/ABI.md, bare-metal profile).
const RAM: u64 = 32 * MIB;

const EPERM: u64 = 1;
const EFAULT: u64 = 14;
const EINVAL: u64 = 22;
const EBUSY: u64 = 16;
const ENOSPC: u64 = 28;
const ERANGE: u64 = 34;
const ENOSYS: u64 = 38;
const EOVERFLOW: u64 = 75;
const EPROTO: u64 = 71;

const fn err(e: u64) -> u64 {
    e.wrapping_neg()
}

const LONG: &[u8; 255] = b"long_name_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum H {
    EchoU8,
    Exit,
    Fill,
    Flag,
    KAdd,
    KEcho64,
    Long,
    Mix,
    NameLen,
    Sum,
    VcpuCount,
    VcpuId,
    VcpuUp,
    Whoami,
}

/// The VMM image's handlers in byte order of their names: number = index + 1.
const TABLE: [(&[u8], H, bool); 14] = [
    (b"echo_u8", H::EchoU8, true),
    (b"exit", H::Exit, false),
    (b"fill", H::Fill, true),
    (b"flag", H::Flag, true),
    (b"k_add", H::KAdd, false),
    (b"k_echo64", H::KEcho64, false),
    (LONG, H::Long, true),
    (b"mix", H::Mix, true),
    (b"name_len", H::NameLen, true),
    (b"sum", H::Sum, true),
    // vmm-core's built-ins for several vCPUs (docs/ABI.md).
    (b"vmm_vcpu_count", H::VcpuCount, true),
    (b"vmm_vcpu_id", H::VcpuId, true),
    (b"vmm_vcpu_up", H::VcpuUp, false),
    (b"whoami", H::Whoami, true),
];
const K: u64 = TABLE.len() as u64;

/// The handler with number `n`, if any.
fn handler(n: u64) -> Option<(H, bool)> {
    let i = usize::try_from(n.checked_sub(1)?).ok()?;
    TABLE.get(i).map(|&(_, h, user)| (h, user))
}

// ---------------------------------------------------------------- tables

#[repr(C, align(4096))]
struct Table([u64; 512]);
static mut PML4: Table = Table([0; 512]);
static mut PDPT0: Table = Table([0; 512]);
static mut PD0: Table = Table([0; 512]);
static mut PT_WIN: Table = Table([0; 512]);
static mut PDPT_AL: Table = Table([0; 512]);
static mut PD_AL: Table = Table([0; 512]);
static mut PDPT_HI: Table = Table([0; 512]);
static mut PD_HI: Table = Table([0; 512]);

fn table_addr(t: *const Table) -> u64 {
    t as u64
}

/// Build the tables of the module docs and switch to them.
///
/// # Safety
/// CPL 0, once, with the VMM's initial identity map active; the image
/// lives in 2..16 MiB.
unsafe fn build_tables() {
    let u = PTE_P | PTE_RW | PTE_US;
    // SAFETY: single-threaded set-up before the tables are in use; every
    // static is a 4 KiB-aligned table in this image (identity-mapped, so
    // its linear address is its guest-physical one).
    unsafe {
        let pml4 = &mut *core::ptr::addr_of_mut!(PML4);
        let pdpt0 = &mut *core::ptr::addr_of_mut!(PDPT0);
        let pd0 = &mut *core::ptr::addr_of_mut!(PD0);
        let win = &mut *core::ptr::addr_of_mut!(PT_WIN);
        let pdpt_al = &mut *core::ptr::addr_of_mut!(PDPT_AL);
        let pd_al = &mut *core::ptr::addr_of_mut!(PD_AL);
        let pdpt_hi = &mut *core::ptr::addr_of_mut!(PDPT_HI);
        let pd_hi = &mut *core::ptr::addr_of_mut!(PD_HI);
        for (i, e) in pd0.0.iter_mut().enumerate().take(16) {
            let base = (i as u64) << 21;
            *e = base | PTE_P | PTE_RW | PTE_PS | if i == 0 || i == 8 { 0 } else { PTE_US };
        }
        pd0.0[9] = 0;
        pd0.0[12] = table_addr(core::ptr::addr_of!(PT_WIN)) | u;
        pd0.0[16] = EDGE | u | PTE_PS;
        for (i, e) in win.0.iter_mut().enumerate() {
            let ram = WIN + (i as u64) * PAGE;
            *e = match i % 8 {
                2 => ram | PTE_P | PTE_US,
                3 => ram | PTE_P | PTE_RW,
                4 => 0,
                5 => GPA_APIC | u,
                7 => GPA_1T | u,
                _ => ram | u,
            };
        }
        for (i, e) in pd_al.0.iter_mut().enumerate().take((RAM >> 21) as usize) {
            *e = ((i as u64) << 21) | u | PTE_PS;
        }
        pdpt_al.0[0] = table_addr(core::ptr::addr_of!(PD_AL)) | u;
        pdpt0.0[0] = table_addr(core::ptr::addr_of!(PD0)) | u;
        pdpt0.0[3] = MMIO_1G | u | PTE_PS;
        pd_hi.0[511] = WIN | u | PTE_PS;
        pdpt_hi.0[511] = table_addr(core::ptr::addr_of!(PD_HI)) | u;
        pml4.0[0] = table_addr(core::ptr::addr_of!(PDPT0)) | u;
        pml4.0[(ALIAS >> 39) as usize] = table_addr(core::ptr::addr_of!(PDPT_AL)) | u;
        pml4.0[511] = table_addr(core::ptr::addr_of!(PDPT_HI)) | u;
        arch::write_cr3(table_addr(core::ptr::addr_of!(PML4)));
    }
}

// ------------------------------------------------------ rings and CR0.WP

/// The guest's GDT: the VMM's five descriptors at the same selectors,
/// ring-1 and ring-2 code and data, and a 64-bit TSS (Intel SDM Vol. 3A
/// §3.4.5 descriptors: access byte P | DPL | S | type; §8.2.3 the TSS).
#[repr(C, align(16))]
struct Gdt([u64; 11]);
static mut GDT: Gdt = Gdt([0; 11]);

/// The TSS: RSP0 is the stack of the CR0.WP gate when it is entered from
/// CPL 1 to 3.
static mut TSS: arch::Tss = arch::Tss::new();

/// The IDT: only vector 0x80, the CR0.WP gate.
#[repr(C, align(16))]
struct Idt([u64; 512]);
static mut IDT: Idt = Idt([0; 512]);

#[repr(C, align(16))]
struct Stack([u8; 65536]);
static mut GATE_STACK: Stack = Stack([0; 65536]);
static mut RING_STACKS: [Stack; 3] = [Stack([0; 65536]), Stack([0; 65536]), Stack([0; 65536])];

const TSS_SELECTOR: u16 = 0x48;
/// The CR0.WP gate's vector.
const WP_VECTOR: usize = 0x80;

/// (code, stack) selectors with RPL = CPL for rings 1 to 3.
const fn ring_selectors(cpl: u8) -> (u64, u64) {
    match cpl {
        1 => (0x29, 0x31),
        2 => (0x3A, 0x42),
        _ => (0x23, 0x1B),
    }
}

// The CR0.WP gate: RAX bit 0 = the new CR0.WP; returns CR0 in RAX. Every
// other register is kept; IRETQ restores RFLAGS.
core::arch::global_asm!(
    ".section .text.hostile_wp_gate, \"ax\"",
    ".global hostile_wp_gate",
    "hostile_wp_gate:",
    "push rcx",
    "mov rcx, cr0",
    "btr rcx, 16",
    "test eax, 1",
    "jz 2f",
    "bts rcx, 16",
    "2:",
    "mov cr0, rcx",
    "mov rax, rcx",
    "pop rcx",
    "iretq",
);

extern "C" {
    fn hostile_wp_gate();
}

/// Load the GDT, the TSS and the IDT above.
///
/// # Safety
/// CPL 0, once, before any other ring runs.
unsafe fn install_rings() {
    let tss = core::ptr::addr_of_mut!(TSS);
    let top = core::ptr::addr_of!(GATE_STACK) as u64 + 65536;
    // SAFETY: single-threaded set-up; nothing uses the TSS yet.
    unsafe { (*tss).set_rsp0(top) };
    let [tss_low, tss_high] = arch::tss_descriptor(tss as u64, arch::TSS_SIZE as u32 - 1);
    let gdt = core::ptr::addr_of_mut!(GDT);
    // SAFETY: single-threaded; the new GDT is not loaded yet.
    unsafe {
        (*gdt).0 = [
            0,
            0x00AF_9A00_0000_FFFF, // 0x08 ring-0 code
            0x00CF_9200_0000_FFFF, // 0x10 ring-0 data
            0x00CF_F200_0000_FFFF, // 0x18 ring-3 data (0x1b)
            0x00AF_FA00_0000_FFFF, // 0x20 ring-3 code (0x23)
            0x00AF_BA00_0000_FFFF, // 0x28 ring-1 code (0x29)
            0x00CF_B200_0000_FFFF, // 0x30 ring-1 data (0x31)
            0x00AF_DA00_0000_FFFF, // 0x38 ring-2 code (0x3a)
            0x00CF_D200_0000_FFFF, // 0x40 ring-2 data (0x42)
            tss_low,               // 0x48 TSS
            tss_high,
        ];
    }
    // A 64-bit interrupt gate (type 0xE), present, DPL 3, on the ring-0
    // code selector (SDM Vol. 3A §6.14.1, Figure 6-8).
    let handler = hostile_wp_gate as *const () as u64;
    let low = (handler & 0xFFFF) | (0x08 << 16) | (0xEE << 40) | (((handler >> 16) & 0xFFFF) << 48);
    let idt = core::ptr::addr_of_mut!(IDT);
    // SAFETY: single-threaded; the IDT is not loaded yet.
    unsafe {
        (*idt).0[2 * WP_VECTOR] = low;
        (*idt).0[2 * WP_VECTOR + 1] = handler >> 32;
    }
    // SAFETY: the new GDT keeps the VMM's code and data descriptors at the
    // same selectors, so the loaded segments stay valid; TSS_SELECTOR names
    // the available TSS just written; the IDT's only gate is the CR0.WP
    // gate (any other vector would triple-fault, as with no IDT). Both
    // tables are statics.
    unsafe {
        arch::load_gdt(gdt as u64, 11 * 8, Some(TSS_SELECTOR));
        arch::load_idt(idt as u64, 512 * 8);
    }
    // `exit` is CPL 0 only: ring 3 finishes through guest_sdk's SYSCALL
    // entry (docs/ABI.md, "Who may end the run").
    // SAFETY: CPL 0; the GDT keeps the VMM's selectors 0x08-0x23.
    unsafe { arch::enable_syscall_exit() };
}

/// Set CR0.WP through the gate (from any ring); returns the new CR0.
fn set_wp(wp: bool) -> u64 {
    let mut rax = u64::from(wp);
    // SAFETY: the gate changes only CR0.WP and returns; the red zone is
    // skipped because at CPL 0 the interrupt frame goes on this stack.
    unsafe { core::arch::asm!("sub rsp, 128", "int 0x80", "add rsp, 128", inout("rax") rax) };
    rax
}

/// IRETQ to `entry` at `cpl` (1 to 3, outward only) with IOPL 3 and
/// interrupts off, on `stack_top`.
///
/// # Safety
/// The rings' selectors are loaded ([`install_rings`]); `entry`, the stack
/// and everything `entry` touches are mapped for `cpl`.
unsafe fn drop_to(cpl: u8, entry: extern "C" fn() -> !, stack_top: u64) -> ! {
    let (cs, ss) = ring_selectors(cpl);
    let sp = (stack_top & !0xf).wrapping_sub(8);
    // SAFETY: the caller's guarantees; RFLAGS = IOPL 3 | reserved bit 1.
    unsafe {
        core::arch::asm!(
            "push {ss}", "push {sp}", "push {fl}", "push {cs}", "push {ip}", "iretq",
            ss = in(reg) ss, sp = in(reg) sp, fl = in(reg) 0x3002u64,
            cs = in(reg) cs, ip = in(reg) entry as usize as u64,
            options(noreturn)
        )
    }
}

// ----------------------------------------------------------- the model

/// What the tables say about one linear address.
#[derive(Clone, Copy)]
struct Pg {
    user: bool,
    write: bool,
    /// The guest-physical address, if it is guest RAM.
    gpa: Option<u64>,
}

const fn canonical(a: u64) -> bool {
    let top = a >> 47;
    top == 0 || top == 0x1_ffff
}

/// The page-table model of the module docs for `la` (None: not present or
/// not canonical).
fn page(la: u64) -> Option<Pg> {
    if !canonical(la) {
        return None;
    }
    let ram = |user, write, gpa| {
        Some(Pg {
            user,
            write,
            gpa: Some(gpa),
        })
    };
    let outside = Some(Pg {
        user: true,
        write: true,
        gpa: None,
    });
    match la {
        0..0x20_0000 => ram(false, true, la),
        a if (KPAGE..KPAGE + 2 * MIB).contains(&a) => ram(false, true, a),
        a if (CANARY..CANARY + 2 * MIB).contains(&a) => None,
        a if (WIN..WIN + 2 * MIB).contains(&a) => match ((a - WIN) / PAGE) % 8 {
            2 => ram(true, false, a),
            3 => ram(false, true, a),
            4 => None,
            5 | 7 => outside,
            _ => ram(true, true, a),
        },
        a if a < EDGE => ram(true, true, a),
        a if a < EDGE + 2 * MIB => outside,
        a if (MMIO_1G..MMIO_1G + (1 << 30)).contains(&a) => outside,
        a if (ALIAS..ALIAS + RAM).contains(&a) => ram(true, true, a - ALIAS),
        a if a >= TOP => ram(true, true, WIN + (a - TOP)),
        _ => None,
    }
}

/// Who is asking: the caller's CPL and CR0.WP.
#[derive(Clone, Copy)]
struct Who {
    cpl: u8,
    wp: bool,
    /// The calling vCPU's id.
    vcpu: u64,
}

/// Why an access to one page fails (docs/ABI.md, `EFAULT`), or `Ok`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Deny {
    Ok,
    NonCanonical,
    NotPresent,
    Supervisor,
    ReadOnly,
    OutsideRam,
}

/// The access rights of docs/ABI.md for one page: ring 3 is a user
/// access; a write to a read-only page is refused from ring 3, and from
/// any ring while CR0.WP is 1.
fn deny(la: u64, write: bool, who: Who) -> Deny {
    let Some(p) = page(la) else {
        return if canonical(la) {
            Deny::NotPresent
        } else {
            Deny::NonCanonical
        };
    };
    let user = who.cpl == 3;
    if user && !p.user {
        Deny::Supervisor
    } else if write && !p.write && (user || who.wp) {
        Deny::ReadOnly
    } else if p.gpa.is_none() {
        Deny::OutsideRam
    } else {
        Deny::Ok
    }
}

/// The pieces of `[la, la + len)` (len > 0, no wrap), in order: (first
/// byte, length), one linear page each.
fn pieces(la: u64, len: u64) -> impl Iterator<Item = (u64, u64)> {
    let last = la + (len - 1);
    let mut next = Some(la);
    core::iter::from_fn(move || {
        let p = next?;
        let page_last = p | (PAGE - 1);
        let end = page_last.min(last);
        next = if end == last { None } else { Some(end + 1) };
        Some((p, end - p + 1))
    })
}

/// The first byte of each piece of `[la, la + len)`.
fn piece_starts(la: u64, len: u64) -> impl Iterator<Item = u64> {
    pieces(la, len).map(|(p, _)| p)
}

/// `n` bytes of guest RAM at `gpa`, through the alias.
fn ram_bytes(gpa: u64, n: u64) -> &'static [u8] {
    // SAFETY: callers pass a range the model calls guest RAM (within one
    // page); the alias maps all of it, readable at any CPL. Nothing else
    // runs while the slice is used (the VMM only runs inside `hcall`).
    unsafe { core::slice::from_raw_parts((ALIAS + gpa) as *const u8, n as usize) }
}

/// How an access to `[la, la + len)` ends: `Ok(())`, or the first piece's
/// reason (`Err(None)`: the range wraps around the address space).
fn access(la: u64, len: u64, write: bool, who: Who) -> Result<(), Option<Deny>> {
    if len == 0 {
        return Ok(());
    }
    if la.checked_add(len - 1).is_none() {
        return Err(None);
    }
    for p in piece_starts(la, len) {
        match deny(p, write, who) {
            Deny::Ok => {}
            d => return Err(Some(d)),
        }
    }
    Ok(())
}

fn access_ok(la: u64, len: u64, write: bool, who: Who) -> bool {
    access(la, len, write, who).is_ok()
}

/// How `fill` of `[la, la + len)` ends: check first, then write
/// (docs/ABI.md): either every byte is written, or the call fails with
/// -EFAULT and has written nothing.
fn fill_model(la: u64, len: u64, who: Who) -> bool {
    access_ok(la, len, true, who)
}

/// The byte of guest RAM at `gpa`, read through the alias (a view of
/// memory that needs neither the VMM nor the caller's rights).
fn ram_byte(gpa: u64) -> u8 {
    // SAFETY: `gpa` < RAM (callers only pass guest-physical addresses the
    // model calls RAM); the alias maps all of guest RAM, readable at any
    // CPL.
    unsafe { core::ptr::read_volatile((ALIAS + gpa) as *const u8) }
}

/// The guest-physical address of `la` if it is guest RAM, whatever the
/// rights.
fn ram_gpa(la: u64) -> Option<u64> {
    page(la)?.gpa
}

/// Reads the bytes the caller may read, through the alias.
struct Peeker {
    who: Who,
    page: u64,
    ok: bool,
}

impl Peeker {
    fn new(who: Who) -> Self {
        Peeker {
            who,
            page: 1,
            ok: false,
        }
    }

    fn peek(&mut self, a: u64) -> Option<u8> {
        let page = a & !(PAGE - 1);
        if page != self.page {
            self.page = page;
            self.ok = deny(a, false, self.who) == Deny::Ok;
        }
        if !self.ok {
            return None;
        }
        Some(ram_byte(ram_gpa(a)?))
    }
}

/// Write `bytes` at `la` through the alias where it is guest RAM at 4 MiB
/// or above (never this image, its stacks or tables) and not the canary.
fn poke(la: u64, bytes: &[u8]) {
    for (i, &b) in bytes.iter().enumerate() {
        let Some(g) = la.checked_add(i as u64).and_then(ram_gpa) else {
            continue;
        };
        if g >= 4 * MIB && !(CANARY..CANARY + 2 * MIB).contains(&g) {
            // SAFETY: scratch guest RAM through the writable alias.
            unsafe { core::ptr::write_volatile((ALIAS + g) as *mut u8, b) };
        }
    }
}

/// What reading a name at `la` finds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Name {
    /// A NUL after this many bytes (at most 255).
    Len(usize),
    /// An unreadable byte at this offset, before any NUL.
    Fault(usize),
    /// No NUL within 256 bytes.
    Unterminated,
}

/// Read a name as the VMM must (docs/ABI.md, function 0): `buf` gets its
/// bytes.
fn name_model(la: u64, who: Who, buf: &mut [u8; 256]) -> Name {
    let mut p = Peeker::new(who);
    for (k, slot) in buf.iter_mut().enumerate() {
        let Some(b) = la.checked_add(k as u64).and_then(|a| p.peek(a)) else {
            return Name::Fault(k);
        };
        if b == 0 {
            return Name::Len(k);
        }
        *slot = b;
    }
    Name::Unterminated
}

fn lookup_model(la: u64, who: Who) -> u64 {
    let mut buf = [0u8; 256];
    match name_model(la, who, &mut buf) {
        Name::Len(n) => TABLE
            .iter()
            .position(|(name, _, _)| *name == &buf[..n])
            .map_or(0, |i| i as u64 + 1),
        _ => 0,
    }
}

fn fits_u(v: u64, bits: u32) -> bool {
    v >> bits == 0
}

fn fits_i(v: u64, bits: u32) -> bool {
    let s = v as i64;
    let half = 1i64 << (bits - 1);
    (-half..half).contains(&s)
}

/// What `vmmcall_describe(n, buf, len)` answers for `who`, and whether it
/// writes the name and its NUL at `buf` (on an error nothing is written).
/// At CPL 1 to 3 a handler that is not `user` answers -EPERM, as calling it
/// from there does.
fn describe_expect(n: u64, buf: u64, len: u64, who: Who) -> (u64, bool) {
    if n == 0 {
        return (K, false);
    }
    let Some(&(name, _, user)) = usize::try_from(n - 1).ok().and_then(|i| TABLE.get(i)) else {
        return (err(ENOSYS), false);
    };
    if who.cpl != 0 && !user {
        return (err(EPERM), false);
    }
    let flags = name.len() as u64 | if user { DESCRIBE_USER } else { 0 };
    let need = name.len() as u64 + 1;
    if len == 0 {
        (flags, false)
    } else if len < need {
        (err(ENOSPC), false)
    } else if !access_ok(buf, need, true, who) {
        (err(EFAULT), false)
    } else {
        (flags, true)
    }
}

/// The RAX the ABI promises for function `n` with `a` for `who`.
fn expect(n: u64, a: [u64; 5], who: Who) -> u64 {
    if n == 0 {
        return lookup_model(a[0], who);
    }
    if n == DESCRIBE {
        return describe_expect(a[0], a[1], a[2], who).0;
    }
    if n == LOOKUP_TYPED {
        // Every handler of this VMM is a plain #[vmmcall] one, declared
        // without a signature: a name that exists answers -EPROTO whatever
        // the digest in RCX, except a kernel-only one asked for from
        // CPL > 0, which answers its number as function 0 does; anything
        // function 0 answers 0 for, 0.
        return match lookup_model(a[0], who) {
            0 => 0,
            n if who.cpl != 0 && handler(n).is_some_and(|(_, user)| !user) => n,
            _ => err(EPROTO),
        };
    }
    let Some((h, user)) = handler(n) else {
        return err(ENOSYS);
    };
    if who.cpl != 0 && !user {
        return err(EPERM);
    }
    let inval = err(EINVAL);
    match h {
        H::EchoU8 => {
            if fits_u(a[0], 8) {
                a[0]
            } else {
                inval
            }
        }
        H::Exit => {
            if fits_u(a[0], 32) {
                0
            } else {
                inval
            }
        }
        H::Flag => match a[0] {
            0 => 1,
            1 => 0,
            _ => inval,
        },
        H::KAdd => {
            if !fits_i(a[0], 32) || !fits_i(a[1], 32) {
                return inval;
            }
            let s = (a[0] as i64) + (a[1] as i64);
            if s < 0 {
                err(ERANGE)
            } else {
                s as u64
            }
        }
        H::KEcho64 => {
            if a[0] >= err(4095) {
                err(EOVERFLOW)
            } else {
                a[0]
            }
        }
        H::Long => 255,
        H::Mix => {
            if !(fits_u(a[0], 8)
                && fits_i(a[1], 16)
                && a[2] <= 1
                && fits_u(a[3], 32)
                && fits_i(a[4], 8))
            {
                return inval;
            }
            a[0] ^ ((a[1] & 0xffff) << 8) ^ (a[2] << 24) ^ ((a[4] & 0xff) << 25) ^ (a[3] << 31)
        }
        H::NameLen => {
            let mut buf = [0u8; 256];
            match name_model(a[0], who, &mut buf) {
                Name::Len(n) => n as u64,
                Name::Fault(_) => err(EFAULT),
                Name::Unterminated => inval,
            }
        }
        H::Sum => {
            if !fits_u(a[1], 32) {
                return inval;
            }
            if a[1] > 65536 {
                return err(ERANGE);
            }
            if !access_ok(a[0], a[1], false, who) {
                return err(EFAULT);
            }
            if a[1] == 0 {
                return 0;
            }
            pieces(a[0], a[1])
                .filter_map(|(p, n)| Some(ram_bytes(ram_gpa(p)?, n)))
                .flat_map(|b| b.iter())
                .map(|&b| u64::from(b))
                .sum()
        }
        H::Fill => {
            if !fits_u(a[2], 8) {
                return inval;
            }
            if a[1] > 4096 {
                return err(ERANGE);
            }
            if fill_model(a[0], a[1], who) {
                a[1]
            } else {
                err(EFAULT)
            }
        }
        H::Whoami => u64::from(who.cpl),
        H::VcpuCount => smp::vcpus(),
        H::VcpuId => who.vcpu,
        // Every vCPU is running (or started) by the time any storm runs:
        // a real one is busy, never started again.
        H::VcpuUp => {
            if a[0] >= smp::vcpus() || !canonical(a[1]) || !canonical(a[2]) {
                inval
            } else {
                err(EBUSY)
            }
        }
    }
}

// ------------------------------------------------------------ the classes

/// The classes of calls the storm promises to reach (module docs); every
/// one must get calls.
const CLASSES: [&str; 43] = [
    // Function numbers.
    "number 0",
    "a handler's number",
    "the last number",
    "just past the last",
    "u64::MAX",
    "another unknown number",
    // Answers.
    "a result",
    "a name found",
    "a name not found",
    "-ENOSYS",
    "-EPERM",
    "-EINVAL",
    "-EFAULT",
    "-ERANGE",
    "-EOVERFLOW",
    // Arguments that do not fit their parameter.
    "u8 overflow",
    "i8 overflow",
    "i16 overflow",
    "i32 overflow",
    "u32 overflow",
    "bool overflow",
    // Buffers (sum, fill): the first piece that fails, or none.
    "buffer in RAM",
    "buffer over a page boundary",
    "buffer not present",
    "buffer not canonical",
    "buffer supervisor-only, from CPL 3",
    "buffer read-only, refused",
    "buffer read-only, written with CR0.WP=0",
    "buffer outside RAM (MMIO, past RAM)",
    "buffer wraps the address space",
    "fill over 4 KiB",
    // Names (function 0, name_len).
    "name of 255 bytes",
    "name of 256 bytes",
    "name unterminated",
    "name into an unreadable page",
    // Instructions and privilege.
    "native instruction",
    "other vendor's instruction",
    "CPL 0",
    "CPL 1",
    "CPL 2",
    "CPL 3",
    "CR0.WP=1",
    "CR0.WP=0",
];

/// The index of a class by name (a compile-time lookup, so a typo fails
/// the build).
const fn class(name: &str) -> usize {
    let mut i = 0;
    while i < CLASSES.len() {
        if str_eq(CLASSES[i], name) {
            return i;
        }
        i += 1;
    }
    panic!("no such class")
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The classes of one call, from its inputs and the model's answer.
fn classes(n: u64, a: [u64; 5], who: Who, want: u64, mut hit: impl FnMut(usize)) {
    hit(match n {
        0 => const { class("number 0") },
        K => const { class("the last number") },
        u64::MAX => const { class("u64::MAX") },
        n if (K + 1..=K + 4).contains(&n) => const { class("just past the last") },
        n if n > K => const { class("another unknown number") },
        _ => const { class("a handler's number") },
    });
    hit(match want {
        w if w == err(ENOSYS) => const { class("-ENOSYS") },
        w if w == err(EPERM) => const { class("-EPERM") },
        w if w == err(EINVAL) => const { class("-EINVAL") },
        w if w == err(EFAULT) => const { class("-EFAULT") },
        w if w == err(ERANGE) => const { class("-ERANGE") },
        w if w == err(EOVERFLOW) => const { class("-EOVERFLOW") },
        0 if n == 0 => const { class("a name not found") },
        _ if n == 0 => const { class("a name found") },
        _ => const { class("a result") },
    });
    hit(const { class("CPL 0") } + usize::from(who.cpl));
    hit(if who.wp {
        const { class("CR0.WP=1") }
    } else {
        const { class("CR0.WP=0") }
    });
    let names = n == 0 || matches!(handler(n), Some((H::NameLen, _)));
    if names && !(n != 0 && want == err(EPERM)) {
        let mut buf = [0u8; 256];
        let read = name_model(a[0], who, &mut buf);
        let at_256 = a[0].checked_add(256).and_then(|x| Peeker::new(who).peek(x));
        match read {
            Name::Len(255) => hit(const { class("name of 255 bytes") }),
            Name::Unterminated if at_256 == Some(0) => hit(const { class("name of 256 bytes") }),
            Name::Unterminated => hit(const { class("name unterminated") }),
            Name::Fault(k) if k > 0 => hit(const { class("name into an unreadable page") }),
            _ => {}
        }
    }
    let Some((h, user)) = handler(n) else {
        return;
    };
    if who.cpl != 0 && !user {
        return;
    }
    let types: &[(usize, &str)] = match h {
        H::EchoU8 => &[(0, "u8")],
        H::Exit => &[(0, "u32")],
        H::Flag => &[(0, "bool")],
        H::KAdd => &[(0, "i32"), (1, "i32")],
        H::Mix => &[(0, "u8"), (1, "i16"), (2, "bool"), (3, "u32"), (4, "i8")],
        H::Sum => &[(1, "u32")],
        H::Fill => &[(2, "u8")],
        _ => &[],
    };
    for &(i, t) in types {
        let (fits, c) = match t {
            "u8" => (fits_u(a[i], 8), const { class("u8 overflow") }),
            "u32" => (fits_u(a[i], 32), const { class("u32 overflow") }),
            "i8" => (fits_i(a[i], 8), const { class("i8 overflow") }),
            "i16" => (fits_i(a[i], 16), const { class("i16 overflow") }),
            "i32" => (fits_i(a[i], 32), const { class("i32 overflow") }),
            _ => (a[i] <= 1, const { class("bool overflow") }),
        };
        if !fits {
            hit(c);
        }
    }
    if want == err(EINVAL) {
        return;
    }
    let (write, len) = match h {
        H::Sum if a[1] <= 65536 => (false, a[1]),
        H::Fill if a[1] <= 4096 => (true, a[1]),
        H::Fill => {
            hit(const { class("fill over 4 KiB") });
            return;
        }
        _ => return,
    };
    if len == 0 {
        return;
    }
    match access(a[0], len, write, who) {
        Err(None) => hit(const { class("buffer wraps the address space") }),
        Err(Some(d)) => hit(match d {
            Deny::NonCanonical => const { class("buffer not canonical") },
            Deny::NotPresent => const { class("buffer not present") },
            Deny::Supervisor => const { class("buffer supervisor-only, from CPL 3") },
            Deny::ReadOnly => const { class("buffer read-only, refused") },
            _ => const { class("buffer outside RAM (MMIO, past RAM)") },
        }),
        Ok(()) => {
            hit(const { class("buffer in RAM") });
            if (a[0] % PAGE) + len > PAGE {
                hit(const { class("buffer over a page boundary") });
            }
            let read_only = piece_starts(a[0], len).any(|p| page(p).is_some_and(|p| !p.write));
            if write && read_only {
                hit(const { class("buffer read-only, written with CR0.WP=0") });
            }
        }
    }
}

// -------------------------------------------------------- memory checks

/// Bytes kept around a buffer on either side.
const MARGIN: u64 = 64;
/// Most bytes of guest RAM a snapshot keeps.
const SNAP_BYTES: usize = 8192;
/// Most runs (one linear page each) a snapshot keeps.
const SNAP_RUNS: usize = 16;

/// Guest RAM around a call's buffer, by guest-physical address, copied
/// through the alias before the call.
struct Snapshot {
    /// (guest-physical address, length, offset in `bytes`).
    runs: [(u64, usize, usize); SNAP_RUNS],
    count: usize,
    used: usize,
    bytes: [u8; SNAP_BYTES],
}

impl Snapshot {
    fn new() -> Self {
        Snapshot {
            runs: [(0, 0, 0); SNAP_RUNS],
            count: 0,
            used: 0,
            bytes: [0; SNAP_BYTES],
        }
    }

    /// Keep the guest RAM behind linear `[la, la + len)` (wrapping), page
    /// by page; linear pages that are not RAM have nothing to keep.
    fn keep(&mut self, la: u64, len: u64) {
        let mut a = la;
        let mut left = len;
        while left > 0 {
            let n = (PAGE - a % PAGE).min(left);
            if let Some(g) = ram_gpa(a) {
                let at = self.used;
                if self.count < SNAP_RUNS && at + n as usize <= SNAP_BYTES {
                    self.bytes[at..at + n as usize].copy_from_slice(ram_bytes(g, n));
                    self.runs[self.count] = (g, n as usize, at);
                    self.count += 1;
                    self.used += n as usize;
                }
            }
            a = a.wrapping_add(n);
            left -= n;
        }
    }

    /// The first byte that is not what it was, unless `written` says the
    /// call wrote it (then it must hold `byte`): (gpa, now, expected).
    fn changed(&self, written: &Written) -> Option<(u64, u8, u8)> {
        for &(g, n, at) in &self.runs[..self.count] {
            let now = ram_bytes(g, n as u64);
            let was = &self.bytes[at..at + n];
            if written.count == 0 && now == was {
                continue;
            }
            for (i, (&now, &was)) in now.iter().zip(was).enumerate() {
                let gpa = g + i as u64;
                let want = written.at(gpa).unwrap_or(was);
                if now != want {
                    return Some((gpa, now, want));
                }
            }
        }
        None
    }
}

/// What a call writes: `fill`'s byte, or a name and its NUL.
#[derive(Clone, Copy)]
enum Content {
    Byte(u8),
    Name(&'static [u8]),
}

/// The guest-physical runs a successful `fill` or `vmmcall_describe`
/// writes (at most 4 KiB: two pages), with what goes there.
struct Written {
    /// (guest-physical address, length, offset in the written range).
    runs: [(u64, u64, u64); 3],
    count: usize,
    content: Content,
}

impl Written {
    const NONE: Written = Written {
        runs: [(0, 0, 0); 3],
        count: 0,
        content: Content::Byte(0),
    };

    fn new(la: u64, len: u64, content: Content) -> Written {
        let mut w = Written {
            content,
            ..Written::NONE
        };
        if len == 0 {
            return w;
        }
        for (p, n) in pieces(la, len) {
            if let (Some(g), true) = (ram_gpa(p), w.count < 3) {
                w.runs[w.count] = (g, n, p - la);
                w.count += 1;
            }
        }
        w
    }

    /// The byte written at `gpa`, if the call writes there (the last
    /// write wins where two runs alias).
    fn at(&self, gpa: u64) -> Option<u8> {
        let (g, _, off) = self.runs[..self.count]
            .iter()
            .rev()
            .find(|&&(g, n, _)| (g..g + n).contains(&gpa))?;
        let k = off + (gpa - g);
        Some(match self.content {
            Content::Byte(b) => b,
            Content::Name(name) => name.get(k as usize).copied().unwrap_or(0),
        })
    }
}

/// The 2 MiB canary's pattern at byte offset `i` (8-byte words).
const fn canary_word(i: u64) -> u64 {
    0xCA7A_7100_0000_0000 ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn fill_canary() {
    for i in (0..2 * MIB).step_by(8) {
        // SAFETY: the canary is guest RAM, written through the alias.
        unsafe { core::ptr::write_volatile((ALIAS + CANARY + i) as *mut u64, canary_word(i)) };
    }
}

/// The first offset where the canary changed.
fn canary_changed() -> Option<u64> {
    (0..2 * MIB).step_by(8).find(|&i| {
        // SAFETY: as in fill_canary.
        unsafe { core::ptr::read_volatile((ALIAS + CANARY + i) as *const u64) != canary_word(i) }
    })
}

// ------------------------------------------------------------- the call

/// RAX, RCX, RDX, RBX, (RSP), RBP, RSI, RDI, R8..R15, RFLAGS, then the
/// addresses of the x87/SSE state to load before the call and of the
/// area to save it in after ([`Fx`]).
#[repr(C)]
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
struct Regs([u64; 19]);

const FX_IN: usize = 17;
const FX_OUT: usize = 18;

/// An FXSAVE area (Intel SDM Vol. 1 §10.5.1): x87, MXCSR, XMM0-15.
#[repr(C, align(16))]
#[derive(Clone, Copy)]
struct Fx([u8; 512]);

impl Fx {
    /// Random guest state: FCW with random precision and rounding (all
    /// exceptions masked; bit 6 reads as 1), FSW 0, every x87 register
    /// tagged valid with random bits, MXCSR with random flags, DAZ,
    /// rounding and FZ (exceptions masked), random XMM0-15.
    fn random(rng: &mut Rng) -> Fx {
        let mut a = [0u8; 512];
        let fcw = 0x007F | (rng.next() as u16 & 0x0F00);
        a[0..2].copy_from_slice(&fcw.to_le_bytes());
        a[4] = 0xFF;
        let mxcsr = 0x1F80 | (rng.next() as u32 & 0xE07F);
        a[24..28].copy_from_slice(&mxcsr.to_le_bytes());
        for chunk in a[32..416].chunks_mut(8) {
            chunk.copy_from_slice(&rng.next().to_le_bytes());
        }
        Fx(a)
    }

    /// The bytes FXSAVE must give back unchanged: FCW, FSW, FTW, MXCSR,
    /// the 80 significant bits of ST0-7, XMM0-15 (FOP/FIP/FDP are left
    /// out: AMD CPUs save them only with an x87 exception pending).
    fn same_state(&self, other: &Fx) -> bool {
        let (a, b) = (&self.0, &other.0);
        a[0..5] == b[0..5]
            && a[24..28] == b[24..28]
            && (0..8).all(|i| a[32 + 16 * i..42 + 16 * i] == b[32 + 16 * i..42 + 16 * i])
            && a[160..416] == b[160..416]
    }
}

const RFLAGS: usize = 16;
const NAMES: [&str; 17] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15", "rflags",
];
/// CF, PF, AF, ZF, SF, OF.
const ARITH_FLAGS: u64 = 0x8d5;

/// Execute one hypercall with every GPR (but RSP) and the arithmetic
/// flags loaded from `r` and the x87/SSE state from `r[FX_IN]`, and store
/// them all back into `r` and `r[FX_OUT]` afterwards. The block ends with
/// the default x87/SSE state for the compiled code.
fn hcall(amd: bool, r: &mut Regs) {
    let p = r as *mut Regs;
    macro_rules! body {
        ($insn:literal) => {
            // SAFETY: the VMM is present (checked in main). The block saves
            // RBX/RBP, skips the red zone, loads every register from `*p`,
            // runs the hypercall, stores every register back to `*p` and
            // restores RBX, RBP and RSP; every other GPR is declared
            // clobbered. The loaded RFLAGS differ from the current ones
            // only in arithmetic flags (DF stays 0). The VMM writes only the
            // memory named by arguments, which the storm chose to be
            // scratch or unmapped.
            unsafe {
                core::arch::asm!(
                    "sub rsp, 128",
                    "push rbx",
                    "push rbp",
                    "push rax",
                    "mov rcx, [rax + 136]",
                    "fxrstor64 [rcx]",
                    "push qword ptr [rax + 128]",
                    "popfq",
                    "mov rcx, [rax + 8]",
                    "mov rdx, [rax + 16]",
                    "mov rbx, [rax + 24]",
                    "mov rbp, [rax + 40]",
                    "mov rsi, [rax + 48]",
                    "mov rdi, [rax + 56]",
                    "mov r8, [rax + 64]",
                    "mov r9, [rax + 72]",
                    "mov r10, [rax + 80]",
                    "mov r11, [rax + 88]",
                    "mov r12, [rax + 96]",
                    "mov r13, [rax + 104]",
                    "mov r14, [rax + 112]",
                    "mov r15, [rax + 120]",
                    "mov rax, [rax]",
                    $insn,
                    "pushfq",
                    "push rax",
                    "mov rax, [rsp + 16]",
                    "mov [rax + 8], rcx",
                    "mov [rax + 16], rdx",
                    "mov [rax + 24], rbx",
                    "mov [rax + 40], rbp",
                    "mov [rax + 48], rsi",
                    "mov [rax + 56], rdi",
                    "mov [rax + 64], r8",
                    "mov [rax + 72], r9",
                    "mov [rax + 80], r10",
                    "mov [rax + 88], r11",
                    "mov [rax + 96], r12",
                    "mov [rax + 104], r13",
                    "mov [rax + 112], r14",
                    "mov [rax + 120], r15",
                    "pop rcx",
                    "mov [rax], rcx",
                    "pop rcx",
                    "mov [rax + 128], rcx",
                    "mov rcx, [rax + 144]",
                    "fxsave64 [rcx]",
                    "fninit",
                    "push 0x1F80",
                    "ldmxcsr [rsp]",
                    "add rsp, 8",
                    "add rsp, 8",
                    "pop rbp",
                    "pop rbx",
                    "add rsp, 128",
                    inout("rax") p => _,
                    out("rcx") _, out("rdx") _, out("rsi") _, out("rdi") _,
                    out("r8") _, out("r9") _, out("r10") _, out("r11") _,
                    out("r12") _, out("r13") _, out("r14") _, out("r15") _,
                )
            }
        };
    }
    if amd {
        body!("vmmcall")
    } else {
        body!("vmcall")
    }
}

// ------------------------------------------------------------ the storm

struct Rng(u64);

impl Rng {
    /// splitmix64.
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// Values at and around the edges of every parameter type.
const EDGES: [u64; 30] = [
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0x8000,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    (-1i64) as u64,
    (-2i64) as u64,
    (-128i64) as u64,
    (-129i64) as u64,
    (-32768i64) as u64,
    (-32769i64) as u64,
    (-0x8000_0000i64) as u64,
    (-0x8000_0001i64) as u64,
    (-4095i64) as u64,
    (-4096i64) as u64,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    0xff,
    0xffff_ff80,
    0xffff_8000,
];

fn value(rng: &mut Rng) -> u64 {
    match rng.below(6) {
        0 | 1 => rng.pick(&EDGES),
        2 => rng.below(300),
        3 => {
            // A narrow value, sign-extended or not.
            let bits = rng.pick(&[8u32, 16, 32]);
            let v = rng.next() & ((1u64 << bits) - 1);
            if rng.below(2) == 0 {
                ((v << (64 - bits)) as i64 >> (64 - bits)) as u64
            } else {
                v
            }
        }
        _ => rng.next(),
    }
}

fn offset(rng: &mut Rng) -> u64 {
    match rng.below(5) {
        0 => rng.pick(&[0u64, 1, 2, 7, 8, 255, 256, 2048, 4095 - 255, 4096 - 256]),
        1 | 2 => PAGE - 1 - rng.below(24),
        _ => rng.below(PAGE),
    }
}

/// An address from one of the regions of the module docs. With `write`,
/// only places the storm may scribble on (never the image, its stack or
/// the tables below 4 MiB, nor the alias).
fn address(rng: &mut Rng, write: bool) -> u64 {
    loop {
        let a = match rng.below(15) {
            0..=3 => WIN + rng.below(512) * PAGE + offset(rng),
            4 => KPAGE + rng.below(2 * MIB),
            5 => EDGE - 1 - rng.below(300),
            6 => EDGE + rng.below(2 * MIB),
            7 => match rng.below(3) {
                0 => GPA_APIC + rng.below(PAGE),
                1 => MMIO_1G - 1 - rng.below(300),
                _ => MMIO_1G + rng.below(1 << 30),
            },
            8 => TOP + rng.below(2 * MIB),
            9 => u64::MAX - rng.below(300),
            10 => {
                let near = rng.below(300);
                let far = rng.next() | (1 << 50);
                rng.pick(&[
                    0x7fff_ffff_ffffu64 - near,
                    0x8000_0000_0000 + near,
                    0xffff_7fff_ffff_ffff - near,
                    0xffff_8000_0000_0000 + near,
                    far,
                ])
            }
            11 => rng.pick(&[0x400_0000u64, 0x1_0000_0000, 0x7f_0000_0000]) + rng.below(MIB),
            12 => rng.next(),
            // The VMM's initial tables and GDT: static memory.
            13 => rng.below(2 * MIB),
            _ => SCRATCH + rng.below(2 * MIB),
        };
        if !write || safe_to_write(a) {
            return a;
        }
    }
}

/// Whether a write of up to 4 KiB at `a` stays out of the guest's own
/// memory (image, stacks, tables: everything below 4 MiB, and the guard
/// byte before 4 MiB) and off the alias of all guest RAM, whatever the
/// mapping.
fn safe_to_write(a: u64) -> bool {
    let off_alias = !(a.wrapping_add(PAGE + 1) > ALIAS && a < ALIAS + RAM);
    off_alias && ((a > 4 * MIB && a.wrapping_add(PAGE + 1) > a) || a > 0xffff_0000_0000_0000)
}

fn length(rng: &mut Rng, addr: u64, max: u64) -> u64 {
    match rng.below(10) {
        0..=4 => rng.below(600),
        5 => rng.pick(&[
            0u64, 1, 255, 256, 511, 512, 513, 4095, 4096, 4097, 65535, 65536, 65537,
        ]),
        6 => rng.below(max + 2),
        7 => (u64::MAX - addr).wrapping_add(rng.below(3)),
        8 => rng.pick(&[
            0xffff_ffffu64,
            0x1_0000_0000,
            u64::MAX,
            u64::MAX - 1,
            1 << 63,
        ]),
        _ => rng.next(),
    }
}

struct State {
    rng: Rng,
    calls: u64,
    unexpected: u64,
    /// Calls after which the x87/SSE state was not what went in.
    vector_changed: u64,
    /// The x87/SSE patterns' own generator, so the storm's sequence (and
    /// its call counts) stays what it was without them.
    fx_rng: Rng,
    numbers: [u64; 16],
    native_amd: bool,
    /// The caller the storm is now.
    who: Who,
    /// Calls per class ([`CLASSES`]).
    counts: [u64; CLASSES.len()],
    /// Memory around the current call's buffer.
    snap: Snapshot,
    /// Calls made from each CPL.
    per_cpl: [u64; 4],
    /// `vmmcall_describe`'s own generator and count: those calls leave the
    /// storm's sequence and counts as they are.
    describe_rng: Rng,
    typed_rng: Rng,
    describe_calls: u64,
}

static mut STATE: Option<State> = None;
static NEXT_PHASE: AtomicU64 = AtomicU64::new(0);

impl State {
    /// A fresh storm from `seed` at CPL 0 with CR0.WP set.
    fn new(seed: u64, native_amd: bool) -> State {
        State {
            rng: Rng(seed),
            calls: 0,
            unexpected: 0,
            vector_changed: 0,
            fx_rng: Rng(!seed),
            numbers: [0; 16],
            native_amd,
            who: Who {
                cpl: 0,
                wp: true,
                vcpu: 0,
            },
            counts: [0; CLASSES.len()],
            snap: Snapshot::new(),
            per_cpl: [0; 4],
            describe_rng: Rng(seed ^ 0xDE5C_81BE),
            typed_rng: Rng(seed ^ 0x7E9E_D100),
            describe_calls: 0,
        }
    }

    /// The numbers follow the name order: look each name up, from a copy
    /// at `at` (scratch RAM).
    fn numbers_from_lookup(&mut self, at: u64) {
        for (i, (name, _, _)) in TABLE.iter().enumerate() {
            poke(at, name);
            poke(at + name.len() as u64, &[0]);
            let n = self.call(0, [at, 0, 0, 0, 0]);
            if n != i as u64 + 1 {
                self.report(
                    "number",
                    format_args!(
                        "{} is {n}, expected {}",
                        core::str::from_utf8(name).unwrap_or("?"),
                        i + 1
                    ),
                );
            }
            self.numbers[i] = n;
        }
    }

    fn number(&self, h: H) -> u64 {
        self.numbers[TABLE.iter().position(|t| t.1 == h).unwrap_or(0)]
    }

    fn report(&mut self, what: &str, detail: core::fmt::Arguments<'_>) {
        self.unexpected += 1;
        if self.unexpected <= 12 {
            println!(
                "hostile: UNEXPECTED after {} calls: {what}: {detail}",
                self.calls
            );
        }
    }

    /// One hypercall with random registers; checks that only RAX changed
    /// and returns RAX.
    fn call(&mut self, n: u64, args: [u64; 5]) -> u64 {
        let mut r = Regs::default();
        for v in r.0.iter_mut() {
            *v = self.rng.next();
        }
        r.0[0] = n;
        r.0[3] = args[0];
        r.0[1] = args[1];
        r.0[2] = args[2];
        r.0[6] = args[3];
        r.0[7] = args[4];
        r.0[4] = 0;
        let flags: u64;
        // SAFETY: reading RFLAGS.
        unsafe { core::arch::asm!("pushfq", "pop {}", out(reg) flags, options(preserves_flags)) };
        r.0[RFLAGS] = (flags & !ARITH_FLAGS) | (self.rng.next() & ARITH_FLAGS);
        let fx_in = Fx::random(&mut self.fx_rng);
        let mut fx_out = Fx([0; 512]);
        r.0[FX_IN] = &fx_in as *const Fx as u64;
        r.0[FX_OUT] = &mut fx_out as *mut Fx as u64;
        let before = r;
        let amd = if self.rng.below(8) == 0 {
            !self.native_amd
        } else {
            self.native_amd
        };
        self.counts[if amd == self.native_amd {
            const { class("native instruction") }
        } else {
            const { class("other vendor's instruction") }
        }] += 1;
        hcall(amd, &mut r);
        self.calls += 1;
        self.per_cpl[usize::from(self.who.cpl & 3)] += 1;
        if !fx_out.same_state(&fx_in) {
            self.vector_changed += 1;
            self.report(
                "x87/SSE state changed",
                format_args!(
                    "function {n:#x}: MXCSR {:#x?} -> {:#x?}, FCW {:#x?} -> {:#x?}",
                    &fx_in.0[24..28],
                    &fx_out.0[24..28],
                    &fx_in.0[0..2],
                    &fx_out.0[0..2]
                ),
            );
        }
        for (i, name) in NAMES.iter().enumerate().skip(1) {
            if i != 4 && r.0[i] != before.0[i] {
                self.report(
                    "register changed",
                    format_args!(
                        "{name} {:#x} -> {:#x} (function {n:#x}, {})",
                        before.0[i],
                        r.0[i],
                        if amd { "vmmcall" } else { "vmcall" }
                    ),
                );
            }
        }
        r.0[0]
    }

    /// One checked call: RAX must be the model's answer, the classes are
    /// counted, and the memory the call names (with margins) must hold
    /// what it held, except what a successful `fill` writes.
    fn check(&mut self, n: u64, args: [u64; 5]) -> u64 {
        let who = self.who;
        let want = expect(n, args, who);
        // The storm's classes (vmmcall_describe and vmmcall_lookup_typed
        // have their own lines).
        if n != DESCRIBE && n != LOOKUP_TYPED {
            let counts = &mut self.counts;
            classes(n, args, who, want, |c| counts[c] += 1);
        }
        // The buffer the call names: (address, length, bytes kept of it).
        let watch = match (n, handler(n)) {
            (DESCRIBE, _) => Some((args[1], args[2], 512)),
            (0 | LOOKUP_TYPED, _) | (_, Some((H::NameLen, _))) => Some((args[0], 257, 257)),
            (_, Some((H::Sum, _))) => Some((args[0], args[1], 512)),
            (_, Some((H::Fill, _))) => Some((args[0], args[1], 4096)),
            _ => None,
        };
        self.snap.count = 0;
        self.snap.used = 0;
        if let Some((la, len, keep)) = watch {
            self.snap
                .keep(la.wrapping_sub(MARGIN), len.min(keep) + 2 * MARGIN);
            if len > keep {
                if let Some(end) = la.checked_add(len) {
                    self.snap.keep(end.wrapping_sub(MARGIN), 2 * MARGIN);
                }
            }
        }
        let got = self.call(n, args);
        if got != want {
            self.report(
                "wrong RAX",
                format_args!(
                    "function {n:#x} args {:x?} at CPL {}, CR0.WP={}: got {got:#x}, expected {want:#x}",
                    args,
                    who.cpl,
                    u8::from(who.wp)
                ),
            );
        }
        let written = match handler(n) {
            Some((H::Fill, _)) if want == args[1] && want <= 4096 => {
                Written::new(args[0], args[1], Content::Byte(args[2] as u8))
            }
            _ if n == DESCRIBE => match describe_expect(args[0], args[1], args[2], who) {
                (_, true) => {
                    let name = TABLE[args[0] as usize - 1].0;
                    Written::new(args[1], name.len() as u64 + 1, Content::Name(name))
                }
                _ => Written::NONE,
            },
            _ => Written::NONE,
        };
        if let Some((gpa, now, was)) = self.snap.changed(&written) {
            self.report(
                "memory",
                format_args!(
                    "after function {n:#x} args {:x?} at CPL {}: guest-physical {gpa:#x} is {now:#x}, expected {was:#x}",
                    args, who.cpl
                ),
            );
        }
        got
    }

    /// Random function number, random arguments.
    fn random_call(&mut self) {
        let n = match self.rng.below(8) {
            0 => 0,
            1 => K + 1 + self.rng.below(4),
            2 => self
                .rng
                .pick(&[u64::MAX, u64::MAX - K, 1 << 63, K + 1, 0x1_0000_0001]),
            3 => self.rng.next(),
            _ => 1 + self.rng.below(K),
        };
        let mut a = [0u64; 5];
        for v in a.iter_mut() {
            *v = value(&mut self.rng);
        }
        if n == 0 && self.rng.below(2) == 0 {
            a[0] = address(&mut self.rng, false);
        }
        self.sanitize(n, &mut a);
        self.check(n, a);
    }

    /// Keep `exit` from succeeding and `fill` away from the guest's own
    /// memory.
    fn sanitize(&mut self, n: u64, a: &mut [u64; 5]) {
        if n == self.number(H::Exit) {
            a[0] |= 1 << 32 | self.rng.next() << 33;
        }
        if n == self.number(H::Fill) && !safe_to_write(a[0]) {
            a[0] = address(&mut self.rng, true);
        }
    }

    /// A handler with edge-case arguments.
    fn edge_call(&mut self) {
        let n = 1 + self.rng.below(K);
        let mut a = [0u64; 5];
        for v in a.iter_mut() {
            *v = if self.rng.below(2) == 0 {
                self.rng.pick(&EDGES)
            } else {
                self.rng.below(256)
            };
        }
        self.sanitize(n, &mut a);
        self.check(n, a);
    }

    fn sum_call(&mut self) {
        let addr = address(&mut self.rng, false);
        let len = length(&mut self.rng, addr, 65536);
        let n = self.number(H::Sum);
        let junk = self.rng.next();
        self.check(n, [addr, len, junk, 0, 0]);
    }

    /// `fill` at a scratch address (check() compares memory).
    fn fill_call(&mut self) {
        let addr = address(&mut self.rng, true);
        let len = length(&mut self.rng, addr, 4096);
        let byte = if self.rng.below(10) == 0 {
            value(&mut self.rng)
        } else {
            self.rng.below(256)
        };
        let n = self.number(H::Fill);
        self.check(n, [addr, len, byte, 0, 0]);
    }

    /// A name placed at a boundary: get_vmmcall_number and name_len.
    fn name_call(&mut self) {
        let at = self.place_name();
        let f0 = 0;
        let nl = self.number(H::NameLen);
        let junk = self.rng.next();
        self.check(f0, [at, junk, 0, 0, 0]);
        self.check(nl, [at, 0, 0, 0, 0]);
    }

    /// A hostile name (a real one, 255 or 256 bytes, unterminated over
    /// 4 KiB, the reserved one, empty, random bytes) written where it ends
    /// near a page boundary or anywhere; returns its address.
    fn place_name(&mut self) -> u64 {
        let mut text = [b'A'; 4200];
        let len = match self.rng.below(8) {
            0 | 1 => {
                let (name, _, _) = self.rng.pick(&TABLE);
                text[..name.len()].copy_from_slice(name);
                text[name.len()] = 0;
                name.len() + 1
            }
            2 => {
                // 255 bytes, then a NUL: the longest name; or 256 bytes
                // then a NUL: too long.
                let extra = self.rng.below(2) as usize;
                text[..255].copy_from_slice(LONG);
                text[255] = b'x';
                text[255 + extra] = 0;
                256 + extra
            }
            3 => {
                // Unterminated over 4 KiB.
                4200
            }
            4 => {
                text[..18].copy_from_slice(b"get_vmmcall_number");
                text[18] = 0;
                19
            }
            5 => {
                text[0] = 0;
                1
            }
            _ => {
                let n = 1 + self.rng.below(300) as usize;
                for b in text.iter_mut().take(n) {
                    *b = self.rng.next() as u8;
                }
                n
            }
        };
        // Place it so that its end lands near a boundary, or anywhere.
        let at = if self.rng.below(3) == 0 {
            address(&mut self.rng, true)
        } else {
            let boundary = match self.rng.below(5) {
                0..=2 => WIN + self.rng.below(513) * PAGE,
                3 => EDGE,
                _ => 0u64.wrapping_sub(self.rng.below(2) * PAGE),
            };
            boundary
                .wrapping_sub(len as u64)
                .wrapping_add(self.rng.below(3))
                .wrapping_sub(1)
        };
        if safe_to_write(at) {
            poke(at, &text[..len]);
        }
        at
    }

    /// `vmmcall_lookup_typed` (function `LOOKUP_TYPED`): hostile names as
    /// `name_call` makes them, with a random digest, 0 or all ones. No
    /// handler of this VMM is declared, so a name found is -EPROTO.
    fn typed_lookup_calls(&mut self, calls: u64) -> u64 {
        let unexpected = self.unexpected;
        let (storm_calls, per_cpl) = (self.calls, self.per_cpl);
        core::mem::swap(&mut self.rng, &mut self.typed_rng);
        for _ in 0..calls {
            let at = self.place_name();
            let digest = match self.rng.below(4) {
                0 => 0,
                1 => u64::MAX,
                _ => self.rng.next(),
            };
            self.check(LOOKUP_TYPED, [at, digest, 0, 0, 0]);
        }
        core::mem::swap(&mut self.rng, &mut self.typed_rng);
        (self.calls, self.per_cpl) = (storm_calls, per_cpl);
        self.unexpected - unexpected
    }

    /// `vmmcall_describe` (function `DESCRIBE`): every handler number and
    /// some that are none, buffers of every size around the name's, at
    /// scratch and hostile addresses. check() compares RAX and memory.
    fn describe_calls(&mut self, calls: u64) -> u64 {
        let unexpected = self.unexpected;
        let (storm_calls, per_cpl) = (self.calls, self.per_cpl);
        core::mem::swap(&mut self.rng, &mut self.describe_rng);
        for _ in 0..calls {
            let n = match self.rng.below(8) {
                0 => 0,
                1 => K + 1 + self.rng.below(3),
                2 => self.rng.next(),
                _ => 1 + self.rng.below(K),
            };
            let need = usize::try_from(n.wrapping_sub(1))
                .ok()
                .and_then(|i| TABLE.get(i))
                .map_or(8, |t| t.0.len() as u64 + 1);
            let len = match self.rng.below(6) {
                0 => 0,
                1 => need - 1,
                2 => need,
                3 => need + self.rng.below(300),
                4 => self.rng.pick(&[1, 256, 4096, u64::MAX]),
                _ => self.rng.next(),
            };
            let buf = if self.rng.below(2) == 0 {
                SCRATCH + self.rng.below(2 * MIB - 4096) + PAGE - 1 - self.rng.below(300)
            } else {
                address(&mut self.rng, true)
            };
            self.check(DESCRIBE, [n, buf, len, 0, 0]);
        }
        core::mem::swap(&mut self.rng, &mut self.describe_rng);
        (self.calls, self.per_cpl) = (storm_calls, per_cpl);
        self.describe_calls += calls;
        self.unexpected - unexpected
    }

    fn storm(&mut self, calls: u64) {
        let end = self.calls + calls;
        while self.calls < end {
            match self.rng.below(16) {
                0..=3 => self.random_call(),
                4..=6 => self.sum_call(),
                7..=8 => self.fill_call(),
                9..=11 => self.name_call(),
                _ => self.edge_call(),
            }
        }
    }

    /// Run every phase of this ring (CR0.WP set through the gate), and
    /// report the ring's totals.
    fn ring(&mut self, cpl: u8) {
        let start = self.calls;
        while let Some(&(c, wp, calls)) = PHASES.get(NEXT_PHASE.load(Ordering::SeqCst) as usize) {
            if c != cpl {
                break;
            }
            NEXT_PHASE.fetch_add(1, Ordering::SeqCst);
            let cr0 = set_wp(wp);
            if (cr0 >> 16) & 1 != u64::from(wp) {
                self.report("CR0.WP", format_args!("the gate left CR0 at {cr0:#x}"));
            }
            self.who = Who { cpl, wp, vcpu: 0 };
            if cpl != 0 && self.calls == start {
                let w = self.call(self.number(H::Whoami), [0; 5]);
                if w != u64::from(cpl) {
                    self.report("ring", format_args!("whoami is {w} at CPL {cpl}"));
                }
            }
            let (phase_start, t0) = (self.calls, rdtsc());
            // On N vCPUs vCPU 0 makes 1/N of the calls (smp.rs).
            self.storm(calls / smp::vcpus());
            if let Some(at) = canary_changed() {
                self.report(
                    "canary",
                    format_args!("guest-physical {:#x} changed", CANARY + at),
                );
            }
            println!(
                "hostile: CPL {cpl}, CR0.WP={}: {} calls, {} unexpected ({} TSC ticks)",
                u8::from(wp),
                self.calls - phase_start,
                self.unexpected,
                rdtsc().wrapping_sub(t0)
            );
        }
        // CPL 0 counts the set-up's lookups too, as it always has.
        let calls = if cpl == 0 {
            self.calls
        } else {
            self.calls - start
        };
        println!(
            "hostile: CPL {cpl}: {calls} calls, {} unexpected",
            self.unexpected
        );
        if cpl == 0 || cpl == 3 {
            let wrong = self.describe_calls(1000);
            println!("hostile: vmmcall_describe at CPL {cpl}: 1000 calls, {wrong} unexpected");
            let wrong = self.typed_lookup_calls(1000);
            println!("hostile: vmmcall_lookup_typed at CPL {cpl}: 1000 calls, {wrong} unexpected");
        }
    }

    /// Print the class counts; a class without calls is unexpected.
    fn report_classes(&mut self) {
        let mut line = [0u8; 160];
        let mut len = 0usize;
        let mut missing = 0;
        for (i, name) in CLASSES.iter().enumerate() {
            let mut item = [0u8; 80];
            let n = fmt_into(&mut item, format_args!("{name} {}", self.counts[i]));
            if len + n + 2 > 100 {
                println!(
                    "hostile: classes: {}",
                    core::str::from_utf8(&line[..len]).unwrap_or("?")
                );
                len = 0;
            }
            if len > 0 {
                line[len..len + 2].copy_from_slice(b", ");
                len += 2;
            }
            line[len..len + n].copy_from_slice(&item[..n]);
            len += n;
            if self.counts[i] == 0 {
                missing += 1;
            }
        }
        if len > 0 {
            println!(
                "hostile: classes: {}",
                core::str::from_utf8(&line[..len]).unwrap_or("?")
            );
        }
        for (i, name) in CLASSES.iter().enumerate() {
            if self.counts[i] == 0 {
                self.report("class", format_args!("no call reached `{name}`"));
            }
        }
        println!(
            "hostile: {} of {} classes reached",
            CLASSES.len() - missing,
            CLASSES.len()
        );
    }
}

/// Format into `buf`, truncating; returns the length.
fn fmt_into(buf: &mut [u8], args: core::fmt::Arguments<'_>) -> usize {
    struct W<'a>(&'a mut [u8], usize);
    impl core::fmt::Write for W<'_> {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            for &b in s.as_bytes() {
                if self.1 < self.0.len() {
                    self.0[self.1] = b;
                    self.1 += 1;
                }
            }
            Ok(())
        }
    }
    let mut w = W(buf, 0);
    let _ = core::fmt::write(&mut w, args);
    w.1
}

fn main() -> Result<(), guest_sdk::Error> {
    let vmm = guest_sdk::detect().ok_or(guest_sdk::Error::NotPresent)?;
    let total: u64 = PHASES.iter().map(|p| p.2).sum();
    // SAFETY: CPL 0, once, with the VMM's initial tables; then the rings.
    unsafe {
        build_tables();
        install_rings();
    }
    // On several vCPUs the others start their storms now (smp.rs).
    let vcpus = smp::start(vmm.instruction == Instruction::Vmmcall);
    fill_canary();
    let mut st = State::new(SEED, vmm.instruction == Instruction::Vmmcall);
    st.numbers_from_lookup(SCRATCH + 8192);
    if !TABLE.windows(2).all(|w| w[0].0 < w[1].0) {
        st.report(
            "table",
            format_args!("the guest's table is not in name order"),
        );
    }
    println!(
        "hostile: seed {SEED:#x}, {} calls, {} handlers, native instruction {:?}, {vcpus} vCPUs",
        total / vcpus,
        K,
        vmm.instruction
    );
    batch::storm(&mut st);
    st.ring(0);
    next_ring(st, 1)
}

/// Hand the state to ring `cpl` and drop there.
fn next_ring(st: State, cpl: u8) -> ! {
    // SAFETY: single-threaded; the next ring takes the state over.
    unsafe { *core::ptr::addr_of_mut!(STATE) = Some(st) };
    let entry: extern "C" fn() -> ! = match cpl {
        1 => ring1_main,
        2 => ring2_main,
        _ => ring3_main,
    };
    let stack = core::ptr::addr_of!(RING_STACKS) as u64 + u64::from(cpl) * 65536;
    // SAFETY: install_rings loaded the rings' selectors; the image (code,
    // data, stacks) lies in 2..16 MiB, which the tables map for every ring.
    unsafe { drop_to(cpl, entry, stack) }
}

fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The state the previous ring left.
fn take_state() -> State {
    // SAFETY: the previous ring stored the state before dropping here;
    // nothing else touches it.
    match unsafe { (*core::ptr::addr_of_mut!(STATE)).take() } {
        Some(st) => st,
        None => {
            println!("hostile: lost the state");
            guest_rt::exit(3)
        }
    }
}

extern "C" fn ring1_main() -> ! {
    let mut st = take_state();
    st.ring(1);
    next_ring(st, 2)
}

extern "C" fn ring2_main() -> ! {
    let mut st = take_state();
    st.ring(2);
    next_ring(st, 3)
}

extern "C" fn ring3_main() -> ! {
    let mut st = take_state();
    st.ring(3);
    batch::storm(&mut st);
    st.report_classes();
    println!(
        "hostile: vector state: {} exits, {} changed (x87, MXCSR, XMM0-15)",
        st.calls, st.vector_changed
    );
    println!(
        "hostile: calls per CPL: {} {} {} {} (and {} of vmmcall_describe)",
        st.per_cpl[0], st.per_cpl[1], st.per_cpl[2], st.per_cpl[3], st.describe_calls
    );
    println!("hostile: {} calls, {} unexpected", st.calls, st.unexpected);
    let others = smp::finish(st.calls, st.unexpected);
    guest_rt::exit(if st.unexpected == 0 && others == 0 {
        0
    } else {
        1
    })
}
