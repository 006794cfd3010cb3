//! The hostile guest on several vCPUs (`cargo xtask run hostile --cpus N`).
//!
//! vCPU 0 runs the storm of the module docs (its call counts divided by
//! N, so that the run takes about as long as on one vCPU). Every other
//! vCPU, started with `vmm_vcpu_up`, runs a storm of its own at the same
//! time: [`AP_CALLS`] calls from its own seed, an eighth each at CPL 0,
//! 1, 2 and 3 with CR0.WP set and clear (its own GDT and TSS; the CR0.WP
//! gate of vCPU 0's IDT), both instructions, every GPR and the x87/SSE
//! state loaded with random values and checked afterwards, each answer
//! predicted from the ABI (`State::check`, the same checks as vCPU 0's),
//! the memory it names being its own 256 KiB at `AP_BUF + i * 256 KiB`
//! (guest RAM that vCPU 0's storm never names) with the bytes around
//! every buffer checked.
//!
//! **Races** (N >= 3): the last vCPU is the racer. While the others call,
//! it keeps flipping, with single 8-byte stores:
//! - the NUL of a name between byte 3 and byte 7 (`abc\0efg\0` and
//!   `abcdefg\0`): `name_len` must answer 3 or 7;
//! - the page-table entry of each caller's own linear page between two
//!   guest-physical pages: a 4 KiB `fill` through it must land entirely
//!   in one of them, the other and the guard pages around both unchanged
//!   (one translation per call: docs/ABI.md, "What read once means").
//!
//! Any other answer counts as "outside a snapshot".

use super::*;
use core::sync::atomic::AtomicBool;

/// Calls of each AP's storm.
pub const AP_CALLS: u64 = 4000;
/// Race rounds of each caller (a `name_len` and a `fill` each).
const RACE_ROUNDS: u64 = 250;
/// vCPU `i`'s memory: `AP_BUF + i * AREA` (i >= 1), user RAM that no
/// storm of vCPU 0 names (its window is 24-26 MiB, its scratch 30-32
/// MiB, its batches' lists and results 20-24 MiB: batch.rs).
const AP_BUF: u64 = 26 * MIB;
const AREA: u64 = 256 * 1024;
/// The race pages: caller `i` owns `RACE_PAGES + i * 4 pages`: page 0 and
/// page 2 are the two targets, pages 1 and 3 guards.
const RACE_PAGES: u64 = 28 * MIB;
/// The flipping name.
const RACE_NAME: u64 = 29 * MIB;
/// Linear pages whose entries the racer flips: caller `i`'s is
/// `RACE_LA + i * PAGE` (PDPT0 entry 256: nothing else is there).
const RACE_LA: u64 = 0x40_0000_0000;
const NAME_A: u64 = u64::from_le_bytes(*b"abc\0efg\0");
const NAME_B: u64 = u64::from_le_bytes(*b"abcdefg\0");

/// Each AP's GDT (vCPU 0's, with the AP's own TSS descriptor), TSS
/// (RSP0: the CR0.WP gate's stack from rings 1 to 3), gate stacks and
/// the stacks of rings 1 to 3 (one per AP: each ring leaves it to the next).
static mut AP_GDT: [Gdt; 8] = [const { Gdt([0; 11]) }; 8];
static mut AP_TSS: [arch::Tss; 8] = [const { arch::Tss::new() }; 8];
static mut AP_GATE_STACKS: [Stack; 8] = [const { Stack([0; 65536]) }; 8];
static mut AP_RING_STACKS: [Stack; 8] = [const { Stack([0; 65536]) }; 8];
/// Each AP's storm state while it crosses from one ring to the next.
static mut AP_STATES: [Option<State>; 8] = [const { None }; 8];

static mut RACE_PD: Table = Table([0; 512]);
static mut RACE_PT: Table = Table([0; 512]);
static mut STACKS: [Stack; 8] = [const { Stack([0; 65536]) }; 8];

/// vCPUs of the run (set by vCPU 0 before it starts the others).
static VCPUS: AtomicU64 = AtomicU64::new(1);
/// Storm calls and unexpected answers of the APs, summed.
static AP_CALLS_DONE: AtomicU64 = AtomicU64::new(0);
static AP_UNEXPECTED: AtomicU64 = AtomicU64::new(0);
/// Callers (non-racer APs) finished.
static CALLERS_DONE: AtomicU64 = AtomicU64::new(0);
static STOP_RACE: AtomicBool = AtomicBool::new(false);
static RACER_DONE: AtomicBool = AtomicBool::new(false);
static RACED: AtomicU64 = AtomicU64::new(0);
static OUTSIDE: AtomicU64 = AtomicU64::new(0);
static FLIPS: AtomicU64 = AtomicU64::new(0);

