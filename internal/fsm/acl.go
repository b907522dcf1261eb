package fsm

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/grovekit/grove"
)

// CheckACL returns nil if ids grant perm under acl, else grove.ErrNoAuth.
// As in ZooKeeper, an empty ACL grants everything, an identity with scheme
// "super" is granted everything, and otherwise some entry with a bit of perm
// set must match one of ids: world:anyone matches everyone, an ip entry
// matches an identity whose address lies in its address or CIDR range, and
// any other scheme (digest, ...) matches an identity with the same scheme and
// id. CheckACL is a pure function, safe for concurrent use.
func CheckACL(acl []grove.ACL, ids []grove.Identity, perm grove.Perm) error {
	if len(acl) == 0 {
		return nil
	}
	for _, id := range ids {
		if id.Scheme == "super" {
			return nil
		}
	}
	for _, a := range acl {
		if a.Perms&perm == 0 {
			continue
		}
		if a.Scheme == "world" && a.ID == "anyone" {
			return nil
		}
		for _, id := range ids {
			if id.Scheme == a.Scheme && idMatches(a, id) {
				return nil
			}
		}
	}
	return grove.ErrNoAuth
}

// idMatches reports whether identity id (of a's scheme) matches the id of
// ACL entry a.
func idMatches(a grove.ACL, id grove.Identity) bool {
	if a.Scheme != "ip" {
		return a.ID == id.ID
	}
	p, ok := parseIPACL(a.ID)
	if !ok {
		return false
	}
	addr, err := netip.ParseAddr(id.ID)
	if err != nil {
		return false
	}
	if p.Addr().Is4() {
		addr = addr.Unmap()
	}
	return p.Contains(addr.WithZone(""))
}

// parseIPACL parses the id of an ip ACL: an address, or an address with a
// prefix length in bits.
func parseIPACL(s string) (netip.Prefix, bool) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p, err == nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, a.BitLen()), true
}

// validDigestID reports whether s has the form user:hash, with exactly one
// colon and neither part empty.
func validDigestID(s string) bool {
	user, hash, ok := strings.Cut(s, ":")
	return ok && user != "" && hash != "" && !strings.Contains(hash, ":")
}

// fixupACL validates an ACL given to create or setACL and expands its
// "auth" entries into the request's identities, as ZooKeeper's fixupACL
// does. It reports false (grove.CodeInvalidACL) for an empty list, a world
// entry other than world:anyone, an auth entry with no identity to expand
// to, a malformed digest or ip id, or an unknown scheme. Exact duplicates
// are dropped, keeping the first.
func fixupACL(acl []grove.ACL, ids []grove.Identity) ([]grove.ACL, bool) {
	if len(acl) == 0 {
		return nil, false
	}
	out := make([]grove.ACL, 0, len(acl))
	for _, a := range acl {
		switch a.Scheme {
		case "world":
			if a.ID != "anyone" {
				return nil, false
			}
			out = append(out, a)
		case "auth":
			expanded := false
			for _, id := range ids {
				switch id.Scheme {
				case "", "ip", "world", "super":
					continue
				}
				out = append(out, grove.ACL{Perms: a.Perms, Scheme: id.Scheme, ID: id.ID})
				expanded = true
			}
			if !expanded {
				return nil, false
			}
		case "digest":
			if !validDigestID(a.ID) {
				return nil, false
			}
			out = append(out, a)
		case "ip":
			if _, ok := parseIPACL(a.ID); !ok {
				return nil, false
			}
			out = append(out, a)
		default:
			return nil, false
		}
	}
	return dedupACL(out), true
}

// dedupACL drops exact duplicates from acl, keeping the first of each.
func dedupACL(acl []grove.ACL) []grove.ACL {
	out := acl[:0] // in place: out never overtakes the element being read
	for _, a := range acl {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// redactACL returns acl with the hash part of every digest id replaced by
// "x" ("user:x"), as ZooKeeper answers getACL to a session without ADMIN
// permission.
func redactACL(acl []grove.ACL) []grove.ACL {
	for i, a := range acl {
		if a.Scheme != "digest" {
			continue
		}
		if user, _, ok := strings.Cut(a.ID, ":"); ok {
			acl[i].ID = user + ":x"
		}
	}
	return acl
}
