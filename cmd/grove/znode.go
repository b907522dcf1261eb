package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/grovekit/grove"
)

// stdin is what a DATA argument of - reads; tests replace it.
var stdin io.Reader = os.Stdin

// action is the work of a znode command, once its arguments are checked,
// on the command's session. It writes its results to out.
type action func(ctx context.Context, c *conn, out *output) error

// znodeCommand is a command that works on znodes through one session.
type znodeCommand struct {
	synopsis string   // the usage line after "grove "
	args     []string // names of the positional arguments
	minArgs  int      // how many of them are required
	variadic bool     // the last argument takes the rest (lock's COMMAND...)
	// setup defines the command's flags on fs and returns check, which
	// validates the flags and the positional arguments before anything
	// connects and returns the command's action.
	setup func(fs *pflag.FlagSet) (check func(args []string) (action, error))
}

// znodeCommands are the znode commands by name.
var znodeCommands = map[string]znodeCommand{
	"create": {"create [--ephemeral [--hold]] [--sequential] [--container] [--ttl D] PATH [DATA]", []string{"PATH", "DATA"}, 1, false, setupCreate},
	"get":    {"get PATH", []string{"PATH"}, 1, false, setupGet},
	"set":    {"set [--version N] PATH DATA", []string{"PATH", "DATA"}, 2, false, setupSet},
	"delete": {"delete [--recursive [--atomic] | --version N] PATH", []string{"PATH"}, 1, false, setupDelete},
	"stat":   {"stat PATH", []string{"PATH"}, 1, false, setupStat},
	"ls":     {"ls [-R] PATH", []string{"PATH"}, 1, false, setupLs},
	"tree":   {"tree PATH", []string{"PATH"}, 1, false, setupTree},
	"watch":  {"watch [--recursive] PATH", []string{"PATH"}, 1, false, setupWatch},
	"lock":   {"lock [--try] DIR [-- COMMAND [ARG...]]", []string{"DIR", "COMMAND"}, 1, true, setupLock},
	"txn":    {"txn < OPERATIONS", nil, 0, false, setupTxn},
	"elect":  {"elect DIR VALUE | elect --listen DIR", []string{"DIR", "VALUE"}, 1, false, setupElect},
}

// runZnode runs the znode command name with args: it checks the flags and
// arguments (usage errors), connects, runs the action, writes the output
// out and closes the session.
func (g *globals) runZnode(ctx context.Context, name string, cmd znodeCommand, args []string) error {
	fs := newCmdFlags(name)
	check := cmd.setup(fs)
	// No GROVE_<FLAG> fallback here: GROVE_VERSION or GROVE_RECURSIVE in
	// the environment would be a trap.
	if err := parseFlags(fs, cmd.synopsis, args, g.stdout); err != nil {
		return err
	}
	pos := fs.Args()
	switch {
	case len(pos) < cmd.minArgs:
		return usagef("%s: missing %s (usage: grove %s)", name, cmd.args[len(pos)], cmd.synopsis)
	case len(pos) > len(cmd.args) && !cmd.variadic:
		return usagef("%s: unexpected argument %q (usage: grove %s)", name, pos[len(cmd.args)], cmd.synopsis)
	}
	act, err := check(pos)
	if err != nil {
		return err
	}
	c, err := g.connect(ctx)
	if err != nil {
		return err
	}
	out := newOutput(g.stdout, g.output)
	out.stdout, out.stderr = g.stdout, g.stderr
	err = act(ctx, c, out)
	if ferr := out.flush(); err == nil && ferr != nil {
		err = fmt.Errorf("%s: write output: %w", name, ferr)
	}
	// A failed close leaves nothing behind that the session's expiry does
	// not clean up: the command's result stands.
	_ = c.close(ctx)
	return err
}

// checkPath returns a usage error if path is not a valid znode path.
func checkPath(cmd, path string) error {
	if err := grove.ValidatePath(path); err != nil {
		return usagef("%s: %v", cmd, err)
	}
	return nil
}

