package turn

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	pturn "github.com/pion/turn/v4"
)

// These tests push real traffic through the relay at the addresses it must
// not reach, and watch for it where it would land: a UDP listener of the
// test's own, or, for the relay's own TURN port (where the test cannot
// listen), the allocation that a relayed Allocate request would create.
// Each negative check is paired with a positive one on the same path, so
// that "nothing arrived" means "filtered", not "the test never sent it".

// hostIPv4 is an IPv4 address of this machine other than loopback and
// link-local: what a hub's LAN or public address is.
func hostIPv4(t *testing.T) net.IP {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skipf("interface addresses: %v", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() && !n.IP.IsLoopback() {
			return n.IP.To4()
		}
	}
	t.Skip("no non-loopback IPv4 address on this machine")
	return nil
}

// listenOutside binds a UDP socket on ip at a port outside the relay range
// and other than the TURN port: a stand-in for the homeserver, SSH or any
// other local service.
func listenOutside(t *testing.T, s *Server, ip net.IP) net.PacketConn {
	t.Helper()
	for range 100 {
		pc, err := net.ListenPacket("udp4", net.JoinHostPort(ip.String(), "0"))
		if err != nil {
			t.Fatal(err)
		}
		p := pc.LocalAddr().(*net.UDPAddr).Port
		if (p < s.cfg.MinPort || p > s.cfg.MaxPort) && p != s.UDPAddr().Port {
			t.Cleanup(func() { pc.Close() })
			return pc
		}
		pc.Close()
	}
	t.Fatal("no free port outside the relay range")
	return nil
}

// dial is a TURN client on a socket of its own, talking to the relay at
// srv; the socket is returned too, for hand-made requests on the same
// 5-tuple.
func dial(t *testing.T, srv *net.UDPAddr, user string) (*pturn.Client, net.PacketConn) {
	t.Helper()
	u, p := creds(user, time.Hour)
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := pturn.NewClient(&pturn.ClientConfig{
		STUNServerAddr: srv.String(), TURNServerAddr: srv.String(),
		Username: u, Password: p, Realm: "example.org", Conn: conn, RTO: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); conn.Close() })
	return c, conn
}

func allocate(t *testing.T, c *pturn.Client) net.PacketConn {
	t.Helper()
	r, err := c.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

var requestedUDP = stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}

// allocateProbe returns an authenticated Allocate request, valid for the
// relay at srv from any source address: pion's nonces are signed, not tied
// to the 5-tuple. If it reaches the relay's TURN port from a new source,
// the relay makes an allocation for that source, which Allocations shows
// without any answer having to come back.
func allocateProbe(t *testing.T, srv *net.UDPAddr, user string) []byte {
	t.Helper()
	u, p := creds(user, time.Hour)
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	req := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), requestedUDP, stun.Fingerprint)
	if _, err := pc.WriteTo(req.Raw, srv); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	_ = pc.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatalf("nonce: %v", err)
	}
	resp := &stun.Message{Raw: buf[:n]}
	var nonce stun.Nonce
	if err := resp.Decode(); err != nil {
		t.Fatalf("nonce: %v", err)
	}
	if err := nonce.GetFrom(resp); err != nil {
		t.Fatalf("no nonce in %v: %v", resp, err)
	}
	return stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), requestedUDP,
		stun.NewUsername(u), stun.NewRealm("example.org"), nonce,
		stun.NewLongTermIntegrity(u, "example.org", p), stun.Fingerprint).Raw
}

// peerAddress is an XOR-PEER-ADDRESS attribute.
type peerAddress struct{ *net.UDPAddr }

func (a peerAddress) AddTo(m *stun.Message) error {
	return stun.XORMappedAddress{IP: a.IP, Port: a.Port}.AddToAs(m, stun.AttrXORPeerAddress)
}

// sendIndication is a raw Send indication: what a client that ignores the
// refused permission would send instead of asking for one.
func sendIndication(peer *net.UDPAddr, data []byte) []byte {
	return stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication),
		peerAddress{peer}, stun.RawAttribute{Type: stun.AttrData, Value: data}, stun.Fingerprint).Raw
}

// expectNothing fails if pc receives a datagram within d.
func expectNothing(t *testing.T, pc net.PacketConn, d time.Duration, what string) {
	t.Helper()
	buf := make([]byte, 1600)
	_ = pc.SetReadDeadline(time.Now().Add(d))
	if n, from, err := pc.ReadFrom(buf); err == nil {
		t.Errorf("%s: %q arrived from %v", what, buf[:n], from)
	}
}

// readSkipping reads pc until want arrives, skipping only the datagrams
// named in skip; anything else fails the test.
func readSkipping(t *testing.T, pc net.PacketConn, want string, skip ...string) {
	t.Helper()
	buf := make([]byte, 1600)
	deadline := time.Now().Add(3 * time.Second)
next:
	for {
		_ = pc.SetReadDeadline(deadline)
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("waiting for %q: %v", want, err)
		}
		got := string(buf[:n])
		if got == want {
			return
		}
		for _, s := range skip {
			if got == s {
				continue next
			}
		}
		t.Fatalf("waiting for %q: %q arrived from %v", want, got, from)
	}
}

