//go:build !linux

package tail

// newNotifier returns fsnotify's notifier: there is no inotify here.
func newNotifier() (notifier, error) { return newFSNotifier() }
