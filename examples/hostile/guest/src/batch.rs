//! The hostile storm's batch and continuation classes (issue 23;
//! docs/ABI.md, "vmmcall_batch", "Long calls").
//!
//! **Batches**, at CPL 0 and at CPL 3: lists and results in every kind of
//! memory of the page-table model (user RAM, supervisor, read-only,
//! unmapped, MMIO, past guest RAM, non-canonical, wrapping the address
//! space, straddling into a bad page after a good group), the same by
//! guest-physical address (`BATCH_PHYSICAL`: RAM, past its end, MMIO;
//! refused outside CPL 0), counts of 0 to
//! 4096, above 4096 and huge, unknown flags, results overlapping the
//! list, entries of every kind (plain, kernel-only, unknown numbers,
//! function 0, `vmmcall_describe`, `vmmcall_lookup_typed`, the batch
//! itself), with and without stop-on-error. The answer (RAX) and every
//! result slot that is guest RAM are predicted from docs/ABI.md and the
//! model of `main.rs` ([`super::expect`] for each entry, as if alone), and
//! the slots past the last answered entry must keep their sentinel.
//!
//! **Continuations**: a 2048-entry batch with the PIT interrupting it
//! (IRQ 0 at vector 0x20, this module's handler). When the interrupt
//! lands on the batch's instruction after the batch answered entries (it
//! yielded between steps), the handler changes what the guest calls
//! with, once per run:
//!
//! - *registers*: RCX (the count) becomes 1000: a new call from the
//!   beginning, so RAX is 1000 and results 0..1000 are exact; later slots
//!   hold the first call's answers or the sentinel, as a prefix;
//! - *memory*: every descriptor's number becomes another handler's: each
//!   result is one of the two answers, the old ones first (descriptors the
//!   VMM had read stay as read);
//! - *CPL* (from ring 3): CS and SS become ring 0's, so the instruction is
//!   executed again at CPL 0: a new call, every entry answered at CPL 0
//!   (`whoami` 0, kernel-only handlers run).
//!
//! The call abandoned by the register change stays in the VMM: made again
//! identically, it continues where it stopped (slot 0 is not answered
//! again), as docs/ABI.md says. Each class must be reached; a run where
//! the timer never caught the batch between steps is retried, up to a
//! limit.

use super::{
    access_ok, err, expect, page, poke, ram_gpa, Rng, State, Who, ALIAS, CANARY, EDGE, EINVAL, H,
    IDT, K, KPAGE, MIB, MMIO_1G, PAGE, RAM, TOP, WIN,
};
use core::sync::atomic::{AtomicU64, Ordering};
use guest_rt::println;
use guest_sdk::abi::{BATCH, BATCH_PHYSICAL, BATCH_STOP_ON_ERROR, DESCRIBE, LOOKUP_TYPED};

/// Where good lists and results live: user RAM nothing else uses.
const LIST_OK: u64 = 20 * MIB;
const RESULTS_OK: u64 = 22 * MIB;
/// What a result slot holds before the call.
const SENTINEL: u64 = 0x5E47_1E10_5E47_1E10;
/// Batches per CPL.
const BATCHES: u64 = 300;
/// Entries of the continuation runs, and the count the register change
/// makes.
const LONG_COUNT: u64 = 2048;
const NEW_COUNT: u64 = 1000;

/// The flags a batch may pass.
const KNOWN_FLAGS: u64 = BATCH_STOP_ON_ERROR | BATCH_PHYSICAL;
/// Entries the VMM reads and answers at a time (docs/ABI.md).
const GROUP: usize = 32;

/// The classes this module promises, counted per run.
const CLASSES: [&str; 19] = [
    "batch answered in full",
    "batch stopped on error",
    "entry naming the batch",
    "list in MMIO or past RAM",
    "list unmapped or non-canonical",
    "list supervisor-only at CPL 3",
    "list fault after a group ran",
    "results not writable",
    "count above 4096",
    "range wrapping the address space",
    "results overlapping the list",
    "unknown flags",
    "count 0",
    "guest-physical list and results",
    "guest-physical refused outside CPL 0",
    "batch yielded (over 256 entries)",
    "registers changed between steps",
    "memory changed between steps",
    "abandoned call continued when made again",
];
/// Continuation class only reachable from ring 3.
const CPL_CLASS: &str = "CPL changed between steps";

