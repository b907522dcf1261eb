// Command demo starts a three-node Grove cluster inside one process and
// walks through what it is for, narrating as it goes:
//
//   - workers contend for a lock, each holder carrying a fencing token;
//   - candidates run an election; the leader's client dies, another takes
//     over with a higher term;
//   - a configuration value changes and every watcher sees it;
//   - producers fill a queue, a consumer dies holding an item, and the
//     item is delivered again to another consumer;
//   - the raft leader node is killed while workers keep writing; the
//     cluster elects a new leader, carries on, and the killed node comes
//     back from its data dir.
//
// # Usage
//
//	go run ./cmd/demo [--rounds N] [--seed S] [--keep] [--verbose]
//
// The nodes listen on free loopback ports and keep their data in a
// temporary directory, removed when the demo ends. Server logs go to a
// file in that directory (--verbose: to standard error as well).
//
// --rounds plays every scene N times (default 1; each round kills the
// raft leader once more). --seed fixes the random choices (which consumer
// dies, how long each worker works); the seed is printed at the start so a
// run can be repeated, though timing still varies from run to run. --keep
// leaves the cluster up after the scenes and prints the commands to look
// at it with the grove CLI, until Ctrl-C.
//
// # Output
//
// Every milestone is one line starting with "==> " and a scene name:
// "==> cluster up:", "==> lock:", "==> election:", "==> config:",
// "==> queue:", "==> failover:", with --keep "==> ready:", and last
// "==> done:". Indented lines explain what happens in between.
//
// # Exit codes
//
// 0: every scene went as expected (with --keep: and the demo was then
// stopped by Ctrl-C or SIGTERM); 1: a scene failed, the message says how;
// 2: bad flags; 130: interrupted before the scenes were over. The cluster
// is stopped and its files removed in every case but a second Ctrl-C,
// which quits at once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// options are the demo's flags.
type options struct {
	rounds  int
	seed    uint64
	keep    bool
	verbose bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal the demo cleans up; a second one quits at once.
	context.AfterFunc(ctx, stop)
	// Output piped into a reader that quits early (demo | head) must not
	// kill the demo before it cleans up: the narration is then lost, but
	// the demo plays on and removes its files.
	signal.Ignore(syscall.SIGPIPE)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run plays the demo with args and returns the exit code. It stops the
// scenes when ctx ends (with --keep: the end of the kept cluster).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	start := time.Now()
	out := newNarrator(stdout)
	err = play(ctx, opts, out, stderr)
	switch {
	case err == nil:
		out.milestone("done: %d round(s) in %.1fs; cluster stopped, temporary files removed", opts.rounds, time.Since(start).Seconds())
		return 0
	case ctx.Err() != nil:
		out.say("interrupted; cluster stopped, temporary files removed")
		return 130
	default:
		out.say("FAILED: %v", err)
		_, _ = fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
}

// parseFlags parses args; errors are reported on stderr.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.rounds, "rounds", 1, "play every scene this many times (each round kills the raft leader once)")
	fs.Uint64Var(&o.seed, "seed", 0, "seed for the random choices (0: pick one and print it)")
	fs.BoolVar(&o.keep, "keep", false, "leave the cluster up after the scenes until Ctrl-C, for the grove CLI")
	fs.BoolVar(&o.verbose, "verbose", false, "copy the servers' logs to standard error")
	fs.Usage = func() {
		_, _ = fmt.Fprintln(fs.Output(), "usage: demo [--rounds N] [--seed S] [--keep] [--verbose]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		err := fmt.Errorf("unexpected argument %q", fs.Arg(0))
		_, _ = fmt.Fprintln(stderr, "demo:", err)
		fs.Usage()
		return o, err
	}
	if o.rounds < 1 {
		err := fmt.Errorf("--rounds %d: must be at least 1", o.rounds)
		_, _ = fmt.Fprintln(stderr, "demo:", err)
		return o, err
	}
	if o.seed == 0 {
		o.seed = uint64(time.Now().UnixNano())
	}
	return o, nil
}
