package transport

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Cluster-key authentication of a peer connection, inside the hello
// exchange (and inside TLS when TLS is on as well):
//
//	dialler  → acceptor: hello{From: d, To: a, Nonce: Nd}
//	acceptor → dialler:  hello{From: a, To: d, Nonce: Na, Proof: P("accept")}
//	dialler  → acceptor: hello{From: d, To: a, Proof: P("dial")}
//
// where P(role) = HMAC-SHA256(key, "grove peer " role, d, a, Nd, Na), with
// both raft IDs as 8 big-endian bytes and both nonces 32 fresh random
// bytes. Each side proves it holds the key over a challenge the other just
// chose, so a recorded exchange cannot be replayed, and the proofs bind
// both raft IDs, so a proof for one pair of nodes does not open a
// connection between another. The roles differ so that the acceptor's
// proof cannot be reflected back as the dialler's. No message frame is
// read before the acceptor has checked the dialler's proof.
//
// The key authenticates the ends of a connection, not what travels on it
// afterwards: without TLS the traffic is readable, and someone who can
// inject packets into an established TCP stream (on the path between two
// nodes) could still alter it. TLS covers both.

// nonceSize is the length of a hello's challenge.
const nonceSize = 32

// minClusterKey is the shortest cluster key Config accepts.
const minClusterKey = 32

// newNonce returns a fresh challenge.
func newNonce() []byte {
	b := make([]byte, nonceSize)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return b
}

// keyProof is P(role) above.
func keyProof(key []byte, role string, dialler, acceptor uint64, nd, na []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("grove peer " + role))
	var ids [16]byte
	binary.BigEndian.PutUint64(ids[:8], dialler)
	binary.BigEndian.PutUint64(ids[8:], acceptor)
	m.Write(ids[:])
	m.Write(nd)
	m.Write(na)
	return m.Sum(nil)
}

// checkChallenge checks that a peer's hello uses the cluster key exactly
// when this node does: with a key, it carries a challenge; without, it
// carries neither challenge nor proof.
func checkChallenge(key []byte, h hello) error {
	switch {
	case key == nil && (h.Nonce != nil || h.Proof != nil):
		return fmt.Errorf("%w: peer %d uses a cluster key and this node has none", ErrAuth, h.From)
	case key != nil && len(h.Nonce) != nonceSize:
		return fmt.Errorf("%w: peer %d sent no challenge (is the cluster key set on every node?)", ErrAuth, h.From)
	}
	return nil
}

// checkProof verifies a received proof in constant time.
func checkProof(key []byte, got []byte, role string, dialler, acceptor uint64, nd, na []byte) error {
	if len(got) == 0 {
		return fmt.Errorf("%w: peer %d sent no cluster-key proof (is the cluster key set on every node?)", ErrAuth, peerOf(role, dialler, acceptor))
	}
	if !hmac.Equal(got, keyProof(key, role, dialler, acceptor, nd, na)) {
		return fmt.Errorf("%w: peer %d's cluster-key proof is wrong (a different key?)", ErrAuth, peerOf(role, dialler, acceptor))
	}
	return nil
}

// peerOf names the end that made a proof of role.
func peerOf(role string, dialler, acceptor uint64) uint64 {
	if role == roleDial {
		return dialler
	}
	return acceptor
}

// Proof roles.
const (
	roleAccept = "accept"
	roleDial   = "dial"
)
