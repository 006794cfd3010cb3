//! The benchmark example, Linux side: what a hypercall costs a ring-3
//! process of an unmodified Linux guest, next to a CPUID exit and a system
//! call, timed with RDTSC in one run.
//!
//! Three measurements, interleaved in one loop (the order rotates every
//! iteration):
//!
//! - **hypercall**: `call!("null")` with its number cached (looked up in
//!   the warm-up): the SDK's call site, the VM exit from CPL 3, the VMM's
//!   dispatch of a `user` handler, the VM entry;
//! - **cpuid**: `CPUID` leaf `0x4000_0001` from CPL 3: the same exit and
//!   entry, answered by the VMM's run loop before any framework code;
//! - **syscall**: `getpid()` as a system call (`syscall(SYS_getpid)`): a
//!   ring transition into the guest kernel and back, without any exit.
//!
//! It prints the median and 99th percentile of each and
//! `bench-linux: hypercall/cpuid = R`, `bench-linux: hypercall/syscall =
//! S` (ratios of medians), which `cargo xtask bench` reads
//! (`docs/BENCHMARKS.md`). Interrupts stay on: Linux's timer lands in some
//! samples, which shows in p99, not in the median.
//!
//! Without the VMM it says so and exits 1, never by SIGILL.

use guest_sdk::{call, Error};
use std::process::ExitCode;

/// Measured iterations; each times all three measurements once. Modest:
/// under Bochs the Linux boot (about 30 s) dominates the run either way.
const ITERS: usize = 5_000;
/// Iterations run first and thrown away (fills the call-site cache).
const WARMUP: usize = 100;
/// The measurements, in the order of the sample arrays.
const KINDS: [&str; 3] = ["hypercall", "cpuid", "syscall"];
/// Number of measurements.
const N: usize = KINDS.len();

/// The timestamp counter after all earlier instructions completed.
#[inline(always)]
fn tsc() -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: LFENCE and RDTSC only read the time-stamp counter into
    // EDX:EAX (Linux leaves CR4.TSD clear, so ring 3 may); no memory, no
    // stack, no flags.
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

/// Ticks from `start` to `end`, saturated to `u32`.
fn elapsed(start: u64, end: u64) -> u32 {
    u32::try_from(end.wrapping_sub(start)).unwrap_or(u32::MAX)
}

/// One sample of measurement `kind`; `Err` if a call misbehaved.
#[inline(always)]
fn sample(kind: usize, pid: i64) -> Result<u32, Error> {
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
        _ => {
            let t0 = tsc();
            // SAFETY: getpid takes no arguments and cannot fail.
            let r = unsafe { libc::syscall(libc::SYS_getpid) };
            let t1 = tsc();
            if r == pid {
                Ok(elapsed(t0, t1))
            } else {
                Err(Error::Invalid)
            }
        }
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

impl std::fmt::Display for Ratio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let milli = self.0.saturating_mul(1000).checked_div(self.1).unwrap_or(0);
        write!(f, "{}.{:03}", milli / 1000, milli % 1000)
    }
}

fn run() -> Result<(), Error> {
    guest_sdk::detect().ok_or(Error::NotPresent)?;
    // SAFETY: getpid takes no arguments and cannot fail.
    let pid = unsafe { libc::syscall(libc::SYS_getpid) };
    let mut samples = vec![vec![0u32; ITERS]; N];
    println!(
        "bench-linux: iterations={ITERS} warmup={WARMUP} from ring 3 (interleaved, order \
         rotating per iteration; ticks = RDTSC)"
    );
    for i in 0..WARMUP {
        for j in 0..N {
            sample((i + j) % N, pid)?;
        }
    }
    for i in 0..ITERS {
        for j in 0..N {
            let kind = (i + j) % N;
            let ticks = sample(kind, pid)?;
            if let Some(slot) = samples.get_mut(kind).and_then(|s| s.get_mut(i)) {
                *slot = ticks;
            }
        }
    }
    let mut medians = [0u64; N];
    for (kind, s) in samples.iter_mut().enumerate() {
        let (median, p99) = median_p99(s);
        let name = KINDS.get(kind).copied().unwrap_or("?");
        println!("bench-linux: {name} median={median} p99={p99} ticks");
        if let Some(m) = medians.get_mut(kind) {
            *m = u64::from(median);
        }
    }
    let [hypercall, cpuid, syscall] = medians;
    println!("bench-linux: hypercall/cpuid = {}", Ratio(hypercall, cpuid));
    println!(
        "bench-linux: hypercall/syscall = {}",
        Ratio(hypercall, syscall)
    );
    println!("bench-linux: done");
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::NotPresent) => {
            println!("bench-linux: the vmmcall VMM is not present");
            ExitCode::FAILURE
        }
        Err(e) => {
            println!("bench-linux: a measured call failed: {e:?}");
            ExitCode::FAILURE
        }
    }
}
