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
//! | `24 .. 26 MiB`                 | the window: 4 KiB pages, kind = index % 8      |
//! | `32 .. 34 MiB`                 | guest-physical 32 MiB: just past guest RAM     |
//! | `0xC000_0000 .. 4 GiB`         | a 1 GiB page of MMIO space (local APIC at 0xFEE0_0000) |
//! | `0xFFFF_FFFF_FFE0_0000 ..`     | the top 2 MiB: a user alias of the window's RAM |
//! | everything else                | not present, or not canonical                  |
//!
//! Window kinds: 0, 1, 6 user RAM; 2 user read-only RAM; 3 supervisor
//! RAM; 4 not present; 5 guest-physical 0xFEE0_0000 (MMIO); 7
//! guest-physical 1 TiB. The guest itself never touches 32 MiB and up, the
//! MMIO pages or 1 TiB: only the VMM is asked to (it must answer -EFAULT).
//!
//! The storm: half of the calls at CPL 0, half at CPL 3 (IRETQ with IOPL
//! 3); one call in eight uses the other vendor's instruction. Each call
//! loads every GPR, the arithmetic flags and the x87/SSE state (FXRSTOR of
//! random x87 registers, control word, MXCSR and XMM0-15) with random
//! values, and checks afterwards (FXSAVE) that only RAX changed. Calls mix random numbers (0, the
//! last, just past the last, u64::MAX, random), random and boundary
//! arguments (values that overflow u8/i8/i16/i32/u32/bool), buffers at
//! page boundaries, in unmapped, supervisor, read-only, MMIO and
//! non-canonical memory, lengths that wrap the address space, and names
//! that are 255/256 bytes long, unterminated over 4 KiB, or cross into an
//! unreadable page. The expected answer is computed here, from the ABI and
//! the page-table model above, never by asking the VMM.
//!
//! Count: 100,000 calls (and the 11 lookups of the set-up) on every
//! platform: about 10 s under QEMU TCG and 60 s under Bochs.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};
use guest_sdk::arch::{self, PTE_P, PTE_PS, PTE_RW, PTE_US};
use guest_sdk::{println, Instruction};

guest_sdk::entry!(main);

const SEED: u64 = 0x5EED_1DEA_F00D_CAFE;
const CALLS: u64 = 100_000;

const MIB: u64 = 1 << 20;
const PAGE: u64 = 4096;
const WIN: u64 = 24 * MIB;
const KPAGE: u64 = 16 * MIB;
const SCRATCH: u64 = 30 * MIB;
const EDGE: u64 = 32 * MIB;
const MMIO_1G: u64 = 0xC000_0000;
const TOP: u64 = 0xFFFF_FFFF_FFE0_0000;
const GPA_APIC: u64 = 0xFEE0_0000;
const GPA_1T: u64 = 1 << 40;

const EPERM: u64 = 1;
const EFAULT: u64 = 14;
const EINVAL: u64 = 22;
const ERANGE: u64 = 34;
const ENOSYS: u64 = 38;
const EOVERFLOW: u64 = 75;

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
    Whoami,
}

/// The VMM image's handlers in byte order of their names: number = index + 1.
const TABLE: [(&[u8], H, bool); 11] = [
    (b"echo_u8", H::EchoU8, true),
    (b"exit", H::Exit, true),
    (b"fill", H::Fill, true),
    (b"flag", H::Flag, true),
    (b"k_add", H::KAdd, false),
    (b"k_echo64", H::KEcho64, false),
    (LONG, H::Long, true),
    (b"mix", H::Mix, true),
    (b"name_len", H::NameLen, true),
    (b"sum", H::Sum, true),
    (b"whoami", H::Whoami, true),
];
const K: u64 = TABLE.len() as u64;

// ---------------------------------------------------------------- tables

