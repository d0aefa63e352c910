package main

import (
	"fmt"
	"strconv"
	"strings"
)

// TURNConfig is the [turn] section: the embedded TURN/STUN relay (turn/)
// or an external TURN server, and the VoIP endpoints that hand out
// credentials for it (/voip/turnServer, /voip/config,
// /voip/turnServer/guest).
//
// Default: OFF. The embedded relay starts only with enabled = true, and
// an external server is used only when uris and shared_secret are set.
// Why not on by default: a relay opens UDP/TCP 3478 plus a port range on
// every interface and lets any account send UDP from the hub; on a hub
// behind NAT it also needs the router to forward those ports and an
// external_address to advertise, which no default can guess right. An
// enabled relay with no shared_secret generates a random one per start:
// the homeserver and the embedded relay are one process, so nothing else
// needs the secret, and credentials issued before a restart die with the
// allocations they served anyway.
type TURNConfig struct {
	// Enabled starts the embedded relay (LICHEN_TURN_ENABLED).
	Enabled bool `toml:"enabled"`
	// ListenAddress is the IP the relay's UDP and TCP listeners bind
	// (default 0.0.0.0); Port is their port (default 3478).
	ListenAddress string `toml:"listen_address"`
	Port          int    `toml:"port"`
	// ExternalAddress is the IP advertised as the relayed address: the
	// hub's public IP when callers come from the internet, else its LAN
	// IP (default: the address of the default-route interface).
	ExternalAddress string `toml:"external_address"`
	// Host is the name put in the turn: URIs (default: the server name).
	Host string `toml:"host"`
	// MinPort/MaxPort are the relay port range (default 49160-49200).
	MinPort int `toml:"min_port"`
	MaxPort int `toml:"max_port"`
	// Realm is the TURN realm (default: the server name).
	Realm string `toml:"realm"`
	// SharedSecret is the TURN REST secret: for the embedded relay
	// (random per start when empty) or the external server (required).
	SharedSecret string `toml:"shared_secret"`
	// URIs, when set, point clients at an external TURN server (coturn
	// with use-auth-secret and the same shared_secret) instead of the
	// embedded one.
	URIs []string `toml:"uris"`
	// STUNURIs are listed by /voip/config (default with the embedded
	// relay: stun:host:port).
	STUNURIs []string `toml:"stun_uris"`
	// CredentialTTLSeconds is how long issued credentials last (86400).
	CredentialTTLSeconds int `toml:"credential_ttl_seconds"`
	// AllowGuests serves /voip/turnServer/guest without an access token
	// (default false: anyone who can reach the hub could then relay).
	AllowGuests bool `toml:"allow_guests"`
	// AllowPrivatePeers lets relay users reach RFC 1918 / CGNAT / ULA
	// peers. Default true: a home hub's callers are mostly on its LAN,
	// and their ICE candidates are private; the cost is that any account
	// can send UDP to any host on the hub's LAN through the relay. Turn
	// it off for hubs with accounts you do not trust with LAN access.
	AllowPrivatePeers bool `toml:"allow_private_peers"`
	// MaxAllocationsPerUser (10) and MaxAllocations (100) cap live
	// allocations.
	MaxAllocationsPerUser int `toml:"max_allocations_per_user"`
	MaxAllocations        int `toml:"max_allocations"`
	// AllocationKbps caps relayed payload per allocation and direction
	// (default 4000, enough for a 720p video call); TotalKbps caps the
	// sum over all allocations (default 20000). 0 means unlimited.
	// Packets over the cap are dropped.
	AllocationKbps int `toml:"allocation_kbps"`
	TotalKbps      int `toml:"total_kbps"`
}

func defaultTURNConfig() TURNConfig {
	return TURNConfig{
		ListenAddress:         "0.0.0.0",
		Port:                  3478,
		MinPort:               49160,
		MaxPort:               49200,
		CredentialTTLSeconds:  86400,
		AllowPrivatePeers:     true,
		MaxAllocationsPerUser: 10,
		MaxAllocations:        100,
		AllocationKbps:        4000,
		TotalKbps:             20000,
	}
}

// applyEnv overrides c from LICHEN_TURN_* variables (lists are
// comma-separated; booleans take true/false/1/0).
func (c *TURNConfig) applyEnv(getenv func(string) string) error {
	for name, dst := range map[string]*string{
		"LICHEN_TURN_LISTEN_ADDRESS":   &c.ListenAddress,
		"LICHEN_TURN_EXTERNAL_ADDRESS": &c.ExternalAddress,
		"LICHEN_TURN_HOST":             &c.Host,
		"LICHEN_TURN_REALM":            &c.Realm,
		"LICHEN_TURN_SHARED_SECRET":    &c.SharedSecret,
	} {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	for name, dst := range map[string]*[]string{
		"LICHEN_TURN_URIS":      &c.URIs,
		"LICHEN_TURN_STUN_URIS": &c.STUNURIs,
	} {
		if v := getenv(name); v != "" {
			*dst = nil
			for _, u := range strings.Split(v, ",") {
				if u = strings.TrimSpace(u); u != "" {
					*dst = append(*dst, u)
				}
			}
		}
	}
	for name, dst := range map[string]*int{
		"LICHEN_TURN_PORT":                     &c.Port,
		"LICHEN_TURN_MIN_PORT":                 &c.MinPort,
		"LICHEN_TURN_MAX_PORT":                 &c.MaxPort,
		"LICHEN_TURN_CREDENTIAL_TTL_SECONDS":   &c.CredentialTTLSeconds,
		"LICHEN_TURN_MAX_ALLOCATIONS_PER_USER": &c.MaxAllocationsPerUser,
		"LICHEN_TURN_MAX_ALLOCATIONS":          &c.MaxAllocations,
		"LICHEN_TURN_ALLOCATION_KBPS":          &c.AllocationKbps,
		"LICHEN_TURN_TOTAL_KBPS":               &c.TotalKbps,
	} {
		if v := getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return fmt.Errorf("%s: %q is not a non-negative integer", name, v)
			}
			*dst = n
		}
	}
	for name, dst := range map[string]*bool{
		"LICHEN_TURN_ENABLED":             &c.Enabled,
		"LICHEN_TURN_ALLOW_GUESTS":        &c.AllowGuests,
		"LICHEN_TURN_ALLOW_PRIVATE_PEERS": &c.AllowPrivatePeers,
	} {
		if v := getenv(name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%s: %q is not a boolean", name, v)
			}
			*dst = b
		}
	}
	return nil
}
