package grove

import "fmt"

// EventType is the kind of a watch event. The values are ZooKeeper's.
type EventType int32

// Event types.
const (
	EventNone                EventType = -1 // a session state change, not a node change
	EventNodeCreated         EventType = 1
	EventNodeDeleted         EventType = 2
	EventNodeDataChanged     EventType = 3
	EventNodeChildrenChanged EventType = 4
)

// String returns the name of the EventType.
func (t EventType) String() string {
	switch t {
	case EventNone:
		return "None"
	case EventNodeCreated:
		return "NodeCreated"
	case EventNodeDeleted:
		return "NodeDeleted"
	case EventNodeDataChanged:
		return "NodeDataChanged"
	case EventNodeChildrenChanged:
		return "NodeChildrenChanged"
	}
	return fmt.Sprintf("EventType(%d)", int32(t))
}

// Event is a change to a znode, delivered to the sessions watching it.
type Event struct {
	Type EventType
	Path string
	Zxid int64 // the zxid of the change that triggered the event
}

// WatchKind is a kind of watch registration.
type WatchKind int32

// Watch kinds. Data watches are set by Get and Exists, child watches by
// Children; persistent watches by AddWatch stay until removed.
const (
	WatchData                WatchKind = 1
	WatchChildren            WatchKind = 2
	WatchPersistent          WatchKind = 3
	WatchPersistentRecursive WatchKind = 4
)

// String returns the name of the WatchKind.
func (k WatchKind) String() string {
	switch k {
	case WatchData:
		return "data"
	case WatchChildren:
		return "children"
	case WatchPersistent:
		return "persistent"
	case WatchPersistentRecursive:
		return "persistent_recursive"
	}
	return fmt.Sprintf("WatchKind(%d)", int32(k))
}
