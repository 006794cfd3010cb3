//! Support code for bare-metal images built on `x86_64-unknown-linux-gnu`
//! (part of this repository's test bench, not published).
//!
//! Both sides of this project, the VMM (`vmm-core`, feature `rt`) and the
//! example guests (`guest-rt`), are `#![no_std]` ELF images linked
//! with `-nostdlib`. On that target nothing provides the memory functions
//! the compiler calls (`memcpy`, `memmove`, `memset`, `memcmp`, `bcmp`) nor
//! `rust_eh_personality`, which the prebuilt libcore's `.eh_frame` refers
//! to. This crate provides them once, plus the COM1 UART both sides print
//! to. Only the bare-metal images link it: on a host build libc owns these
//! symbols.
#![no_std]
// Each unsafe block here is one port-I/O sequence on one device (program
// the UART, read its divisor and LCR back), covered by one SAFETY comment;
// host clippy sees this file since it left vmmcall's `baremetal` feature.
#![allow(clippy::multiple_unsafe_ops_per_block)]
#![allow(clippy::arithmetic_side_effects)] // no guest-controlled input reaches this module

use core::arch::asm;
use core::fmt;

/// The 16550 UART at I/O port `0x3F8` (COM1), 8N1, polled.
///
/// QEMU's `-serial stdio` and Bochs's `com1:` both need no set-up, but
/// [`Com1::init`] programs 115200 8N1 anyway, for real hardware.
pub struct Com1;

const COM1: u16 = 0x3F8;
const LSR: u16 = COM1 + 5;
const LSR_THRE: u8 = 1 << 5;
const LSR_TEMT: u8 = 1 << 6;
/// Modem control register.
const MCR: u16 = COM1 + 4;
/// MCR: DTR, RTS (the VMM's setting).
const MCR_DTR_RTS: u8 = 0x03;
/// MCR.OUT2: on a PC it gates the UART's interrupt line; the guest's.
const MCR_OUT2: u8 = 1 << 3;

/// Write a byte to an I/O port.
///
/// # Safety
/// The port must be one whose write has no effect on memory safety (the
/// UART, the debug-exit ports); the caller runs at CPL 0 or with IOPL.
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: the caller guarantees the port is harmless to write.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    }
}

/// Write a 16-bit word to an I/O port.
///
/// # Safety
/// As [`outb`].
pub unsafe fn outw(port: u16, value: u16) {
    // SAFETY: the caller guarantees the port is harmless to write.
    unsafe {
        asm!("out dx, ax", in("dx") port, in("ax") value, options(nomem, nostack, preserves_flags))
    }
}

/// Write a 32-bit word to an I/O port.
///
/// # Safety
/// As [`outb`].
pub unsafe fn outl(port: u16, value: u32) {
    // SAFETY: the caller guarantees the port is harmless to write.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
    }
}

/// Read a byte from an I/O port.
///
/// # Safety
/// The port must be one whose read has no side effect on memory safety.
pub unsafe fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: the caller guarantees the port is harmless to read.
    unsafe {
        asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack, preserves_flags))
    }
    v
}

impl Com1 {
    /// Program 115200 baud, 8N1, FIFOs on, interrupts off.
    pub fn init() {
        // SAFETY: these are the standard 16550 registers of COM1; writing
        // them changes only the UART's line settings.
        unsafe {
            outb(COM1 + 1, 0x00); // IER: no interrupts
            outb(COM1 + 3, 0x80); // LCR: DLAB
            outb(COM1, 0x01); // DLL: 115200
            outb(COM1 + 1, 0x00); // DLM
            outb(COM1 + 3, 0x03); // LCR: 8N1
            outb(COM1 + 2, 0xC7); // FCR: FIFO on, clear
            outb(COM1 + 4, 0x03); // MCR: DTR, RTS
        }
    }

