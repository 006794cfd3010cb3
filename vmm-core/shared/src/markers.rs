//! The console lines vmm-core and `vmmcall-init` print and xtask reads,
//! and the boot command-line word that carries the run's verdict secret.
//!
//! vmm-core's verdict line is `{EXIT}{status} [verdict SECRET]` or
//! `{STOP}{reason} [verdict SECRET]`; `SECRET` comes from `{VERDICT_WORD}SECRET`
//! on its command line, which xtask writes and the guest cannot read
//! (vmm-core's `bootinfo`, xtask's `verdict`).

/// The VMM's line when the guest is done: this, then the status.
pub const EXIT: &str = "vmm: guest exited with status ";
/// The VMM's line when it stops the guest: this, then the reason.
pub const STOP: &str = "vmm: guest stopped: ";
/// What starts the VMM's tag at the end of its verdict line (` [verdict
/// SECRET]`).
pub const TAG: &str = "[verdict ";
/// The reason of a stop on an exit the VMM has no handler for, after
/// [`STOP`] (`unhandled exit NAME (raw code ...) at RIP ...`).
pub const UNHANDLED: &str = "unhandled exit";
/// Printed by the VMM's panic handler, then `: ` and the message.
pub const PANIC: &str = "vmm: PANIC";
/// What the VMM writes to the Bochs BIOS info port before it stops Bochs,
/// followed by `pass SECRET` or `fail SECRET`
/// ([`crate::ports::BOCHS_INFO`]).
pub const BOCHS_VERDICT: &str = "vmm: verdict ";
/// The word of the VMM's boot command line that carries the secret.
pub const VERDICT_WORD: &str = "verdict=";

/// What starts every line `vmmcall-init` prints.
pub const INIT: &str = "vmmcall-init: ";
/// What `vmmcall-init` prints just before it starts a program.
pub const INIT_RUNNING: &str = "vmmcall-init: running ";
/// Between a program and its status in `vmmcall-init`'s line after it.
pub const INIT_EXITED: &str = " exited with status ";
