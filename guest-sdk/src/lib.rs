//! Guest side of vmmcall (work in progress).
#![no_std]
