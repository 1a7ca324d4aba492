//! The HTTP client for the server's own outbound requests (webhook deliveries, alarm
//! notifications), held to an [`EgressPolicy`].
//!
//! Two gates, because reqwest resolves names but connects to address literals directly:
//! - [`check_url`] before every request: the URL's host, and an address literal there, are
//!   checked without any lookup (in loopback mode no name but `localhost` passes);
//! - [`GuardedResolver`], the client's DNS resolver: it resolves an allowed name, keeps only
//!   the addresses the policy allows (so a name that points at a private address, now or
//!   after a DNS change, is refused at the moment of connecting), and never looks up a name
//!   the policy refuses.
//!
//! The client ignores proxy settings of the environment (`HTTP_PROXY` and friends): a
//! proxy would resolve and connect on the server's behalf, past both gates.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use orderly_core::egress::{EgressPolicy, HostDecision, LOCALHOST};

/// Looks a host name up (the system resolver in production; a fake in tests).
pub type Lookup = Arc<
    dyn Fn(String) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>
        + Send
        + Sync,
>;

/// The system resolver, through tokio (`getaddrinfo` on a blocking thread).
pub fn system_lookup() -> Lookup {
    Arc::new(|host: String| {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    })
}

/// A DNS resolver that asks the policy first and filters what it finds.
#[derive(Clone)]
pub struct GuardedResolver {
    policy: Arc<EgressPolicy>,
    lookup: Lookup,
}

impl std::fmt::Debug for GuardedResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedResolver")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl GuardedResolver {
    pub fn new(policy: Arc<EgressPolicy>, lookup: Lookup) -> GuardedResolver {
        GuardedResolver { policy, lookup }
    }

    /// The addresses a connection to `host` may use, or why there are none.
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        match self.policy.check_host(host)? {
            HostDecision::Connect(ip) => Ok(vec![ip]),
            HostDecision::Localhost => Ok(LOCALHOST.to_vec()),
            HostDecision::Resolve { allow_listed } => {
                let found = (self.lookup)(host.to_owned())
                    .await
                    .map_err(|e| format!("cannot resolve {host}: {e}"))?;
                let mut refusal = None;
                let allowed: Vec<IpAddr> = found
                    .into_iter()
                    .filter(|ip| match self.policy.check_resolved(*ip, allow_listed) {
                        Ok(()) => true,
                        Err(e) => {
                            refusal.get_or_insert(e);
                            false
                        }
                    })
                    .collect();
                match (allowed.is_empty(), refusal) {
                    (false, _) => Ok(allowed),
                    (true, Some(why)) => Err(format!("{host} resolves to {why}")),
                    (true, None) => Err(format!("{host} resolves to no address")),
                }
            }
        }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let ips = this.addresses(&host).await.map_err(|e| {
                Box::new(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("refused by the egress policy: {e}"),
                )) as Box<dyn std::error::Error + Send + Sync>
            })?;
            let addrs: reqwest::dns::Addrs =
                Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// Checks a URL's host before a request is made: an address literal against the policy
/// (reqwest connects to literals without asking the resolver), a name against what may be
/// looked up at all.
pub fn check_url(policy: &EgressPolicy, url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let host = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => return policy.check_ip(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => return policy.check_ip(IpAddr::V6(ip)),
        Some(url::Host::Domain(d)) => d.to_owned(),
        None => return Err(format!("{url:?} has no host")),
    };
    policy.check_host(&host).map(|_| ())
}

/// A client builder held to `policy`: no proxies, names resolved by [`GuardedResolver`].
/// Every request made with it must pass [`check_url`] first.
pub fn client_builder(policy: Arc<EgressPolicy>) -> reqwest::ClientBuilder {
    client_builder_with(policy, system_lookup())
}

