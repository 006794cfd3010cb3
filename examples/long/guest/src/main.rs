//! Long calls and batches, guest side (issue 23; docs/ABI.md, "Long
//! calls", "vmmcall_batch").
//!
//! 1. A periodic timer: the 8254 PIT's channel 0 at 100 Hz through the
//!    master 8259 PIC, remapped to vectors 0x20-0x2F, IRQ 0 alone unmasked
//!    (the bare-metal profile passes both through; docs/VMM-CORE.md,
//!    "Guest profiles"). Its handler counts ticks and ends the interrupt.
//! 2. A long call with interrupts on: `long_fill` writes 64 MiB, four
//!    rounds over a 16 MiB buffer (guest RAM is 32 MiB, the same as every
//!    other bare-metal example: four rounds do the work of a 64 MiB fill
//!    without a guest profile of its own). The ticks counted while the
//!    instruction is in progress are interrupts the guest took between
//!    steps. Every byte is checked against `long_api::word`, then the
//!    buffer is cleared and `long_fill_once` (the same function, not
//!    `long`: one exit) makes the uninterrupted run; result and contents
//!    must be identical.
//! 3. A batch of 32 entries of four kinds (a plain call, function 0, a
//!    description, a long fill of two pages), each answer compared with
//!    the same call made alone; then the same batch by guest-physical
//!    address (`BATCH_PHYSICAL`), each answer the same.
//! 4. A batch with an unknown function in the middle: without flags every
//!    entry is answered; with stop-on-error the batch stops after it and
//!    leaves the later results alone.
#![no_std]
#![no_main]

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering};
use guest_rt::println;
use guest_sdk::{BatchEntry, Error};
use long_api::{word, PAGE};
use vmm_shared::desc::{interrupt_gate, Idt, KERNEL_CS};

guest_rt::entry!(main);

/// Timer interrupts taken so far.
static TICKS: AtomicU64 = AtomicU64::new(0);

/// The PIC's vectors: IRQ 0-7 at 0x20, IRQ 8-15 at 0x28.
const IRQ_BASE: u8 = 0x20;
/// PIT input clock (Hz) over 100 Hz.
const PIT_DIVISOR: u16 = 11_932;
/// Bytes the long call fills per round.
const LEN: u64 = 16 << 20;
/// Rounds per call: 4 x 16 MiB = 64 MiB of work.
const ROUNDS: u64 = 4;
/// The pattern's seed.
const SEED: u64 = 0x5EED_0023;

core::arch::global_asm!(
    r#"
    .section .text.long_isr, "ax"
    .global long_timer_isr
long_timer_isr:
    push rax
    lock inc qword ptr [rip + {ticks}]
    mov al, 0x20
    out 0x20, al
    pop rax
    iretq
    .global long_spurious_isr
long_spurious_isr:
    iretq
    .global long_slave_isr
long_slave_isr:
    push rax
    mov al, 0x20
    out 0xA0, al
    out 0x20, al
    pop rax
    iretq
"#,
    ticks = sym TICKS,
);

extern "C" {
    fn long_timer_isr();
    fn long_spurious_isr();
    fn long_slave_isr();
}

/// The IDT: the 16 PIC vectors (the exceptions stay not present: a fault
/// ends the run as a triple fault, which fails it).
struct Table(UnsafeCell<Idt<48>>);
// SAFETY: written once in `install_timer`, before interrupts are enabled,
// on the guest's only CPU.
unsafe impl Sync for Table {}
static IDT: Table = Table(UnsafeCell::new(Idt::new()));

/// The long call's buffer, in `.bss`.
#[repr(C, align(4096))]
struct Buffer(UnsafeCell<[u64; (LEN / 8) as usize]>);
// SAFETY: one CPU; the VMM writes it only during this guest's calls.
unsafe impl Sync for Buffer {}
static BUF: Buffer = Buffer(UnsafeCell::new([0; (LEN / 8) as usize]));

