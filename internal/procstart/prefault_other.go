//go:build !linux

package procstart

// prefault is Linux's only (MADV_POPULATE_READ).
func prefault() {}

// helper matters only to prefault.
func helper() bool { return false }
