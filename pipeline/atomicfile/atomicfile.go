// Package atomicfile replaces small files so that a crash leaves either the
// old or the new content, never a torn one: write a temporary file in the
// same directory, fsync it, rename it over the target, fsync the directory.
//
// Errors name each file once: the *os.PathError (or *os.LinkError) of the
// failed call is returned as it is, since it already says which call failed
// on which file ("write /d/.f.tmp123: no space left on device").
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces path with data.
func Write(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err // "open /d/.f.tmp*: …"
	}
	name := tmp.Name()
	defer os.Remove(name) // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, path); err != nil {
		return err // "rename /d/.f.tmp123 /d/f: …"
	}
	return SyncDir(dir)
}

// SyncDir makes the creation, removal or renaming of files in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync() // "sync /d: …"
}