/// As [`client_builder`], with the lookup given (tests count lookups with it).
pub fn client_builder_with(policy: Arc<EgressPolicy>, lookup: Lookup) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver::new(policy, lookup)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::{AtomicUsize, Ordering};

    use orderly_core::egress::EgressMode;

    use super::*;

    /// A lookup that counts its calls and answers `answer` for every name.
    fn fake(answer: Vec<IpAddr>) -> (Lookup, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let lookup: Lookup = Arc::new(move |_host: String| {
            c.fetch_add(1, Ordering::SeqCst);
            let answer = answer.clone();
            Box::pin(async move { Ok(answer) })
        });
        (lookup, calls)
    }

    #[tokio::test]
    async fn loopback_mode_looks_nothing_up() {
        let (lookup, calls) = fake(vec!["127.0.0.1".parse().unwrap()]);
        let r = GuardedResolver::new(Arc::new(EgressPolicy::loopback()), lookup);
        for host in [
            "hooks.example.com",
            "3.101.179.203",
            "10.0.0.1",
            "169.254.169.254",
        ] {
            let e = r.addresses(host).await.unwrap_err();
            assert!(e.contains("loopback"), "{host}: {e}");
        }
        assert_eq!(r.addresses("localhost").await.unwrap(), LOCALHOST.to_vec());
        assert_eq!(
            r.addresses("127.0.0.1").await.unwrap(),
            vec!["127.0.0.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0, "no name may be looked up");
        let p = EgressPolicy::loopback();
        assert!(check_url(&p, "http://127.0.0.1:9/x").is_ok());
        assert!(check_url(&p, "http://localhost:9/x").is_ok());
        assert!(check_url(&p, "https://hooks.example.com/x").is_err());
        assert!(check_url(&p, "http://3.101.179.203/").is_err());
    }

    #[tokio::test]
    async fn public_mode_drops_private_answers_at_connect_time() {
        // A name that resolves to a private and a public address keeps only the public one;
        // one that resolves to private addresses only (DNS rebinding) is refused.
        let (lookup, calls) = fake(vec![
            "10.0.0.1".parse().unwrap(),
            "3.3.3.3".parse().unwrap(),
        ]);
        let r = GuardedResolver::new(Arc::new(EgressPolicy::default()), lookup);
        assert_eq!(
            r.addresses("mixed.example").await.unwrap(),
            vec!["3.3.3.3".parse::<IpAddr>().unwrap()]
        );
        let (lookup, _) = fake(vec!["169.254.169.254".parse().unwrap()]);
        let r2 = GuardedResolver::new(Arc::new(EgressPolicy::default()), lookup);
        let e = r2.addresses("rebind.example").await.unwrap_err();
        assert!(
            e.contains("169.254.169.254") && e.contains("link-local"),
            "{e}"
        );
        // Literals are decided without a lookup.
        assert!(r.addresses("10.0.0.1").await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let p = EgressPolicy::default();
        for url in [
            "http://127.0.0.1/x",
            "http://10.0.0.1/x",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]:8080/",
        ] {
            assert!(check_url(&p, url).is_err(), "{url}");
        }
        assert!(check_url(&p, "https://hooks.example.com/x").is_ok());
    }

    #[tokio::test]
    async fn allow_listed_hosts_may_be_private() {
        let (lookup, _) = fake(vec!["10.1.2.3".parse().unwrap()]);
        let policy =
            EgressPolicy::new(EgressMode::Public, &["hooks.internal,10.9.9.9".into()]).unwrap();
        let r = GuardedResolver::new(Arc::new(policy.clone()), lookup);
        assert_eq!(
            r.addresses("hooks.internal").await.unwrap(),
            vec!["10.1.2.3".parse::<IpAddr>().unwrap()]
        );
        assert!(r.addresses("other.internal").await.is_err());
        assert!(check_url(&policy, "http://10.9.9.9/x").is_ok());
        assert!(check_url(&policy, "http://10.9.9.8/x").is_err());
    }

    #[tokio::test]
    async fn the_client_refuses_before_connecting() {
        // A real request through the guarded client to a name the policy refuses fails in
        // the resolver, without a lookup.
        let (lookup, calls) = fake(vec!["127.0.0.1".parse().unwrap()]);
        let client = client_builder_with(Arc::new(EgressPolicy::loopback()), lookup)
            .build()
            .unwrap();
        let e = client
            .get("http://hooks.example.com:9/")
            .send()
            .await
            .unwrap_err();
        let text = format!("{:?}", e);
        assert!(text.contains("egress policy"), "{text}");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }
}
