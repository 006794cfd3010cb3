//! The VMM console: COM1, shared with the guest, behind the `log` facade.
//!
//! `log` records print as `vmm: [LEVEL] message`; [`println!`](crate::println)
//! prints a line as is (handlers use it for output meant for people, like
//! the seed's `Hello BitVisor!, arg1 = 5`). A spin lock keeps lines whole.

use core::fmt::{self, Write};
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

struct Logger;

static LOGGER: Logger = Logger;

impl log::Log for Logger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
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
