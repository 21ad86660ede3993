package ops

import (
	"io"
	"log/slog"
	"strings"
)

// ParseLevel returns the slog level named "debug", "info", "warn" or
// "error" (any case); anything else is info.
func ParseLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// NewLevel returns a level variable set to the named level (see
// ParseLevel), for NewLoggerLevel.
func NewLevel(level string) *slog.LevelVar {
	v := new(slog.LevelVar)
	v.Set(ParseLevel(level))
	return v
}

// NewLoggerLevel is NewLogger with a level that may change while the
// process runs (a configuration reload): level.Set applies to every
// logger derived from the result.
func NewLoggerLevel(w io.Writer, level *slog.LevelVar, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
