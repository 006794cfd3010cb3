//! BitVisor's `get_status`, done with typed arguments: the guest passes a
//! buffer and its length; the VMM writes a status text, truncated to the
//! buffer, and returns the full length (so the guest can retry with a
//! bigger buffer, like `snprintf`).
#![no_std]
#![no_main]

use core::fmt::{self, Write};
use vmmcall::{vmmcall, Caller, Error, GuestAddr, Registry};

/// Formats into a fixed buffer, keeping what fits and counting everything.
struct Truncating<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Write for Truncating<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
            }
            self.len = self.len.saturating_add(1);
        }
        Ok(())
    }
}

/// Longest status text kept; the returned length may be larger.
const MAX_TEXT: usize = 2048;

/// Write the status text into `buf` (at most `len` bytes, no NUL) and
/// return its full length.
#[vmmcall("get_status", user)]
fn get_status(cx: &mut Caller, buf: GuestAddr, len: u64) -> Result<u64, Error> {
    let mut text = [0u8; MAX_TEXT];
    let mut w = Truncating {
        buf: &mut text,
        len: 0,
    };
    let _ = writeln!(w, "uptime: {} exits", vmm_core::exit_count());
    let _ = writeln!(w, "hypercalls served:");
    if let Ok(reg) = Registry::global() {
        for (number, h) in reg.iter() {
            let _ = writeln!(w, "  {number:>3} {:<20} {}", h.name(), reg.calls(number));
        }
    }
    let full = w.len;
    let kept = full.min(MAX_TEXT);
    let n = usize::try_from(len).unwrap_or(usize::MAX).min(kept);
    cx.write(buf, text.get(..n).unwrap_or(&[]))?;
    Ok(full as u64)
}

/// A second handler so that the counts have something to show.
#[vmmcall("ping", user)]
fn ping() -> u32 {
    1
}
