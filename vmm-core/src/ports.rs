//! What a guest gets from an I/O port outside its pass-through set
//! ([`crate::intercept::guest_ports`]): every such `IN`/`OUT` exits, and
//! [`EmulatedPorts::access`] answers it.
//!
//! - The RTC (`0x70` index, `0x71` data; MC146818), for a Linux guest and
//!   byte accesses: emulated read-only. The index port selects a register,
//!   the data port reads the clock and status registers `0x00..=0x0D` from
//!   the hardware RTC (the VMM reads it on the guest's behalf) and CMOS RAM
//!   above as 0; writes to the data port are dropped.
//! - The exit port (`0xF4`), for a Linux guest: a 4-byte `OUT` ends the
//!   run with EAX as the status ([`EmulatedPorts::exit_request`]).
//! - Any other `IN`: all ones, as from an absent device ([`denied_in`]).
//! - Any other `OUT`: dropped.
//! - String I/O (`INS`/`OUTS`): refused; the run loop raises `#GP(0)`.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

use crate::guest::Profile;
use vmexit::IoExit;

/// The RTC's index port.
pub const RTC_INDEX: u16 = 0x70;
/// The RTC's data port.
pub const RTC_DATA: u16 = 0x71;

pub use vmm_shared::ports::LINUX_EXIT_PORT;

/// The emulated ports of one vCPU: its profile and the RTC register the
/// guest last selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmulatedPorts {
    profile: Profile,
    rtc_index: u8,
}

impl EmulatedPorts {
    /// Ports for a guest of `profile`, RTC register 0 selected.
    pub const fn new(profile: Profile) -> EmulatedPorts {
        EmulatedPorts {
            profile,
            rtc_index: 0,
        }
    }

    /// Whether the port access `io` that exited, with the guest's RAX, asks
    /// to end a Linux guest's run, and with which status: a 4-byte write
    /// (`out dx, eax`) to [`LINUX_EXIT_PORT`], status = EAX (docs/ABI.md,
    /// "Who may end the run"). A ring-3 process reaches this exit only if
    /// its kernel allows it the port (IOPL or the TSS I/O bitmap, checked
    /// by the CPU before the VM exit: Intel SDM Vol. 3C §26.1.1, AMD APM
    /// Vol. 2 §15.10); Linux grants it through `ioperm`/`iopl`, which need
    /// `CAP_SYS_RAWIO`. Any other size, a read, string I/O, or a
    /// bare-metal guest (which has the CPL-0 `exit` hypercall): `None`, and
    /// [`EmulatedPorts::access`] answers it as an ordinary denied port.
    pub fn exit_request(&self, io: &IoExit, rax: u64) -> Option<u32> {
        (self.profile == Profile::Linux
            && io.port == LINUX_EXIT_PORT
            && io.size == 4
            && io.write
            && !io.string)
            .then_some(rax as u32)
    }

    /// Run the port access `io` that exited, with the guest's RAX: the
    /// guest's RAX afterwards, or `None` for string I/O, which the VMM
    /// refuses. `read_rtc` reads a register of the hardware RTC.
    pub fn access(
        &mut self,
        io: &IoExit,
        rax: u64,
        read_rtc: impl FnOnce(u8) -> u8,
    ) -> Option<u64> {
        if io.string {
            return None;
        }
        let rtc = self.profile == Profile::Linux && io.size == 1;
        Some(match (io.port, io.write) {
            (RTC_INDEX, true) if rtc => {
                self.rtc_index = rax as u8;
                rax
            }
            (RTC_DATA, false) if rtc => {
                (rax & !0xFF) | u64::from(rtc_read(self.rtc_index, read_rtc))
            }
            (_, false) => denied_in(rax, io.size),
            (_, true) => rax,
        })
    }
}

/// What the emulated RTC returns for register `index` (MC146818 layout):
/// the clock and status registers `0x00..=0x0D` come from `real`, CMOS RAM
/// above reads 0. Bit 7 of the index (the NMI mask) is ignored.
pub fn rtc_read(index: u8, real: impl FnOnce(u8) -> u8) -> u8 {
    match index & 0x7F {
        i @ 0x00..=0x0D => real(i),
        _ => 0,
    }
}