#[repr(C, align(4096))]
struct Table([u64; 512]);
static mut PML4: Table = Table([0; 512]);
static mut PDPT0: Table = Table([0; 512]);
static mut PD0: Table = Table([0; 512]);
static mut PT_WIN: Table = Table([0; 512]);
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
        let pdpt_hi = &mut *core::ptr::addr_of_mut!(PDPT_HI);
        let pd_hi = &mut *core::ptr::addr_of_mut!(PD_HI);
        for (i, e) in pd0.0.iter_mut().enumerate().take(16) {
            let base = (i as u64) << 21;
            *e = base | PTE_P | PTE_RW | PTE_PS | if i == 0 || i == 8 { 0 } else { PTE_US };
        }
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
        pdpt0.0[0] = table_addr(core::ptr::addr_of!(PD0)) | u;
        pdpt0.0[3] = MMIO_1G | u | PTE_PS;
        pd_hi.0[511] = WIN | u | PTE_PS;
        pdpt_hi.0[511] = table_addr(core::ptr::addr_of!(PD_HI)) | u;
        pml4.0[0] = table_addr(core::ptr::addr_of!(PDPT0)) | u;
        pml4.0[511] = table_addr(core::ptr::addr_of!(PDPT_HI)) | u;
        arch::write_cr3(table_addr(core::ptr::addr_of!(PML4)));
    }
}

// ----------------------------------------------------------- the model

#[derive(Clone, Copy)]
struct Pg {
    user: bool,
    write: bool,
    ram: bool,
}

const fn canonical(a: u64) -> bool {
    let top = a >> 47;
    top == 0 || top == 0x1_ffff
}

/// What the tables say about the page of `la` (None: not present or not
/// canonical).
fn page(la: u64) -> Option<Pg> {
    if !canonical(la) {
        return None;
    }
    let rw_user = Pg {
        user: true,
        write: true,
        ram: true,
    };
    match la {
        0..0x20_0000 => Some(Pg {
            user: false,
            ..rw_user
        }),
        a if (KPAGE..KPAGE + 2 * MIB).contains(&a) => Some(Pg {
            user: false,
            ..rw_user
        }),
        a if (WIN..WIN + 2 * MIB).contains(&a) => match ((a - WIN) / PAGE) % 8 {
            2 => Some(Pg {
                write: false,
                ..rw_user
            }),
            3 => Some(Pg {
                user: false,
                ..rw_user
            }),
            4 => None,
            5 | 7 => Some(Pg {
                ram: false,
                ..rw_user
            }),
            _ => Some(rw_user),
        },
        a if a < EDGE => Some(rw_user),
        a if a < EDGE + 2 * MIB => Some(Pg {
            ram: false,
            ..rw_user
        }),
        a if (MMIO_1G..MMIO_1G + (1 << 30)).contains(&a) => Some(Pg {
            ram: false,
            ..rw_user
        }),
        a if a >= TOP => Some(rw_user),
        _ => None,
    }
}

/// Whether a single page allows the access (all the translation checks).
fn page_ok(la: u64, write: bool, cpl3: bool) -> Option<Pg> {
    let p = page(la)?;
    if (cpl3 && !p.user) || (write && !p.write) {
        return None;
    }
    Some(p)
}

/// Whether the VMM may read (or write) all of `[la, la + len)` for a
/// caller at CPL 0 or 3.
fn access_ok(la: u64, len: u64, write: bool, cpl3: bool) -> bool {
    if len == 0 {
        return true;
    }
    let Some(last) = la.checked_add(len - 1) else {
        return false;
    };
    let mut p = la & !(PAGE - 1);
    loop {
        match page_ok(p.max(la), write, cpl3) {
            Some(pg) if pg.ram => {}
            _ => return false,
        }
        if p >= last & !(PAGE - 1) {
            return true;
        }
        p += PAGE;
    }
}

/// How `fill` of `[la, la + len)` ends: `Ok` (all written) or `Err(n)`,
/// -EFAULT with the first `n` bytes written. Every piece is translated
/// before anything is written; a piece outside guest RAM fails only when
/// written (docs/ABI.md, vmmcall::paging).
fn fill_model(la: u64, len: u64, cpl3: bool) -> Result<(), u64> {
    if len == 0 {
        return Ok(());
    }
    let Some(last) = la.checked_add(len - 1) else {
        return Err(0);
    };
    let mut first_outside = None;
    let mut p = la & !(PAGE - 1);
    loop {
        let at = p.max(la);
        match page_ok(at, true, cpl3) {
            None => return Err(0),
            Some(pg) if !pg.ram && first_outside.is_none() => first_outside = Some(at - la),
            Some(_) => {}
        }
        if p >= last & !(PAGE - 1) {
            break;
        }
        p += PAGE;
    }
    match first_outside {
        None => Ok(()),
        Some(n) => Err(n),
    }
}

