//! Escape attempt: a forged verdict, VMM side. Nothing but vmm-core: the
//! policy under test is how the VMM ends a run (`rt/start.rs`: its one
//! verdict line carries the run's secret from the boot command line) and
//! how `cargo xtask` judges it (`xtask/src/verdict.rs`).
#![no_std]
#![no_main]

// The hypervisor itself: boot, backends, runtime.
use vmm_core as _;
