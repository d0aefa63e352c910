package urlpreview

import (
	"errors"
	"net/netip"
	"testing"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		ip   string
		want Class
	}{
		// IPv4
		{"8.8.8.8", Public},
		{"1.1.1.1", Public},
		{"93.184.216.34", Public},
		{"0.0.0.0", Forbidden},
		{"0.1.2.3", Forbidden},
		{"127.0.0.1", Loopback},
		{"127.255.255.254", Loopback},
		{"169.254.169.254", Forbidden},
		{"169.254.0.1", Forbidden},
		{"224.0.0.1", Forbidden},
		{"239.255.255.250", Forbidden},
		{"255.255.255.255", Forbidden},
		{"240.0.0.1", Forbidden},
		{"192.0.2.1", Forbidden},
		{"198.51.100.1", Forbidden},
		{"203.0.113.1", Forbidden},
		{"10.0.0.1", Private},
		{"10.255.255.255", Private},
		{"172.16.0.1", Private},
		{"172.31.255.255", Private},
		{"172.15.255.255", Public},
		{"172.32.0.0", Public},
		{"192.168.1.1", Private},
		{"100.64.0.1", Private},
		{"100.127.255.255", Private},
		{"100.63.255.255", Public},
		{"100.128.0.0", Public},
		{"192.0.0.8", Private},
		{"198.18.0.1", Private},
		// IPv6
		{"2606:4700:4700::1111", Public},
		{"::", Forbidden},
		{"::1", Loopback},
		{"::127.0.0.1", Forbidden}, // IPv4-compatible
		{"fe80::1", Forbidden},
		{"fe80::1%eth0", Forbidden},
		{"febf::1", Forbidden},
		{"ff02::1", Forbidden},
		{"ff05::2", Forbidden},
		{"fc00::1", Private},
		{"fd12:3456:789a::1", Private},
		{"fec0::1", Private},
		{"2001:db8::1", Forbidden},
		{"100::1", Forbidden},
		// IPv4-mapped IPv6: classified as the IPv4 address
		{"::ffff:8.8.8.8", Public},
		{"::ffff:127.0.0.1", Loopback},
		{"::ffff:10.0.0.1", Private},
		{"::ffff:172.16.0.1", Private},
		{"::ffff:192.168.0.1", Private},
		{"::ffff:100.64.0.1", Private},
		{"::ffff:169.254.169.254", Forbidden},
		{"::ffff:0.0.0.0", Forbidden},
		{"::ffff:224.0.0.1", Forbidden},
		{"::ffff:255.255.255.255", Forbidden},
		// NAT64 and 6to4 embed an IPv4 address a gateway reaches
		{"64:ff9b::8.8.8.8", Public},
		{"64:ff9b::10.0.0.1", Private},
		{"64:ff9b::127.0.0.1", Loopback},
		{"64:ff9b::169.254.169.254", Forbidden},
		{"64:ff9b:1::1", Private},
		{"2002:0808:0808::1", Public},
		{"2002:c0a8:0101::1", Private},  // 192.168.1.1
		{"2002:7f00:0001::1", Loopback}, // 127.0.0.1
		{"2002:a9fe:a9fe::1", Forbidden},
	} {
		ip := netip.MustParseAddr(tc.ip)
		if got := Classify(ip); got != tc.want {
			t.Errorf("Classify(%s) = %s, want %s", tc.ip, got, tc.want)
		}
	}
	if Classify(netip.Addr{}) != Forbidden {
		t.Error("the zero address must be forbidden")
	}
}

