// Package turn is Lichen's embedded TURN/STUN relay (pion/turn/v4): UDP and
// TCP listeners on one port, UDP relays from a port range, and the TURN
// REST credential scheme of core/voip (the homeserver hands out
// "<expiry>:<user>" usernames whose password is an HMAC of a secret it
// shares with the relay). It is the only package that imports pion/turn.
//
// Safety. A TURN relay lets an authenticated client send UDP from the
// relay host to any address it names, so the relay would otherwise be a
// way into the hub's own services and its LAN. The peer filter (Server.
// permitted, installed as pion's PermissionHandler, so it governs
// CreatePermission and ChannelBind; pion refuses Send/ChannelData and
// drops inbound peer packets without a permission) always refuses
// loopback, link-local, multicast, broadcast and unspecified peers.
// The relay's own addresses (every interface address and the external
// address) are admitted at the permission level only because two callers
// on the same relay talk to each other's relay address; every relayed
// datagram to or from an own address is dropped unless its port is in
// the relay port range, so the TURN port, the homeserver and any other
// local service stay unreachable through the relay. The interface
// addresses are looked up again (at most once a second, when a datagram's
// address is not a known own one), because a board's addresses change
// while it runs: it often starts before its DHCP lease or PPPoE link is
// up, PPPoE reconnects bring new public addresses, and IPv6 temporary
// addresses rotate.
package turn

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/logging"
	pturn "github.com/pion/turn/v4"

	"github.com/lichen-hs/lichen/core/voip"
)

// Config configures the relay. Zero values take the defaults noted.
type Config struct {
	// ListenIP is the address the UDP and TCP listeners bind
	// (default 0.0.0.0, all interfaces).
	ListenIP string
	// Port is the TURN/STUN port for UDP and TCP (default 3478; 0 in
	// tests picks a free port, the same for UDP and TCP when possible).
	Port int
	// RelayIP is the address relay sockets bind (default ListenIP).
	RelayIP string
	// ExternalIP is the address advertised to clients as the relayed
	// address: the hub's public or LAN address. Default: ListenIP when
	// that is a specific address, else the address of the interface that
	// carries the default route.
	ExternalIP string
	// MinPort and MaxPort bound the relay ports (default 49160-49200:
	// 41 ports, which also bounds the allocations the host can hold).
	MinPort, MaxPort int
	// Realm is the TURN realm (the wiring passes the server name).
	Realm string
	// Secret is the shared secret of the credential scheme. Required.
	Secret []byte

	// AllowPrivatePeers admits peers in RFC 1918, RFC 6598 (CGNAT) and
	// ULA (fc00::/7) ranges. A home hub's callers are usually on its LAN,
	// and their ICE candidates are private addresses, so the default
	// config turns it on; the cost is that any user with credentials can
	// send UDP through the relay to any host on the hub's private
	// networks (the router's admin port, printers, cameras). Turn it off
	// when the hub serves users you do not trust with LAN access; calls
	// between LAN callers still work directly via host candidates.
	AllowPrivatePeers bool
	// MaxAllocationsPerUser caps a user's live allocations (0: 10).
	MaxAllocationsPerUser int
	// MaxAllocations caps live allocations in total (0: 100). Every
	// allocation also needs a port from the range.
	MaxAllocations int
	// AllocationBytesPerSec caps relayed payload per allocation, each
	// direction separately (0: unlimited). TotalBytesPerSec caps the sum
	// over all allocations and both directions (0: unlimited). Packets
	// over the cap are dropped, as a congested UDP path would; TURN
	// control traffic is not counted.
	AllocationBytesPerSec int
	TotalBytesPerSec      int

	// UnsafeAllowLoopbackPeersForTestsOnly admits 127.0.0.0/8 and ::1
	// peers (and stops treating loopback as an own address) so that tests
	// can relay between clients on one machine. The relay's own TURN port
	// stays unreachable on loopback even then. Never set it in
	// production: a relay user could then reach every loopback service.
	UnsafeAllowLoopbackPeersForTestsOnly bool

	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log receives relay events (default slog.Default()).
	Log *slog.Logger
}

