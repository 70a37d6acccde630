//go:build linux && race

package main

// soakCalls is smaller under the race detector, which slows each call ~10×.
const soakCalls = 2000
