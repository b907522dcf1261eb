package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/grovekit/grove/client"
)

// The shells' completion scripts. Each asks the grove binary itself
// (grove __complete WORD...) for the candidates of the word being typed,
// so they never fall behind the commands and flags.
const (
	bashCompletion = `# grove completion for bash: source <(grove completion bash)
_grove() {
	local IFS=$'\n'
	COMPREPLY=($(grove __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
	[[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == */ ]] && compopt -o nospace
}
complete -F _grove grove
`
	zshCompletion = `#compdef grove
# grove completion for zsh: source <(grove completion zsh)
_grove() {
	local -a candidates
	candidates=("${(@f)$(grove __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
	compadd -S '' -- "${candidates[@]}"
}
compdef _grove grove
`
	fishCompletion = `# grove completion for fish: grove completion fish | source
complete -c grove -f -a '(grove __complete (commandline -opc)[2..-1] (commandline -ct) 2>/dev/null)'
`
)

// runCompletion implements grove completion SHELL.
func runCompletion(args []string, stdout io.Writer) error {
	fs := newCmdFlags("completion")
	if err := parseCmd(fs, "completion bash|zsh|fish", args, stdout); err != nil {
		return err
	}
	args = fs.Args()
	if len(args) != 1 {
		return usagef("usage: grove completion bash|zsh|fish")
	}
	script, ok := map[string]string{"bash": bashCompletion, "zsh": zshCompletion, "fish": fishCompletion}[args[0]]
	if !ok {
		return usagef("completion: unknown shell %q (bash, zsh or fish)", args[0])
	}
	_, err := io.WriteString(stdout, script)
	return err
}

// clusterCommands are the commands that are not znode commands, with the
// words that may follow them.
var clusterCommands = map[string][]string{
	"server": nil, "status": nil, "members": {"remove", "add", "transfer-leader", "leave"}, "sessions": nil,
	"backup": nil, "defrag": nil, "restore": nil, "inspect": nil, "version": nil, "completion": {"bash", "zsh", "fish"},
}

// globalFlagsWithValue are the global flags that take a value (the word
// after them is not the command).
var globalFlagsWithValue = []string{"--servers", "--output", "--timeout", "--auth", "--tls-ca", "--tls-cert", "--tls-key"}

// maxDirChecks is how many matching znodes completion checks for children
// (offering "PATH/" too); with more matches it offers the paths alone.
const maxDirChecks = 50

// completeTimeout bounds the server round trips of completing a path.
const completeTimeout = time.Second

// runComplete implements grove __complete WORD...: it prints, one per
// line, the candidates for the last word (the one being typed), given the
// words before it. It never fails: no candidates is an empty answer.
func runComplete(words []string, stdout io.Writer) {
	if len(words) == 0 {
		words = []string{""}
	}
	cur, before := words[len(words)-1], words[:len(words)-1]
	// Find the command among the words before, skipping the global flags.
	cmdAt := -1
	for i := 0; i < len(before); i++ {
		w := before[i]
		if strings.HasPrefix(w, "-") {
			if slices.Contains(globalFlagsWithValue, w) {
				i++
			}
			continue
		}
		cmdAt = i
		break
	}
	var candidates []string
	switch {
	case cmdAt < 0 && strings.HasPrefix(cur, "-"):
		candidates = append(slices.Clone(globalFlagsWithValue), "--version", "--help")
	case cmdAt < 0 && len(before) > 0 && before[len(before)-1] == "--output":
		candidates = []string{"text", "json", "yaml"}
	case cmdAt < 0:
		for name := range znodeCommands {
			candidates = append(candidates, name)
		}
		for name := range clusterCommands {
			candidates = append(candidates, name)
		}
	default:
		candidates = completeCommand(before[:cmdAt], before[cmdAt], before[cmdAt+1:], cur)
	}
	slices.Sort(candidates)
	for _, c := range slices.Compact(candidates) {
		if strings.HasPrefix(c, cur) {
			fmt.Fprintln(stdout, c)
		}
	}
}

// completeCommand returns the candidates for cur, an argument of command
// name after the words args, given the global flags globals.
func completeCommand(globals []string, name string, args []string, cur string) []string {
	if strings.HasPrefix(cur, "-") {
		return commandFlags(name)
	}
	if words, ok := clusterCommands[name]; ok {
		if len(args) == 0 {
			return words
		}
		return nil
	}
	if _, ok := znodeCommands[name]; ok && strings.HasPrefix(cur, "/") {
		return completePath(globals, cur)
	}
	return nil
}

// flagInHelp matches a flag in a command's help: "  -x, --name" (pflag)
// or "  -name" (the server's flag package).
var flagInHelp = regexp.MustCompile(`(?m)^\s+(?:-\w, )?--?([a-z][a-z0-9-]*)`)

// commandFlags returns the flags of command name, read from its help.
func commandFlags(name string) []string {
	var help bytes.Buffer
	if cmd, ok := znodeCommands[name]; ok {
		fs := newCmdFlags(name)
		cmd.setup(fs)
		var out []string
		fs.VisitAll(func(f *pflag.Flag) { out = append(out, "--"+f.Name) })
		return append(out, "--help")
	}
	runContext(context.Background(), []string{name, "-h"}, &help, &help)
	var out []string
	for _, m := range flagInHelp.FindAllStringSubmatch(help.String(), -1) {
		out = append(out, "--"+m[1])
	}
	return append(out, "--help")
}

// completePath lists the znodes whose paths start with cur, asking the
// servers of the global flags (or GROVE_SERVERS) within completeTimeout.
// Directories are offered with a trailing "/" so completion goes on.
func completePath(globals []string, cur string) []string {
	g, _, err := parseGlobals(globals, io.Discard, io.Discard)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), completeTimeout)
	defer cancel()
	opts := append([]client.Option{client.WithTimeout(completeTimeout), client.WithFailFast()}, g.opts...)
	s, err := dial(ctx, g.servers, opts...)
	if err != nil {
		return nil
	}
	defer func() { _ = s.Close(context.WithoutCancel(ctx)) }()
	dir, prefix := path.Split(cur)
	parent := strings.TrimSuffix(dir, "/")
	if parent == "" {
		parent = "/"
	}
	names, _, err := s.ChildrenPage(ctx, parent, "", pageSize)
	if err != nil {
		return nil
	}
	var matches []string
	for _, name := range names {
		if strings.HasPrefix(name, prefix) {
			matches = append(matches, joinPath(parent, name))
		}
	}
	out := slices.Clone(matches)
	if len(matches) <= maxDirChecks {
		for _, p := range matches {
			if _, st, err := s.Exists(ctx, p); err == nil && st.NumChildren > 0 {
				out = append(out, p+"/")
			}
		}
	}
	return out
}