// readData returns the data a DATA argument names: the argument itself,
// the contents of FILE for @FILE, or standard input for -.
func readData(arg string) ([]byte, error) {
	switch {
	case arg == "-":
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("read standard input: %w", err)
		}
		return b, nil
	case arg == "@":
		return nil, usagef("DATA %q names no file (want @FILE)", arg)
	case strings.HasPrefix(arg, "@"):
		return os.ReadFile(arg[1:])
	}
	return []byte(arg), nil
}

// setupCreate defines the flags of create.
func setupCreate(fs *pflag.FlagSet) func([]string) (action, error) {
	eph := fs.BoolP("ephemeral", "e", false, "an ephemeral znode: deleted when this command's session closes (at once, unless --hold)")
	hold := fs.Bool("hold", false, "keep the session, and so an ephemeral znode, until interrupted (Ctrl-C, SIGTERM)")
	seq := fs.BoolP("sequential", "s", false, "append a sequence number to the name")
	cont := fs.BoolP("container", "c", false, "a container znode: deleted once its last child is")
	ttl := fs.Duration("ttl", 0, "a TTL znode: deleted once it has had no children and no change for this long")
	return func(args []string) (action, error) {
		mode, err := createMode(*eph, *seq, *cont, fs.Changed("ttl"), *ttl)
		if err != nil {
			return nil, err
		}
		if *hold && !*eph {
			return nil, usagef("create: --hold goes with --ephemeral")
		}
		path := args[0]
		if err := grove.ValidateCreatePath(path, mode.IsSequential()); err != nil {
			return nil, usagef("create: %v", err)
		}
		var data []byte
		if len(args) > 1 {
			if data, err = readData(args[1]); err != nil {
				return nil, opErr("create", path, err)
			}
		}
		return func(ctx context.Context, c *conn, out *output) error {
			var created string
			err := c.do(ctx, func(ctx context.Context) (err error) {
				if mode.IsTTL() {
					created, err = c.s.CreateTTL(ctx, path, data, mode, grove.OpenACLUnsafe, *ttl)
				} else {
					created, err = c.s.Create(ctx, path, data, mode, grove.OpenACLUnsafe)
				}
				return err
			})
			if err != nil {
				return opErr("create", path, err)
			}
			if out.json {
				err = out.doc(nodeDoc{Path: created})
			} else {
				out.printf("%s\n", created)
			}
			if err != nil || !*hold {
				return err
			}
			return holdSession(ctx, c, out, created)
		}, nil
	}
}

// holdSession keeps the command's session open until ctx ends (the user
// interrupted: nil, and closing the session then deletes its ephemeral
// znodes at once) or the session ends first (an error naming why).
func holdSession(ctx context.Context, c *conn, out *output, path string) error {
	if err := out.flush(); err != nil {
		return fmt.Errorf("create %s: write output: %w", path, err)
	}
	select {
	case <-ctx.Done():
		return nil
	case <-c.s.Done():
		return fmt.Errorf("create %s: session ended while holding it: %w", path, c.s.Err())
	}
}

// createMode returns the create mode the flags of create ask for, or a
// usage error for flags that do not go together or a TTL out of range.
func createMode(eph, seq, cont, hasTTL bool, ttl time.Duration) (grove.CreateMode, error) {
	maxTTL := time.Duration(grove.MaxTTL) * time.Millisecond
	switch {
	case cont && (eph || seq || hasTTL):
		return 0, usagef("create: --container goes with none of --ephemeral, --sequential and --ttl")
	case hasTTL && eph:
		return 0, usagef("create: --ttl and --ephemeral do not go together")
	case hasTTL && (ttl < time.Millisecond || ttl > maxTTL):
		return 0, usagef("create: --ttl %v: want at least 1ms and at most %dms", ttl, grove.MaxTTL)
	case cont:
		return grove.ModeContainer, nil
	case hasTTL && seq:
		return grove.ModePersistentSequentialWithTTL, nil
	case hasTTL:
		return grove.ModePersistentWithTTL, nil
	case eph && seq:
		return grove.ModeEphemeralSequential, nil
	case eph:
		return grove.ModeEphemeral, nil
	case seq:
		return grove.ModePersistentSequential, nil
	}
	return grove.ModePersistent, nil
}