/// One batch's descriptors as the guest writes them.
type Desc = [u64; 6];

/// The descriptors of the batch being made (192 KiB: not on the stack).
static mut DESCS: [Desc; 4096] = [[0; 6]; 4096];

/// A random entry: plain and kernel-only handlers (never `exit` at CPL 0,
/// never `fill`, which writes), unknown numbers, the built-in functions
/// (describe without a buffer) and the batch itself.
fn entry(rng: &mut Rng, who: Who) -> Desc {
    let mut a = [0u64; 5];
    for v in a.iter_mut() {
        *v = match rng.below(4) {
            0 => rng.pick(&super::EDGES),
            1 => super::address(rng, false),
            2 => rng.below(300),
            _ => rng.next(),
        };
    }
    let n = match rng.below(16) {
        0 => 0,
        1 => {
            (a[1], a[2]) = (0, 0);
            DESCRIBE
        }
        2 => LOOKUP_TYPED,
        3 => BATCH,
        4 => K + 1 + rng.below(3),
        5 => u64::MAX,
        _ => loop {
            let n = 1 + rng.below(K);
            match super::handler(n) {
                Some((H::Fill, _)) => continue,
                Some((H::Exit, _)) if who.cpl == 0 => continue,
                Some((H::Sum, _)) => a[1] = rng.below(5000),
                _ => {}
            }
            break n;
        },
    };
    [n, a[0], a[1], a[2], a[3], a[4]]
}

/// The answer of one entry, as if alone; the batch itself is `-EINVAL`.
fn answer(d: &Desc, who: Who) -> u64 {
    if d[0] == BATCH {
        err(EINVAL)
    } else {
        expect(d[0], [d[1], d[2], d[3], d[4], d[5]], who)
    }
}

/// docs/ABI.md's `vmmcall_batch` for `who`: RAX and how many results are
/// written (a prefix).
fn predict(
    list: u64,
    count: u64,
    results: u64,
    flags: u64,
    descs: &[Desc],
    who: Who,
) -> (u64, u64) {
    const EFAULT: u64 = super::EFAULT;
    if flags & !KNOWN_FLAGS != 0 || count > 4096 {
        return (err(EINVAL), 0);
    }
    if count == 0 {
        return (0, 0);
    }
    let (Some(list_last), Some(results_last)) = (
        list.checked_add(count * 48 - 1),
        results.checked_add(count * 8 - 1),
    ) else {
        return (err(EFAULT), 0);
    };
    if list <= results_last && results <= list_last {
        return (err(EINVAL), 0);
    }
    // Guest-physical addresses: CPL 0 only, and guest RAM, whatever the
    // page tables say.
    let physical = flags & BATCH_PHYSICAL != 0;
    if physical && who.cpl != 0 {
        return (err(super::EPERM), 0);
    }
    let ok = |at: u64, len: u64, write: bool| {
        if physical {
            at.checked_add(len).is_some_and(|end| end <= RAM)
        } else {
            access_ok(at, len, write, who)
        }
    };
    if !ok(results, count * 8, true) {
        return (err(EFAULT), 0);
    }
    let mut answered = 0u64;
    for (g, group) in descs.chunks(GROUP).enumerate() {
        let at = list + (g * GROUP) as u64 * 48;
        if !ok(at, group.len() as u64 * 48, false) {
            return (err(EFAULT), answered);
        }
        for d in group {
            let r = answer(d, who);
            answered += 1;
            if flags & BATCH_STOP_ON_ERROR != 0 && r >= err(4095) {
                return (answered, answered);
            }
        }
    }
    (count, count)
}

