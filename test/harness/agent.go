package harness

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// UniqueNode returns an agent node name (host.name) used by no earlier run,
// prefix-<test name>-<time>: data streams cannot be deleted on the test
// distribution, so every test counts its own documents by node.
func UniqueNode(tb testing.TB, prefix string) string {
	name := strings.ToLower(strings.TrimPrefix(tb.Name(), "Test"))
	return fmt.Sprintf("%s-%s-%s", prefix, name, strconv.FormatInt(time.Now().UnixNano(), 36))
}

// PositionsSum returns the sum of the offsets saved in the agent's
// positions.json in stateDir (0 while there is none).
func PositionsSum(stateDir string) (int64, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, "positions.json"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var f struct {
		Entries []struct {
			Offset int64 `json:"offset"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return 0, fmt.Errorf("positions.json: %w", err)
	}
	var sum int64
	for _, e := range f.Entries {
		sum += e.Offset
	}
	return sum, nil
}
