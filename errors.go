package grove

import (
	"errors"
	"fmt"
)

// Code is the stable numeric code of a Grove error. Codes that ZooKeeper also
// defines use ZooKeeper's value; Grove-only codes live below -1000.
type Code int32

// Error codes. The ZooKeeper values are from ZooKeeper's KeeperException.Code.
const (
	CodeOK                      Code = 0
	CodeSystemError             Code = -1
	CodeRuntimeInconsistency    Code = -2
	CodeDataInconsistency       Code = -3
	CodeConnectionLoss          Code = -4
	CodeMarshallingError        Code = -5
	CodeUnimplemented           Code = -6
	CodeOperationTimeout        Code = -7
	CodeBadArguments            Code = -8
	CodeUnknownSession          Code = -12
	CodeAPIError                Code = -100
	CodeNoNode                  Code = -101
	CodeNoAuth                  Code = -102
	CodeBadVersion              Code = -103
	CodeNoChildrenForEphemerals Code = -108
	CodeNodeExists              Code = -110
	CodeNotEmpty                Code = -111
	CodeSessionExpired          Code = -112
	CodeInvalidCallback         Code = -113
	CodeInvalidACL              Code = -114
	CodeAuthFailed              Code = -115
	CodeSessionMoved            Code = -118
	CodeNotReadOnly             Code = -119
	CodeNoWatcher               Code = -121
	CodeRequestTimeout          Code = -122
	CodeQuotaExceeded           Code = -125
	CodeThrottledOp             Code = -127

	// Grove-only codes.
	CodeTooLarge      Code = -1001
	CodeStopped       Code = -1002
	CodeNotLeader     Code = -1003
	CodeOutOfOrder    Code = -1004
	CodeSessionClosed Code = -1005
	CodeBadRequest    Code = -1006
	CodeCorrupt       Code = -1007
	CodeNoLeader      Code = -1008
	CodeStaleRequest  Code = -1009
	CodeServerBehind  Code = -1010
)

// codeError is a sentinel error with a stable code.
type codeError struct {
	code Code
	msg  string
}

func (e *codeError) Error() string { return e.msg }

// Code returns the stable numeric code of the error.
func (e *codeError) Code() Code { return e.code }

func newError(c Code, msg string) error {
	e := &codeError{code: c, msg: msg}
	byCode[c] = e
	return e
}

var byCode = map[Code]*codeError{}

