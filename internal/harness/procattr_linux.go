package harness

import (
	"os/exec"
	"syscall"
)

// killWithParent asks the kernel to kill the child if the test process
// dies (for example on a test timeout), so no agent or MinIO outlives it.
func killWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