// setupGet defines the flags of get (none).
func setupGet(*pflag.FlagSet) func([]string) (action, error) {
	return func(args []string) (action, error) {
		path := args[0]
		if err := checkPath("get", path); err != nil {
			return nil, err
		}
		return func(ctx context.Context, c *conn, out *output) error {
			var data []byte
			var st grove.Stat
			err := c.do(ctx, func(ctx context.Context) (err error) {
				data, st, err = c.s.Get(ctx, path)
				return err
			})
			if err != nil {
				return opErr("get", path, err)
			}
			if out.json {
				return out.doc(nodeDoc{Path: path, dataFields: encodeData(data), Stat: newStatDoc(st)})
			}
			out.data(data)
			return nil
		}, nil
	}
}

// setupSet defines the flags of set.
func setupSet(fs *pflag.FlagSet) func([]string) (action, error) {
	version := fs.Int32("version", -1, "set only if the znode's version is this (-1: any)")
	return func(args []string) (action, error) {
		path := args[0]
		if err := checkPath("set", path); err != nil {
			return nil, err
		}
		data, err := readData(args[1])
		if err != nil {
			return nil, opErr("set", path, err)
		}
		return func(ctx context.Context, c *conn, out *output) error {
			var st grove.Stat
			err := c.do(ctx, func(ctx context.Context) (err error) {
				st, err = c.s.Set(ctx, path, data, *version)
				return err
			})
			if err != nil {
				return opErr("set", path, err)
			}
			if out.json {
				return out.doc(nodeDoc{Path: path, Stat: newStatDoc(st)})
			}
			return nil
		}, nil
	}
}

// setupDelete defines the flags of delete.
func setupDelete(fs *pflag.FlagSet) func([]string) (action, error) {
	recursive := fs.BoolP("recursive", "r", false, "first delete everything below PATH, deepest first, in atomic batches of up to 1000")
	atomic := fs.Bool("atomic", false, "with --recursive: delete the whole subtree in one transaction, or nothing")
	version := fs.Int32("version", -1, "delete only if the znode's version is this (-1: any)")
	return func(args []string) (action, error) {
		path := args[0]
		if err := checkPath("delete", path); err != nil {
			return nil, err
		}
		switch {
		case *recursive && fs.Changed("version"):
			return nil, usagef("delete: --recursive and --version do not go together")
		case *atomic && !*recursive:
			return nil, usagef("delete: --atomic goes with --recursive")
		case *recursive && path == "/":
			return nil, usagef("delete: refusing to delete everything below /")
		}
		return func(ctx context.Context, c *conn, out *output) error {
			n := 1
			var err error
			if *recursive {
				progress := deleteProgress(out.stderr, !out.json && isTerminal(out.stderr))
				n, err = c.deleteTreeBatched(ctx, path, -1, *atomic, progress)
			} else {
				err = c.do(ctx, func(ctx context.Context) error { return c.s.Delete(ctx, path, *version) })
			}
			if err != nil {
				return opErr("delete", path, err)
			}
			if out.json {
				return out.doc(deleteDoc{Path: path, Deleted: n})
			}
			return nil
		}, nil
	}
}

// setupStat defines the flags of stat (none).
func setupStat(*pflag.FlagSet) func([]string) (action, error) {
	return func(args []string) (action, error) {
		path := args[0]
		if err := checkPath("stat", path); err != nil {
			return nil, err
		}
		return func(ctx context.Context, c *conn, out *output) error {
			st, err := c.stat(ctx, path)
			if err != nil {
				return opErr("stat", path, err)
			}
			if out.json {
				return out.doc(nodeDoc{Path: path, Stat: newStatDoc(st)})
			}
			out.printStat(st)
			return nil
		}, nil
	}
}

// stat returns the Stat of path, or grove.ErrNoNode.
func (c *conn) stat(ctx context.Context, path string) (grove.Stat, error) {
	var ok bool
	var st grove.Stat
	err := c.do(ctx, func(ctx context.Context) (err error) {
		ok, st, err = c.s.Exists(ctx, path)
		return err
	})
	if err == nil && !ok {
		err = grove.ErrNoNode
	}
	return st, err
}