/// Reads the bytes the guest can read at its CPL, checking each page once.
struct Peeker {
    cpl3: bool,
    page: u64,
    ok: bool,
}

impl Peeker {
    fn new(cpl3: bool) -> Self {
        Peeker {
            cpl3,
            page: 1,
            ok: false,
        }
    }

    fn peek(&mut self, a: u64) -> Option<u8> {
        let page = a & !(PAGE - 1);
        if page != self.page {
            self.page = page;
            self.ok = access_ok(a, 1, false, self.cpl3);
        }
        if !self.ok {
            return None;
        }
        // SAFETY: the tables map `a`'s page to guest RAM readable at this
        // CPL.
        Some(unsafe { core::ptr::read_volatile(a as *const u8) })
    }
}

/// A linear address through which the guest can write the byte at `a`.
fn writable_alias(a: u64, cpl3: bool) -> Option<u64> {
    if (WIN..WIN + 2 * MIB).contains(&a) {
        return Some(TOP + (a - WIN));
    }
    match page_ok(a, true, cpl3) {
        Some(p) if p.ram && a >= 4 * MIB => Some(a),
        _ => None,
    }
}

/// Write `bytes` at `la` where the guest can (skipping what it cannot).
fn poke(la: u64, bytes: &[u8], cpl3: bool) {
    for (i, &b) in bytes.iter().enumerate() {
        let Some(a) = la.checked_add(i as u64) else {
            return;
        };
        if let Some(w) = writable_alias(a, cpl3) {
            // SAFETY: `w` is scratch RAM (never below 4 MiB, where this
            // image lives) writable at this CPL.
            unsafe { core::ptr::write_volatile(w as *mut u8, b) };
        }
    }
}

/// What reading a name at `la` gives: `Ok(len)` with the bytes in `buf`,
/// `Err(true)` for a fault before the NUL, `Err(false)` for no NUL within
/// 256 bytes.
fn name_model(la: u64, cpl3: bool, buf: &mut [u8; 256]) -> Result<usize, bool> {
    let mut p = Peeker::new(cpl3);
    for (k, slot) in buf.iter_mut().enumerate() {
        let Some(a) = la.checked_add(k as u64) else {
            return Err(true);
        };
        let Some(b) = p.peek(a) else { return Err(true) };
        if b == 0 {
            return Ok(k);
        }
        *slot = b;
    }
    Err(false)
}

