//! The VMM console: COM1, shared with the guest, behind the `log` facade.
//!
//! `log` records print as `vmm: [LEVEL] message`; [`println!`](crate::println)
//! prints a line as is (handlers use it for output meant for people, like
//! the seed's `Hello BitVisor!, arg1 = 5`). A spin lock keeps lines whole.
//!
//! A guest can make the VMM log at will (every `-EFAULT` names the bad
//! address at `Warn`), so log records below `Error` share a budget of
//! [`LOG_BUDGET`] lines; past it they are counted, not printed, after one
//! line saying so. Otherwise a hostile guest could bury the console (and
//! slow the VMM to the speed of the UART): the hostile example's storm made
//! 22,826 warning lines in 100,000 calls. `Error` records and
//! [`println!`](crate::println) are always printed.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;
use vmmcall::baremetal::Com1;

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

/// Print formatted text to the console.
pub fn print_fmt(args: fmt::Arguments<'_>) {
    let _guard = LOCK.lock();
    // Com1's writer never fails.
    let _ = Com1.write_fmt(args);
}

/// Print a line on the VMM console, like `std::println!`.
#[macro_export]
macro_rules! println {
    () => { $crate::console::print_fmt(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::print_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}

/// How many log records below `Error` are printed; later ones are only
/// counted (see the module docs).
pub const LOG_BUDGET: u64 = 64;

/// Log records below `Error` seen so far, printed or not.
static LOGGED: AtomicU64 = AtomicU64::new(0);

/// How many log records the budget kept off the console.
pub fn suppressed() -> u64 {
    LOGGED.load(Ordering::Relaxed).saturating_sub(LOG_BUDGET)
}

struct Logger;

static LOGGER: Logger = Logger;

impl log::Log for Logger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        if record.level() > log::Level::Error {
            let seen = LOGGED.fetch_add(1, Ordering::Relaxed);
            if seen == LOG_BUDGET {
                print_fmt(format_args!(
                    "vmm: [WARN] {LOG_BUDGET} log lines printed: further warnings and notes are counted, not printed\n"
                ));
            }
            if seen >= LOG_BUDGET {
                return;
            }
        }
        if self.enabled(record.metadata()) {
            print_fmt(format_args!(
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