// Defaults of Config.
const (
	DefaultPort                  = 3478
	DefaultMinPort               = 49160
	DefaultMaxPort               = 49200
	DefaultMaxAllocationsPerUser = 10
	DefaultMaxAllocations        = 100
)

// Server is a running relay.
type Server struct {
	cfg     Config
	srv     *pturn.Server
	udpAddr *net.UDPAddr
	tcpAddr *net.TCPAddr
	total   *bucket

	// own is the set of the host's addresses (IP strings), replaced
	// whole on each refresh; fixedOwn are the configured ones, always in
	// it; ownNext is when (UnixNano) a miss may next refresh it.
	own      atomic.Pointer[map[string]bool]
	fixedOwn []net.IP
	ownNext  atomic.Int64

	mu      sync.Mutex
	perUser map[string]int
	allocs  int
	closed  bool
}

// Start opens the listeners and starts relaying.
func Start(cfg Config) (*Server, error) {
	if len(cfg.Secret) == 0 {
		return nil, errors.New("turn: no shared secret")
	}
	if cfg.ListenIP == "" {
		cfg.ListenIP = "0.0.0.0"
	}
	if cfg.RelayIP == "" {
		cfg.RelayIP = cfg.ListenIP
	}
	if cfg.MinPort == 0 && cfg.MaxPort == 0 {
		cfg.MinPort, cfg.MaxPort = DefaultMinPort, DefaultMaxPort
	}
	if cfg.MinPort <= 0 || cfg.MaxPort > 65535 || cfg.MinPort > cfg.MaxPort {
		return nil, fmt.Errorf("turn: bad relay port range %d-%d", cfg.MinPort, cfg.MaxPort)
	}
	if cfg.Port >= cfg.MinPort && cfg.Port <= cfg.MaxPort {
		return nil, fmt.Errorf("turn: port %d is inside the relay range %d-%d", cfg.Port, cfg.MinPort, cfg.MaxPort)
	}
	if cfg.MaxAllocationsPerUser == 0 {
		cfg.MaxAllocationsPerUser = DefaultMaxAllocationsPerUser
	}
	if cfg.MaxAllocations == 0 {
		cfg.MaxAllocations = DefaultMaxAllocations
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	listenIP := net.ParseIP(cfg.ListenIP)
	if listenIP == nil {
		return nil, fmt.Errorf("turn: listen address %q is not an IP", cfg.ListenIP)
	}
	if cfg.ExternalIP == "" {
		if !listenIP.IsUnspecified() {
			cfg.ExternalIP = cfg.ListenIP
		} else if ip := outboundIP(); ip != nil {
			cfg.ExternalIP = ip.String()
		} else {
			return nil, errors.New("turn: no external address configured and none detected")
		}
	}
	extIP := net.ParseIP(cfg.ExternalIP)
	if extIP == nil {
		return nil, fmt.Errorf("turn: external address %q is not an IP", cfg.ExternalIP)
	}
	s := &Server{cfg: cfg, perUser: map[string]int{}}
	if cfg.TotalBytesPerSec > 0 {
		s.total = newBucket(cfg.TotalBytesPerSec, cfg.Now)
	}
	s.fixedOwn = []net.IP{listenIP, extIP, net.ParseIP(cfg.RelayIP)}
	s.own.Store(&map[string]bool{})
	s.refreshOwn()
	s.ownNext.Store(cfg.Now().Add(ownRefresh).UnixNano())

	udp, err := net.ListenPacket("udp", net.JoinHostPort(cfg.ListenIP, strconv.Itoa(cfg.Port)))
	if err != nil {
		return nil, fmt.Errorf("turn: %w", err)
	}
	s.udpAddr = udp.LocalAddr().(*net.UDPAddr)
	tcp, err := net.Listen("tcp", net.JoinHostPort(cfg.ListenIP, strconv.Itoa(s.udpAddr.Port)))
	if err != nil {
		udp.Close()
		return nil, fmt.Errorf("turn: %w", err)
	}
	s.tcpAddr = tcp.Addr().(*net.TCPAddr)

	gen := &relayGen{s: s, inner: &pturn.RelayAddressGeneratorPortRange{
		RelayAddress: extIP,
		Address:      cfg.RelayIP,
		MinPort:      uint16(cfg.MinPort),
		MaxPort:      uint16(cfg.MaxPort),
	}}
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelError
	s.srv, err = pturn.NewServer(pturn.ServerConfig{
		Realm:         cfg.Realm,
		LoggerFactory: lf,
		AuthHandler:   s.auth,
		QuotaHandler:  s.quota,
		EventHandler: pturn.EventHandler{
			OnAllocationCreated: func(_, _ net.Addr, _, username, _ string, relay net.Addr, _ int) {
				if _, user, err := voip.Expiry(username); err == nil {
					s.mu.Lock()
					s.perUser[user]++
					s.mu.Unlock()
				}
			},
			OnAllocationDeleted: func(_, _ net.Addr, _, username, _ string) {
				if _, user, err := voip.Expiry(username); err == nil {
					s.mu.Lock()
					if s.perUser[user]--; s.perUser[user] <= 0 {
						delete(s.perUser, user)
					}
					s.mu.Unlock()
				}
			},
		},
		PacketConnConfigs: []pturn.PacketConnConfig{{PacketConn: udp, RelayAddressGenerator: gen, PermissionHandler: s.permitted}},
		ListenerConfigs:   []pturn.ListenerConfig{{Listener: tcp, RelayAddressGenerator: gen, PermissionHandler: s.permitted}},
	})
	if err != nil {
		udp.Close()
		tcp.Close()
		return nil, fmt.Errorf("turn: %w", err)
	}
	cfg.Log.Info("turn relay listening", "udp", s.udpAddr.String(), "tcp", s.tcpAddr.String(),
		"external", cfg.ExternalIP, "relay_ports", fmt.Sprintf("%d-%d", cfg.MinPort, cfg.MaxPort),
		"private_peers", cfg.AllowPrivatePeers)
	if cfg.UnsafeAllowLoopbackPeersForTestsOnly {
		cfg.Log.Warn("turn relay admits loopback peers (test-only setting)")
	}
	return s, nil
}

var _ io.Closer = (*Server)(nil)

// Close stops the listeners and frees every allocation.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	return s.srv.Close()
}

