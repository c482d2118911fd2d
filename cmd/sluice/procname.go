package main

import (
	"os"

	"github.com/sluice-ftp/sluice/policy"
)

// Package init runs on the process's main thread (the runtime locks it
// there until main starts), so naming that thread names the process: a
// worker shows as "sluice-worker" in ps and top rather than "exe", the
// name of the /proc/self/exe link it was started through.
func init() {
	if len(os.Args) > 1 && os.Args[1] == "worker" {
		policy.SetProcessName("sluice-worker")
	}
}
