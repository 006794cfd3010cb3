//! Host benchmark: one hypercall through [`vmmcall::dispatch`] on the mock
//! vCPU, with nothing else around it (no VM exit, no emulator).
//!
//! - `dispatch/null`: the null hypercall (no arguments, returns `()`, so
//!   RAX = 0), number cached: what the framework adds to every call.
//! - `dispatch/enosys`: a number no handler has (`-ENOSYS`), the cheapest
//!   refusal.
//! - `dispatch/get_vmmcall_number`: function 0 for a 4-byte name. It reads
//!   the name from the mock vCPU's memory (a `BTreeMap` of pages: slower than
//!   a real guest page walk), so this figure is mostly the mock.
//!
//! Run with `cargo bench -p vmmcall --bench dispatch`; `cargo xtask bench`
//! runs it in a quick configuration and reports `dispatch/null`.
//! Instructions per call come from `vmmcall/examples/dispatch_count.rs`
//! under callgrind (see `docs/BENCHMARKS.md`).

use criterion::Criterion;
use std::hint::black_box;
use vmmcall::mock::MockVcpu;
use vmmcall::{dispatch, vmmcall, Registry};

/// The null hypercall: does nothing, returns 0.
#[vmmcall("null", user)]
fn null() {}

/// Guest-linear address of the name `"null\0"` in the mock memory.
const NAME_AT: u64 = 0x1000;

fn bench_dispatch(c: &mut Criterion) {
    let registry = Registry::global().expect("the bench's handlers form a registry");
    let number = registry.lookup(b"null").expect("null is registered").get();
    let mut vcpu = MockVcpu::new();
    vcpu.map(NAME_AT, true, false).poke(NAME_AT, b"null\0");

    let mut group = c.benchmark_group("dispatch");
    group.bench_function("null", |b| {
        b.iter(|| {
            vcpu.regs.rax = black_box(number);
            let outcome = dispatch(registry, black_box(&mut vcpu));
            black_box(outcome)
        })
    });
    group.bench_function("enosys", |b| {
        b.iter(|| {
            vcpu.regs.rax = black_box(0xdead_beef);
            let outcome = dispatch(registry, black_box(&mut vcpu));
            black_box(outcome)
        })
    });
    group.bench_function("get_vmmcall_number", |b| {
        b.iter(|| {
            vcpu.regs.rax = 0;
            vcpu.regs.rbx = black_box(NAME_AT);
            let outcome = dispatch(registry, black_box(&mut vcpu));
            black_box(outcome)
        })
    });
    group.finish();
    assert_eq!(vcpu.regs.rax, number, "get_vmmcall_number found null");
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_dispatch(&mut c);
    c.final_summary();
}
