// Package harness holds what Barge's integration tests share: a real agent
// binary started on loopback ports (StartAgent), one MinIO server per test
// process (StartMinIO), the list of bucket backends every behaviour test
// runs against (Backends), a real HAProxy in front of a set of agents
// (StartLoadBalancer, and Fleet for n agents on one bucket behind one),
// and a polling Eventually.
//
// A test package that uses MinIO must stop it at exit:
//
//	func TestMain(m *testing.M) { harness.Main(m) }
//
// Nothing here sleeps for a fixed time: every wait polls a condition with a
// deadline, so tests pass on a loaded two-core machine.
package harness
