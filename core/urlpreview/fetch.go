package urlpreview

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"
)

var (
	// ErrInvalidURL is a URL that is not an absolute http or https URL.
	ErrInvalidURL = errors.New("urlpreview: not an http or https URL")
	// ErrBlocked is a destination the address policy refuses (the URL's
	// host, a redirect's, or og:image's for a direct image URL).
	ErrBlocked = errors.New("urlpreview: destination address blocked")
	// ErrFetch is a URL that could not be fetched: see FetchError.
	ErrFetch = errors.New("urlpreview: could not fetch the URL")
)

// FetchError says why a URL could not be fetched, in words fit for the
// client: the name did not resolve, the network is unreachable (an
// offline mesh), it timed out, or the site answered an error.
type FetchError struct {
	Reason string
	Err    error
}

func (e *FetchError) Error() string {
	if e.Err != nil {
		return "urlpreview: " + e.Reason + ": " + e.Err.Error()
	}
	return "urlpreview: " + e.Reason
}

func (e *FetchError) Unwrap() error { return e.Err }

// Is makes every FetchError an ErrFetch.
func (e *FetchError) Is(target error) bool { return target == ErrFetch }

const maxRedirects = 5

var (
	errTooManyRedirects = errors.New("too many redirects")
	errRedirectScheme   = errors.New("redirect to a non-HTTP URL")
)

// newClient is an HTTP client that connects only where policy allows.
// The check is in the dialer (see Policy.control), not on the URL, so it
// covers every address a name resolves to and every redirect hop.
// Environment proxies are ignored: through a proxy the dialer would check
// the proxy's address, not the destination's.
func newClient(policy Policy, timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: policy.control}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            d.DialContext,
			TLSHandshakeTimeout:    timeout,
			ResponseHeaderTimeout:  timeout,
			MaxIdleConns:           4,
			MaxIdleConnsPerHost:    2,
			IdleConnTimeout:        30 * time.Second,
			MaxResponseHeaderBytes: 64 << 10,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > maxRedirects {
				return errTooManyRedirects
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return errRedirectScheme
			}
			return nil
		},
	}
}

// get fetches u with GET. A non-2xx answer is a FetchError; the caller
// closes the body of a returned response.
func (p *Previewer) get(ctx context.Context, u *url.URL, accept string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, ErrInvalidURL
	}
	req.Header.Set("User-Agent", p.cfg.UserAgent)
	req.Header.Set("Accept", accept)
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, classifyErr(ctx, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		resp.Body.Close()
		return nil, &FetchError{Reason: fmt.Sprintf("the site answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))}
	}
	return resp, nil
}

// classifyErr turns a client error into ErrBlocked or a FetchError.
func classifyErr(ctx context.Context, err error) error {
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.Is(err, ErrBlocked):
		return ErrBlocked
	case errors.Is(err, errTooManyRedirects):
		return &FetchError{Reason: "too many redirects", Err: err}
	case errors.Is(err, errRedirectScheme):
		return &FetchError{Reason: "redirected to a non-HTTP URL", Err: err}
	case errors.As(err, &dnsErr):
		return &FetchError{Reason: "the host name could not be resolved", Err: err}
	case errors.Is(err, context.DeadlineExceeded), ctx.Err() != nil, errors.As(err, &netErr) && netErr.Timeout():
		return &FetchError{Reason: "timed out", Err: err}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &FetchError{Reason: "connection refused", Err: err}
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return &FetchError{Reason: "network unreachable", Err: err}
	}
	return &FetchError{Reason: "connection failed", Err: err}
}
