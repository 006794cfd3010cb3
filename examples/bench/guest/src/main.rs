//! The benchmark example, guest side: what a hypercall through the framework
//! costs next to a raw VM exit, timed with RDTSC in one run.
//!
//! Six measurements, interleaved in one loop (the order rotates every
//! iteration so that none always follows the same one):
//!
//! - **framework**: `call!("null")`, the full path: the guest SDK's cached
//!   call site (looked up during the warm-up), `vmmcall`, the VM exit, the
//!   run loop, `vmexit::handle_hypercall`, `vmmcall::dispatch`, the typed
//!   handler (returns 0), the VM entry, and the SDK decoding RAX.
//! - **raw**: `CPUID` leaf `0x4000_0001`. It exits to the same run loop,
//!   which answers it (`cpuid::virtual_cpuid`) before any framework code runs:
//!   the floor. Both paths pay one exit and one entry.
//! - **direct**: the same null hypercall issued with inline assembly
//!   (number already in a register, no SDK code): the VMM side of the
//!   framework alone.
//! - **lookup**: `get_vmmcall_number("null")` (function 0), which reads the
//!   name from guest memory through the guest's page tables and looks it up
//!   in the registry's hash table.
//! - **pages**: the raw exit followed by one load from each of four other
//!   guest pages. Under QEMU TCG every VMRUN and #VMEXIT flushes the
//!   emulated TLB, so each page touched after an exit costs a page walk;
//!   `(pages - raw) / 4` is that cost per page, which explains most of what
//!   the framework adds under TCG (see `docs/BENCHMARKS.md`).
//! - **timer**: two back-to-back timestamps, the cost of the clock itself
//!   (included in every other figure).
//!
//! Each sample is `lfence; rdtsc` before and after one call. The guest
//! prints the median and the 99th percentile of each, the medians of the
//! first and second halves of the run (to show the median is stable), and
//! `bench: framework/raw = R`, the ratio of the medians. `cargo xtask bench`
//! parses these lines; `docs/BENCHMARKS.md` explains the figures.
//!
//! Then long calls and batches (issue 23), measured side by side in a
//! second loop: a null call from inline asm (`single`), `vmmcall_batch`
//! of 1 and of 32 null entries from inline asm (`batch1`, `batch32`, the
//! list and results named by guest-linear address; `batch1-phys`,
//! `batch32-phys`, the same buffers by guest-physical address with
//! `BATCH_PHYSICAL`), and a 4 MiB fill as a long call that yields every
//! step budget (`stepped`, 4 exits of 256 pages) against the same handler
//! in one exit (`unstepped`). It prints `bench: batch32/single = R` (per
//! entry), `bench: batch1/single = R`, the same two for `-phys`,
//! `bench: stepped/unstepped = R` and the longest exit of the long call,
//! in ticks and steps, as the VMM measured it (`bench_longest`).
//!
//! Under QEMU TCG the guest's RDTSC is the host TSC; under Bochs it counts
//! emulated time (tied to the instruction count), so there the ratio
//! reflects the instructions the VMM executes rather than wall time.
#![no_std]
#![no_main]

mod smp;

use core::cell::UnsafeCell;
use guest_rt::println;
use guest_sdk::{call, Error, Instruction};

/// vmm-core's step budget per exit (`vmmcall::step::DEFAULT_STEP_BUDGET`).
const DEFAULT_STEP_BUDGET: u64 = 256;

guest_rt::entry!(main);

/// Measured iterations; each times all eight measurements once.
const ITERS: usize = 12_000;
/// Iterations run first and thrown away (fills the call-site cache, warms
/// the TLBs, caches and the emulator's translation cache).
const WARMUP: usize = 200;
/// The measurements, in the order of the sample arrays.
const KINDS: [&str; 8] = [
    "framework",
    "raw",
    "direct",
    "lookup",
    "pages",
    "timer",
    "typed",
    "plain",
];
/// Number of measurements.
const N: usize = KINDS.len();
/// What each one is, printed once.
const DESCRIPTIONS: [&str; N] = [
    "call!(\"null\"): cached number, VM exit, dispatch, typed handler returning 0",
    "CPUID 0x4000_0001: VM exit answered by the run loop before any framework code",
    "the null hypercall from inline asm (no SDK code): the VMM side alone",
    "get_vmmcall_number(\"null\"): name read through the guest page tables, hash lookup",
    "CPUID 0x4000_0001, then one load from each of 4 other guest pages (TLB refills after an exit)",
    "two back-to-back lfence;rdtsc, included in every figure above",
    "bench::typed5(1, 2, 3, 4, true): an interface's typed stub, typed lookup, its handler",
    "call!(\"plain5\", rbx = 1, .., rdi = true): the same handler body through #[vmmcall]",
];