// UDPAddr and TCPAddr are the bound listener addresses.
func (s *Server) UDPAddr() *net.UDPAddr { return s.udpAddr }

// TCPAddr is the bound TCP listener address.
func (s *Server) TCPAddr() *net.TCPAddr { return s.tcpAddr }

// Allocations is the number of live allocations.
func (s *Server) Allocations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.allocs
}

// ownRefresh is how often, at most, a datagram to an address that is not
// a known own one makes the relay look at the interface addresses again:
// a netlink dump (26 µs on an x86 laptop-class host, a few times that on a
// board), done in the datagram's path so that the datagram which finds
// the set stale is judged by the fresh one.
const ownRefresh = time.Second

// interfaceAddrs lists the host's addresses (a variable for tests).
var interfaceAddrs = net.InterfaceAddrs

// refreshOwn rebuilds the set of own addresses. When the interfaces
// cannot be listed, the previous set stays.
func (s *Server) refreshOwn() {
	addrs, err := interfaceAddrs()
	if err != nil {
		return
	}
	own := map[string]bool{}
	add := func(ip net.IP) {
		if ip == nil || ip.IsUnspecified() {
			return
		}
		if ip.IsLoopback() && s.cfg.UnsafeAllowLoopbackPeersForTestsOnly {
			return
		}
		own[ip.String()] = true // a v4-mapped IPv6 address prints as IPv4
	}
	for _, ip := range s.fixedOwn {
		add(ip)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			add(n.IP)
		}
	}
	s.own.Store(&own)
}

