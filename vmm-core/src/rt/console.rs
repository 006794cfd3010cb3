//! The VMM console: COM1, shared with the guest, behind the `log` facade.
//!
//! `log` records print as `vmm: [LEVEL] message`; [`println!`](crate::println)
//! prints a line as is (handlers use it for output meant for people, like
//! the seed's `Hello BitVisor!, arg1 = 5`). A spin lock keeps lines whole.
//!
//! A guest can make the VMM log at will (every `-EFAULT` names the bad
//! address at `Warn`, within vmmcall's own budget,
//! [`vmmcall::budget::GUEST_LOG`]; the run loop logs refused ports and
//! MSRs), so log records below `Error` share a budget of [`LOG_BUDGET`]
//! lines ([`vmmcall::budget::Budget`]); past it they are counted, not
//! printed, after one line saying so. Otherwise a hostile guest could bury
//! the console and slow the VMM to the speed of the UART (`examples/hostile`
//! tries). Handlers' own output
//! ([`println!`](crate::println), which any `user` handler such as the
//! seed's `hello` prints on a ring-3 caller's behalf) has a budget of its
//! own, [`PRINT_BUDGET`] lines. `Error` records and the VMM's own lines
//! (boot, verdict: [`print_always`]) are always printed.
//!
//! The guest may have reprogrammed the UART (a divisor of 0xFFFF makes
//! every byte wait the whole bounded poll). Each VMM print therefore runs
//! with the VMM's own line settings (115200 8N1) and restores the guest's
//! divisor and line control afterwards; the interrupt enable and FIFO
//! registers are never touched, so a Linux guest's interrupt-driven
//! console keeps working.

use core::fmt::{self, Write};
use spin::Mutex;
use vmmcall::baremetal::Com1;
use vmmcall::budget::{Budget, Spend};

static LOCK: Mutex<()> = Mutex::new(());

/// Program the UART and install the logger (level from the build:
/// `Info`, or `Debug` with `debug_assertions`).
pub fn init() {
    Com1::init();
    // An error only means a logger is already installed: keep it.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(if cfg!(debug_assertions) {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    });
}

/// Print formatted text on the console whatever the budgets say: for the
/// VMM's own lines (boot, the verdict, fatal errors).
pub fn print_always(args: fmt::Arguments<'_>) {
    let _guard = LOCK.lock();
    Com1::with_own_settings(|| {
        // Com1's writer never fails.
        let _ = Com1.write_fmt(args);
    });
}

/// Lines handlers may print through [`println!`](crate::println); later
/// ones are counted, not printed.
pub const PRINT_BUDGET: u64 = 256;

/// Handler lines seen so far, printed or not.
static PRINTED: Budget = Budget::new(PRINT_BUDGET);

/// How many handler lines the budget kept off the console.
pub fn suppressed_prints() -> u64 {
    PRINTED.suppressed()
}

/// Print formatted text for a handler, within [`PRINT_BUDGET`].
pub fn print_fmt(args: fmt::Arguments<'_>) {
    match PRINTED.spend() {
        Spend::Print => print_always(args),
        Spend::Exhausted => print_always(format_args!(
            "vmm: [WARN] hypercall handlers printed {PRINT_BUDGET} lines: further handler output is counted, not printed\n"
        )),
        Spend::Suppressed => {}
    }
}

/// Print a line on the VMM console, like `std::println!`, for hypercall
/// handlers: at most [`PRINT_BUDGET`] lines are printed (a guest decides
/// how often a handler runs).
#[macro_export]
macro_rules! println {
    () => { $crate::console::print_fmt(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::print_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Print one of the VMM's own lines (unbudgeted).
#[macro_export]
#[doc(hidden)]
macro_rules! say {
    ($($arg:tt)*) => { $crate::console::print_always(format_args!("{}\n", format_args!($($arg)*))) };
}

/// How many log records below `Error` are printed; later ones are only
/// counted (see the module docs).
pub const LOG_BUDGET: u64 = 64;

/// Log records below `Error` seen so far, printed or not.
static LOGGED: Budget = Budget::new(LOG_BUDGET);

/// How many log records the budgets kept off the console: this logger's,
/// and vmmcall's own budget of the records guests cause
/// ([`vmmcall::budget::GUEST_LOG`]), which never reach it.
pub fn suppressed() -> u64 {
    LOGGED
        .suppressed()
        .saturating_add(vmmcall::budget::GUEST_LOG.suppressed())
}

struct Logger;

static LOGGER: Logger = Logger;

impl log::Log for Logger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        if record.level() > log::Level::Error {
            match LOGGED.spend() {
                Spend::Print => {}
                Spend::Exhausted => {
                    print_always(format_args!(
                        "vmm: [WARN] {LOG_BUDGET} log lines printed: further warnings and notes are counted, not printed\n"
                    ));
                    return;
                }
                Spend::Suppressed => return,
            }
        }
        if self.enabled(record.metadata()) {
            print_always(format_args!(
                "vmm: [{}] {}\n",
                record.level(),
                record.args()
            ));
        }
    }

    fn flush(&self) {
        Com1::flush();
    }
}