/// What an `IN` from a port the guest may not use reads: all ones, as from
/// an absent device, in the low `size` bytes of RAX (the rest unchanged for
/// 1- and 2-byte reads; a 4-byte `IN` zero-extends into RAX, as on hardware).
pub fn denied_in(rax: u64, size: u8) -> u64 {
    match size {
        1 => rax | 0xFF,
        2 => rax | 0xFFFF,
        _ => 0xFFFF_FFFF,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(port: u16, size: u8, write: bool, string: bool) -> IoExit {
        IoExit {
            port,
            size,
            write,
            string,
            rep: false,
            immediate: None,
            address_size: None,
            next_rip: None,
        }
    }

    #[test]
    fn only_a_linux_guests_dword_out_to_the_exit_port_ends_the_run() {
        let rax = 0xdead_beef_0000_0007;
        let linux = EmulatedPorts::new(Profile::Linux);
        let bare = EmulatedPorts::new(Profile::BareMetal);
        assert_eq!(linux.exit_request(&io(0xF4, 4, true, false), rax), Some(7));
        assert_eq!(linux.exit_request(&io(0xF4, 4, false, false), rax), None);
        assert_eq!(linux.exit_request(&io(0xF4, 1, true, false), rax), None);
        assert_eq!(linux.exit_request(&io(0xF4, 2, true, false), rax), None);
        assert_eq!(linux.exit_request(&io(0xF4, 4, true, true), rax), None);
        assert_eq!(linux.exit_request(&io(0xF0, 4, true, false), rax), None);
        assert_eq!(bare.exit_request(&io(0xF4, 4, true, false), rax), None);
    }

    #[test]
    fn rtc_is_read_only_clock_registers() {
        assert_eq!(rtc_read(0x00, |i| 0x40 + i), 0x40);
        assert_eq!(
            rtc_read(0x8D, |i| 0x40 + i),
            0x4D,
            "the NMI-mask bit is ignored"
        );
        assert_eq!(rtc_read(0x0E, |_| unreachable!()), 0);
        assert_eq!(rtc_read(0x7F, |_| unreachable!()), 0);
    }

    #[test]
    fn denied_reads_are_all_ones() {
        assert_eq!(denied_in(0x1234_5678_9abc_de00, 1), 0x1234_5678_9abc_deff);
        assert_eq!(denied_in(0x1234_5678_9abc_0000, 2), 0x1234_5678_9abc_ffff);
        assert_eq!(denied_in(0x1234_5678_0000_0000, 4), 0xffff_ffff);
    }

    #[test]
    fn a_linux_guest_reads_the_rtc_register_it_selected() {
        let mut p = EmulatedPorts::new(Profile::Linux);
        // OUT 0x70, AL = 0x84 (NMI mask, register 4): RAX unchanged.
        assert_eq!(
            p.access(&io(RTC_INDEX, 1, true, false), 0x84, |_| unreachable!()),
            Some(0x84)
        );
        // IN AL, 0x71: the hours register, the rest of RAX kept.
        assert_eq!(
            p.access(&io(RTC_DATA, 1, false, false), 0xAB00, |i| 0x10 + i),
            Some(0xAB14)
        );
        // A write to the data port is dropped.
        assert_eq!(
            p.access(&io(RTC_DATA, 1, true, false), 0x99, |_| unreachable!()),
            Some(0x99)
        );
        // A word access is not the RTC: an absent device.
        assert_eq!(
            p.access(&io(RTC_DATA, 2, false, false), 0, |_| unreachable!()),
            Some(0xFFFF)
        );
    }

    #[test]
    fn a_bare_metal_guest_has_no_rtc_and_string_io_is_refused() {
        let mut p = EmulatedPorts::new(Profile::BareMetal);
        assert_eq!(
            p.access(&io(RTC_INDEX, 1, true, false), 4, |_| unreachable!()),
            Some(4)
        );
        assert_eq!(
            p.access(&io(RTC_DATA, 1, false, false), 0, |_| unreachable!()),
            Some(0xFF)
        );
        assert_eq!(
            p.access(&io(0x80, 1, true, true), 7, |_| unreachable!()),
            None
        );
        assert_eq!(
            p.access(&io(0x60, 4, false, false), 1 << 40, |_| unreachable!()),
            Some(0xFFFF_FFFF)
        );
    }
}