/// How many vCPUs run the storm.
pub fn vcpus() -> u64 {
    VCPUS.load(Ordering::SeqCst)
}

fn racer(n: u64) -> Option<u64> {
    (n >= 3).then(|| n - 1)
}

fn pte(i: u64, which: u64) -> u64 {
    (RACE_PAGES + i * 4 * PAGE + which * 2 * PAGE) | PTE_P | PTE_RW | PTE_US
}

/// vCPU 0, after `build_tables`: map the race pages and start vCPUs
/// 1..N. Returns N.
pub fn start(native_amd: bool) -> u64 {
    let n = guest_rt::vcpu::count().clamp(1, 8);
    VCPUS.store(n, Ordering::SeqCst);
    NATIVE_AMD.store(native_amd, Ordering::SeqCst);
    if n == 1 {
        return 1;
    }
    // SAFETY: vCPU 0 alone runs; the tables are statics of this image
    // (identity-mapped, their linear address is guest-physical), and
    // PDPT0[256] maps nothing yet.
    unsafe {
        let pt = &mut *core::ptr::addr_of_mut!(RACE_PT);
        for i in 1..n {
            pt.0[i as usize] = pte(i, 0);
        }
        (*core::ptr::addr_of_mut!(RACE_PD)).0[0] =
            table_addr(core::ptr::addr_of!(RACE_PT)) | PTE_P | PTE_RW | PTE_US;
        (*core::ptr::addr_of_mut!(PDPT0)).0[256] =
            table_addr(core::ptr::addr_of!(RACE_PD)) | PTE_P | PTE_RW | PTE_US;
        arch::write_cr3(table_addr(core::ptr::addr_of!(PML4)));
    }
    for i in 1..n {
        let top = core::ptr::addr_of!(STACKS) as u64 + (i + 1) * 65536;
        if let Err(e) = guest_rt::vcpu::start(i, ap_main, top, 0) {
            println!("hostile: vCPU {i} did not start: {e:?}");
            guest_rt::exit(1);
        }
    }
    n
}

static NATIVE_AMD: AtomicBool = AtomicBool::new(false);

/// An AP: RDI = the argument, RSI = its id.
extern "C" fn ap_main(_arg: u64, id: u64) -> ! {
    // SAFETY: vCPU 0 built the tables before starting this vCPU; they map
    // this image and stack as the VMM's initial ones did.
    unsafe { arch::write_cr3(table_addr(core::ptr::addr_of!(PML4))) };
    let n = vcpus();
    if racer(n) == Some(id) {
        race(n);
        RACER_DONE.store(true, Ordering::SeqCst);
        idle()
    }
    // SAFETY: CPL 0, this AP's own tables (index id < 8), once.
    unsafe { install_ap_rings(id) };
    let mut st = State::new(
        SEED ^ id.wrapping_mul(0x9E37_79B9),
        NATIVE_AMD.load(Ordering::SeqCst),
    );
    st.numbers_from_lookup(AP_BUF + id * AREA + AREA - 512);
    // Each ring with CR0.WP set and clear, from ring 0 outwards.
    for wp in [true, false] {
        phase(&mut st, id, 0, wp);
    }
    ap_next_ring(st, id, 1)
}

/// Hand this AP's state to ring `cpl` (1, 2 or 3) and drop there. Every
/// ring of an AP uses the same stack: a ring never returns to the one
/// before it, whose frame `iretq` has read before the next ring writes.
fn ap_next_ring(st: State, id: u64, cpl: u8) -> ! {
    // SAFETY: single-threaded per slot: only this AP uses AP_STATES[id];
    // the next ring takes it back.
    unsafe { (*core::ptr::addr_of_mut!(AP_STATES))[id as usize % 8] = Some(st) };
    let entry: extern "C" fn() -> ! = if cpl < 3 { ap_ring1_2 } else { ap_ring3 };
    let stack = core::ptr::addr_of!(AP_RING_STACKS) as u64 + (id % 8 + 1) * 65536;
    // SAFETY: install_ap_rings loaded the ring selectors; this image (code,
    // data, stacks) lies in 2..16 MiB, user pages in the tables.
    unsafe { drop_to(cpl, entry, stack) }
}

/// This AP's state, as the ring before left it; `None` counts as
/// unexpected and ends this AP's storm.
fn ap_take_state(id: u64) -> State {
    // SAFETY: this AP stored its state there before dropping to this ring.
    match unsafe { (*core::ptr::addr_of_mut!(AP_STATES))[id as usize % 8].take() } {
        Some(st) => st,
        None => {
            println!("hostile: vCPU {id} lost its state");
            AP_UNEXPECTED.fetch_add(1, Ordering::SeqCst);
            CALLERS_DONE.fetch_add(1, Ordering::SeqCst);
            idle()
        }
    }
}