// waitAllocations waits up to d for the relay to hold want allocations,
// and returns how many it holds.
func waitAllocations(s *Server, want int, d time.Duration) int {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && s.Allocations() != want {
		time.Sleep(10 * time.Millisecond)
	}
	return s.Allocations()
}

// TestRelayRefusesOwnAndLoopback runs the relay as in production (loopback
// not admitted, private peers admitted as the default config does),
// listening on every interface, and tries to reach through it (a) the
// relay's own TURN port and another service on its own address, and
// (b) loopback peers, including the TURN port on 127.0.0.1.
func TestRelayRefusesOwnAndLoopback(t *testing.T) {
	host := hostIPv4(t)
	s := start(t, func(c *Config) {
		c.ListenIP = "0.0.0.0"
		c.ExternalIP = host.String()
		c.AllowPrivatePeers = true
		c.UnsafeAllowLoopbackPeersForTestsOnly = false
	})
	turnPort := s.UDPAddr().Port
	srv := &net.UDPAddr{IP: host, Port: turnPort}
	a, aconn := dial(t, srv, "@alice:example.org")
	b, _ := dial(t, srv, "@bob:example.org")
	ra, rb := allocate(t, a), allocate(t, b)

	// Positive control: two callers on this relay reach each other's relay
	// address, an own address with a port in the relay range.
	if _, err := ra.WriteTo([]byte("a1"), rb.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if _, err := rb.WriteTo([]byte("b1"), ra.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	readSkipping(t, ra, "b1")
	if _, err := ra.WriteTo([]byte("a2"), rb.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	readSkipping(t, rb, "a2", "a1")

	ownSvc := listenOutside(t, s, host)                    // e.g. the homeserver on the LAN address
	loopSvc := listenOutside(t, s, net.IPv4(127, 0, 0, 1)) // e.g. a service bound to localhost
	ownSvcAddr := ownSvc.LocalAddr().(*net.UDPAddr)
	loopSvcAddr := loopSvc.LocalAddr().(*net.UDPAddr)
	ownTURN := &net.UDPAddr{IP: host, Port: turnPort}
	loopTURN := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: turnPort}
	probe := allocateProbe(t, srv, "@mallory:example.org")

	// (b) Loopback: the permission is refused, so pion's client will not
	// send, and a hand-made Send indication without one is dropped.
	for _, peer := range []*net.UDPAddr{loopSvcAddr, loopTURN} {
		if err := a.CreatePermission(peer); err == nil {
			t.Errorf("permission for loopback peer %v granted", peer)
		}
		if _, err := ra.WriteTo([]byte("to loopback"), peer); err == nil {
			t.Errorf("write to loopback peer %v accepted", peer)
		}
		if _, err := aconn.WriteTo(sendIndication(peer, []byte("to loopback, raw")), srv); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := aconn.WriteTo(sendIndication(loopTURN, probe), srv); err != nil {
		t.Fatal(err)
	}

	// (a) Own addresses: the permission is granted (it is per IP, and the
	// callers above need it), but no datagram may reach a port outside the
	// relay range: not a local service, not the TURN port itself.
	if _, err := ra.WriteTo([]byte("to own service"), ownSvcAddr); err != nil {
		t.Fatalf("write to own service: %v", err) // dropped silently, as UDP
	}
	if _, err := ra.WriteTo(probe, ownTURN); err != nil {
		t.Fatalf("write to own TURN port: %v", err)
	}

	// Barrier: a datagram sent after all of the above, on the same path,
	// arrives; whatever was not filtered would have arrived before it.
	if _, err := ra.WriteTo([]byte("barrier a"), rb.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	readSkipping(t, rb, "barrier a")
	expectNothing(t, ownSvc, 200*time.Millisecond, "own-address service")
	expectNothing(t, loopSvc, 200*time.Millisecond, "loopback service")
	if n := waitAllocations(s, 3, 300*time.Millisecond); n != 2 {
		t.Errorf("a relayed Allocate reached the TURN port: %d allocations, want 2", n)
	}

	// Inbound: the same services sending to alice's relay address must
	// not reach her either; bob's datagram, sent after theirs, must be the
	// first she reads.
	if _, err := ownSvc.WriteTo([]byte("from own service"), ra.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if _, err := loopSvc.WriteTo([]byte("from loopback"), ra.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if _, err := rb.WriteTo([]byte("barrier b"), ra.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	readSkipping(t, ra, "barrier b")

	// The probe works when it does reach the TURN port (sent directly):
	// so the count above would have shown a leak.
	direct, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	if _, err := direct.WriteTo(probe, srv); err != nil {
		t.Fatal(err)
	}
	if n := waitAllocations(s, 3, 3*time.Second); n != 3 {
		t.Fatalf("the probe sent directly made %d allocations, want 3: the check above proves nothing", n)
	}
}

// TestRelayLoopbackTestMode: with the test-only loopback admission, a peer
// on 127.0.0.1 is reached, both ways, while the relay's own TURN port on
// 127.0.0.1 still is not.
func TestRelayLoopbackTestMode(t *testing.T) {
	s := start(t, nil) // 127.0.0.1, UnsafeAllowLoopbackPeersForTestsOnly
	srv := s.UDPAddr()
	a, _ := dial(t, srv, "@alice:example.org")
	ra := allocate(t, a)
	peer := listenOutside(t, s, net.IPv4(127, 0, 0, 1))
	peerAddr := peer.LocalAddr().(*net.UDPAddr)

	if _, err := ra.WriteTo([]byte("to peer"), peerAddr); err != nil {
		t.Fatal(err)
	}
	if from := read(t, peer, []byte("to peer")); from.String() != ra.LocalAddr().String() {
		t.Errorf("peer got it from %v, want the relay address %v", from, ra.LocalAddr())
	}
	if _, err := peer.WriteTo([]byte("to alice"), ra.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if from := read(t, ra, []byte("to alice")); from.String() != peerAddr.String() {
		t.Errorf("alice got it from %v, want the peer %v", from, peerAddr)
	}

	// The TURN port itself, on the same loopback address, stays out of
	// reach: a relayed Allocate makes no allocation.
	probe := allocateProbe(t, srv, "@mallory:example.org")
	if _, err := ra.WriteTo(probe, srv); err != nil {
		t.Fatal(err)
	}
	// Barrier: the peer's next datagram is relayed after the probe was.
	if _, err := ra.WriteTo([]byte("barrier"), peerAddr); err != nil {
		t.Fatal(err)
	}
	read(t, peer, []byte("barrier"))
	if n := waitAllocations(s, 2, 300*time.Millisecond); n != 1 {
		t.Errorf("a relayed Allocate reached the TURN port on loopback: %d allocations, want 1", n)
	}
	direct, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	if _, err := direct.WriteTo(probe, srv); err != nil {
		t.Fatal(err)
	}
	if n := waitAllocations(s, 2, 3*time.Second); n != 2 {
		t.Fatalf("the probe sent directly made %d allocations, want 2: the check above proves nothing", n)
	}
}

// TestOwnAddressesRefreshed: an address the host gains after the relay
// started (a DHCP lease that came late, a PPPoE reconnect, a new IPv6
// temporary address) becomes own at the next look, at most ownRefresh
// after the previous one, and one it loses stops being own.
func TestOwnAddressesRefreshed(t *testing.T) {
	var mu sync.Mutex
	var extra []net.Addr
	real := interfaceAddrs
	interfaceAddrs = func() ([]net.Addr, error) {
		addrs, err := real()
		mu.Lock()
		defer mu.Unlock()
		return append(addrs, extra...), err
	}
	t.Cleanup(func() { interfaceAddrs = real }) // runs after the relay's Close
	var clock atomic.Int64
	clock.Store(time.Unix(1000, 0).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	s := start(t, func(c *Config) {
		c.UnsafeAllowLoopbackPeersForTestsOnly = false
		c.Now = now
	})
	lease := net.IPv4(198, 51, 100, 7) // documentation address: public
	svc := &net.UDPAddr{IP: lease, Port: 53}
	if s.ownBlocked(svc) {
		t.Fatal("a public peer is blocked before the host has that address")
	}
	mu.Lock()
	extra = []net.Addr{&net.IPNet{IP: lease, Mask: net.CIDRMask(24, 32)}}
	mu.Unlock()
	if s.ownBlocked(svc) {
		t.Error("looked again before ownRefresh passed")
	}
	clock.Add(int64(ownRefresh))
	if !s.ownBlocked(svc) {
		t.Error("the new own address is still a peer after ownRefresh")
	}
	if s.ownBlocked(&net.UDPAddr{IP: lease, Port: s.cfg.MinPort}) {
		t.Error("the relay range on the new address is blocked")
	}
	// The address goes away (lease lost): a peer again, after a look.
	mu.Lock()
	extra = nil
	mu.Unlock()
	clock.Add(int64(ownRefresh))
	s.ownBlocked(&net.UDPAddr{IP: net.IPv4(8, 8, 8, 8), Port: 53}) // a miss: looks again
	if s.ownBlocked(svc) {
		t.Error("an address the host lost is still own")
	}
	// A failing interface listing keeps what was known.
	mu.Lock()
	extra = []net.Addr{&net.IPNet{IP: lease, Mask: net.CIDRMask(24, 32)}}
	mu.Unlock()
	clock.Add(int64(ownRefresh))
	if !s.ownBlocked(svc) {
		t.Fatal("the address, back again, is not own")
	}
	interfaceAddrs = func() ([]net.Addr, error) { return nil, errors.New("netlink: busy") }
	clock.Add(int64(ownRefresh))
	s.ownBlocked(&net.UDPAddr{IP: net.IPv4(8, 8, 8, 8), Port: 53}) // a miss: looks again, and fails
	if !s.ownBlocked(svc) {
		t.Error("a failed listing forgot the own addresses")
	}
}
