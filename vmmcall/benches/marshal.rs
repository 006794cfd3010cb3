//! Host benchmark: argument marshalling for five narrow-typed parameters.
//!
//! - `marshal/from_reg_x5`: the five conversions alone (`u8`, `i16`, `bool`,
//!   `u32`, `i8` from 64-bit registers, each range-checked; a value that
//!   does not fit is `-EINVAL`, never truncated).
//! - `marshal/dispatch_narrow5` next to `marshal/dispatch_null`: a whole
//!   dispatch of a handler with those five parameters against the null
//!   hypercall; the difference is what marshalling costs inside dispatch.
//!
//! Run with `cargo bench -p vmmcall --bench marshal`.

use criterion::Criterion;
use std::hint::black_box;
use vmmcall::mock::MockVcpu;
use vmmcall::{dispatch, vmmcall, Error, FromReg, Registry};

/// The null hypercall: does nothing, returns 0.
#[vmmcall("null", user)]
fn null() {}

/// Five narrow parameters, summed so none is optimised away.
#[vmmcall("narrow5", user)]
fn narrow5(a: u8, b: i16, c: bool, d: u32, e: i8) -> u32 {
    u32::from(a)
        .wrapping_add(b as u32)
        .wrapping_add(u32::from(c))
        .wrapping_add(d)
        .wrapping_add(e as u32)
}

/// The registers a guest would pass: 200, -2 (sign-extended), true,
/// 70 000, -100 (sign-extended).
const ARGS: [u64; 5] = [200, -2_i64 as u64, 1, 70_000, -100_i64 as u64];

/// The five conversions the `#[vmmcall]` wrapper of `narrow5` performs.
fn convert(r: [u64; 5]) -> Result<(u8, i16, bool, u32, i8), Error> {
    Ok((
        u8::from_reg(r[0])?,
        i16::from_reg(r[1])?,
        bool::from_reg(r[2])?,
        u32::from_reg(r[3])?,
        i8::from_reg(r[4])?,
    ))
}

fn bench_marshal(c: &mut Criterion) {
    let registry = Registry::global().expect("the bench's handlers form a registry");
    let null_number = registry.lookup(b"null").expect("null is registered").get();
    let narrow_number = registry
        .lookup(b"narrow5")
        .expect("narrow5 is registered")
        .get();
    let mut vcpu = MockVcpu::new();
    [
        vcpu.regs.rbx,
        vcpu.regs.rcx,
        vcpu.regs.rdx,
        vcpu.regs.rsi,
        vcpu.regs.rdi,
    ] = ARGS;

    let mut group = c.benchmark_group("marshal");
    group.bench_function("from_reg_x5", |b| {
        b.iter(|| black_box(convert(black_box(ARGS))))
    });
    group.bench_function("dispatch_null", |b| {
        b.iter(|| {
            vcpu.regs.rax = black_box(null_number);
            black_box(dispatch(registry, black_box(&mut vcpu)))
        })
    });
    group.bench_function("dispatch_narrow5", |b| {
        b.iter(|| {
            vcpu.regs.rax = black_box(narrow_number);
            black_box(dispatch(registry, black_box(&mut vcpu)))
        })
    });
    group.finish();
    vcpu.regs.rax = narrow_number;
    dispatch(registry, &mut vcpu);
    assert_eq!(
        vcpu.regs.rax,
        200 - 2 + 1 + 70_000 - 100,
        "narrow5 got its arguments"
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_marshal(&mut c);
    c.final_summary();
}