/// A list or results address: good RAM, or a hostile place.
fn place(rng: &mut Rng, good: u64, results: bool) -> u64 {
    match rng.below(if results { 11 } else { 12 }) {
        0..=4 => good + rng.below(4) * 8 + rng.pick(&[0, PAGE - 48 * 8 - 8]),
        5 => KPAGE + rng.below(MIB),
        6 => CANARY + rng.below(MIB),
        7 => MMIO_1G + rng.below(1 << 20),
        8 => EDGE - 8 * rng.below(64) - 8,
        9 => {
            let near_top = u64::MAX - 7 - rng.below(64) * 8;
            rng.pick(&[near_top, 0x7fff_ffff_fff8, 1 << 63])
        }
        // Read-only (kind 2) and not-present (kind 4) window pages: a list
        // there may end in a bad page after good groups.
        10 => WIN + rng.pick(&[2, 4, 9, 12]) * PAGE - 48 * rng.below(20),
        _ => TOP + rng.below(4) * PAGE + 48 * rng.below(8),
    }
}

/// Whether the VMM may write results at `[at, at + len)` without touching
/// the guest's own memory (below 4 MiB) or the alias of all RAM, even if
/// a prediction were wrong: the places [`place`] makes, checked.
fn results_safe(at: u64, len: u64) -> bool {
    let Some(end) = at.checked_add(len) else {
        return true; // wraps: never written
    };
    at >= 4 * MIB && !(at < ALIAS + RAM && end > ALIAS)
}

/// The result slot `i` at `results` as RAM holds it, if all 8 bytes are
/// guest RAM.
fn slot(results: u64, i: u64) -> Option<u64> {
    let at = results.checked_add(i * 8)?;
    let mut v = [0u8; 8];
    for (k, b) in v.iter_mut().enumerate() {
        let gpa = ram_gpa(at.checked_add(k as u64)?)?;
        *b = super::ram_byte(gpa);
    }
    Some(u64::from_le_bytes(v))
}

/// Fill the result slots that are RAM with the sentinel.
fn clear_slots(results: u64, count: u64) {
    for i in 0..count.min(4096) {
        if let Some(at) = results.checked_add(i * 8) {
            poke(at, &SENTINEL.to_le_bytes());
        }
    }
}

/// Write the descriptors at `list` (the RAM parts).
fn write_list(list: u64, descs: &[Desc]) {
    for (i, d) in descs.iter().enumerate() {
        let mut bytes = [0u8; 48];
        for (chunk, w) in bytes.chunks_exact_mut(8).zip(d) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        if let Some(at) = list.checked_add(i as u64 * 48) {
            poke(at, &bytes);
        }
    }
}

