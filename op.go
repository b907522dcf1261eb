package grove

import "strconv"

// OpType is the kind of one operation of a Multi.
type OpType int32

// Operation kinds, with ZooKeeper's opcodes.
const (
	OpCreate OpType = 1
	OpDelete OpType = 2
	OpSet    OpType = 5
	OpCheck  OpType = 13
)

// String names the kind: "create", "delete", "set" or "check".
func (t OpType) String() string {
	switch t {
	case OpCreate:
		return "create"
	case OpDelete:
		return "delete"
	case OpSet:
		return "set"
	case OpCheck:
		return "check"
	}
	return "op(" + strconv.Itoa(int(t)) + ")"
}

// Op is one operation of a Multi. Build it with CreateOp, DeleteOp, SetOp
// or CheckOp.
type Op struct {
	Type    OpType
	Path    string
	Data    []byte     // OpCreate, OpSet
	ACL     []ACL      // OpCreate
	Mode    CreateMode // OpCreate
	TTL     int64      // OpCreate with a TTL mode, milliseconds
	Version int32      // OpDelete, OpSet, OpCheck; -1 matches any version
	// NullData marks the data of an OpCreate or OpSet as null (ZooKeeper's
	// length -1), which reads give back as nil, apart from empty data.
	NullData bool `msgpack:",omitempty"`
}

// CreateOp returns a create operation.
func CreateOp(path string, data []byte, mode CreateMode, acl []ACL) Op {
	return Op{Type: OpCreate, Path: path, Data: data, Mode: mode, ACL: acl}
}

// CreateTTLOp returns a create operation for a TTL node; ttlMillis must be
// in (0, MaxTTL].
func CreateTTLOp(path string, data []byte, mode CreateMode, acl []ACL, ttlMillis int64) Op {
	return Op{Type: OpCreate, Path: path, Data: data, Mode: mode, ACL: acl, TTL: ttlMillis}
}

// DeleteOp returns a delete operation; version -1 matches any version.
func DeleteOp(path string, version int32) Op {
	return Op{Type: OpDelete, Path: path, Version: version}
}

// SetOp returns a set-data operation; version -1 matches any version.
func SetOp(path string, data []byte, version int32) Op {
	return Op{Type: OpSet, Path: path, Data: data, Version: version}
}

// CheckOp returns an operation that fails the multi with ErrBadVersion
// unless path's data version is version (or ErrNoNode if it is missing).
func CheckOp(path string, version int32) Op {
	return Op{Type: OpCheck, Path: path, Version: version}
}

// OpResult is the outcome of one operation of a Multi. Err is nil on
// success; in a failed multi the failing operation carries its error,
// earlier ones nil (rolled back) and later ones ErrRuntimeInconsistency.
type OpResult struct {
	Type OpType
	Path string // OpCreate: the created path (with any sequence suffix)
	Stat *Stat  // OpCreate, OpSet: the new Stat
	Err  error
}
