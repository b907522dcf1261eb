package grove

import (
	"crypto/sha1" // ZooKeeper's digest scheme is defined as SHA-1.
	"encoding/base64"
	"strings"
)

// Perm is a set of ZooKeeper permissions.
type Perm int32

// Permissions, with ZooKeeper's bit values.
const (
	PermRead   Perm = 1 << 0
	PermWrite  Perm = 1 << 1
	PermCreate Perm = 1 << 2
	PermDelete Perm = 1 << 3
	PermAdmin  Perm = 1 << 4
	PermAll    Perm = PermRead | PermWrite | PermCreate | PermDelete | PermAdmin
)

// ACL grants Perms to the identities matching Scheme and ID.
//
// Schemes: "world" (ID "anyone"), "digest" (ID "user:base64(sha1(user:password))"),
// "ip" (ID an address or CIDR), and "auth" (any identity the creating session
// has authenticated as; expanded at create time).
type ACL struct {
	Perms  Perm
	Scheme string
	ID     string
}

// Identity is an authenticated identity of a session, as (scheme, id).
// Scheme "super" grants every permission.
type Identity struct {
	Scheme string
	ID     string
}

// Common ACL lists.
var (
	// OpenACLUnsafe gives everyone every permission.
	OpenACLUnsafe = []ACL{{Perms: PermAll, Scheme: "world", ID: "anyone"}}
	// ReadACLUnsafe gives everyone read permission only.
	ReadACLUnsafe = []ACL{{Perms: PermRead, Scheme: "world", ID: "anyone"}}
	// CreatorAllACL gives the creator's authenticated identities every permission.
	CreatorAllACL = []ACL{{Perms: PermAll, Scheme: "auth", ID: ""}}
)

// DigestID returns the digest-scheme ID for user and password:
// user:base64(sha1(user:password)).
func DigestID(user, password string) string {
	sum := sha1.Sum([]byte(user + ":" + password)) // see import
	return user + ":" + base64.StdEncoding.EncodeToString(sum[:])
}

// DigestACL returns an ACL granting perms to the digest identity of user and
// password.
func DigestACL(perms Perm, user, password string) []ACL {
	return []ACL{{Perms: perms, Scheme: "digest", ID: DigestID(user, password)}}
}

// ParseDigestAuth turns digest auth credentials, normally "user:password",
// into the identity they authenticate. It never fails (the error is kept
// for callers that check it).
func ParseDigestAuth(cred string) (Identity, error) {
	// As ZooKeeper's DigestAuthenticationProvider: the id is the part before
	// the first colon (all of it without one) and the whole credential is
	// hashed, so "user:password" gives DigestID(user, password) and any
	// other string is accepted too.
	user, _, _ := strings.Cut(cred, ":")
	sum := sha1.Sum([]byte(cred)) // see import
	return Identity{Scheme: "digest", ID: user + ":" + base64.StdEncoding.EncodeToString(sum[:])}, nil
}
