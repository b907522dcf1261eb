package fsm

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/command"
)

// getACL returns the ACL of path as ids see it.
func getACL(t *testing.T, h *harness, path string, ids []grove.Identity) []grove.ACL {
	t.Helper()
	var acl []grove.ACL
	h.view(func(tx *bbolt.Tx) error {
		var err error
		acl, _, err = GetACL(Bolt(tx), path, ids)
		return err
	})
	return acl
}

func TestCheckACL(t *testing.T) {
	bobID := grove.DigestID("bob", "secret")
	bob := grove.Identity{Scheme: "digest", ID: bobID}
	eve := grove.Identity{Scheme: "digest", ID: grove.DigestID("bob", "wrong")}
	super := grove.Identity{Scheme: "super", ID: "admin"}
	ip := func(a string) grove.Identity { return grove.Identity{Scheme: "ip", ID: a} }
	acl := func(p grove.Perm, s, id string) []grove.ACL { return []grove.ACL{{Perms: p, Scheme: s, ID: id}} }
	cases := []struct {
		name string
		acl  []grove.ACL
		ids  []grove.Identity
		perm grove.Perm
		ok   bool
	}{
		{"empty acl", nil, nil, grove.PermAdmin, true},
		{"world", grove.OpenACLUnsafe, nil, grove.PermWrite, true},
		{"world read only", grove.ReadACLUnsafe, nil, grove.PermWrite, false},
		{"world other id", acl(grove.PermAll, "world", "someone"), nil, grove.PermRead, false},
		{"digest match", acl(grove.PermRead, "digest", bobID), []grove.Identity{bob}, grove.PermRead, true},
		{"digest wrong password", acl(grove.PermRead, "digest", bobID), []grove.Identity{eve}, grove.PermRead, false},
		{"digest missing perm", acl(grove.PermRead, "digest", bobID), []grove.Identity{bob}, grove.PermWrite, false},
		{"scheme must match", acl(grove.PermRead, "digest", "10.0.0.1"), []grove.Identity{ip("10.0.0.1")}, grove.PermRead, false},
		{"super", acl(grove.PermRead, "digest", bobID), []grove.Identity{super}, grove.PermAdmin, true},
		{"super on read-only", grove.ReadACLUnsafe, []grove.Identity{super}, grove.PermDelete, true},
		{"ip exact", acl(grove.PermAll, "ip", "10.0.0.1"), []grove.Identity{ip("10.0.0.1")}, grove.PermRead, true},
		{"ip exact other", acl(grove.PermAll, "ip", "10.0.0.1"), []grove.Identity{ip("10.0.0.2")}, grove.PermRead, false},
		{"ip cidr in", acl(grove.PermAll, "ip", "10.1.0.0/16"), []grove.Identity{ip("10.1.200.3")}, grove.PermRead, true},
		{"ip cidr out", acl(grove.PermAll, "ip", "10.1.0.0/16"), []grove.Identity{ip("10.2.0.1")}, grove.PermRead, false},
		{"ip cidr unmasked", acl(grove.PermAll, "ip", "10.1.2.3/8"), []grove.Identity{ip("10.200.0.1")}, grove.PermRead, true},
		{"ip v6 cidr", acl(grove.PermAll, "ip", "fd00::/8"), []grove.Identity{ip("fd12::1")}, grove.PermRead, true},
		{"ip v4 in v6 identity", acl(grove.PermAll, "ip", "127.0.0.0/8"), []grove.Identity{ip("::ffff:127.0.0.1")}, grove.PermRead, true},
		{"ip garbage identity", acl(grove.PermAll, "ip", "10.0.0.0/8"), []grove.Identity{ip("nope")}, grove.PermRead, false},
		{"ip garbage acl", acl(grove.PermAll, "ip", "nope"), []grove.Identity{ip("10.0.0.1")}, grove.PermRead, false},
		{"second entry", append(acl(grove.PermRead, "ip", "1.2.3.4"), acl(grove.PermWrite, "digest", bobID)...), []grove.Identity{ip("9.9.9.9"), bob}, grove.PermWrite, true},
		{"perm set with either bit", acl(grove.PermAdmin, "world", "anyone"), nil, grove.PermRead | grove.PermAdmin, true},
		{"other scheme by equality", acl(grove.PermAll, "x509", "CN=a"), []grove.Identity{{Scheme: "x509", ID: "CN=a"}}, grove.PermRead, true},
	}
	for _, tc := range cases {
		err := CheckACL(tc.acl, tc.ids, tc.perm)
		if tc.ok && err != nil || !tc.ok && !errors.Is(err, grove.ErrNoAuth) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func TestFixupACLBounded(t *testing.T) {
	ids := make([]grove.Identity, 300)
	auth := make([]grove.ACL, 300)
	for i := range ids {
		ids[i] = grove.Identity{Scheme: "digest", ID: fmt.Sprintf("u%d:h", i)}
		auth[i] = grove.ACL{Perms: grove.Perm(i), Scheme: "auth"}
	}
	start := time.Now()
	if _, ok := fixupACL(auth, ids); ok {
		t.Error("90000 expanded entries accepted")
	}
	// The same perms expand once, however many times they are listed.
	same := make([]grove.ACL, 5000)
	for i := range same {
		same[i] = grove.ACL{Perms: grove.PermRead, Scheme: "auth", ID: fmt.Sprint(i)}
	}
	if got, ok := fixupACL(same, ids); !ok || len(got) != 300 {
		t.Errorf("repeated auth: %d %v", len(got), ok)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("fixupACL took %v", time.Since(start))
	}
	many := make([]grove.ACL, maxACLLen+1)
	for i := range many {
		many[i] = grove.ACL{Perms: grove.PermRead, Scheme: "ip", ID: fmt.Sprintf("10.0.%d.%d", i/256, i%256)}
	}
	if got, ok := fixupACL(many[:maxACLLen], nil); !ok || len(got) != maxACLLen {
		t.Errorf("%d entries: %d %v", maxACLLen, len(got), ok)
	}
	if _, ok := fixupACL(many, nil); ok {
		t.Errorf("%d entries accepted", len(many))
	}
	// Duplicates beyond the linear-scan size are still dropped.
	dups := append(append([]grove.ACL(nil), many[:100]...), many[:100]...)
	if got, ok := fixupACL(dups, nil); !ok || !reflect.DeepEqual(got, many[:100]) {
		t.Errorf("dups: %d %v", len(got), ok)
	}
}

func TestFixupACL(t *testing.T) {
	bob := grove.Identity{Scheme: "digest", ID: grove.DigestID("bob", "pw")}
	all := func(s, id string) grove.ACL { return grove.ACL{Perms: grove.PermAll, Scheme: s, ID: id} }
	cases := []struct {
		name string
		in   []grove.ACL
		ids  []grove.Identity
		want []grove.ACL // nil: invalid
	}{
		{"empty", nil, nil, nil},
		{"world anyone", grove.OpenACLUnsafe, nil, grove.OpenACLUnsafe},
		{"world other", []grove.ACL{all("world", "me")}, nil, nil},
		{"digest ok", []grove.ACL{all("digest", "u:h")}, nil, []grove.ACL{all("digest", "u:h")}},
		{"digest no colon", []grove.ACL{all("digest", "uh")}, nil, nil},
		{"digest two colons", []grove.ACL{all("digest", "u:h:x")}, nil, nil},
		{"digest empty user", []grove.ACL{all("digest", ":h")}, nil, nil},
		{"digest empty hash", []grove.ACL{all("digest", "u:")}, nil, nil},
		{"ip addr", []grove.ACL{all("ip", "10.0.0.1")}, nil, []grove.ACL{all("ip", "10.0.0.1")}},
		{"ip cidr", []grove.ACL{all("ip", "10.0.0.0/8")}, nil, []grove.ACL{all("ip", "10.0.0.0/8")}},
		{"ip v6", []grove.ACL{all("ip", "::1")}, nil, []grove.ACL{all("ip", "::1")}},
		{"ip bad bits", []grove.ACL{all("ip", "10.0.0.0/33")}, nil, nil},
		{"ip garbage", []grove.ACL{all("ip", "host.example")}, nil, nil},
		{"unknown scheme", []grove.ACL{all("sasl2", "x")}, nil, nil},
		{"super scheme", []grove.ACL{all("super", "x")}, nil, nil},
		{"auth without ids", grove.CreatorAllACL, nil, nil},
		{"auth with only ip/world/super", grove.CreatorAllACL, []grove.Identity{{Scheme: "ip", ID: "1.2.3.4"}, {Scheme: "world", ID: "anyone"}, {Scheme: "super", ID: ""}}, nil},
		{"auth expands", []grove.ACL{{Perms: grove.PermRead, Scheme: "auth"}},
			[]grove.Identity{{Scheme: "ip", ID: "1.2.3.4"}, bob, {Scheme: "sasl", ID: "alice"}},
			[]grove.ACL{{Perms: grove.PermRead, Scheme: "digest", ID: bob.ID}, {Perms: grove.PermRead, Scheme: "sasl", ID: "alice"}}},
		{"duplicates dropped", []grove.ACL{all("world", "anyone"), all("digest", bob.ID), all("world", "anyone")}, nil,
			[]grove.ACL{all("world", "anyone"), all("digest", bob.ID)}},
		{"auth duplicate of explicit", []grove.ACL{all("digest", bob.ID), {Perms: grove.PermAll, Scheme: "auth"}}, []grove.Identity{bob},
			[]grove.ACL{all("digest", bob.ID)}},
		{"one bad entry spoils all", []grove.ACL{all("world", "anyone"), all("bogus", "x")}, nil, nil},
	}
	for _, tc := range cases {
		in := append([]grove.ACL(nil), tc.in...)
		got, ok := fixupACL(in, tc.ids)
		if tc.want == nil {
			if ok {
				t.Errorf("%s: accepted as %v", tc.name, got)
			}
			continue
		}
		if !ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %v %v, want %v", tc.name, got, ok, tc.want)
		}
	}
}

// TestACLDenials checks every write and read against a node readable and
// writable only by one identity of each scheme.
func TestACLDenials(t *testing.T) {
	bob := grove.Identity{Scheme: "digest", ID: grove.DigestID("bob", "pw")}
	eve := grove.Identity{Scheme: "digest", ID: grove.DigestID("eve", "pw")}
	lan := grove.Identity{Scheme: "ip", ID: "192.168.1.20"}
	wan := grove.Identity{Scheme: "ip", ID: "8.8.8.8"}
	super := grove.Identity{Scheme: "super", ID: "root"}
	schemes := []struct {
		name    string
		acl     []grove.ACL
		creator []grove.Identity // identities of the creating session
		allowed []grove.Identity
		denied  []grove.Identity
	}{
		{"world", grove.OpenACLUnsafe, nil, nil, nil},
		{"digest", grove.DigestACL(grove.PermAll, "bob", "pw"), nil, []grove.Identity{bob}, []grove.Identity{eve}},
		{"ip cidr", []grove.ACL{{Perms: grove.PermAll, Scheme: "ip", ID: "192.168.0.0/16"}}, nil, []grove.Identity{lan}, []grove.Identity{wan}},
		{"auth", grove.CreatorAllACL, []grove.Identity{bob}, []grove.Identity{bob}, []grove.Identity{eve, lan}},
		{"super", grove.DigestACL(grove.PermAll, "bob", "pw"), nil, []grove.Identity{super}, []grove.Identity{eve, wan}},
	}
	var stored []grove.ACL // the ACL of /n, as its admin reads it
	type op struct {
		name string
		req  func(path string) command.Request
	}
	ops := []op{
		{"create child", func(p string) command.Request {
			return command.Request{Op: command.OpCreate, Path: p + "/x", ACL: grove.OpenACLUnsafe}
		}},
		{"set", func(p string) command.Request { return command.Request{Op: command.OpSetData, Path: p, Version: -1} }},
		{"check", func(p string) command.Request { return command.Request{Op: command.OpCheck, Path: p, Version: -1} }},
		{"delete child", func(p string) command.Request {
			return command.Request{Op: command.OpDelete, Path: p + "/x", Version: -1}
		}},
		{"multi set", func(p string) command.Request {
			return command.Request{Op: command.OpMulti, Ops: []grove.Op{grove.SetOp(p, nil, -1)}}
		}},
		{"setACL", func(p string) command.Request {
			// Keep the ACL as it is, spelled out (auth would expand
			// to the caller).
			return command.Request{Op: command.OpSetACL, Path: p, ACL: stored, Version: -1}
		}},
	}
	for _, sc := range schemes {
		t.Run(sc.name, func(t *testing.T) {
			h := mustHarness(t)
			owner := h.newClient(sc.creator...)
			if r := owner.create("/n", "", grove.ModePersistent, sc.acl); r.Code != 0 {
				t.Fatalf("create: %d", r.Code)
			}
			stored = getACL(t, h, "/n", []grove.Identity{super})
			check := func(ids []grove.Identity, want grove.Code) {
				t.Helper()
				c := h.newClient(ids...)
				for _, o := range ops {
					req := o.req("/n")
					code := c.do(&req).Result.Code
					wantCode(t, o.name+" by "+sc.name, code, want)
				}
				h.view(func(tx *bbolt.Tx) error {
					_, _, err := Get(Bolt(tx), "/n", ids)
					_, _, _, cerr := Children(Bolt(tx), "/n", ids, "", 0)
					_, nerr := CountDescendants(Bolt(tx), "/n", ids)
					for _, e := range []error{err, cerr, nerr} {
						if want == grove.CodeOK && e != nil || want == grove.CodeNoAuth && !errors.Is(e, grove.ErrNoAuth) {
							t.Errorf("read by %v: %v", ids, e)
						}
					}
					return nil
				})
			}
			for _, id := range sc.allowed {
				check([]grove.Identity{id}, grove.CodeOK)
			}
			if sc.name == "world" {
				check(nil, grove.CodeOK)
			}
			for _, id := range sc.denied {
				check([]grove.Identity{id}, grove.CodeNoAuth)
			}
		})
	}
}

func TestGetACLRedaction(t *testing.T) {
	h := mustHarness(t)
	bob := grove.Identity{Scheme: "digest", ID: grove.DigestID("bob", "pw")}
	c := h.newClient(bob)
	acl := []grove.ACL{
		{Perms: grove.PermRead, Scheme: "world", ID: "anyone"},
		{Perms: grove.PermAll, Scheme: "digest", ID: bob.ID},
		{Perms: grove.PermRead, Scheme: "ip", ID: "10.0.0.0/8"},
	}
	if r := c.create("/n", "", grove.ModePersistent, acl); r.Code != 0 {
		t.Fatal(r.Code)
	}
	if got := getACL(t, h, "/n", []grove.Identity{bob}); !reflect.DeepEqual(got, acl) {
		t.Errorf("admin sees %v", got)
	}
	if got := getACL(t, h, "/n", []grove.Identity{{Scheme: "super"}}); !reflect.DeepEqual(got, acl) {
		t.Errorf("super sees %v", got)
	}
	redacted := append([]grove.ACL(nil), acl...)
	redacted[1].ID = "bob:x"
	if got := getACL(t, h, "/n", nil); !reflect.DeepEqual(got, redacted) {
		t.Errorf("anonymous sees %v, want %v", got, redacted)
	}
	// Redaction does not leak into the store.
	if got := getACL(t, h, "/n", []grove.Identity{bob}); !reflect.DeepEqual(got, acl) {
		t.Errorf("admin sees %v after redaction", got)
	}
}
