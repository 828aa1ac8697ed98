//! Control groups: one manager interface, one implementation per host layout.