    /// Run `f` with the VMM's line settings (115200 baud, 8N1, DTR and RTS,
    /// no loopback), then give the UART back its previous divisor, line
    /// control and modem control registers. A guest sharing the UART may
    /// have set a slow divisor, DLAB, or MCR.LOOP, which would send every
    /// byte the VMM writes into the guest's own receive FIFO instead of
    /// out on the wire (16550 datasheet, MCR bit 4); the interrupt-enable
    /// and FIFO registers, and MCR.OUT2 (the interrupt gate), are left as
    /// the guest set them.
    pub fn with_own_settings(f: impl FnOnce()) {
        // SAFETY: the standard 16550 registers of COM1: LCR (+3), MCR (+4),
        // and with DLAB set the divisor latch (+0, +1). Only line and modem
        // settings change, and they are restored below.
        let (lcr, dll, dlm, mcr) = unsafe {
            let mcr = inb(MCR);
            outb(MCR, MCR_DTR_RTS | (mcr & MCR_OUT2));
            let lcr = inb(COM1 + 3);
            outb(COM1 + 3, lcr | 0x80);
            let dll = inb(COM1);
            let dlm = inb(COM1 + 1);
            outb(COM1, 0x01);
            outb(COM1 + 1, 0x00);
            outb(COM1 + 3, 0x03);
            (lcr, dll, dlm, mcr)
        };
        f();
        Com1::flush();
        // SAFETY: as above: the guest's divisor, LCR and MCR go back, once
        // the last byte has left (flush), so none of it loops back.
        unsafe {
            outb(COM1 + 3, 0x80);
            outb(COM1, dll);
            outb(COM1 + 1, dlm);
            outb(COM1 + 3, lcr);
            outb(MCR, mcr);
        }
    }

    /// Send one byte, waiting for room in the transmitter. A bounded wait:
    /// a missing UART (all ones or all zeros) cannot hang the caller.
    pub fn write_byte(b: u8) {
        for _ in 0..100_000 {
            // SAFETY: reading COM1's line-status register has no side effect.
            if unsafe { inb(LSR) } & LSR_THRE != 0 {
                break;
            }
            core::hint::spin_loop();
        }
        // SAFETY: COM1's transmit register.
        unsafe { outb(COM1, b) }
    }

    /// Wait until every byte has left the UART (LSR.TEMT), so that stopping
    /// the machine right after does not lose the last byte.
    pub fn flush() {
        for _ in 0..1_000_000 {
            // SAFETY: reading COM1's line-status register has no side effect.
            if unsafe { inb(LSR) } & LSR_TEMT != 0 {
                return;
            }
            core::hint::spin_loop();
        }
    }
}

impl fmt::Write for Com1 {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                Com1::write_byte(b'\r');
            }
            Com1::write_byte(b);
        }
        Ok(())
    }
}

/// `memcpy`: 64-byte blocks through XMM0-3, then `rep movsb` for the rest.
/// Emulators run `rep movs`/`rep stos` one element at a time (QEMU TCG
/// took 1.3 s to zero and fill a Linux guest's 256 MiB with `rep stosb`),
/// but translate a plain SSE loop into host code. Asm also keeps the
/// compiler from turning a copy loop back into a call to `memcpy`.
///
/// # Safety
/// `dst` and `src` are valid for `n` bytes and do not overlap.
#[no_mangle]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees both ranges are valid; DF is clear
    // (the ABI requires it at function boundaries). The 64-byte blocks and
    // the tail together cover exactly n bytes; the loop runs only when
    // there is at least one block (jrcxz).
    unsafe {
        asm!(
            "jrcxz 3f",
            "2:",
            "movdqu xmm0, [rsi]",
            "movdqu xmm1, [rsi + 16]",
            "movdqu xmm2, [rsi + 32]",
            "movdqu xmm3, [rsi + 48]",
            "movdqu [rdi], xmm0",
            "movdqu [rdi + 16], xmm1",
            "movdqu [rdi + 32], xmm2",
            "movdqu [rdi + 48], xmm3",
            "add rsi, 64",
            "add rdi, 64",
            "dec rcx",
            "jnz 2b",
            "3:",
            "mov rcx, {tail}",
            "rep movsb",
            tail = in(reg) n & 63,
            inout("rcx") n / 64 => _, inout("rdi") dst => _, inout("rsi") src => _,
            out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
            options(nostack),
        );
    }
    dst
}

