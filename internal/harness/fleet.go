package harness

import (
	"errors"
	"testing"
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
