//! Instructions per hypercall, for callgrind: runs one operation `N` times.
//!
//! ```text
//! cargo build --release -p vmmcall --example dispatch_count
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/dispatch_count null 100000
//! ```
//!
//! Callgrind counts every instruction of the process, set-up included. Run
//! it twice, with `N` and `2N`, and `(Ir(2N) - Ir(N)) / N` is the cost of
//! one operation alone, exactly (the count is deterministic).
//! `cargo xtask bench` does this when valgrind is installed.
//!
//! Operations:
//! - `null`: [`vmmcall::dispatch`] of the null hypercall on the mock vCPU
//!   (number cached, no arguments, returns 0), keeping RAX and the stop
//!   request as a run loop does (`counted_dispatch`);
//! - `null-outcome`: the same, returning the whole `Outcome`
//!   (`counted_outcome`);
//! - `narrow5`: the same for a handler with five narrow-typed parameters;
//! - `enosys`: a number no handler has;
//! - `null-invm`: `null` on the mock vCPU wrapped in a [`vmmcall::InVm`]
//!   with vCPU id 5 and VM state, as a VMM with several vCPUs dispatches
//!   (`counted_in_vm`);
//! - `batch32`, `batch1`: one `vmmcall_batch` of 32 (1) null entries on
//!   a [`GuestVcpu`] over flat RAM with 4-level page tables and steps, as
//!   vmm-core dispatches (`counted_guest`); divide `batch32` by 32 for a
//!   cost per entry; `batch32-phys`, `batch1-phys`: the same with
//!   guest-physical addresses (`BATCH_PHYSICAL`);
//! - `lookup-N` (e.g. `lookup-10`, `lookup-100000`): [`Registry::lookup`]
//!   in a registry of that many names, cycling through 1 024 of them
//!   (`counted_lookup`).

use std::hint::black_box;
use std::process::ExitCode;
use vmmcall::mock::MockVcpu;
use vmmcall::paging::{GuestPhysMemory, PagingMode};
use vmmcall::step::{Continuations, Site, Stepper};
use vmmcall::vcpu::VcpuState;
use vmmcall::{
    dispatch, vmmcall, Caller, Error, GuestRegs, GuestVcpu, Handler, InVm, MemError, Registry,
};

/// The null hypercall: does nothing, returns 0.
#[vmmcall("null", user)]
fn null() {}

/// Five narrow parameters.
#[vmmcall("narrow5", user)]
fn narrow5(a: u8, b: i16, c: bool, d: u32, e: i8) -> u32 {
    u32::from(a)
        .wrapping_add(b as u32)
        .wrapping_add(u32::from(c))
        .wrapping_add(d)
        .wrapping_add(e as u32)
}

/// Handler of the synthetic registries (never called).
fn nop(_: &mut Caller<'_>) -> Result<u64, Error> {
    Ok(0)
}

/// One dispatch, kept out of line so that callgrind can count it by name
/// (`vmmcall::dispatch` itself is `#[inline(always)]`): what a VMM's run
/// loop pays for a hypercall, plus this function's own call frame. It
/// keeps what `vmm-core`'s run loop keeps of the [`vmmcall::Outcome`]:
/// RAX (written by `dispatch`) and the stop request, so, as there, the
/// rest of the `Outcome` is never built.
#[inline(never)]
fn counted_dispatch(registry: &Registry<'static>, vcpu: &mut MockVcpu) -> Option<u32> {
    dispatch(registry, vcpu).stop
}

/// The same, returning the whole 48-byte [`vmmcall::Outcome`] by memory
/// (the `null-outcome` operation): what a VMM pays that keeps all of it.
#[inline(never)]
fn counted_outcome(registry: &Registry<'static>, vcpu: &mut MockVcpu) -> vmmcall::Outcome {
    dispatch(registry, vcpu)
}

/// The same through an [`InVm`] (the `null-invm` operation): what the
/// vCPU id (the counter shard) and the VMM state cost a VMM that passes
/// them.
#[inline(never)]
fn counted_in_vm(registry: &Registry<'static>, vcpu: &mut InVm<'_, &mut MockVcpu>) -> Option<u32> {
    dispatch(registry, vcpu).stop
}

