//! Long calls in steps and `vmmcall_batch` (docs/ABI.md, "Long calls" and
//! "Function `1 << 40 | 2`: `vmmcall_batch`"), on the mock vCPU.

use proptest::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use vmmcall::abi::{
    is_error, BatchEntry, BATCH, BATCH_ENTRY_SIZE, BATCH_MAX_ENTRIES, BATCH_PHYSICAL,
    BATCH_STOP_ON_ERROR, DESCRIBE, DESCRIBE_LONG,
};
use vmmcall::mock::{MockStepper, MockVcpu};
use vmmcall::step::{Continuations, Site, CONTINUATION_SLOTS};
use vmmcall::{dispatch, vmmcall, Caller, Error, GuestAddr, Outcome, Registry};

const PAGE: u64 = 4096;

/// `len` bytes at `addr` become `byte`, one page per step.
#[vmmcall("t_fill", user, long)]
fn t_fill(cx: &mut Caller, addr: GuestAddr, len: u64, byte: u8) -> Result<u64, Error> {
    let [mut done, ..] = cx.progress();
    while done < len {
        let at = addr.get().wrapping_add(done);
        let n = (PAGE - at % PAGE).min(len - done);
        cx.write(GuestAddr(at), &[byte; PAGE as usize][..n as usize])?;
        done += n;
        if done < len {
            cx.step([done, 0, 0, 0])?;
        }
    }
    Ok(len)
}