/// The batch storm at the current CPL, then (CPL 0) the continuation runs
/// or (CPL 3) the CPL change. Calls are counted apart from the storm's,
/// with a generator of their own, so the storm's figures stay as they are.
pub(super) fn storm(st: &mut State) {
    let (storm_calls, per_cpl) = (st.calls, st.per_cpl);
    let who = st.who;
    let mut rng = Rng(0xBA7C_4000 ^ u64::from(who.cpl));
    core::mem::swap(&mut st.rng, &mut rng);
    let unexpected = st.unexpected;
    let mut counts = [0u64; CLASSES.len()];
    let mut hit = |name: &str| {
        if let Some(i) = CLASSES.iter().position(|c| *c == name) {
            counts[i] += 1;
        }
    };
    // SAFETY: one CPU, and `storm` is the only user of DESCS (not
    // reentrant: the timer's handler does not touch it).
    let descs = unsafe { &mut *core::ptr::addr_of_mut!(DESCS) };
    let mut entries = 0u64;
    for b in 0..BATCHES {
        let count = match st.rng.below(20) {
            0 => 0,
            1 => st.rng.pick(&[4097, 1 << 32, u64::MAX, 1 << 63]),
            2 if b == 7 => 4096,
            2 => st.rng.pick(&[257, 300, 520]),
            3 => 8 * (1 + st.rng.below(4)) + st.rng.below(2),
            _ => 1 + st.rng.below(24),
        };
        let real = count.min(4096) as usize;
        for d in descs.iter_mut().take(real) {
            *d = entry(&mut st.rng, who);
        }
        let list = place(&mut st.rng, LIST_OK, false);
        let mut results = place(&mut st.rng, RESULTS_OK, true);
        if st.rng.below(12) == 0 {
            // Results over the list (the same linear bytes).
            results = list.wrapping_add(8 * st.rng.below(count.clamp(1, 64)));
        }
        let mut flags = match st.rng.below(10) {
            0 => st.rng.pick(&[4, 1 << 63, 5, 6]),
            1..=4 => BATCH_STOP_ON_ERROR,
            _ => 0,
        };
        let (mut list, mut count) = (list, count);
        if st.rng.below(8) == 0 {
            // Guest-physical addresses: good RAM (identity-mapped there,
            // so the list is written and the results read through the
            // same linear addresses), straddling the end of RAM, or MMIO.
            flags |= BATCH_PHYSICAL;
            list = match st.rng.below(6) {
                0 => RAM - 48 * st.rng.below(count.clamp(1, 64)),
                1 => MMIO_1G + 48 * st.rng.below(64),
                _ => LIST_OK + 8 * st.rng.below(8),
            };
            results = match st.rng.below(8) {
                0 => RAM - 8 * st.rng.below(count.clamp(1, 64)),
                1 => MMIO_1G + MIB,
                _ => RESULTS_OK + 8 * st.rng.below(8),
            };
        }
        if b == 13 {
            // Once per storm, whatever the generator drew: 300 entries
            // from the end of window page 1 through the read-only page 2
            // into page 3 (supervisor) and 4 (not present), so that groups
            // run before the list faults at either CPL.
            (list, count, results, flags) = (WIN + 2 * PAGE - 48 * 5, 300, RESULTS_OK, 0);
            for d in descs.iter_mut().take(300) {
                *d = entry(&mut st.rng, who);
            }
        }
        if b == 17 {
            // Once per storm: 300 good entries in good memory, so that a
            // batch over the step budget (256 entries) runs at each CPL.
            (list, count, results, flags) = (LIST_OK, 300, RESULTS_OK, 0);
            for d in descs.iter_mut().take(300) {
                *d = entry(&mut st.rng, who);
            }
        }
        let real = count.min(4096) as usize;
        if !results_safe(results, count.min(4096) * 8) {
            continue;
        }
        let (want, answered) = predict(list, count, results, flags, &descs[..real], who);
        classify(
            &mut hit,
            list,
            count,
            results,
            flags,
            &descs[..real],
            who,
            want,
            answered,
        );
        write_list(list, &descs[..real]);
        clear_slots(results, count);
        let rax = st.call(BATCH, [list, count, results, flags, 0]);
        entries += answered;
        if rax != want {
            st.report(
                "vmmcall_batch",
                format_args!(
                    "list {list:#x} count {count:#x} results {results:#x} flags {flags:#x}: \
                     RAX {rax:#x}, expected {want:#x}"
                ),
            );
        }
        for i in 0..count.min(4096) {
            let Some(got) = slot(results, i) else {
                continue;
            };
            let want = if i < answered {
                answer(&descs[i as usize], who)
            } else {
                SENTINEL
            };
            if got != want {
                st.report(
                    "vmmcall_batch result",
                    format_args!(
                        "list {list:#x} count {count} results {results:#x}: slot {i} is \
                         {got:#x}, expected {want:#x} (entry {:#x?})",
                        descs[i as usize]
                    ),
                );
                break;
            }
        }
    }
    // The timer's runs, retries included (how many depends on when the
    // timer lands: printed apart from the deterministic figures).
    let mut runs = 0;
    if who.cpl == 0 {
        runs = continuations(st, &mut hit, descs);
    }
    let cpl_changed = who.cpl == 3 && cpl_change(st, descs);
    core::mem::swap(&mut st.rng, &mut rng);
    (st.calls, st.per_cpl) = (storm_calls, per_cpl);
    // Not every class exists at every CPL: a supervisor list fails only
    // at CPL 3, and the register and memory changes run at CPL 0.
    let exists = |name: &&str| match who.cpl {
        0 => *name != "list supervisor-only at CPL 3" && !name.ends_with("outside CPL 0"),
        _ => {
            !name.ends_with("between steps")
                && !name.starts_with("abandoned")
                && !name.starts_with("guest-physical list")
        }
    };
    let classes = CLASSES.iter().zip(counts).filter(|(c, _)| exists(c));
    let (mut reached, mut promised) = (0, 0);
    for (name, n) in classes {
        promised += 1;
        if n == 0 {
            st.report(
                "batch class",
                format_args!("{name}: no calls at CPL {}", who.cpl),
            );
        } else {
            reached += 1;
        }
    }
    if who.cpl == 3 && !cpl_changed {
        st.report("batch class", format_args!("{CPL_CLASS}: never reached"));
    }
    if runs > 0 {
        println!("hostile: vmmcall_batch under the timer: {runs} runs of {LONG_COUNT} entries");
    }
    println!(
        "hostile: vmmcall_batch at CPL {}: {BATCHES} batches, {entries} entries, {} of {} classes, {} unexpected",
        who.cpl,
        reached + usize::from(cpl_changed),
        promised + usize::from(who.cpl == 3),
        st.unexpected - unexpected
    );
}