// isOwn says whether ip is one of the host's addresses. A miss looks
// again when the set is more than ownRefresh old: one caller refreshes,
// the others answer from the set they have.
func (s *Server) isOwn(ip net.IP) bool {
	key := ip.String()
	if (*s.own.Load())[key] {
		return true
	}
	now, next := s.cfg.Now().UnixNano(), s.ownNext.Load()
	if now < next || !s.ownNext.CompareAndSwap(next, now+int64(ownRefresh)) {
		return false
	}
	s.refreshOwn()
	return (*s.own.Load())[key]
}

// auth is pion's AuthHandler: the long-term key of a valid, unexpired
// REST username. A forged password fails pion's message-integrity check
// against this key; an expired or malformed username gets no key at all.
func (s *Server) auth(username, realm string, src net.Addr) ([]byte, bool) {
	if _, err := voip.Check(username, s.cfg.Now()); err != nil {
		s.cfg.Log.Debug("turn auth refused", "username", username, "src", src.String(), "err", err)
		return nil, false
	}
	return pturn.GenerateAuthKey(username, realm, voip.Password(s.cfg.Secret, username)), true
}

// quota is pion's QuotaHandler, asked before each allocation. The
// per-user count follows pion's allocation events, so simultaneous
// Allocate requests of one user may overshoot by the few in flight; the
// total cap is exact (relayGen counts open relay sockets).
func (s *Server) quota(username, _ string, _ net.Addr) bool {
	user, err := voip.Check(username, s.cfg.Now())
	if err != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perUser[user] < s.cfg.MaxAllocationsPerUser && s.allocs < s.cfg.MaxAllocations
}

// permitted is the PermissionHandler: may a client relay to/from peerIP?
func (s *Server) permitted(_ net.Addr, peerIP net.IP) bool {
	return PeerAllowed(peerIP, s.cfg.AllowPrivatePeers, s.cfg.UnsafeAllowLoopbackPeersForTestsOnly)
}

var cgnat = &net.IPNet{IP: net.IPv4(100, 64, 0, 0).To4(), Mask: net.CIDRMask(10, 32)}
var thisNet = &net.IPNet{IP: net.IPv4(0, 0, 0, 0).To4(), Mask: net.CIDRMask(8, 32)}

// PeerAllowed is the peer policy by address class (own addresses are
// handled on the data path, by port).
func PeerAllowed(ip net.IP, allowPrivate, allowLoopback bool) bool {
	switch {
	case ip == nil:
		return false
	case ip.IsLoopback():
		return allowLoopback
	case ip.IsUnspecified(), ip.IsMulticast(), ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast(),
		ip.IsInterfaceLocalMulticast(), ip.Equal(net.IPv4bcast), thisNet.Contains(ip):
		return false
	case ip.IsPrivate(), cgnat.Contains(ip):
		return allowPrivate
	}
	return true
}

// ownBlocked says whether a relayed datagram to or from addr must be
// dropped: a refused class of address, or an own address outside the
// relay port range.
func (s *Server) ownBlocked(addr net.Addr) bool {
	u, ok := addr.(*net.UDPAddr)
	if !ok {
		return true
	}
	if !PeerAllowed(u.IP, s.cfg.AllowPrivatePeers, s.cfg.UnsafeAllowLoopbackPeersForTestsOnly) {
		return true
	}
	if u.IP.IsLoopback() && u.Port == s.udpAddr.Port {
		// Loopback is not own in test mode, but the relay must not feed
		// its own listener there either: a relayed Allocate would nest
		// allocations.
		return true
	}
	if !s.isOwn(u.IP) {
		return false
	}
	return u.Port < s.cfg.MinPort || u.Port > s.cfg.MaxPort
}

// outboundIP is the source address of the default route (no packet is
// sent: connecting a UDP socket only picks the route).
func outboundIP() net.IP {
	c, err := net.Dial("udp", "192.0.2.1:9")
	if err != nil {
		return nil
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP
}