// Sentinel errors. Each is returned as is or wrapped with %w; test with
// errors.Is.
var (
	// ErrSystemError is a server-side failure that is not the caller's fault.
	ErrSystemError = newError(CodeSystemError, "grove: system error")
	// ErrRuntimeInconsistency marks the operations of a failed multi that ran
	// after the failing one and were therefore not attempted.
	ErrRuntimeInconsistency = newError(CodeRuntimeInconsistency, "grove: runtime inconsistency")
	// ErrDataInconsistency is ZooKeeper's data inconsistency error.
	ErrDataInconsistency = newError(CodeDataInconsistency, "grove: data inconsistency")
	// ErrConnectionLoss is returned when the connection to the server was lost
	// before an answer arrived; the outcome of a write is then unknown unless
	// the session retries it.
	ErrConnectionLoss = newError(CodeConnectionLoss, "grove: connection loss")
	// ErrMarshalling is returned for a request or entry that cannot be decoded.
	ErrMarshalling = newError(CodeMarshallingError, "grove: marshalling error")
	// ErrUnimplemented is returned for an unknown or unsupported operation.
	ErrUnimplemented = newError(CodeUnimplemented, "grove: unimplemented")
	// ErrOperationTimeout is returned when an operation did not finish in time.
	ErrOperationTimeout = newError(CodeOperationTimeout, "grove: operation timeout")
	// ErrBadArguments is returned for invalid arguments: a bad path, a bad
	// create mode, a bad TTL.
	ErrBadArguments = newError(CodeBadArguments, "grove: bad arguments")
	// ErrUnknownSession is returned for an operation on a session the cluster
	// does not know.
	ErrUnknownSession = newError(CodeUnknownSession, "grove: unknown session")
	// ErrAPIError is a generic API error.
	ErrAPIError = newError(CodeAPIError, "grove: api error")
	// ErrNoNode is returned when the addressed znode (or, for create, its
	// parent) does not exist.
	ErrNoNode = newError(CodeNoNode, "grove: node does not exist")
	// ErrNoAuth is returned when the session lacks the permission the
	// operation needs on the znode's ACL.
	ErrNoAuth = newError(CodeNoAuth, "grove: not authorized")
	// ErrBadVersion is returned by Set, Delete, SetACL and Check when the
	// expected version does not match the znode's current one.
	ErrBadVersion = newError(CodeBadVersion, "grove: version conflict")
	// ErrNoChildrenForEphemerals is returned when creating a child of an
	// ephemeral znode.
	ErrNoChildrenForEphemerals = newError(CodeNoChildrenForEphemerals, "grove: ephemeral nodes may not have children")
	// ErrNodeExists is returned when creating a znode that already exists.
	ErrNodeExists = newError(CodeNodeExists, "grove: node already exists")
	// ErrNotEmpty is returned when deleting a znode that has children.
	ErrNotEmpty = newError(CodeNotEmpty, "grove: node has children")
	// ErrSessionExpired is returned once the session has expired; its
	// ephemeral znodes are gone.
	ErrSessionExpired = newError(CodeSessionExpired, "grove: session expired")
	// ErrInvalidCallback is ZooKeeper's invalid callback error.
	ErrInvalidCallback = newError(CodeInvalidCallback, "grove: invalid callback")
	// ErrInvalidACL is returned for an empty ACL, an unknown scheme or a
	// malformed id.
	ErrInvalidACL = newError(CodeInvalidACL, "grove: invalid acl")
	// ErrAuthFailed is returned when AddAuth is given bad credentials.
	ErrAuthFailed = newError(CodeAuthFailed, "grove: authentication failed")
	// ErrSessionMoved is ZooKeeper's session moved error.
	ErrSessionMoved = newError(CodeSessionMoved, "grove: session moved")
	// ErrNotReadOnly is returned for a write to a read-only server.
	ErrNotReadOnly = newError(CodeNotReadOnly, "grove: not a read-only call")
	// ErrNoWatcher is returned when removing a watch that does not exist.
	ErrNoWatcher = newError(CodeNoWatcher, "grove: no such watcher")
	// ErrRequestTimeout is returned when a request waited too long.
	ErrRequestTimeout = newError(CodeRequestTimeout, "grove: request timeout")
	// ErrQuotaExceeded is returned when a quota is exceeded.
	ErrQuotaExceeded = newError(CodeQuotaExceeded, "grove: quota exceeded")
	// ErrThrottled is returned when the server sheds load.
	ErrThrottled = newError(CodeThrottledOp, "grove: throttled")

	// ErrTooLarge is returned for data, a request or a frame over its limit.
	ErrTooLarge = newError(CodeTooLarge, "grove: too large")
	// ErrStopped is returned by a node or session after Close.
	ErrStopped = newError(CodeStopped, "grove: stopped")
	// ErrNotLeader is returned for an operation only the leader can do.
	ErrNotLeader = newError(CodeNotLeader, "grove: not the leader")
	// ErrOutOfOrder is returned when a session request arrives ahead of an
	// earlier one of the same session; the session resends in order.
	ErrOutOfOrder = newError(CodeOutOfOrder, "grove: request out of order")
	// ErrSessionClosed is returned for an operation on a closed session.
	ErrSessionClosed = newError(CodeSessionClosed, "grove: session closed")
	// ErrBadRequest is returned for a malformed or unknown request.
	ErrBadRequest = newError(CodeBadRequest, "grove: bad request")
	// ErrCorrupt is returned for corrupt, truncated or foreign data.
	ErrCorrupt = newError(CodeCorrupt, "grove: corrupt data")
	// ErrStaleRequest answers a retried request so old that its original
	// result is no longer kept (more than the result window behind the
	// session's latest); whether it applied is unknown.
	ErrStaleRequest = newError(CodeStaleRequest, "grove: request too old to answer")
	// ErrNoLeader is returned when no leader emerged before the deadline.
	ErrNoLeader = newError(CodeNoLeader, "grove: no leader")
	// ErrServerBehind is a server's refusal of a client that has seen a
	// newer state than the server has applied; the client tries another.
	ErrServerBehind = newError(CodeServerBehind, "grove: server is behind the client")
)

// ErrorCode returns the stable code of err: CodeOK for nil, the code of the
// first sentinel found in err's chain, or CodeSystemError for any other error.
func ErrorCode(err error) Code {
	if err == nil {
		return CodeOK
	}
	var ce *codeError
	if errors.As(err, &ce) {
		return ce.code
	}
	return CodeSystemError
}

// CodeError returns the sentinel error for c: nil for CodeOK, the sentinel
// with that code, or an error wrapping ErrSystemError that names an unknown
// code.
func CodeError(c Code) error {
	if c == CodeOK {
		return nil
	}
	if e, ok := byCode[c]; ok {
		return e
	}
	return fmt.Errorf("grove: unknown error code %d: %w", c, ErrSystemError)
}