func TestPolicy(t *testing.T) {
	def := Policy{}
	lan := Policy{AllowPrivate: true}
	test := Policy{AllowLoopback: true}
	all := Policy{AllowPrivate: true, AllowLoopback: true}
	for _, tc := range []struct {
		ip                   string
		def, lan, test, both bool
	}{
		{"8.8.8.8", true, true, true, true},
		{"2606:4700::1", true, true, true, true},
		{"10.1.2.3", false, true, false, true},
		{"::ffff:192.168.1.1", false, true, false, true},
		{"fd00::1", false, true, false, true},
		{"127.0.0.1", false, false, true, true},
		{"::1", false, false, true, true},
		{"::ffff:127.0.0.1", false, false, true, true},
		// Never, whatever the settings.
		{"169.254.169.254", false, false, false, false},
		{"fe80::1", false, false, false, false},
		{"0.0.0.0", false, false, false, false},
		{"::", false, false, false, false},
		{"224.0.0.251", false, false, false, false},
		{"ff02::fb", false, false, false, false},
		{"255.255.255.255", false, false, false, false},
	} {
		ip := netip.MustParseAddr(tc.ip)
		for _, c := range []struct {
			name string
			p    Policy
			want bool
		}{{"default", def, tc.def}, {"private", lan, tc.lan}, {"loopback", test, tc.test}, {"both", all, tc.both}} {
			if got := c.p.Allowed(ip); got != c.want {
				t.Errorf("%s policy, %s: allowed %v, want %v", c.name, tc.ip, got, c.want)
			}
		}
	}
}

func TestControl(t *testing.T) {
	p := Policy{}
	for _, tc := range []struct {
		network, addr string
		ok            bool
	}{
		{"tcp4", "8.8.8.8:443", true},
		{"tcp6", "[2606:4700::1]:80", true},
		{"tcp4", "127.0.0.1:8008", false},
		{"tcp6", "[::ffff:10.0.0.1]:80", false},
		{"tcp6", "[fe80::1%eth0]:80", false},
		{"udp4", "8.8.8.8:53", false},
		{"tcp4", "not-an-address", false},
	} {
		err := p.control(tc.network, tc.addr, nil)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrBlocked)) {
			t.Errorf("control(%s, %s) = %v", tc.network, tc.addr, err)
		}
	}
}

// TestPolicyHostNetworks: global addresses on the hub's own links are the
// LAN, and the hub's own global addresses are the hub itself, though the
// fixed ranges call them public (IPv6 home networks; a hub that is the
// router).
func TestPolicyHostNetworks(t *testing.T) {
	ifs := func() []netip.Prefix {
		return []netip.Prefix{
			netip.MustParsePrefix("2a01:e0a:1:2::10/64"), // the hub's global IPv6 on its LAN
			netip.MustParsePrefix("81.2.69.160/24"),      // a public WAN address of its own
			netip.MustParsePrefix("192.168.1.10/24"),     // private anyway
		}
	}
	cases := []struct {
		ip      string
		private bool
		want    Class
		allowed bool
	}{
		{"2a01:e0a:1:2::99", false, Private, false}, // a camera on the LAN
		{"2a01:e0a:1:2::99", true, Private, true},
		{"2a01:e0a:1:2::10", true, Loopback, false}, // the hub itself
		{"81.2.69.160", true, Loopback, false},
		{"::ffff:81.2.69.160", true, Loopback, false},
		{"81.2.69.7", false, Private, false}, // the WAN's neighbours
		{"2a01:e0a:1:3::1", false, Public, true},
		{"93.184.216.34", false, Public, true},
		{"127.0.0.1", true, Loopback, false},
	}
	for _, c := range cases {
		p := Policy{AllowPrivate: c.private, Interfaces: ifs}
		ip := netip.MustParseAddr(c.ip)
		if got := p.Here(ip); got != c.want {
			t.Errorf("%s: %v, want %v", c.ip, got, c.want)
		}
		if got := p.Allowed(ip); got != c.allowed {
			t.Errorf("%s (private allowed %v): allowed=%v", c.ip, c.private, got)
		}
	}
	// The real interfaces: loopback's own address is listed and is Loopback.
	found := false
	for _, pf := range LocalPrefixes() {
		if pf.Addr().IsLoopback() {
			found = true
		}
	}
	if !found {
		t.Error("LocalPrefixes has no loopback address")
	}
}
