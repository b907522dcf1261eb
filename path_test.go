package grove

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// zkAccepts transcribes ZooKeeper's PathUtils.validatePath(String)
// (zookeeper-server/src/main/java/org/apache/zookeeper/common/PathUtils.java):
// it walks the UTF-16 code units of the path, as Java does. Bytes that are
// not UTF-8 become U+FFFD, as Java's decoder of the wire bytes makes them.
func zkAccepts(path string) bool {
	chars := utf16.Encode([]rune(path))
	switch {
	case len(chars) == 0, chars[0] != '/':
		return false
	case len(chars) == 1:
		return true
	case chars[len(chars)-1] == '/':
		return false
	}
	last := uint16('/')
	for i := 1; i < len(chars); last, i = chars[i], i+1 {
		c := chars[i]
		atEnd := i+1 == len(chars) || chars[i+1] == '/'
		switch {
		case c == 0:
			return false
		case c == '/' && last == '/':
			return false
		case c == '.' && last == '.':
			if chars[i-2] == '/' && atEnd {
				return false
			}
		case c == '.':
			if chars[i-1] == '/' && atEnd {
				return false
			}
		case c > 0 && c <= 0x1f, c >= 0x7f && c <= 0x9f, c >= 0xd800 && c <= 0xf8ff, c >= 0xfff0:
			return false
		}
	}
	return true
}

// zkAcceptsCreate is PathUtils.validatePath(path, isSequential).
func zkAcceptsCreate(path string, sequential bool) bool {
	if sequential {
		path += "1"
	}
	return zkAccepts(path)
}

// supplementary reports whether s holds a rune outside the Basic
// Multilingual Plane. Java sees such a rune as a surrogate pair, which
// ZooKeeper rejects; Grove checks runes and accepts it (a known divergence).
func supplementary(s string) bool {
	for _, r := range s {
		if r > 0xffff {
			return true
		}
	}
	return false
}

const divergenceSupplementary = "ZooKeeper rejects runes above U+FFFF (it sees UTF-16 surrogates, in its banned range U+D800-U+F8FF); ValidatePath accepts them"

type pathCase struct {
	name       string
	path       string
	zkOK       bool   // ZooKeeper's verdict
	divergence string // set when Grove's verdict knowingly differs today
}

var validatePathCases = []pathCase{
	{"root", "/", true, ""},
	{"one segment", "/a", true, ""},
	{"nested", "/a/b/c", true, ""},
	{"zookeeper node", "/zookeeper/quota", true, ""},
	{"dots inside a name", "/a.b", true, ""},
	{"leading dot", "/.a", true, ""},
	{"trailing dot", "/a.", true, ""},
	{"two dots inside", "/a..b", true, ""},
	{"two leading dots", "/..a", true, ""},
	{"three dots", "/...", true, ""},
	{"three dots in the middle", "/a/.../b", true, ""},
	{"space", "/with space", true, ""},
	{"punctuation", "/a-b_c:d@e,f=g~h", true, ""},
	{"latin", "/grüße", true, ""},
	{"cjk", "/日本/語", true, ""},
	{"nbsp after the C1 range", "/\u00a0", true, ""},
	{"below the surrogate range", "/\ud7ff", true, ""},
	{"above the private use range", "/\uf900", true, ""},
	{"below the specials", "/\uffef", true, ""},

	{"empty", "", false, ""},
	{"relative", "a", false, ""},
	{"relative nested", "a/b", false, ""},
	{"double slash root", "//", false, ""},
	{"trailing slash", "/a/", false, ""},
	{"empty segment", "/a//b", false, ""},
	{"dot", "/.", false, ""},
	{"dot dot", "/..", false, ""},
	{"trailing dot segment", "/a/.", false, ""},
	{"trailing dot dot segment", "/a/..", false, ""},
	{"leading dot segment", "/./a", false, ""},
	{"leading dot dot segment", "/../a", false, ""},
	{"middle dot segment", "/a/./b", false, ""},
	{"middle dot dot segment", "/a/../b", false, ""},
	{"nul", "/a\x00b", false, ""},
	{"nul alone", "/\x00", false, ""},
	{"control 0x01", "/a\x01", false, ""},
	{"tab", "/a\tb", false, ""},
	{"newline", "/a\n", false, ""},
	{"control 0x1f", "/\x1f", false, ""},
	{"delete", "/\x7f", false, ""},
	{"C1 first", "/\u0080", false, ""},
	{"C1 last", "/\u009f", false, ""},
	{"private use first", "/\ue000", false, ""},
	{"private use last", "/\uf8ff", false, ""},
	{"specials first", "/\ufff0", false, ""},
	{"replacement character", "/\ufffd", false, ""},
	{"noncharacter U+FFFF", "/\uffff", false, ""},
	{"invalid UTF-8", "/\xff", false, ""},
	{"truncated UTF-8", "/a\xc3", false, ""},
	{"encoded surrogate", "/\xed\xa0\x80", false, ""},

	{"emoji", "/\U0001F600", false, divergenceSupplementary},
	{"first supplementary rune", "/a/\U00010000", false, divergenceSupplementary},
}

func checkVerdict(t *testing.T, what string, err error, zkOK bool, divergence string) {
	t.Helper()
	if err != nil && (!errors.Is(err, ErrBadArguments) || ErrorCode(err) != CodeBadArguments) {
		t.Fatalf("%s: error %v does not wrap ErrBadArguments", what, err)
	}
	if got := err == nil; got != zkOK {
		if divergence != "" {
			t.Skipf("%s: accepted=%v, ZooKeeper accepted=%v: known divergence: %s", what, got, zkOK, divergence)
		}
		t.Fatalf("%s: accepted=%v (err %v), ZooKeeper accepts=%v", what, got, err, zkOK)
	}
}