/// Count the classes one batch belongs to.
#[allow(clippy::too_many_arguments)]
fn classify(
    hit: &mut impl FnMut(&str),
    list: u64,
    count: u64,
    results: u64,
    flags: u64,
    descs: &[Desc],
    who: Who,
    want: u64,
    answered: u64,
) {
    let efault = err(super::EFAULT);
    if flags & !KNOWN_FLAGS != 0 {
        hit("unknown flags");
    } else if count > 4096 {
        hit("count above 4096");
    } else if count == 0 {
        hit("count 0");
    } else if list.checked_add(count * 48).is_none() || results.checked_add(count * 8).is_none() {
        hit("range wrapping the address space");
    } else if want == err(EINVAL) {
        hit("results overlapping the list");
    } else if want == err(super::EPERM) {
        hit("guest-physical refused outside CPL 0");
    } else if want == efault && answered == 0 && !access_ok(results, count * 8, true, who) {
        hit("results not writable");
    } else if want == efault {
        if answered > 0 {
            hit("list fault after a group ran");
        }
        match page(list) {
            None => hit("list unmapped or non-canonical"),
            Some(p) if p.gpa.is_none() => hit("list in MMIO or past RAM"),
            Some(p) if !p.user && who.cpl == 3 => hit("list supervisor-only at CPL 3"),
            _ => {}
        }
    } else if want == count {
        hit("batch answered in full");
        if count > 256 {
            hit("batch yielded (over 256 entries)");
        }
    } else {
        hit("batch stopped on error");
    }
    if flags & BATCH_PHYSICAL != 0 && answered > 0 {
        hit("guest-physical list and results");
    }
    if want != err(EINVAL) && descs.iter().take(answered as usize).any(|d| d[0] == BATCH) {
        hit("entry naming the batch");
    }
}

// ------------------------------------------------------- continuations

/// How the timer handler changes the interrupted batch (once per run).
const TAMPER_NONE: u64 = 0;
const TAMPER_COUNT: u64 = 1;
const TAMPER_MEMORY: u64 = 2;
const TAMPER_CPL: u64 = 3;
static TAMPER: AtomicU64 = AtomicU64::new(TAMPER_NONE);
/// Set by the handler when it changed something between steps.
static TAMPERED: AtomicU64 = AtomicU64::new(0);
/// The number every descriptor gets in the memory change.
static NEW_NUMBER: AtomicU64 = AtomicU64::new(0);

core::arch::global_asm!(
    r#"
    .section .text.hostile_batch, "ax"
    .global hostile_batch_timer
hostile_batch_timer:
    push rax
    push rcx
    push rdx
    push rsi
    push rdi
    push r8
    push r9
    push r10
    push r11
    push rbp
    mov rbp, rsp
    sub rsp, 512
    and rsp, -64
    fxsave64 [rsp]
    lea rdi, [rbp + 8]
    cld
    call hostile_batch_tamper
    fxrstor64 [rsp]
    mov rsp, rbp
    mov al, 0x20
    out 0x20, al
    pop rbp
    pop r11
    pop r10
    pop r9
    pop r8
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rax
    iretq
    .global hostile_batch_spurious
hostile_batch_spurious:
    iretq
"#
);