/// FNV-1a of `len` bytes at `addr`, one page per step (the running hash
/// is progress too).
#[vmmcall("t_sum", user, long)]
fn t_sum(cx: &mut Caller, addr: GuestAddr, len: u64) -> Result<u64, Error> {
    let [mut done, mut hash, ..] = cx.progress();
    if done == 0 {
        hash = 0xcbf2_9ce4_8422_2325;
    }
    let mut buf = [0u8; PAGE as usize];
    while done < len {
        let at = addr.get().wrapping_add(done);
        let n = (PAGE - at % PAGE).min(len - done);
        cx.read(GuestAddr(at), &mut buf[..n as usize])?;
        for b in &buf[..n as usize] {
            hash = (hash ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
        done += n;
        if done < len {
            cx.step([done, hash, 0, 0])?;
        }
    }
    Ok(hash >> 1)
}

/// Kernel-only: copies `len` bytes from `src` to `dst`, one page per step.
#[vmmcall("t_copy", long)]
fn t_copy(cx: &mut Caller, src: GuestAddr, dst: GuestAddr, len: u64) -> Result<u64, Error> {
    let [mut done, ..] = cx.progress();
    let mut buf = [0u8; PAGE as usize];
    while done < len {
        let n = (PAGE - src.get().wrapping_add(done) % PAGE).min(len - done);
        cx.read(
            GuestAddr(src.get().wrapping_add(done)),
            &mut buf[..n as usize],
        )?;
        cx.write(GuestAddr(dst.get().wrapping_add(done)), &buf[..n as usize])?;
        done += n;
        if done < len {
            cx.step([done, 0, 0, 0])?;
        }
    }
    Ok(len)
}

static BUMPS: AtomicU64 = AtomicU64::new(0);

#[vmmcall("t_add", user)]
fn t_add(a: u64, b: u64) -> u64 {
    a.wrapping_add(b)
}

/// A side effect the VMM can see: how often it ran.
#[vmmcall("t_bump", user)]
fn t_bump() -> u64 {
    BUMPS.fetch_add(1, Ordering::SeqCst) + 1
}

#[vmmcall("t_kernel")]
fn t_kernel() -> u32 {
    9
}

#[vmmcall("t_fails", user)]
fn t_fails() -> Result<u64, Error> {
    Err(Error::Io)
}

/// A plain handler that calls `step`: it must never yield.
#[vmmcall("t_plain_steps", user)]
fn t_plain_steps(cx: &mut Caller) -> Result<u64, Error> {
    for i in 0..1000 {
        cx.step([i, 0, 0, 0])?;
    }
    Ok(1)
}

vmmcall::exit_hypercall!();

vmmcall::interface! {
    /// An interface with a long call.
    pub mod lz {
        /// `out` becomes `byte`, one page per step.
        #[user]
        #[long]
        fn lz_fill(out: &mut [u8], byte: u8) -> u64;
    }
}

struct Lz;

#[vmmcall::vmmcall]
impl lz::Handlers for Lz {
    fn lz_fill(cx: &mut Caller<'_>, out: vmmcall::GuestBufMut, byte: u8) -> Result<u64, Error> {
        let [mut done, ..] = cx.progress();
        while done < out.len() {
            let at = out.addr().get().wrapping_add(done);
            let n = (PAGE - at % PAGE).min(out.len() - done);
            out.write_at(cx, done, &[byte; PAGE as usize][..n as usize])?;
            done += n;
            if done < out.len() {
                cx.step([done, 0, 0, 0])?;
            }
        }
        Ok(out.len())
    }
}

fn reg() -> &'static Registry<'static> {
    Registry::global().expect("registry")
}

fn num(name: &str) -> u64 {
    reg().lookup(name.as_bytes()).expect(name).get()
}

/// A vCPU with `pages` user-writable pages at 0x10_0000 and steps on.
fn vcpu_with(pages: u64, budget: u32) -> MockVcpu {
    let mut v = MockVcpu::new();
    for p in 0..pages {
        v.map(0x10_0000 + p * PAGE, true, true);
    }
    v.stepper = Some(MockStepper {
        continuations: Continuations::new().with_budget(budget),
        site: Site {
            rip: 0x4000,
            paging_root: 0x9000,
            paging_mode: 1,
        },
        ..MockStepper::default()
    });
    v
}

fn set_call(v: &mut MockVcpu, number: u64, args: [u64; 5]) {
    v.regs.rax = number;
    [v.regs.rbx, v.regs.rcx, v.regs.rdx, v.regs.rsi, v.regs.rdi] = args;
}

/// Execute the call until it finishes, as a guest re-executing the
/// instruction does; returns the number of exits. Panics after 100 000.
fn run_to_end(v: &mut MockVcpu) -> (Outcome, u64) {
    for exits in 1..=100_000 {
        let rax = v.regs.rax;
        let out = dispatch(reg(), v);
        if !out.pending {
            return (out, exits);
        }
        assert_eq!(v.regs.rax, rax, "a yield leaves RAX");
    }
    panic!("the call never finished");
}

fn memory(v: &MockVcpu, pages: u64) -> Vec<u8> {
    v.peek(0x10_0000, (pages * PAGE) as usize)
}

/// One case per step-wise function: the registers and memory to start
/// from, given a seed.
fn case(name: &str, seed: u64, v: &mut MockVcpu) {
    let base = 0x10_0000u64;
    let mut x = seed | 1;
    for a in (0..8 * PAGE).step_by(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.poke(base + a, &x.to_le_bytes());
    }
    let off = seed % 3000;
    let len = 1 + seed % (3 * PAGE + 17);
    match name {
        "t_fill" | "lz_fill" => set_call(v, num(name), [base + off, len, seed & 0xFF, 0, 0]),
        "t_sum" => set_call(v, num(name), [base + off, len, 0, 0, 0]),
        "t_copy" => set_call(
            v,
            num(name),
            [base + off, base + 4 * PAGE + off / 2, len, 0, 0],
        ),
        BATCH_CASE => {
            // Mixed entries, long ones among them, and a failing one.
            let list = base + 7 * PAGE;
            let results = base + 7 * PAGE + 2048;
            let entries = [
                BatchEntry::new(num("t_fill"), [base, len, 0x5A, 0, 0]),
                BatchEntry::new(num("t_add"), [seed, 3, 0, 0, 0]),
                BatchEntry::new(num("t_sum"), [base + off, len, 0, 0, 0]),
                BatchEntry::new(num("t_fails"), [0; 5]),
                BatchEntry::new(num("t_copy"), [base, base + 4 * PAGE, len, 0, 0]),
                BatchEntry::new(BATCH, [0; 5]),
            ];
            for (i, e) in entries.iter().enumerate() {
                v.poke(list + i as u64 * BATCH_ENTRY_SIZE, &e.to_bytes());
            }
            set_call(v, BATCH, [list, entries.len() as u64, results, 0, 0]);
        }
        other => panic!("no case for step-wise handler {other}: add one"),
    }
}

const BATCH_CASE: &str = "vmmcall_batch";

/// Every step-wise function: the `long` handlers of the registry, and the
/// batch.
fn step_wise() -> Vec<&'static str> {
    let mut names: Vec<&str> = reg()
        .iter()
        .filter(|(_, h)| h.is_long())
        .map(|(_, h)| h.name())
        .collect();
    names.push(BATCH_CASE);
    names
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random preemption points (interrupts pending after random steps,
    /// random budgets) give the result and memory of an uninterrupted
    /// run, for every step-wise function.
    #[test]
    fn preemption_never_changes_the_result(
        seed in any::<u64>(),
        budget in 1u32..6,
        interrupts in proptest::collection::vec(any::<bool>(), 0..64),
    ) {
        for name in step_wise() {
            let mut plain = vcpu_with(8, 1);
            plain.stepper = None;
            case(name, seed, &mut plain);
            let (want, exits) = run_to_end(&mut plain);
            prop_assert_eq!(exits, 1);

            let mut stepped = vcpu_with(8, budget);
            case(name, seed, &mut stepped);
            stepped.stepper.as_mut().unwrap().interrupts = interrupts.iter().copied().collect();
            let (got, _) = run_to_end(&mut stepped);
            prop_assert_eq!(got.result, want.result, "{}", name);
            prop_assert_eq!(stepped.regs.rax, plain.regs.rax, "{}", name);
            prop_assert_eq!(memory(&stepped, 8), memory(&plain, 8), "{}", name);
            prop_assert_eq!(stepped.stepper.as_ref().unwrap().continuations.in_progress(), 0);
        }
    }
}

#[test]
fn every_long_handler_has_a_case() {
    for name in step_wise() {
        let mut v = vcpu_with(8, 1);
        case(name, 7, &mut v); // panics for a step-wise handler without one
    }
    assert!(step_wise().len() >= 5);
}

#[test]
fn budget_bounds_every_exit_and_interrupts_wait_one_step() {
    // 8 pages, budget 3: steps after pages 1..7, a yield every 3 steps.
    let mut v = vcpu_with(8, 3);
    set_call(&mut v, num("t_fill"), [0x10_0000, 8 * PAGE, 0xEE, 0, 0]);
    let (out, exits) = run_to_end(&mut v);
    assert_eq!((out.result, exits), (Ok(8 * PAGE), 3));
    assert_eq!(memory(&v, 8), vec![0xEE; 8 * PAGE as usize]);

    // An interrupt pending after the first step: the call yields there.
    let mut v = vcpu_with(8, 256);
    v.stepper.as_mut().unwrap().interrupts = [true].into();
    set_call(&mut v, num("t_fill"), [0x10_0000, 8 * PAGE, 0xEE, 0, 0]);
    let first = dispatch(reg(), &mut v);
    assert!(first.pending);
    assert_eq!(v.peek(0x10_0000 + PAGE, 1), [0], "one page filled, no more");
    assert_eq!(v.peek(0x10_0000, 1), [0xEE]);
    let (out, exits) = run_to_end(&mut v);
    assert_eq!((out.result, exits), (Ok(8 * PAGE), 1));
    // Counted once, although it took two exits.
    assert_eq!(v.stepper.as_ref().unwrap().checks, 7);
}

#[test]
fn without_a_stepper_a_long_call_runs_in_one_exit() {
    let mut v = vcpu_with(8, 1);
    v.stepper = None;
    set_call(&mut v, num("t_fill"), [0x10_0000, 8 * PAGE, 1, 0, 0]);
    let out = dispatch(reg(), &mut v);
    assert!(!out.pending);
    assert_eq!(v.regs.rax, 8 * PAGE);
}

#[test]
fn a_plain_handler_never_yields() {
    let mut v = vcpu_with(1, 1);
    v.stepper.as_mut().unwrap().interrupts = vec![true; 1000].into();
    set_call(&mut v, num("t_plain_steps"), [0; 5]);
    let out = dispatch(reg(), &mut v);
    assert_eq!((out.pending, v.regs.rax), (false, 1));
    assert_eq!(v.stepper.as_ref().unwrap().checks, 0);
}

/// Start an 8-page fill of 0xAA that yields after its first page.
fn fill_yielded() -> MockVcpu {
    let mut v = vcpu_with(8, 1);
    set_call(&mut v, num("t_fill"), [0x10_0000, 8 * PAGE, 0xAA, 0, 0]);
    assert!(dispatch(reg(), &mut v).pending);
    assert_eq!(v.peek(0x10_0000, 1), [0xAA]);
    v
}

#[test]
fn the_same_call_continues_from_the_vmm_state() {
    let mut v = fill_yielded();
    // The guest clears the first page: a continuation does not fill it
    // again (a restart would).
    v.poke(0x10_0000, &[0; PAGE as usize]);
    run_to_end(&mut v);
    assert_eq!(v.peek(0x10_0000, 1), [0]);
    assert_eq!(v.peek(0x10_0000 + PAGE, 1), [0xAA]);
}

#[test]
fn changed_registers_make_a_new_call() {
    let mut v = fill_yielded();
    v.poke(0x10_0000, &[0; PAGE as usize]);
    v.regs.rdx = 0xBB; // another byte: another call, from the beginning
    run_to_end(&mut v);
    assert_eq!(memory(&v, 8), vec![0xBB; 8 * PAGE as usize]);
}

#[test]
fn changed_rip_or_paging_make_a_new_call() {
    for change in 0..3 {
        let mut v = fill_yielded();
        v.poke(0x10_0000, &[0; PAGE as usize]);
        let site = &mut v.stepper.as_mut().unwrap().site;
        match change {
            0 => site.rip += 3,
            1 => site.paging_root = 0xA000,
            _ => site.paging_mode = 2,
        }
        run_to_end(&mut v);
        assert_eq!(v.peek(0x10_0000, 1), [0xAA], "change {change}: restarted");
    }
}

#[test]
fn changed_cpl_is_checked_as_a_new_call() {
    let mut v = vcpu_with(8, 1);
    set_call(
        &mut v,
        num("t_copy"),
        [0x10_0000, 0x10_0000 + 4 * PAGE, 3 * PAGE, 0, 0],
    );
    v.poke(0x10_0000, &[7; 3 * PAGE as usize]);
    assert!(dispatch(reg(), &mut v).pending);
    // Ring 3 re-executes the kernel-only call: refused, nothing copied.
    v.cpl = 3;
    let out = dispatch(reg(), &mut v);
    assert_eq!((out.pending, out.result), (false, Err(Error::Permission)));
    assert_eq!(v.peek(0x10_0000 + 5 * PAGE, 1), [0]);
    // Back at CPL 0 (the same call again), it continues.
    v.cpl = 0;
    set_call(
        &mut v,
        num("t_copy"),
        [0x10_0000, 0x10_0000 + 4 * PAGE, 3 * PAGE, 0, 0],
    );
    run_to_end(&mut v);
    assert_eq!(
        v.peek(0x10_0000 + 4 * PAGE, 3 * PAGE as usize),
        vec![7; 3 * PAGE as usize]
    );
}

#[test]
fn changed_memory_is_read_afresh_and_unmapped_memory_faults() {
    // t_sum over 2 pages, yields after the first: the guest changes the
    // second page, the result covers the new bytes.
    let mut v = vcpu_with(8, 1);
    set_call(&mut v, num("t_sum"), [0x10_0000, 2 * PAGE, 0, 0, 0]);
    assert!(dispatch(reg(), &mut v).pending);
    v.poke(0x10_0000 + PAGE, &[9; PAGE as usize]);
    let (out, _) = run_to_end(&mut v);
    let mut reference = vcpu_with(8, 1);
    reference.poke(0x10_0000 + PAGE, &[9; PAGE as usize]);
    set_call(&mut reference, num("t_sum"), [0x10_0000, 2 * PAGE, 0, 0, 0]);
    assert_eq!(out.result, run_to_end(&mut reference).0.result);

    let mut v = fill_yielded();
    v.unmap(0x10_0000 + PAGE);
    let (out, _) = run_to_end(&mut v);
    assert_eq!(out.result, Err(Error::Fault));
    assert_eq!(v.stepper.as_ref().unwrap().continuations.in_progress(), 0);
}

#[test]
fn calls_from_an_interrupt_handler_leave_the_call_in_progress() {
    let mut v = fill_yielded();
    v.poke(0x10_0000, &[0; PAGE as usize]);
    let saved = v.regs;
    // A plain call, then a long one from another RIP, in the handler.
    set_call(&mut v, num("t_add"), [1, 2, 0, 0, 0]);
    assert_eq!(dispatch(reg(), &mut v).result, Ok(3));
    v.stepper.as_mut().unwrap().site.rip = 0x8000;
    set_call(
        &mut v,
        num("t_fill"),
        [0x10_0000 + 7 * PAGE, PAGE, 0x11, 0, 0],
    );
    run_to_end(&mut v);
    // The interrupted call continues (page 0 stays cleared).
    v.stepper.as_mut().unwrap().site.rip = 0x4000;
    v.regs = saved;
    run_to_end(&mut v);
    assert_eq!(v.peek(0x10_0000, 1), [0]);
    assert_eq!(v.peek(0x10_0000 + 6 * PAGE, 1), [0xAA]);
}

#[test]
fn more_nested_long_calls_than_slots_restart_the_oldest() {
    let mut v = fill_yielded();
    v.poke(0x10_0000, &[0; PAGE as usize]);
    let saved = v.regs;
    for k in 0..CONTINUATION_SLOTS as u64 {
        v.stepper.as_mut().unwrap().site.rip = 0x8000 + k;
        set_call(&mut v, num("t_fill"), [0x10_0000, 2 * PAGE, 0x20, 0, 0]);
        assert!(dispatch(reg(), &mut v).pending);
    }
    assert_eq!(
        v.stepper.as_ref().unwrap().continuations.in_progress(),
        CONTINUATION_SLOTS
    );
    v.stepper.as_mut().unwrap().site.rip = 0x4000;
    v.regs = saved;
    run_to_end(&mut v);
    assert_eq!(memory(&v, 8), vec![0xAA; 8 * PAGE as usize], "restarted");
}

#[test]
fn describe_reports_long() {
    let mut v = MockVcpu::new();
    set_call(&mut v, DESCRIBE, [num("lz_fill"), 0, 0, 0, 0]);
    assert_ne!(
        dispatch(reg(), &mut v).result.unwrap() & DESCRIBE_LONG,
        0,
        "declared #[long] in an interface"
    );
    set_call(&mut v, DESCRIBE, [num("t_fill"), 0, 0, 0, 0]);
    assert_ne!(dispatch(reg(), &mut v).result.unwrap() & DESCRIBE_LONG, 0);
    set_call(&mut v, DESCRIBE, [num("t_add"), 0, 0, 0, 0]);
    assert_eq!(dispatch(reg(), &mut v).result.unwrap() & DESCRIBE_LONG, 0);
}

// ---- batches ----

const LIST: u64 = 0x20_0000;
const RESULTS: u64 = 0x30_0000;

/// A vCPU with the list and results areas mapped (user, writable), no
/// steps, the results filled with a sentinel.
fn batch_vcpu(entries: &[BatchEntry]) -> MockVcpu {
    let mut v = MockVcpu::new();
    let list_pages = (entries.len() as u64 * BATCH_ENTRY_SIZE)
        .div_ceil(PAGE)
        .max(1);
    for p in 0..list_pages {
        v.map(LIST + p * PAGE, true, true);
    }
    for p in 0..(entries.len() as u64 * 8).div_ceil(PAGE).max(1) {
        v.map(RESULTS + p * PAGE, true, true);
    }
    for (i, e) in entries.iter().enumerate() {
        v.poke(LIST + i as u64 * BATCH_ENTRY_SIZE, &e.to_bytes());
    }
    v.poke(RESULTS, &vec![0xEE; entries.len() * 8]);
    set_call(&mut v, BATCH, [LIST, entries.len() as u64, RESULTS, 0, 0]);
    v
}

fn results(v: &MockVcpu, n: usize) -> Vec<u64> {
    v.peek(RESULTS, n * 8)
        .chunks(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

const SENTINEL: u64 = 0xEEEE_EEEE_EEEE_EEEE;

/// What each entry answers when called alone, on a copy of the vCPU.
fn alone(v: &MockVcpu, e: &BatchEntry) -> u64 {
    let mut one = v.clone();
    set_call(&mut one, e.number, e.args);
    dispatch(reg(), &mut one);
    one.regs.rax
}

#[test]
fn batch_of_32_mixed_entries_answers_each_as_alone() {
    let entries: Vec<BatchEntry> = (0..32u64)
        .map(|i| match i % 5 {
            0 => BatchEntry::new(num("t_add"), [i, 100, 0, 0, 0]),
            1 => BatchEntry::new(num("t_kernel"), [0; 5]),
            2 => BatchEntry::new(DESCRIBE, [0; 5]),
            3 => BatchEntry::new(0xdead, [0; 5]),
            _ => BatchEntry::new(num("t_fails"), [0; 5]),
        })
        .collect();
    for cpl in [0, 3] {
        let mut v = batch_vcpu(&entries);
        v.cpl = cpl;
        let want: Vec<u64> = entries.iter().map(|e| alone(&v, e)).collect();
        let before = reg().calls(num("t_add"));
        let out = dispatch(reg(), &mut v);
        assert_eq!((out.result, out.pending), (Ok(32), false));
        assert_eq!(results(&v, 32), want, "cpl {cpl}");
        assert!(reg().calls(num("t_add")) >= before + 7, "counted as alone");
        if cpl == 3 {
            assert_eq!(want[1], Error::Permission.to_rax());
        }
    }
}

#[test]
fn stop_on_error_stops_after_the_failing_entry() {
    let entries = [
        BatchEntry::new(num("t_add"), [1, 1, 0, 0, 0]),
        BatchEntry::new(num("t_fails"), [0; 5]),
        BatchEntry::new(num("t_bump"), [0; 5]),
    ];
    let mut v = batch_vcpu(&entries);
    v.regs.rsi = BATCH_STOP_ON_ERROR;
    let bumps = BUMPS.load(Ordering::SeqCst);
    assert_eq!(dispatch(reg(), &mut v).result, Ok(2));
    assert_eq!(results(&v, 3), [2, Error::Io.to_rax(), SENTINEL]);
    assert_eq!(BUMPS.load(Ordering::SeqCst), bumps, "the third did not run");

    // Without the flag every entry runs.
    let mut v = batch_vcpu(&entries);
    assert_eq!(dispatch(reg(), &mut v).result, Ok(3));
    let r = results(&v, 3);
    assert_eq!((r[0], r[1]), (2, Error::Io.to_rax()));
    assert!(!is_error(r[2]));
}

#[test]
fn a_batch_cannot_contain_a_batch() {
    let inner = [BatchEntry::new(num("t_bump"), [0; 5])];
    let mut v = batch_vcpu(&[
        BatchEntry::new(BATCH, [LIST + 0x800, 1, RESULTS + 0x800, 0, 0]),
        BatchEntry::new(num("t_add"), [2, 2, 0, 0, 0]),
    ]);
    v.poke(LIST + 0x800, &inner[0].to_bytes());
    let bumps = BUMPS.load(Ordering::SeqCst);
    assert_eq!(dispatch(reg(), &mut v).result, Ok(2));
    assert_eq!(results(&v, 2), [Error::Invalid.to_rax(), 4]);
    assert_eq!(BUMPS.load(Ordering::SeqCst), bumps);
}

#[test]
fn exit_in_a_batch_stops_it() {
    let mut v = batch_vcpu(&[
        BatchEntry::new(num("exit"), [5, 0, 0, 0, 0]),
        BatchEntry::new(num("t_bump"), [0; 5]),
    ]);
    let out = dispatch(reg(), &mut v);
    assert_eq!((out.result, out.stop), (Ok(1), Some(5)));
}

#[test]
fn bad_lists_and_results_are_refused_before_any_entry_runs() {
    let entries = [BatchEntry::new(num("t_bump"), [0; 5]); 4];
    let bumps = BUMPS.load(Ordering::SeqCst);
    let check = |setup: &dyn Fn(&mut MockVcpu), want: Error| {
        let mut v = batch_vcpu(&entries);
        setup(&mut v);
        let out = dispatch(reg(), &mut v);
        assert_eq!(out.result, Err(want));
        assert_eq!(v.regs.rax, want.to_rax());
    };
    // The list unmapped, or supervisor-only from ring 3.
    check(
        &|v| {
            v.unmap(LIST);
        },
        Error::Fault,
    );
    check(
        &|v| {
            v.map(LIST, false, true);
            v.cpl = 3;
        },
        Error::Fault,
    );
    // The results read-only, supervisor-only from ring 3, or unmapped.
    check(
        &|v| {
            v.map(RESULTS, true, false);
        },
        Error::Fault,
    );
    check(
        &|v| {
            v.map(RESULTS, false, true);
            v.cpl = 3;
        },
        Error::Fault,
    );
    check(
        &|v| {
            v.unmap(RESULTS);
        },
        Error::Fault,
    );
    // Huge counts, wrapping ranges, overlap, unknown flags.
    check(&|v| v.regs.rcx = BATCH_MAX_ENTRIES + 1, Error::Invalid);
    check(&|v| v.regs.rcx = u64::MAX, Error::Invalid);
    check(&|v| v.regs.rbx = u64::MAX - 100, Error::Fault);
    check(&|v| v.regs.rdx = u64::MAX - 16, Error::Fault);
    check(&|v| v.regs.rdx = LIST + 8, Error::Invalid);
    check(&|v| v.regs.rdx = LIST - 8, Error::Invalid);
    check(&|v| v.regs.rsi = 4, Error::Invalid);
    assert_eq!(BUMPS.load(Ordering::SeqCst), bumps, "nothing ran");

    // Count 0: 0, whatever the addresses (how a guest detects batches).
    let mut v = MockVcpu::new();
    set_call(&mut v, BATCH, [0, 0, 0, 0, 0]);
    assert_eq!(dispatch(reg(), &mut v).result, Ok(0));
}

#[test]
fn results_may_end_right_before_the_list() {
    let entries = [BatchEntry::new(num("t_add"), [1, 2, 0, 0, 0]); 2];
    let mut v = batch_vcpu(&entries);
    v.regs.rdx = LIST - 16; // adjacent, not overlapping
    v.map(LIST - 16, true, true);
    assert_eq!(dispatch(reg(), &mut v).result, Ok(2));
    assert_eq!(v.peek(LIST - 16, 8), 3u64.to_le_bytes());
}

#[test]
fn results_may_end_on_the_last_page_of_the_address_space() {
    // The results' last page is the address space's; the page after it
    // (0, unmapped here) is no part of them, at any CPL.
    let entries = [BatchEntry::new(num("t_add"), [1, 2, 0, 0, 0]); 20];
    for cpl in [0, 3] {
        let top = 0xFFFF_FFFF_FFFF_F000u64;
        let mut v = batch_vcpu(&entries);
        v.cpl = cpl;
        v.map(top, true, true);
        v.regs.rdx = top + (PAGE - 20 * 8);
        assert_eq!(dispatch(reg(), &mut v).result, Ok(20), "cpl {cpl}");
        assert_eq!(v.peek(top + (PAGE - 8), 8), 3u64.to_le_bytes());
    }
}

#[test]
fn a_long_batch_yields_and_reads_each_descriptor_once() {
    // 80 entries, three groups (32, 32, 16), a step per entry, a yield
    // only between groups: budgets up to 32 yield after each group, 64
    // after the second, 80 never.
    let entries: Vec<BatchEntry> = (0..80u64)
        .map(|i| BatchEntry::new(num("t_add"), [i, 1000, 0, 0, 0]))
        .collect();
    for (budget, want_exits) in [(1, 3), (32, 3), (33, 2), (64, 2), (65, 1), (80, 1)] {
        let mut v = batch_vcpu(&entries);
        v.stepper = vcpu_with(0, budget).stepper;
        let (out, exits) = run_to_end(&mut v);
        assert_eq!((out.result, exits), (Ok(80), want_exits), "budget {budget}");
        assert_eq!(results(&v, 80), (1000..1080).collect::<Vec<u64>>());
        assert_eq!(v.byte_read_twice(), None, "{:x?}", v.read_log());
    }

    // A long entry in progress keeps the descriptor it was read with:
    // the guest changing it between steps changes nothing.
    let mut v = batch_vcpu(&[BatchEntry::new(
        num("t_fill"),
        [0x10_0000, 4 * PAGE, 0x33, 0, 0],
    )]);
    for p in 0..4 {
        v.map(0x10_0000 + p * PAGE, true, true);
    }
    v.stepper = vcpu_with(0, 1).stepper;
    assert!(dispatch(reg(), &mut v).pending);
    v.poke(
        LIST,
        &BatchEntry::new(num("t_fill"), [0x10_0000, PAGE, 0x44, 0, 0]).to_bytes(),
    );
    let (out, _) = run_to_end(&mut v);
    assert_eq!(out.result, Ok(1));
    assert_eq!(results(&v, 1), [4 * PAGE]);
    assert_eq!(
        v.peek(0x10_0000, 4 * PAGE as usize),
        vec![0x33; 4 * PAGE as usize]
    );
}

#[test]
fn a_batch_reads_each_descriptor_once_across_steps() {
    // 20 entries in one group, every fifth a long fill of two pages that
    // yields inside (budget 1) with the rest of its group read: those
    // descriptors wait in the VMM. Interrupts at random make more yields.
    let entries: Vec<BatchEntry> = (0..20u64)
        .map(|i| match i % 5 {
            2 => BatchEntry::new(num("t_fill"), [0x10_0000 + i * 8, 2 * PAGE, i, 0, 0]),
            _ => BatchEntry::new(num("t_add"), [i, 7, 0, 0, 0]),
        })
        .collect();
    let mut v = batch_vcpu(&entries);
    v.stepper = vcpu_with(3, 1).stepper;
    for p in 0..3 {
        v.map(0x10_0000 + p * PAGE, true, true);
    }
    v.stepper.as_mut().unwrap().interrupts = [false, true, true, false, true].into();
    let (out, exits) = run_to_end(&mut v);
    assert_eq!(out.result, Ok(20));
    assert!(exits > 5, "{exits} exits");
    assert_eq!(v.byte_read_twice(), None, "{:x?}", v.read_log());
    let want: Vec<u64> = (0..20u64)
        .map(|i| if i % 5 == 2 { 2 * PAGE } else { i + 7 })
        .collect();
    assert_eq!(results(&v, 20), want);
    // The last fill (entry 17) wrote its two pages.
    assert_eq!(
        v.peek(0x10_0000 + 17 * 8, 2 * PAGE as usize),
        vec![17; 2 * PAGE as usize]
    );
}

#[test]
fn a_physical_batch_is_for_cpl_0_and_guest_ram() {
    let entries: Vec<BatchEntry> = (0..12u64)
        .map(|i| BatchEntry::new(num("t_add"), [i, 5, 0, 0, 0]))
        .collect();
    // The mock's mapped pages are its guest RAM, at the same addresses.
    let mut v = batch_vcpu(&entries);
    v.regs.rsi = BATCH_PHYSICAL;
    assert_eq!(dispatch(reg(), &mut v).result, Ok(12));
    assert_eq!(results(&v, 12), (5..17).collect::<Vec<u64>>());
    // Outside CPL 0: -EPERM, whatever the addresses, nothing runs.
    for cpl in 1..=3 {
        let mut v = batch_vcpu(&entries);
        v.regs.rsi = BATCH_PHYSICAL | BATCH_STOP_ON_ERROR;
        v.cpl = cpl;
        let out = dispatch(reg(), &mut v);
        assert_eq!(out.result, Err(Error::Permission));
        assert_eq!(results(&v, 12), vec![SENTINEL; 12]);
        assert!(v.read_log().is_empty());
    }
    // Not guest RAM: -EFAULT before any entry runs.
    let mut v = batch_vcpu(&entries);
    v.regs.rsi = BATCH_PHYSICAL;
    v.regs.rdx = 0x7000_0000;
    assert_eq!(dispatch(reg(), &mut v).result, Err(Error::Fault));
    assert!(
        v.read_log().is_empty(),
        "results are checked before the list is read"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Hostile batches: random registers and descriptors (numbers among
    /// the handlers, the built-ins, the batch itself and noise), pages
    /// mapped or not, user or not, writable or not, any CPL, with and
    /// without steps. Never a panic or a loop; only RAX changes; RAX is
    /// an error or at most the count; the list is read once.
    #[test]
    fn hostile_batches_end_in_a_documented_result(
        words in proptest::collection::vec(any::<u64>(), 48),
        picks in proptest::collection::vec(0usize..8, 8),
        regs in proptest::array::uniform5(any::<u64>()),
        pages in proptest::collection::vec((any::<bool>(), any::<bool>(), any::<bool>()), 4),
        cpl in 0u8..4,
        near in any::<bool>(),
        stepped in any::<bool>(),
    ) {
        let mut v = MockVcpu::new();
        v.cpl = cpl;
        for (i, &(mapped, user, writable)) in pages.iter().enumerate() {
            if mapped {
                v.map(LIST + i as u64 * PAGE, user, writable);
            }
        }
        let numbers = [
            BATCH, num("t_add"), num("t_kernel"), num("t_fails"), num("t_fill"),
            DESCRIBE, 0, u64::MAX,
        ];
        // Descriptors at the start of the first page, when it is mapped.
        if pages[0].0 {
            for (i, chunk) in words.chunks(6).enumerate() {
                let mut e = BatchEntry::new(numbers[picks[i]], [0; 5]);
                e.args.copy_from_slice(&chunk[1..6]);
                if e.number == num("t_fill") {
                    e.args[0] = LIST + PAGE + e.args[0] % (2 * PAGE);
                    e.args[1] %= 2 * PAGE;
                }
                v.poke(LIST + i as u64 * BATCH_ENTRY_SIZE, &e.to_bytes());
            }
        }
        let mut args = regs;
        if near {
            args[0] = LIST + regs[0] % 64;
            args[1] = regs[1] % 12;
            args[2] = LIST + PAGE + regs[2] % (3 * PAGE);
            args[3] = regs[3] % 4;
        }
        set_call(&mut v, BATCH, args);
        if stepped {
            v.stepper = vcpu_with(0, 2).stepper;
        }
        let before = v.regs;
        let (out, _) = run_to_end(&mut v);
        prop_assert_eq!(v.regs, vmmcall::GuestRegs { rax: v.regs.rax, ..before });
        prop_assert!(is_error(v.regs.rax) || v.regs.rax <= args[1]);
        prop_assert_eq!(out.result.is_err(), is_error(v.regs.rax));
        // Each byte of the list read at most once (entries may read their
        // own memory again: each is its own call).
        let list = args[0]..args[0].saturating_add(args[1].saturating_mul(BATCH_ENTRY_SIZE));
        let mut seen = std::collections::HashSet::new();
        for &(at, len) in v.read_log() {
            for b in at..at.saturating_add(len as u64) {
                prop_assert!(!list.contains(&b) || seen.insert(b), "list byte {:#x} read twice", b);
            }
        }
    }
}