/// An AP at ring 1 or 2 (CS says which): its storm there, then the next
/// ring.
extern "C" fn ap_ring1_2() -> ! {
    let id = guest_rt::vcpu::id();
    let cpl = arch::cpl();
    let mut st = ap_take_state(id);
    for wp in [true, false] {
        phase(&mut st, id, cpl, wp);
    }
    ap_next_ring(st, id, cpl + 1)
}

/// An AP at ring 3: the rest of its storm, its races, its totals.
extern "C" fn ap_ring3() -> ! {
    let id = guest_rt::vcpu::id();
    let mut st = ap_take_state(id);
    for wp in [true, false] {
        phase(&mut st, id, 3, wp);
    }
    println!(
        "hostile: vCPU {id}: {} calls, {} unexpected (CPL 0 {}, CPL 1 {}, CPL 2 {}, CPL 3 {})",
        st.calls, st.unexpected, st.per_cpl[0], st.per_cpl[1], st.per_cpl[2], st.per_cpl[3]
    );
    if racer(vcpus()).is_some() {
        races(&mut st, id);
    }
    AP_CALLS_DONE.fetch_add(st.calls, Ordering::SeqCst);
    AP_UNEXPECTED.fetch_add(st.unexpected, Ordering::SeqCst);
    CALLERS_DONE.fetch_add(1, Ordering::SeqCst);
    idle()
}

/// Wait (no HLT: the VMM would stop the run) until vCPU 0 ends it.
fn idle() -> ! {
    loop {
        breathe();
        for _ in 0..1000 {
            core::hint::spin_loop();
        }
    }
}

/// One VM exit (CPUID): a vCPU that spins must exit now and then, or
/// the VMM's run budget for bare-metal guests (2^30 TSC ticks without an
/// exit, VMX) stops the run.
fn breathe() {
    core::arch::x86_64::__cpuid(0);
}

/// An eighth of an AP's storm at `cpl` with CR0.WP = `wp`.
fn phase(st: &mut State, id: u64, cpl: u8, wp: bool) {
    let cr0 = set_wp(wp);
    if (cr0 >> 16) & 1 != u64::from(wp) {
        st.report("CR0.WP", format_args!("the gate left CR0 at {cr0:#x}"));
    }
    st.who = Who { cpl, wp, vcpu: id };
    for _ in 0..AP_CALLS / 8 {
        ap_call(st, id);
    }
}

/// This AP's GDT (vCPU 0's descriptors, its own TSS at the same
/// selector), TSS (RSP0 for the CR0.WP gate from ring 3) and vCPU 0's IDT.
///
/// # Safety
/// CPL 0, once per AP, `id` < 8, after vCPU 0's `install_rings`.
unsafe fn install_ap_rings(id: u64) {
    let i = id as usize % 8;
    // SAFETY: the caller's guarantees: slot `i` is this AP's alone, not
    // loaded yet; GDT and IDT are vCPU 0's, complete and read only.
    unsafe {
        let tss = core::ptr::addr_of_mut!(AP_TSS[i]);
        let top = core::ptr::addr_of!(AP_GATE_STACKS[i]) as u64 + 65536;
        (*tss).set_rsp0(top);
        let [low, high] = arch::tss_descriptor(tss as u64, arch::TSS_SIZE as u32 - 1);
        let gdt = core::ptr::addr_of_mut!(AP_GDT[i]);
        (*gdt).0 = (*core::ptr::addr_of!(GDT)).0;
        (*gdt).0[9] = low;
        (*gdt).0[10] = high;
        arch::load_gdt(gdt as u64, 11 * 8, Some(TSS_SELECTOR));
        arch::load_idt(core::ptr::addr_of!(IDT) as u64, 512 * 8);
    }
}

/// One call of an AP's storm: a random handler (or number) with random
/// and edge arguments; memory only inside the vCPU's own area.
fn ap_call(st: &mut State, id: u64) {
    let base = AP_BUF + id * AREA;
    let n = match st.rng.below(10) {
        0 => K + 1 + st.rng.below(4),
        1 => st.rng.next(),
        _ => 1 + st.rng.below(K),
    };
    let mut a = [0u64; 5];
    for v in a.iter_mut() {
        *v = if st.rng.below(2) == 0 {
            st.rng.pick(&EDGES)
        } else {
            value(&mut st.rng)
        };
    }
    // Memory: inside [base, base + AREA - 8 KiB), the last 8 KiB being
    // the lookup names' scratch.
    let at = base + 64 + st.rng.below(AREA - 16 * 1024);
    match handler(n) {
        Some((H::Exit, _)) => a[0] |= 1 << 32 | st.rng.next() << 33,
        Some((H::Fill | H::Sum, _)) => {
            a[0] = at;
            a[1] = st.rng.below(4200);
        }
        Some((H::NameLen, _)) => {
            let len = st.rng.below(300) as usize;
            let mut name = [b'n'; 300];
            if let Some(b) = name.get_mut(len) {
                *b = 0;
            }
            poke(at, &name);
            a[0] = at;
        }
        _ => {}
    }
    st.check(n, a);
}

