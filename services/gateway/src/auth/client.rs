//! Where a request comes from: the peer's address, or behind one trusted proxy the rightmost
//! `X-Forwarded-For` hop (the one that proxy added; everything left of it the client wrote).

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;

use crate::state::AppState;

/// The client's address, and its User-Agent (for the session list and the audit log).
#[derive(Debug, Clone)]
pub struct Client {
    pub ip: IpAddr,
    pub user_agent: Option<String>,
    /// The peer is this machine (loopback) and the request came through no proxy (no
    /// forwarding header): someone on the machine itself.
    pub direct_local: bool,
}

impl FromRequestParts<AppState> for Client {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        let forwarded = ["x-forwarded-for", "forwarded", "x-real-ip", "via"]
            .iter()
            .any(|h| parts.headers.contains_key(*h));
        Ok(Client {
            direct_local: peer.to_canonical().is_loopback() && !forwarded,
            ip: client_ip(
                &parts.headers,
                peer,
                state.settings.auth.trust_forwarded_for,
            ),
            user_agent: parts
                .headers
                .get(axum::http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|ua| ua.chars().take(200).collect()),
        })
    }
}

/// The peer, or with `trust_forwarded_for` the rightmost `X-Forwarded-For` address.
pub fn client_ip(headers: &HeaderMap, peer: IpAddr, trust_forwarded_for: bool) -> IpAddr {
    if !trust_forwarded_for {
        return peer;
    }
    // The last header's last hop; one that does not parse leaves the peer.
    headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|hop| hop.trim().parse::<IpAddr>().ok())
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rightmost_hop_is_the_one_the_proxy_added() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "1.2.3.4, 203.0.113.9".parse().unwrap());
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(client_ip(&headers, peer, false), peer);
        assert_eq!(
            client_ip(&headers, peer, true),
            "203.0.113.9".parse::<IpAddr>().unwrap(),
            "the client chose 1.2.3.4; the proxy wrote the last hop"
        );
        assert_eq!(client_ip(&HeaderMap::new(), peer, true), peer);
    }
}
