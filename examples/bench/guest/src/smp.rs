//! `bench: smpN/smp1`: what a null hypercall costs while every vCPU makes
//! them at once, against one vCPU alone, in one run (`cargo xtask bench`
//! boots the bench example a second time with `--cpus 4` for it).
//!
//! vCPU 0 first times [`CALLS`] null hypercalls alone (the other vCPUs
//! wait in the VMM, not started). Then it starts the others; all wait for
//! one flag and time [`CALLS`] calls each at the same moment. The figure
//! is the mean of the vCPUs' medians over the lone median. Each sample is
//! one `direct` call (inline asm, the number in RAX): the VMM's side,
//! where a shared cache line or a lock would show.
//!
//! Under Bochs all CPUs share one host thread and advance the emulated
//! clock together, so the ticks one call takes on one CPU are comparable
//! alone and with the others busy: the ratio shows every instruction the
//! VMM adds when vCPUs call at once (a lock, a retry loop). Bochs models
//! no caches, so a cache line bouncing between CPUs does not show; that
//! no per-call write shares a line is a property of the code
//! (`vmm_core::smp::Slot`, vmmcall's counter shards). Under QEMU's
//! single-threaded TCG the guest's RDTSC is the host's clock, which the
//! vCPUs share in turns: that ratio is not a cost.

use crate::{direct, elapsed, tsc};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use guest_rt::println;
use guest_sdk::Instruction;

/// Calls timed per vCPU and phase.
const CALLS: usize = 3000;
/// Calls first made and thrown away.
const WARMUP: usize = 100;

static GO: AtomicBool = AtomicBool::new(false);
static DONE: AtomicU64 = AtomicU64::new(0);
static MEDIANS: [AtomicU32; 8] = [const { AtomicU32::new(0) }; 8];
static NUMBER: AtomicU64 = AtomicU64::new(0);
static AMD: AtomicBool = AtomicBool::new(false);

#[repr(C, align(16))]
struct Stack([u8; 65536]);
static mut STACKS: [Stack; 8] = [const { Stack([0; 65536]) }; 8];

/// The median of `CALLS` timed null hypercalls on this vCPU.
fn median(insn: Instruction, number: u64) -> u32 {
    let mut s = [0u32; CALLS];
    for _ in 0..WARMUP {
        direct(insn, number);
    }
    for slot in s.iter_mut() {
        let t0 = tsc();
        direct(insn, number);
        *slot = elapsed(t0, tsc());
    }
    s.sort_unstable();
    s[CALLS / 2]
}

fn insn() -> Instruction {
    if AMD.load(Ordering::SeqCst) {
        Instruction::Vmmcall
    } else {
        Instruction::Vmcall
    }
}

extern "C" fn ap(_arg: u64, id: u64) -> ! {
    while !GO.load(Ordering::SeqCst) {
        core::hint::spin_loop();
    }
    let m = median(insn(), NUMBER.load(Ordering::SeqCst));
    if let Some(slot) = MEDIANS.get(id as usize) {
        slot.store(m, Ordering::SeqCst);
    }
    DONE.fetch_add(1, Ordering::SeqCst);
    loop {
        // An exit now and then: the VMM's run budget (VMX) stops a
        // bare-metal vCPU that runs 2^30 TSC ticks without one.
        core::arch::x86_64::__cpuid(0);
    }
}

/// Run the measurement on `n` vCPUs and print `bench: smpN/smp1 = R`.
pub fn run(n: u64, insn: Instruction, number: u64) -> Result<(), guest_sdk::Error> {
    NUMBER.store(number, Ordering::SeqCst);
    AMD.store(insn == Instruction::Vmmcall, Ordering::SeqCst);
    let alone = median(insn, number);
    for i in 1..n {
        let top = core::ptr::addr_of!(STACKS) as u64 + (i + 1) * 65536;
        guest_rt::vcpu::start(i, ap, top, 0)?;
    }
    GO.store(true, Ordering::SeqCst);
    MEDIANS[0].store(median(insn, number), Ordering::SeqCst);
    while DONE.load(Ordering::SeqCst) < n - 1 {
        // A CPUID exit now and then (see `ap`).
        core::arch::x86_64::__cpuid(0);
    }
    let medians: [u32; 8] = core::array::from_fn(|i| MEDIANS[i].load(Ordering::SeqCst));
    let used = &medians[..n as usize];
    let mean = used.iter().map(|&m| u64::from(m)).sum::<u64>() as f64 / n as f64;
    println!("bench: smp1 median={alone} cycles (vCPU 0 alone, {CALLS} calls)");
    println!("bench: smp{n} medians={used:?} cycles ({n} vCPUs at once, {CALLS} calls each)");
    println!("bench: smp{n}/smp1 = {:.3}", mean / f64::from(alone.max(1)));
    Ok(())
}