/// The samples, in cycles, one array per measurement. In `.bss` because
/// they do not fit the 64 KiB stack.
struct Samples(UnsafeCell<[[u32; ITERS]; N]>);

// SAFETY: the guest runs on one CPU with no interrupts enabled, and only
// `main` touches the samples, through the one `&mut` it takes.
unsafe impl Sync for Samples {}

static SAMPLES: Samples = Samples(UnsafeCell::new([[0; ITERS]; N]));

/// Pages the `pages` measurement loads from after its exit.
const TOUCHED_PAGES: usize = 4;

/// Zeroed guest memory spanning [`TOUCHED_PAGES`] pages, read only.
#[repr(C, align(4096))]
struct Touch(UnsafeCell<[u8; TOUCHED_PAGES * 4096]>);

// SAFETY: never written after load (zero-filled `.bss`); reads only.
unsafe impl Sync for Touch {}

static TOUCH: Touch = Touch(UnsafeCell::new([0; TOUCHED_PAGES * 4096]));

/// The timestamp counter after all earlier instructions completed.
#[inline(always)]
fn tsc() -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: LFENCE and RDTSC only read the time-stamp counter into
    // EDX:EAX (CR4.TSD is clear: the guest runs at CPL 0 anyway); no
    // memory, no stack, no flags.
    unsafe {
        core::arch::asm!(
            "lfence",
            "rdtsc",
            out("eax") lo,
            out("edx") hi,
            options(nomem, nostack, preserves_flags),
        );
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Cycles from `start` to `end`, saturated to `u32`.
fn elapsed(start: u64, end: u64) -> u32 {
    u32::try_from(end.wrapping_sub(start)).unwrap_or(u32::MAX)
}

/// Hypercall `number` with no arguments, in inline assembly: what the
/// VMM side costs without any guest SDK code around it. Returns RAX.
#[inline(always)]
fn direct(insn: Instruction, number: u64) -> u64 {
    let rax: u64;
    // SAFETY: `detect()` found this VMM, so the instruction exits to it;
    // `number` is the null hypercall, which reads no memory and changes
    // only RAX (ABI v1). RBX..RDI are not inputs: the handler takes no
    // arguments.
    unsafe {
        match insn {
            Instruction::Vmcall => core::arch::asm!(
                "vmcall",
                inout("rax") number => rax,
                options(nostack),
            ),
            Instruction::Vmmcall => core::arch::asm!(
                "vmmcall",
                inout("rax") number => rax,
                options(nostack),
            ),
        }
    }
    rax
}

/// One sample of measurement `kind`; `Err` if a call misbehaved.
#[inline(always)]
fn sample(kind: usize, insn: Instruction, number: u64) -> Result<u32, Error> {
    match kind {
        0 => {
            let t0 = tsc();
            let r = call!("null");
            let t1 = tsc();
            match r {
                Ok(0) => Ok(elapsed(t0, t1)),
                Ok(_) => Err(Error::Invalid),
                Err(e) => Err(e),
            }
        }
        1 => {
            let t0 = tsc();
            let r = core::arch::x86_64::__cpuid_count(guest_sdk::abi::CPUID_LEAF_INTERFACE, 0);
            let t1 = tsc();
            if r.ebx == guest_sdk::abi::CPUID_INTERFACE_MAGIC {
                Ok(elapsed(t0, t1))
            } else {
                Err(Error::NotPresent)
            }
        }
        2 => {
            let t0 = tsc();
            let r = direct(insn, number);
            let t1 = tsc();
            match r {
                0 => Ok(elapsed(t0, t1)),
                _ => Err(Error::Invalid),
            }
        }
        3 => {
            let t0 = tsc();
            let r = guest_sdk::lookup(b"null\0");
            let t1 = tsc();
            match r {
                Ok(n) if n == number => Ok(elapsed(t0, t1)),
                Ok(_) => Err(Error::Invalid),
                Err(e) => Err(e),
            }
        }
        4 => {
            let t0 = tsc();
            let r = core::arch::x86_64::__cpuid_count(guest_sdk::abi::CPUID_LEAF_INTERFACE, 0);
            let mut sum = 0u32;
            for page in 0..TOUCHED_PAGES {
                // SAFETY: in bounds of TOUCH (a static); a volatile read so
                // that each page really is loaded after the exit.
                sum = sum.wrapping_add(u32::from(unsafe {
                    core::ptr::read_volatile(TOUCH.0.get().cast::<u8>().add(page * 4096))
                }));
            }
            let t1 = tsc();
            if r.ebx == guest_sdk::abi::CPUID_INTERFACE_MAGIC && sum == 0 {
                Ok(elapsed(t0, t1))
            } else {
                Err(Error::NotPresent)
            }
        }
        6 => typed(),
        7 => plain(),
        _ => {
            let t0 = tsc();
            let t1 = tsc();
            Ok(elapsed(t0, t1))
        }
    }
}

/// One `typed` sample. Out of line, as [`plain`] is, so that the two
/// timed windows are compiled alike (inside `sample`'s match, register
/// allocation put a different number of spills into each window).
#[inline(never)]
fn typed() -> Result<u32, Error> {
    let t0 = tsc();
    let r = bench_api::bench::typed5(1, 2, 3, 4, true);
    let t1 = tsc();
    match r {
        Ok(11) => Ok(elapsed(t0, t1)),
        Ok(_) => Err(Error::Invalid),
        Err(e) => Err(e),
    }
}

/// One `plain` sample: the same call through `call!` and `#[vmmcall]`.
#[inline(never)]
fn plain() -> Result<u32, Error> {
    let t0 = tsc();
    let r = call!(
        "plain5",
        rbx = 1u64,
        rcx = 2u32,
        rdx = 3u16,
        rsi = 4u8,
        rdi = true
    );
    let t1 = tsc();
    match r {
        Ok(11) => Ok(elapsed(t0, t1)),
        Ok(_) => Err(Error::Invalid),
        Err(e) => Err(e),
    }
}

/// The median and 99th percentile of `s`, sorting it.
fn median_p99(s: &mut [u32]) -> (u32, u32) {
    s.sort_unstable();
    let at = |q: usize| s.get(s.len().saturating_mul(q) / 100).copied().unwrap_or(0);
    (at(50), at(99))
}

/// `a / b` with three decimals, as text (`1.023`).
struct Ratio(u64, u64);

impl core::fmt::Display for Ratio {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let milli = self.0.saturating_mul(1000).checked_div(self.1).unwrap_or(0);
        write!(f, "{}.{:03}", milli / 1000, milli % 1000)
    }
}

