package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"

	"github.com/spf13/pflag"

	"github.com/grovekit/grove"
)

// txnUsage describes the lines grove txn reads.
const txnUsage = `one operation per line:
  check PATH VERSION
  create [-e] [-s] [-c] PATH [DATA]
  set PATH DATA [VERSION]
  delete PATH [VERSION]
DATA is a word or a double-quoted Go string ("two words\n"); VERSION -1
is any; blank lines and lines starting with # are skipped`

// setupTxn defines the flags of txn (none): the operations come from
// standard input.
func setupTxn(*pflag.FlagSet) func([]string) (action, error) {
	return func([]string) (action, error) {
		ops, err := parseTxn(stdin)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, c *conn, out *output) error {
			var res []grove.OpResult
			err := c.do(ctx, func(ctx context.Context) (err error) {
				res, err = c.s.Multi(ctx, ops...)
				return err
			})
			if err != nil {
				if i := failedOp(res); i >= 0 {
					return fmt.Errorf("txn: operation %d (%s %s) failed, nothing applied: %w", i+1, opVerb(ops[i]), ops[i].Path, causeOf(err))
				}
				return fmt.Errorf("txn: %w", err)
			}
			if out.json {
				docs := make([]txnResultDoc, len(res))
				for i, r := range res {
					docs[i] = txnResultDoc{Op: opVerb(ops[i]), Path: ops[i].Path}
					if r.Type == grove.OpCreate {
						docs[i].Path = r.Path
					}
					if r.Stat != nil {
						docs[i].Stat = newStatDoc(*r.Stat)
					}
				}
				return out.doc(txnDoc{Results: docs})
			}
			for i, r := range res {
				switch {
				case r.Type == grove.OpCreate:
					out.printf("create %s\n", r.Path)
				case r.Stat != nil:
					out.printf("%s %s version %d\n", opVerb(ops[i]), ops[i].Path, r.Stat.Version)
				default:
					out.printf("%s %s\n", opVerb(ops[i]), ops[i].Path)
				}
			}
			return nil
		}, nil
	}
}

// txnDoc is the JSON document of txn.
type txnDoc struct {
	Results []txnResultDoc `json:"results"`
}

// txnResultDoc is one operation's result in txnDoc.
type txnResultDoc struct {
	Op   string   `json:"op"`
	Path string   `json:"path"` // a create's: the created path
	Stat *statDoc `json:"stat,omitempty"`
}

// opVerb names op as txn's input does.
func opVerb(op grove.Op) string {
	switch op.Type {
	case grove.OpCreate:
		return "create"
	case grove.OpDelete:
		return "delete"
	case grove.OpSet:
		return "set"
	case grove.OpCheck:
		return "check"
	}
	return "unknown"
}

// parseTxn reads txn's operations from r, one per line (txnUsage). Any
// mistake is a usage error naming its line.
func parseTxn(r io.Reader) ([]grove.Op, error) {
	var ops []grove.Op
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		words, err := txnWords(line)
		if err != nil {
			return nil, usagef("txn: line %d: %v", n, err)
		}
		op, err := txnOp(words)
		if err != nil {
			return nil, usagef("txn: line %d: %v (%s)", n, err, strings.ReplaceAll(txnUsage, "\n", "; "))
		}
		ops = append(ops, op)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("txn: read standard input: %w", err)
	}
	if len(ops) == 0 {
		return nil, usagef("txn: no operations on standard input (%s)", strings.ReplaceAll(txnUsage, "\n", "; "))
	}
	return ops, nil
}

// txnWords splits a line into words: runs of non-space characters, or
// double-quoted Go strings.
func txnWords(line string) ([]string, error) {
	var words []string
	for line = strings.TrimLeftFunc(line, unicode.IsSpace); line != ""; line = strings.TrimLeftFunc(line, unicode.IsSpace) {
		if line[0] == '"' {
			q, err := strconv.QuotedPrefix(line)
			if err != nil {
				return nil, fmt.Errorf("bad quoted string at %.20q", line)
			}
			w, _ := strconv.Unquote(q)
			words = append(words, w)
			line = line[len(q):]
			continue
		}
		end := strings.IndexFunc(line, unicode.IsSpace)
		if end < 0 {
			end = len(line)
		}
		words = append(words, line[:end])
		line = line[end:]
	}
	return words, nil
}

// txnOp turns one line's words into an op.
func txnOp(words []string) (grove.Op, error) {
	verb, args := words[0], words[1:]
	version := func(i int) (int32, error) {
		if i >= len(args) {
			return -1, nil
		}
		v, err := strconv.ParseInt(args[i], 10, 32)
		if err != nil || v < -1 {
			return 0, fmt.Errorf("bad version %q", args[i])
		}
		return int32(v), nil
	}
	switch verb {
	case "check":
		if len(args) != 2 {
			return grove.Op{}, errors.New("check takes PATH VERSION")
		}
		v, err := version(1)
		if err != nil {
			return grove.Op{}, err
		}
		return grove.CheckOp(args[0], v), grove.ValidatePath(args[0])
	case "create":
		var eph, seq, cont bool
		for len(args) > 0 && strings.HasPrefix(args[0], "-") {
			switch args[0] {
			case "-e":
				eph = true
			case "-s":
				seq = true
			case "-c":
				cont = true
			default:
				return grove.Op{}, fmt.Errorf("create: unknown flag %s", args[0])
			}
			args = args[1:]
		}
		if len(args) < 1 || len(args) > 2 {
			return grove.Op{}, errors.New("create takes [-e] [-s] [-c] PATH [DATA]")
		}
		mode, err := createMode(eph, seq, cont, false, 0)
		if err != nil {
			return grove.Op{}, err
		}
		var data []byte
		if len(args) == 2 {
			data = []byte(args[1])
		}
		return grove.CreateOp(args[0], data, mode, grove.OpenACLUnsafe), grove.ValidateCreatePath(args[0], mode.IsSequential())
	case "set":
		if len(args) < 2 || len(args) > 3 {
			return grove.Op{}, errors.New("set takes PATH DATA [VERSION]")
		}
		v, err := version(2)
		if err != nil {
			return grove.Op{}, err
		}
		return grove.SetOp(args[0], []byte(args[1]), v), grove.ValidatePath(args[0])
	case "delete":
		if len(args) < 1 || len(args) > 2 {
			return grove.Op{}, errors.New("delete takes PATH [VERSION]")
		}
		v, err := version(1)
		if err != nil {
			return grove.Op{}, err
		}
		return grove.DeleteOp(args[0], v), grove.ValidatePath(args[0])
	}
	return grove.Op{}, fmt.Errorf("unknown operation %q", verb)
}
