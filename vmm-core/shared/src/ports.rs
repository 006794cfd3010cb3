//! The emulators' exit ports: how a run ends.
//!
//! vmm-core writes them when the guest is done (`exit_machine`), and
//! `vmmcall-init` writes them itself when it runs without the VMM
//! (`cargo xtask linux --compare`). xtask reads the effect back: QEMU's
//! exit code, or Bochs's log line. No guest profile passes these ports
//! through to a guest under the VMM (vmm-core's `intercept`).

/// QEMU's `isa-debug-exit` device (`-device isa-debug-exit,iobase=0xf4`):
/// a byte `v` written here ends QEMU with exit code `(v << 1) | 1`.
pub const QEMU_DEBUG_EXIT: u16 = 0xF4;
/// The byte the VMM writes to [`QEMU_DEBUG_EXIT`] for success.
pub const QEMU_SUCCESS: u8 = 0x10;
/// The byte the VMM writes to [`QEMU_DEBUG_EXIT`] for failure.
pub const QEMU_FAILURE: u8 = 0x11;

/// QEMU's exit code after `value` was written to [`QEMU_DEBUG_EXIT`].
pub const fn qemu_exit_code(value: u8) -> i32 {
    ((value as i32) << 1) | 1
}

/// The exit port of vmm-core's Linux profile (docs/ABI.md, "Who may end
/// the run"): a 4-byte `OUT` here ends the run with EAX as the status.
/// It is the VMM's device, not the emulator's: the VMM intercepts the
/// port, so QEMU's [`QEMU_DEBUG_EXIT`] device at the same number never
/// sees a guest's write. `vmmcall-init` writes it, vmm-core answers it.
pub const LINUX_EXIT_PORT: u16 = 0xF4;

/// Bochs's shutdown port: writing [`BOCHS_SHUTDOWN_WORD`] to it, one byte
/// at a time, ends the simulation (Bochs `iodev/unmapped.cc`).
pub const BOCHS_SHUTDOWN: u16 = 0x8900;
/// What ends Bochs when written to [`BOCHS_SHUTDOWN`].
pub const BOCHS_SHUTDOWN_WORD: &[u8; 8] = b"Shutdown";

/// The Bochs BIOS info port (Bochs `iodev/biosdev.cc`): Bochs writes each
/// line sent here into its log as `[BIOS  ] text`. vmm-core sends its
/// verdict there ([`crate::markers::BOCHS_VERDICT`]).
pub const BOCHS_INFO: u16 = 0x402;

/// The PM1a control port of QEMU's PIIX4 power-management block, and the
/// value that requests ACPI S5 (soft off): the VMM's last resort.
pub const ACPI_PM1A_CNT: u16 = 0x604;
/// `SLP_EN | SLP_TYP = 0` on [`ACPI_PM1A_CNT`]: S5 on QEMU.
pub const ACPI_S5: u16 = 0x2000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_exit_codes() {
        assert_eq!(qemu_exit_code(QEMU_SUCCESS), 33);
        assert_eq!(qemu_exit_code(QEMU_FAILURE), 35);
        assert_eq!(qemu_exit_code(0), 1);
    }
}
