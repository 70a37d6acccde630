//go:build linux && !race

package main

const soakCalls = 10000
