package server

import (
	"crypto/x509"
	"fmt"
)

// verifyPeerCert binds a peer's TLS certificate to the raft ID it speaks
// for: every gossip member announcing that ID must be named by the
// certificate. A node holding a valid certificate for one name therefore
// cannot speak for another node's raft ID.
func (s *Server) verifyPeerCert(id uint64, cert *x509.Certificate) error {
	var names []string
	for _, m := range s.gossip.Members() {
		if m.RaftID == id {
			names = append(names, m.Name)
		}
	}
	return certNamesAll(cert, id, names)
}

// certNamesAll checks that cert names every one of names, by its common
// name or one of its DNS names.
func certNamesAll(cert *x509.Certificate, id uint64, names []string) error {
	if len(names) == 0 {
		return fmt.Errorf("raft ID %x is not announced in gossip (yet)", id)
	}
	for _, n := range names {
		if cert.Subject.CommonName != n && cert.VerifyHostname(n) != nil {
			return fmt.Errorf("the certificate of %q does not name member %q (raft ID %x)", cert.Subject.CommonName, n, id)
		}
	}
	return nil
}
