package grove

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// sentinels lists every sentinel error with its code and, for the codes
// ZooKeeper also defines, the value of ZooKeeper's KeeperException.Code.
var sentinels = []struct {
	err  error
	code Code
	zk   int32 // 0: Grove-only
}{
	{ErrSystemError, CodeSystemError, -1},
	{ErrDataInconsistency, CodeDataInconsistency, -3},
	{ErrRuntimeInconsistency, CodeRuntimeInconsistency, -2},
	{ErrConnectionLoss, CodeConnectionLoss, -4},
	{ErrMarshalling, CodeMarshallingError, -5},
	{ErrUnimplemented, CodeUnimplemented, -6},
	{ErrOperationTimeout, CodeOperationTimeout, -7},
	{ErrBadArguments, CodeBadArguments, -8},
	{ErrUnknownSession, CodeUnknownSession, -12},
	{ErrAPIError, CodeAPIError, -100},
	{ErrNoNode, CodeNoNode, -101},
	{ErrNoAuth, CodeNoAuth, -102},
	{ErrBadVersion, CodeBadVersion, -103},
	{ErrNoChildrenForEphemerals, CodeNoChildrenForEphemerals, -108},
	{ErrNodeExists, CodeNodeExists, -110},
	{ErrNotEmpty, CodeNotEmpty, -111},
	{ErrSessionExpired, CodeSessionExpired, -112},
	{ErrInvalidCallback, CodeInvalidCallback, -113},
	{ErrInvalidACL, CodeInvalidACL, -114},
	{ErrAuthFailed, CodeAuthFailed, -115},
	{ErrSessionMoved, CodeSessionMoved, -118},
	{ErrNotReadOnly, CodeNotReadOnly, -119},
	{ErrNoWatcher, CodeNoWatcher, -121},
	{ErrRequestTimeout, CodeRequestTimeout, -122},
	{ErrQuotaExceeded, CodeQuotaExceeded, -125},
	{ErrThrottled, CodeThrottledOp, -127},

	{ErrTooLarge, CodeTooLarge, 0},
	{ErrStopped, CodeStopped, 0},
	{ErrNotLeader, CodeNotLeader, 0},
	{ErrOutOfOrder, CodeOutOfOrder, 0},
	{ErrSessionClosed, CodeSessionClosed, 0},
	{ErrBadRequest, CodeBadRequest, 0},
	{ErrCorrupt, CodeCorrupt, 0},
	{ErrNoLeader, CodeNoLeader, 0},
	{ErrStaleRequest, CodeStaleRequest, 0},
	{ErrServerBehind, CodeServerBehind, 0},
}

// codesWithoutSentinel are Code constants that have no sentinel error, so
// CodeError turns them into an "unknown code" error wrapping ErrSystemError.
var codesWithoutSentinel = map[Code]int32{}

func TestErrorCodeRoundTripsEverySentinel(t *testing.T) {
	if len(sentinels) != len(byCode) {
		t.Fatalf("the test lists %d sentinels, the package registers %d", len(sentinels), len(byCode))
	}
	seen := map[Code]error{}
	for _, s := range sentinels {
		t.Run(s.err.Error(), func(t *testing.T) {
			if prev, dup := seen[s.code]; dup {
				t.Fatalf("code %d used by %v and %v", s.code, prev, s.err)
			}
			seen[s.code] = s.err
			if s.zk != 0 && int32(s.code) != s.zk {
				t.Errorf("code %d, ZooKeeper's is %d", s.code, s.zk)
			}
			if s.zk == 0 && s.code > -1000 {
				t.Errorf("Grove-only code %d is not below -1000", s.code)
			}
			if msg := s.err.Error(); !strings.HasPrefix(msg, "grove: ") || strings.ToLower(msg) != msg {
				t.Errorf("message %q: want lower case with the grove: prefix", msg)
			}
			if got := ErrorCode(s.err); got != s.code {
				t.Errorf("ErrorCode = %d, want %d", got, s.code)
			}
			if got := CodeError(s.code); got != s.err { // identity is the point
				t.Errorf("CodeError(%d) = %v, want the sentinel itself", s.code, got)
			}
			wrapped := fmt.Errorf("core: get %q: %w", "/a", s.err)
			if got := ErrorCode(wrapped); got != s.code {
				t.Errorf("ErrorCode(wrapped) = %d, want %d", got, s.code)
			}
			// Across the wire: error → code → error keeps errors.Is.
			if back := CodeError(ErrorCode(wrapped)); !errors.Is(back, s.err) {
				t.Errorf("round trip of %v gave %v", wrapped, back)
			}
			if cd, ok := s.err.(interface{ Code() Code }); !ok || cd.Code() != s.code {
				t.Errorf("sentinel has no Code method returning %d", s.code)
			}
		})
	}
}

func TestErrorCodeEdges(t *testing.T) {
	if got := ErrorCode(nil); got != CodeOK {
		t.Errorf("ErrorCode(nil) = %d", got)
	}
	if err := CodeError(CodeOK); err != nil {
		t.Errorf("CodeError(CodeOK) = %v", err)
	}
	if got := ErrorCode(errors.New("disk on fire")); got != CodeSystemError {
		t.Errorf("ErrorCode(plain error) = %d, want CodeSystemError", got)
	}
	unknown := CodeError(-9999)
	if !errors.Is(unknown, ErrSystemError) || !strings.Contains(unknown.Error(), "-9999") || ErrorCode(unknown) != CodeSystemError {
		t.Errorf("CodeError(-9999) = %v", unknown)
	}
	// The first sentinel in the chain decides.
	if got := ErrorCode(fmt.Errorf("%w: %w", ErrNoNode, ErrStopped)); got != CodeNoNode {
		t.Errorf("ErrorCode of two wrapped sentinels = %d, want CodeNoNode", got)
	}
	if got := ErrorCode(errors.Join(errors.New("x"), ErrBadVersion)); got != CodeBadVersion {
		t.Errorf("ErrorCode(errors.Join) = %d, want CodeBadVersion", got)
	}
}

func TestCodesWithoutSentinel(t *testing.T) {
	for c, zk := range codesWithoutSentinel {
		if int32(c) != zk {
			t.Errorf("code %d, ZooKeeper's is %d", c, zk)
		}
		if _, ok := byCode[c]; ok {
			t.Errorf("code %d now has a sentinel: list it in sentinels instead", c)
		}
		if err := CodeError(c); !errors.Is(err, ErrSystemError) {
			t.Errorf("CodeError(%d) = %v, want an unknown-code error", c, err)
		}
	}
}