extern "C" {
    fn hostile_batch_timer();
    fn hostile_batch_spurious();
    static hostile_batch_insn_vmcall: u8;
    static hostile_batch_insn_vmmcall: u8;
}

/// The registers the timer stub saved (lowest first), then the CPU's
/// interrupt frame.
#[repr(C)]
struct Frame {
    r11: u64,
    r10: u64,
    r9: u64,
    r8: u64,
    rdi: u64,
    rsi: u64,
    rdx: u64,
    rcx: u64,
    rax: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

/// The timer's Rust half: when the interrupt landed on the batch's
/// instruction and the batch already answered entries (it yielded between
/// steps), make this run's change, once.
#[no_mangle]
extern "C" fn hostile_batch_tamper(f: &mut Frame) {
    // The two labels of `long_batch`'s asm (addresses only).
    let insns = [
        core::ptr::addr_of!(hostile_batch_insn_vmcall) as u64,
        core::ptr::addr_of!(hostile_batch_insn_vmmcall) as u64,
    ];
    if !insns.contains(&f.rip) || TAMPERED.load(Ordering::SeqCst) != 0 {
        return;
    }
    // Slot 0 written: the batch answered entries, then yielded.
    if slot(RESULTS_OK, 0) == Some(SENTINEL) {
        return;
    }
    match TAMPER.load(Ordering::SeqCst) {
        TAMPER_COUNT => f.rcx = NEW_COUNT,
        TAMPER_MEMORY => {
            let n = NEW_NUMBER.load(Ordering::SeqCst);
            for i in 0..LONG_COUNT {
                poke(LIST_OK + i * 48, &n.to_le_bytes());
            }
        }
        TAMPER_CPL => (f.cs, f.ss) = (0x08, 0x10),
        _ => return,
    }
    TAMPERED.store(1, Ordering::SeqCst);
}

/// Program the PICs (IRQ 0 alone, vectors 0x20-0x2F) and the PIT, and put
/// the timer's gate in the IDT; `on` false masks IRQ 0 again.
fn timer(on: bool) {
    let out = |port: u16, v: u8| {
        // SAFETY: the PIC and PIT ports, which the bare-metal profile
        // passes through; they affect only this guest's interrupts.
        unsafe {
            core::arch::asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack, preserves_flags))
        }
    };
    if !on {
        out(0x21, 0xFF);
        return;
    }
    let gate = |vector: usize, handler: u64| {
        let low =
            (handler & 0xFFFF) | (0x08 << 16) | (0x8E << 40) | (((handler >> 16) & 0xFFFF) << 48);
        let idt = core::ptr::addr_of_mut!(IDT);
        // SAFETY: interrupts are off; the gates go in before IRQ 0 is
        // unmasked and stay valid (static handlers).
        unsafe {
            (*idt).0[2 * vector] = low;
            (*idt).0[2 * vector + 1] = handler >> 32;
        }
    };
    gate(0x20, hostile_batch_timer as *const () as u64);
    for v in 0x21..0x30 {
        gate(v, hostile_batch_spurious as *const () as u64);
    }
    for (port, v) in [
        (0x20, 0x11),
        (0xA0, 0x11),
        (0x21, 0x20),
        (0xA1, 0x28),
        (0x21, 0x04),
        (0xA1, 0x02),
        (0x21, 0x01),
        (0xA1, 0x01),
        (0x21, 0xFE),
        (0xA1, 0xFF),
        // Channel 0, mode 2, about 4.8 kHz.
        (0x43, 0x34),
        (0x40, 250),
        (0x40, 0),
    ] {
        out(port, v);
    }
}