/// Two pages per fill entry of the batch.
const SMALL: usize = 2 * PAGE as usize;
#[repr(C, align(4096))]
struct Small(UnsafeCell<[[u8; SMALL]; 8]>);
// SAFETY: as Buffer.
unsafe impl Sync for Small {}
static SMALL_BUFS: Small = Small(UnsafeCell::new([[0; SMALL]; 8]));

/// Write `value` to `port`.
fn outb(port: u16, value: u8) {
    // SAFETY: the PIC and PIT ports, which the bare-metal profile passes
    // through; programming them affects only this guest's interrupts.
    unsafe {
        core::arch::asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    };
}

/// Remap the PICs, unmask IRQ 0 alone, start the PIT at 100 Hz, load
/// the IDT. Interrupts stay off.
fn install_timer() {
    // ICW1 (edge, cascade, ICW4), ICW2 (vector base), ICW3 (slave on IR2),
    // ICW4 (8086 mode); 8259A data sheet, "Initialization Command Words".
    for (port, v) in [
        (0x20, 0x11),
        (0xA0, 0x11),
        (0x21, IRQ_BASE),
        (0xA1, IRQ_BASE + 8),
        (0x21, 0x04),
        (0xA1, 0x02),
        (0x21, 0x01),
        (0xA1, 0x01),
        (0x21, 0xFE),
        (0xA1, 0xFF),
    ] {
        outb(port, v);
    }
    // Channel 0, low then high byte, mode 2 (rate generator).
    outb(0x43, 0x34);
    outb(0x40, PIT_DIVISOR as u8);
    outb(0x40, (PIT_DIVISOR >> 8) as u8);
    // SAFETY: interrupts are off and nothing else reads the table yet.
    let idt = unsafe { &mut *IDT.0.get() };
    for v in 0x20..0x30usize {
        let handler = match v {
            0x20 => long_timer_isr as *const () as usize,
            0x27 => long_spurious_isr as *const () as usize,
            _ => long_slave_isr as *const () as usize,
        };
        idt.0[v] = interrupt_gate(handler as u64, KERNEL_CS, 0);
    }
    // SAFETY: a static table whose present gates point at the handlers
    // above; CPL 0.
    unsafe { guest_rt::arch::load_idt(IDT.0.get() as u64, core::mem::size_of::<Idt<48>>()) };
}

/// Allow interrupts (STI).
fn sti() {
    // SAFETY: the IDT has gates for every vector the PIC can raise.
    unsafe { core::arch::asm!("sti", options(nomem, nostack)) };
}

/// Mask interrupts (CLI).
fn cli() {
    // SAFETY: only masks interrupts.
    unsafe { core::arch::asm!("cli", options(nomem, nostack)) };
}

/// Words of the buffer that differ from round `ROUNDS - 1`'s pattern.
fn wrong_words(buf: &[u64]) -> u64 {
    let last = ROUNDS - 1;
    (0u64..)
        .zip(buf)
        .filter(|&(i, &w)| w != word(SEED, last, i * 8))
        .count() as u64
}

/// Call `number` with `args` as the guest would alone.
fn alone(number: u64, args: [u64; 5]) -> Result<u64, Error> {
    // SAFETY: the entries name only this guest's buffers and names.
    unsafe { guest_sdk::call_number(number, args) }
}