func TestValidatePath(t *testing.T) {
	for _, tc := range validatePathCases {
		t.Run(tc.name, func(t *testing.T) {
			if zkAccepts(tc.path) != tc.zkOK {
				t.Fatalf("table says ZooKeeper accepts %q = %v, the transcription disagrees", tc.path, tc.zkOK)
			}
			checkVerdict(t, "ValidatePath", ValidatePath(tc.path), tc.zkOK, tc.divergence)
			checkVerdict(t, "ValidateCreatePath(non-sequential)", ValidateCreatePath(tc.path, false), tc.zkOK, tc.divergence)
		})
	}
}

func TestValidatePathErrorNamesTheProblem(t *testing.T) {
	for path, want := range map[string]string{
		"":       "empty",
		"a":      "must start with /",
		"/a/":    "must not end with /",
		"/a//b":  "empty segment",
		"/a/..":  "relative segment ..",
		"/a\x01": "invalid character U+0001",
		"/\xff":  "not valid UTF-8",
	} {
		err := ValidatePath(path)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidatePath(%q) = %v, want it to say %q", path, err, want)
		}
	}
}

func TestValidateCreatePathSequential(t *testing.T) {
	cases := []pathCase{
		{"root parent", "/", true, ""},
		{"trailing slash names the child", "/a/", true, ""},
		{"prefix", "/queue/item-", true, ""},
		{"no slash needed", "/lock", true, ""},
		{"dot becomes a name", "/a/.", true, ""},
		{"dot dot becomes a name", "/a/..", true, ""},
		{"root dot", "/.", true, ""},

		{"empty", "", false, ""},
		{"relative", "a/", false, ""},
		{"double slash", "//", false, ""},
		{"empty segment before the suffix", "/a//", false, ""},
		{"empty segment", "/a//b", false, ""},
		{"dot segment", "/./", false, ""},
		{"dot dot segment", "/a/../", false, ""},
		{"nul", "/a\x00/", false, ""},
		{"control", "/a\x1f", false, ""},
		{"invalid UTF-8", "/\xff/", false, ""},
		{"emoji", "/\U0001F600/", false, divergenceSupplementary},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if zkAcceptsCreate(tc.path, true) != tc.zkOK {
				t.Fatalf("table says ZooKeeper accepts %q = %v, the transcription disagrees", tc.path, tc.zkOK)
			}
			checkVerdict(t, "ValidateCreatePath(sequential)", ValidateCreatePath(tc.path, true), tc.zkOK, tc.divergence)
		})
	}
}

func TestParentBaseJoin(t *testing.T) {
	for _, tc := range []struct{ path, parent, base string }{
		{"/", "", ""},
		{"/a", "/", "a"},
		{"/a/b", "/a", "b"},
		{"/a/b/c.d", "/a/b", "c.d"},
	} {
		if got := Parent(tc.path); got != tc.parent {
			t.Errorf("Parent(%q) = %q, want %q", tc.path, got, tc.parent)
		}
		if got := Base(tc.path); got != tc.base {
			t.Errorf("Base(%q) = %q, want %q", tc.path, got, tc.base)
		}
		if tc.path != "/" {
			if got := Join(tc.parent, tc.base); got != tc.path {
				t.Errorf("Join(%q, %q) = %q, want %q", tc.parent, tc.base, got, tc.path)
			}
		}
	}
}

// FuzzValidatePath checks that validation never panics, agrees with
// ZooKeeper's rule (apart from the known divergence), treats a sequential
// create path as the path with its suffix, and that every accepted path
// splits into a valid parent and a base that join back to it.
func FuzzValidatePath(f *testing.F) {
	for _, tc := range validatePathCases {
		f.Add(tc.path)
	}
	for _, s := range []string{"/a/", "/q/item-", "/a/b/../c", "/\u00e9/\u0301", "/a\u2028b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		err := ValidatePath(path)
		ok := err == nil
		if err != nil && !errors.Is(err, ErrBadArguments) {
			t.Fatalf("ValidatePath(%q) = %v, not ErrBadArguments", path, err)
		}
		if zk := zkAccepts(path); ok != zk && !supplementary(path) {
			t.Fatalf("ValidatePath(%q) accepted=%v, ZooKeeper accepts=%v", path, ok, zk)
		}
		if got := ValidateCreatePath(path, false) == nil; got != ok {
			t.Fatalf("ValidateCreatePath(%q, false) accepted=%v, ValidatePath accepted=%v", path, got, ok)
		}
		seq := ValidateCreatePath(path, true) == nil
		if want := ValidatePath(path+"1") == nil; seq != want {
			t.Fatalf("ValidateCreatePath(%q, true) accepted=%v, ValidatePath(path+\"1\") accepted=%v", path, seq, want)
		}
		if ok && !seq {
			t.Fatalf("%q is valid but refused as a sequential create path", path)
		}
		if !ok {
			return
		}
		parent, base := Parent(path), Base(path)
		if got := Join(parent, base); got != path {
			t.Fatalf("Join(Parent(%q), Base(%q)) = Join(%q, %q) = %q", path, path, parent, base, got)
		}
		if path == "/" {
			if parent != "" || base != "" {
				t.Fatalf("root split into %q and %q", parent, base)
			}
			return
		}
		if err := ValidatePath(parent); err != nil {
			t.Fatalf("parent %q of valid %q is invalid: %v", parent, path, err)
		}
		if base == "" || strings.Contains(base, "/") || !utf8.ValidString(base) {
			t.Fatalf("base %q of valid %q", base, path)
		}
		if len(parent) >= len(path) {
			t.Fatalf("parent %q not shorter than %q", parent, path)
		}
	})
}