// `hostile_batch_call_*(list, count, results)`: vmmcall_batch with RBX,
// RCX, RDX = the arguments and interrupts on around the instruction (its
// address is the label the timer looks for); returns RAX and RCX.
core::arch::global_asm!(
    r#"
    .section .text.hostile_batch_call, "ax"
    .global hostile_batch_call_vmcall
hostile_batch_call_vmcall:
    push rbx
    mov rbx, rdi
    mov rcx, rsi
    xor esi, esi
    movabs rax, {batch}
    sti
    .global hostile_batch_insn_vmcall
hostile_batch_insn_vmcall:
    vmcall
    cli
    mov rdx, rcx
    pop rbx
    ret
    .global hostile_batch_call_vmmcall
hostile_batch_call_vmmcall:
    push rbx
    mov rbx, rdi
    mov rcx, rsi
    xor esi, esi
    movabs rax, {batch}
    sti
    .global hostile_batch_insn_vmmcall
hostile_batch_insn_vmmcall:
    vmmcall
    cli
    mov rdx, rcx
    pop rbx
    ret
"#,
    batch = const BATCH,
);

/// RAX and RCX after a batch.
#[repr(C)]
struct Two(u64, u64);

extern "C" {
    fn hostile_batch_call_vmcall(list: u64, count: u64, results: u64) -> Two;
    fn hostile_batch_call_vmmcall(list: u64, count: u64, results: u64) -> Two;
}

/// A batch of `count` entries at LIST_OK/RESULTS_OK with interrupts on;
/// returns RAX and RCX after it (the timer may change RCX).
fn long_batch(amd: bool, count: u64) -> (u64, u64) {
    // SAFETY: the VMM is present; the batch reads the list and writes the
    // results, both this module's RAM; the timer's gate is installed, so
    // interrupts may be on. The stubs keep RBX and follow the C ABI.
    let Two(rax, rcx) = unsafe {
        if amd {
            hostile_batch_call_vmmcall(LIST_OK, count, RESULTS_OK)
        } else {
            hostile_batch_call_vmcall(LIST_OK, count, RESULTS_OK)
        }
    };
    (rax, rcx)
}

/// The registers and memory runs at CPL 0; returns the batches made.
fn continuations(st: &mut State, hit: &mut impl FnMut(&str), descs: &mut [Desc; 4096]) -> u64 {
    let who = st.who;
    let whoami = st.number(H::Whoami);
    let echo = st.number(H::EchoU8);
    for (i, d) in descs.iter_mut().take(LONG_COUNT as usize).enumerate() {
        *d = match i % 3 {
            0 => [whoami, 0, 0, 0, 0, 0],
            1 => [echo, i as u64 & 0xFF, 0, 0, 0, 0],
            _ => [st.number(H::KAdd), i as u64, 7, 0, 0, 0],
        };
    }
    let descs = &descs[..LONG_COUNT as usize];
    let mut batches = 0;
    timer(true);
    // No change: the interrupted batch is answered as one call.
    for mode in [TAMPER_NONE, TAMPER_COUNT, TAMPER_MEMORY] {
        let mut reached = false;
        for _ in 0..20 {
            batches += 1;
            let amd = st.native_amd;
            TAMPER.store(mode, Ordering::SeqCst);
            TAMPERED.store(0, Ordering::SeqCst);
            let new_number = st.number(H::Flag);
            NEW_NUMBER.store(new_number, Ordering::SeqCst);
            write_list(LIST_OK, descs);
            clear_slots(RESULTS_OK, LONG_COUNT);
            let (rax, rcx) = long_batch(amd, LONG_COUNT);
            TAMPER.store(TAMPER_NONE, Ordering::SeqCst);
            let tampered = TAMPERED.load(Ordering::SeqCst) != 0;
            let count = if tampered && mode == TAMPER_COUNT {
                NEW_COUNT
            } else {
                LONG_COUNT
            };
            if rax != count || rcx != count {
                st.report(
                    "batch between steps",
                    format_args!("mode {mode}: RAX {rax}, RCX {rcx}, expected {count}"),
                );
                break;
            }
            let mut seen_new = false;
            for i in 0..LONG_COUNT {
                let d = descs[i as usize];
                let old = answer(&d, who);
                let got = slot(RESULTS_OK, i);
                let ok = match mode {
                    TAMPER_MEMORY if tampered => {
                        // The new descriptor keeps the old arguments.
                        let new = answer(&[new_number, d[1], d[2], d[3], d[4], d[5]], who);
                        if got == Some(new) && new != old {
                            seen_new = true;
                        }
                        got == Some(old) && !seen_new || got == Some(new)
                    }
                    TAMPER_COUNT if tampered && i >= NEW_COUNT => {
                        got == Some(old) || got == Some(SENTINEL)
                    }
                    _ => got == Some(old),
                };
                if !ok {
                    st.report(
                        "batch between steps",
                        format_args!("mode {mode}: slot {i} is {got:#x?}, expected {old:#x}"),
                    );
                    break;
                }
            }
            if tampered && mode == TAMPER_COUNT {
                // The 2048-entry call was abandoned between steps; its
                // progress stays in the VMM, and the identical call made
                // again continues it (docs/ABI.md, "Long calls"): slot 0
                // keeps the sentinel, the last slot is answered.
                batches += 1;
                clear_slots(RESULTS_OK, LONG_COUNT);
                let (rax, _) = long_batch(amd, LONG_COUNT);
                let last = answer(&descs[LONG_COUNT as usize - 1], who);
                let first = slot(RESULTS_OK, 0);
                if rax != LONG_COUNT
                    || first != Some(SENTINEL)
                    || slot(RESULTS_OK, LONG_COUNT - 1) != Some(last)
                {
                    st.report(
                        "abandoned batch made again",
                        format_args!("RAX {rax}, slot 0 {first:#x?}: not continued"),
                    );
                } else {
                    hit("abandoned call continued when made again");
                }
            }
            if tampered || mode == TAMPER_NONE {
                reached = true;
                break;
            }
        }
        match mode {
            TAMPER_COUNT if reached => hit("registers changed between steps"),
            TAMPER_MEMORY if reached => hit("memory changed between steps"),
            _ => {}
        }
    }
    timer(false);
    batches
}

