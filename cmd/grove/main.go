// Command grove runs a Grove node (grove server), talks to running ones
// (grove status, grove members), reads and writes their znodes (grove
// create, get, set, delete, ls, stat, tree, watch) and backs them up
// (grove backup, restore, inspect).
//
// # Usage
//
//	grove [--servers host:port,...] [--output text|json] [--timeout D] COMMAND [args]
//
// The global flags come before the command. --servers lists native client
// ports (default 127.0.0.1:2281). A znode command opens one session on
// them, asking for --timeout (default 10s) as the session timeout; it gives
// up connecting after --timeout, and bounds each request by it. It first
// syncs the session, so it sees every write acknowledged before it started
// (grove set, then grove get, reads the new data back). The session is
// closed when the command ends, so an ephemeral znode made by grove create
// is deleted at once. Nodes are created with the open ACL.
//
// The flags of a znode command may also follow its arguments (grove set /a
// x --version 3); "--" ends the flags, for data that starts with a dash.
//
//	create [--ephemeral] [--sequential] [--container] [--ttl D] PATH [DATA]
//	get PATH
//	set [--version N] PATH DATA
//	delete [--recursive | --version N] PATH
//	ls [-R] PATH
//	stat PATH
//	tree PATH
//	watch [--recursive] PATH
//
// --container goes with no other mode flag, and --ttl not with --ephemeral.
// delete --recursive deletes the children before their parents, one by one
// (not atomically), and refuses the root. watch sets a persistent watch
// (recursive: on the whole subtree) and runs until interrupted, exit 0, or
// until the session ends, exit 1.
//
// # Data
//
// A DATA argument is the data itself, @FILE for the contents of FILE, or -
// for standard input. Data starting with @ is given through a file or
// standard input.
//
// # Output
//
// Text output is for people and scripts. get prints the data exactly as
// stored, with no newline added; create prints the path created (with its
// sequence number); set and delete print nothing; ls prints one child name
// per line, ls -R one full path per line, each node right after its parent
// and siblings in byte order; stat prints one "name: value" line per Stat
// field (times in RFC 3339, the ephemeral owner in hex); tree draws the
// subtree; watch prints one "TYPE PATH" line per event, e.g.
// "NodeDataChanged /app/config".
//
// With --output json every command prints one JSON document on one line
// (watch: one per event):
//
//	create  {"path":P}
//	get     {"path":P,"data":S,"stat":{...}}
//	set     {"path":P,"stat":{...}}
//	delete  {"path":P,"deleted":N}
//	ls      {"path":P,"children":[NAME,...]}
//	ls -R   {"path":P,"descendants":[PATH,...]}
//	stat    {"path":P,"stat":{...}}
//	tree    {"path":P,"children":[{"path":P,"children":[...]},...]}
//	watch   {"type":"NodeCreated","path":P,"zxid":N}
//
// A stat is {"czxid","mzxid","ctime","mtime","version","cversion",
// "aversion","ephemeral_owner","data_length","num_children","pzxid"}, all
// numbers, times in milliseconds since the Unix epoch. Znode data appears
// as "data" (a string) when it is valid UTF-8, otherwise as "data_base64"
// (standard base64 with padding); exactly one of the two is present.
// Errors are always one text line on standard error.
//
// # Environment
//
// Every flag except those of the znode commands (--version, --recursive,
// ...) can also be set by an environment variable GROVE_<FLAG>, with
// dashes as underscores: --data-dir and GROVE_DATA_DIR, --servers and
// GROVE_SERVERS. Flags win.
//
// Exit codes: 0 ok, 1 the operation failed (no such node, version
// conflict, no server reachable, ...), 2 a usage error (bad flags or
// arguments, unusable data dir).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/client"
)

// usageError is a bad invocation: exit code 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

// usagef returns a usageError with a formatted message.
func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

