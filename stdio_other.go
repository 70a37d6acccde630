//go:build !linux

package main

func growStdio() {}