fn lookup_model(la: u64, cpl3: bool) -> u64 {
    let mut buf = [0u8; 256];
    match name_model(la, cpl3, &mut buf) {
        Ok(n) => TABLE
            .iter()
            .position(|(name, _, _)| *name == &buf[..n])
            .map_or(0, |i| i as u64 + 1),
        Err(_) => 0,
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

/// The RAX the ABI promises for function `n` with `a` at CPL 0/3.
fn expect(n: u64, a: [u64; 5], cpl3: bool) -> u64 {
    if n == 0 {
        return lookup_model(a[0], cpl3);
    }
    let Some(&(_, h, user)) = usize::try_from(n - 1).ok().and_then(|i| TABLE.get(i)) else {
        return err(ENOSYS);
    };
    if cpl3 && !user {
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
            match name_model(a[0], cpl3, &mut buf) {
                Ok(n) => n as u64,
                Err(true) => err(EFAULT),
                Err(false) => inval,
            }
        }
        H::Sum => {
            if !fits_u(a[1], 32) {
                return inval;
            }
            if a[1] > 65536 {
                return err(ERANGE);
            }
            if !access_ok(a[0], a[1], false, cpl3) {
                return err(EFAULT);
            }
            // SAFETY: access_ok checked that every byte of the range is
            // mapped guest RAM readable at this CPL, and it does not wrap.
            let bytes = unsafe { core::slice::from_raw_parts(a[0] as *const u8, a[1] as usize) };
            bytes.iter().map(|&b| u64::from(b)).sum()
        }
        H::Fill => {
            if !fits_u(a[2], 8) {
                return inval;
            }
            if a[1] > 4096 {
                return err(ERANGE);
            }
            match fill_model(a[0], a[1], cpl3) {
                Ok(()) => a[1],
                Err(_) => err(EFAULT),
            }
        }
        H::Whoami => {
            if cpl3 {
                3
            } else {
                0
            }
        }
    }
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
/// the tables below 4 MiB).
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
/// byte before 4 MiB) whatever the mapping.
fn safe_to_write(a: u64) -> bool {
    (a > 4 * MIB && a.wrapping_add(PAGE + 1) > a) || a > 0xffff_0000_0000_0000
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
    numbers: [u64; 12],
    native_amd: bool,
}

static PHASE_CALLS: AtomicU64 = AtomicU64::new(0);
static mut STATE: Option<State> = None;

impl State {
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
        hcall(amd, &mut r);
        self.calls += 1;
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

    fn check(&mut self, n: u64, args: [u64; 5], cpl3: bool) -> u64 {
        let want = expect(n, args, cpl3);
        let got = self.call(n, args);
        if got != want {
            self.report(
                "wrong RAX",
                format_args!(
                    "function {n:#x} args {:x?} at CPL {}: got {got:#x}, expected {want:#x}",
                    args,
                    if cpl3 { 3 } else { 0 }
                ),
            );
        }
        got
    }

    /// Random function number, random arguments.
    fn random_call(&mut self, cpl3: bool) {
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
        self.check(n, a, cpl3);
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
    fn edge_call(&mut self, cpl3: bool) {
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
        self.check(n, a, cpl3);
    }

    fn sum_call(&mut self, cpl3: bool) {
        let addr = address(&mut self.rng, false);
        let len = length(&mut self.rng, addr, 65536);
        let n = self.number(H::Sum);
        let junk = self.rng.next();
        self.check(n, [addr, len, junk, 0, 0], cpl3);
    }

    /// `fill` at a scratch address; afterwards the buffer and the bytes on
    /// either side hold exactly what the ABI allows.
    fn fill_call(&mut self, cpl3: bool) {
        let addr = address(&mut self.rng, true);
        let len = length(&mut self.rng, addr, 4096);
        let byte = if self.rng.below(10) == 0 {
            value(&mut self.rng)
        } else {
            self.rng.below(256)
        };
        // Snapshot [addr - 1, addr + len + 1) where the guest can read it.
        let span = if len <= 4096 { len + 2 } else { 0 };
        let mut snap = [0u16; 4098];
        let base = addr.wrapping_sub(1);
        let mut p = Peeker::new(cpl3);
        for (i, s) in snap.iter_mut().enumerate().take(span as usize) {
            *s = p.peek(base.wrapping_add(i as u64)).map_or(0x100, u16::from);
        }
        let n = self.number(H::Fill);
        self.check(n, [addr, len, byte, 0, 0], cpl3);
        let written = if byte > 255 || len > 4096 {
            0
        } else {
            match fill_model(addr, len, cpl3) {
                Ok(()) => len,
                Err(k) => k,
            }
        };
        let mut p = Peeker::new(cpl3);
        for (i, s) in snap.iter().enumerate().take(span as usize) {
            let a = base.wrapping_add(i as u64);
            let Some(now) = p.peek(a) else { continue };
            let i = i as u64;
            let want = if i >= 1 && i <= written {
                byte as u8
            } else if *s > 0xff {
                continue;
            } else {
                *s as u8
            };
            if now != want {
                self.report(
                    "memory",
                    format_args!(
                        "after fill({addr:#x}, {len:#x}, {byte:#x}): byte at {a:#x} is {now:#x}, expected {want:#x}"
                    ),
                );
                break;
            }
        }
    }

    /// A name placed at a boundary: get_vmmcall_number and name_len.
    fn name_call(&mut self, cpl3: bool) {
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
            poke(at, &text[..len], cpl3);
        }
        let f0 = 0;
        let nl = self.number(H::NameLen);
        let junk = self.rng.next();
        self.check(f0, [at, junk, 0, 0, 0], cpl3);
        self.check(nl, [at, 0, 0, 0, 0], cpl3);
    }

    fn storm(&mut self, calls: u64, cpl3: bool) {
        let end = self.calls + calls;
        while self.calls < end {
            match self.rng.below(16) {
                0..=3 => self.random_call(cpl3),
                4..=6 => self.sum_call(cpl3),
                7..=8 => self.fill_call(cpl3),
                9..=11 => self.name_call(cpl3),
                _ => self.edge_call(cpl3),
            }
        }
    }
}

#[repr(C, align(16))]
struct Stack([u8; 65536]);
static mut USER_STACK: Stack = Stack([0; 65536]);

fn main() -> Result<(), guest_sdk::Error> {
    let vmm = guest_sdk::detect().ok_or(guest_sdk::Error::NotPresent)?;
    let total = CALLS;
    // SAFETY: CPL 0, once, with the VMM's initial tables.
    unsafe { build_tables() };
    let mut st = State {
        rng: Rng(SEED),
        calls: 0,
        unexpected: 0,
        vector_changed: 0,
        fx_rng: Rng(!SEED),
        numbers: [0; 12],
        native_amd: vmm.instruction == Instruction::Vmmcall,
    };
    // The numbers follow the name order: look each name up from scratch RAM.
    for (i, (name, _, _)) in TABLE.iter().enumerate() {
        let at = SCRATCH + 8192;
        poke(at, name, false);
        poke(at + name.len() as u64, &[0], false);
        let n = st.call(0, [at, 0, 0, 0, 0]);
        if n != i as u64 + 1 {
            st.report(
                "number",
                format_args!(
                    "{} is {n}, expected {}",
                    core::str::from_utf8(name).unwrap_or("?"),
                    i + 1
                ),
            );
        }
        st.numbers[i] = n;
    }
    if !TABLE.windows(2).all(|w| w[0].0 < w[1].0) {
        st.report(
            "table",
            format_args!("the guest's table is not in name order"),
        );
    }
    println!(
        "hostile: seed {SEED:#x}, {total} calls, {} handlers, native instruction {:?}",
        K, vmm.instruction
    );
    let t0 = rdtsc();
    st.storm(total / 2, false);
    println!(
        "hostile: CPL 0: {} calls, {} unexpected ({} TSC ticks)",
        st.calls,
        st.unexpected,
        rdtsc().wrapping_sub(t0)
    );
    PHASE_CALLS.store(total - total / 2, Ordering::SeqCst);
    // SAFETY: single-threaded; ring3_main takes the state over.
    unsafe { *core::ptr::addr_of_mut!(STATE) = Some(st) };
    let top = core::ptr::addr_of!(USER_STACK) as u64 + 65536;
    // SAFETY: the image (code, data, stack) lies in 2..16 MiB, which the
    // tables map user-accessible.
    unsafe { arch::enter_ring3(ring3_main, top) }
}

fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

extern "C" fn ring3_main() -> ! {
    // SAFETY: main stored the state before dropping here; nothing else
    // touches it.
    let Some(mut st) = (unsafe { (*core::ptr::addr_of_mut!(STATE)).take() }) else {
        println!("hostile: lost the state");
        guest_sdk::rt::exit(3)
    };
    let start = st.calls;
    let t0 = rdtsc();
    if st.call(st.number(H::Whoami), [0; 5]) != 3 {
        st.report("ring 3", format_args!("whoami is not 3"));
    }
    st.storm(PHASE_CALLS.load(Ordering::SeqCst), true);
    println!(
        "hostile: CPL 3: {} calls, {} unexpected ({} TSC ticks)",
        st.calls - start,
        st.unexpected,
        rdtsc().wrapping_sub(t0)
    );
    println!(
        "hostile: vector state: {} exits, {} changed (x87, MXCSR, XMM0-15)",
        st.calls, st.vector_changed
    );
    println!("hostile: {} calls, {} unexpected", st.calls, st.unexpected);
    guest_sdk::rt::exit(if st.unexpected == 0 { 0 } else { 1 })
}