/// `null` through [`counted_in_vm`] `n` times; returns the last RAX.
fn run_in_vm(number: u64, n: u64) -> u64 {
    let registry = Registry::global().expect("the example's handlers form a registry");
    let state = 7u64;
    let mut vcpu = MockVcpu::new();
    for _ in 0..n {
        vcpu.regs.rax = black_box(number);
        let mut in_vm = InVm::new(&mut vcpu, black_box(5)).with_vm(&state);
        black_box(counted_in_vm(registry, black_box(&mut in_vm)));
    }
    vcpu.regs.rax
}

/// Dispatch function `number` `n` times (`outcome`: through
/// [`counted_outcome`]); returns the last RAX.
fn run_dispatch(number: u64, n: u64, outcome: bool) -> u64 {
    let registry = Registry::global().expect("the example's handlers form a registry");
    let mut vcpu = MockVcpu::new();
    [
        vcpu.regs.rbx,
        vcpu.regs.rcx,
        vcpu.regs.rdx,
        vcpu.regs.rsi,
        vcpu.regs.rdi,
    ] = [200, -2_i64 as u64, 1, 70_000, -100_i64 as u64];
    for _ in 0..n {
        vcpu.regs.rax = black_box(number);
        if outcome {
            black_box(counted_outcome(registry, black_box(&mut vcpu)));
        } else {
            black_box(counted_dispatch(registry, black_box(&mut vcpu)));
        }
    }
    vcpu.regs.rax
}

/// Flat guest RAM at guest-physical 0, as a VMM that maps all of guest RAM
/// once (vmm-core's `GuestRam`): a bounds check per access, entries read
/// with one load.
struct FlatRam(Vec<u8>);

impl FlatRam {
    fn range(&self, gpa: u64, len: usize) -> Result<std::ops::Range<usize>, MemError> {
        let at = usize::try_from(gpa).map_err(|_| MemError::OutsideRam { gpa })?;
        match at.checked_add(len) {
            Some(end) if end <= self.0.len() => Ok(at..end),
            _ => Err(MemError::OutsideRam { gpa }),
        }
    }
}

impl GuestPhysMemory for FlatRam {
    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        buf.copy_from_slice(&self.0[self.range(gpa, buf.len())?]);
        Ok(())
    }
    fn write_phys(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        let r = self.range(gpa, data.len())?;
        self.0[r].copy_from_slice(data);
        Ok(())
    }
    fn check_phys(&self, gpa: u64, len: usize) -> Result<(), MemError> {
        self.range(gpa, len).map(|_| ())
    }
    fn read_entry(&self, gpa: u64) -> Result<u64, MemError> {
        let r = self.range(gpa, 8)?;
        Ok(u64::from_le_bytes(self.0[r].try_into().unwrap_or_default()))
    }
}

/// The state a VMM with steps hands over at an exit (vmm-core's
/// `Stepping`): CPL 0, 4-level paging, continuations, no interrupt
/// pending.
struct Exit<'c> {
    conts: &'c mut Continuations,
}

impl VcpuState for Exit<'_> {
    fn cpl(&self) -> u8 {
        0
    }
    fn paging(&self) -> PagingMode {
        PagingMode::four_level(0x1000, true, true)
    }
    fn stepper(&mut self) -> Option<&mut dyn Stepper> {
        Some(self)
    }
}

impl Stepper for Exit<'_> {
    fn continuations(&mut self) -> &mut Continuations {
        self.conts
    }
    fn site(&mut self) -> Site {
        Site::default()
    }
    fn interrupt_pending(&mut self) -> bool {
        false
    }
}

/// One dispatch on a [`GuestVcpu`] over flat RAM with steps, as
/// `counted_dispatch`.
#[inline(never)]
fn counted_guest(
    registry: &Registry<'static>,
    vcpu: &mut GuestVcpu<&mut GuestRegs, &mut FlatRam, Exit<'_>>,
) -> Option<u32> {
    dispatch(registry, vcpu).stop
}

