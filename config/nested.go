package config

import (
	"errors"
	"strings"
)

// NestedEnv is the environment variable through which a bridge started by a
// bridge can tell: mcpbridge sets it in every stdio child's environment (to
// its own depth plus one), so a bridge that finds it already set knows it is
// nested and how deeply. This package only exports the name; enforcing a
// depth limit is the caller's job.
const NestedEnv = "MCPBRIDGE_DEPTH"

// errNested is returned for a backend whose command is mcpbridge itself.
// Fronting a bridge with a bridge only duplicates every tool under a second
// prefix, and a config that lists itself would recurse without end.
var errNested = errors.New("refusing to start mcpbridge inside mcpbridge")

// isBridgeCommand reports whether command's base name is mcpbridge or
// mcpbridge.exe (any case, since Windows and macOS file systems ignore it).
func isBridgeCommand(command string) bool {
	base := command[strings.LastIndexAny(command, `/\`)+1:]
	base = strings.ToLower(base)
	return base == "mcpbridge" || base == "mcpbridge.exe"
}

// checkCommand rejects an empty command and mcpbridge itself.
func checkCommand(command string) error {
	if command == "" {
		return errors.New("empty command")
	}
	if isBridgeCommand(command) {
		return errNested
	}
	return nil
}