/// The racer: flip the name and every caller's page-table entry until
/// the callers are done.
fn race(n: u64) {
    let name = RACE_NAME as *mut u64;
    let pt = core::ptr::addr_of_mut!(RACE_PT) as *mut u64;
    let mut flip = 0u64;
    while !STOP_RACE.load(Ordering::SeqCst) {
        flip += 1;
        if flip.is_multiple_of(4096) {
            breathe();
        }
        let b = flip & 1;
        // SAFETY: RACE_NAME is guest RAM of this image's map that only the
        // racer writes (8-aligned); RACE_PT is this image's static table,
        // entries 1..n-1 of which only the racer writes after start().
        unsafe {
            name.write_volatile(if b == 0 { NAME_A } else { NAME_B });
            for i in 1..n - 1 {
                pt.add(i as usize).write_volatile(pte(i, b));
            }
        }
        core::hint::spin_loop();
    }
    FLIPS.store(flip, Ordering::SeqCst);
}

/// A caller's races: `name_len` of the flipping name, and a `fill`
/// through the flipping entry.
fn races(st: &mut State, id: u64) {
    let name_len = st.number(H::NameLen);
    let fill = st.number(H::Fill);
    let pages = RACE_PAGES + id * 4 * PAGE;
    for round in 0..RACE_ROUNDS {
        let len = st.call(name_len, [RACE_NAME, 0, 0, 0, 0]);
        RACED.fetch_add(1, Ordering::SeqCst);
        if len != 3 && len != 7 {
            OUTSIDE.fetch_add(1, Ordering::SeqCst);
            st.report(
                "race",
                format_args!("name_len of a flipping name: {len:#x}"),
            );
        }
        // Fresh patterns: targets 0x11 and 0x22, guards 0x33.
        for (page, byte) in [(0, 0x11u8), (1, 0x33), (2, 0x22), (3, 0x33)] {
            poke(pages + page * PAGE, &[byte; PAGE as usize]);
        }
        let byte = 0x40 + (round % 0x40) as u8;
        let got = st.call(fill, [RACE_LA + id * PAGE, PAGE, u64::from(byte), 0, 0]);
        RACED.fetch_add(1, Ordering::SeqCst);
        let all = |page: u64, b: u8| (0..PAGE).all(|o| ram_byte(pages + page * PAGE + o) == b);
        let guards = all(1, 0x33) && all(3, 0x33);
        let one = (all(0, byte) && all(2, 0x22)) || (all(0, 0x11) && all(2, byte));
        if got != PAGE || !guards || !one {
            OUTSIDE.fetch_add(1, Ordering::SeqCst);
            st.report(
                "race",
                format_args!(
                    "fill through a flipping entry: {got:#x}, one page {one}, guards {guards}"
                ),
            );
        }
    }
}

/// vCPU 0, at the end: wait for the others and print their lines.
/// Returns the unexpected answers of the other vCPUs.
pub fn finish(own_calls: u64, own_unexpected: u64) -> u64 {
    let n = vcpus();
    if n == 1 {
        return 0;
    }
    let callers = n - 1 - u64::from(racer(n).is_some());
    while CALLERS_DONE.load(Ordering::SeqCst) < callers {
        breathe();
    }
    STOP_RACE.store(true, Ordering::SeqCst);
    if racer(n).is_some() {
        while !RACER_DONE.load(Ordering::SeqCst) {
            breathe();
        }
    }
    let unexpected = AP_UNEXPECTED.load(Ordering::SeqCst);
    println!("hostile: vCPU 0: {own_calls} calls, {own_unexpected} unexpected");
    if let Some(r) = racer(n) {
        println!(
            "hostile: vCPU {r}: the racer, {} flips",
            FLIPS.load(Ordering::SeqCst)
        );
    }
    println!(
        "hostile: {n} vCPUs, {} calls, {} unexpected",
        own_calls + AP_CALLS_DONE.load(Ordering::SeqCst),
        own_unexpected + unexpected
    );
    println!(
        "races: {} calls raced, {} answers outside a snapshot",
        RACED.load(Ordering::SeqCst),
        OUTSIDE.load(Ordering::SeqCst),
    );
    unexpected
}
