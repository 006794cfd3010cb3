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
//! - `lookup-N` (e.g. `lookup-10`, `lookup-100000`): [`Registry::lookup`] in
//!   a registry of that many names, cycling through 1 024 of them.

use std::hint::black_box;
use std::process::ExitCode;
use vmmcall::mock::MockVcpu;
use vmmcall::{dispatch, vmmcall, Caller, Error, Handler, InVm, Registry};

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
        found += black_box(registry.lookup(black_box(name))).map_or(0, |_| 1);
    }
    found
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(op), Some(n)) = (
        args.first(),
        args.get(1).and_then(|n| n.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: dispatch_count null|null-outcome|narrow5|enosys|null-invm|lookup-SIZE N");
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
