//! Proxy-style ingress modes: the application is configured to use us as its HTTP or SOCKS5
//! proxy. Destinations matching `dst_filters` go through the tunnel; the rest are proxied
//! plainly, as an ordinary proxy would.

pub mod filter;
pub mod http_proxy;
pub mod socks5;
