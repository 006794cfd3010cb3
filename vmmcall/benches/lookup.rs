//! Host benchmark: name lookup with 10, 1 000 and 100 000 registered names,
//! next to a BitVisor-style table as the baseline.
//!
//! - `lookup/registry/N`: [`Registry::lookup`] (FNV-1a hash, open
//!   addressing, then one full name comparison), over a registry of `N`
//!   handlers built with [`Registry::new`].
//! - `lookup/linear_strcmp/N`: the baseline, written here: an array of
//!   NUL-terminated names scanned in order with a C-style `strcmp` until
//!   one matches, the way BitVisor's `vmmcall` looks a name up.
//!
//! Both get the same names (`hypercall_000000` .. `hypercall_{N-1:06}`, all
//! 16 bytes so that only the count differs between sizes, built at
//! run time and leaked to get `&'static str`) and the same query sequence:
//! 1 024 registered names picked uniformly at random (fixed seed), one
//! lookup per iteration, cycling through them. So the baseline scans `N/2`
//! entries on average, and every lookup is a hit.
//!
//! Run with `cargo bench -p vmmcall --bench lookup`; `cargo xtask bench`
//! runs it in a quick configuration and prints the scaling ratios.

use criterion::{BenchmarkId, Criterion};
use std::hint::black_box;
use vmmcall::{Caller, Error, Handler, Registry};

/// Registry sizes.
const SIZES: [usize; 3] = [10, 1_000, 100_000];
/// Queries per size.
const QUERIES: usize = 1_024;

/// Every synthetic handler runs this (lookup never calls it).
fn nop(_: &mut Caller<'_>) -> Result<u64, Error> {
    Ok(0)
}

/// `n` names, leaked: `hypercall_0`, `hypercall_1`, ...
fn names(n: usize) -> Vec<&'static str> {
    (0..n)
        .map(|i| &*Box::leak(format!("hypercall_{i:06}").into_boxed_str()))
        .collect()
}

/// `QUERIES` indices in `0..n`, uniformly spread by a fixed-seed LCG.
fn queries(n: usize) -> Vec<usize> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..QUERIES)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((x >> 33) as usize) % n
        })
        .collect()
}

/// The baseline: BitVisor-style entries, a NUL-terminated name and a
/// function number, scanned linearly.
struct LinearTable {
    entries: Vec<(&'static [u8], u64)>,
}

impl LinearTable {
    fn new(names: &[&'static str]) -> Self {
        let entries = names
            .iter()
            .zip(1u64..)
            .map(|(n, number)| {
                let mut bytes = n.as_bytes().to_vec();
                bytes.push(0);
                (&*Box::leak(bytes.into_boxed_slice()), number)
            })
            .collect();
        LinearTable { entries }
    }

    /// The number of the entry named `name` (NUL-terminated), 0 if none.
    fn lookup(&self, name: &[u8]) -> u64 {
        for &(entry, number) in &self.entries {
            if strcmp(entry, name) == 0 {
                return number;
            }
        }
        0
    }
}

/// C `strcmp` on NUL-terminated byte strings: compare byte by byte until a
/// difference or the terminating NUL.
fn strcmp(a: &[u8], b: &[u8]) -> i32 {
    let mut i = 0;
    loop {
        let (x, y) = (
            a.get(i).copied().unwrap_or(0),
            b.get(i).copied().unwrap_or(0),
        );
        if x != y || x == 0 {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
}

fn bench_lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("lookup");
    for n in SIZES {
        let names = names(n);
        let handlers: &'static [Handler] = Box::leak(
            names
                .iter()
                .map(|name| Handler::new(name, true, nop))
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        );
        let registry = Registry::new(handlers).expect("distinct valid names");
        let linear = LinearTable::new(&names);
        let picks = queries(n);
        let plain: Vec<&'static [u8]> = picks.iter().map(|&i| names[i].as_bytes()).collect();
        let with_nul: Vec<Vec<u8>> = plain
            .iter()
            .map(|p| {
                let mut v = p.to_vec();
                v.push(0);
                v
            })
            .collect();
        // Both find the same numbers: the registry numbers by sorted name,
        // the table by position, so compare names, not numbers.
        for (p, q) in plain.iter().zip(&with_nul) {
            let r = registry.lookup(p).expect("registered").get();
            assert_eq!(registry.get(r).expect("numbered").name().as_bytes(), *p);
            assert_ne!(linear.lookup(q), 0);
        }

        group.bench_with_input(BenchmarkId::new("registry", n), &n, |b, _| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % QUERIES;
                black_box(registry.lookup(black_box(plain[i])))
            })
        });
        group.bench_with_input(BenchmarkId::new("linear_strcmp", n), &n, |b, _| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % QUERIES;
                black_box(linear.lookup(black_box(&with_nul[i])))
            })
        });
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_lookup(&mut c);
    c.final_summary();
}
