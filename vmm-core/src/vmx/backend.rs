//! Running a guest under Intel VMX (work in progress).
