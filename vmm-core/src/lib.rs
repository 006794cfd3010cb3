//! A small bare-metal hypervisor (work in progress).
#![no_std]
