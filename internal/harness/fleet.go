package harness

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// Fleet starts a load balancer, then n agents on backend's bucket (each
// with cfg, whose Store and Env the backend's replace and extend), and
// puts them behind it, waiting until HAProxy sees every one UP. The agents
// start concurrently; each is ready (/readyz) before it is added.
//
// Agents advertise their own addresses (direct mode); SharedFleet's
// advertise the load balancer's.
func Fleet(t testing.TB, n int, backend Backend, cfg AgentConfig) ([]*Agent, *LoadBalancer) {
	t.Helper()
	return fleet(t, StartLoadBalancer(t), n, backend, cfg)
}

// SharedFleet is Fleet in shared-address mode: every agent advertises the
// load balancer's address to clients and its own as its peer address, so
// clients reach agents only through the load balancer.
func SharedFleet(t testing.TB, n int, backend Backend, cfg AgentConfig) ([]*Agent, *LoadBalancer) {
	t.Helper()
	lb := StartLoadBalancer(t)
	cfg.SharedAddr = lb.Addr()
	return fleet(t, lb, n, backend, cfg)
}

func fleet(t testing.TB, lb *LoadBalancer, n int, backend Backend, cfg AgentConfig) ([]*Agent, *LoadBalancer) {
	t.Helper()
	cfg.Store = backend.URL
	cfg.Env = append(append([]string(nil), backend.Env...), cfg.Env...)
	if cfg.Binary == "" {
		cfg.Binary = AgentBinary(t)
	}
	agents := make([]*Agent, n)
	errs := make([]error, n)
	done := make(chan int)
	for i := range agents {
		agents[i] = newTestAgent(t, cfg)
		go func() { errs[i] = agents[i].launch(); done <- i }()
	}
	for range agents {
		<-done
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("harness: fleet: %v", err)
	}
	lb.SetBackends(t, agents...)
	return agents, lb
}

// LaunchFleet is Fleet for programs that are not tests (cmd/bench): n
// agents launched concurrently with cfg (its Store and Env as given; an
// empty Binary builds ./cmd/agent), then a load balancer in front of them,
// returned once HAProxy sees every agent UP. It registers no cleanup: the
// caller kills the agents, removes their Dirs and closes the load balancer
// (Shutdown kills one left running). On error nothing is left running.
func LaunchFleet(n int, cfg AgentConfig) ([]*Agent, *LoadBalancer, error) {
	agents := make([]*Agent, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range agents {
		wg.Add(1)
		go func() { defer wg.Done(); agents[i], errs[i] = LaunchAgent(cfg) }()
	}
	wg.Wait()
	kill := func() {
		for _, a := range agents {
			if a != nil {
				a.Kill()
				os.RemoveAll(a.Dir)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		kill()
		return nil, nil, fmt.Errorf("fleet: %w", err)
	}
	lb, err := LaunchLoadBalancer(agents...)
	if err != nil {
		kill()
		return nil, nil, err
	}
	if err := lb.WaitUp(30*time.Second, agents...); err != nil {
		lb.Close()
		kill()
		return nil, nil, err
	}
	return agents, lb, nil
}