/// `n` batches of `entries` null calls through [`counted_guest`]: a
/// [`GuestVcpu`] over 2 MiB of flat RAM with 4-level page tables
/// (linear 0x40_0000.. at guest-physical 0x10_0000..), the list at
/// linear 0x40_0000 and the results at 0x40_8000 (guest-physical 0x10_0000
/// and 0x10_8000 with `physical`, BATCH_PHYSICAL), steps on; returns the
/// last RAX (the entries answered).
fn run_batch(null: u64, entries: u64, n: u64, physical: bool) -> u64 {
    use vmmcall::abi::{BatchEntry, BATCH, BATCH_ENTRY_SIZE, BATCH_PHYSICAL};
    let registry = Registry::global().expect("the example's handlers form a registry");
    let mut ram = FlatRam(vec![0; 2 << 20]);
    let mut put = |gpa: usize, v: u64| ram.0[gpa..gpa + 8].copy_from_slice(&v.to_le_bytes());
    // PML4 0x1000, PDPT 0x2000, PD 0x3000, PT 0x4000: linear 0x40_0000 +
    // k * 4 KiB -> 0x10_0000 + k * 4 KiB for 16 pages.
    put(0x1000, 0x2000 | 7);
    put(0x2000, 0x3000 | 7);
    put(0x3000 + 2 * 8, 0x4000 | 7);
    for k in 0..16u64 {
        put(0x4000 + k as usize * 8, (0x10_0000 + k * 4096) | 7);
    }
    for i in 0..entries {
        let at = 0x10_0000 + (i * BATCH_ENTRY_SIZE) as usize;
        ram.0[at..at + BATCH_ENTRY_SIZE as usize]
            .copy_from_slice(&BatchEntry::new(null, [0; 5]).to_bytes());
    }
    let (list, results, flags) = if physical {
        (0x10_0000, 0x10_8000, BATCH_PHYSICAL)
    } else {
        (0x40_0000, 0x40_8000, 0)
    };
    let mut conts = Continuations::new();
    let mut regs = GuestRegs::default();
    for _ in 0..n {
        regs.rax = black_box(BATCH);
        [regs.rbx, regs.rcx, regs.rdx, regs.rsi] = [list, entries, results, flags];
        let mut vcpu = GuestVcpu::lazy(&mut regs, &mut ram, Exit { conts: &mut conts });
        black_box(counted_guest(registry, black_box(&mut vcpu)));
    }
    regs.rax
}

/// Look names up `n` times in a registry of `size` names.
fn run_lookup(size: usize, n: u64) -> u64 {
    let names: Vec<&'static str> = (0..size)
        .map(|i| &*Box::leak(format!("hypercall_{i:06}").into_boxed_str()))
        .collect();
    let handlers: &'static [Handler] = Box::leak(
        names
            .iter()
            .map(|name| Handler::new(name, true, nop))
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    );
    let registry = Registry::new(handlers).expect("distinct valid names");
    let picks: Vec<&[u8]> = (0..1024)
        .map(|i| names[(i * 7919) % size].as_bytes())
        .collect();
    let mut found = 0;
    for i in 0..n {
        let name = picks[(i % 1024) as usize];
        found += black_box(counted_lookup(&registry, black_box(name))).map_or(0, |_| 1);
    }
    found
}

/// One [`Registry::lookup`], out of line so that callgrind can count it
/// by name: the compiler inlines `lookup` itself into its caller (it did
/// from some rustc on, and a toggle on `*Registry::lookup` then counted
/// nothing).
#[inline(never)]
fn counted_lookup(registry: &Registry<'_>, name: &[u8]) -> Option<std::num::NonZeroU64> {
    registry.lookup(name)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(op), Some(n)) = (
        args.first(),
        args.get(1).and_then(|n| n.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: dispatch_count null|null-outcome|narrow5|enosys|null-invm|batch32|batch1|batch32-phys|batch1-phys|lookup-SIZE N");
        return ExitCode::from(2);
    };
    let number = |name: &str| {
        Registry::global()
            .expect("registry")
            .lookup(name.as_bytes())
            .expect("registered")
            .get()
    };
    let result = match op.as_str() {
        "null" => run_dispatch(number("null"), n, false),
        "null-outcome" => run_dispatch(number("null"), n, true),
        "narrow5" => run_dispatch(number("narrow5"), n, false),
        "enosys" => run_dispatch(0xdead_beef, n, false),
        "null-invm" => run_in_vm(number("null"), n),
        "batch32" => run_batch(number("null"), 32, n, false),
        "batch1" => run_batch(number("null"), 1, n, false),
        "batch32-phys" => run_batch(number("null"), 32, n, true),
        "batch1-phys" => run_batch(number("null"), 1, n, true),
        other => match other
            .strip_prefix("lookup-")
            .and_then(|s| s.parse::<usize>().ok())
        {
            Some(size) if size > 0 => run_lookup(size, n),
            _ => {
                eprintln!("unknown operation `{other}`");
                return ExitCode::from(2);
            }
        },
    };
    println!("{op} x{n}: {result}");
    ExitCode::SUCCESS
}
