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

// maxACLLen bounds the length of a stored ACL. ZooKeeper has no such
// bound, but "auth" entries expand to one entry per identity and perms, and
// an unbounded product would let one request stall every replica.
const maxACLLen = 1024

// fixupACL validates an ACL given to create or setACL and expands its
// "auth" entries into the request's identities, as ZooKeeper's fixupACL
// does. It reports false (grove.CodeInvalidACL) for an empty list, a world
// entry other than world:anyone, an auth entry with no identity to expand
// to, a malformed digest or ip id, an unknown scheme, or a result longer
// than maxACLLen. Exact duplicates are dropped, keeping the first.
func fixupACL(acl []grove.ACL, ids []grove.Identity) ([]grove.ACL, bool) {
	if len(acl) == 0 {
		return nil, false
	}
	var out aclSet
	var authIDs []grove.Identity // identities an auth entry expands to, deduplicated
	var expanded map[grove.Perm]bool
	for _, a := range acl {
		switch a.Scheme {
		case "world":
			if a.ID != "anyone" {
				return nil, false
			}
		case "auth":
			if expanded == nil {
				authIDs = authIdentities(ids)
				expanded = map[grove.Perm]bool{}
			}
			if len(authIDs) == 0 {
				return nil, false
			}
			if expanded[a.Perms] {
				continue // the same expansion again adds nothing
			}
			expanded[a.Perms] = true
			for _, id := range authIDs {
				if !out.add(grove.ACL{Perms: a.Perms, Scheme: id.Scheme, ID: id.ID}) {
					return nil, false
				}
			}
			continue
		case "digest":
			if !validDigestID(a.ID) {
				return nil, false
			}
		case "ip":
			if _, ok := parseIPACL(a.ID); !ok {
				return nil, false
			}
		case "x509":
			// The subject of a client certificate, as the TLS ports name
			// it (RFC 2253, like Java's X500Principal).
			if a.ID == "" {
				return nil, false
			}
		default:
			return nil, false
		}
		if !out.add(a) {
			return nil, false
		}
	}
	return out.list, true
}

// authIdentities returns the identities an "auth" ACL entry expands to:
// ids without the ip, world and super schemes, deduplicated.
func authIdentities(ids []grove.Identity) []grove.Identity {
	var out []grove.Identity
	seen := map[grove.Identity]bool{}
	for _, id := range ids {
		switch id.Scheme {
		case "", "ip", "world", "super":
			continue
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// aclSet is an ordered list of distinct ACL entries, at most maxACLLen.
type aclSet struct {
	list  []grove.ACL
	index map[grove.ACL]bool // built once the list outgrows a linear scan
}

// add appends a unless it is already there. It reports false if the set
// would grow beyond maxACLLen.
func (s *aclSet) add(a grove.ACL) bool {
	if s.index != nil {
		if s.index[a] {
			return true
		}
		s.index[a] = true
	} else if slices.Contains(s.list, a) {
		return true
	}
	if len(s.list) == maxACLLen {
		return false
	}
	s.list = append(s.list, a)
	if s.index == nil && len(s.list) > 16 {
		s.index = make(map[grove.ACL]bool, 2*len(s.list))
		for _, e := range s.list {
			s.index[e] = true
		}
	}
	return true
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
