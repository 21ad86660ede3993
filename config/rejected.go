package config

import (
	"errors"
	"log/slog"
)

// LogRejected logs why the configuration file at path was not reloaded:
// each error of the file on its own line, with its field, line and column.
func LogRejected(log *slog.Logger, path string, err error) {
	var errs Errors
	if !errors.As(err, &errs) {
		log.Error("configuration not reloaded; running with the previous one", "file", path, "err", err)
		return
	}
	for _, e := range errs {
		log.Error("configuration not reloaded: invalid field; running with the previous configuration",
			"file", e.File, "line", e.Line, "column", e.Column, "field", e.Path, "err", e.Msg)
	}
}
