package grove_test

import (
	"errors"
	"fmt"

	"github.com/grovekit/grove"
)

// The digest scheme's id is user:base64(sha1(user:password)), as ZooKeeper's
// DigestAuthenticationProvider computes it, so ACLs made here match ids made
// by ZooKeeper tools (this is the super digest of the ZooKeeper admin guide).
func ExampleDigestID() {
	fmt.Println(grove.DigestID("super", "admin"))
	acl := grove.DigestACL(grove.PermRead|grove.PermWrite, "alice", "secret")
	fmt.Println(acl[0].Scheme, acl[0].ID, acl[0].Perms == grove.PermRead|grove.PermWrite)
	// Output:
	// super:xQJmxLMiHGwaqBvst5y6rkB6HQs=
	// digest alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E= true
}

// ValidatePath applies ZooKeeper's rules; a bad path is ErrBadArguments.
func ExampleValidatePath() {
	for _, p := range []string{"/", "/app/config", "app", "/app/", "/app//x", "/app/..", "/a\x00b"} {
		err := grove.ValidatePath(p)
		fmt.Printf("%q ok=%v bad-arguments=%v\n", p, err == nil, errors.Is(err, grove.ErrBadArguments))
	}
	// A sequential create may end in "/": the counter is the whole name.
	fmt.Println(grove.ValidateCreatePath("/queue/", true) == nil, grove.ValidateCreatePath("/queue/", false) == nil)
	// Output:
	// "/" ok=true bad-arguments=false
	// "/app/config" ok=true bad-arguments=false
	// "app" ok=false bad-arguments=true
	// "/app/" ok=false bad-arguments=true
	// "/app//x" ok=false bad-arguments=true
	// "/app/.." ok=false bad-arguments=true
	// "/a\x00b" ok=false bad-arguments=true
	// true false
}

// Errors cross the wire as ZooKeeper's numeric codes: ErrorCode finds the
// code in a wrapped error, CodeError turns it back into the same sentinel.
func ExampleErrorCode() {
	err := fmt.Errorf("get /app/config: %w", grove.ErrNoNode)
	code := grove.ErrorCode(err)
	fmt.Println(code, code == grove.CodeNoNode)

	back := grove.CodeError(code)
	fmt.Println(back, errors.Is(back, grove.ErrNoNode))

	fmt.Println(grove.ErrorCode(nil), grove.ErrorCode(errors.New("other")))
	// Output:
	// -101 true
	// grove: node does not exist true
	// 0 -1
}

// CodeError gives nil for CodeOK, the sentinel for a known code, and an
// error wrapping ErrSystemError for an unknown one.
func ExampleCodeError() {
	fmt.Println(grove.CodeError(grove.CodeOK))
	fmt.Println(grove.CodeError(grove.CodeBadVersion))
	err := grove.CodeError(-9999)
	fmt.Println(err, errors.Is(err, grove.ErrSystemError))
	// Output:
	// <nil>
	// grove: version conflict
	// grove: unknown error code -9999: grove: system error true
}

func ExampleParent() {
	for _, p := range []string{"/app/config/db", "/app", "/"} {
		fmt.Printf("%q parent %q base %q\n", p, grove.Parent(p), grove.Base(p))
	}
	// Output:
	// "/app/config/db" parent "/app/config" base "db"
	// "/app" parent "/" base "app"
	// "/" parent "" base ""
}

func ExampleJoin() {
	fmt.Println(grove.Join("/", "app"))
	fmt.Println(grove.Join("/app", "config"))
	p := "/app/config"
	fmt.Println(grove.Join(grove.Parent(p), grove.Base(p)) == p)
	// Output:
	// /app
	// /app/config
	// true
}
