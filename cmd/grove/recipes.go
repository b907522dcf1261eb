package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/grovekit/grove/recipes/election"
	"github.com/grovekit/grove/recipes/lock"
)

// commandExit is the exit code of a command grove lock ran: grove exits
// with it. It carries no message of its own (the command printed its own).
type commandExit struct{ code int }

func (e commandExit) Error() string { return fmt.Sprintf("command exited with status %d", e.code) }

// setupLock defines the flags of lock.
func setupLock(fs *pflag.FlagSet) func([]string) (action, error) {
	try := fs.Bool("try", false, "fail at once (exit 1) if someone else holds the lock")
	return func(args []string) (action, error) {
		dir := args[0]
		if err := checkPath("lock", dir); err != nil {
			return nil, err
		}
		command := args[1:]
		return func(ctx context.Context, c *conn, out *output) error {
			m := lock.NewMutex(c.s, dir)
			var err error
			if *try {
				err = c.do(ctx, m.TryLock)
			} else {
				err = m.Lock(ctx) // waits as long as it takes
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil // interrupted while waiting
				}
				return opErr("lock", dir, err)
			}
			defer func() {
				uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
				_ = m.Unlock(uctx)
				cancel()
			}()
			token, err := m.Token()
			if err != nil {
				return opErr("lock", dir, err)
			}
			if len(command) == 0 {
				return holdLock(ctx, out, dir, token, m.Lost())
			}
			if err := out.flush(); err != nil {
				return fmt.Errorf("lock %s: write output: %w", dir, err)
			}
			return runLocked(ctx, dir, token, m.Lost(), command, out.stdout, out.stderr)
		}, nil
	}
}

// holdLock prints the lock's fencing token and holds the lock until ctx
// ends (nil) or the lock is lost (an error).
func holdLock(ctx context.Context, out *output, dir string, token int64, lost <-chan struct{}) error {
	if out.json {
		_ = out.doc(map[string]any{"lock": dir, "token": token})
	} else {
		out.printf("locked %s, fencing token %d\n", dir, token)
	}
	if err := out.flush(); err != nil {
		return fmt.Errorf("lock %s: write output: %w", dir, err)
	}
	select {
	case <-ctx.Done():
		return nil
	case <-lost:
		return fmt.Errorf("lock %s: lost (the session ended)", dir)
	}
}

// killGrace is how long a command whose lock was lost, or whose grove was
// interrupted, gets after SIGTERM before SIGKILL.
const killGrace = 10 * time.Second

// runLocked runs command while holding the lock, with GROVE_LOCK_PATH and
// GROVE_LOCK_TOKEN in its environment, and returns its exit status as a
// commandExit. If the lock is lost or grove is interrupted first, the
// command gets SIGTERM (and SIGKILL after killGrace).
func runLocked(ctx context.Context, dir string, token int64, lost <-chan struct{}, command []string, stdout, stderr io.Writer) error {
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	cmd.Env = append(os.Environ(), "GROVE_LOCK_PATH="+dir, "GROVE_LOCK_TOKEN="+strconv.FormatInt(token, 10))
	if err := cmd.Start(); err != nil {
		return opErr("lock", dir, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var why error
	select {
	case err := <-exited:
		return exitOf(dir, err)
	case <-lost:
		why = fmt.Errorf("lock %s: lost (the session ended); command stopped", dir)
	case <-ctx.Done():
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if why != nil {
			return why
		}
		return exitOf(dir, err)
	case <-time.After(killGrace):
		_ = cmd.Process.Kill()
		err := <-exited
		if why != nil {
			return why
		}
		return exitOf(dir, err) // 137: killed
	}
}

// exitOf turns a finished command's Wait error into grove's result.
func exitOf(dir string, err error) error {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee):
		code := ee.ExitCode()
		if code < 0 {
			code = 128 + int(ee.Sys().(syscall.WaitStatus).Signal()) // Linux
		}
		return commandExit{code: code}
	}
	return opErr("lock", dir, err)
}

// setupElect defines the flags of elect.
func setupElect(fs *pflag.FlagSet) func([]string) (action, error) {
	listen := fs.BoolP("listen", "l", false, "do not campaign: print each new leader's value as it changes")
	return func(args []string) (action, error) {
		dir := args[0]
		if err := checkPath("elect", dir); err != nil {
			return nil, err
		}
		switch {
		case *listen && len(args) > 1:
			return nil, usagef("elect: --listen takes no VALUE")
		case !*listen && len(args) < 2:
			return nil, usagef("elect: missing VALUE (usage: grove elect DIR VALUE, or grove elect --listen DIR)")
		case len(args) > 2:
			return nil, usagef("elect: unexpected argument %q", args[2])
		}
		if *listen {
			return listenLeaders(dir), nil
		}
		value := []byte(args[1])
		return func(ctx context.Context, c *conn, out *output) error {
			e := election.New(c.s, dir)
			if err := e.Campaign(ctx, value); err != nil {
				if ctx.Err() != nil {
					return nil // interrupted while waiting
				}
				return opErr("elect", dir, err)
			}
			defer func() {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
				_ = e.Resign(rctx)
				cancel()
			}()
			term, err := e.Term()
			if err != nil {
				return opErr("elect", dir, err)
			}
			if out.json {
				_ = out.doc(map[string]any{"election": dir, "leader": string(value), "term": term})
			} else {
				out.printf("elected in %s as %s, term %d\n", dir, value, term)
			}
			if err := out.flush(); err != nil {
				return fmt.Errorf("elect %s: write output: %w", dir, err)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-e.Lost():
				return fmt.Errorf("elect %s: leadership lost (the session ended)", dir)
			}
		}, nil
	}
}

// listenLeaders prints the election's leader each time it changes, until
// interrupted.
func listenLeaders(dir string) action {
	return func(ctx context.Context, c *conn, out *output) error {
		for l := range election.Observe(ctx, c.s, dir) {
			if out.json {
				_ = out.doc(map[string]any{"election": dir, "leader": string(l.Value), "term": l.Term})
			} else {
				out.printf("%s\n", l.Value)
			}
			if err := out.flush(); err != nil {
				return fmt.Errorf("elect %s: write output: %w", dir, err)
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("elect %s: session ended: %w", dir, c.s.Err())
	}
}
