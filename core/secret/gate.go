package secret

import "sync"

// hashGate bounds how many password hashes are computed at once.
//
// Each argon2id computation allocates its whole memory cost up front (19 MiB
// with the current parameters) and keeps it until it ends. On a 256 MB board,
// eight clients logging in at once (a household's phones reconnecting after
// the hub reboots) would need ~150 MiB for hashing alone, enough to push the
// server into swap or the OOM killer. Queueing the excess instead costs each
// waiting login one hash time (~tens of ms here, a few hundred on a Pi) and
// caps the spike at limit × 19 MiB. bcrypt needs little memory but is just as
// CPU-bound, so it waits at the same gate: a burst of logins should not
// starve the cores that serve /sync.
var hashGate = newGate(2)

// SetConcurrency sets how many password hashes (argon2id or bcrypt) may be
// computed at the same time; the default is 2. Values below 1 mean 1. It may
// be called at any time: hashes already running finish, and waiters are
// admitted as soon as the running count is under the new limit.
func SetConcurrency(n int) { hashGate.setLimit(n) }

// gate is a counting semaphore whose limit can change while it is in use.
type gate struct {
	mu     sync.Mutex
	cond   sync.Cond
	limit  int
	active int
}

func newGate(limit int) *gate {
	g := &gate{limit: max(limit, 1)}
	g.cond.L = &g.mu
	return g
}

func (g *gate) acquire() {
	g.mu.Lock()
	for g.active >= g.limit {
		g.cond.Wait()
	}
	g.active++
	g.mu.Unlock()
}

func (g *gate) release() {
	g.mu.Lock()
	g.active--
	g.mu.Unlock()
	g.cond.Signal()
}

func (g *gate) setLimit(n int) {
	g.mu.Lock()
	g.limit = max(n, 1)
	g.mu.Unlock()
	g.cond.Broadcast()
}
