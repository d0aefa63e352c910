package urlpreview

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// Class is what a destination address is, as far as the fetch policy
// cares. A hub sits on a LAN next to routers, cameras and NAS boxes with
// unauthenticated admin pages; previews must not become a way for any
// account to read them (server-side request forgery).
type Class int

const (
	// Public addresses are fetched.
	Public Class = iota
	// Private addresses (RFC 1918, CGNAT, ULA, ...) are the LAN: fetched
	// only when the operator allows it.
	Private
	// Loopback is the hub itself: fetched only in tests.
	Loopback
	// Forbidden addresses are never fetched: unspecified, link-local
	// (169.254.169.254 is the cloud metadata service), multicast,
	// broadcast, reserved and documentation ranges. None of them is a
	// web page anyone links to.
	Forbidden
)

func (c Class) String() string {
	switch c {
	case Public:
		return "public"
	case Private:
		return "private"
	case Loopback:
		return "loopback"
	}
	return "forbidden"
}

type rangeClass struct {
	p netip.Prefix
	c Class
}

// embedded marks IPv6 ranges that carry an IPv4 address a gateway may
// translate to: they are classified by that IPv4 address.
const embedded Class = -1

// ranges is checked in order; the first match wins. IPv4-mapped IPv6
// (::ffff:a.b.c.d) is unmapped before the lookup.
var ranges = func() []rangeClass {
	var out []rangeClass
	for _, r := range []struct {
		cidr string
		c    Class
	}{
		{"0.0.0.0/8", Forbidden}, // "this network"; 0.0.0.0 reaches the host itself on Linux
		{"127.0.0.0/8", Loopback},
		{"169.254.0.0/16", Forbidden}, // link-local, cloud metadata
		{"224.0.0.0/4", Forbidden},    // multicast
		{"240.0.0.0/4", Forbidden},    // reserved, and 255.255.255.255 broadcast
		{"192.0.2.0/24", Forbidden},   // TEST-NET-1
		{"198.51.100.0/24", Forbidden},
		{"203.0.113.0/24", Forbidden},
		{"192.88.99.0/24", Forbidden}, // deprecated 6to4 relay anycast
		{"10.0.0.0/8", Private},
		{"172.16.0.0/12", Private},
		{"192.168.0.0/16", Private},
		{"100.64.0.0/10", Private},  // CGNAT: the ISP's side of the LAN, or a mesh
		{"192.0.0.0/24", Private},   // IETF protocol assignments (DS-Lite, NAT64 discovery)
		{"198.18.0.0/15", Private},  // benchmarking, used inside some networks
		{"::/128", Forbidden},       // unspecified
		{"::1/128", Loopback},       //
		{"::/96", Forbidden},        // deprecated IPv4-compatible
		{"64:ff9b::/96", embedded},  // NAT64 well-known prefix
		{"64:ff9b:1::/48", Private}, // local-use NAT64
		{"100::/64", Forbidden},     // discard-only
		{"2001:db8::/32", Forbidden},
		{"2002::/16", embedded}, // 6to4
		{"fc00::/7", Private},   // unique local
		{"fe80::/10", Forbidden},
		{"fec0::/10", Private}, // deprecated site-local
		{"ff00::/8", Forbidden},
	} {
		out = append(out, rangeClass{netip.MustParsePrefix(r.cidr), r.c})
	}
	return out
}()

// Classify says what ip is.
func Classify(ip netip.Addr) Class {
	if !ip.IsValid() {
		return Forbidden
	}
	ip = ip.WithZone("").Unmap()
	for _, r := range ranges {
		if !r.p.Contains(ip) {
			continue
		}
		if r.c != embedded {
			return r.c
		}
		b := ip.As16()
		var v4 [4]byte
		if r.p.Bits() == 96 { // NAT64: the last 32 bits
			copy(v4[:], b[12:])
		} else { // 6to4: bits 16..48
			copy(v4[:], b[2:6])
		}
		return Classify(netip.AddrFrom4(v4))
	}
	return Public
}

// Policy is which classes may be fetched.
type Policy struct {
	// AllowPrivate admits the LAN (url_preview_allow_private).
	AllowPrivate bool
	// AllowLoopback admits the hub itself: tests only.
	AllowLoopback bool
	// Interfaces lists this host's addresses with their prefix lengths
	// (nil: the real interfaces, through LocalPrefixes).
	Interfaces func() []netip.Prefix
}

// Here classifies ip as seen from this host: fixed ranges first, then
// the host's own networks. On IPv6 a home LAN's devices (router,
// cameras, NAS) have global addresses, and a hub that is the router has
// a public WAN address of its own: a global address on one of the
// hub's own links is the LAN (Private), and one of the hub's own
// addresses is the hub (Loopback), though Classify calls both Public.
func (p Policy) Here(ip netip.Addr) Class {
	c := Classify(ip)
	if c != Public {
		return c
	}
	ifs := p.Interfaces
	if ifs == nil {
		ifs = LocalPrefixes
	}
	ip = ip.WithZone("").Unmap()
	for _, pf := range ifs() {
		if pf.Addr().Unmap() == ip {
			return Loopback
		}
		if pf.Masked().Contains(ip) {
			c = Private
		}
	}
	return c
}

// Allowed says whether ip may be connected to.
func (p Policy) Allowed(ip netip.Addr) bool {
	switch p.Here(ip) {
	case Public:
		return true
	case Private:
		return p.AllowPrivate
	case Loopback:
		return p.AllowLoopback
	}
	return false
}

var local struct {
	sync.Mutex
	at       time.Time
	prefixes []netip.Prefix
}

// LocalPrefixes returns this host's interface addresses with their
// prefix lengths, re-read at most every 5 s (addresses change with DHCP,
// PPPoE reconnects and IPv6 privacy addresses). When the list cannot be
// read the previous one is kept.
func LocalPrefixes() []netip.Prefix {
	local.Lock()
	defer local.Unlock()
	if time.Since(local.at) < 5*time.Second && local.prefixes != nil {
		return local.prefixes
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return local.prefixes
	}
	var out []netip.Prefix
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		ones, _ := n.Mask.Size()
		ip = ip.Unmap()
		if ip.Is4() && ones > 32 {
			ones -= 96
		}
		if pf, err := ip.Prefix(ones); err == nil {
			out = append(out, netip.PrefixFrom(ip, pf.Bits()))
		}
	}
	local.at, local.prefixes = time.Now(), out
	return out
}

// control is the net.Dialer's Control hook: it runs for every address the
// dialer is about to connect to, after name resolution, so neither DNS
// rebinding (a name that resolves to a public address when checked and a
// LAN one when used) nor a redirect can get around the policy.
func (p Policy) control(network, address string, _ syscall.RawConn) error {
	if network != "tcp4" && network != "tcp6" {
		return fmt.Errorf("%w: network %s", ErrBlocked, network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrBlocked, address)
	}
	if !p.Allowed(ap.Addr()) {
		return fmt.Errorf("%w: %s address %s", ErrBlocked, p.Here(ap.Addr()), ap.Addr())
	}
	return nil
}