/// From ring 3: the timer moves the interrupted batch to CPL 0. Returns
/// whether that happened and the batch was then answered as at CPL 0.
/// Leaves the guest at CPL 0 (it only exits afterwards).
fn cpl_change(st: &mut State, descs: &mut [Desc; 4096]) -> bool {
    let whoami = st.number(H::Whoami);
    let kadd = st.number(H::KAdd);
    for (i, d) in descs.iter_mut().take(LONG_COUNT as usize).enumerate() {
        *d = if i % 2 == 0 {
            [whoami, 0, 0, 0, 0, 0]
        } else {
            [kadd, i as u64, 1, 0, 0, 0]
        };
    }
    timer(true);
    let mut done = false;
    for _ in 0..20 {
        let amd = st.native_amd;
        TAMPER.store(TAMPER_CPL, Ordering::SeqCst);
        TAMPERED.store(0, Ordering::SeqCst);
        write_list(LIST_OK, &descs[..LONG_COUNT as usize]);
        clear_slots(RESULTS_OK, LONG_COUNT);
        let (rax, _) = long_batch(amd, LONG_COUNT);
        TAMPER.store(TAMPER_NONE, Ordering::SeqCst);
        if TAMPERED.load(Ordering::SeqCst) == 0 {
            if rax != LONG_COUNT {
                st.report("batch at CPL 3", format_args!("RAX {rax}"));
                break;
            }
            continue;
        }
        // Now at CPL 0: every entry must have been answered there.
        let cpl0 = Who {
            cpl: 0,
            wp: st.who.wp,
            vcpu: st.who.vcpu,
        };
        st.who = cpl0;
        let wrong = (0..LONG_COUNT)
            .filter(|&i| slot(RESULTS_OK, i) != Some(answer(&descs[i as usize], cpl0)))
            .count();
        if rax != LONG_COUNT || wrong != 0 || guest_rt::arch::cpl() != 0 {
            st.report(
                "batch CPL changed between steps",
                format_args!("RAX {rax}, {wrong} slots not answered at CPL 0"),
            );
        }
        done = true;
        break;
    }
    timer(false);
    done
}
