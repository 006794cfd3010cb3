//! Guest page-table walks: guest-linear to guest-physical addresses with the
//! caller's privilege (work in progress, issue 5).
