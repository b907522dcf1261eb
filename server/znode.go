package server

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/core"
)

// httpSession is the session the HTTP data API writes with: one per
// server, created on first use and kept alive by the reconciler's clock.
type httpSession struct {
	mu  sync.Mutex
	id  uint64
	seq uint64
}

// handleZnode is a small data API for operators and tests:
//
//	GET    /v1/znode/PATH              → the data (X-Grove-Version header)
//	GET    /v1/znode/PATH?linearizable=1
//	PUT    /v1/znode/PATH[?mode=N]     create with the body as data → the created path
//	PUT    /v1/znode/PATH?version=V    set the data (V = -1: any version)
//	DELETE /v1/znode/PATH[?version=V]
//
// Writes are acknowledged only once committed by a quorum and fsynced.
func (s *Server) handleZnode(w http.ResponseWriter, r *http.Request) {
	path := znodePath(r)
	q := r.URL.Query()
	switch r.Method {
	case http.MethodGet:
		data, stat, zxid, err := s.node.Get(r.Context(), core.Read{Linearizable: q.Get("linearizable") != ""}, path)
		if err != nil {
			writeError(w, statusOf(err), err)
			return
		}
		w.Header().Set("X-Grove-Version", strconv.Itoa(int(stat.Version)))
		w.Header().Set("X-Grove-Zxid", strconv.FormatUint(zxid, 10))
		_, _ = w.Write(data)
	case http.MethodPut, http.MethodDelete:
		req := core.Request{Path: path, ACL: grove.OpenACLUnsafe, Version: -1}
		if v := q.Get("version"); v != "" {
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil {
				writeError(w, http.StatusBadRequest, grove.ErrBadArguments)
				return
			}
			req.Version = int32(n)
		}
		switch {
		case r.Method == http.MethodDelete:
			req.Op = core.OpDelete
		case q.Get("version") != "":
			req.Op = core.OpSetData
		default:
			req.Op = core.OpCreate
			if m := q.Get("mode"); m != "" {
				n, err := strconv.Atoi(m)
				if err != nil || !grove.CreateMode(n).Valid() || grove.CreateMode(n).IsEphemeral() {
					writeError(w, http.StatusBadRequest, grove.ErrBadArguments)
					return
				}
				req.Mode = grove.CreateMode(n)
			}
		}
		if r.Method == http.MethodPut {
			data, err := io.ReadAll(io.LimitReader(r.Body, int64(s.cfg.Core.MaxDataSize)+1))
			if err != nil {
				writeError(w, http.StatusBadRequest, err)
				return
			}
			req.Data = data
		}
		res, err := s.submitHTTP(r.Context(), &req)
		if err == nil {
			s.audit.Request("http", r.RemoteAddr, &req, res)
		}
		if err == nil {
			err = grove.CodeError(res.Code)
		}
		if err != nil {
			writeError(w, statusOf(err), err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"path": res.Path, "stat": res.Stat})
	default:
		writeError(w, http.StatusMethodNotAllowed, errMethod)
	}
}

// submitHTTP writes through the server's own session, in order.
func (s *Server) submitHTTP(ctx context.Context, req *core.Request) (*core.Result, error) {
	hs := &s.httpSess
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.id == 0 {
		info, err := s.node.CreateSession(ctx, time.Minute)
		if err != nil {
			return nil, err
		}
		hs.id, hs.seq = info.ID, 0
	}
	hs.seq++
	req.Session, req.Seq = hs.id, hs.seq
	res, err := s.node.Submit(ctx, req)
	if err != nil {
		// The outcome is unknown; a retry with a new seq could apply twice,
		// so start a fresh session for the next request.
		hs.id = 0
		return nil, err
	}
	if res.Code == grove.CodeSessionExpired {
		hs.id = 0
	}
	return res, nil
}

// keepHTTPSessionAlive touches the HTTP session (reconciler clock).
func (s *Server) keepHTTPSessionAlive() {
	s.httpSess.mu.Lock()
	id := s.httpSess.id
	s.httpSess.mu.Unlock()
	if id != 0 {
		s.node.Touch(id)
	}
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, grove.ErrNoNode):
		return http.StatusNotFound
	case errors.Is(err, grove.ErrNodeExists), errors.Is(err, grove.ErrBadVersion), errors.Is(err, grove.ErrNotEmpty):
		return http.StatusConflict
	case errors.Is(err, grove.ErrBadArguments), errors.Is(err, grove.ErrNoChildrenForEphemerals), errors.Is(err, grove.ErrInvalidACL):
		return http.StatusBadRequest
	case errors.Is(err, grove.ErrNoAuth):
		return http.StatusForbidden
	case errors.Is(err, grove.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return http.StatusGatewayTimeout
	}
	return http.StatusServiceUnavailable
}