fn main() -> Result<(), Error> {
    let insn = guest_sdk::detect().ok_or(Error::NotPresent)?.instruction;
    let number = guest_sdk::lookup(b"null\0")?;
    // On several vCPUs (`cargo xtask bench`'s second run): only smp.rs.
    let vcpus = guest_rt::vcpu::count();
    if vcpus > 1 {
        smp::run(vcpus, insn, number)?;
        println!("bench: done");
        return Ok(());
    }
    // SAFETY: see `Samples`: this is the only reference ever made.
    let samples = unsafe { &mut *SAMPLES.0.get() };
    println!(
        "bench: iterations={ITERS} warmup={WARMUP} (interleaved, order rotating per iteration; cycles = RDTSC ticks)"
    );
    for (kind, what) in KINDS.iter().zip(DESCRIPTIONS) {
        println!("bench: {kind}: {what}");
    }
    for i in 0..WARMUP {
        for j in 0..N {
            sample((i + j) % N, insn, number)?;
        }
    }
    for i in 0..ITERS {
        for j in 0..N {
            let kind = (i + j) % N;
            let cycles = sample(kind, insn, number)?;
            if let Some(slot) = samples.get_mut(kind).and_then(|s| s.get_mut(i)) {
                *slot = cycles;
            }
        }
    }
    // Stability: the median of each half of the run. Sorting the halves
    // first does not change the sort of the whole that follows.
    let mut halves = [[0u32; 2]; N];
    for (kind, s) in samples.iter_mut().enumerate() {
        for (half, chunk) in s.chunks_exact_mut(ITERS / 2).enumerate() {
            if let Some(slot) = halves.get_mut(kind).and_then(|h| h.get_mut(half)) {
                *slot = median_p99(chunk).0;
            }
        }
    }
    let mut medians = [0u32; N];
    for (kind, s) in samples.iter_mut().enumerate() {
        let (median, p99) = median_p99(s);
        let (lo, hi) = (
            s.first().copied().unwrap_or(0),
            s.last().copied().unwrap_or(0),
        );
        let [h1, h2] = halves.get(kind).copied().unwrap_or_default();
        let name = KINDS.get(kind).copied().unwrap_or("?");
        println!(
            "bench: {name} median={median} p99={p99} min={lo} max={hi} halves={h1}/{h2} cycles"
        );
        if let Some(m) = medians.get_mut(kind) {
            *m = median;
        }
    }
    let [framework, raw, direct, lookup, pages, _, typed, plain] = medians.map(u64::from);
    println!("bench: framework/raw = {}", Ratio(framework, raw));
    println!("bench: direct/raw = {}", Ratio(direct, raw));
    println!("bench: lookup/raw = {}", Ratio(lookup, raw));
    println!("bench: typed/plain = {}", Ratio(typed, plain));
    println!(
        "bench: per page touched after an exit = {} ticks",
        pages.saturating_sub(raw) / TOUCHED_PAGES as u64
    );
    long_and_batches(insn, number)?;
    println!("bench: done");
    Ok(())
}