const usage = `usage: grove [--servers host:port,...] [--output text|json] [--timeout D] COMMAND [args]

global flags (before COMMAND; also from GROVE_SERVERS, GROVE_OUTPUT, GROVE_TIMEOUT):
  --servers LIST         native client ports, comma separated (default 127.0.0.1:2281)
  --output FORMAT        text, json or yaml (default text)
  --timeout D            give up connecting, and each request, after D (default 10s)
  --auth SCHEME:CRED     authenticate the session, e.g. digest:alice:secret (repeatable)
  --tls-ca FILE          the client port speaks TLS; verify it with this CA
  --tls-cert FILE, --tls-key FILE
                         client certificate, for a port that requires one

znode commands (flags may also follow the arguments):
  create [--ephemeral [--hold]] [--sequential] [--container] [--ttl D] PATH [DATA]
                         create a znode and print its path; an ephemeral one
                         dies with this command's session: at once, or with
                         --hold when interrupted
  get PATH               print a znode's data exactly as stored, no newline added
  set [--version N] PATH DATA
                         replace a znode's data (N: the expected version, -1 any)
  delete [--recursive [--atomic] | --version N] PATH
                         delete a znode (--recursive: and everything below it,
                         in atomic batches; --atomic: in one transaction)
  ls [-R] PATH           list the children, one per line (-R: every descendant's path)
  stat PATH              print a znode's Stat, one "name: value" per line
  tree PATH              draw the subtree
  watch [--recursive] PATH
                         print every change, one per line, until interrupted
  lock [--try] DIR [-- COMMAND [ARG...]]
                         take the lock at DIR (FIFO, no herd), run COMMAND with
                         GROVE_LOCK_TOKEN (the fencing token) and GROVE_LOCK_PATH
                         set, release it, and exit with COMMAND's status; the
                         command is stopped if the lock is lost. Without
                         COMMAND: print the token and hold until interrupted
  elect DIR VALUE        campaign at DIR, print once elected, lead until
                         interrupted, then resign
  elect --listen DIR     print each new leader's value as it changes
  txn                    apply the operations on standard input all or nothing,
                         one per line: check PATH VERSION, create [-e] [-s] [-c]
                         PATH [DATA], set PATH DATA [VERSION], delete PATH [VERSION]

  DATA is the data itself, @FILE for a file's contents, or - for standard input.
  --output json prints one JSON document per command (watch: one per event),
  with data as "data" if valid UTF-8, else "data_base64".

cluster commands:
  server                 run a Grove node (grove server -h for flags)
  status                 show a node's view of the cluster
  members                list gossip members and their raft roles
  sessions [--ephemerals]
                         list open sessions, their timeouts and ephemeral znodes
  members remove NAME    remove a member from the cluster (through the leader)
  members leave          the node reached leaves the cluster for good
  members transfer-leader [NAME]
                         hand leadership to NAME or the most caught-up voter
  defrag                 compact the state file of the node reached, online (a
                         leader hands leadership over first)
  backup                 back up the cluster (grove backup -h for flags)
  restore                restore from a backup (grove restore -h for flags)
  inspect                describe a backup (grove inspect -h for flags)
  version                print grove's version (also grove --version)
  completion SHELL       print the completion script for bash, zsh or fish:
                         source <(grove completion bash); commands, flags and
                         znode paths (asked of --servers) complete
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runContext(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs grove with args and returns its exit code.
func run(args []string, stdout, stderr io.Writer) int {
	return runContext(context.Background(), args, stdout, stderr)
}

// runContext runs grove with args until done or ctx ends (grove main
// cancels ctx on SIGINT and SIGTERM), and returns its exit code. It prints
// results on stdout and at most one error line on stderr.
func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "__complete" {
		runComplete(args[1:], stdout) // the shells' completion scripts ask this
		return 0
	}
	g, rest, err := parseGlobals(args, stdout, stderr)
	if errors.Is(err, errHelp) {
		_, _ = fmt.Fprint(stdout, usage)
		return 0
	}
	if err == nil && len(rest) == 0 {
		_, _ = fmt.Fprint(stderr, usage)
		return 2
	}
	if err == nil {
		err = dispatch(ctx, g, rest)
	}
	if err == nil || errors.Is(err, errHelp) {
		return 0
	}
	var ce commandExit
	if errors.As(err, &ce) {
		return ce.code // the command grove lock ran printed its own errors
	}
	_, _ = fmt.Fprintln(stderr, "grove:", oneLine(err))
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// dispatch runs the command args[0] with the rest of args.
func dispatch(ctx context.Context, g *globals, args []string) error {
	name, rest := args[0], args[1:]
	if cmd, ok := znodeCommands[name]; ok {
		return g.runZnode(ctx, name, cmd, rest)
	}
	switch name {
	case "server":
		return runServer(rest, g.stdout, g.stderr)
	case "status":
		return runStatus(g, rest)
	case "members":
		return runMembers(g, rest)
	case "sessions":
		return runSessions(g, rest)
	case "defrag":
		return runDefrag(g, rest)
	case "completion":
		return runCompletion(rest, g.stdout)
	case "backup":
		return runBackup(ctx, g, rest)
	case "restore":
		return runRestore(rest, g.output, g.stdout, g.stderr)
	case "inspect":
		return runInspect(rest, g.output, g.stdout, g.stderr)
	case "help":
		_, _ = fmt.Fprint(g.stdout, usage)
		return nil
	case "version":
		switch {
		case len(rest) == 1 && (rest[0] == "-h" || rest[0] == "--help"):
			_, _ = fmt.Fprintln(g.stdout, "usage: grove [--output text|json] version")
			return nil
		case len(rest) > 0:
			return usagef("version: unexpected argument %q", rest[0])
		}
		return printVersion(g.output, g.stdout)
	}
	return usagef("unknown command %q", name)
}

// globals are the settings given before the command.
type globals struct {
	servers []string
	output  string // "text" or "json"
	timeout time.Duration
	stdout  io.Writer
	stderr  io.Writer
	// opts are the session options of --auth and --tls-*.
	opts []client.Option
}

// defaultServers is where the znode commands connect without --servers.
const defaultServers = "127.0.0.1:2281"

// parseGlobals parses the global flags in front of the command, falling
// back to GROVE_<FLAG> for those not given, and returns the rest of args
// (the command and its arguments). -h gives errHelp; anything wrong is a
// usage error.
func parseGlobals(args []string, stdout, stderr io.Writer) (*globals, []string, error) {
	fs := pflag.NewFlagSet("grove", pflag.ContinueOnError)
	fs.SetInterspersed(false)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	servers := fs.String("servers", defaultServers, "native client ports, comma separated")
	output := fs.String("output", "text", "text, json or yaml")
	timeout := fs.Duration("timeout", 10*time.Second, "give up connecting, and each request, after this")
	auth := fs.StringArray("auth", nil, "scheme:credential to authenticate the session with, e.g. digest:alice:secret (repeatable)")
	tlsCA := fs.String("tls-ca", "", "CA file verifying the client port's TLS certificate (the client port speaks TLS)")
	tlsCert := fs.String("tls-cert", "", "client certificate for a client port that requires one")
	tlsKey := fs.String("tls-key", "", "key of --tls-cert")
	version := fs.Bool("version", false, "print grove's version and exit (as grove version)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil, nil, errHelp
		}
		return nil, nil, usageError{err}
	}
	if err := envFallback(fs); err != nil {
		return nil, nil, err
	}
	g := &globals{output: *output, timeout: *timeout, stdout: stdout, stderr: stderr}
	if g.output == "yaml" {
		// Every command writes its JSON documents one per line; YAML is
		// each of them converted on the way out.
		g.output, g.stdout = "json", &yamlWriter{w: stdout}
	}
	for _, s := range strings.Split(*servers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			g.servers = append(g.servers, s)
		}
	}
	switch {
	case g.output != "text" && g.output != "json" && g.output != "yaml":
		return nil, nil, usagef("--output %q: want text, json or yaml", g.output)
	case len(g.servers) == 0:
		return nil, nil, usagef("--servers: no address given")
	case g.timeout <= 0:
		return nil, nil, usagef("--timeout %v: must be positive", g.timeout)
	}
	for _, a := range *auth {
		scheme, cred, ok := strings.Cut(a, ":")
		if !ok || scheme == "" {
			return nil, nil, usagef("--auth %q: want scheme:credential, e.g. digest:alice:secret", a)
		}
		g.opts = append(g.opts, client.WithAuth(scheme, []byte(cred)))
	}
	tc, err := cliTLS(*tlsCA, *tlsCert, *tlsKey)
	if err != nil {
		return nil, nil, err
	}
	if tc != nil {
		g.opts = append(g.opts, client.WithTLS(tc))
	}
	if *version {
		return g, []string{"version"}, nil
	}
	return g, fs.Args(), nil
}

// envFallback sets every flag of fs not given on the command line from
// GROVE_<FLAG>, if that is set.
func envFallback(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || err != nil {
			return
		}
		env := "GROVE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = usagef("%s=%q: %v", env, v, e)
			}
		}
	})
	return err
}

// oneLine returns the first line of err's message.
func oneLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	// Errors from the library keep their "grove: " prefix as they are
	// wrapped; the line already starts with one.
	s = strings.ReplaceAll(s, ": grove: ", ": ")
	return strings.TrimPrefix(s, "grove: ")
}

// printVersion prints grove's release, the Go that built it and the
// platform, and the commit when the build recorded one.
func printVersion(output string, w io.Writer) error {
	info := map[string]string{"version": grove.Version, "go": runtime.Version(), "platform": runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, st := range bi.Settings {
			if st.Key == "vcs.revision" {
				info["commit"] = st.Value
			}
		}
	}
	if output == "json" {
		return json.NewEncoder(w).Encode(info)
	}
	line := fmt.Sprintf("grove %s (%s, %s", info["version"], info["go"], info["platform"])
	if c := info["commit"]; c != "" {
		line += ", commit " + c
	}
	_, err := fmt.Fprintln(w, line+")")
	return err
}
