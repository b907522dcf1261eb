package server

import (
	"crypto/subtle"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// The HTTP port's guard. Three checks, in order, before any handler runs:
//
//  1. Host: a request must name this node by an IP address, "localhost",
//     or a name in Config.HTTPAllowedHosts. A web page that rebinds its
//     own DNS name to 127.0.0.1 (DNS rebinding) sends its own name and is
//     refused (403).
//  2. Cross-site writes: a request that is not GET or HEAD must not come
//     from a foreign page (an Origin header naming another host is
//     refused), and a POST must say it is a Grove request (the
//     X-Grove-Request header, or a JSON body) — headers a page cannot set
//     on a cross-site request without the preflight Grove never answers.
//  3. Token: with Config.HTTPToken set, every endpoint that reads data or
//     changes the cluster (/status, /members, /v1/*, /debug/*) needs
//     "Authorization: Bearer TOKEN" (401 otherwise). /healthz and /readyz
//     stay open; /metrics too unless Config.ProtectMetrics.

// GroveRequestHeader marks a request as sent by a Grove tool, not a web
// page; POSTs need it (or a JSON body).
const GroveRequestHeader = "X-Grove-Request"

// DefaultBackupStallTimeout cuts a backup download whose client has taken
// no bytes for this long (Config.BackupStallTimeout).
const DefaultBackupStallTimeout = 30 * time.Second

// guard wraps the HTTP routes in the checks above.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.hostAllowed(r.Host) {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "host " + r.Host + " is not this node's (add it with --http-allowed-host)"})
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r.Host) {
				writeJSON(w, http.StatusForbidden, map[string]string{"error": "cross-origin request refused"})
				return
			}
			if r.Method == http.MethodPost && r.Header.Get(GroveRequestHeader) == "" &&
				!strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
				writeJSON(w, http.StatusForbidden, map[string]string{"error": "POST needs the " + GroveRequestHeader + " header or a JSON body"})
				return
			}
		}
		if r.URL.Path == "/v1/backup" && len(s.cfg.BackupToken) > 0 {
			// A backup holds every znode, protected ones included: with a
			// backup token set, only it opens this endpoint.
			if !bearerIs(r, s.cfg.BackupToken) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="grove-backup"`)
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "a backup needs the backup token (--token-file with the backup token)"})
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if s.needsToken(r.URL.Path) && !s.tokenOK(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="grove"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "this endpoint needs Authorization: Bearer TOKEN (--token-file)"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// needsToken reports whether path needs the bearer token.
func (s *Server) needsToken(path string) bool {
	if len(s.cfg.HTTPToken) == 0 {
		return false
	}
	switch path {
	case "/healthz", "/readyz":
		return false
	case "/metrics":
		return s.cfg.ProtectMetrics
	}
	return true
}

// tokenOK checks the bearer token in constant time.
func (s *Server) tokenOK(r *http.Request) bool { return bearerIs(r, s.cfg.HTTPToken) }

// bearerIs reports, in constant time, whether r carries token as its
// bearer token.
func bearerIs(r *http.Request, token []byte) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), token) == 1
}

// hostAllowed reports whether a Host header names this node: an IP
// literal, localhost, or an allowed name.
func (s *Server) hostAllowed(host string) bool {
	h := host
	if hp, _, err := net.SplitHostPort(host); err == nil {
		h = hp
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if h == "" || net.ParseIP(h) != nil || strings.EqualFold(h, "localhost") {
		return true
	}
	return slices.ContainsFunc(s.cfg.HTTPAllowedHosts, func(a string) bool { return strings.EqualFold(a, h) })
}

// sameOrigin reports whether an Origin header names the host the request
// was sent to.
func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, host)
}

// stallWriter cuts a response whose client stops reading: each write must
// finish within limit.
type stallWriter struct {
	w     http.ResponseWriter
	rc    *http.ResponseController
	limit time.Duration
}

func (sw stallWriter) Write(p []byte) (int, error) {
	_ = sw.rc.SetWriteDeadline(time.Now().Add(sw.limit))
	return sw.w.Write(p)
}