/// Iterations of the batch measurements.
const BATCH_ITERS: usize = 1_000;
/// Iterations of the long-call measurements (each fills [`FILL_PAGES`]).
const FILL_ITERS: usize = 8;
/// Pages per fill: 4 MiB, four step budgets of 256 pages.
const FILL_PAGES: u64 = 1024;

/// The fills' buffer.
#[repr(C, align(4096))]
struct FillBuf(UnsafeCell<[u8; FILL_PAGES as usize * 4096]>);
// SAFETY: written by the VMM during this guest's calls only.
unsafe impl Sync for FillBuf {}
static FILL_BUF: FillBuf = FillBuf(UnsafeCell::new([0; FILL_PAGES as usize * 4096]));

/// `vmmcall_batch` of `list` (`count` entries), results at `results`,
/// with `flags`, from inline asm. Returns RAX.
#[inline(always)]
fn direct_batch(insn: Instruction, list: u64, count: u64, results: u64, flags: u64) -> u64 {
    let rax: u64;
    // SAFETY: the VMM is present; the batch reads `count` descriptors at
    // `list` and writes `count` u64s at `results`, both this guest's
    // buffers; the entries are null calls (no memory). RBX is moved
    // through another register (Rust cannot name it).
    unsafe {
        match insn {
            Instruction::Vmcall => core::arch::asm!(
                "xchg {list}, rbx",
                "vmcall",
                "xchg {list}, rbx",
                list = inout(reg) list => _,
                inout("rax") guest_sdk::abi::BATCH => rax,
                in("rcx") count,
                in("rdx") results,
                in("rsi") flags,
                options(nostack),
            ),
            Instruction::Vmmcall => core::arch::asm!(
                "xchg {list}, rbx",
                "vmmcall",
                "xchg {list}, rbx",
                list = inout(reg) list => _,
                inout("rax") guest_sdk::abi::BATCH => rax,
                in("rcx") count,
                in("rdx") results,
                in("rsi") flags,
                options(nostack),
            ),
        }
    }
    rax
}