/// `memmove`: forward copy when `dst` is below `src`, else backward.
///
/// # Safety
/// `dst` and `src` are valid for `n` bytes; they may overlap.
#[no_mangle]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize) <= (src as usize) || (dst as usize) >= (src as usize).wrapping_add(n) {
        // SAFETY: a forward copy is correct when dst does not start inside
        // src's range; validity is the caller's guarantee.
        unsafe { memcpy(dst, src, n) }
    } else if n > 0 {
        let last = n.wrapping_sub(1);
        // SAFETY: backward copy (DF=1) from the last byte; DF is cleared
        // again before returning, as the ABI requires.
        unsafe {
            asm!("std", "rep movsb", "cld",
                 inout("rcx") n => _,
                 inout("rdi") dst.wrapping_add(last) => _,
                 inout("rsi") src.wrapping_add(last) => _,
                 options(nostack));
        }
        dst
    } else {
        dst
    }
}

/// `memset`.
///
/// # Safety
/// `dst` is valid for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // The byte repeated in all bytes of XMM0 (see memcpy for why blocks).
    let word = u64::from(c as u8).wrapping_mul(0x0101_0101_0101_0101);
    // SAFETY: the caller guarantees the range is valid; DF is clear. The
    // 64-byte blocks and the tail together cover exactly n bytes.
    unsafe {
        asm!(
            "movq xmm0, rax",
            "punpcklqdq xmm0, xmm0",
            "jrcxz 3f",
            "2:",
            "movdqu [rdi], xmm0",
            "movdqu [rdi + 16], xmm0",
            "movdqu [rdi + 32], xmm0",
            "movdqu [rdi + 48], xmm0",
            "add rdi, 64",
            "dec rcx",
            "jnz 2b",
            "3:",
            "mov rcx, {tail}",
            "rep stosb",
            tail = in(reg) n & 63,
            inout("rcx") n / 64 => _, inout("rdi") dst => _, in("rax") word,
            out("xmm0") _,
            options(nostack),
        );
    }
    dst
}

/// `memcmp`.
///
/// # Safety
/// `a` and `b` are valid for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: i < n and both ranges are valid for n bytes. Volatile
        // reads keep LLVM from turning this loop into a call to memcmp.
        let (x, y) = unsafe { (a.add(i).read_volatile(), b.add(i).read_volatile()) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// `bcmp`: like `memcmp`, only zero / non-zero matters.
///
/// # Safety
/// As [`memcmp`].
#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as memcmp.
    unsafe { memcmp(a, b, n) }
}

/// Referenced by the prebuilt libcore's `.eh_frame`; never called, since
/// images are built with `panic = "abort"`.
#[no_mangle]
pub extern "C" fn rust_eh_personality() {}

/// Assembly text that pushes the nine registers the System V ABI lets a
/// called function clobber (RAX, RCX, RDX, RSI, RDI, R8-R11), for an
/// interrupt stub about to call Rust: the interrupted code keeps them.
/// [`pop_scratch_iretq!`] undoes it. For `global_asm!(concat!(...))`.
#[macro_export]
macro_rules! push_scratch {
    () => {
        "push rax\n push rcx\n push rdx\n push rsi\n push rdi\n push r8\n push r9\n push r10\n push r11\n"
    };
}

/// Assembly text that pops what [`push_scratch!`] pushed, drops the two
/// words the stub pushed before it (vector and error code) and returns
/// from the interrupt (IRETQ).
#[macro_export]
macro_rules! pop_scratch_iretq {
    () => {
        "pop r11\n pop r10\n pop r9\n pop r8\n pop rdi\n pop rsi\n pop rdx\n pop rcx\n pop rax\n add rsp, 16\n iretq\n"
    };
}
