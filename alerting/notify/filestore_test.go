package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/ferrylogs/ferry/pipeline/atomicfile"
)

// FileStore keeps silences in one JSON file: the tests' store.
type FileStore struct {
	Path string
	mu   sync.Mutex
}

func (f *FileStore) Where() string { return f.Path }

func (f *FileStore) List(context.Context) ([]Silence, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.read()
}

func (f *FileStore) read() ([]Silence, error) {
	data, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var all []Silence
	if err := json.Unmarshal(data, &all); err != nil {
		return nil, fmt.Errorf("silences %s: %w", f.Path, err)
	}
	return all, nil
}

func (f *FileStore) Put(_ context.Context, s Silence) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	all, err := f.read()
	if err != nil {
		return err
	}
	i := slices.IndexFunc(all, func(x Silence) bool { return x.ID == s.ID })
	if i >= 0 {
		all[i] = s
	} else {
		all = append(all, s)
	}
	data, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(f.Path), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(f.Path, data)
}
