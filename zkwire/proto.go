package zkwire

import "github.com/grovekit/grove"

// ZooKeeper opcodes.
const (
	opNotification      int32 = 0
	opCreate            int32 = 1
	opDelete            int32 = 2
	opExists            int32 = 3
	opGetData           int32 = 4
	opSetData           int32 = 5
	opGetACL            int32 = 6
	opSetACL            int32 = 7
	opGetChildren       int32 = 8
	opSync              int32 = 9
	opPing              int32 = 11
	opGetChildren2      int32 = 12
	opCheck             int32 = 13
	opMulti             int32 = 14
	opCreate2           int32 = 15
	opReconfig          int32 = 16
	opCheckWatches      int32 = 17
	opRemoveWatches     int32 = 18
	opCreateContainer   int32 = 19
	opDeleteContainer   int32 = 20
	opCreateTTL         int32 = 21
	opMultiRead         int32 = 22
	opAuth              int32 = 100
	opSetWatches        int32 = 101
	opSASL              int32 = 102
	opGetEphemerals     int32 = 103
	opGetAllChildrenNum int32 = 104
	opSetWatches2       int32 = 105
	opAddWatch          int32 = 106
	opWhoAmI            int32 = 107
	opCloseSession      int32 = -11
	opError             int32 = -1
)

// Special xids.
const (
	xidNotification int32 = -1
	xidPing         int32 = -2
	xidAuth         int32 = -4
	xidSetWatches   int32 = -8
)

// stateSyncConnected is the keeper state every watch notification carries.
const stateSyncConnected int32 = 3

// Watcher types of checkWatches/removeWatches.
const (
	watcherChildren            int32 = 1
	watcherData                int32 = 2
	watcherAny                 int32 = 3
	watcherPersistent          int32 = 4
	watcherPersistentRecursive int32 = 5
)

// watchKind maps a ZooKeeper watcher type to Grove's (0: any).
func watchKind(t int32) (grove.WatchKind, bool) {
	switch t {
	case watcherChildren:
		return grove.WatchChildren, true
	case watcherData:
		return grove.WatchData, true
	case watcherAny:
		return 0, true
	case watcherPersistent:
		return grove.WatchPersistent, true
	case watcherPersistentRecursive:
		return grove.WatchPersistentRecursive, true
	}
	return 0, false
}

// zkCode turns a Grove error code into the ZooKeeper code a ZooKeeper
// client understands. Codes Grove shares with ZooKeeper pass unchanged.
func zkCode(c grove.Code) grove.Code {
	switch c {
	case grove.CodeTooLarge:
		return grove.CodeBadArguments
	case grove.CodeSessionClosed:
		return grove.CodeSessionExpired
	case grove.CodeBadRequest:
		return grove.CodeMarshallingError
	}
	if c < -1000 {
		return grove.CodeSystemError
	}
	return c
}

// isWrite reports whether an opcode changes state.
func isWrite(op int32) bool {
	switch op {
	case opCreate, opCreate2, opCreateContainer, opCreateTTL, opDelete, opSetData, opSetACL, opCheck, opMulti:
		return true
	}
	return false
}

// opNames are ZooKeeper's names of its opcodes (OpCode.java), for metrics.
var opNames = map[int32]string{
	opNotification: "notification", opCreate: "create", opDelete: "delete", opExists: "exists",
	opGetData: "getData", opSetData: "setData", opGetACL: "getACL", opSetACL: "setACL",
	opGetChildren: "getChildren", opSync: "sync", opPing: "ping", opGetChildren2: "getChildren2",
	opCheck: "check", opMulti: "multi", opCreate2: "create2", opReconfig: "reconfig",
	opCheckWatches: "checkWatches", opRemoveWatches: "removeWatches", opCreateContainer: "createContainer",
	opDeleteContainer: "deleteContainer", opCreateTTL: "createTTL", opMultiRead: "multiRead",
	opAuth: "auth", opSetWatches: "setWatches", opSASL: "sasl", opGetEphemerals: "getEphemerals",
	opGetAllChildrenNum: "getAllChildrenNumber", opSetWatches2: "setWatches2", opAddWatch: "addWatch",
	opWhoAmI: "whoAmI", opCloseSession: "closeSession",
}

// opName names op for metrics; an opcode ZooKeeper does not have is
// "unknown", so a client cannot mint new label values.
func opName(op int32) string {
	if name, ok := opNames[op]; ok {
		return name
	}
	return "unknown"
}
