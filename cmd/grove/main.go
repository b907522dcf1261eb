// Command grove runs a Grove node (grove server) and talks to running ones
// (grove members, grove status).
//
// Every flag can also be set by an environment variable GROVE_<FLAG>, with
// dashes as underscores: --data-dir and GROVE_DATA_DIR. Flags win.
//
// Exit codes: 0 ok, 1 the operation failed, 2 a usage error (bad flags,
// unusable data dir).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// usageError is a bad invocation: exit code 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

const usage = `usage: grove COMMAND [flags]

commands:
  server                 run a Grove node (grove server -h for flags)
  status                 show a node's view of the cluster
  members                list gossip members and their raft roles
  members remove NAME    remove a member from the cluster (through the leader)
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "server":
		err = runServer(args[1:], stderr)
	case "status":
		err = runStatus(args[1:], stdout)
	case "members":
		err = runMembers(args[1:], stdout)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		err = usagef("grove: unknown command %q", args[0])
	}
	if err == nil || errors.Is(err, errHelp) {
		return 0
	}
	fmt.Fprintln(stderr, "grove:", oneLine(err))
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func oneLine(err error) string {
	s := err.Error()
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}
