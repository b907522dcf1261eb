package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Loopback clusters are secured by default with per-user secrets: a
// server whose peer and gossip addresses are all loopback and that is given
// no --cluster-key-file uses (creating it on first use) the cluster key in
// the user's configuration directory, and one whose HTTP address is
// loopback and that has no --token-file uses the user's HTTP token there.
// Every grove process of the same user (the servers of a development
// cluster, the CLI) finds the same files; other users of the machine, and
// anything else that can reach loopback ports (a container sharing the
// network, a web page's requests), cannot. --insecure turns the defaults
// off. Servers on other addresses must be given their secrets explicitly.

// Names of the per-user secret files.
const (
	defaultKeyName   = "cluster.key"
	defaultTokenName = "http.token"
)

// secretDir is where the per-user secrets live: $XDG_CONFIG_HOME/grove or
// ~/.config/grove.
func secretDir() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "grove"), nil
}

// defaultSecretFile returns the path of the per-user secret name, creating
// it with a fresh random secret (mode 0600, in a 0700 directory) if it
// does not exist. Concurrent first uses agree on one secret: each writes a
// temporary file and links it into place, and only one link succeeds.
func defaultSecretFile(name string) (string, error) {
	dir, err := secretDir()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	tmp, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return "", err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.WriteString(base64.StdEncoding.EncodeToString(raw) + "\n"); err != nil {
		_ = tmp.Close()
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("create %s: %w", path, err)
	}
	return path, nil
}

// defaultTokenFile is the per-user HTTP token the CLI sends when it is
// given no --token-file, if that file exists ("" otherwise).
func defaultTokenFile() string {
	dir, err := secretDir()
	if err != nil {
		return ""
	}
	path := filepath.Join(dir, defaultTokenName)
	if _, err := os.Stat(path); err != nil {
		return ""
	}
	return path
}
