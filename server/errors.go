package server

// ConfigError marks a start-up failure that is the operator's to fix: a bad
// setting, an unusable or foreign data dir, an address that cannot be
// listened on. Its message is the wrapped error's. Test with errors.As.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *ConfigError) Unwrap() error { return e.Err }

func configErr(err error) error {
	if err == nil {
		return nil
	}
	return &ConfigError{Err: err}
}
