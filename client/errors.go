package client

import "errors"

// PathError is the error of a call on one znode: the operation, the path
// as the caller gave it, and the cause — a grove error, so
// errors.Is(err, grove.ErrNoNode) and the like see through it. Its message
// reads "get /app/config: grove: node does not exist".
type PathError struct {
	Op   string // "create", "get", "children", "multi create", ...
	Path string
	Err  error
}

func (e *PathError) Error() string { return e.Op + " " + e.Path + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *PathError) Unwrap() error { return e.Err }

// pathErr wraps err (if any) as the error of op on path; an error that
// already names a path is returned as it is.
func pathErr(op, path string, err error) error {
	if err == nil {
		return nil
	}
	var pe *PathError
	if errors.As(err, &pe) {
		return err
	}
	return &PathError{Op: op, Path: path, Err: err}
}
