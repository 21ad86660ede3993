// Package leader runs a function on exactly one aggregator replica at a
// time: the holder of a Kubernetes Lease (client-go tools/leaderelection),
// or, without Kubernetes, this process alone.
package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/ferrylogs/ferry/config"
	"github.com/ferrylogs/ferry/pipeline/kube"
)

// Check returns an error when leader election is required (enabled true)
// and the API server's configuration cannot be had.
func Check(c config.LeaderElection) error {
	if c.Enabled != "true" {
		return nil
	}
	if _, err := kube.RESTConfig(kube.Config{Enabled: c.Enabled, Kubeconfig: c.Kubeconfig}); err != nil {
		return fmt.Errorf("alerting.leader_election: %w", err)
	}
	return nil
}

// Run calls lead with a context that ends when this replica stops leading
// (or ctx ends), each time it becomes the leader, until ctx ends. With
// leader election off (enabled false, or auto outside a cluster without a
// kubeconfig) it calls lead once with ctx. The Lease is released when ctx
// ends, so another replica takes over at once.
func Run(ctx context.Context, c config.LeaderElection, log *slog.Logger, lead func(ctx context.Context)) error {
	if c.Enabled == "false" {
		log.Info("alerting: leader election off; this aggregator evaluates alone")
		lead(ctx)
		return nil
	}
	rc, err := kube.RESTConfig(kube.Config{Enabled: c.Enabled, Kubeconfig: c.Kubeconfig})
	if errors.Is(err, kube.ErrOff) {
		log.Info("alerting: no Kubernetes API server; this aggregator evaluates alone", "reason", err)
		lead(ctx)
		return nil
	}
	if err != nil {
		return fmt.Errorf("alerting leader election: %w", err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("alerting leader election: %w", err)
	}
	id := c.Identity
	if id == "" {
		id = os.Getenv("POD_NAME")
	}
	if id == "" {
		id, _ = os.Hostname()
	}
	ns := c.Namespace
	if ns == "" {
		ns = os.Getenv("POD_NAMESPACE")
	}
	if ns == "" {
		ns = "default"
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: c.Lease, Namespace: ns},
		Client:     cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	log.Info("alerting: leader election", "lease", ns+"/"+c.Lease, "identity", id)
	for ctx.Err() == nil {
		leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   time.Duration(c.LeaseDuration),
			RenewDeadline:   time.Duration(c.RenewDeadline),
			RetryPeriod:     time.Duration(c.RetryPeriod),
			ReleaseOnCancel: true,
			Name:            c.Lease,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(lctx context.Context) {
					log.Info("alerting: leading; evaluating rules", "identity", id)
					lead(lctx)
				},
				OnStoppedLeading: func() { log.Info("alerting: not leading", "identity", id) },
				OnNewLeader: func(who string) {
					if who != id {
						log.Info("alerting: another replica leads", "leader", who)
					}
				},
			},
		})
	}
	return nil
}