fn main() -> Result<(), Error> {
    install_timer();
    let fill = guest_sdk::lookup(b"long_fill\0")?;
    let fill_once = guest_sdk::lookup(b"long_fill_once\0")?;
    let add = guest_sdk::lookup(b"long_add\0")?;
    let buf_addr = BUF.0.get() as u64;
    let args = [buf_addr, LEN, ROUNDS, SEED, 0];

    // The long call, interrupts on.
    sti();
    let t0 = TICKS.load(Ordering::SeqCst);
    let stepped = alone(fill, args)?;
    let k = TICKS.load(Ordering::SeqCst) - t0;
    cli();
    // SAFETY: the VMM's writes are done; nothing else touches the buffer.
    let buf = unsafe { &mut *BUF.0.get() };
    let wrong_stepped = wrong_words(buf);
    buf.fill(0);
    let once = alone(fill_once, args)?;
    let wrong_once = wrong_words(buf);
    println!(
        "long: stepped {stepped:#x}, once {once:#x}, {wrong_stepped} and {wrong_once} wrong words of {}",
        LEN / 8
    );
    if k > 0 && stepped == once && wrong_stepped == 0 && wrong_once == 0 {
        println!("long: {k} interrupts during one call, result identical");
    } else {
        println!("long: FAILED: {k} interrupts during the call");
    }

    // A batch of 32 mixed entries, each against the same call alone.
    let name = b"long_add\0";
    let small = SMALL_BUFS.0.get() as u64;
    let entries: [BatchEntry; 32] = core::array::from_fn(|i| {
        let i = i as u64;
        match i % 4 {
            0 => BatchEntry::new(add, [i, 1000, 0, 0, 0]),
            1 => BatchEntry::new(0, [name.as_ptr() as u64, 0, 0, 0, 0]),
            2 => BatchEntry::new(guest_sdk::abi::DESCRIBE, [add, 0, 0, 0, 0]),
            _ => BatchEntry::new(
                fill,
                [small + (i / 4) * SMALL as u64, SMALL as u64, 1, i, 0],
            ),
        }
    });
    let mut results = [0u64; 32];
    sti();
    // SAFETY: the entries name this guest's buffers.
    let n = unsafe { guest_sdk::batch(&entries, &mut results, false) }?;
    cli();
    let wrong = entries
        .iter()
        .zip(results)
        .filter(|(e, r)| Error::check(*r) != alone(e.number, e.args))
        .count();
    println!(
        "batch: {} entries, {wrong} wrong",
        if n == 32 { 32 } else { n }
    );

    // The same entries by guest-physical address: the VMM's initial
    // tables map guest RAM at its own addresses (docs/ABI.md), so the
    // buffers' addresses are their guest-physical ones. Each result must
    // be the linear batch's (the fills write the same bytes again).
    let mut physical = [0u64; 32];
    // SAFETY: `entries` and `physical` are this guest's, identity-mapped;
    // the entries name this guest's buffers.
    let n = unsafe {
        guest_sdk::batch_physical(
            entries.as_ptr() as u64,
            entries.len(),
            physical.as_mut_ptr() as u64,
            false,
        )
    }?;
    let wrong = results
        .iter()
        .zip(physical)
        .filter(|(a, b)| **a != *b)
        .count();
    println!(
        "batch: {} entries by guest-physical address, {wrong} wrong",
        if n == 32 { 32 } else { n }
    );

    // A failing entry in each mode.
    let failing: [BatchEntry; 5] = core::array::from_fn(|i| match i {
        2 => BatchEntry::new(0xDEAD_BEEF, [0; 5]),
        _ => BatchEntry::new(add, [i as u64, 1, 0, 0, 0]),
    });
    let sentinel = 0x5E47_1E10;
    let mut all = [sentinel; 5];
    let mut stopped = [sentinel; 5];
    // SAFETY: no entry names memory.
    let (n_all, n_stop) = unsafe {
        (
            guest_sdk::batch(&failing, &mut all, false)?,
            guest_sdk::batch(&failing, &mut stopped, true)?,
        )
    };
    let nosys = Err(Error::NoSys);
    let as_alone = |i: usize, r: u64| Error::check(r) == alone(failing[i].number, failing[i].args);
    let ok = n_all == 5
        && n_stop == 3
        && Error::check(all[2]) == nosys
        && (0..5).all(|i| as_alone(i, all[i]))
        && (0..3).all(|i| as_alone(i, stopped[i]))
        && stopped[3..] == [sentinel; 2];
    if ok {
        println!("batch: a failing entry: {n_all} answered without stop, {n_stop} with stop-on-error (as expected)");
    } else {
        println!(
            "batch: FAILED: a failing entry: {n_all} / {n_stop} answered, {all:x?} / {stopped:x?}"
        );
    }
    Ok(())
}
