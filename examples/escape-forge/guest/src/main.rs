//! Escape attempt: the guest forges the VMM's verdict on the console it
//! shares with the VMM (COM1), then fails.
//!
//! It prints the VMM's success line, `vmm: guest exited with status 0`,
//! bare and with a made-up `[verdict ...]` tag, and a VMM stop line; it
//! leaves one more success line unfinished, so that the VMM's own verdict
//! continues that console line; then it calls the VMM's `exit` with status
//! 3.
//!
//! Documented outcome (docs/VMM-CORE.md, "The shared console"): only the VMM's
//! verdict line ends with the run's secret, which the guest cannot know, so
//! `cargo xtask` finds the three forged lines, ignores them, and reads the
//! status, 3, from the VMM's line. `expect.txt` says `outcome: exited 3`
//! and `forgeries: 3`: the run passes only if xtask saw through exactly
//! these three and took status 3 (QEMU exit code 35, Bochs `fail`). Any
//! other example whose guest printed such a line would fail.
#![no_std]
#![no_main]

use guest_rt::println;

guest_rt::entry!(main);

/// A secret the guest makes up: the real one is 16 random hex digits that
/// only the VMM's command line carries.
const MADE_UP: &str = "0123456789abcdef";

fn main() {
    println!("escape-forge: printing the VMM's verdict lines from the guest");
    println!("vmm: guest exited with status 0");
    println!("vmm: guest exited with status 0 [verdict {MADE_UP}]");
    println!("vmm: guest stopped: guest shutdown (triple fault) at RIP 0x0 [verdict {MADE_UP}]");
    // No newline: the VMM's verdict follows on this console line.
    guest_rt::print_fmt(format_args!("vmm: guest exited with status 0 "));
    guest_rt::exit(3)
}
