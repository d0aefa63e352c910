package turn

import (
	"errors"
	"net"
	"sync"
	"time"

	pturn "github.com/pion/turn/v4"
)

var errAllocationCap = errors.New("turn: allocation cap reached")

// relayGen wraps pion's port-range generator: it enforces the total
// allocation cap exactly (it counts open relay sockets) and wraps each
// relay socket in relayConn, which applies the own-address filter and the
// bandwidth caps to every relayed datagram.
type relayGen struct {
	s     *Server
	inner *pturn.RelayAddressGeneratorPortRange
}

func (g *relayGen) Validate() error { return g.inner.Validate() }

func (g *relayGen) AllocatePacketConn(network string, port int) (net.PacketConn, net.Addr, error) {
	s := g.s
	s.mu.Lock()
	if s.closed || s.allocs >= s.cfg.MaxAllocations {
		s.mu.Unlock()
		return nil, nil, errAllocationCap
	}
	s.allocs++
	s.mu.Unlock()
	pc, addr, err := g.inner.AllocatePacketConn(network, port)
	if err != nil {
		s.release()
		return nil, nil, err
	}
	rc := &relayConn{PacketConn: pc, s: s}
	if s.cfg.AllocationBytesPerSec > 0 {
		rc.out = newBucket(s.cfg.AllocationBytesPerSec, s.cfg.Now)
		rc.in = newBucket(s.cfg.AllocationBytesPerSec, s.cfg.Now)
	}
	return rc, addr, nil
}

// AllocateConn would make a TCP relay (RFC 6062); Lichen relays UDP only
// (what WebRTC uses), also for clients that reach the relay over TCP.
func (g *relayGen) AllocateConn(string, int) (net.Conn, net.Addr, error) {
	return nil, nil, errors.New("turn: TCP relays are not supported")
}

func (s *Server) release() {
	s.mu.Lock()
	s.allocs--
	s.mu.Unlock()
}

type relayConn struct {
	net.PacketConn
	s       *Server
	in, out *bucket
	once    sync.Once
}

// WriteTo sends a client's datagram to a peer. Dropped datagrams report
// success: UDP gives no delivery signal, and an error would make pion
// log and answer the client for every packet over the cap.
func (c *relayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.s.ownBlocked(addr) || !c.out.take(len(p)) || !c.s.total.take(len(p)) {
		return len(p), nil
	}
	return c.PacketConn.WriteTo(p, addr)
}

// ReadFrom returns the next admitted datagram from a peer.
func (c *relayConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		if c.s.ownBlocked(addr) || !c.in.take(n) || !c.s.total.take(n) {
			continue
		}
		return n, addr, nil
	}
}

func (c *relayConn) Close() error {
	err := c.PacketConn.Close()
	c.once.Do(c.s.release)
	return err
}

// bucket is a token bucket of bytes with one second of burst. A nil
// bucket admits everything.
type bucket struct {
	mu     sync.Mutex
	rate   float64
	tokens float64
	last   time.Time
	now    func() time.Time
}

func newBucket(bytesPerSec int, now func() time.Time) *bucket {
	return &bucket{rate: float64(bytesPerSec), tokens: float64(bytesPerSec), last: now(), now: now}
}

func (b *bucket) take(n int) bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.now()
	b.tokens += t.Sub(b.last).Seconds() * b.rate
	b.last = t
	if b.tokens > b.rate {
		b.tokens = b.rate
	}
	if b.tokens < float64(n) {
		return false
	}
	b.tokens -= float64(n)
	return true
}
