package main

import (
	"context"
	"strings"

	"github.com/spf13/pflag"
)

// setupLs defines the flags of ls.
func setupLs(fs *pflag.FlagSet) func([]string) (action, error) {
	recursive := fs.BoolP("recursive", "R", false, "list every descendant by its full path, each right after its parent")
	return func(args []string) (action, error) {
		path := args[0]
		if err := checkPath("ls", path); err != nil {
			return nil, err
		}
		if *recursive {
			return lsRecursive(path), nil
		}
		return lsChildren(path), nil
	}
}

// lsChildren lists the children of path: one name per line, or the JSON
// document {"path":PATH,"children":[NAME,...]}. It streams big
// directories page by page.
func lsChildren(path string) action {
	return func(ctx context.Context, c *conn, out *output) error {
		l := &listWriter{out: out, path: path, key: "children"}
		err := c.pages(ctx, path, func(names []string, _ bool) error {
			l.open() // only once the path is known to exist
			for _, name := range names {
				l.add(name)
			}
			return nil
		})
		if err != nil {
			return opErr("ls", path, err)
		}
		l.close()
		return nil
	}
}

// lsRecursive lists every descendant of path by its full path, each right
// after its parent and siblings in byte order: one path per line, or the
// JSON document {"path":PATH,"descendants":[PATH,...]}.
func lsRecursive(path string) action {
	return func(ctx context.Context, c *conn, out *output) error {
		if _, err := c.stat(ctx, path); err != nil {
			return opErr("ls", path, err)
		}
		l := &listWriter{out: out, path: path, key: "descendants"}
		l.open()
		err := c.walk(ctx, path, 0, walkFuncs{enter: func(n walkNode) error {
			l.add(n.path)
			return nil
		}})
		if err != nil {
			return opErr("ls", path, err)
		}
		l.close()
		return nil
	}
}

// listWriter writes a list element by element: as text lines, or as the
// JSON document {"path":PATH,KEY:[...]}.
type listWriter struct {
	out    *output
	path   string
	key    string
	opened bool
	n      int
}

// open starts the JSON document, once.
func (l *listWriter) open() {
	if l.out.json && !l.opened {
		l.out.printf(`{"path":%s,%s:[`, jsonString(l.path), jsonString(l.key))
	}
	l.opened = true
}

// add writes one element.
func (l *listWriter) add(s string) {
	l.open()
	switch {
	case !l.out.json:
		l.out.printf("%s\n", s)
	case l.n > 0:
		l.out.printf(",%s", jsonString(s))
	default:
		l.out.printf("%s", jsonString(s))
	}
	l.n++
}

// close ends the JSON document.
func (l *listWriter) close() {
	l.open()
	if l.out.json {
		l.out.printf("]}\n")
	}
}

// setupTree defines the flags of tree (none).
func setupTree(*pflag.FlagSet) func([]string) (action, error) {
	return func(args []string) (action, error) {
		path := args[0]
		if err := checkPath("tree", path); err != nil {
			return nil, err
		}
		return treeAction(path), nil
	}
}

// treeAction draws the subtree of path: PATH on the first line, then every
// descendant's name indented below its parent with box-drawing branches;
// or the nested JSON document {"path":PATH,"children":[{"path":...,
// "children":[...]},...]}.
func treeAction(path string) action {
	return func(ctx context.Context, c *conn, out *output) error {
		if _, err := c.stat(ctx, path); err != nil {
			return opErr("tree", path, err)
		}
		var fns walkFuncs
		if out.json {
			out.printf(`{"path":%s,"children":[`, jsonString(path))
			fns = treeJSON(out)
		} else {
			out.printf("%s\n", path)
			fns = treeText(out)
		}
		if err := c.walk(ctx, path, 0, fns); err != nil {
			return opErr("tree", path, err)
		}
		if out.json {
			out.printf("]}\n")
		}
		return nil
	}
}

// treeText returns the walk callbacks that draw the tree as text.
func treeText(out *output) walkFuncs {
	var lastAt []bool // lastAt[d-1]: the open node at depth d is the last of its siblings
	return walkFuncs{enter: func(n walkNode) error {
		lastAt = append(lastAt[:n.depth-1], n.last)
		var b strings.Builder
		for _, last := range lastAt[:n.depth-1] {
			if last {
				b.WriteString("    ")
			} else {
				b.WriteString("│   ")
			}
		}
		if n.last {
			b.WriteString("└── ")
		} else {
			b.WriteString("├── ")
		}
		b.WriteString(n.name)
		out.printf("%s\n", b.String())
		return nil
	}}
}

// treeJSON returns the walk callbacks that write the nested JSON tree
// below the root's already opened children list.
func treeJSON(out *output) walkFuncs {
	empty := []bool{true} // empty[d]: no child of the open node at depth d written yet
	return walkFuncs{
		enter: func(n walkNode) error {
			empty = empty[:n.depth]
			if !empty[n.depth-1] {
				out.printf(",")
			}
			empty[n.depth-1] = false
			out.printf(`{"path":%s,"children":[`, jsonString(n.path))
			empty = append(empty, true)
			return nil
		},
		leave: func(walkNode) error {
			out.printf("]}")
			return nil
		},
	}
}
