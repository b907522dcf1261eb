package transport

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
)

// LoadTLS builds a mutual-TLS config for Config.TLS from PEM files: the CA
// certificate(s) in caFile verify both the peers' server certificates
// (RootCAs) and their client certificates (ClientCAs, with ClientAuth
// RequireAndVerifyClientCert); certFile and keyFile are this node's
// certificate, presented on both sides, so it needs both the server and the
// client extended key usage. The certificate is presented to a server even
// if the server's CA list does not name its issuer, so a refusal is logged
// with its cause on the server. TLS 1.3 is the minimum. It returns an error
// naming the file that cannot be read or parsed.
func LoadTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("transport: load CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("transport: load CA %q: no PEM certificate found", caFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("transport: load key pair %q, %q: %w", certFile, keyFile, err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		// Present the certificate even when the server's CA list does not
		// name its issuer, so the server can say why it refuses it.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
		RootCAs:              pool,
		ClientCAs:            pool,
		ClientAuth:           tls.RequireAndVerifyClientCert,
		MinVersion:           tls.VersionTLS13,
	}, nil
}

// serverTLS derives the accepting side's config: client certificates are
// required and verified whenever ClientCAs is set.
func serverTLS(c *tls.Config) *tls.Config {
	if c == nil {
		return nil
	}
	s := c.Clone()
	if s.ClientCAs != nil {
		s.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return s
}

// clientTLS derives the dialling side's config for one address: without a
// configured ServerName, the address's host is verified.
func clientTLS(c *tls.Config, addr string) *tls.Config {
	cc := c.Clone()
	if cc.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		cc.ServerName = host
	}
	return cc
}
