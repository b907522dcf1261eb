package grove

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// ValidatePath checks a znode path against ZooKeeper's rules: it starts with
// "/", has no empty segments and no trailing slash (except the root "/"), no
// "." or ".." segments, is valid UTF-8 and contains no NUL or other control
// characters ZooKeeper forbids. It returns an error wrapping ErrBadArguments
// that says what is wrong.
func ValidatePath(path string) error {
	return validatePath(path, false)
}

// ValidateCreatePath is ValidatePath for the path given to Create. For a
// sequential create the path may end in "/": the sequence number then forms
// the whole last segment, as in ZooKeeper.
func ValidateCreatePath(path string, sequential bool) error {
	return validatePath(path, sequential)
}

func validatePath(path string, sequential bool) error {
	check := path
	if sequential {
		check = path + "1" // the sequence suffix completes the last segment
	}
	bad := func(why string) error {
		return fmt.Errorf("grove: invalid path %q: %s: %w", path, why, ErrBadArguments)
	}
	switch {
	case path == "":
		return bad("empty")
	case path[0] != '/':
		return bad("must start with /")
	case check == "/":
		return nil
	case !utf8.ValidString(check):
		return bad("not valid UTF-8")
	case strings.HasSuffix(check, "/"):
		return bad("must not end with /")
	}
	for _, seg := range strings.Split(check[1:], "/") {
		switch seg {
		case "":
			return bad("empty segment")
		case ".", "..":
			return bad("relative segment " + seg)
		}
	}
	for _, r := range check {
		// ZooKeeper checks UTF-16 code units: a rune above U+FFFF is a
		// surrogate pair there, inside its banned U+D800-U+F8FF range.
		if r <= 0x1f || (r >= 0x7f && r <= 0x9f) || (r >= 0xd800 && r <= 0xf8ff) || r >= 0xfff0 {
			return bad(fmt.Sprintf("invalid character %U", r))
		}
	}
	return nil
}

// Parent returns the parent path of a valid path; the parent of "/" is "".
func Parent(path string) string {
	if path == "/" {
		return ""
	}
	i := strings.LastIndexByte(path, '/')
	if i == 0 {
		return "/"
	}
	return path[:i]
}

// Base returns the last segment of a valid path; for "/" it is "".
func Base(path string) string {
	return path[strings.LastIndexByte(path, '/')+1:]
}

// Join joins a parent path and a child name.
func Join(parent, name string) string {
	if parent == "/" {
		return "/" + name
	}
	return parent + "/" + name
}
