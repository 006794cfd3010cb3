//! VM-exit decoding (work in progress).
#![no_std]