/// Times `f` once.
#[inline(always)]
fn timed(f: impl FnOnce() -> bool) -> Result<u32, Error> {
    let t0 = tsc();
    let ok = f();
    let t1 = tsc();
    if ok {
        Ok(elapsed(t0, t1))
    } else {
        Err(Error::Invalid)
    }
}

/// The issue 23 measurements; see the module docs.
fn long_and_batches(insn: Instruction, number: u64) -> Result<(), Error> {
    let fill = guest_sdk::lookup(b"bench_fill\0")?;
    let fill_once = guest_sdk::lookup(b"bench_fill_once\0")?;
    let entries = [guest_sdk::BatchEntry::new(number, [0; 5]); 32];
    let mut results = [u64::MAX; 32];
    let list = entries.as_ptr() as u64;
    let res = results.as_mut_ptr() as u64;
    // SAFETY: see `Samples`: `main` no longer uses its reference (its
    // figures are printed), so this is the only live one.
    let samples = unsafe { &mut *SAMPLES.0.get() };
    let [single, batch1, batch32, batch1p, batch32p, ..] = samples;
    // The VMM's initial tables map guest RAM at its own addresses
    // (docs/ABI.md): the buffers' linear addresses are their
    // guest-physical ones, for BATCH_PHYSICAL.
    let phys = guest_sdk::abi::BATCH_PHYSICAL;
    for i in 0..BATCH_ITERS + WARMUP {
        let one = timed(|| direct(insn, number) == 0)?;
        let b1 = timed(|| direct_batch(insn, list, 1, res, 0) == 1)?;
        let b32 = timed(|| direct_batch(insn, list, 32, res, 0) == 32)?;
        let b1p = timed(|| direct_batch(insn, list, 1, res, phys) == 1)?;
        let b32p = timed(|| direct_batch(insn, list, 32, res, phys) == 32)?;
        if let Some(j) = i.checked_sub(WARMUP) {
            single[j] = one;
            batch1[j] = b1;
            batch32[j] = b32;
            batch1p[j] = b1p;
            batch32p[j] = b32p;
        }
    }
    if results.iter().any(|&r| r != 0) {
        return Err(Error::Invalid);
    }
    let buf = FILL_BUF.0.get() as u64;
    let mut stepped = [0u32; FILL_ITERS];
    let mut unstepped = [0u32; FILL_ITERS];
    let _ = guest_sdk::call!("bench_longest")?;
    for i in 0..FILL_ITERS {
        let byte = i as u64 & 0x7F;
        // SAFETY: the fill writes FILL_PAGES pages of FILL_BUF, ours.
        let call = |n| unsafe { guest_sdk::call_number(n, [buf, FILL_PAGES, byte, 0, 0]) };
        stepped[i] = timed(|| call(fill) == Ok(FILL_PAGES))?;
        unstepped[i] = timed(|| call(fill_once) == Ok(FILL_PAGES))?;
    }
    let longest = guest_sdk::call!("bench_longest")?;
    let med = |name: &str, s: &mut [u32]| {
        let (median, p99) = median_p99(s);
        println!("bench: {name} median={median} p99={p99} cycles");
        u64::from(median)
    };
    let one = med("single", &mut single[..BATCH_ITERS]);
    let b1 = med("batch1", &mut batch1[..BATCH_ITERS]);
    let b32 = med("batch32", &mut batch32[..BATCH_ITERS]);
    let b1p = med("batch1-phys", &mut batch1p[..BATCH_ITERS]);
    let b32p = med("batch32-phys", &mut batch32p[..BATCH_ITERS]);
    let st = med("stepped", &mut stepped);
    let un = med("unstepped", &mut unstepped);
    println!("bench: batch32/single = {}", Ratio(b32, one * 32));
    println!("bench: batch1/single = {}", Ratio(b1, one));
    println!("bench: batch32-phys/single = {}", Ratio(b32p, one * 32));
    println!("bench: batch1-phys/single = {}", Ratio(b1p, one));
    println!("bench: stepped/unstepped = {}", Ratio(st, un));
    println!(
        "bench: longest exit of a long call = {} ticks, {} steps (budget {} steps)",
        longest >> 16,
        longest & 0xFFFF,
        DEFAULT_STEP_BUDGET
    );
    Ok(())
}
