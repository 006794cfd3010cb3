//! The bare-metal runtime of the example guests (part of this repository's
//! test bench, not published): entry point, stack, console, panic handler,
//! and finishing through the VMM; [`arch`] adds exceptions, page tables and
//! ring 3 for the escape and hostile examples.
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! guest_rt::entry!(main);
//! fn main() -> Result<(), guest_sdk::Error> {
//!     let r = guest_sdk::call!("hello", rbx = 5)?;
//!     guest_rt::println!("hello returned {r}");
//!     Ok(())
//! }
//! ```
//!
//! The VMM enters `_start` in 64-bit mode at CPL 0 (see `docs/ABI.md`).
//! `_start` switches to a 64 KiB stack in `.bss`, runs the function named in
//! [`entry!`](crate::entry), then calls the VMM's built-in `exit` hypercall
//! (at CPL 0: see [`exit`]) with status 0 (`Ok`) or 1 (`Err`, after printing
//! it); a panic prints its
//! message and exits with status 101. If `exit` itself fails, the guest
//! halts, which the VMM reports. Images link with this crate's `link.ld`
//! (`cargo xtask` passes it).
#![no_std]

pub mod arch;

use baremetal::Com1;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

core::arch::global_asm!(
    r#"
    .section .text._start, "ax"
    .global _start
_start:
    lea rsp, [rip + guest_stack_top]
    xor ebp, ebp
    call guest_sdk_start
2:
    cli
    hlt
    jmp 2b

    .section .bss.guest_stack, "aw", @nobits
    .balign 16
guest_stack:
    .skip 65536
guest_stack_top:
"#
);

/// Held while one vCPU prints, so that lines from several vCPUs do not
/// interleave (a spin lock: the guests take no interrupts).
static PRINTING: AtomicBool = AtomicBool::new(false);

/// Print formatted text on the serial console (COM1), whole: one vCPU
/// at a time.
pub fn print_fmt(args: fmt::Arguments<'_>) {
    while PRINTING
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        core::hint::spin_loop();
    }
    // Com1's writer never fails.
    let _ = Com1.write_fmt(args);
    PRINTING.store(false, Ordering::Release);
}

/// The guest's vCPUs (docs/ABI.md, "Several vCPUs"): how many, which one
/// runs this code, and starting one.
pub mod vcpu {
    use guest_sdk::{call, Error};

    /// How many vCPUs the guest has (1 on a VMM without them).
    pub fn count() -> u64 {
        call!("vmm_vcpu_count").unwrap_or(1)
    }

    /// The id of the vCPU that runs this code (0 on a VMM without them).
    pub fn id() -> u64 {
        call!("vmm_vcpu_id").unwrap_or(0)
    }

    /// Start vCPU `id` in `entry(arg, id)` on the stack ending at
    /// `stack_top` (16-byte aligned), in the state vCPU 0 started in.
    pub fn start(
        id: u64,
        entry: extern "C" fn(u64, u64) -> !,
        stack_top: u64,
        arg: u64,
    ) -> Result<(), Error> {
        // The entry sees the stack as after a call: RSP + 8 aligned.
        let rsp = stack_top.wrapping_sub(8);
        call!(
            "vmm_vcpu_up",
            rbx = id,
            rcx = entry as usize as u64,
            rdx = rsp,
            rsi = arg
        )
        .map(|_| ())
    }
}

/// Print a line on the guest console, like `std::println!`.
#[macro_export]
macro_rules! println {
    () => { $crate::print_fmt(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::print_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Finish: ask the VMM to stop the guest with `status` (0 = success).
///
/// The `exit` hypercall is CPL 0 only (docs/ABI.md, "Who may end the
/// run"). From ring 3 entered through [`crate::arch::enter_ring3`], this
/// first returns to CPL 0 through SYSCALL ([`crate::arch::exit_from_ring3`])
/// and exits from there.
pub fn exit(status: u32) -> ! {
    Com1::flush();
    if crate::arch::cpl() != 0 {
        crate::arch::exit_from_ring3(status);
    }
    let r = guest_sdk::call!("exit", rbx = status);
    print_fmt(format_args!("guest: exit hypercall failed: {r:?}\n"));
    loop {
        // SAFETY: halting with interrupts off stops the vCPU; the VMM
        // reports the HLT exit.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) }
    }
}

/// Name the guest's main function: `fn main() -> Result<(), E>` with
/// `E: Debug`, or `fn main()`.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[no_mangle]
        extern "C" fn guest_sdk_start() -> ! {
            $crate::__start(|| $crate::Termination::report($main()))
        }
    };
}

/// What a guest main may return.
pub trait Termination {
    /// The exit status; prints the error first, if any.
    fn report(self) -> u32;
}

impl Termination for () {
    fn report(self) -> u32 {
        0
    }
}

impl<E: fmt::Debug> Termination for Result<(), E> {
    fn report(self) -> u32 {
        match self {
            Ok(()) => 0,
            Err(e) => {
                print_fmt(format_args!("guest: main returned an error: {e:?}\n"));
                1
            }
        }
    }
}

#[doc(hidden)]
pub fn __start(main: impl FnOnce() -> u32) -> ! {
    let status = main();
    exit(status)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    print_fmt(format_args!("guest: PANIC: {info}\n"));
    exit(101)
}
